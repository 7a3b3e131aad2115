#!/usr/bin/env python3
"""Ingest paper abstracts into the index.

    python ingest.py                      # the bundled sample collection
    python ingest.py papers.jsonl refs.bib --index-dir ./index --json
    python ingest.py --prune ~/papers/    # also drop papers the files no longer list

Formats by extension: .txt (sample listing pages), .jsonl/.json (arXiv metadata snapshot),
.csv/.tsv (title and abstract columns), .bib (BibTeX with abstract fields); --format overrides.
"""

from __future__ import annotations

import sys

from assistant.app.cli import ingest_main

if __name__ == "__main__":
    sys.exit(ingest_main())
