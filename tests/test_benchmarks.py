"""The benchmark harness still runs: a smoke run of ``benchmarks/run.py --quick``. It times
nothing: only that every scenario reports, and the request counts the targets are about."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.registry import registry_binary

ROOT = Path(__file__).resolve().parent.parent
SKOPEO = Path("/usr/bin/skopeo")


def test_quick_benchmark_reports_every_scenario(tmp_path: Path) -> None:
    if registry_binary() is None:
        pytest.skip("Debian's docker-registry is not installed (the README's test command installs it)")
    scenarios = "cold,min-age,reference,unchanged,update,verify,scaling,bomb,noop" + (
        ",skopeo" if SKOPEO.exists() else ""
    )
    results = tmp_path / "results.json"
    command = [sys.executable, str(ROOT / "benchmarks" / "run.py"), "--quick", "--markdown"]
    finished = subprocess.run(
        [*command, "--scenarios", scenarios, "--json", str(results)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert finished.returncode == 0, finished.stderr[-3000:]
    rows = [line for line in finished.stdout.splitlines() if line.startswith("| ")]
    for label in (
        "1. cold lock",
        "1. cold lock with min-age",
        "2. lock, nothing changed",
        "3. update after a new tag",
        "4. verify",
        "6. cold lock, 2 images",
        "6. cold lock, 4 images",
        "6. lock, nothing changed, 4 images",
        "6. cold lock, 1 image x 300 tags",
        "7. audit refusing a 512 MiB tar header",
        "1. reference client",
        "8. python -c pass",
        "8. check, nothing changed, 4 images",
        "8. lock, nothing changed, 4 images",
        *(("5. skopeo script, sequential", "5. skopeo script, 8 in parallel") if SKOPEO.exists() else ()),
    ):
        assert any(row.startswith(f"| {label}") for row in rows), f"no row {label!r} in:\n{finished.stdout}"
    assert any(row.startswith("| cold lock: at most 3 requests per image") for row in rows)
    assert any(row.startswith("| audit of a layer with a 512 MiB tar header: under 64 MB peak") for row in rows)

    measured = json.loads(results.read_text())["results"]
    assert measured["unchanged"]["requests"] == 0
    assert measured["scale-4-unchanged"]["requests"] == 0
    assert 0 < measured["cold"]["requests_per_image"] <= 3
    assert measured["min-age"]["requests"] == measured["cold"]["requests"]  # the index's annotation dates it
    assert measured["update"]["requests"] > 0
    assert measured["many-tags"]["peak_mb"] > 0
    assert measured["bomb"]["peak_mb"] > 0  # refused with exit 3, as the scenario requires
    assert measured["reference"]["requests"] == measured["cold"]["requests"]  # the same requests as imagelock
    assert measured["noop-check"]["requests"] == measured["noop-lock"]["requests"] == 0
    if SKOPEO.exists():
        assert measured["skopeo-parallel"]["requests"] >= measured["cold"]["requests"]
