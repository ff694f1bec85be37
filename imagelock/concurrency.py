"""Running coroutines together the way the async layers here need it.

``all_or_first_failure``: ``asyncio.gather`` leaves the others running after a failure; a bare
``TaskGroup`` raises an ``ExceptionGroup``. Callers want neither: the first failure should cancel
the rest and reach the CLI as the one-line error it is.

``once``: the same work asked for by many callers in a run (a manifest, a blob copy) is done once.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Coroutine, Iterable
from typing import Any, TypeVar

T = TypeVar("T")
K = TypeVar("K")


async def all_or_first_failure(coroutines: Iterable[Coroutine[Any, Any, T]]) -> list[T]:
    """The results, in order; the first exception cancels the other coroutines and is raised as itself."""
    try:
        async with asyncio.TaskGroup() as group:
            tasks = [group.create_task(coroutine) for coroutine in coroutines]
    except ExceptionGroup as failures:
        raise failures.exceptions[0] from None
    return [task.result() for task in tasks]


async def once(cache: dict[K, asyncio.Future[T]], key: K, work: Callable[[], Awaitable[T]]) -> T:
    """Share one in-flight or finished ``work`` among every caller asking for the same key in a run."""
    if key not in cache:
        cache[key] = asyncio.ensure_future(work())
    return await asyncio.shield(cache[key])
