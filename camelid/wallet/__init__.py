"""The wallet: BIP32 keys encrypted at rest, chain tracking, balances, coin selection and signed payments."""

from camelid.wallet.errors import WalletError, WalletErrorCode
from camelid.wallet.wallet import Wallet, wallet_path

__all__ = ["Wallet", "WalletError", "WalletErrorCode", "wallet_path"]
