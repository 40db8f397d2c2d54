"""Input script verification: the interpreter, with a shortcut for the standard P2PKH spend.

Nearly every input is `<sig> <pubkey>` against `DUP HASH160 <h> EQUALVERIFY CHECKSIG`.
For exactly that shape -- a direct push of 2 to 75 bytes, then one of a 33- or 65-byte
key, both minimal by construction -- with hash160(pubkey) == h, the interpreter's verdict
is the CHECKSIG's alone, so the shortcut asks the checker that one question. Anything
else, and every failure, goes through the full interpreter, which also supplies the
precise failure reason.
"""

from __future__ import annotations

from camelid.core.interpreter import SignatureChecker, verify_script
from camelid.core.opcodes import MAX_DIRECT_PUSH
from camelid.core.script import match_p2pkh
from camelid.crypto.hashes import hash160

_KEY_SIZES = (33, 65)


def verify_input_script(script_sig: bytes, script_pubkey: bytes, checker: SignatureChecker) -> None:
    """Raise ScriptError unless `script_sig` satisfies `script_pubkey` (same verdict as verify_script)."""
    spend = p2pkh_spend(script_sig, script_pubkey)
    if spend is not None and checker.check_sig(*spend, script_pubkey):
        return
    verify_script(script_sig, script_pubkey, checker)


def p2pkh_spend(script_sig: bytes, script_pubkey: bytes) -> tuple[bytes, bytes] | None:
    """(signature, pubkey) of a standard P2PKH spend, whose verdict is then check_sig(signature, pubkey,
    script_pubkey) alone: true means the input is valid; else None."""
    key_hash = match_p2pkh(script_pubkey)
    if key_hash is None or len(script_sig) < 2:
        return None
    sig_size = script_sig[0]
    if not 2 <= sig_size <= MAX_DIRECT_PUSH or len(script_sig) < sig_size + 2:
        return None
    key_size = script_sig[sig_size + 1]
    if key_size not in _KEY_SIZES or len(script_sig) != sig_size + 2 + key_size:
        return None
    pubkey = script_sig[sig_size + 2 :]
    return (script_sig[1 : sig_size + 1], pubkey) if hash160(pubkey) == key_hash else None
