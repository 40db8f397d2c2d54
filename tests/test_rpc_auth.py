"""RPC credentials: the cookie file and HTTP Basic header checking."""

from __future__ import annotations

import base64

import pytest

from camelid.rpc.auth import COOKIE_USER, Credentials, delete_cookie, read_cookie, write_cookie


def header(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


def test_cookie_is_private_random_and_removable(tmp_path):
    creds = write_cookie(tmp_path)
    path = tmp_path / ".cookie"
    assert path.stat().st_mode & 0o777 == 0o600
    assert creds.user == COOKIE_USER and len(creds.password) == 64
    assert read_cookie(tmp_path) == creds
    assert write_cookie(tmp_path) != creds  # a new password every start
    delete_cookie(tmp_path)
    assert not path.exists()
    with pytest.raises(OSError):
        read_cookie(tmp_path)


def test_malformed_cookie_is_a_value_error(tmp_path):
    (tmp_path / ".cookie").write_text("no-separator")
    with pytest.raises(ValueError, match="not a user:password cookie"):
        read_cookie(tmp_path)


@pytest.mark.parametrize(
    ("authorization", "accepted"),
    [
        (header("u", "p:with:colons"), True),
        (header("u", "p:with:colon"), False),
        (header("v", "p:with:colons"), False),
        ("Basic " + base64.b64encode(b"u").decode(), False),
        ("Basic %%%", False),
        ("Digest abc", False),
        (None, False),
    ],
)
def test_basic_header_must_match_exactly(authorization, accepted):
    assert Credentials("u", "p:with:colons").check_header(authorization) is accepted
