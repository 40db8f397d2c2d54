"""camelidd: the CamelidCoin full node daemon.

Every flag except --datadir and --conf is also a camelid.conf key (see
camelid.node.config.SETTINGS, from which the flags are generated), so the two can
never drift apart. Exit status: 0 after a clean shutdown, 1 when the node cannot
start (bad configuration, locked data directory, RPC port in use), 2 for a
command-line usage error.
"""

from __future__ import annotations

import asyncio
import logging
import sys
import time
from pathlib import Path
from typing import Any

import click
from click.core import ParameterSource

from camelid.app import DataDirLocked, Node
from camelid.node.config import (
    SETTINGS,
    ConfigError,
    NodeConfig,
    Setting,
    load_config,
    parse_ip,
    parse_path,
    parse_port,
    parse_positive_int,
    parse_text,
)
from camelid.p2p.peer_address import parse_peer_address
from camelid.wallet import WalletError

LOG_FILENAME = "debug.log"
LOG_FORMAT = "%(asctime)s [%(threadName)s] %(name)s %(levelname)s: %(message)s"


def _converter(setting: Setting):
    def convert(ctx: click.Context, param: click.Parameter, value: Any) -> Any:
        if value is None or isinstance(value, bool):
            return value
        try:
            if isinstance(value, tuple):  # a repeatable option
                return tuple(setting.parse(item) for item in value)
            return setting.parse(value)
        except ValueError as exc:
            raise click.BadParameter(str(exc)) from None

    return convert


# What --help shows for a setting's value, by the parser that reads it.
_METAVARS = {
    parse_port: "PORT",
    parse_positive_int: "N",
    parse_ip: "IP",
    parse_text: "TEXT",
    parse_peer_address: "IP[:PORT]",
    parse_path: "PATH",
}


def _setting_options(command):
    """Decorate `command` with one --<key> option per configuration setting."""
    for key, setting in reversed(SETTINGS.items()):
        if key == "printtoconsole":
            option = click.option("--printtoconsole/--quiet", "printtoconsole", default=True, help=setting.help)
        elif key == "listen":
            option = click.option("--listen/--nolisten", "listen", default=True, help=setting.help)
        elif setting.is_flag:
            option = click.option(f"--{key}", key.replace("-", "_"), is_flag=True, help=setting.help)
        else:
            option = click.option(
                f"--{key}",
                key.replace("-", "_"),
                callback=_converter(setting),
                multiple=setting.multiple,
                metavar=_METAVARS.get(setting.parse, "VALUE"),
                help=setting.help,
            )
        command = option(command)
    return command


def setup_logging(net_datadir: Path, to_console: bool) -> None:
    """Log INFO and above to <network datadir>/debug.log and, unless --quiet, to stderr; times in UTC."""
    formatter = logging.Formatter(LOG_FORMAT, datefmt="%Y-%m-%dT%H:%M:%SZ")
    formatter.converter = time.gmtime
    handlers: list[logging.Handler] = [logging.FileHandler(net_datadir / LOG_FILENAME, encoding="utf-8")]
    if to_console:
        handlers.append(logging.StreamHandler(sys.stderr))
    root = logging.getLogger()
    root.setLevel(logging.INFO)
    for handler in handlers:
        handler.setFormatter(formatter)
        root.addHandler(handler)
    logging.getLogger("aiohttp").setLevel(logging.WARNING)


@click.command(context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--datadir", type=click.Path(file_okay=False, path_type=Path), help="Root data directory.")
@click.option("--conf", type=click.Path(dir_okay=False, path_type=Path), help="Configuration file.")
@_setting_options
def main(datadir: Path | None, conf: Path | None, **flags: Any) -> None:
    """Run a CamelidCoin full node."""
    ctx = click.get_current_context()
    given = {
        name.replace("_", "-"): value
        for name, value in flags.items()
        if ctx.get_parameter_source(name) == ParameterSource.COMMANDLINE
    }
    try:
        config = load_config(given, datadir, conf)
        config.net_datadir.mkdir(parents=True, exist_ok=True)
    except (ConfigError, OSError) as exc:
        raise click.ClickException(str(exc)) from None
    setup_logging(config.net_datadir, config.printtoconsole)
    sys.exit(run_node(config))


def run_node(config: NodeConfig) -> int:
    log = logging.getLogger("camelid.cli.camelidd")
    log.info("CamelidCoin node starting: network %s, data directory %s", config.network, config.net_datadir)
    try:
        asyncio.run(Node(config).run())
    except DataDirLocked as exc:
        log.error("%s", exc)
        return 1
    except WalletError as exc:
        log.error("cannot load wallet: %s", exc.message)
        return 1
    except OSError as exc:
        log.error("cannot start: %s", exc)
        return 1
    except Exception:
        log.exception("fatal error, node stopped")
        return 1
    return 0


if __name__ == "__main__":
    main()
