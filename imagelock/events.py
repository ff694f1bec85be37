"""How the core tells its caller what is happening, without knowing about terminals.

The CLI passes an ``Events`` that draws a progress bar and prints warnings; library callers and
tests may pass nothing (``Silent``).
"""

from __future__ import annotations

from typing import Protocol


class Events(Protocol):
    def warning(self, message: str) -> None:
        """Something the user should know that does not stop the run (a low rate limit, say)."""

    def started(self, total: int) -> None:
        """Resolution of ``total`` images has started."""

    def resolved(self, name: str) -> None:
        """One image is resolved."""


class Silent:
    def warning(self, message: str) -> None:
        pass

    def started(self, total: int) -> None:
        pass

    def resolved(self, name: str) -> None:
        pass
