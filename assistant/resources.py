"""Where the files that ship with the assistant live: its prompts and the sample collection.

In the source tree they are top-level folders (``prompts/``, ``data/sample/``). The build maps
them into the package, as ``assistant/_data/prompts`` and ``assistant/_data/sample`` (see
``[tool.setuptools.package-dir]`` in pyproject.toml), so an installed wheel carries them and
:mod:`importlib.resources` finds them there. A source checkout or an editable install has no
``assistant/_data``: the folders of the checkout are used. Either way the result is a folder
on disk (wheels are installed unpacked).

The eval datasets are package data of :mod:`evals` itself (``evals/data``).
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path

__all__ = ["bundled_dir", "PROMPTS_DIR", "SAMPLE_DIR"]

#: Folder of each kind of bundled file in the source tree, relative to its root.
SOURCE_LAYOUT = {"prompts": "prompts", "sample": "data/sample"}


def bundled_dir(name: str) -> Path:
    """The folder of the bundled files ``name`` (``"prompts"`` or ``"sample"``)."""
    if name not in SOURCE_LAYOUT:
        raise KeyError(f"no bundled folder {name!r}; known: {', '.join(SOURCE_LAYOUT)}")
    packaged = resources.files("assistant") / "_data" / name
    if packaged.is_dir():  # an installed distribution
        return Path(str(packaged))
    return Path(__file__).resolve().parent.parent / SOURCE_LAYOUT[name]


PROMPTS_DIR = bundled_dir("prompts")
SAMPLE_DIR = bundled_dir("sample")
