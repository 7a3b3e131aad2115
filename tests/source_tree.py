"""The source checkout the tests run from (scripts, benchmarks and data are read from it)."""

from __future__ import annotations

from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
