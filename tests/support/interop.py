"""The upstream interoperability vectors in ../shared/interop: their cases, and their tampered variants.

Each folder's cases.json describes a tampered variant as a one-byte mutation of a pristine file; these helpers
apply it in memory (the files on disk are never changed).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

SHARED_INTEROP = Path(__file__).resolve().parents[3] / "shared" / "interop"

Case = dict[str, object]


def interop_folder(name: str) -> Path:
    return SHARED_INTEROP / name


def interop_cases(folder: Path) -> list[Case]:
    """The folder's cases, or none when ../shared is not beside this checkout."""
    if not (folder / "cases.json").exists():
        return []
    cases: list[Case] = json.loads((folder / "cases.json").read_text())["cases"]
    return cases


def mutated(folder: Path, relative: str, case: Case) -> bytes:
    """The file's bytes with the case's mutations of it applied, each checked against its expected old bytes."""
    data = bytearray((folder / relative).read_bytes())
    for mutation in case["mutations"]:  # type: ignore[attr-defined]
        if mutation["file"] != relative:
            continue
        offset, before = mutation["offset"], bytes.fromhex(mutation["from_hex"])
        assert bytes(data[offset : offset + len(before)]) == before, f"{relative}@{offset}: not the expected bytes"
        data[offset : offset + len(before)] = bytes.fromhex(mutation["to_hex"])
    return bytes(data)


needs_interop = pytest.mark.skipif(
    not SHARED_INTEROP.exists(), reason="../shared/interop is not beside this checkout (CI has it)"
)
