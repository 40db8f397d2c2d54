"""Soak (issue 15): one camelidd under a hostile swarm for minutes, while honest peers go on working through it.

The node under test ("target") sits between three honest camelidd processes: a miner, a client and a compute
node (both holding the tiny test model) connect only to it, so every block they sync, transaction they relay
and paid job they run crosses the target. First an idle run times honest jobs (submitjob to the client's
"verified", from the client's own job history). Then, for --seconds, --attackers threads each open raw
connections from fresh loopback addresses (one address per connection: discouragement is per IP) and cycle
through every attack of issue 15: getdata amplification, junk and oversized frames, directed floods to unknown
recipients, job spam (jobs without an escrow), invalid transactions, refuted fraud proofs (the target holds the
model, so each costs it a model check), unsolicited headers, non-routable addr, bad manifests and RPC abuse
(unauthenticated, oversized, cross-origin, many at once). Meanwhile the miner mines and pays the compute node
now and then, and the client runs paid jobs one after another.

It prints the target's RSS over time (and plots it, --plot) with, every minute, the bounded tables that grew
(getresourceinfo), the growth of every table over the whole run, honest job latency under attack against idle,
and the blocks the honest nodes synced, and checks:
  * peak RSS <= baseline + 200 MiB (baseline: after the idle run);
  * no node crashed;
  * median honest job latency <= 2x the idle median;
  * no honest peer was ever discouraged or banned (they all connect from 127.0.0.1);
exiting 1 if any check fails.

    .venv/bin/python -m bench.soak_bench [--seconds 600] [--attackers 6] [--plot docs/img/soak_rss.png]
"""

from __future__ import annotations

import argparse
import http.client
import itertools
import os
import re
import socket
import statistics
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path

from camelid.core.params import REGTEST
from camelid.core.transaction import Transaction, TxIn, TxOut
from camelid.crypto.keys import PrivateKey
from camelid.p2p.messages import (
    MAX_HOPS,
    MESSAGE_ID_SIZE,
    Addr,
    Directed,
    GetData,
    Headers,
    InvItem,
    InvType,
    ManifestMessage,
    NetAddress,
    TxMessage,
)
from camelid.regtest_network import START_TIMEOUT, RegtestNetwork, RegtestNode, poll_until
from tests.functional.hostile import fraud_proofs, unfunded_job
from tests.functional.p2p_raw import RawPeer, header_branch, raw_frame
from tests.tiny_model import write_tiny_model

RSS_HEADROOM = 200 * 2**20
"""Bytes the target's RSS may grow above its idle baseline under attack."""
LATENCY_FACTOR = 2.0
"""How much slower an honest job may be under attack than idle (medians)."""
IDLE_JOBS = 5
REWARD = 0.01
MAX_TOKENS = 8
TIMELOCK = 120
JOB_TIMEOUT = 120.0
BLOCK_EVERY = 5.0
"""Seconds between the miner's payment-and-block rounds during the soak."""
SAMPLE_EVERY = 1.0
RESOURCES_EVERY = 60.0
"""Seconds between the target's getresourceinfo readings printed beside its RSS."""
ATTACK_PAUSE = 0.05
"""Seconds an attacker waits between connections: a swarm, not a busy loop that starves the honest nodes' CPU."""


def rss(pid: int) -> int:
    """Resident set size of process `pid` in bytes (Linux /proc)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError(f"no VmRSS for {pid}")


def until(nodes: list[RegtestNode], check: Callable[[], object], timeout: float, what: str) -> None:
    """poll_until, failing loudly: RuntimeError naming `what` after `timeout` s (NodeFailed if a node died)."""
    if not poll_until(check, nodes, timeout):
        raise RuntimeError(f"timed out after {timeout:.0f} s waiting for {what}")


class Rpc:
    """A RegtestNode's RPC as methods (node.getblockcount()), as the test helpers call a node."""

    def __init__(self, node: RegtestNode) -> None:
        self._node = node

    def __getattr__(self, method: str) -> Callable[..., object]:
        return lambda *args: self._node.call(method, *args)


def random_id() -> bytes:
    return PrivateKey.generate(network="regtest").public_key.to_bytes()


# -- the attacks: each takes a fresh, handshaken raw peer and the target --------------------------------


def getdata_amplification(peer: RawPeer, target: RegtestNode) -> None:
    tip = bytes.fromhex(target.call("getbestblockhash"))[::-1]
    peer.send(GetData((InvItem(InvType.BLOCK, tip),) * 5_000))


def junk_frames(peer: RawPeer, target: RegtestNode) -> None:
    peer.send_bytes(raw_frame(b"block", b"", length=32 * 2**20))  # promises 32 MiB
    peer.send_bytes(os.urandom(4096))


def directed_flood(peer: RawPeer, target: RegtestNode) -> None:
    assert peer.node_id is not None
    payload = os.urandom(64 * 1024)
    for _ in range(30):
        peer.send(Directed(peer.node_id, random_id(), MAX_HOPS, os.urandom(MESSAGE_ID_SIZE), "jobpayment", payload))


def job_spam(peer: RawPeer, target: RegtestNode) -> None:
    assert peer.node_id is not None
    for _ in range(50):
        peer.send(unfunded_job(peer.node_id))


def invalid_transactions(peer: RawPeer, target: RegtestNode) -> None:
    """A transaction no consensus allows (one input spent twice): discouraged at once."""
    txin = TxIn(os.urandom(32), 0)
    peer.send(TxMessage(Transaction(inputs=(txin, txin), outputs=(TxOut(1000, b"\x51"),)).to_bytes()))


REFUTED: list[Transaction] = []
"""Fraud proofs against the target's own stakes of honest outputs (start_network makes them)."""


def refuted_proofs(peer: RawPeer, target: RegtestNode) -> None:
    """Fraud proofs the model refutes: a model check each, the first time; the sender is discouraged."""
    for proof in REFUTED[:: max(1, len(REFUTED) // 3)]:
        peer.send(TxMessage(proof.to_bytes()))


def unsolicited_headers(peer: RawPeer, target: RegtestNode) -> None:
    tag = int.from_bytes(os.urandom(4), "little")
    peer.send(Headers(tuple(h.to_bytes() for h in header_branch(REGTEST.genesis.header, 200, tag))))


def non_routable_addr(peer: RawPeer, target: RegtestNode) -> None:
    now = int(time.time())
    ips = [f"10.{i}.{i}.1" for i in range(200)] + [f"192.168.{i}.7" for i in range(200)]
    peer.send(Addr(tuple(NetAddress(ip, 9733, 1, now) for ip in ips)))


def bad_manifest(peer: RawPeer, target: RegtestNode) -> None:
    hashes = (os.urandom(32),) * 4
    peer.send(ManifestMessage(os.urandom(32), 4 * 32 * 1024, 32 * 1024, hashes, "liar", os.urandom(32)))


P2P_ATTACKS: list[Callable[[RawPeer, RegtestNode], None]] = [
    getdata_amplification, junk_frames, directed_flood, job_spam, invalid_transactions, refuted_proofs,
    unsolicited_headers, non_routable_addr, bad_manifest,
]


def rpc_abuse(target: RegtestNode) -> None:
    """Unauthenticated calls, a cross-origin form post, a body far above the limit, and connections held open."""
    held = [socket.create_connection(("127.0.0.1", target.rpc_port), timeout=5) for _ in range(16)]
    try:
        for headers, body in (
            ({"Content-Type": "application/json"}, b'{"method":"getblockcount"}'),
            ({"Content-Type": "text/plain", "Origin": "http://evil.example"}, b'{"method":"stop"}'),
            ({"Content-Type": "application/json", "Content-Length": str(512 * 2**20)}, os.urandom(65536)),
        ):
            connection = http.client.HTTPConnection("127.0.0.1", target.rpc_port, timeout=5)
            try:
                connection.request("POST", "/", body=body, headers=headers)
                connection.getresponse().read()
            except OSError:
                pass  # the node may cut an abusive request short
            finally:
                connection.close()
    finally:
        for sock in held:
            sock.close()


class Swarm:
    """Attacker threads, each connecting from a fresh loopback address per attack, until `stop`."""

    def __init__(self, target: RegtestNode, attackers: int) -> None:
        self.target = target
        self.stop = threading.Event()
        self.attacks = 0
        self.errors: list[str] = []
        self._sources = (f"127.{a}.{b}.{c}" for a in range(2, 255) for b in range(256) for c in range(1, 255))
        self._lock = threading.Lock()
        self._threads = [threading.Thread(target=self._run, args=(i,), daemon=True) for i in range(attackers)]

    def start(self) -> None:
        for thread in self._threads:
            thread.start()

    def join(self) -> None:
        self.stop.set()
        for thread in self._threads:
            thread.join(timeout=30)

    def _run(self, index: int) -> None:
        kinds = itertools.cycle([*P2P_ATTACKS, None])  # None: RPC abuse
        for _ in range(index):
            next(kinds)  # the threads start at different attacks
        while not self.stop.is_set():
            attack = next(kinds)
            try:
                if attack is None:
                    rpc_abuse(self.target)
                else:
                    with self._lock:
                        source = next(self._sources)
                    peer = RawPeer.connect(self.target.p2p_port, source)
                    try:
                        peer.handshake()
                        attack(peer, self.target)
                        peer.closed_by_node(timeout=0.5)
                    finally:
                        peer.close()
            except (OSError, EOFError):
                pass  # the target dropped us mid-attack: that is the point
            except Exception as exc:  # a bug in the bench, not the node: reported, not hidden
                self.errors.append(f"{getattr(attack, '__name__', 'rpc_abuse')}: {exc!r}")
            with self._lock:
                self.attacks += 1
            self.stop.wait(ATTACK_PAUSE)


# -- honest work -----------------------------------------------------------------------------------------


def start_network(network: RegtestNetwork) -> tuple[RegtestNode, RegtestNode, RegtestNode, RegtestNode, str]:
    """(target, miner, client, compute node, the miner's address): the honest three connect only to the target,
    the client and the compute node holding the tiny model, each funded."""
    model = write_tiny_model(network.root / "tiny.gguf")
    target = network.add("target", [f"--serve-model={model}", "--nocompute"])  # it can check fraud proofs
    until([target], target.ready, START_TIMEOUT, "the target to answer RPC")
    REFUTED[:] = fraud_proofs(Rpc(target), model, lambda honest, i: honest, 12)
    connect = f"--connect={target.address}"
    miner = network.add("miner", [connect])
    client = network.add("client", [connect, f"--serve-model={model}", "--nocompute"])
    compute = network.add("compute", [connect, f"--serve-model={model}"])
    nodes = [target, miner, client, compute]
    until(nodes, lambda: all(n.ready() for n in nodes), START_TIMEOUT, "the nodes to answer RPC")
    until(nodes, lambda: target.call("getconnectioncount") == 3, 60, "the honest nodes to connect")
    for node in nodes[1:]:
        node.call("createwallet", "default")
    mine_to = miner.call("getnewaddress")
    miner.call("generatetoaddress", 101, mine_to)
    for node in (client, compute):
        miner.call("sendtoaddress", node.call("getnewaddress"), 10)
    miner.call("generatetoaddress", 1, mine_to)
    until(nodes, lambda: all(n.call("getbalance") == 10 for n in (client, compute)), 60, "the funding")
    return target, miner, client, compute, mine_to


def run_job(network: RegtestNetwork, client: RegtestNode) -> float:
    """Submit one paid job and wait for the client's verdict; its latency (created -> verified, node's clock)."""
    job = client.call("submitjob", "The llama", MAX_TOKENS, None, 0, 0, REWARD, TIMELOCK)
    ended = {"verified", "settled", "disputed", "slashed", "expired"}  # settled can follow verified between two looks
    finished = lambda: client.call("getjob", job)["state"] in ended  # noqa: E731
    until(network.nodes, finished, JOB_TIMEOUT, f"job {job[:16]} to be verified")
    history = {entry["state"]: entry["time"] for entry in client.call("getjob", job)["history"]}
    if "verified" not in history:
        raise RuntimeError(f"honest job {job} ended {client.call('getjob', job)['state']}, not verified")
    return float(history["verified"] - history["created"])


class Mining(threading.Thread):
    """The miner pays the compute node and mines a block every BLOCK_EVERY seconds, until `stop`."""

    def __init__(self, miner: RegtestNode, compute: RegtestNode, mine_to: str) -> None:
        super().__init__(daemon=True)
        self.miner, self.compute, self.mine_to = miner, compute, mine_to
        self.stop = threading.Event()
        self.blocks = 0
        self.error: str | None = None

    def run(self) -> None:
        address = self.compute.call("getnewaddress")
        while not self.stop.wait(BLOCK_EVERY):
            try:
                self.miner.call("sendtoaddress", address, 0.1)
                self.miner.call("generatetoaddress", 1, self.mine_to)
                self.blocks += 1
            except Exception as exc:
                self.error = repr(exc)
                return


def violations(target: RegtestNode) -> Counter[str]:
    """How often the target cut a peer off, by the reason's tag (its debug.log): the attacks did land."""
    found = re.findall(r"protocol violation \(([a-z-]+(?:: [a-z-]+)?)", target.debug_log.read_text(errors="replace"))
    return Counter(found)


def honest_discouraged(target: RegtestNode) -> bool:
    log = target.debug_log.read_text(errors="replace")
    banned = {entry["address"].split("/")[0] for entry in target.call("listbanned")}
    return "127.0.0.1 discouraged" in log or "127.0.0.1" in banned


Tables = dict[str, dict[str, int]]
"""getresourceinfo flattened: "group.table" -> its fill."""


def resources(target: RegtestNode) -> Tables:
    info = target.call("getresourceinfo")
    return {f"{group}.{name}": fill for group, tables in info.items() for name, fill in tables.items()}


def grown(before: Tables, after: Tables) -> list[str]:
    """The tables whose size or bytes grew from `before` to `after`, most grown (as a share of the limit) first."""

    def share(name: str) -> float:
        fill, old = after[name], before.get(name, {})
        if fill.get("limit"):
            return (fill["size"] - old.get("size", 0)) / fill["limit"]
        return (fill.get("bytes", 0) - old.get("bytes", 0)) / max(1, fill.get("byte_limit", 1))

    lines = []
    for name in sorted(after, key=share, reverse=True):
        fill, old = after[name], before.get(name, {})
        if fill["size"] <= old.get("size", 0) and fill.get("bytes", 0) <= old.get("bytes", 0):
            continue
        text = f"{name} {old.get('size', 0)} -> {fill['size']}"
        if "limit" in fill:
            text += f" of {fill['limit']}"
        if "bytes" in fill:
            text += f" ({old.get('bytes', 0)} -> {fill['bytes']} bytes of {fill['byte_limit']})"
        lines.append(text)
    return lines


def plot(samples: list[tuple[float, int]], baseline: int, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(figsize=(8, 4))
    axes.plot([t for t, _ in samples], [r / 2**20 for _, r in samples], label="target RSS")
    axes.axhline(baseline / 2**20, linestyle=":", color="grey", label="idle baseline")
    axes.axhline((baseline + RSS_HEADROOM) / 2**20, linestyle="--", color="red", label="baseline + 200 MiB")
    axes.set_xlabel("seconds under attack")
    axes.set_ylabel("MiB")
    axes.set_title("camelidd under a hostile swarm (bench/soak_bench.py)")
    axes.legend(loc="center right")
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=100)


def soak(seconds: float, attackers: int, plot_path: Path | None) -> bool:
    """Run the soak; True if every check passed."""
    with RegtestNetwork(prefix="camelid-soak-") as network:
        target, miner, client, compute, mine_to = start_network(network)
        pid = target.process.pid
        idle = [run_job(network, client) for _ in range(IDLE_JOBS)]
        baseline = rss(pid)
        tables_before = resources(target)
        start_height = client.call("getblockcount")
        print(f"idle: {IDLE_JOBS} jobs, median latency {statistics.median(idle):.2f} s; target RSS "
              f"{baseline / 2**20:.1f} MiB")

        swarm, mining = Swarm(target, attackers), Mining(miner, compute, mine_to)
        samples: list[tuple[float, int]] = []
        latencies: list[float] = []
        started = time.monotonic()
        swarm.start()
        mining.start()
        last_print = last_tables = 0.0
        try:
            while (elapsed := time.monotonic() - started) < seconds:
                network.check()
                samples.append((elapsed, rss(pid)))
                if elapsed - last_print >= max(10.0, seconds / 20):
                    last_print = elapsed
                    print(f"  t={elapsed:6.0f} s  RSS {samples[-1][1] / 2**20:7.1f} MiB  attacks {swarm.attacks:6d}  "
                          f"honest jobs {len(latencies)}  blocks {mining.blocks}", flush=True)
                if elapsed - last_tables >= RESOURCES_EVERY:
                    last_tables = elapsed
                    now_grown = grown(tables_before, resources(target))
                    print(f"  t={elapsed:6.0f} s  RSS {samples[-1][1] / 2**20:7.1f} MiB  tables grown since idle: "
                          + ("; ".join(now_grown) or "none"), flush=True)
                latencies.append(run_job(network, client))
                time.sleep(SAMPLE_EVERY)
        finally:
            swarm.join()
            mining.stop.set()
            mining.join(timeout=30)
        samples.append((time.monotonic() - started, rss(pid)))
        height = miner.call("getblockcount")
        nodes = [target, miner, client, compute]
        until(nodes, lambda: all(n.call("getblockcount") == height for n in nodes), 60, "the nodes to sync")
        network.check()
        peak = max(r for _, r in samples)
        tables_after = resources(target)
        discouraged = honest_discouraged(target)
        cut_off = violations(target)
        connected = target.call("getpeerinfo")
        honest_left = sum(1 for p in connected if p["addr"].startswith("127.0.0.1:"))

    if plot_path is not None:
        plot(samples, baseline, plot_path)
        print(f"plot written to {plot_path}")
    idle_median, soak_median = statistics.median(idle), statistics.median(latencies)
    print(f"\n{seconds:.0f} s under {attackers} attackers: {swarm.attacks} attack connections; "
          f"{len(latencies)} honest jobs; {height - start_height} blocks synced by the client and compute node")
    print("peers cut off, by reason: " + ", ".join(f"{reason} {n}" for reason, n in cut_off.most_common()))
    shown = samples[:: max(1, len(samples) // 12)]
    print("RSS over time (MiB): " + ", ".join(f"{t:.0f}s {r / 2**20:.0f}" for t, r in shown))
    print(f"target's tables that grew (getresourceinfo, idle -> end; RSS {baseline / 2**20:.1f} -> "
          f"{samples[-1][1] / 2**20:.1f} MiB):")
    for line in grown(tables_before, tables_after) or ["none"]:
        print(f"  {line}")
    mib = 2**20
    checks = {
        f"peak RSS {peak / mib:.1f} MiB <= baseline {baseline / mib:.1f} + 200 MiB": peak <= baseline + RSS_HEADROOM,
        "no node crashed": True,  # network.check() above raised NodeFailed otherwise
        f"honest job latency {soak_median:.2f} s <= 2 x idle {idle_median:.2f} s": soak_median
        <= LATENCY_FACTOR * idle_median,
        "no honest peer discouraged or banned": not discouraged,
        f"the honest peers still connected ({honest_left}/3)": honest_left == 3,
        "the honest miner kept mining": mining.error is None and mining.blocks > 0,
        "the swarm ran without bench errors": not swarm.errors,
    }
    for text, ok in checks.items():
        print(f"  [{'ok' if ok else 'FAIL'}] {text}")
    for error in swarm.errors[:5]:
        print(f"  bench error: {error}")
    return all(checks.values())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=600, help="how long the swarm attacks (default 600)")
    parser.add_argument("--attackers", type=int, default=6, help="attacker threads (default 6)")
    parser.add_argument("--plot", type=Path, default=Path("docs/img/soak_rss.png"), help="where to plot RSS")
    args = parser.parse_args(argv)
    if args.seconds <= 0 or args.attackers < 1:
        raise SystemExit("--seconds and --attackers must be positive")
    print(f"{os.cpu_count()} cores; load average {os.getloadavg()[0]:.2f} at the start")
    return 0 if soak(args.seconds, args.attackers, args.plot) else 1


if __name__ == "__main__":
    sys.exit(main())
