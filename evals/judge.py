"""The entailment judge: a chat model asked a strict yes/no question, memoised.

No NLI or cross-encoder model can be installed offline here (see ``docs/MODELS.md``:
every package found downloads its weights at run time), so the judge is a chat model: the
local GGUF model of a preset (default ``base``, Qwen2.5-Coder-1.5B) or any OpenAI-compatible
server. Its agreement with hand labels (``evals/data/judge_pairs.jsonl``) is measured by
:func:`judge_agreement` and reported next to the metrics it produces.

The judge is called once per distinct (prompt, premise, claim); :meth:`Judge.prefetch` asks
many pairs grouped by premise so that llama.cpp reuses the premise's KV cache between calls.
"""

from __future__ import annotations

import json
import logging
import re
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Literal

from assistant.errors import ConfigError, InputError
from assistant.llm.backend import chat_model_from_settings
from assistant.llm.base import ChatModel
from assistant.prompts import load_prompt
from assistant.settings import Settings
from assistant.text import title_key

__all__ = [
    "Judge",
    "JudgeStats",
    "JudgeAgreement",
    "NO_NLI_NOTE",
    "judge_agreement",
    "judge_model",
    "load_judge_pairs",
    "parse_yes_no",
    "premise_text",
]

logger = logging.getLogger(__name__)

JudgeKind = Literal["local", "openai"]

NO_NLI_NOTE = (
    "No NLI or cross-encoder entailment model can be installed offline on this machine (every "
    "PyPI package found downloads its weights at run time; see docs/MODELS.md), so a chat model "
    "answering a strict yes/no prompt (prompts/judge.txt) is the entailment judge. Its agreement "
    "with the hand-labelled pairs of evals/data/judge_pairs.jsonl is reported next to the "
    "metrics; read the citation and faithfulness scores in its light."
)

_YES = frozenset({"yes", "true", "supported", "supports", "entailed", "entails", "correct"})
_NO = frozenset(
    {"no", "false", "not", "unsupported", "contradicts", "contradicted", "refutes", "incorrect"}
)
_WORD = re.compile(r"[a-z]+")


def parse_yes_no(reply: str) -> bool | None:
    """``True`` for a yes, ``False`` for a no, ``None`` when the reply says neither.

    The first word that means yes or no decides, so ``"Yes."``, ``"**No**"``, ``"answer: yes"``
    and ``"Not supported"`` are read as meant; ``"Maybe"`` or an empty reply give ``None``.
    """
    for word in _WORD.findall(reply.casefold()):
        if word in _YES:
            return True
        if word in _NO:
            return False
    return None


def premise_text(title: str, abstract: str) -> str:
    """What the judge reads for one paper: its title, then its abstract."""
    title, abstract = " ".join(title.split()), " ".join(abstract.split())
    return f"{title}\n{abstract}" if title else abstract


@dataclass
class JudgeStats:
    """How the judge was used during a run."""

    model: str
    calls: int = 0
    """Distinct questions sent to the model."""
    cache_hits: int = 0
    unparsed: int = 0
    """Replies that said neither yes nor no (counted as 'not supported' / no verdict)."""
    seconds: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class Judge:
    """``judge(premise, claim) -> bool``: does the premise support the claim?

    ``verdict(premise, claim, prompt=...)`` gives ``True``/``False``/``None`` (unparsable
    reply) for any yes/no prompt with ``{premise}`` and ``{claim}`` (``judge``, entailment, is
    the default and the one the metrics use). ``__call__`` maps
    ``None`` to ``False``, as a checker that cannot confirm support must.
    """

    def __init__(self, model: ChatModel, *, max_tokens: int = 3, temperature: float = 0.0) -> None:
        self.model = model
        self.max_tokens = max_tokens
        self.temperature = temperature
        self.stats = JudgeStats(model=model.name)
        self._cache: dict[tuple[str, str, str], bool | None] = {}
        self._lock = threading.Lock()

    def __call__(self, premise: str, claim: str) -> bool:
        return self.verdict(premise, claim) is True

    def verdict(self, premise: str, claim: str, *, prompt: str = "judge") -> bool | None:
        key = (prompt, premise, claim)
        with self._lock:
            if key in self._cache:
                self.stats.cache_hits += 1
                return self._cache[key]
        text = load_prompt(prompt).render(premise=premise, claim=claim)
        started = time.perf_counter()
        reply = self.model.complete(
            [{"role": "user", "content": text}],
            max_tokens=self.max_tokens,
            temperature=self.temperature,
        )
        result = parse_yes_no(reply)
        with self._lock:
            self.stats.seconds += time.perf_counter() - started
            if key not in self._cache:
                self.stats.calls += 1
                if result is None:
                    self.stats.unparsed += 1
                    logger.debug("judge reply %r is neither yes nor no", reply)
                self._cache[key] = result
            return self._cache[key]

    def prefetch(
        self,
        pairs: Iterable[tuple[str, str]],
        *,
        prompt: str = "judge",
        on_done: Callable[[int], None] | None = None,
    ) -> int:
        """Judge every (premise, claim) not judged yet; returns how many were asked.

        Pairs are asked grouped by premise (a local model then evaluates each premise once and
        only the claim for the next pairs); a server model gets ``max_concurrency`` at a time.
        """
        with self._lock:
            todo = sorted({p for p in pairs if (prompt, *p) not in self._cache})
        if not todo:
            return 0
        workers = max(1, int(getattr(self.model, "max_concurrency", 1) or 1))

        def one(pair: tuple[str, str]) -> None:
            self.verdict(pair[0], pair[1], prompt=prompt)
            if on_done is not None:
                on_done(1)

        if workers == 1:
            for pair in todo:
                one(pair)
        else:
            with ThreadPoolExecutor(max_workers=workers) as pool:
                list(pool.map(one, todo))
        return len(todo)


def judge_model(
    settings: Settings,
    kind: JudgeKind = "local",
    *,
    preset: str | None = None,
    reuse: ChatModel | None = None,
) -> ChatModel:
    """The chat model behind the judge.

    ``local``: the GGUF model of ``preset`` (default ``base``); ``reuse`` is returned instead
    when it is already that model (one copy in memory). ``openai``: :class:`OpenAIChatModel`
    from the settings' ``openai_*`` fields.
    """
    if kind == "openai":
        if not settings.openai_base_url and not settings.openai_api_key:
            raise ConfigError(
                "--judge openai needs a server: set ASSISTANT_OPENAI_BASE_URL (and "
                "ASSISTANT_OPENAI_MODEL), or ASSISTANT_OPENAI_API_KEY for api.openai.com"
            )
        return chat_model_from_settings(settings.model_copy(update={"llm_backend": "openai"}))
    if kind != "local":
        raise ConfigError(f"unknown judge {kind!r}; use --judge local or --judge openai")
    local = settings.model_copy(update={"llm_backend": "local", "llm_preset": preset or "base"})
    if (
        reuse is not None
        and settings.backend == "local"
        and settings.llm_model_path is None
        and settings.llm_preset == local.llm_preset
    ):
        return reuse
    return chat_model_from_settings(local)


# --- agreement with hand labels -------------------------------------------------------------


@dataclass
class JudgeAgreement:
    """The judge against hand labels: 'supported' is the positive class."""

    n: int
    accuracy: float
    precision: float
    recall: float
    specificity: float
    n_unparsed: int
    n_missing_abstract: int
    by_kind: dict[str, float]
    """Accuracy per pair kind (``correct_number``, ``wrong_number``, ...)."""
    records: list[dict[str, Any]]

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def load_judge_pairs(path: Path) -> list[dict[str, Any]]:
    """The labelled pairs of ``judge_pairs.jsonl`` (see evals/data/README.md)."""
    pairs = []
    for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except ValueError as exc:
            raise InputError(f"{path}:{n} is not JSON ({exc}); fix the line") from None
        if not {"sentence", "abstract_title", "supported"} <= row.keys():
            raise InputError(
                f"{path}:{n} lacks sentence, abstract_title or supported; see evals/data/README.md"
            )
        pairs.append(row)
    return pairs


def _ratio(num: int, den: int) -> float:
    return num / den if den else float("nan")


def judge_agreement(
    judge: Judge,
    pairs: Sequence[dict[str, Any]],
    abstracts: dict[str, tuple[str, str]],
) -> JudgeAgreement:
    """Run the judge on labelled pairs; ``abstracts`` maps ``title_key(title)`` to
    ``(title, abstract)`` of the collection the pairs refer to.

    Pairs whose abstract is not in ``abstracts`` are left out and counted.
    """
    usable, missing = [], 0
    for pair in pairs:
        found = abstracts.get(title_key(pair["abstract_title"]))
        if found is None:
            missing += 1
            logger.warning(
                "judge pair %s: abstract %r not found", pair.get("id"), pair["abstract_title"]
            )
            continue
        usable.append((pair, premise_text(*found)))
    judge.prefetch((premise, pair["sentence"]) for pair, premise in usable)
    tp = fp = tn = fn = unparsed = 0
    kinds: dict[str, list[bool]] = {}
    records = []
    for pair, premise in usable:
        raw = judge.verdict(premise, pair["sentence"])
        predicted, gold = raw is True, bool(pair["supported"])
        unparsed += raw is None
        tp += predicted and gold
        fp += predicted and not gold
        tn += not predicted and not gold
        fn += not predicted and gold
        kinds.setdefault(str(pair.get("kind", "")), []).append(predicted == gold)
        records.append(
            {
                "id": pair.get("id"),
                "kind": pair.get("kind"),
                "gold": gold,
                "predicted": raw,
                "sentence": pair["sentence"],
            }
        )
    n = len(usable)
    return JudgeAgreement(
        n=n,
        accuracy=_ratio(tp + tn, n),
        precision=_ratio(tp, tp + fp),
        recall=_ratio(tp, tp + fn),
        specificity=_ratio(tn, tn + fp),
        n_unparsed=unparsed,
        n_missing_abstract=missing,
        by_kind={k: sum(v) / len(v) for k, v in sorted(kinds.items())},
        records=records,
    )
