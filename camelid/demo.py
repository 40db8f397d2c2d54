"""`make demo`: a local regtest network doing one paid, verified completion end to end.

It starts a real camelidd on 127.0.0.1, mines coinbase coins to maturity, funds a client,
and runs one job through the parts of the protocol that exist today: the client commits to
the job parameters (Job ID), a compute provider generates with the default gemma-3-270m
model and signs an output commitment, the client pays the provider with a transaction that
carries the Job ID, the provider delivers the output encrypted to the client's key (ECIES),
and the client verifies it with RASTiC before the payment is mined. Escrow and stake
contracts arrive with the job protocol (docs/protocol.md); this demo pays directly.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from camelid.compute import default_model_path
from camelid.compute.engine import Engine
from camelid.compute.rastic import output_commitment, verify
from camelid.core.consensus import COIN
from camelid.core.job import JobParams
from camelid.core.script import p2pkh_script, p2pkh_script_sig
from camelid.core.serialize import hash_to_hex, hex_to_hash
from camelid.core.transaction import SIGHASH_ALL, Transaction, TxIn, TxOut
from camelid.crypto import ecies
from camelid.crypto.keys import PrivateKey
from camelid.rpc.auth import read_cookie
from camelid.rpc.client import JSONRPCError, RPCClient

NETWORK = "regtest"
PROMPT = "The three most useful things to know about llamas are"
MAX_TOKENS = 48
REWARD = 2 * COIN
FEE = 20_000


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _bar(label: str, done: int, total: int, width: int = 30) -> None:
    filled = width * done // max(total, 1)
    sys.stdout.write(f"\r  {label:<28} [{'#' * filled}{'.' * (width - filled)}] {done}/{total}")
    if done >= total:
        sys.stdout.write("\n")
    sys.stdout.flush()


@dataclass
class Party:
    name: str
    key: PrivateKey = field(default_factory=lambda: PrivateKey.generate(network=NETWORK))
    coins: list[tuple[bytes, int, int]] = field(default_factory=list)  # (txid, index, value)

    @property
    def address(self) -> str:
        return self.key.public_key.address(NETWORK)

    @property
    def script(self) -> bytes:
        return p2pkh_script(self.key.public_key.hash160())


class DemoNode:
    """One camelidd process in a throwaway datadir, stopped however the demo ends."""

    def __init__(self, root: Path) -> None:
        self.datadir = root / "node"
        self.datadir.mkdir()
        self.rpc_port = _free_port()
        self.process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "camelid.cli.camelidd",
                "--regtest",
                f"--datadir={self.datadir}",
                f"--rpcport={self.rpc_port}",
                f"--port={_free_port()}",
                "--quiet",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            start_new_session=True,
        )
        self.client = self._connect()

    def _connect(self, timeout: float = 60.0) -> RPCClient:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"camelidd exited: {self.process.stderr.read().decode(errors='replace')}")
            try:
                client = RPCClient("127.0.0.1", self.rpc_port, read_cookie(self.datadir / NETWORK))
                client.call("getblockcount")
                return client
            except (OSError, ValueError):
                time.sleep(0.2)
            except JSONRPCError as exc:
                if exc.code != -28:
                    raise
                time.sleep(0.2)
        raise RuntimeError(f"camelidd did not answer RPC within {timeout:.0f} s")

    def call(self, method: str, *args: object) -> object:
        return self.client.call(method, *args)

    def stop(self) -> None:
        if self.process.poll() is None:
            try:
                self.call("stop")
                self.process.wait(30)
            except Exception:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(10)


def _spend(owner: Party, coin: tuple[bytes, int, int], outputs: list[TxOut], job_id: bytes = bytes(32)) -> Transaction:
    """A one-input P2PKH spend of `coin`, signed by `owner` (SIGHASH_ALL, amount committed)."""
    txid, index, value = coin
    unsigned = Transaction(inputs=[TxIn(txid, index)], outputs=outputs, job_id=job_id)
    digest = unsigned.signature_hash(0, owner.script, value, SIGHASH_ALL)
    signature = owner.key.sign(digest) + bytes([SIGHASH_ALL])
    script_sig = p2pkh_script_sig(signature, owner.key.public_key.to_bytes())
    return Transaction(inputs=[TxIn(txid, index, script_sig)], outputs=outputs, job_id=job_id)


def _balance(node: DemoNode, party: Party) -> int:
    total = 0
    for txid, index, _value in party.coins:
        out = node.call("gettxout", hash_to_hex(txid), index)
        if out:
            total += round(out["value"] * COIN)
    return total


def _mine(node: DemoNode, n: int, address: str, label: str) -> None:
    done = 0
    while done < n:
        step = min(10, n - done)
        node.call("generatetoaddress", step, address)
        done += step
        _bar(label, done, n)


def run() -> None:
    history: list[tuple[float, str]] = []
    started = time.time()

    def state(name: str) -> None:
        history.append((time.time() - started, name))

    miner, client, provider = Party("miner"), Party("client"), Party("provider")
    root = Path(tempfile.mkdtemp(prefix="camelid-demo-"))
    node = None
    try:
        print("== CamelidCoin demo: one paid, verified completion on a local regtest network ==")
        print("\n[1/6] Starting camelidd (regtest, 127.0.0.1)")
        node = DemoNode(root)
        print(f"  node up, RPC on 127.0.0.1:{node.rpc_port}, height {node.call('getblockcount')}")

        print("\n[2/6] Mining 101 blocks so the first coinbase matures")
        _mine(node, 101, miner.address, "mining to maturity")
        block1 = node.call("getblock", node.call("getblockhash", 1), 2)
        cb = block1["tx"][0]
        miner.coins.append((hex_to_hash(cb["txid"]), 0, round(cb["vout"][0]["value"] * COIN)))

        print("\n[3/6] Funding the client")
        funding = 10 * COIN
        change = miner.coins[0][2] - funding - FEE
        fund_tx = _spend(miner, miner.coins[0], [TxOut(funding, client.script), TxOut(change, miner.script)])
        node.call("sendrawtransaction", fund_tx.to_bytes().hex())
        _mine(node, 1, miner.address, "confirming the funding")
        client.coins.append((fund_tx.hash, 0, funding))
        before = {p.name: _balance(node, p) for p in (client, provider)}
        print(f"  client {before['client'] / COIN:.8f}, provider {before['provider'] / COIN:.8f}")

        print("\n[4/6] Loading the default model (gemma-3-270m Q4_K_M)")
        engine = Engine(default_model_path())
        model_id = engine.model_id
        print(f"  model id (Merkle root of {len(engine.manifest.chunk_hashes)} chunks): {engine.manifest.id_hex}")

        job = JobParams(
            model_id=model_id,
            prompt=PROMPT,
            max_tokens=MAX_TOKENS,
            seed=42,
            temperature_milli=0,
            timestamp=int(time.time()),
            timelock=600,
            client_pubkey=client.key.public_key.to_bytes(),
            client_host="127.0.0.1",
            client_port=node.rpc_port,
        )
        job_id = job.job_id()
        state("created")
        print(f"\n[5/6] Job {job_id[::-1].hex()}\n  prompt: {PROMPT!r}")
        prompt_tokens = engine.tokenize(job.prompt)
        state("accepted")
        t0 = time.perf_counter()
        output_tokens = engine.generate(prompt_tokens, job.max_tokens, job.seed, job.temperature)
        gen_s = time.perf_counter() - t0
        commitment = output_commitment(
            model_id, prompt_tokens, output_tokens, job.max_tokens, job.seed, job.temperature
        )
        signed_commitment = provider.key.sign(commitment)
        state("completed")
        print(f"  provider generated {len(output_tokens)} tokens in {gen_s:.2f} s and signed the commitment")

        assert provider.key.public_key.verify(signed_commitment, commitment), "commitment signature"
        pay_change = funding - REWARD - FEE
        payment = _spend(
            client, client.coins[0], [TxOut(REWARD, provider.script), TxOut(pay_change, client.script)], job_id=job_id
        )
        node.call("sendrawtransaction", payment.to_bytes().hex())
        state("paid")
        seen = node.call("getrawtransaction", payment.txid(), True)
        print(f"  client paid {REWARD / COIN:.8f} to the provider, tx {payment.txid()} (jobid {seen['jobid']})")

        sealed = ecies.encrypt(
            client.key.public_key, b"".join(t.to_bytes(4, "little") for t in output_tokens), aad=job_id
        )
        state("delivered")
        opened = ecies.decrypt(client.key, sealed, aad=job_id)
        delivered = [int.from_bytes(opened[i : i + 4], "little") for i in range(0, len(opened), 4)]
        t0 = time.perf_counter()
        verifier = Engine(engine.path, n_threads=1, n_batch=64)  # different threads/batch than generation
        verdict = verify(verifier, prompt_tokens, delivered, job.max_tokens, job.seed, job.temperature, mode="full")
        ver_s = time.perf_counter() - t0
        state("verified" if verdict.ok else "disputed")
        print(
            f"  output delivered encrypted ({len(sealed)} bytes), RASTiC full verification: "
            f"{'PASS' if verdict.ok else 'FAIL'} over {len(verdict.checked)} positions in {ver_s:.2f} s"
        )

        _mine(node, 1, miner.address, "mining the payment")
        state("settled")
        client.coins = [(payment.hash, 1, pay_change)]
        provider.coins = [(payment.hash, 0, REWARD)]
        after = {p.name: _balance(node, p) for p in (client, provider)}

        print("\n[6/6] Result")
        print(f"  completion: {engine.detokenize(delivered)!r}")
        print("  job state history:")
        for at, name in history:
            print(f"    +{at:7.2f} s  {name}")
        print(f"  RASTiC verdict: ok={verdict.ok}, checked={len(verdict.checked)}, failures={len(verdict.failures)}")
        for name in ("client", "provider"):
            delta = (after[name] - before[name]) / COIN
            print(f"  {name:<8} balance {before[name] / COIN:.8f} -> {after[name] / COIN:.8f} ({delta:+.8f})")
        if not verdict.ok or after["provider"] - before["provider"] != REWARD:
            raise SystemExit("demo failed: the job did not verify or the payment did not settle")
        print("\nDemo finished: the node is stopped and its datadir removed.")
    finally:
        if node is not None:
            node.stop()
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    run()
