"""The vulnerability-matching data in ../shared/vulndata: OSV records, inventories, SBOMs, version vectors.

Tests read the files where they are and never copy them; without ../shared beside this checkout they skip.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

VULNDATA = Path(__file__).resolve().parents[3] / "shared" / "vulndata"

needs_vulndata = pytest.mark.skipif(
    not (VULNDATA / "cases.json").exists(), reason="../shared/vulndata is not beside this checkout (CI has it)"
)


def vulndata(relative: str) -> Path:
    return VULNDATA / relative


def expected_findings() -> list[dict[str, Any]]:
    findings: list[dict[str, Any]] = json.loads((VULNDATA / "cases.json").read_text())["expected_findings"]
    return findings


def version_lines(name: str) -> list[tuple[str, str, str]]:
    """``(a, op, b)`` for every comparison line of versions/<name>-versions.txt (comments and blank lines skipped)."""
    lines = []
    for line in (VULNDATA / "versions" / f"{name}-versions.txt").read_text().splitlines():
        if not line.strip() or line.startswith(("# ", "// ")):
            continue
        a, op, b = line.split(" ")
        lines.append((a, op, b))
    return lines
