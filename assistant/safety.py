"""Hostile text in paper records: instructions aimed at the assistant, markup, unsafe links.

Abstracts and titles come from files and feeds the user does not control, and the model reads
them. The defence has layers, each tested on its own:

1. **Normalization.** :func:`detection_view` is what every check reads: control and format
   characters removed, NFKC, accents off Latin letters, look-alike Cyrillic and Greek letters
   folded inside Latin words, leetspeak and spaced letters ("I g n o r e") undone. Stored text
   is normalized too (:func:`assistant.text.normalize_text`), before it is embedded.
2. **The detector.** :func:`instruction_reason` says why a sentence reads as an instruction to
   an AI assistant or as markup meant to be rendered; ``None`` for ordinary prose. Direct rules
   catch the unmistakable shapes (an order to ignore instructions in nine languages, the
   prompt's delimiters and chat-template tokens, role labels, Markdown images and links, HTML,
   script URIs); a score (:func:`instruction_score`) the rest: *order* cues (an imperative,
   "must", "is required to", "say that") and *target* cues (an AI or LLM addressed, "you",
   "this abstract" being read, "your answer", "note to ...", a link or the system prompt asked
   for) in nine languages (``safety_cues.json``), both needed. Held to flag none of the 7,000
   real sentences of the sample collection and SciFact; measured on ``evals/attacks``.
3. **Spans, not neighbours.** :func:`withhold_instructions` withholds the flagged spans line by
   line; a plant glued to a real sentence without a full stop is cut off it.
4. **Source text never becomes structure.** :func:`neutralize_source` renders titles and
   passages into the prompt on one line, with the prompt's delimiters (``<papers>``) and
   anything shaped like a chat-template token (``<|...|>``, ``[INST]``, ``<<SYS>>``) made
   inert and straight quotes typographic; the local model tokenizes message text without
   special tokens (:mod:`assistant.llm.literal_chat`).

Leaving the assistant: :func:`safe_url`, :func:`escape_markdown`, :func:`redact_url`.
"""

from __future__ import annotations

import json
import re
import unicodedata
from functools import cache
from pathlib import Path

from assistant.text import (  # noqa: F401 - the URL and Markdown helpers are this module's API too
    escape_markdown,
    redact_url,
    safe_url,
    split_sentences,
    strip_control,
)

__all__ = ["instruction_reason", "withhold_instructions", "detection_view", "instruction_score",
           "neutralize_source", "escape_markdown", "redact_url", "safe_url", "Withheld"]  # fmt: skip

Withheld = dict[str, str]
"""``{"sentence": ..., "reason": ...}``: one span kept out of an abstract or a title."""

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
    r"\b(?:note|message|reminder|instructions?|notice|memo)\s+(?:to|for)\s+(?:the\s+|any\s+|all\s+)?"
    r"(?:ai|llm|language\s+model|assistant|chatbot|bot|summari[sz]er|ai\s+\w+)s?\b"
    r"|^\W{0,3}(?:a\s+)?(?:note|message|reminder|memo)\s+(?:to|for)\s+(?:the\s+|any\s+|all\s+)?"
    r"(?:models?|agents?|systems?|tools?|readers?\s+that\s+are)\b",
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
    rf"{_LEAD}(?:respond|reply|answer)\s+(?:to\s+(?:the\s+)?(?:user|reader|question)s?\s+)?"
    r"(?:(?:only|exclusively|solely|just|simply)\s+)?(?:with|that|in\s+the\s+form)\b",
    _I,
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

_ROLE_WORDS = tuple(
    "note notice override instruction instructions message prompt update command notes "
    "messages prompts".split()
)
_ASKING = tuple(
    "answer answering answered respond responding reply replying summarize summarizing "
    "summarise summarising ask asked asking".split()
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
    (_NOTE_TO_AI, "addressed to an AI assistant",
     ("note", "message", "reminder", "instruction", "instructions", "notice", "memo")),
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


# --- structure: the prompt's delimiters, chat-template tokens, fake turns ---------------------
_STRUCTURE = re.compile(
    r"<\s*[|｜][^<>\n]{1,60}?[|｜]\s*>"  # <|im_start|>, <|file_sep|>, <｜User｜>
    r"|<\s*/?\s*[a-z]+(?:_[a-z]+)+\s*>"  # <start_of_turn>, <end_of_text>
    r"|</?\s*(?:s|bos|eos|papers?|sources?|context|system|user|assistant|human|bot|"
    r"instructions?|turn|documents?|tool\w*|function\w*)\s*>"
    r"|\[\s*/\s*[a-z_]{2,30}\s*\]|\[[a-z]+(?:_[a-z]+)+\]|\[/?inst\]|<<\s*/?\s*sys\s*>>",
    _I,
)
_FAKE_TURN = re.compile(
    r"\b(?:question|user|human)\s*:\s*\S.{0,300}?\b(?:answer|assistant|response)\s*:", _I
)
_FAKE_SOURCE = re.compile(
    r"^\W{0,2}\[\d{1,3}\]\s+(?:an?\s+|the\s+)?(?:official\s+|new\s+|updated\s+|important\s+)?"
    r"(?:erratum|errata|correction|update|notice|note|source|addendum|retraction)\b",
    _I,
)
_ANSWER_LABEL = re.compile(r"^\W{0,3}(?:answer|response|final answer)\s*:", _I)
_VOCATIVE = re.compile(
    r"^\W{0,3}(?:hey|hi|hello|dear|attention|attn|psst)\s*,?\s+(?:the\s+)?(?:ai|llms?|language\s+"
    r"models?|chatbots?|chat\s?gpt|gpt[\w.-]*|claude|gemini|copilot|(?:ai|reader)\s+\w+|assistants?)\b",
    _I,
)
_SPACED = re.compile(r"(?<![\w])(?:[a-z][ .\-_*·]){3,}[a-z](?![\w])", _I)
_SPACED_CUES = ("ignore", "disregard", "instruction", "systemprompt", "forget", "override")
_STRUCTURE_RULES = (
    (_STRUCTURE, "chat-template markup or the prompt's delimiters"),
    (_FAKE_TURN, "poses as a question and answer of the prompt"),
    (_FAKE_SOURCE, "poses as a source of the prompt"),
    (_ANSWER_LABEL, "poses as a question and answer of the prompt"),
    (_VOCATIVE, "addressed to an AI assistant"),
)


# --- normalization for detection ----------------------------------------------------------------
_CONFUSABLES = str.maketrans(
    "АВЕЅІЈКМНОРСТХУаеѕіјорсхуԁһӏԛԝΑΒΕΖΗΙΚΜΝΟΡΤΥΧαοιυνρτκε",
    "ABESIJKMHOPCTXYaesijopcxydhlqwABEZHIKMNOPTYXaoiuvptke",
)
_MIXED_WORD = re.compile(r"\w*[A-Za-z]\w*")
_LEET_WORD = re.compile(r"\b(?=\w*[a-z])(?=\w*[013457@$])[\w@$]{4,}\b", _I)
_LEET = str.maketrans("013457@$", "oieastas")
_MARKS = re.compile(r"(?<=[A-Za-z])[\u0300-\u036f]+")


def _plain_letters(text: str) -> str:
    """``text`` without accents on Latin letters (other scripts keep theirs: й stays й)."""
    return unicodedata.normalize("NFC", _MARKS.sub("", unicodedata.normalize("NFD", text)))


def detection_view(text: str) -> str:
    """``text`` as the detector reads it (see the module's point 1): invisible characters
    removed, compatibility forms and look-alike letters folded, obfuscations undone, one
    line. Only for checking: never stored or shown."""
    text = unicodedata.normalize("NFKC", strip_control(text or ""))
    if not text.isascii():
        text = _plain_letters(text)
        text = _MIXED_WORD.sub(lambda m: m.group().translate(_CONFUSABLES), text)
    text = _LEET_WORD.sub(lambda m: m.group().translate(_LEET), text)
    return " ".join(text.split())


def _spaced_cue(view: str) -> bool:
    """Letters spaced or dotted apart ("I g n o r e") that, joined, hold an override word."""
    for m in _SPACED.finditer(view):
        joined = re.sub(r"[^a-z]", "", m.group().lower())
        if len(joined) >= 6 and any(c in joined for c in _SPACED_CUES):
            return True
    return False


# --- the score ----------------------------------------------------------------------------------
CUES_FILE = Path(__file__).with_name("safety_cues.json")
ORDER_FEATURES = {"imperative": 1, "strong_imperative": 1, "obligation": 1, "say_that": 2,
                  "override": 1}  # fmt: skip
TARGET_FEATURES = {"addressee": 2, "weak_addressee": 1, "you": 2, "reads_this": 2,
                   "note_to": 3, "label": 3, "answer_frame": 2, "when_answering": 1,
                   "mode": 2, "aim": 1, "trigger": 2}  # fmt: skip
FLAG_SCORE = 5
"""A sentence is flagged when its order and target cues each weigh 2 or more and together
:data:`FLAG_SCORE` or more."""
_SAY_POSITION = re.compile(
    r"(?:[:;,!(\"“—]\s*|\b(?:please|kindly|to|and|must|should|shall|always|also|then|"
    r"instead|now|simply|just|will|first|only)\s+)$"
)
_OVERRIDE_POSITION = re.compile(
    r"(?:[:;,!?(\"“—–，：；。]\s*|\b(?:please|kindly|now|just|simply|and|then|also|first|"
    r"to|must|should)\s+|请)$"
)
_QUOTED = re.compile(r"[\"“«‘][^\"”»’]{1,80}[\"”»’]")
_LANGUAGES = json.loads(CUES_FILE.read_text(encoding="utf-8"))["_languages"]
_GROUPS: dict[str, str] = _LANGUAGES["groups"]
_LATIN_HINTS = frozenset(_LANGUAGES["latin_hints"].split())
_CYRILLIC = re.compile(r"[\u0400-\u04ff]")
_CJK = re.compile(r"[\u3040-\u30ff\u4e00-\u9fff\uff00-\uffef]")


def _at(position: re.Pattern[str], low: str, start: int) -> bool:
    """Whether ``low[start:]`` stands where an order would: the text's start, or after one of
    ``position``'s leads (looked for in the 24 characters before, so the check is bounded)."""
    window = max(0, start - 24)
    if start <= 24 and not low[window:start].strip():
        return True
    return bool(position.search(low, window, start))


@cache
def _cues(groups: frozenset[str] = frozenset({"en"})) -> dict[str, re.Pattern[str]]:
    """One compiled pattern per feature, of the languages of ``groups`` (``en``, ``latin``,
    ``cyrillic``, ``cjk``), read as the detector reads text (accents off Latin letters).
    English ``say_that`` is kept apart as ``say_that_en``: it counts only where an order
    would stand (not after "we")."""
    data = json.loads(CUES_FILE.read_text(encoding="utf-8"))
    out = {}
    for feature, by_lang in data.items():
        if feature.startswith("_"):
            continue
        langs = {k: _plain_letters(v) for k, v in by_lang.items() if _GROUPS[k] in groups}
        if feature == "say_that":
            out["say_that_en"] = re.compile(langs.pop("en", "(?!)"))
        out[feature] = re.compile("|".join(f"(?:{v})" for v in langs.values()) or "(?!)")
    return out


def _groups(low: str) -> frozenset[str]:
    """The language groups whose cues are worth trying on ``low`` (English always)."""
    groups = {"en"}
    if not low.isascii():
        if _CYRILLIC.search(low):
            groups.add("cyrillic")
        if _CJK.search(low):
            groups.add("cjk")
    if not _LATIN_HINTS.isdisjoint(low.split()):
        groups.add("latin")
    return frozenset(groups)


def instruction_score(sentence: str) -> tuple[int, int, list[str]]:
    """(order weight, target weight, the features found) of ``sentence`` (see
    :data:`FLAG_SCORE`). Text in quotation marks does not count: it is mentioned, not said.
    Target cues are looked for only when the order cues weigh enough to matter."""
    low = _QUOTED.sub(" ", detection_view(sentence)).lower()
    cues = _cues(_groups(low))
    found: list[str] = []
    order = target = 0
    for feature, weight in ORDER_FEATURES.items():
        hit = cues[feature].search(low) is not None
        if feature == "say_that" and not hit:
            hit = any(_at(_SAY_POSITION, low, x.start()) for x in cues["say_that_en"].finditer(low))
        if hit:
            order += weight
            found.append(feature)
    if order and "obligation" in found and cues["output_verb"].search(low):
        order += 1
        found.append("output_verb")
    if order < 2:
        return order, target, found
    for feature, weight in TARGET_FEATURES.items():
        hits = (
            len(cues[feature].findall(low)) if feature == "aim" else bool(cues[feature].search(low))
        )
        if hits:
            target += weight * min(2, int(hits))
            found.append(feature)
    if "override" in found:
        target += 1
    return order, target, found


def _scored_reason(sentence: str) -> str | None:
    order, target, found = instruction_score(sentence)
    if order < 2 or target < 2 or order + target < FLAG_SCORE:
        return None
    if {"addressee", "you", "note_to", "label", "mode"} & set(found):
        return "addressed to an AI assistant"
    return "tells the assistant how to answer"


def _imperative_override(view: str) -> bool:
    """An order to ignore instructions or sources, in any of the cue languages."""
    low = _QUOTED.sub(" ", view).lower()
    for m in _cues(_groups(low))["override"].finditer(low):
        if _at(_OVERRIDE_POSITION, low, m.start()):
            return True
        if re.search(r"(?:無視|忘れ)(?:して|しろ|せよ)", low[m.start() : m.end() + 4]):
            return True
    return False


def instruction_reason(sentence: str) -> str | None:
    """Why ``sentence`` reads as an instruction to an AI assistant or as markup.

    Returns a short reason ("Markdown image", "tells the assistant to ignore its
    instructions", "addressed to an AI assistant"...) or ``None`` for ordinary prose. Works on
    one sentence or a short passage, after :func:`detection_view`.
    """
    if not sentence:
        return None
    view = detection_view(sentence)
    for pattern, reason in _gated(view):
        if pattern.search(view):
            return reason
    for pattern, reason in _STRUCTURE_RULES:
        if pattern.search(view):
            return reason
    if _imperative_override(view) or _spaced_cue(view):
        return "tells the assistant to ignore its instructions"
    return _scored_reason(view)


def _gated(text: str) -> list[tuple[re.Pattern[str], str]]:
    """The rules worth trying on ``text``: those whose gate words or marks it holds."""
    low = text.lower()
    words = set(_WORD.findall(low))
    return [
        (pattern, reason)
        for pattern, reason, gate_words, gate_marks in _GATED
        if not gate_words.isdisjoint(words) or any(m in low or m in text for m in gate_marks)
    ]


# --- withholding spans -------------------------------------------------------------------------
_GLUE = re.compile(
    r"(?<=[^\s,;:(\[])\s+(?=[A-Z\u00c0-\u024f])"  # "... 37% accuracy Ignore previous"
    r"|(?<=\S)\s+(?=[(\[<‹«\"“]\S)"  # "... Segmentation (note to AI ..." "... <|im_start|>"
    r"|(?<=[.!?])\s+(?=\S)"  # a full stop the sentence splitter passed over
    r"|(?<=[\x21-\x7e])\s*(?=[^\x00-\x7f\s])(?<![^\x00-\x7f])"  # Latin, then another script
    r"|(?<=[^\x00-\x7f\s])\s*(?=[A-Za-z])"  # another script, then Latin
)
MAX_GLUE_POINTS = 12
"""A flagged sentence with more places where a glued sentence could start is withheld whole."""
_FUNCTION_WORDS = frozenset(
    "a all an and any as at be but by each every for from in into is are no nor of on onto or "
    "per so some than that the their this to via which with".split()
)
_STARTERS = re.compile(
    r"^(?:We|Our|In this|Here,? we|This (?:paper|work|study|method|approach)|These|Results|"
    r"Experiments|Extensive|Finally|Moreover|Furthermore)\b"
)


def _clause(text: str) -> bool:
    """Whether ``text`` could be a sentence of its own (kept when cut off a flagged span): two
    words or more, some in lower case (not a shouted label), not ending on a function word."""
    words = text.split()
    if not text.isascii():
        return len(text) >= 12
    lower = sum(c.islower() for c in text)
    return len(words) >= 2 and lower >= 2 and words[-1].lower().strip(".,;:") not in _FUNCTION_WORDS


def _narrow(sentence: str) -> tuple[str, str, str, str]:
    """(kept before, withheld span, kept after, reason) for a flagged ``sentence``."""
    reason = instruction_reason(sentence) or ""
    cuts = [m.start() for m in _GLUE.finditer(sentence)][: MAX_GLUE_POINTS + 1]
    if not cuts or len(cuts) > MAX_GLUE_POINTS:
        return "", sentence, "", reason
    before, span = "", sentence
    for cut in reversed(cuts):  # the longest clean head whose rest is flagged
        head, rest = sentence[:cut].strip(), sentence[cut:].strip()
        if _clause(head) and instruction_reason(head) is None and (r := instruction_reason(rest)):
            before, span, reason = head, rest, r
            break
    after = ""
    offset = len(sentence) - len(span)
    for cut in cuts:  # a clean sentence glued after the span, starting as abstracts' do
        if cut <= offset:
            continue
        head, tail = sentence[offset:cut].strip(), sentence[cut:].strip()
        if _STARTERS.match(tail) and _clause(tail) and instruction_reason(tail) is None:
            if r := instruction_reason(head):
                span, after, reason = head, tail, r
                break
    return before, span, after, reason


_CJK_END = re.compile(r"(?<=[。！？])\s*")
_CARRIED = ("chat-template markup", "poses as a source")
_TOKEN_TEXT = re.compile(r"<[^<>\n]{1,60}>|\[/?[^\[\]\n]{2,30}\]|<<[^<>]{1,20}>>")


def _opens_a_message(span: str) -> bool:
    """Whether a withheld span is chat-template tokens alone (and a word or two: a role, a
    name): the message it opens is on the next line."""
    words = _TOKEN_TEXT.sub(" ", span).split()
    return len(words) <= 2 and bool(_TOKEN_TEXT.search(span))


def withhold_instructions(abstract: str, *, sentences: bool = True) -> tuple[str, list[Withheld]]:
    """``abstract`` without its instruction-like spans, and those spans with reasons.

    Each line (``\\n``) and each sentence is checked on its own; in a flagged sentence only
    the flagged span is withheld when a real sentence was glued to it (see :func:`_narrow`).
    A line that ends in a chat-template token or poses as a source of the prompt also takes
    the first sentence of the next line with it (the message it opens). The kept text is one
    line. An abstract with nothing to withhold comes back unchanged (so its content hash, and
    its embedding, stay what they were). ``sentences=False`` checks each line whole (a title:
    "the U.S. Economy" is not two sentences).
    """
    if not abstract:
        return abstract, []
    withheld: list[Withheld] = []
    kept: list[str] = []
    carry = ""
    for line in abstract.split("\n"):
        parts = _CJK_END.split(line) if sentences else [line]
        units = [s for part in parts for s in (split_sentences(part) if sentences else [part])]
        units = [u for u in units if u.strip()]
        if carry and units:
            withheld.append({"sentence": units.pop(0), "reason": f"{carry} (continued)"})
        carry = ""
        for s in units:
            if instruction_reason(s) is None:
                kept.append(s)
                continue
            before, span, after, reason = _narrow(s)
            kept += [t for t in (before,) if t]
            withheld.append({"sentence": span, "reason": reason})
            kept += [t for t in (after,) if t]
        last = withheld[-1] if withheld and units else None
        if last and last["reason"].startswith(_CARRIED) and units[-1].endswith(last["sentence"]):
            if last["reason"].startswith("poses") or _opens_a_message(last["sentence"]):
                carry = last["reason"].removesuffix(" (continued)")
    if not withheld:
        return abstract, []
    return " ".join(kept), withheld


# --- rendering source text into the prompt ------------------------------------------------------
_INERT = str.maketrans({"<": "‹", ">": "›", "[": "［", "]": "］"})
_PROMPT_TOKEN = re.compile(
    r"<\s*[|｜][^<>\n]{0,60}?[|｜]\s*>|<<\s*/?\s*[A-Za-z_]{1,20}\s*>>"
    r"|</?\s*[A-Za-z][\w\-:.]{0,40}\s*/?>"
    r"|\[\s*/\s*[A-Za-z_][\w]{0,30}\s*\]|\[[A-Z][A-Z0-9]*(?:_[A-Z0-9]+)+\]|\[[A-Z]{4,30}\]"
    r"|\[SYS\]"
)
_OPEN_QUOTE = re.compile(r'(?:(?<=^)|(?<=[\s(\[{‹«—–-]))"')


def neutralize_source(text: str) -> str:
    """Source text (a title, a passage) as it may stand in the prompt: one line, the prompt's
    delimiters and anything shaped like a chat-template token with look-alike brackets no
    tokenizer reads as structure (``‹|im_start|›``, ``［INST］``), straight double quotes (which
    delimit passages) typographic. Prose without these is unchanged."""
    text = " ".join(strip_control(text or "").split())
    text = _PROMPT_TOKEN.sub(lambda m: m.group().translate(_INERT), text)
    if '"' in text:
        text = _OPEN_QUOTE.sub("“", text).replace('"', "”")
    return text
