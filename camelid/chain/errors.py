"""Rejections with Bitcoin Core's reason strings, so logs, RPC errors and tests name the broken rule."""

from __future__ import annotations


class ValidationError(Exception):
    """Something failed a consensus or policy rule; `reason` is the short stable rule name."""

    def __init__(self, reason: str, message: str = "") -> None:
        super().__init__(f"{reason}: {message}" if message else reason)
        self.reason = reason
        self.message = message


class BlockRejected(ValidationError):
    """A block (or header) broke a rule and was not accepted."""


class TxRejected(ValidationError):
    """A transaction was refused by the mempool (consensus or relay policy)."""
