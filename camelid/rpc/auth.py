"""RPC credentials: Bitcoin Core's cookie file or a configured user and password.

Without --rpcuser/--rpcpassword the node writes `<network datadir>/.cookie`
holding `__cookie__:<random hex>`, readable only by its owner (mode 0600), and
deletes it at shutdown; any local process that can read the file may call RPC,
which is exactly the trust boundary of the data directory.
"""

from __future__ import annotations

import base64
import binascii
import hmac
import os
import secrets
from dataclasses import dataclass
from pathlib import Path

COOKIE_USER = "__cookie__"
COOKIE_FILENAME = ".cookie"


@dataclass(frozen=True)
class Credentials:
    user: str
    password: str

    def check_header(self, authorization: str | None) -> bool:
        """True when an HTTP `Authorization: Basic ...` header carries these credentials."""
        if not authorization or not authorization.startswith("Basic "):
            return False
        try:
            decoded = base64.b64decode(authorization[6:].strip(), validate=True).decode("utf-8")
        except (binascii.Error, UnicodeDecodeError):
            return False
        user, sep, password = decoded.partition(":")
        # Compare both halves in constant time so timing reveals nothing about either.
        user_ok = hmac.compare_digest(user.encode(), self.user.encode())
        password_ok = hmac.compare_digest(password.encode(), self.password.encode())
        return bool(sep) and user_ok and password_ok


def write_cookie(net_datadir: Path) -> Credentials:
    """Create a fresh random cookie file (mode 0600, written atomically) and return its credentials."""
    creds = Credentials(COOKIE_USER, secrets.token_hex(32))
    path = net_datadir / COOKIE_FILENAME
    tmp = path.with_name(COOKIE_FILENAME + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(f"{creds.user}:{creds.password}")
    os.replace(tmp, path)
    return creds


def read_cookie(net_datadir: Path) -> Credentials:
    """Credentials from a node's cookie file; OSError if absent, ValueError if malformed."""
    path = net_datadir / COOKIE_FILENAME
    user, sep, password = path.read_text(encoding="utf-8").strip().partition(":")
    if not sep or not password:
        raise ValueError(f"{path} is not a user:password cookie")
    return Credentials(user, password)


def delete_cookie(net_datadir: Path) -> None:
    (net_datadir / COOKIE_FILENAME).unlink(missing_ok=True)
