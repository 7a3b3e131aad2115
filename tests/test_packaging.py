"""``pip install .`` gives a working assistant: the wheel carries the prompts, the sample
collection and the eval datasets, and answers a question from outside the source tree.

The wheel is built from this checkout without build isolation (nothing is downloaded) and
installed with ``--no-deps`` into a fresh virtual environment that sees the packages of the
environment running the tests for the heavy dependencies (torch, llama-cpp-python,
chromadb...). That environment is often itself a virtualenv (the README's set-up), whose
packages ``venv --system-site-packages`` would not see (it links the base interpreter's), so
the new environment lists the running one's site-packages in a ``.pth`` file instead. A path
listed there comes after the venv's own site-packages, and the ``.pth`` files inside it are not
run, so this checkout's editable install cannot stand in for the wheel.
"""

from __future__ import annotations

import json
import os
import site
import subprocess
import sys
from pathlib import Path

import pytest
from source_tree import REPO_ROOT

pytestmark = pytest.mark.slow

CHECK = """
import json, sys
from pathlib import Path
import assistant, evals
from assistant.prompts import PROMPT_NAMES, load_prompt
from assistant.ingest.readers import default_sample_paths
from evals.cases import DATA_DIR
print(json.dumps({
    "assistant": assistant.__file__,
    "evals": evals.__file__,
    "prompts": [load_prompt(n).name for n in PROMPT_NAMES],
    "sample": [str(p) for p in default_sample_paths()],
    "datasets": sorted(p.name for p in Path(DATA_DIR).glob("*.jsonl")),
}))
"""


def _run(cmd: list[str], cwd: Path, env: dict[str, str], timeout: float = 600) -> str:
    proc = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    assert proc.returncode == 0, f"{cmd} failed:\n{proc.stdout[-2000:]}\n{proc.stderr[-3000:]}"
    return proc.stdout


def test_the_installed_wheel_answers_from_outside_the_source_tree(
    tmp_path: Path, model_cache: Path, tiny_model_path: Path
) -> None:
    base_env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME")}
    dist = tmp_path / "dist"
    _run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q"]
        + ["-w", str(dist), str(REPO_ROOT)],
        tmp_path,
        base_env,
    )
    (wheel,) = dist.glob("paper_assistant-*.whl")
    venv = tmp_path / "venv"
    _run([sys.executable, "-m", "venv", "--without-pip", str(venv)], tmp_path, base_env)
    python = venv / "bin" / "python"
    own_site = Path(_run([str(python), "-c", "import site; print(site.getsitepackages()[0])"],
                         tmp_path, base_env).strip())  # fmt: skip
    (own_site / "_running_env.pth").write_text("\n".join(site.getsitepackages()) + "\n")
    # pip itself comes from the running environment; it installs into the venv.
    _run([str(python), "-m", "pip", "install", "-q", "--no-deps", "--force-reinstall", str(wheel)],
         tmp_path, base_env)  # fmt: skip

    outside = tmp_path / "elsewhere"
    outside.mkdir()
    env = base_env | {
        "ASSISTANT_LLM_PRESET": "tiny",
        "ASSISTANT_INDEX_DIR": str(tmp_path / "index"),
        "ASSISTANT_MODEL_CACHE_DIR": str(model_cache),
        "HF_HUB_OFFLINE": "1",
    }
    found = json.loads(_run([str(python), "-c", CHECK], outside, env).splitlines()[-1])
    venv_lib = venv / "lib"
    for key in ("assistant", "evals"):  # the installed copy, not this checkout
        assert Path(found[key]).is_relative_to(venv_lib), found[key]
    assert found["prompts"] == [
        "system", "answer", "source", "condense", "follow_up", "condense_follow_up", "judge",
        "verdict",
    ]  # fmt: skip
    assert len(found["sample"]) == 5
    assert all(Path(p).is_relative_to(venv_lib) for p in found["sample"])
    wanted = {"sample_qa.jsonl", "scifact_claims.jsonl", "judge_pairs.jsonl"}
    assert wanted <= set(found["datasets"])

    cli = str(venv / "bin" / "assistant")
    ingested = json.loads(_run([cli, "ingest", "--json", "-q"], outside, env).splitlines()[-1])
    assert ingested["papers_total"] > 400
    question = "Which papers study grokking, and what do they find?"
    answer = json.loads(_run([cli, "ask", question, "--json", "-q"], outside, env).splitlines()[-1])
    assert isinstance(answer["text"], str) and answer["text"].strip()
    assert isinstance(answer["answerable"], bool)
    assert answer["sources"] and all(s["title"] and s["paper_id"] for s in answer["sources"])
    numbers = [c["number"] for c in answer["citations"]]
    assert numbers == list(range(1, len(numbers) + 1))
    cited = {c["paper_id"] for c in answer["citations"]}
    assert cited <= {s["paper_id"] for s in answer["sources"]}
    assert {"retrieval", "generation", "verification"} <= answer["timings"].keys()
