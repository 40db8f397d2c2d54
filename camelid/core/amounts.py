"""Coin amounts as people read them: base units to a Decimal with exactly 8 decimals."""

from __future__ import annotations

from decimal import Decimal

from camelid.core.consensus import COIN


def amount(base_units: int) -> Decimal:
    """Base units as a coin amount with 8 decimals (5000000000 -> Decimal('50.00000000')).

    Built from its digits rather than by division, because Decimal writes small
    quotients in exponent form (0E-8) and Bitcoin Core always writes 0.00000000.
    """
    whole, fraction = divmod(abs(base_units), COIN)
    return Decimal(f"{'-' if base_units < 0 else ''}{whole}.{fraction:08d}")
