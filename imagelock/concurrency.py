"""Running coroutines together the way the async layers here need it: every result, or the first failure.

``asyncio.gather`` leaves the others running after a failure; a bare ``TaskGroup`` raises an
``ExceptionGroup``. Callers want neither: the first failure should cancel the rest and reach the
CLI as the one-line error it is.
"""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine, Iterable
from typing import Any, TypeVar

T = TypeVar("T")


async def all_or_first_failure(coroutines: Iterable[Coroutine[Any, Any, T]]) -> list[T]:
    """The results, in order; the first exception cancels the other coroutines and is raised as itself."""
    try:
        async with asyncio.TaskGroup() as group:
            tasks = [group.create_task(coroutine) for coroutine in coroutines]
    except ExceptionGroup as failures:
        raise failures.exceptions[0] from None
    return [task.result() for task in tasks]
