"""The installed command: entry points, usage errors, one-line errors and --debug."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from tests.conftest import Registry


def imagelock(*arguments: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "imagelock", *arguments], cwd=cwd, capture_output=True, text=True, check=False
    )


def test_python_dash_m_runs_a_lock_in_the_current_directory(tmp_path: Path, registry: Registry) -> None:
    (tmp_path / "images.toml").write_text(f'[images.web]\nimage = "{registry.host}/library/nginx"\nversion = "<1.26"\n')
    result = imagelock("lock", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    digest = registry.image("library/nginx:1.25.4").digest
    assert result.stdout == f"web  added 1.25.4  {digest[:19]}…\n"
    assert (tmp_path / "images.lock").exists()
    assert imagelock("check", cwd=tmp_path).returncode == 0


def test_usage_errors_exit_2(tmp_path: Path) -> None:
    assert imagelock("lock", "--no-such-option", cwd=tmp_path).returncode == 2
    assert imagelock("no-such-command", cwd=tmp_path).returncode == 2


def test_missing_config_is_one_line_exit_2(tmp_path: Path) -> None:
    result = imagelock("lock", cwd=tmp_path)
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1
    assert result.stderr.startswith("error: images.toml: not found")


def test_debug_shows_the_traceback(tmp_path: Path) -> None:
    (tmp_path / "images.toml").write_text("[images.web]\nimage = 5\n")
    plain = imagelock("lock", cwd=tmp_path)
    debug = imagelock("--debug", "lock", cwd=tmp_path)
    assert plain.returncode == debug.returncode == 2
    assert "Traceback" not in plain.stderr
    assert "Traceback" in debug.stderr
    assert "[images.web]: key 'image': expected a string" in plain.stderr


def test_a_future_lock_is_refused_and_kept(tmp_path: Path) -> None:
    (tmp_path / "images.toml").write_text('[images.web]\nimage = "nginx"\ntag = "1"\n')
    future = 'version = 2\ninputs = "sha256:' + "0" * 64 + '"\n'
    (tmp_path / "images.lock").write_text(future)
    result = imagelock("lock", cwd=tmp_path)
    assert result.returncode == 2
    assert "upgrade imagelock" in result.stderr
    assert (tmp_path / "images.lock").read_text() == future
