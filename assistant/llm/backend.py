"""The model, which backend answers: the chat model the settings ask for.

The local GGUF model of a preset or a file (:mod:`assistant.llm.local`), or an
OpenAI-compatible server when a base URL is set (:mod:`assistant.llm.openai_compat`).
"""

from __future__ import annotations

from assistant.llm.base import ChatModel
from assistant.llm.local import LocalChatModel
from assistant.llm.openai_compat import OpenAIChatModel
from assistant.llm.presets import preset_info, resolve_model_path
from assistant.settings import Settings

# --------------------------------------------------------------------------------------------
# the factory
# --------------------------------------------------------------------------------------------
__all__ = ["chat_model_from_settings"]


def chat_model_from_settings(settings: Settings) -> ChatModel:
    """The chat model the settings ask for (a preset is assembled and verified here)."""
    if settings.backend == "openai":
        return OpenAIChatModel(
            base_url=settings.openai_base_url,
            api_key=settings.openai_api_key,
            model=settings.openai_model,
            context_window=settings.openai_context_window,
            timeout=settings.request_timeout,
            max_retries=settings.max_retries,
        )
    path = resolve_model_path(
        settings.llm_preset, settings.llm_model_path, settings.model_cache_dir
    )
    name = None if settings.llm_model_path else preset_info(settings.llm_preset)["id"]
    return LocalChatModel(
        path,
        n_ctx=settings.n_ctx,
        n_threads=settings.n_threads,
        name=name,
        repack=settings.llm_repack,
    )
