"""The model, local backend: chat prompts in which message text can never become a control token.

llama-cpp-python renders a GGUF's chat template into one string and tokenizes all of it with
special tokens parsed, so an abstract holding ``<|im_start|>`` or Qwen's ``<|file_sep|>`` would
become a real control token of the prompt. :func:`literal_content_handler` is a chat handler
for the same template that tokenizes the template's own text with special tokens parsed and
every message's content without (``special=False``): what a message says stays text. A
prompt without such text gets exactly the tokens the library would give it (a test compares),
and a template that changes the content it is given (trims it, say) is handed back to the
library's own handler.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from typing import Any

__all__ = ["literal_content_handler", "prompt_tokens"]

log = logging.getLogger(__name__)

_FORWARDED = (
    "temperature", "top_p", "top_k", "min_p", "typical_p", "stream", "seed", "max_tokens",
    "presence_penalty", "frequency_penalty", "repeat_penalty", "tfs_z", "mirostat_mode",
    "mirostat_tau", "mirostat_eta", "model", "logits_processor", "grammar", "logit_bias",
)  # fmt: skip
"""Arguments of ``create_chat_completion`` passed on to ``create_completion`` as they are."""


def _placeholder(i: int) -> str:
    return f"\ue000{i}\ue001"  # private-use characters: no template or message holds them


def prompt_tokens(llama: Any, formatter: Any, messages: list[dict[str, Any]]) -> list[int] | None:
    """The prompt's tokens, message contents tokenized as plain text; ``None`` when the
    template does not put each content into the prompt as it is (then the caller falls back).
    """
    contents = [m.get("content") for m in messages]
    if not all(isinstance(c, str) for c in contents):
        return None
    marked = [dict(m, content=_placeholder(i)) for i, m in enumerate(messages)]
    skeleton = formatter(messages=marked).prompt
    rendered = skeleton
    for i, c in enumerate(contents):
        if skeleton.count(_placeholder(i)) != 1:
            return None
        rendered = rendered.replace(_placeholder(i), c)
    if rendered != formatter(messages=messages).prompt:
        return None
    tokens: list[int] = []
    rest = skeleton
    for i, content in enumerate(contents):
        head, rest = rest.split(_placeholder(i), 1)
        tokens += _tokenize(llama, head, special=True)
        tokens += _tokenize(llama, content, special=False)
    tokens += _tokenize(llama, rest, special=True)
    return tokens


def _tokenize(llama: Any, text: str, *, special: bool) -> list[int]:
    return llama.tokenize(text.encode("utf-8"), add_bos=False, special=special) if text else []


def literal_content_handler(llama: Any) -> Callable[..., Any] | None:
    """A chat handler for ``llama``'s GGUF chat template that tokenizes message contents
    without special tokens; ``None`` when the model has no template (the library's fallback
    format is used then, as before)."""
    from llama_cpp.llama_chat_format import Jinja2ChatFormatter

    template = (getattr(llama, "metadata", None) or {}).get("tokenizer.chat_template")
    if not template:
        return None
    eos_id, bos_id = llama.token_eos(), llama.token_bos()
    eos = llama.detokenize([eos_id], special=True).decode("utf-8", "replace") if eos_id >= 0 else ""
    bos = llama.detokenize([bos_id], special=True).decode("utf-8", "replace") if bos_id >= 0 else ""
    formatter = Jinja2ChatFormatter(template=template, eos_token=eos, bos_token=bos)
    fallback = formatter.to_chat_handler()

    def handler(*, llama: Any, messages: list[dict[str, Any]], **kwargs: Any) -> Any:
        tokens = prompt_tokens(llama, formatter, messages)
        if tokens is None or kwargs.get("tools") or kwargs.get("functions"):
            log.debug("chat template changes message text: special tokens parsed as before")
            return fallback(llama=llama, messages=messages, **kwargs)
        stop = kwargs.get("stop") or []
        stop = [stop] if isinstance(stop, str) else list(stop)
        args = {k: kwargs[k] for k in _FORWARDED if k in kwargs}
        if kwargs.get("logprobs"):
            args["logprobs"] = kwargs.get("top_logprobs")
        out = llama.create_completion(prompt=tokens, stop=stop + ([eos] if eos else []), **args)
        return _as_chat_stream(out) if args.get("stream") else _as_chat(out)

    return handler


def _as_chat_stream(chunks: Iterator[dict[str, Any]]) -> Iterator[dict[str, Any]]:
    """Completion chunks as chat chunks (``choices[0].delta.content``); closing this stream
    closes the completion's, which ends the generation."""
    try:
        for chunk in chunks:
            choice = chunk["choices"][0]
            yield {
                "id": chunk.get("id"),
                "object": "chat.completion.chunk",
                "model": chunk.get("model"),
                "choices": [
                    {
                        "index": 0,
                        "delta": {"content": choice.get("text", "")},
                        "finish_reason": choice.get("finish_reason"),
                    }
                ],
            }
    finally:
        close = getattr(chunks, "close", None)
        if close is not None:
            close()


def _as_chat(completion: dict[str, Any]) -> dict[str, Any]:
    choice = completion["choices"][0]
    return {
        "id": completion.get("id"),
        "object": "chat.completion",
        "model": completion.get("model"),
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": choice.get("text", "")},
                "finish_reason": choice.get("finish_reason"),
            }
        ],
        "usage": completion.get("usage"),
    }
