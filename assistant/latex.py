"""LaTeX markup in records made readable, on pylatexenc: the one converter that reading (every
format, BibTeX included) and the evaluation's fact matching share.

What changes: escapes (``96.38\\%`` → ``96.38%``), accents (``Schr\\"odinger`` →
``Schrödinger``), formatting (``\\textbf{BERT}`` → ``BERT``), a thousands separator
(``10\\,000`` → ``10,000``), and math that converts without loss: only letters, digits,
operators and symbols pylatexenc knows (``$\\times$`` → ``×``, ``$\\alpha=0.5$`` →
``α=0.5``). What is kept as written: other math (``$\\mathcal{L}_{KL}$``, ``$10^{-3}$``),
macros pylatexenc does not know (``\\ourmethod``), and references (``\\cite{x}``). A bare
``%`` is a percent sign, not a comment (abstracts are not LaTeX documents). Text without a
backslash or a dollar sign is returned unchanged, so plain abstracts cost nothing; markup
pylatexenc cannot parse (an unbalanced brace, nesting too deep) is returned as it came.
"""

from __future__ import annotations

import logging
import re
from functools import lru_cache
from typing import Any

__all__ = ["latex_to_text"]

log = logging.getLogger(__name__)

_BARE_PERCENT = re.compile(r"(?<!\\)%")
_DOLLAR = re.compile(r"(?<!\\)\$")
_MATH_PAIR = re.compile(r"(?<!\\)\$([^$]{1,160})(?<!\\)\$")
_WORD = re.compile(r"(?<![\\\w])[A-Za-z]{2,}\b")
PROSE_WORDS = 4
"""Words (not macro names) between two dollar signs from which what lies between them is
prose ("saves $750 million if 7% of patients ... $200"): they are currency, not math."""
_THOUSANDS = re.compile(r"(?<=\d)\\,(?=\d{3}(?!\d))")
_VERBATIM_MACROS = frozenset({"cite", "citep", "citet", "citealp", "ref", "eqref", "label"})
_LOSSLESS_MATH = re.compile(r"^[\sA-Za-z0-9.,;:!?=+\-*/<>|()\[\]']*$")
"""What math may hold, besides known symbol macros, to be converted: no braces, no sub- or
superscripts, no environments."""
_MARKUP = re.compile(r"\\(?:[A-Za-z]+|[%&_#$,;:!{}'\"`^~=.])|\$")
"""What makes a text LaTeX: a macro, an escape or a dollar sign (a lone backslash does not)."""
MAX_CHARS = 200_000
"""Longer texts are converted line by line, and a longer line is kept as it is (an abstract
over the reader's limit is skipped anyway)."""


@lru_cache(maxsize=1)
def _converter() -> Any:
    from pylatexenc.latex2text import LatexNodes2Text, MacroTextSpec, get_default_latex_context_db
    from pylatexenc.latexwalker import LatexCharsNode, LatexGroupNode, LatexMacroNode

    class Converter(LatexNodes2Text):  # type: ignore[misc]
        def _kept(self, node: Any) -> bool:
            return isinstance(node, LatexMacroNode) and (
                node.macroname in _VERBATIM_MACROS
                or self.latex_context.get_macro_spec(node.macroname) is None
            )

        def nodelist_to_text(self, nodelist: Any) -> str:
            # A macro kept as written keeps the brace groups that follow it (pylatexenc
            # parses no arguments for a macro it does not know): each such run becomes
            # plain characters.
            nodes: list[Any] = []
            run: list[Any] = []
            for node in nodelist or []:
                if self._kept(node) or (run and isinstance(node, LatexGroupNode)):
                    run.append(node)
                    continue
                if run:
                    nodes.append(_as_chars(run))
                    run = []
                nodes.append(node)
            if run:
                nodes.append(_as_chars(run))
            return str(super().nodelist_to_text(nodes))

        def macro_node_to_text(self, node: Any) -> str:
            if self._kept(node):
                return str(node.latex_verbatim())
            if node.macroname == "url" and node.nodeargd and node.nodeargd.argnlist:
                return str(node.nodeargd.argnlist[-1].latex_verbatim()).strip("{}")
            return str(super().macro_node_to_text(node))

        def math_node_to_text(self, node: Any) -> str:
            verbatim = str(node.latex_verbatim())
            inner = node.nodelist or []
            known = all(
                not isinstance(n, LatexMacroNode)
                or (
                    self.latex_context.get_macro_spec(n.macroname) is not None
                    and not (n.nodeargd and n.nodeargd.argnlist)
                )
                for n in inner
            )
            plain = "".join(
                "" if isinstance(n, LatexMacroNode) else str(n.latex_verbatim()) for n in inner
            )
            if known and _LOSSLESS_MATH.match(plain):
                return str(super().math_node_to_text(node)).strip()
            return verbatim

    def _as_chars(run: list[Any]) -> Any:
        first, last = run[0], run[-1]
        return LatexCharsNode(
            chars="".join(str(n.latex_verbatim()) for n in run),
            parsing_state=first.parsing_state,
            pos=first.pos,
            len=last.pos + last.len - first.pos,
        )

    context = get_default_latex_context_db()  # a new database each call: ours to extend
    context.add_context_category(
        "paper-assistant",
        macros=[
            *(MacroTextSpec(name, "%(1)s") for name in ("texttt", "textsf")),
            MacroTextSpec("sim", "~"),  # "about", as abstracts use it ($\\sim$5%)
            # font declarations ({\\em word}): the word stays, the declaration goes
            *(MacroTextSpec(name, "") for name in ("em", "bf", "it", "rm", "sf", "tt", "sc")),
        ],
        prepend=True,
    )
    return Converter(
        latex_context=context, math_mode="text", strict_latex_spaces=False, keep_comments=True
    )


def _currency(text: str) -> str:
    """Escape every dollar sign that does not delimit math: unpaired ones, and pairs with
    prose between them (see :data:`PROSE_WORDS`)."""
    if "$" not in text:
        return text
    math: set[int] = set()
    for m in _MATH_PAIR.finditer(text):
        if len(_WORD.findall(m.group(1))) < PROSE_WORDS:
            math.update((m.start(), m.end() - 1))
    return _DOLLAR.sub(lambda m: m.group(0) if m.start() in math else r"\$", text)


def latex_to_text(text: str, *, braces: bool = False) -> str:
    """Readable text from ``text`` (see the module docstring). ``braces``: the text is LaTeX
    through and through (a BibTeX field), so protective braces (``{BERT}``) go even when
    there is no macro."""
    if not text or not (_MARKUP.search(text) or (braces and "{" in text)):
        return text
    if len(text) > MAX_CHARS:
        return "".join(
            latex_to_text(line, braces=braces) if len(line) <= MAX_CHARS else line
            for line in text.splitlines(keepends=True)
        )
    source = _currency(_BARE_PERCENT.sub(r"\\%", _THOUSANDS.sub(",", text)))
    try:
        return str(_converter().latex_to_text(source))
    except (RecursionError, ValueError, IndexError, KeyError, TypeError) as exc:
        log.debug("LaTeX kept as written (%s): %.80r", type(exc).__name__, text)
        return text
