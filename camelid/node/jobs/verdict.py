"""A client's verdict on a job's delivery, as a value rather than a string (docs/jobs-design.md).

The client acts on why a job failed (a RASTiC failure is judged again after a restart, a missing delivery
starts the claim on the stake), so the verdict carries its outcome and cause as enums; `str()` gives the
text getjob and the /v1 API show ("verified", "failed: ...", "unverified: ...").
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class Outcome(StrEnum):
    VERIFIED = "verified"
    FAILED = "failed"
    UNVERIFIED = "unverified"


class Cause(StrEnum):
    """Why a job is not simply verified."""

    NONE = "none"
    RASTIC = "rastic"  # our own RASTiC check rejected positions (a fraud proof may slash)
    VERIFIER = "verifier"  # a neighbour's signed verdict rejected positions (no slash without the model)
    NOT_COMMITTED = "not-committed"  # the delivery is not the output the node signed
    BAD_DELIVERY = "bad-delivery"  # the delivery does not open to the committed output (a bad-delivery proof slashes)
    NOT_TEXT = "not-text"  # token ids the model does not have
    NOT_DELIVERED = "not-delivered"  # paid, and nothing delivered by the deadline D
    SWITCHED_OFF = "switched-off"  # verify=off
    UNCHECKABLE = "uncheckable"  # no model here and no neighbour could check it


@dataclass(frozen=True)
class Verdict:
    outcome: Outcome
    cause: Cause = Cause.NONE
    detail: str = ""

    def __str__(self) -> str:
        return self.outcome.value if not self.detail else f"{self.outcome.value}: {self.detail}"

    @property
    def failed(self) -> bool:
        return self.outcome is Outcome.FAILED


VERIFIED = Verdict(Outcome.VERIFIED)
NOT_DELIVERED = Verdict(Outcome.FAILED, Cause.NOT_DELIVERED, "not delivered")
"""The verdict on a paid job whose node delivered nothing by the deadline D."""


def failed(cause: Cause, detail: str) -> Verdict:
    return Verdict(Outcome.FAILED, cause, detail)


def unverified(cause: Cause, detail: str) -> Verdict:
    return Verdict(Outcome.UNVERIFIED, cause, detail)
