"""The browser chat's HTML for an answer: its text, references, evidence and footer.

Model text is escaped and shown as plain text, never as Markdown or HTML: an image or link the
model writes is shown as characters. The only links are the references' own, and only
http(s) ones (:func:`assistant.safety.safe_url`).
"""

from __future__ import annotations

import html
import re
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from assistant.answer.verify import NO_ANSWER_TEXT, UNSUPPORTED_MARK
from assistant.errors import (
    AssistantError,
    ConfigError,
    IndexMissingError,
    IndexUnavailableError,
    LLMError,
    LLMUnavailableError,
    QuestionError,
)
from assistant.safety import safe_url
from assistant.types import Answer, Citation, Source

if TYPE_CHECKING:
    pass

__all__ = ["render_answer"]

PENDING_HTML = '<span class="pa-pending">Searching the papers…</span>'
CURSOR = " ▍"
_GENERIC_REFUSAL = re.compile(r"\bnot\b.{0,40}\banswer", re.IGNORECASE)
"""A model's refusal that only repeats NO_ANSWER_TEXT (shown once, not twice)."""
STOPPED_HTML = ' <span class="pa-pending">(stopped)</span>'


# --------------------------------------------------------------------------------------------
# rendering (pure functions: Answer -> chat message HTML/Markdown)
# --------------------------------------------------------------------------------------------


_MARKDOWN_PUNCT = re.compile(r"[\\`*_{}\[\]()#+\-.!|~$:=^@%]")


def _esc(text: str) -> str:
    """``text`` as plain characters in the chat's Markdown-with-HTML: HTML is escaped, and so
    is every character Markdown could read as syntax (as numeric references, which the
    browser shows as the characters), so ``![x](url)``, ``[x](url)`` and bare URLs are never
    rendered as images or links."""
    escaped = html.escape(text or "", quote=True)
    return _MARKDOWN_PUNCT.sub(lambda m: f"&#{ord(m.group())};", escaped)


def _plain(text: str) -> str:
    """Model text as one HTML block of plain text (line breaks kept)."""
    return '<div class="pa-plain">' + _esc(text).replace("\n", "<br>") + "</div>"


def _answer_body(text: str) -> str:
    """The verified text as plain text, with the unsupported mark as a visible badge."""
    badge = (
        '<span class="pa-unverified" title="No retrieved abstract supports this sentence">'
        "⚠ unverified</span>"
    )
    return _plain(text).replace(_esc(UNSUPPORTED_MARK), badge)


def _highlight(abstract: str, snippets: Sequence[str]) -> str:
    body = _esc(abstract)
    for snippet in snippets:
        snip = _esc(snippet.strip())
        if snip and snip in body:
            body = body.replace(snip, f"<mark>{snip}</mark>", 1)
    return body


def _reference(c: Citation, source: Source | None) -> str:
    title = _esc(c.title)
    url = safe_url(c.url)  # our citation data; an index written before links were checked
    if url:
        title = f'<a href="{_esc(url)}" target="_blank" rel="noopener noreferrer">{title}</a>'
    meta = [m for m in (source.authors if source else "", source.date if source else "") if m]
    meta_html = f'<span class="pa-ref-meta">{_esc(" · ".join(meta))}</span>' if meta else ""
    quotes = c.evidence or [c.snippet or (source.passages[0] if source and source.passages else "")]
    abstract = c.abstract or (source.abstract if source else "")
    said = " ".join(f"“{_esc(q)}”" for q in quotes if q)
    return (
        '<details class="pa-ref"><summary>'
        f'<span class="pa-ref-num">[{c.number}]</span><span class="pa-ref-title">{title}</span>'
        f"{meta_html}"
        f'<span class="pa-ref-snippet">{said} '
        '<span class="pa-ref-more">show abstract ▸</span></span>'
        "</summary>"
        f'<div class="pa-abstract">{_highlight(abstract, quotes)}</div>'
        "</details>"
    )


def _searched(sources: Sequence[Source], label: str) -> str:
    items = "".join(f"<li>{_esc(s.title)}</li>" for s in sources)
    return (
        f'<details class="pa-searched"><summary>{_esc(label)}</summary><ol>{items}</ol></details>'
    )


def _footer(answer: Answer, filters: Sequence[str]) -> str:
    parts = []
    stated = [s for s in answer.sentences if not s.quoted]
    quotes = len(answer.sentences) - len(stated)
    if stated:
        ok = sum(1 for s in stated if s.supported)
        parts.append(f"{ok} of {len(stated)} statements verified")
    if quotes:
        parts.append(f"{quotes} sentence{'s' * (quotes > 1)} quoted from the abstracts")
    total = answer.timings.get("total")
    if total is not None:
        parts.append(f"{total:.1f} s")
    if answer.model:
        parts.append(answer.model)
    if filters:
        parts.append("filters: " + ", ".join(filters))
    return f'<div class="pa-footer">{_esc(" · ".join(parts))}</div>' if parts else ""


def render_answer(answer: Answer, filters: Sequence[str] = ()) -> str:
    """One chat message for a finished answer: text, references, and a small footer.

    HTML blocks are written on one line each: the chat renders Markdown, where a blank line
    would end an HTML block.
    """
    if not answer.answerable:
        text = NO_ANSWER_TEXT
        reason = answer.text[len(NO_ANSWER_TEXT) :].strip()
        if answer.text.startswith(NO_ANSWER_TEXT) and not _GENERIC_REFUSAL.search(reason):
            text = f"{NO_ANSWER_TEXT} {reason}".strip()
        out = f'<div class="pa-notice">{_esc(text)}</div>'
        if filters:
            out += '<div class="pa-footer">The side panel\'s filters narrowed the search.</div>'
        if answer.sources:
            n = len(answer.sources)
            out += _searched(
                answer.sources,
                f"{n} paper{'s' if n != 1 else ''} searched; none supports an answer",
            )
        return out + _footer(answer, filters)
    by_id = {s.paper_id: s for s in answer.sources}
    out = _answer_body(answer.text)
    if answer.citations:
        refs = "".join(_reference(c, by_id.get(c.paper_id)) for c in answer.citations)
        out += f'\n\n<div class="pa-refs"><div class="pa-refs-title">References</div>{refs}</div>'
    cited = {c.paper_id for c in answer.citations}
    rest = [s for s in answer.sources if s.paper_id not in cited]
    if rest:
        out += "\n\n" + _searched(rest, f"Also searched ({len(rest)})")
    return out + "\n\n" + _footer(answer, filters)


def _render_streaming(raw: str) -> str:
    return _plain(raw) + CURSOR


def _message_text(message: dict[str, Any]) -> str:
    """The text of a chat message as the Chatbot hands it back (a str or content parts)."""
    content = message.get("content")
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(str(p.get("text", "")) for p in content if isinstance(p, dict))
    return ""


_SHOWN_TO_ANYONE = (QuestionError, ConfigError)
"""Errors about what the user typed (the question, a filter): their message is the remedy and
holds nothing of the server's, so every user sees it."""
_SHORT = {
    IndexMissingError: "the index holds no papers yet",
    IndexUnavailableError: "the paper index cannot be read right now",
    LLMUnavailableError: "the language model cannot be reached right now",
    LLMError: "the language model failed to answer",
}


def _render_error(exc: BaseException, detail: bool = True, error_id: str | None = None) -> str:
    """The chat message for a failed question. ``detail`` (a browser on this machine): the
    error's own message, which names paths, URLs and remedies. Otherwise, for anything but a
    mistake in the question or a filter, a short message and the id the server log gives
    the details under: a remote user never sees a path, a URL or a server's reply."""
    ref = f" (error {error_id}; the server log has the details)" if error_id else ""
    if isinstance(exc, _SHOWN_TO_ANYONE) or (detail and isinstance(exc, AssistantError)):
        msg = str(exc)
    elif detail:
        msg = f"unexpected error ({type(exc).__name__}: {exc}); the server log has the details"
    else:
        short = next((m for t, m in _SHORT.items() if isinstance(exc, t)), "something went wrong")
        msg = f"{short}; please try again later{ref or ' (the server log has the details)'}"
    return f'<div class="pa-error">⚠ {_esc(msg)}</div>'
