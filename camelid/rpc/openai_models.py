"""The models the OpenAI-compatible API offers: those this node holds, which it verifies itself.

A client node checks a delivered output with its own copy of the model (RASTiC). For a model it lacks it
would depend on neighbours both to check the output and to read its tokens at all, and it could not
slash a cheat, so the API offers only models it holds and asking for another is a 404.
A model is named by its id (64 hex digits), by its GGUF general.name, by its file name, or by the name it
is known by (camelid.compute.models.KNOWN_MODELS: "default", "smollm2"). "default" falls back to the first
model the node holds when it does not hold the default model itself.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from camelid.compute.chat import ChatTemplateError, RenderedChat
from camelid.compute.models import DEFAULT_MODEL, known_names_of
from camelid.compute.vocab import ModelVocab
from camelid.rpc.openai_requests import OpenAIError, invalid

if TYPE_CHECKING:
    from camelid.node.model_service import ModelService

OWNER = "camelid"


@dataclass(frozen=True)
class OfferedModel:
    model_id: bytes
    file_name: str
    vocab: ModelVocab
    created: int  # when the file entered this node's store, UNIX seconds

    @property
    def id_hex(self) -> str:
        return self.model_id.hex()

    @property
    def known_names(self) -> list[str]:
        return sorted(known_names_of(self.file_name))

    def names(self) -> set[str]:
        return {self.id_hex, self.file_name, *self.known_names} | ({self.vocab.name} if self.vocab.name else set())

    def render_chat(self, messages: tuple[tuple[str, str], ...]) -> RenderedChat:
        """The prompt chat `messages` become on this model (its template, else the plain format); 400 if refused."""
        try:
            return self.vocab.render_chat(messages)
        except ChatTemplateError as exc:
            raise invalid("messages", str(exc)) from None

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id_hex,
            "object": "model",
            "created": self.created,
            "owned_by": OWNER,
            "name": self.vocab.name,
            "known_as": self.known_names,
            "chat_template": self.vocab.chat_template is not None,
        }


class ModelCatalog:
    """The held models with their vocabularies, each loaded (off the event loop) the first time it is needed."""

    def __init__(self, models: ModelService) -> None:
        self._models = models
        self._offered: dict[bytes, OfferedModel] = {}

    async def offered(self) -> list[OfferedModel]:
        """Every complete model in the store, in the store's order."""
        out = []
        for manifest in self._models.store.manifests():
            if manifest.id not in self._offered:
                path = self._models.store.model_path(manifest.id)
                vocab = await asyncio.to_thread(ModelVocab, path)
                self._offered[manifest.id] = OfferedModel(manifest.id, manifest.name, vocab, int(path.stat().st_mtime))
            out.append(self._offered[manifest.id])
        return out

    async def resolve(self, name: str) -> OfferedModel:
        """The model a request names; OpenAIError 404 (model_not_found) for one this node does not hold."""
        offered = await self.offered()
        for model in offered:
            if name.lower() in {n.lower() for n in model.names()}:
                return model
        if name == DEFAULT_MODEL and offered:
            return offered[0]
        raise OpenAIError(
            404,
            f"The model '{name}' does not exist on this node: it offers only models it holds, since only their "
            "outputs it can verify (see GET /v1/models; fetch others with the fetchmodel RPC)",
            param="model",
            code="model_not_found",
        )

    def close(self) -> None:
        for model in self._offered.values():
            model.vocab.close()
        self._offered.clear()
