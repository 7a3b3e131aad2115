"""Typed records passed between the parts of the assistant."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

__all__ = ["Paper", "Skipped", "Source", "Citation", "Answer", "SentenceCheck"]


@dataclass
class Paper:
    """One paper as read from a source file, already normalised.

    ``paper_id`` is the arXiv id when the source gives one, otherwise ``t:`` plus a hash of
    the normalised title, so the same paper read from two files gets the same id.
    """

    paper_id: str
    title: str
    abstract: str
    authors: str = ""
    date: str = ""
    url: str = ""
    categories: str = ""
    sources: list[str] = field(default_factory=list)
    """Files (as given on the command line, resolved) that list this paper."""
    extra: dict[str, str] = field(default_factory=dict)
    """Any other metadata the source had (CSV columns, BibTeX fields), as strings."""
    withheld: list[dict[str, str]] = field(default_factory=list)
    """Sentences kept out of ``abstract`` because they read as instructions to an assistant
    or as markup (``{"sentence", "reason"}``; see :mod:`assistant.safety`)."""


@dataclass(frozen=True)
class Skipped:
    """A record or file that could not be used, with where it is and why."""

    file: str
    line: int | None
    reason: str

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}" if self.line else self.file
        return f"{where}: {self.reason}"


@dataclass
class Source:
    """A retrieved paper (chunks folded into papers), as numbered in the prompt."""

    paper_id: str
    title: str
    abstract: str
    score: float
    url: str = ""
    date: str = ""
    authors: str = ""
    metadata: dict[str, Any] = field(default_factory=dict)
    passages: list[str] = field(default_factory=list)
    """The sentences of the abstract that were sent to the model."""
    number: int = 0
    """1-based number in the prompt (0 before numbering)."""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class Citation:
    """A paper cited by the final answer, numbered as in the answer text."""

    number: int
    paper_id: str
    title: str
    url: str = ""
    snippet: str = ""
    """The sentence of the abstract that best supports what the answer says."""
    score: float = 0.0
    """Support score of the best-supported statement citing this paper (0..1)."""
    abstract: str = ""
    evidence: list[str] = field(default_factory=list)
    """The sentences of the abstract that support what the answer says of this paper, in
    abstract order (``snippet`` is the best of them)."""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class SentenceCheck:
    """The verifier's verdict on one sentence of the answer."""

    text: str
    supported: bool
    citations: list[int]
    """Final citation numbers (as in the answer text) for this sentence."""
    score: float
    """Best support score found for this sentence (0..1)."""
    model_citations: list[int] = field(default_factory=list)
    """Numbers the model itself wrote (prompt numbering), for diagnostics."""
    quoted: bool = False
    """A sentence of an abstract quoted as evidence, not a statement of the model's: true by
    construction, so not counted among the statements checked."""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class Answer:
    """What :meth:`Assistant.ask` returns."""

    question: str
    text: str
    citations: list[Citation] = field(default_factory=list)
    sources: list[Source] = field(default_factory=list)
    answerable: bool = True
    timings: dict[str, float] = field(default_factory=dict)
    sentences: list[SentenceCheck] = field(default_factory=list)
    raw_text: str = ""
    """What the model wrote, before verification."""
    model: str = ""
    evidence_level: str = ""
    """How strongly the retrieved abstracts held an answer before the model wrote: ``strong``,
    ``weak`` or ``none`` (see :mod:`assistant.answer.evidence`)."""
    quoted: bool = False
    """True when the text quotes the abstracts instead of the model's words (the model's text
    kept nothing the abstracts support, while they clearly hold the answer)."""
    prompt_tokens: int = 0
    """Tokens of the question and passages the model read, beyond its cached system prompt:
    what time to first token grows with on a CPU."""
    prompt: list[dict[str, str]] = field(default_factory=list, repr=False)
    """The chat messages the model answered from, so that a follow-up can continue them
    (:mod:`assistant.answer.conversation`). Not part of :meth:`to_dict`."""
    decision: dict[str, Any] = field(default_factory=dict)
    """Why the answer is what it is: the features the decision weighed, the probability that
    the collection answers the question, the route taken (:mod:`assistant.answer.decide`)."""

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out.pop("prompt")
        return out

    def bibliography(self, *, evidence: bool = True) -> str:
        """The numbered reference list (Markdown), one entry per cited paper, each followed by
        the quoted sentences of its abstract that support the answer. Titles and quotes are
        escaped (:func:`~assistant.safety.escape_markdown`); a title links only to an http(s)
        URL."""
        from assistant.safety import escape_markdown, safe_url

        lines = []
        for c in self.citations:
            url = safe_url(c.url)
            title = f"[{escape_markdown(c.title)}]({url})" if url else escape_markdown(c.title)
            lines.append(f"- [{c.number}] {title}")  # ours: no user text can define a [n]: link
            if evidence:
                quotes = c.evidence or ([c.snippet] if c.snippet else [])
                lines += [f"  > “{escape_markdown(' '.join(q.split()))}”" for q in quotes]
        return "\n".join(lines)

    def to_markdown(self) -> str:
        """The answer with its bibliography, ready to paste into notes. Model text, question,
        titles and quotes are escaped as text: an image or link the model was led to write
        (by an abstract, say) stays characters in any Markdown viewer; nothing loads."""
        from assistant.safety import escape_markdown

        body = "\n".join(escape_markdown(line) for line in self.text.splitlines())
        parts = [f"**Q:** {escape_markdown(' '.join(self.question.split()))}", "", body]
        if self.citations:
            parts += ["", "**References**", "", self.bibliography()]
        return "\n".join(parts) + "\n"
