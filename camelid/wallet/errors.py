"""The wallet's one exception type, carrying Bitcoin Core's RPC error code so the RPC layer passes it through."""

from __future__ import annotations

from enum import IntEnum


class WalletErrorCode(IntEnum):
    """Codes as Bitcoin Core's rpc/protocol.h numbers them; clients written for Core read them unchanged."""

    TYPE_ERROR = -3
    WALLET_ERROR = -4
    INVALID_ADDRESS_OR_KEY = -5
    INSUFFICIENT_FUNDS = -6
    INVALID_PARAMETER = -8
    UNLOCK_NEEDED = -13
    PASSPHRASE_INCORRECT = -14
    WRONG_ENC_STATE = -15
    WALLET_NOT_FOUND = -18


class WalletError(Exception):
    """A wallet operation refused, with the code an RPC reply should carry and a message naming the problem."""

    def __init__(self, code: WalletErrorCode, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


def unlock_needed() -> WalletError:
    """The error for any use of a private key while the wallet is locked (Core's wording)."""
    return WalletError(
        WalletErrorCode.UNLOCK_NEEDED, "Error: Please enter the wallet passphrase with walletpassphrase first."
    )
