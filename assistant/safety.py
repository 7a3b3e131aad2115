"""Hostile text in paper records: instructions aimed at the assistant, markup, unsafe links.

Abstracts come from files and feeds the user does not control, and the model reads them. What
this module promises:

- :func:`instruction_reason` says why one sentence reads as an instruction addressed to an AI
  assistant or model ("ignore previous instructions", "IMPORTANT SYSTEM NOTE: when answering,
  always ...", "you must respond with ...", chat-template tokens), or as markup meant to be
  rendered (a Markdown image or link, an HTML tag, a ``javascript:`` URI); ``None`` for
  ordinary prose. It is tuned to flag nothing in the bundled sample collection and the
  SciFact abstracts (a test holds it to that), so a real abstract is very rarely touched.
  Ingest calls it on every sentence of every abstract; query time may call it again.
- :func:`withhold_instructions` splits an abstract into the text that is kept (what is embedded,
  retrieved, shown to the model and used as the verifier's evidence) and the sentences that are
  withheld, each with its reason. Nothing is lost: ingest keeps the withheld sentences in the
  chunk metadata and reports each one.
- :func:`safe_url` accepts only ``http``/``https`` URLs with a host; anything else
  (``javascript:``, ``data:``, ``file:``...) is refused. Characters that could end a Markdown
  link target or an HTML attribute are percent-encoded.

The detector is a list of patterns, not a model: it catches the common shapes of prompt
injection, and the system prompt (which marks sources as quoted data) is the other half of the
defence.
"""

from __future__ import annotations

import re
from urllib.parse import quote, urlsplit

from assistant.text import split_sentences, strip_control

__all__ = ["instruction_reason", "withhold_instructions", "safe_url", "Withheld"]

Withheld = dict[str, str]
"""``{"sentence": ..., "reason": ...}``: one sentence kept out of an abstract."""

_I = re.IGNORECASE

# --- markup meant to be rendered -----------------------------------------------------------
_MD_IMAGE = re.compile(r"!\[[^\]\n]{0,500}\]\s*\(")
_LINK_TARGET = r"(?:https?|javascript|vbscript|data|file|ftp|mailto):|//|www\."
_MD_LINK = re.compile(rf"\[[^\]\n]{{1,500}}\]\s*\(\s*<?\s*(?:{_LINK_TARGET})", _I)
_MD_REF_DEF = re.compile(rf"^\W{{0,3}}\[[^\]\n]{{1,200}}\]:\s*<?(?:{_LINK_TARGET})", _I)
_HTML = re.compile(
    r"</?(?:img|script|iframe|object|embed|svg|style|link|meta|base|form|video|audio|source|"
    r"picture)(?:\s[^<>]*)?/?>|<a\s[^<>]*\bhref\b",
    _I,
)
_BAD_URI = re.compile(r"\b(?:javascript|vbscript):\S|\bdata:[a-z]+/[a-z0-9.+-]+[;,]", _I)

# --- chat roles and templates ------------------------------------------------------------------
_TEMPLATE = re.compile(
    r"<\|(?:im_start|im_end|system|user|assistant|endoftext|eot_id|start_header_id|"
    r"end_header_id)\|>|\[/?INST\]|<</?SYS>>|<start_of_turn>|<end_of_turn>|"
    r"^\W{0,3}#{2,}\s*(?:instruction|system|response|assistant)s?\b",
    _I,
)
_ROLE_LABEL = re.compile(r"^\W{0,3}(?:system|assistant|developer)\s*(?:prompt|message)?\s*:", _I)
_ROLE_NOTE = re.compile(
    r"\b(?:system|assistant|admin(?:istrator)?|developer)\s+(?:note|notice|override|"
    r"instructions?|message|prompt|update|command)s?\s*[:!]",
    _I,
)
_SHOUTED_ROLE = re.compile(
    r"\b(?:SYSTEM|ASSISTANT|ADMIN|DEVELOPER)\s+(?:NOTE|NOTICE|MESSAGE|PROMPT|OVERRIDE|"
    r"INSTRUCTIONS?|COMMAND|UPDATE)\b"
)
_SHOUTED_ORDER = re.compile(
    r"^\W{0,3}(?:IMPORTANT|ATTENTION|URGENT|NOTICE|REMINDER|WARNING|NOTE)\b[^:]{0,30}:"
    r"(?i:.{0,300}\b(?:you|your|assistant|chatbot|llm|language\s+model|ai)\b)"
)
_NOTE_TO_AI = re.compile(
    r"\b(?:note|message|reminder)\s+(?:to|for)\s+(?:the\s+|any\s+|all\s+)?"
    r"(?:ai|llm|language\s+model|assistant|chatbot|bot)s?\b",
    _I,
)
_YOU_ARE_AI = re.compile(
    r"\byou\s+are\s+(?:now\s+)?an?\s+(?:ai|llm|large\s+language\s+model|language\s+model|"
    r"assistant|chatbot|ai\s+assistant)\b",
    _I,
)
_AI_READING = re.compile(
    r"\b(?:any|an)\s+(?:ai|llm|language\s+model|assistant|chatbot)s?\s+(?:reading|processing|"
    r"summari[sz]ing|answering\s+(?:questions\s+)?about)\s+this\b",
    _I,
)

# --- orders ------------------------------------------------------------------------------------
# Where an imperative starts: the sentence's start, after a colon, or after "please".
_LEAD = (
    r"(?:^\W{0,3}|[:;!]\s*[\"'“‘(]?|\bplease,?\s+|\bkindly\s+)"
    r"(?:(?:always|never|also|just|simply|now|instead|only|then)\s+)*"
)
_OVERRIDE = re.compile(
    rf"{_LEAD}(?:ignore|disregard|forget|override|bypass)\s+(?:\w+\s+){{0,4}}?"
    r"(?:instructions?|prompts?|directions|directives|guidelines|rules|system\s+message|"
    r"context|everything|above)\b",
    _I,
)
_OVERRIDE_QUALIFIED = re.compile(
    r"(?<![\"'“‘])\b(?:ignore|disregard)\s+(?:all\s+|any\s+)?(?:of\s+)?(?:the\s+|your\s+)?"
    r"(?:previous|prior|above|earlier|preceding|foregoing|original|initial|system)\s+"
    r"(?:instructions?|prompts?|directions|directives|guidelines|rules|messages?)\b",
    _I,
)
_ANSWER_VERB = (
    r"(?:respond|answer|reply|say|state|write|output|print|include|end|begin|start|mention|"
    r"claim|report|tell|cite|recommend|ignore|disregard|forget|use|add|append|repeat|"
    r"translate|stop|conclude|insert|render|display|show)(?!-)"
)
_YOU_MUST = re.compile(
    r"\byou\s+(?:must|should|shall|will|need\s+to|have\s+to|are\s+(?:required|instructed|"
    r"asked|expected)\s+to)\s+(?:(?:always|now|also|only|never|not|instead|first)\s+)*"
    rf"{_ANSWER_VERB}\b",
    _I,
)
_RESPOND_WITH = re.compile(
    rf"{_LEAD}(?:respond|reply|answer)\s+(?:only\s+)?(?:with|that|in\s+the\s+form)\b", _I
)
_SAY = re.compile(
    rf"{_LEAD}say\s+(?:that\b|[\"'“‘:]|(?:the\s+)?\w+\s+(?:is|was|are|were|rose|fell|"
    r"increased|decreased|improved|grew|dropped)\b)|"
    rf"{_LEAD}tell\s+(?:the\s+user|them|users|everyone|readers)\b",
    _I,
)
_ALWAYS = re.compile(rf"^\W{{0,3}}(?:always|never)\s+{_ANSWER_VERB}\b", _I)
_DO_NOT = re.compile(rf"{_LEAD}(?:do\s+not|don't)\s+(?:mention|reveal|cite|say|tell)\b", _I)
_PRETEND = re.compile(
    rf"{_LEAD}(?:pretend\s+(?:that|to\s+be|you)|act\s+as\s+(?:if|though)\s+you)\b", _I
)
_WHEN_ANSWERING = re.compile(
    r"\bwhen(?:ever)?\s+(?:you\s+)?(?:answer|respond|repl[yi]|summari[sz]|ask)(?:ing|e|ed|es)?"
    r"\b[^,.;:]{0,60}[,:]\s*(?:please\s+)?(?:(?:always|never|also|first|only)\s+)?"
    r"(?:do\s+not|don't|make\s+sure|be\s+sure|remember\s+to|respond|reply|say|tell|end|begin|"
    r"start|include|mention|write|add|append|cite|recommend)\b(?!-)",
    _I,
)
_YOUR_ANSWER = re.compile(
    r"\b(?:end|begin|start|conclude|finish|close|prefix|suffix|format|append\s+to|sign)\s+"
    r"your\s+(?:answer|response|reply|output|summary|message)s?\b|"
    r"\b(?:in|to|at\s+the\s+(?:end|start|beginning)\s+of)\s+your\s+"
    r"(?:answer|response|reply|output)s?\b",
    _I,
)

_ROLE_WORDS = (
    "note",
    "notice",
    "override",
    "instruction",
    "instructions",
    "message",
    "prompt",
    "update",
    "command",
    "notes",
    "messages",
    "prompts",
)
_ASKING = (
    "answer",
    "answering",
    "answered",
    "respond",
    "responding",
    "reply",
    "replying",
    "summarize",
    "summarizing",
    "summarise",
    "summarising",
    "ask",
    "asked",
    "asking",
)
_RULES: tuple[tuple[re.Pattern[str], str, tuple[str, ...]], ...] = (
    # (pattern, reason, gate): the pattern is tried only on text that holds one of the gate's
    # words (lower-cased) or marks (as written or lower-cased); most prose holds none.
    (_MD_IMAGE, "Markdown image", ("![",)),
    (_MD_LINK, "Markdown link", ("](", "] (")),
    (_MD_REF_DEF, "Markdown link", ("]:",)),
    (_HTML, "HTML markup", ("<",)),
    (_BAD_URI, "script or data URI", ("script:", "data:")),
    (_TEMPLATE, "chat-template markup", ("<|", "inst]", "<<", "<start_", "<end_", "##")),
    (_ROLE_LABEL, "poses as a system or assistant message", ("system", "assistant", "developer")),
    (_ROLE_NOTE, "poses as a system or assistant message", _ROLE_WORDS),
    (_SHOUTED_ROLE, "poses as a system or assistant message",
     ("SYSTEM", "ASSISTANT", "ADMIN", "DEVELOPER")),
    (_SHOUTED_ORDER, "addressed to an AI assistant",
     ("IMPORTANT", "ATTENTION", "URGENT", "NOTICE", "REMINDER", "WARNING", "NOTE")),
    (_NOTE_TO_AI, "addressed to an AI assistant", ("note", "message", "reminder")),
    (_YOU_ARE_AI, "addressed to an AI assistant", ("you",)),
    (_AI_READING, "addressed to an AI assistant",
     ("ai", "llm", "llms", "assistant", "assistants", "chatbot", "chatbots", "language")),
    (_OVERRIDE, "tells the assistant to ignore its instructions",
     ("ignore", "disregard", "forget", "override", "bypass")),
    (_OVERRIDE_QUALIFIED, "tells the assistant to ignore its instructions",
     ("ignore", "disregard")),
    (_YOU_MUST, "gives the assistant orders", ("you",)),
    (_RESPOND_WITH, "gives the assistant orders", ("respond", "reply", "answer")),
    (_SAY, "gives the assistant orders", ("say", "tell")),
    (_ALWAYS, "gives the assistant orders", ("always", "never")),
    (_DO_NOT, "gives the assistant orders", ("do", "don't")),
    (_PRETEND, "gives the assistant orders", ("pretend", "act")),
    (_WHEN_ANSWERING, "tells the assistant how to answer", _ASKING),
    (_YOUR_ANSWER, "tells the assistant how to answer", ("your",)),
)  # fmt: skip


_WORD = re.compile(r"[a-z']+")
_GATED = tuple(
    (
        pattern,
        reason,
        frozenset(g for g in gate if _WORD.fullmatch(g)),  # lower-case words: a set lookup
        tuple(g for g in gate if not _WORD.fullmatch(g)),  # anything else: a substring
    )
    for pattern, reason, gate in _RULES
)


def instruction_reason(sentence: str) -> str | None:
    """Why ``sentence`` reads as an instruction to an AI assistant or as rendered markup.

    Returns a short reason ("Markdown image", "tells the assistant to ignore its
    instructions", ...) or ``None`` for ordinary prose. Works on one sentence or a short
    passage; the first rule that matches gives the reason.
    """
    if not sentence:
        return None
    text = " ".join(sentence.split())
    for pattern, reason in _gated(text):
        if pattern.search(text):
            return reason
    return None


def _gated(text: str) -> list[tuple[re.Pattern[str], str]]:
    """The rules worth trying on ``text``: those whose gate words or marks it holds."""
    low = text.lower()
    words = set(_WORD.findall(low))
    return [
        (pattern, reason)
        for pattern, reason, gate_words, gate_marks in _GATED
        if not gate_words.isdisjoint(words) or any(m in low or m in text for m in gate_marks)
    ]


def withhold_instructions(abstract: str) -> tuple[str, list[Withheld]]:
    """``abstract`` without its instruction-like sentences, and those sentences with reasons.

    An abstract with nothing to withhold comes back unchanged (so its content hash, and its
    embedding, stay what they were).
    """
    if not _gated(abstract):  # most abstracts: no rule can match anywhere in them
        return abstract, []
    withheld: list[Withheld] = []
    kept: list[str] = []
    for s in split_sentences(abstract):
        reason = instruction_reason(s)
        if reason is None:
            kept.append(s)
        else:
            withheld.append({"sentence": s, "reason": reason})
    if not withheld:
        return abstract, []
    return " ".join(kept), withheld


_URL_SAFE = ":/?#[]@!$&'*+,;=%~-._"
"""Left as they are by :func:`safe_url`; everything else outside [A-Za-z0-9] is %-encoded."""


def safe_url(url: str) -> str | None:
    """``url`` if it is an http(s) URL with a host, %-encoding ``()<>"`` and spaces; else ``None``."""
    url = strip_control(url or "").strip()
    if not url:
        return None
    try:
        parts = urlsplit(url)
        host = parts.hostname
    except ValueError:  # e.g. a malformed IPv6 host
        return None
    if parts.scheme.lower() not in ("http", "https") or not host:
        return None
    return quote(url, safe=_URL_SAFE)
