"""A finished completion in OpenAI's shapes: one JSON body, or the chunks of a Server-Sent Events stream."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

CHAT_KIND = "chat.completion"
CHAT_CHUNK_KIND = "chat.completion.chunk"
COMPLETION_KIND = "text_completion"  # OpenAI names whole answers and stream chunks alike


@dataclass(frozen=True)
class Answer:
    """`camelid` is the extra member naming the job behind the answer (job_id, verdict, state, history, paid_node)."""

    id: str
    kind: str  # CHAT_KIND or COMPLETION_KIND
    created: int
    model: str
    text: str
    finish_reason: str
    usage: dict[str, int]
    camelid: dict[str, Any]

    @property
    def chat(self) -> bool:
        return self.kind == CHAT_KIND

    def _envelope(self, kind: str, choice: dict[str, Any]) -> dict[str, Any]:
        return {"id": self.id, "object": kind, "created": self.created, "model": self.model, "choices": [choice]}

    def body(self) -> dict[str, Any]:
        if self.chat:
            choice = {"index": 0, "message": {"role": "assistant", "content": self.text}, "logprobs": None}
        else:
            choice = {"index": 0, "text": self.text, "logprobs": None}
        body = self._envelope(self.kind, {**choice, "finish_reason": self.finish_reason})
        return {**body, "usage": self.usage, "camelid": self.camelid}

    def chunks(self) -> list[dict[str, Any]]:
        """The stream: for chat the assistant role, the text, then the finish; for a completion one chunk with the
        text and the finish (the whole verified output is known at once). The last carries usage and `camelid`."""
        if self.chat:
            kind = CHAT_CHUNK_KIND
            parts = [{"delta": {"role": "assistant", "content": ""}}, {"delta": {"content": self.text}}, {"delta": {}}]
        else:
            kind, parts = COMPLETION_KIND, [{"text": self.text}]
        chunks = [self._envelope(kind, {"index": 0, **part, "logprobs": None, "finish_reason": None}) for part in parts]
        chunks[-1]["choices"][0]["finish_reason"] = self.finish_reason
        return [*chunks[:-1], {**chunks[-1], "usage": self.usage, "camelid": self.camelid}]
