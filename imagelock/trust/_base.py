"""What every trust method shares: the subject it checks, the evidence it returns, the error it raises."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from imagelock.errors import SignatureError
from imagelock.reference import Repository

__all__ = ["Evidence", "SignatureError", "Subject"]


@dataclass(frozen=True)
class Subject:
    """The image a signature must vouch for: the digest imagelock computed, and the tag that led to it.

    ``pinned`` is the evidence the existing lock holds for this entry, whatever its digest: the
    trust-on-first-use methods (Docker Content Trust) take the root keys to hold the next run to from it.
    """

    repository: Repository
    tag: str
    digest: str
    pinned: Mapping[str, str] | None = None

    def __str__(self) -> str:
        return f"{self.repository}:{self.tag}@{self.digest}"


@dataclass(frozen=True)
class Evidence:
    """What was verified, as the lock records it under ``verified``."""

    fields: Mapping[str, str]
