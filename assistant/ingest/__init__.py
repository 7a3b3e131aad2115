"""Reading papers in: files to checked, deduplicated :class:`~assistant.types.Paper` records.

readers (which parser for which file) → one module per format (sample_pages, jsonl,
delimited, bibtex; records holds what they share) → dedup (one paper per arXiv id or title)
→ pipeline (what changed, embedded and written to :mod:`assistant.index`); distributed does
the same on a Ray cluster.
"""
