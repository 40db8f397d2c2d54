"""Chat messages rendered into the one prompt a job carries: the model's own template, or a plain format.

A GGUF file may carry its chat template (`tokenizer.chat_template`, Jinja as Hugging Face writes it). It is
rendered with llama-cpp-python's Jinja2ChatFormatter: jinja2's ImmutableSandboxedEnvironment (a template
from a downloaded file cannot reach Python) with Transformers' conventions (trim_blocks, lstrip_blocks,
loop controls, tojson, raise_exception, strftime_now), which is what llama-server does through minja.
The template writes special-token text such as `<|im_start|>`; the engine tokenizes prompts with
parse_special (camelid.compute.engine.PARSE_SPECIAL), so that text becomes the special tokens the model
was trained on.

A model without a template (a base model such as gemma-3-270m) gets the plain format, one
"role: content" line per message and then "assistant:", and the answer says so (chat_format).
Rendering happens once, on the client node; the job carries the rendered prompt, so its commitment,
verification and any fraud proof cover exactly the text the template produced.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import jinja2
from llama_cpp.llama_chat_format import Jinja2ChatFormatter

TEMPLATE_KEY = "tokenizer.chat_template"
PLAIN = "plain"
TEMPLATE = "template"
# OpenAI's newer name for the system role; chat templates know only "system".
ROLE_ALIASES = {"developer": "system"}

Messages = Sequence[tuple[str, str]]


class ChatTemplateError(ValueError):
    """The template refused the messages (its raise_exception, e.g. roles that do not alternate) or failed."""


class ChatTemplate:
    """One model's chat template, compiled once; render() is safe to call from several threads."""

    def __init__(self, source: str, bos_token: str, eos_token: str, tokenizer_adds_bos: bool) -> None:
        """jinja2.TemplateSyntaxError for a template that does not compile."""
        self.source = source
        self.sha256 = hashlib.sha256(source.encode()).hexdigest()
        self._formatter = Jinja2ChatFormatter(source, eos_token, bos_token, add_generation_prompt=True)
        # The tokenizer adds BOS itself where the model wants one: a template that writes bos_token too
        # would make two, so a leading one is cut, as llama.cpp's common_chat_templates_apply does.
        self._leading_bos = bos_token if tokenizer_adds_bos else ""

    def render(self, messages: Messages) -> str:
        """The prompt for `messages`, ending where the assistant speaks; ChatTemplateError if it cannot be."""
        turns = [{"role": ROLE_ALIASES.get(role, role), "content": content} for role, content in messages]
        try:
            prompt = self._formatter(messages=turns).prompt
        except (ValueError, TypeError, jinja2.TemplateError) as exc:
            raise ChatTemplateError(f"the model's chat template cannot render these messages: {exc}") from None
        if self._leading_bos and prompt.startswith(self._leading_bos):
            prompt = prompt[len(self._leading_bos) :]
        return prompt


def render_plain(messages: Messages) -> str:
    """The plain format: one "role: content" line per message, then "assistant:" for the model to continue."""
    return "".join(f"{ROLE_ALIASES.get(role, role)}: {content}\n" for role, content in messages) + "assistant:"


@dataclass(frozen=True)
class RenderedChat:
    """The prompt a chat request becomes, and `chat_format`: how it was made, as the answer reports it."""

    prompt: str
    chat_format: dict[str, Any]


def render_chat(template: ChatTemplate | None, messages: Messages, plain_reason: str) -> RenderedChat:
    """`messages` through the model's template, or in the plain format (saying why) when it has none."""
    if template is None:
        return RenderedChat(render_plain(messages), {"type": PLAIN, "reason": plain_reason})
    return RenderedChat(
        template.render(messages), {"type": TEMPLATE, "source": TEMPLATE_KEY, "sha256": template.sha256}
    )
