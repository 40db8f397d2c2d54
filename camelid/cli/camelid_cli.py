"""camelid-cli: call a running camelidd's JSON-RPC methods from the shell, as bitcoin-cli does.

    camelid-cli [--regtest|--testnet] [--datadir D] [--rpcport P] METHOD [ARG...]

Arguments are sent as JSON when they parse as JSON and the method does not take
a string there, else as strings; with --named each is `name=value`. Credentials
come from --rpcuser/--rpcpassword, camelid.conf, or the node's cookie file. A
string result prints bare, null prints nothing, anything else as indented JSON.
An RPC error prints "error code: N" and "error message:" on stderr and exits 1.

`camelid-cli complete PROMPT --max-tokens N` is not an RPC method but a command of its own
(camelid.cli.complete): it submits a job and follows it to its verified text; so is
`camelid-cli fractal GOAL` (camelid.cli.fractal), which submits a task and follows its tree to the document.
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

from camelid.cli import complete, fractal
from camelid.node.config import ConfigError, NodeConfig, load_config
from camelid.rpc import jsonenc
from camelid.rpc.auth import Credentials, read_cookie
from camelid.rpc.client import AuthorizationError, JSONRPCError, RPCClient
from camelid.rpc.errors import RPCErrorCode
from camelid.rpc.methods import build_registry

RPCWAIT_INTERVAL = 1.0
FETCH_POLL_INTERVAL = 0.5
METHODS = build_registry()  # the node's methods, to tell which arguments are strings


def parse_argument(method: str, position: int | str, text: str) -> Any:
    """JSON when it parses and the parameter is not string-only, else the text itself."""
    spec = METHODS.get(method)
    if spec is not None:
        params = {p.name: p for p in spec.params}
        param = spec.params[position] if isinstance(position, int) and position < len(spec.params) else None
        param = params.get(position) if isinstance(position, str) else param
        if param is not None and param.types == ("string",):
            return text
    try:
        return json.loads(text)
    except ValueError:
        return text


def build_params(method: str, args: tuple[str, ...], named: bool) -> list[Any] | dict[str, Any]:
    if not named:
        return [parse_argument(method, i, arg) for i, arg in enumerate(args)]
    out: dict[str, Any] = {}
    for arg in args:
        name, sep, value = arg.partition("=")
        if not sep or not name:
            raise click.UsageError(f"with --named every argument must be name=value, got {arg!r}")
        out[name] = parse_argument(method, name, value)
    return out


def _credentials(config: NodeConfig) -> Credentials:
    if config.rpcuser is not None and config.rpcpassword is not None:
        return Credentials(config.rpcuser, config.rpcpassword)
    return read_cookie(config.net_datadir)


def _print_result(result: Any) -> None:
    if result is None:
        return
    click.echo(result if isinstance(result, str) else jsonenc.dumps(result, indent=2))


# Everything after METHOD is its arguments, even when it looks like an option (getblockhash -1).
CONTEXT_SETTINGS = {
    "help_option_names": ["-h", "--help"],
    "ignore_unknown_options": True,
    "allow_interspersed_args": False,
}


@click.command(context_settings=CONTEXT_SETTINGS)
@click.option("--regtest", is_flag=True, help="Talk to a regtest node.")
@click.option("--testnet", is_flag=True, help="Talk to a testnet node.")
@click.option("--datadir", type=click.Path(file_okay=False, path_type=Path), help="Root data directory.")
@click.option("--conf", type=click.Path(dir_okay=False, path_type=Path), help="Configuration file.")
@click.option("--rpcconnect", default="127.0.0.1", show_default=True, help="Node address.")
@click.option("--rpcport", type=click.IntRange(1, 65535), help="Node RPC port (default: the network's).")
@click.option("--rpcuser", help="RPC user name (default: read the cookie).")
@click.option("--rpcpassword", help="RPC password.")
@click.option("--rpcwait", is_flag=True, help="Wait for the node to start and finish loading.")
@click.option("--rpcwaittimeout", type=click.IntRange(min=0), default=0, help="Seconds --rpcwait waits (0: forever).")
@click.option("--named", is_flag=True, help="Arguments are name=value pairs.")
@click.option("--wait", is_flag=True, help="With fetchmodel: draw its progress until the model is complete.")
@click.argument("method")
@click.argument("args", nargs=-1, type=click.UNPROCESSED)
def main(
    regtest: bool,
    testnet: bool,
    datadir: Path | None,
    conf: Path | None,
    rpcconnect: str,
    rpcport: int | None,
    rpcuser: str | None,
    rpcpassword: str | None,
    rpcwait: bool,
    rpcwaittimeout: int,
    named: bool,
    wait: bool,
    method: str,
    args: tuple[str, ...],
) -> None:
    """Send METHOD with ARGS to camelidd and print the result."""
    given = {"regtest": regtest, "testnet": testnet, "rpcport": rpcport, "rpcuser": rpcuser, "rpcpassword": rpcpassword}
    try:
        config = load_config({k: v for k, v in given.items() if v not in (None, False)}, datadir, conf)
    except ConfigError as exc:
        raise click.ClickException(str(exc)) from None
    follow: Callable[[RPCClient, str, float], None] | None = None  # a command that follows what it submitted
    if method == complete.COMMAND:
        follow, method, (params, follow_timeout) = complete.follow_job, "submitjob", complete.submitjob_params(args)
    elif method == fractal.COMMAND:
        follow, method, (params, follow_timeout) = fractal.follow_task, "submittask", fractal.submittask_params(args)
    else:
        params = build_params(method, args, named)
    deadline = time.monotonic() + rpcwaittimeout if rpcwaittimeout else None
    while True:
        try:
            result = _call(config, rpcconnect, method, params)
            break
        except (OSError, ValueError) as exc:
            failure = _connection_failure(config, rpcconnect, exc)
        except JSONRPCError as exc:
            if not (rpcwait and exc.code == RPCErrorCode.IN_WARMUP):
                click.echo(f"error code: {exc.code}\nerror message:\n{exc.message}", err=True)
                sys.exit(1)
            failure = exc.message
        except AuthorizationError as exc:
            raise click.ClickException(str(exc)) from None
        if not rpcwait or (deadline is not None and time.monotonic() > deadline):
            raise click.ClickException(failure)
        time.sleep(RPCWAIT_INTERVAL)
    if follow is not None:
        follow(RPCClient(rpcconnect, config.rpc_port, _credentials(config)), result, follow_timeout)
        return
    if wait and method == "fetchmodel":
        result = _follow_fetch(RPCClient(rpcconnect, config.rpc_port, _credentials(config)), result["id"])
    _print_result(result)


def _follow_fetch(client: RPCClient, model_id: str) -> dict[str, Any]:
    """Poll getmodelinfo, drawing a progress bar on stderr, until the fetch completes; exit 1 if it fails."""
    while True:
        info = client.call("getmodelinfo", model_id)
        if info["status"] == "complete":
            click.echo(file=sys.stderr)
            return info
        if info["status"] == "failed":
            click.echo(f"\nfetch failed: {info.get('error', 'unknown error')}", err=True)
            sys.exit(1)
        total, done = info["bytes_total"], info["bytes_done"]
        width = 40
        filled = width * done // total if total else 0
        click.echo(
            f"\r{model_id[:16]} [{'#' * filled}{'.' * (width - filled)}] {done / 2**20:.1f}/"
            f"{(total or 0) / 2**20:.1f} MiB, {info['chunks_done']}/{info['chunks_total'] or '?'} chunks, "
            f"{len(info['peers'])} peers ({info['state']})",
            nl=False,
            err=True,
        )
        time.sleep(FETCH_POLL_INTERVAL)


def _call(config: NodeConfig, host: str, method: str, params: list[Any] | dict[str, Any]) -> Any:
    client = RPCClient(host, config.rpc_port, _credentials(config))
    return client.call(method, **params) if isinstance(params, dict) else client.call(method, *params)


def _connection_failure(config: NodeConfig, host: str, exc: Exception) -> str:
    if isinstance(exc, FileNotFoundError | ValueError) and config.rpcpassword is None:
        return (
            "Could not locate RPC credentials: no authentication cookie could be found in "
            f"{config.net_datadir} and no rpcpassword is set ({exc})"
        )
    return (
        f"Could not connect to the server {host}:{config.rpc_port} ({exc})\n\n"
        "Make sure camelidd is running and that you are connecting to the correct RPC port."
    )


if __name__ == "__main__":
    main()
