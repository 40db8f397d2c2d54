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
from dataclasses import dataclass, field, replace
from decimal import Decimal, InvalidOperation
from enum import StrEnum
from pathlib import Path
from typing import Any

from camelid.compute.engine import MAX_SLOTS as MAX_COMPUTE_SLOTS
from camelid.compute.model_store import parse_model_id
from camelid.core.consensus import COIN, MAX_BLOCK_SIZE
from camelid.core.params import ChainParams, get_params
from camelid.crypto.address import address_to_hash160
from camelid.p2p.messages.models import MAX_CHUNK_SIZE as MAX_MODEL_CHUNK_SIZE
from camelid.p2p.peer_address import parse_peer_address

DEFAULT_DATADIR = Path("~/.camelid")
CONF_FILENAME = "camelid.conf"
NETWORK_SUBDIRS = {"mainnet": "", "testnet": "testnet", "regtest": "regtest"}
DEFAULT_MEMPOOL_BYTES = 300_000_000
DEFAULT_WORK_QUEUE = 64  # RPC requests served at once; an OpenAI request holds its slot until its job is verified
MAX_REQUEST_BYTES = 2 * MAX_BLOCK_SIZE + (1 << 20)  # a hex-encoded maximum block plus JSON framing


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
    return _parse_int(text, 1, "a positive integer")


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


def parse_path(text: str) -> Path:
    if not text.strip():
        raise ValueError("expected a file path")
    return Path(text.strip()).expanduser()


def parse_text(text: str) -> str:
    if not text:
        raise ValueError("value is empty")
    return text


def parse_count(text: str) -> int:
    return _parse_int(text, 0, "a whole number (0 or more)")


def _parse_int(text: str, minimum: int, what: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise ValueError(f"expected {what}, got {text!r}") from None
    if value < minimum:
        raise ValueError(f"expected {what}, got {value}")
    return value


def parse_coins(text: str) -> int:
    """An amount in coins ("1.5") as base units."""
    try:
        coins = Decimal(text.strip())
    except InvalidOperation:
        raise ValueError(f"expected an amount in coins, got {text!r}") from None
    units = coins * COIN
    if not coins.is_finite() or units < 0 or units != units.to_integral_value():
        raise ValueError(f"expected a non-negative amount with at most 8 decimals, got {text!r}")
    return int(units)


@dataclass(frozen=True)
class ComputePolicy:
    """What a compute node accepts, so that no client can make it lock more, or longer, than its operator allows.

    A job outside the policy is declined (logged with its reason) before the node computes or stakes.
    Confirmations protect against a client that spends the escrow twice: an escrow or a payment that
    is not yet in a block can still be replaced by one the client's own miner mines (regtest: 0).
    """

    max_timelock: int = 3600
    """Longest delivery deadline D - t0 (seconds): the stake stays locked until D plus the dispute window."""
    max_job_age: int = 120
    """A job whose t0 is further behind our clock is declined: a backdated t0 shortens the dispute window."""
    max_clock_ahead: int = 60
    """A job whose t0 is further ahead of our clock is declined: it would lock the stake for longer."""
    max_stake: int = COIN
    """Most base units staked on one job."""
    max_total_stake: int = 10 * COIN
    """Most base units staked on all open jobs together."""
    escrow_confirmations: int = 1
    """Blocks the escrow must be in before the node computes."""
    payment_confirmations: int = 1
    """Blocks the payment must be in before the node delivers (or until the client's claim would open)."""
    min_price: int = 0
    """Base units per 1,000 output tokens below which a job is declined (0: any reward). A job is judged by
    its reward against its max_tokens, the most it can ask us to compute."""
    model_prices: tuple[tuple[bytes, int], ...] = ()
    """(model id, base units per 1,000 output tokens) that replace min_price for those models."""

    def price_for(self, model_id: bytes) -> int:
        """Our price for `model_id`, base units per 1,000 output tokens."""
        return dict(self.model_prices).get(model_id, self.min_price)

    def price_problem(self, model_id: bytes, max_tokens: int, reward: int) -> str | None:
        """Why a job paying `reward` for up to `max_tokens` tokens pays too little (None if it pays enough)."""
        price = self.price_for(model_id)
        if reward * 1000 >= price * max_tokens:
            return None
        return f"its reward {reward} for {max_tokens} tokens is below our price of {price} per 1,000 tokens"

    def to_json(self) -> dict[str, Any]:
        """For getcomputeinfo: seconds, base units (prices: per 1,000 output tokens) and counts."""
        info = {name: getattr(self, name) for name in self.__dataclass_fields__}
        info["model_prices"] = {model_id.hex(): price for model_id, price in self.model_prices}
        return info


REGTEST_COMPUTE_POLICY = ComputePolicy(escrow_confirmations=0, payment_confirmations=0)
"""Regtest jobs finish without blocks being mined; the hostile-client tests ask for confirmations."""


class Misbehaviour(StrEnum):
    """What a regtest node does wrong on purpose (--misbehave), so the disputes of Table 1 can be tested."""

    TAMPER_OUTPUT = "tamper-output"  # compute: commit to and deliver an output with one token swapped
    NEVER_PAY = "never-pay"  # client: answer no testament


def parse_min_price(text: str) -> tuple[bytes | None, int]:
    """--min-price: "PRICE" (every model) or "MODEL_ID:PRICE", in coins per 1,000 output tokens."""
    model_text, _, price_text = text.strip().rpartition(":")
    model_id = None
    if model_text:
        try:
            model_id = parse_model_id(model_text)
        except ValueError as exc:
            raise ValueError(f"expected PRICE or MODEL_ID:PRICE, got {text!r}: {exc}") from None
    return model_id, parse_coins(price_text)


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
    "rpcworkqueue": Setting(
        parse_positive_int, DEFAULT_WORK_QUEUE, "Most requests the RPC port serves at once; more get HTTP 503."
    ),
    "rpcmaxbody": Setting(parse_positive_int, MAX_REQUEST_BYTES, "Largest request body the RPC port takes, in bytes."),
    "rpcallowhost": Setting(
        parse_text, (), "A DNS name the status page answers to, besides IPs and localhost (repeatable).", multiple=True
    ),
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
    "seedfile": Setting(parse_path, None, "Read seed addresses from this JSON file, not the packaged seeds.json."),
    "maxconnections": Setting(parse_positive_int, 125, "Most P2P connections, inbound and outbound."),
    "par": Setting(parse_positive_int, None, "Block signature-check threads, chain thread included (default: CPUs)."),
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
    "compute-max-timelock": Setting(
        parse_positive_int, None, f"Longest delivery deadline (seconds after t0) of a job we take (default: "
        f"{ComputePolicy.max_timelock})."
    ),
    "compute-max-job-age": Setting(
        parse_count, None, f"Seconds a job's t0 may be behind our clock (default: {ComputePolicy.max_job_age})."
    ),
    "compute-max-clock-ahead": Setting(
        parse_count, None, f"Seconds a job's t0 may be ahead of our clock (default: {ComputePolicy.max_clock_ahead})."
    ),
    "min-price": Setting(
        parse_min_price,
        (),
        "Coins per 1,000 output tokens below which a job is declined; MODEL_ID:PRICE for one model (repeatable).",
        multiple=True,
    ),
    "compute-max-stake": Setting(parse_coins, None, "Most coins staked on one job (default: 1)."),
    "compute-max-total-stake": Setting(parse_coins, None, "Most coins staked on all open jobs (default: 10)."),
    "compute-escrow-confirmations": Setting(
        parse_count, None, "Blocks a job's escrow must be in before we compute (default: 1; regtest 0)."
    ),
    "compute-payment-confirmations": Setting(
        parse_count, None, "Blocks a payment must be in before we deliver (default: 1; regtest 0)."
    ),
    "verifiers": Setting(
        parse_positive_int, 2, "Verifiers that must each pass a delivery of a model this node does not hold, "
        "before it counts as verified (any failure fails it; default: 2)."
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
    rpcworkqueue: int = DEFAULT_WORK_QUEUE
    rpcmaxbody: int = MAX_REQUEST_BYTES
    rpcallowhost: tuple[str, ...] = ()
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
    seedfile: Path | None = None  # None: the packaged camelid/p2p/seeds.json
    maxconnections: int = 125
    par: int | None = None  # script-check threads, the chain thread included; None: one per CPU core
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
    compute_max_timelock: int | None = None  # None: the network's ComputePolicy default (compute_policy)
    compute_max_job_age: int | None = None
    compute_max_clock_ahead: int | None = None
    compute_max_stake: int | None = None
    min_price: tuple[tuple[bytes | None, int], ...] = ()  # (model id or None for every model, base units)
    compute_max_total_stake: int | None = None
    compute_escrow_confirmations: int | None = None
    compute_payment_confirmations: int | None = None
    verifiers: int = 2  # independent verifiers that must pass a delivery we cannot check ourselves
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

    @property
    def compute_policy(self) -> ComputePolicy:
        """The --compute-* settings over the network's defaults."""
        base = REGTEST_COMPUTE_POLICY if self.network == "regtest" else ComputePolicy()
        given = {
            "max_timelock": self.compute_max_timelock,
            "max_job_age": self.compute_max_job_age,
            "max_clock_ahead": self.compute_max_clock_ahead,
            "max_stake": self.compute_max_stake,
            "max_total_stake": self.compute_max_total_stake,
            "escrow_confirmations": self.compute_escrow_confirmations,
            "payment_confirmations": self.compute_payment_confirmations,
        }
        policy = replace(base, **{name: value for name, value in given.items() if value is not None})
        every = [price for model_id, price in self.min_price if model_id is None]
        per_model = tuple((model_id, price) for model_id, price in self.min_price if model_id is not None)
        return replace(policy, min_price=every[-1] if every else policy.min_price, model_prices=per_model)


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
