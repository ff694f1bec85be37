"""The wheel pip and pipx install: complete metadata, the ``imagelock`` command, nothing but the package."""

from __future__ import annotations

import email.parser
import os
import shutil
import subprocess
import sys
import zipfile
from email.message import Message
from pathlib import Path

import pytest
from packaging.requirements import Requirement

ROOT = Path(__file__).parent.parent


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Built offline from a copy of the source (no build isolation: the test environment has setuptools)."""
    source = tmp_path_factory.mktemp("source")
    for name in ("pyproject.toml", "README.md", "LICENSE"):
        shutil.copy(ROOT / name, source / name)
    shutil.copytree(ROOT / "imagelock", source / "imagelock", ignore=shutil.ignore_patterns("__pycache__"))
    out = tmp_path_factory.mktemp("wheel")
    command = [sys.executable, "-m", "pip", "wheel", str(source), "--no-deps", "--no-build-isolation", "--no-index"]
    environment = {**os.environ, "PIP_DISABLE_PIP_VERSION_CHECK": "1"}
    result = subprocess.run(
        [*command, "-q", "-w", str(out)], capture_output=True, text=True, check=False, env=environment
    )
    assert result.returncode == 0, result.stderr
    [built] = out.glob("imagelock-*.whl")
    return built


def metadata(wheel: Path) -> Message:
    with zipfile.ZipFile(wheel) as archive:
        [name] = [n for n in archive.namelist() if n.endswith(".dist-info/METADATA")]
        return email.parser.Parser().parsestr(archive.read(name).decode())


def test_metadata_is_complete(wheel: Path) -> None:
    from imagelock import __version__

    meta = metadata(wheel)
    assert meta["Name"] == "imagelock"
    assert meta["Version"] == __version__
    assert wheel.name == f"imagelock-{__version__}-py3-none-any.whl"
    assert meta["Summary"] == "Lock container images to digests, the way pip-tools locks Python packages."
    assert meta["Requires-Python"] == ">=3.11"
    assert meta["License-Expression"] == "Apache-2.0"
    assert meta.get_all("License-File") == ["LICENSE"]
    assert "imagelock maintainers" in (meta["Author"] or "")
    assert "imagelock maintainers" in (meta["Maintainer"] or "")
    assert {"containers", "oci", "digest", "kubernetes"} <= set((meta["Keywords"] or "").split(","))
    urls = dict(url.split(", ", 1) for url in meta.get_all("Project-URL") or [])
    assert set(urls) >= {"Homepage", "Documentation", "Source", "Issues"}
    assert all(url.startswith("https://") for url in urls.values())
    classifiers = meta.get_all("Classifier") or []
    assert "Programming Language :: Python :: 3.11" in classifiers
    assert "Environment :: Console" in classifiers
    assert not [c for c in classifiers if c.startswith("License ::")]  # the SPDX expression says it
    runtime = [r for r in meta.get_all("Requires-Dist") or [] if "extra ==" not in r]
    requirements = {Requirement(r).name for r in runtime}
    assert {"typer", "httpx", "rich", "jinja2", "ruamel.yaml", "tomli"} <= requirements
    assert "pytest" not in requirements  # only under the 'test' extra
    assert meta.get_all("Provides-Extra") == ["test"]
    assert meta["Description-Content-Type"] == "text/markdown"
    assert str(meta.get_payload()).startswith("# imagelock")


def test_the_wheel_has_the_command_and_only_the_package(wheel: Path) -> None:
    with zipfile.ZipFile(wheel) as archive:
        names = archive.namelist()
        [entry_points] = [n for n in names if n.endswith(".dist-info/entry_points.txt")]
        text = archive.read(entry_points).decode()
    assert "[console_scripts]\nimagelock = imagelock.__main__:main\n" in text
    assert "imagelock/cli.py" in names
    assert "imagelock/registry/client.py" in names
    assert "imagelock/trust/cosign.py" in names
    assert {name.split("/")[0] for name in names} == {"imagelock", f"imagelock-{wheel.name.split('-')[1]}.dist-info"}


def test_the_unpacked_wheel_runs(wheel: Path, tmp_path: Path) -> None:
    """The wheel's own files (not the source tree) answer `imagelock --version` and `--help`."""
    with zipfile.ZipFile(wheel) as archive:
        archive.extractall(tmp_path / "site")
    code = (
        "import sys; sys.path.insert(0, sys.argv[1]); sys.argv = ['imagelock', *sys.argv[2:]];"
        "import imagelock.cli; assert imagelock.cli.__file__.startswith(sys.path[0]), imagelock.cli.__file__;"
        "imagelock.cli.main()"
    )
    version = subprocess.run(
        [sys.executable, "-c", code, str(tmp_path / "site"), "--version"], capture_output=True, text=True, check=False
    )
    assert version.returncode == 0, version.stderr
    from imagelock import __version__

    assert version.stdout == f"imagelock {__version__}\n"
    help_text = subprocess.run(
        [sys.executable, "-c", code, str(tmp_path / "site"), "--help"], capture_output=True, text=True, check=False
    )
    assert help_text.returncode == 0, help_text.stderr
    for command in ("lock", "check", "pin", "render", "ref", "export"):
        assert f" {command} " in help_text.stdout
