"""Hostile variants of real documents, as hypothesis strategies: byte flips, truncations, and JSON values of
the wrong type (or none at all) at every key path of a document."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

from hypothesis import strategies as st

KeyPath = tuple[str | int, ...]

REMOVED = "<the key removed>"
DEEPLY_NESTED = "<100000 nested arrays>"
WRONG_VALUES: tuple[object, ...] = (
    None,
    False,
    0,
    -1,
    2**64,
    0.5,
    "",
    "x",
    "a/B c\x00",
    [],
    [{}],
    {},
    {"": []},
    REMOVED,
    DEEPLY_NESTED,
)


def key_paths(value: object, prefix: KeyPath = ()) -> Iterator[KeyPath]:
    """The path of every value in a JSON document, the document itself first."""
    yield prefix
    if isinstance(value, dict):
        for key, item in value.items():
            yield from key_paths(item, (*prefix, key))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from key_paths(item, (*prefix, index))


def replaced(value: Any, path: KeyPath, new: object) -> Any:
    """A copy of ``value`` with ``new`` at ``path``; REMOVED deletes what is there."""
    if not path:
        return new
    head, *rest = path
    copy = dict(value) if isinstance(value, dict) else list(value)
    if rest or new != REMOVED:
        copy[head] = replaced(value[head], tuple(rest), new)  # type: ignore[index]
    else:
        del copy[head]  # type: ignore[arg-type]
    return copy


def to_json(document: object) -> bytes:
    """``document`` as JSON, DEEPLY_NESTED written out as what it names."""
    text = json.dumps(document)
    return text.replace(json.dumps(DEEPLY_NESTED), "[" * 100_000 + "]" * 100_000).encode()


def wrong_types(document: object) -> st.SearchStrategy[Any]:
    """``document`` with one of its values, anywhere, replaced by a value of another type or removed."""
    paths = list(key_paths(document))
    return st.builds(replaced, st.just(document), st.sampled_from(paths), st.sampled_from(WRONG_VALUES))


def flipped_or_truncated(seed: bytes) -> st.SearchStrategy[bytes]:
    """``seed`` with one byte changed, or cut short."""
    flips = st.builds(_flip, st.just(seed), st.integers(0, len(seed) - 1), st.integers(1, 255))
    truncations = st.integers(0, len(seed) - 1).map(lambda length: seed[:length])
    return st.one_of(flips, truncations)


def mutated_json(seed: bytes) -> st.SearchStrategy[bytes]:
    """A JSON document's bytes, flipped or truncated, or re-written with a wrong type somewhere."""
    return st.one_of(flipped_or_truncated(seed), wrong_types(json.loads(seed)).map(to_json))


def _flip(seed: bytes, offset: int, mask: int) -> bytes:
    return seed[:offset] + bytes([seed[offset] ^ mask]) + seed[offset + 1 :]
