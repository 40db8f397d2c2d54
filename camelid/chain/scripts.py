"""Input script verification: the interpreter, with a shortcut for the standard P2PKH spend.

Nearly every input is `<sig> <pubkey>` against `DUP HASH160 <h> EQUALVERIFY CHECKSIG`.
For exactly that shape (two minimal data pushes within the element size limit) the
interpreter can only succeed by hash160(pubkey) == h and a valid signature, so the
shortcut checks those two things directly. Anything else, and every failure, goes
through the full interpreter, which also supplies the precise failure reason.
"""

from __future__ import annotations

from camelid.core.interpreter import SignatureChecker, verify_script
from camelid.core.script import MAX_SCRIPT_ELEMENT_SIZE, ScriptError, is_minimal_push, match_p2pkh, parse_script
from camelid.crypto.hashes import hash160


def verify_input_script(script_sig: bytes, script_pubkey: bytes, checker: SignatureChecker) -> None:
    """Raise ScriptError unless `script_sig` satisfies `script_pubkey` (same verdict as verify_script)."""
    key_hash = match_p2pkh(script_pubkey)
    if key_hash is not None:
        pushes = _sig_and_pubkey(script_sig)
        if pushes is not None:
            sig, pubkey = pushes
            if hash160(pubkey) == key_hash and checker.check_sig(sig, pubkey, script_pubkey):
                return
    verify_script(script_sig, script_pubkey, checker)


def _sig_and_pubkey(script_sig: bytes) -> tuple[bytes, bytes] | None:
    """The two pushed elements if the scriptSig is exactly two non-empty minimal pushes, else None."""
    try:
        ops = parse_script(script_sig)
    except ScriptError:
        return None
    if len(ops) != 2:
        return None
    (sig_op, sig), (key_op, pubkey) = ops
    if not sig or not pubkey or len(sig) > MAX_SCRIPT_ELEMENT_SIZE or len(pubkey) > MAX_SCRIPT_ELEMENT_SIZE:
        return None
    if not (is_minimal_push(sig_op, sig) and is_minimal_push(key_op, pubkey)):
        return None
    return sig, pubkey
