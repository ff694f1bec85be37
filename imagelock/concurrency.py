"""Running coroutines together the way the async layers here need it.

``all_or_first_failure``: ``asyncio.gather`` leaves the others running after a failure; a bare
``TaskGroup`` raises an ``ExceptionGroup``. Callers want neither: the first failure should cancel
the rest and reach the CLI as the one-line error it is.

``each_settled``: every image's work runs to its end, so that each failure can be reported.

``once``: the same work asked for by many callers in a run (a manifest, a blob copy) is done once.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Coroutine, Iterable, Mapping
from typing import Any, TypeVar

from imagelock.errors import ImagelockError, naming

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


async def each_settled(named: Mapping[str, Coroutine[Any, Any, T]]) -> tuple[dict[str, T], list[ImagelockError]]:
    """Run every coroutine to its end: the results by name, and each expected failure led by its entry's name
    (in name order). Anything else (a bug) is raised once all have ended."""
    outcomes = await asyncio.gather(*named.values(), return_exceptions=True)
    results: dict[str, T] = {}
    failures: dict[str, ImagelockError] = {}
    for name, outcome in zip(named, outcomes, strict=True):
        if isinstance(outcome, ImagelockError):
            failures[name] = naming(name, outcome)
        elif isinstance(outcome, BaseException):
            raise outcome
        else:
            results[name] = outcome
    return results, [failures[name] for name in sorted(failures)]


async def once(cache: dict[K, asyncio.Future[T]], key: K, work: Callable[[], Awaitable[T]]) -> T:
    """Share one in-flight or finished ``work`` among every caller asking for the same key in a run."""
    if key not in cache:
        cache[key] = asyncio.ensure_future(work())
    return await asyncio.shield(cache[key])
