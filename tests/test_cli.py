"""The command line says where questions go, and takes the page's password without putting it
in ``ps``."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest
from llm_server import free_port
from test_assistant import _cli

from assistant.app.cli import _share_auth
from assistant.errors import ConfigError


def test_a_base_url_in_the_environment_is_announced(tmp_path: Path) -> None:
    """OPENAI_BASE_URL left in the shell switches to a server: the CLI says so, once, on
    stderr, before anything is sent (here the index is missing, so nothing is)."""
    url = f"http://127.0.0.1:{free_port()}/v1"
    index = str(tmp_path / "none")
    proc = _cli("ask", "What is HAWQ?", "--index-dir", index, env={"OPENAI_BASE_URL": url})
    assert proc.returncode == 1 and "ingest.py" in proc.stderr
    line = f"questions go to the server {url} (model gpt-4o-mini); set by OPENAI_BASE_URL"
    assert proc.stderr.count("questions go to") == 1 and line in proc.stderr

    proc = _cli("ask", "What is HAWQ?", "--index-dir", index, "--preset", "tiny", env={})
    assert "questions go to the local model tiny preset on this machine" in proc.stderr


def _args(**kw: str | None) -> argparse.Namespace:
    return argparse.Namespace(**{"share_auth": None, "share_auth_file": None, **kw})


def test_share_auth_from_a_file_or_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("ASSISTANT_SHARE_AUTH", raising=False)
    assert _share_auth(_args()) is None

    monkeypatch.setenv("ASSISTANT_SHARE_AUTH", "ann:from-env")
    assert _share_auth(_args()) == ("ann", "from-env")
    assert capsys.readouterr().err == ""

    secret = tmp_path / "login"
    secret.write_text("bob:s3cret:with:colons\n")
    secret.chmod(0o600)
    assert _share_auth(_args(share_auth_file=str(secret))) == ("bob", "s3cret:with:colons")
    assert capsys.readouterr().err == ""
    secret.chmod(0o644)
    _share_auth(_args(share_auth_file=str(secret)))
    assert "chmod 600" in capsys.readouterr().err

    # The command-line form still works, with a warning about ps and shell history.
    assert _share_auth(_args(share_auth="cy:pw")) == ("cy", "pw")
    err = capsys.readouterr().err
    assert "ps" in err and "--share-auth-file" in err and "ASSISTANT_SHARE_AUTH" in err

    for bad in (_args(share_auth="nocolon"), _args(share_auth_file=str(tmp_path / "nope"))):
        with pytest.raises(ConfigError):
            _share_auth(bad)


def test_serve_help_documents_the_safe_forms() -> None:
    proc = _cli("serve", "--help", env={})
    assert proc.returncode == 0
    assert "--share-auth-file" in proc.stdout and "ASSISTANT_SHARE_AUTH" in proc.stdout
