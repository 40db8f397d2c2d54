"""Node configuration: data directory layout, camelid.conf, and command-line precedence.

Layout (as Bitcoin Core): the root data directory (default ~/.camelid) holds
camelid.conf; mainnet data lives in the root itself, testnet in <root>/testnet and
regtest in <root>/regtest. Each network directory holds the chain state, debug.log,
camelidd.pid and the RPC .cookie.

camelid.conf uses the command-line flag names as keys (`rpcport=18443`, `mine=1`);
`#` starts a comment; a `[mainnet]`, `[testnet]` or `[regtest]` section holds keys
that apply only on that network and override the top-level ones. A value given on
the command line beats both. Unknown keys and bad values are errors naming the
file and line, never silently ignored.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any

from camelid.compute.engine import MAX_SLOTS as MAX_COMPUTE_SLOTS
from camelid.core.params import ChainParams, get_params
from camelid.crypto.address import address_to_hash160
from camelid.p2p.messages.models import MAX_CHUNK_SIZE as MAX_MODEL_CHUNK_SIZE
from camelid.p2p.peer_address import parse_peer_address

DEFAULT_DATADIR = Path("~/.camelid")
CONF_FILENAME = "camelid.conf"
NETWORK_SUBDIRS = {"mainnet": "", "testnet": "testnet", "regtest": "regtest"}
DEFAULT_MEMPOOL_BYTES = 300_000_000


class ConfigError(ValueError):
    """A setting is unknown, malformed or inconsistent; the message says where and why."""


def parse_bool(text: str) -> bool:
    value = text.strip().lower()
    if value in ("1", "true", "yes", "on"):
        return True
    if value in ("0", "false", "no", "off"):
        return False
    raise ValueError(f"expected 1/0 (or true/false), got {text!r}")


def parse_port(text: str) -> int:
    try:
        port = int(text)
    except ValueError:
        raise ValueError(f"expected a port number, got {text!r}") from None
    if not 1 <= port <= 65535:
        raise ValueError(f"port {port} is outside 1-65535")
    return port


def parse_positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise ValueError(f"expected a positive integer, got {text!r}") from None
    if value < 1:
        raise ValueError(f"expected a positive integer, got {value}")
    return value


def parse_gpu_layers(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise ValueError(f"expected a layer count (-1 for all), got {text!r}") from None
    if value < -1:
        raise ValueError(f"expected a layer count >= 0 or -1 for all, got {value}")
    return value


def parse_ip(text: str) -> str:
    try:
        return str(ipaddress.ip_address(text.strip()))
    except ValueError:
        raise ValueError(f"expected an IP address, got {text!r}") from None


def parse_text(text: str) -> str:
    if not text:
        raise ValueError("value is empty")
    return text


class Misbehaviour(StrEnum):
    """What a regtest node does wrong on purpose (--misbehave), so the disputes of Table 1 can be tested."""

    TAMPER_OUTPUT = "tamper-output"  # compute: commit to and deliver an output with one token swapped
    NEVER_DELIVER = "never-deliver"  # compute: take the payment, publish it, deliver nothing
    NEVER_PAY = "never-pay"  # client: answer no testament


def parse_misbehaviour(text: str) -> Misbehaviour:
    try:
        return Misbehaviour(text)
    except ValueError:
        raise ValueError(f"expected one of {', '.join(Misbehaviour)}, got {text!r}") from None


@dataclass(frozen=True)
class Setting:
    """One key of camelid.conf, which is also the command-line flag --<key>."""

    parse: Callable[[str], Any]
    default: Any
    help: str
    is_flag: bool = False
    multiple: bool = False  # may be repeated; the values form a tuple


SETTINGS: dict[str, Setting] = {
    "regtest": Setting(parse_bool, False, "Use the local regression-test network.", is_flag=True),
    "testnet": Setting(parse_bool, False, "Use the test network.", is_flag=True),
    "port": Setting(parse_port, None, "P2P listen port (default: the network's)."),
    "rpcport": Setting(parse_port, None, "JSON-RPC port (default: the network's)."),
    "rpcbind": Setting(parse_ip, "127.0.0.1", "Address the JSON-RPC server listens on."),
    "rpcuser": Setting(parse_text, None, "JSON-RPC user name (default: cookie authentication)."),
    "rpcpassword": Setting(parse_text, None, "JSON-RPC password, with --rpcuser."),
    "nostatus": Setting(parse_bool, False, "Do not serve the status page (GET /) on the RPC port.", is_flag=True),
    "mine": Setting(parse_bool, False, "Mine blocks continuously on the current tip.", is_flag=True),
    "mine-address": Setting(parse_text, None, "Address the mined coinbase pays (required with --mine)."),
    "mine-processes": Setting(parse_positive_int, None, "Hashing processes for --mine (default: CPU count)."),
    "reindex": Setting(parse_bool, False, "Rebuild the chain state and UTXO set from stored blocks.", is_flag=True),
    "printtoconsole": Setting(parse_bool, True, "Log to the console as well as debug.log.", is_flag=True),
    "wallet": Setting(parse_text, None, 'Wallet to load at start (default: "default" when it exists).'),
    "disablewallet": Setting(parse_bool, False, "Run without wallets: none loads, no wallet RPC.", is_flag=True),
    "listen": Setting(parse_bool, True, "Accept P2P connections (--nolisten: outbound only)."),
    "bind": Setting(parse_ip, "0.0.0.0", "Address the P2P listener binds to."),
    "connect": Setting(parse_peer_address, (), "Connect only to this IP[:port] (repeatable).", multiple=True),
    "addnode": Setting(parse_peer_address, (), "Keep this IP[:port] connected (repeatable).", multiple=True),
    "seednode": Setting(parse_peer_address, (), "Learn addresses from this IP[:port] (repeatable).", multiple=True),
    "maxconnections": Setting(parse_positive_int, 125, "Most P2P connections, inbound and outbound."),
    "serve-model": Setting(
        parse_text,
        (),
        "Serve a GGUF file PATH, a NAME ('default', 'smollm2') or a model ID to fetch (repeatable).",
        multiple=True,
    ),
    "nocompute": Setting(
        parse_bool,
        False,
        "Hold the --serve-model models to verify your jobs and serve their files, but take no jobs.",
        is_flag=True,
    ),
    "compute-threads": Setting(
        parse_positive_int, None, "llama.cpp threads per model worker (default: CPU count)."
    ),
    "compute-slots": Setting(
        parse_positive_int, 1, "Jobs a compute node generates at once per model, batched as llama.cpp sequences."
    ),
    "gpu-layers": Setting(
        parse_gpu_layers, 0, "Model layers to offload to a GPU (llama.cpp n_gpu_layers; -1: all; needs a GPU build)."
    ),
    "model-upload-rate": Setting(parse_positive_int, 20480, "KiB per second of model uploads, all peers together."),
    "model-peer-upload-rate": Setting(parse_positive_int, 8192, "KiB per second of model uploads to one peer."),
    "model-chunk-size": Setting(parse_positive_int, None, "regtest only: chunk size in bytes for --serve-model files."),
    "corrupt-model-chunks": Setting(
        parse_bool, False, "regtest only: serve model chunks with a flipped byte (to test fetchers).", is_flag=True
    ),
    "misbehave": Setting(
        parse_misbehaviour,
        None,
        f"regtest only: misbehave in jobs on purpose, to test disputes ({', '.join(Misbehaviour)}).",
    ),
}
NETWORK_KEYS = ("regtest", "testnet")


@dataclass(frozen=True)
class NodeConfig:
    """Everything camelidd needs to start, after merging defaults, camelid.conf and the command line."""

    network: str
    datadir: Path  # root data directory; the network's own directory is net_datadir
    rpcbind: str = "127.0.0.1"
    port: int | None = None
    rpcport: int | None = None
    rpcuser: str | None = None
    rpcpassword: str | None = None
    nostatus: bool = False
    mine: bool = False
    mine_address: str | None = None
    mine_processes: int | None = None
    reindex: bool = False
    printtoconsole: bool = True
    wallet: str | None = None  # wallet name under <net_datadir>/wallets/
    disablewallet: bool = False
    listen: bool = True
    bind: str = "0.0.0.0"
    connect: tuple[tuple[str, int | None], ...] = ()
    addnode: tuple[tuple[str, int | None], ...] = ()
    seednode: tuple[tuple[str, int | None], ...] = ()
    maxconnections: int = 125
    serve_model: tuple[str, ...] = ()  # GGUF paths, "default" or model ids (see camelid.node.model_service)
    nocompute: bool = False  # hold the models but sell no completions
    compute_threads: int | None = None  # llama.cpp threads per worker
    compute_slots: int = 1  # generations batched together per worker
    gpu_layers: int = 0  # llama.cpp n_gpu_layers per worker
    model_upload_rate: int = 20480  # KiB/s
    model_peer_upload_rate: int = 8192  # KiB/s
    model_chunk_size: int | None = None  # regtest only; None: 1 MiB
    corrupt_model_chunks: bool = False  # regtest only
    misbehave: Misbehaviour | None = None  # regtest only
    mempool_bytes: int = DEFAULT_MEMPOOL_BYTES
    conf_file: Path | None = None  # the camelid.conf that was read, if any

    @property
    def params(self) -> ChainParams:
        return get_params(self.network)

    @property
    def net_datadir(self) -> Path:
        return network_datadir(self.datadir, self.network)

    @property
    def p2p_port(self) -> int:
        return self.port or self.params.default_port

    @property
    def rpc_port(self) -> int:
        return self.rpcport or self.params.rpc_port


def network_datadir(root: Path, network: str) -> Path:
    """Directory holding `network`'s data under the root data directory."""
    try:
        sub = NETWORK_SUBDIRS[network]
    except KeyError:
        raise ConfigError(f"unknown network {network!r}; choose one of {', '.join(NETWORK_SUBDIRS)}") from None
    return root / sub if sub else root


@dataclass
class ConfFile:
    """Parsed camelid.conf: key -> (parsed value, line number), top level and per network section."""

    path: Path
    top: dict[str, tuple[Any, int]] = field(default_factory=dict)
    sections: dict[str, dict[str, tuple[Any, int]]] = field(default_factory=dict)


def read_conf_file(path: Path) -> ConfFile:
    """Parse camelid.conf; ConfigError naming the file and line for anything it does not understand."""
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{path}: not UTF-8 text ({exc.reason})") from None
    conf = ConfFile(path)
    target = conf.top
    section: str | None = None
    for lineno, raw in enumerate(text.splitlines(), start=1):
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        where = f"{path} line {lineno}"
        if line.startswith("["):
            if not line.endswith("]") or line[1:-1].strip() not in NETWORK_SUBDIRS:
                raise ConfigError(f"{where}: bad section {line!r}; expected one of [mainnet], [testnet], [regtest]")
            section = line[1:-1].strip()
            target = conf.sections.setdefault(section, {})
            continue
        key, sep, value = (part.strip() for part in line.partition("="))
        if not sep:
            raise ConfigError(f"{where}: expected key=value, got {line!r}")
        if key in ("datadir", "conf"):
            raise ConfigError(f"{where}: {key} can only be given on the command line")
        if key not in SETTINGS:
            raise ConfigError(f"{where}: unknown key {key!r}")
        if section is not None and key in NETWORK_KEYS:
            raise ConfigError(f"{where}: {key} selects the network and cannot appear in [{section}]")
        setting = SETTINGS[key]
        if key in target and not setting.multiple:
            raise ConfigError(f"{where}: {key} is already set on line {target[key][1]}")
        try:
            parsed = setting.parse(value)
        except ValueError as exc:
            raise ConfigError(f"{where}: bad value for {key}: {exc}") from None
        if setting.multiple:
            parsed = target.get(key, ((), lineno))[0] + (parsed,)
        target[key] = (parsed, lineno)
    return conf


def _select_network(regtest: bool, testnet: bool, source: str) -> str | None:
    if regtest and testnet:
        raise ConfigError(f"{source}: regtest and testnet cannot both be set")
    if regtest:
        return "regtest"
    if testnet:
        return "testnet"
    return None


def load_config(
    command_line: Mapping[str, Any], datadir: Path | None = None, conf: Path | None = None
) -> NodeConfig:
    """Merge defaults < camelid.conf (top level < network section) < `command_line`.

    `command_line` maps setting keys (as in SETTINGS) to already-parsed values and
    holds only the flags the user actually gave. `datadir` and `conf` are the
    command-line only paths; an explicit one that does not exist is an error,
    while the default data directory may be missing (camelidd creates it).
    """
    unknown = set(command_line) - set(SETTINGS)
    if unknown:
        raise ConfigError(f"unknown settings {sorted(unknown)}")
    if datadir is None:
        root = DEFAULT_DATADIR.expanduser()
    else:
        root = datadir.expanduser()
        if not root.is_dir():
            raise ConfigError(f"data directory {root} does not exist")
    conf_path = conf.expanduser() if conf is not None else root / CONF_FILENAME
    if conf is not None and not conf_path.is_file():
        raise ConfigError(f"configuration file {conf_path} does not exist")
    conf_file = read_conf_file(conf_path) if conf_path.is_file() else ConfFile(conf_path)

    network = _select_network(
        bool(command_line.get("regtest")), bool(command_line.get("testnet")), "command line"
    ) or _select_network(
        bool(conf_file.top.get("regtest", (False,))[0]), bool(conf_file.top.get("testnet", (False,))[0]), str(conf_path)
    ) or "mainnet"

    values = {key: setting.default for key, setting in SETTINGS.items() if key not in NETWORK_KEYS}
    for layer in (conf_file.top, conf_file.sections.get(network, {})):
        values.update({key: value for key, (value, _) in layer.items() if key not in NETWORK_KEYS})
    values.update({key: value for key, value in command_line.items() if key not in NETWORK_KEYS})

    if (values["rpcuser"] is None) != (values["rpcpassword"] is None):
        raise ConfigError("rpcuser and rpcpassword must be given together")
    if values["mine"] and values["mine-address"] is None:
        raise ConfigError("mine needs mine-address: the address the mined coins are paid to")
    if values["wallet"] is not None and values["disablewallet"]:
        raise ConfigError("wallet and disablewallet cannot both be set")
    for key in ("model-chunk-size", "corrupt-model-chunks", "misbehave"):
        if values[key] and network != "regtest":
            raise ConfigError(f"{key} is only allowed on regtest")
    if values["compute-slots"] > MAX_COMPUTE_SLOTS:
        raise ConfigError(f"compute-slots is at most {MAX_COMPUTE_SLOTS}")
    if values["model-chunk-size"] is not None and values["model-chunk-size"] > MAX_MODEL_CHUNK_SIZE:
        raise ConfigError(f"model-chunk-size is at most {MAX_MODEL_CHUNK_SIZE} bytes")
    if values["mine-address"] is not None:
        try:
            address_to_hash160(values["mine-address"], network)
        except ValueError as exc:
            raise ConfigError(f"mine-address {values['mine-address']!r} is not a {network} address: {exc}") from None

    return NodeConfig(
        network=network,
        datadir=root,
        conf_file=conf_path if conf_path.is_file() else None,
        **{key.replace("-", "_"): value for key, value in values.items()},
    )
