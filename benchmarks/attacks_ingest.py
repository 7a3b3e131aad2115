"""The attack suite's ingest side alone, over all its plants: each planted copy of a real
abstract through the reader's checks (no index, no model; seconds), and the clean sentences
the detector flags. Writes benchmarks/results/attacks-ingest.json and prints a summary.

    python benchmarks/attacks_ingest.py

The end-to-end rates (what reached the model, what it obeyed) need ``benchmarks/attacks.py``.
"""

import json
from pathlib import Path

from evals.attacks.suite import (
    false_withholds,
    hosts_for,
    ingest_side,
    load,
    sample_papers,
    summarize,
)

OUT = Path(__file__).resolve().parent / "results" / "attacks-ingest.json"


def main() -> None:
    plants = load()
    hosts = hosts_for(plants, sample_papers())
    res = ingest_side(plants, hosts)
    s = summarize(res)
    fw = false_withholds()
    json.dump(
        {
            "summary": s,
            "false_withholds": {k: v for k, v in fw.items() if k != "examples"},
            "missed": [r.id for r in res if not r.withheld],
            "neighbour_lost": [r.id for r in res if not r.neighbour_kept],
        },
        open(OUT, "w"),
        indent=1,
    )
    a = s["all"]
    print(
        "plants", a["plants"], "withheld", a["withheld_at_ingest"], "neighbour", a["neighbour_kept"]
    )
    for k, v in s["by_kind"].items():
        print(k, v["plants"], v["withheld_at_ingest"])
    for k, v in s["by_split"].items():
        print(k, v["plants"], v["withheld_at_ingest"])
    print("false", fw["sentences"], fw["flagged"], fw["rate"])


if __name__ == "__main__":
    main()
