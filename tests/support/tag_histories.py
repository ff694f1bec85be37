"""Real tag lists from tests/fixtures/tags (sources in its README)."""

from __future__ import annotations

from pathlib import Path

TAGS = Path(__file__).parent.parent / "fixtures" / "tags"


def tag_history(name: str) -> list[str]:
    """The tags of ``tests/fixtures/tags/<name>.txt``, in file order."""
    return (TAGS / f"{name}.txt").read_text().split()
