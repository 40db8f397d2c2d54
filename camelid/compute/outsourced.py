"""Outsourced RASTiC (whitepaper 2.5.3): a neighbour checks positions and signs a verdict per position.

The whitepaper has the neighbour return a hash of the model's token at the checked index. With a
vocabulary of a few hundred thousand tokens that hash is inverted by enumeration in well under a
second, so it hands out free completions. The neighbour here answers only pass/fail and the gap of
the token the request already claims: a client learns whether the node's token is right, never
which token would be. The request is bound to the compute node's output commitment, so a node
should answer only for jobs in its job pool whose commitment it has seen signed.
"""

from __future__ import annotations

import struct
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import coincurve

from camelid.compute.engine import Engine
from camelid.compute.rastic import EPS_ACCEPT, output_commitment, position_gaps, structural_failures
from camelid.compute.sampling import check_sampling_params
from camelid.crypto.hashes import sha256d

GAP_CAP = 1000.0  # gaps are reported clipped so every verdict is finite and msgpack/JSON safe
_REQUEST_DOMAIN = b"camelid/rastic-request/v1"
_VERDICT_DOMAIN = b"camelid/rastic-verdict/v1"
_MAX_TOKEN_ID = 2**32 - 1


def _bytes32(value: Any, what: str) -> bytes:
    if not isinstance(value, bytes) or len(value) != 32:
        raise ValueError(f"{what} must be 32 bytes")
    return value


def _int_tuple(value: Any, what: str, limit: int = _MAX_TOKEN_ID) -> tuple[int, ...]:
    if not isinstance(value, list | tuple):
        raise ValueError(f"{what} must be a list of ints")
    for v in value:
        if not isinstance(v, int) or isinstance(v, bool) or not 0 <= v <= limit:
            raise ValueError(f"{what} holds {v!r}, not an int in [0, {limit}]")
    return tuple(value)


def _fields(data: Any, names: Sequence[str], what: str) -> dict[str, Any]:
    if not isinstance(data, dict):
        raise ValueError(f"{what} must be a dict")
    missing = set(names) - data.keys()
    if missing:
        raise ValueError(f"{what} lacks {sorted(missing)}")
    return {name: data[name] for name in names}


@dataclass(frozen=True)
class VerificationRequest:
    """What a client sends a neighbour: the job, the claimed output and the positions to check."""

    job_id: bytes
    model_id: bytes
    prompt_tokens: tuple[int, ...]
    output_tokens: tuple[int, ...]
    max_tokens: int
    seed: int
    temperature: float
    positions: tuple[int, ...]

    def __post_init__(self) -> None:
        _bytes32(self.job_id, "job_id")
        _bytes32(self.model_id, "model_id")
        object.__setattr__(self, "prompt_tokens", _int_tuple(self.prompt_tokens, "prompt_tokens"))
        object.__setattr__(self, "output_tokens", _int_tuple(self.output_tokens, "output_tokens"))
        object.__setattr__(self, "positions", _int_tuple(self.positions, "positions"))
        if not self.prompt_tokens or not self.output_tokens:
            raise ValueError("prompt_tokens and output_tokens must be non-empty")
        if not isinstance(self.max_tokens, int) or isinstance(self.max_tokens, bool) or self.max_tokens < 1:
            raise ValueError(f"max_tokens must be a positive int, got {self.max_tokens!r}")
        check_sampling_params(self.seed, self.temperature)
        if not self.positions:
            raise ValueError("positions must name at least one output index")
        if any(b <= a for a, b in zip(self.positions, self.positions[1:], strict=False)):
            raise ValueError("positions must be strictly increasing")
        if self.positions[-1] >= len(self.output_tokens):
            raise ValueError(f"position {self.positions[-1]} is past the {len(self.output_tokens)}-token output")

    def commitment(self) -> bytes:
        """The output commitment the compute node signed for this job."""
        return output_commitment(
            self.model_id, self.prompt_tokens, self.output_tokens, self.max_tokens, self.seed, self.temperature
        )

    def digest(self) -> bytes:
        """What a signed verdict refers to: job, commitment and positions."""
        return request_digest(self.job_id, self.commitment(), self.positions)

    def to_dict(self) -> dict[str, Any]:
        return {
            "job_id": self.job_id,
            "model_id": self.model_id,
            "prompt_tokens": list(self.prompt_tokens),
            "output_tokens": list(self.output_tokens),
            "max_tokens": self.max_tokens,
            "seed": self.seed,
            "temperature": float(self.temperature),
            "positions": list(self.positions),
        }

    @classmethod
    def from_dict(cls, data: Any) -> VerificationRequest:
        names = ("job_id", "model_id", "prompt_tokens", "output_tokens", "max_tokens", "seed")
        fields = _fields(data, (*names, "temperature", "positions"), "verification request")
        return cls(**fields)


@dataclass(frozen=True)
class PositionResult:
    """The verdict on one output index: pass/fail and the claimed token's gap, never the token."""

    position: int
    ok: bool
    gap: float

    def __post_init__(self) -> None:
        _int_tuple([self.position], "position")
        if not isinstance(self.ok, bool):
            raise ValueError(f"ok must be a bool, got {self.ok!r}")
        if not isinstance(self.gap, float) or not 0.0 <= self.gap <= GAP_CAP:
            raise ValueError(f"gap must be a float in [0, {GAP_CAP}], got {self.gap!r}")

    def to_dict(self) -> dict[str, Any]:
        return {"position": self.position, "ok": self.ok, "gap": self.gap}

    @classmethod
    def from_dict(cls, data: Any) -> PositionResult:
        return cls(**_fields(data, ("position", "ok", "gap"), "position result"))


@dataclass(frozen=True)
class SignedVerdict:
    """A neighbour's signed answer to one VerificationRequest."""

    request_digest: bytes
    results: tuple[PositionResult, ...]
    pubkey: bytes
    signature: bytes

    def __post_init__(self) -> None:
        _bytes32(self.request_digest, "request_digest")
        if not isinstance(self.results, tuple) or not all(isinstance(r, PositionResult) for r in self.results):
            raise ValueError("results must be a tuple of PositionResult")
        if not isinstance(self.pubkey, bytes) or len(self.pubkey) != 33:
            raise ValueError("pubkey must be a 33-byte compressed public key")
        if not isinstance(self.signature, bytes) or not 8 <= len(self.signature) <= 72:
            raise ValueError("signature must be a DER signature of at most 72 bytes")

    @property
    def ok(self) -> bool:
        return all(r.ok for r in self.results)

    def to_dict(self) -> dict[str, Any]:
        return {
            "request_digest": self.request_digest,
            "results": [r.to_dict() for r in self.results],
            "pubkey": self.pubkey,
            "signature": self.signature,
        }

    @classmethod
    def from_dict(cls, data: Any) -> SignedVerdict:
        fields = _fields(data, ("request_digest", "results", "pubkey", "signature"), "signed verdict")
        if not isinstance(fields["results"], list | tuple):
            raise ValueError("results must be a list")
        fields["results"] = tuple(PositionResult.from_dict(r) for r in fields["results"])
        return cls(**fields)


def request_digest(job_id: bytes, commitment: bytes, positions: Sequence[int]) -> bytes:
    """The digest of a request, from the commitment alone: a client without the model can check a verdict."""
    packed = struct.pack(f"<I{len(positions)}I", len(positions), *positions)
    return sha256d(_REQUEST_DOMAIN + job_id + commitment + packed)


def verdict_digest(request_digest: bytes, results: Sequence[PositionResult]) -> bytes:
    """The 32 bytes a neighbour signs."""
    packed = b"".join(struct.pack("<I?d", r.position, r.ok, r.gap) for r in results)
    return sha256d(_VERDICT_DOMAIN + request_digest + struct.pack("<I", len(results)) + packed)


def check_request(
    engine: Engine, request: VerificationRequest, eps_accept: float = EPS_ACCEPT
) -> tuple[PositionResult, ...]:
    """The verdict on each requested position, checked with `engine` (which must run the request's model)."""
    if request.model_id != engine.model_id:
        raise ValueError(f"request is for model {request.model_id.hex()}, engine runs {engine.model_id.hex()}")
    engine.check_tokens(request.prompt_tokens, "prompt_tokens")
    engine.check_tokens(request.output_tokens, "output_tokens")
    structural = {
        f.position
        for f in structural_failures(request.output_tokens, request.max_tokens, engine.n_vocab, engine.is_end)
    }
    gaps = position_gaps(
        engine, request.prompt_tokens, request.output_tokens, request.positions, request.seed, request.temperature
    )
    return tuple(
        PositionResult(j, False, GAP_CAP)
        if j in structural or not gap <= GAP_CAP  # a NaN gap is a failure, never a pass
        else PositionResult(j, bool(gap <= eps_accept), float(gap))
        for j, gap in zip(request.positions, gaps, strict=True)
    )


def sign_results(request: VerificationRequest, results: Sequence[PositionResult], secret: bytes) -> SignedVerdict:
    """The verdict on `request` signed with the 32-byte `secret` (the verifier's node key)."""
    key = coincurve.PrivateKey(secret)
    request_digest = request.digest()
    signature = key.sign(verdict_digest(request_digest, results), hasher=None)
    return SignedVerdict(request_digest, tuple(results), key.public_key.format(compressed=True), signature)


def answer_request(
    engine: Engine, request: VerificationRequest, secret: bytes, eps_accept: float = EPS_ACCEPT
) -> SignedVerdict:
    """Check the requested positions with `engine` and sign the verdict with the 32-byte `secret`."""
    return sign_results(request, check_request(engine, request, eps_accept), secret)


def check_verdict(request: VerificationRequest, verdict: SignedVerdict, pubkey: bytes | None = None) -> None:
    """ValueError unless `verdict` answers exactly `request` and is signed by `pubkey` (if given)."""
    if verdict.request_digest != request.digest():
        raise ValueError("verdict answers a different request")
    if tuple(r.position for r in verdict.results) != request.positions:
        raise ValueError("verdict positions differ from the requested positions")
    if pubkey is not None and verdict.pubkey != pubkey:
        raise ValueError("verdict is signed by an unexpected key")
    try:
        valid = coincurve.PublicKey(verdict.pubkey).verify(
            verdict.signature, verdict_digest(verdict.request_digest, verdict.results), hasher=None
        )
    except (ValueError, TypeError) as exc:
        raise ValueError(f"verdict signature is malformed: {exc}") from exc
    if not valid:
        raise ValueError("verdict signature does not verify")
