"""The signature checker the script interpreter consults while validating one transaction input.

It owns what the interpreter must not know: the sighash-type byte (only SIGHASH_ALL
exists), the signature hash of this input, and the transaction's lock-time fields
for OP_CHECKLOCKTIMEVERIFY.
"""

from __future__ import annotations

from camelid.core.consensus import LOCKTIME_THRESHOLD, SEQUENCE_FINAL
from camelid.core.serialize import compact_size, var_bytes
from camelid.core.transaction import SIGHASH_ALL, Transaction
from camelid.crypto.hashes import sha256d
from camelid.crypto.keys import PublicKey

_HASH_TYPE_BYTES = SIGHASH_ALL.to_bytes(4, "little")


class SighashCache:
    """Transaction.signature_hash for every input of one transaction, without reserializing it each time.

    The preimage differs between inputs only in which input carries the script code,
    so it is assembled from slices of the transaction's own serialization: the head
    (version, input count), each input's outpoint and sequence, and the tail
    (outputs, lock time, job id). Tests check the result equals signature_hash.
    """

    __slots__ = ("_head", "_tail", "_inputs")

    def __init__(self, tx: Transaction) -> None:
        raw = tx.to_bytes()
        position = 4 + len(compact_size(len(tx.inputs)))
        self._head = raw[:position]
        self._inputs: list[tuple[bytes, bytes]] = []  # (outpoint bytes, sequence bytes) per input
        for txin in tx.inputs:
            end = position + 36 + len(var_bytes(txin.script_sig)) + 4
            self._inputs.append((raw[position : position + 36], raw[end - 4 : end]))
            position = end
        self._tail = raw[position:]

    def digest(self, index: int, script_code: bytes, amount: int) -> bytes:
        if not 0 <= index < len(self._inputs):
            raise ValueError(f"input index {index} out of range for {len(self._inputs)} inputs")
        parts = [self._head]
        for position, (outpoint, sequence) in enumerate(self._inputs):
            script = var_bytes(script_code) if position == index else b"\x00"
            parts += (outpoint, script, sequence)
        parts += (self._tail, amount.to_bytes(8, "little", signed=True), _HASH_TYPE_BYTES)
        return sha256d(b"".join(parts))


class TransactionSignatureChecker:
    """Answers check_sig and check_locktime for input `input_index` spending an output worth `amount`."""

    __slots__ = ("tx", "input_index", "amount", "_sighashes")

    def __init__(
        self, tx: Transaction, input_index: int, amount: int, sighashes: SighashCache | None = None
    ) -> None:
        if not 0 <= input_index < len(tx.inputs):
            raise ValueError(f"input index {input_index} out of range for {len(tx.inputs)} inputs")
        self.tx = tx
        self.input_index = input_index
        self.amount = amount
        self._sighashes = sighashes if sighashes is not None else SighashCache(tx)

    def check_sig(self, sig: bytes, pubkey: bytes, script_code: bytes) -> bool:
        """True if `sig` is a DER signature plus the SIGHASH_ALL byte over this input's sighash."""
        if len(sig) < 2 or sig[-1] != SIGHASH_ALL:
            return False
        try:
            key = PublicKey.from_bytes(pubkey)
        except ValueError:
            return False
        return key.verify(sig[:-1], self._sighashes.digest(self.input_index, script_code, self.amount))

    def check_locktime(self, locktime: int) -> bool:
        """BIP65: same kind (height or time) as the transaction's lock time, not above it, and not disabled."""
        tx_locktime = self.tx.lock_time
        if (locktime < LOCKTIME_THRESHOLD) != (tx_locktime < LOCKTIME_THRESHOLD):
            return False
        if locktime > tx_locktime:
            return False
        # A final sequence would make the lock time itself ineffective (IsFinalTx ignores it).
        return self.tx.inputs[self.input_index].sequence != SEQUENCE_FINAL
