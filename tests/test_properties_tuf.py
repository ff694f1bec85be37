"""Hostile TUF metadata: whatever arrives, verifying it ends in the project's own error, never a crash.

Hypothesis mutates metadata and feeds it to ``verify_repository``:

- the upstream notary 0.3 vectors (the real notary client's output), bytes replaced, inserted or cut;
- the same vectors with one JSON value anywhere replaced by an arbitrary one, or removed;
- a repository the test signs itself, rotated once since the lock, with such a change re-signed, so
  that malformed fields also reach the checks behind valid signatures (older roots included).
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from imagelock.errors import ImagelockError
from imagelock.trust.tuf import Pins, TrustedTarget, verify_repository
from tests.support.interop import interop_cases, interop_folder, needs_interop
from tests.support.tuf import RELEASES, Key, TufRepository, document

VECTORS = interop_folder("notary-v1")
VECTOR = next((case for case in interop_cases(VECTORS) if case["id"] == "notary0.3-valid"), {})
VECTOR_TIME = datetime(2020, 1, 1, tzinfo=UTC)
VECTOR_TARGETS = ("LICENSE", "hello", "change", "absent")

SCALARS = st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=8)
SIGNABLE_SCALARS = st.none() | st.booleans() | st.integers() | st.text(st.characters(exclude_categories=["Cs"]))
JSON = st.recursive(SCALARS, lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(), inner, max_size=3))
SIGNABLE = st.recursive(  # what canonical JSON can sign: no floats, no lone surrogates
    SIGNABLE_SCALARS,
    lambda inner: (
        st.lists(inner, max_size=3)
        | st.dictionaries(st.text(st.characters(exclude_categories=["Cs"])), inner, max_size=3)
    ),
)
REMOVED = object()


def vector_files() -> dict[str, bytes]:
    return {role: (VECTORS / str(path)).read_bytes() for role, path in VECTOR["metadata"].items()}  # type: ignore[attr-defined]


def verifies_or_refuses(files: dict[str, bytes], gun: str, target: str, **options: Any) -> TrustedTarget | None:
    """The verified target, or None when verification refused with one of the project's errors."""
    try:
        return verify_repository(files, gun, target, **options)
    except ImagelockError:
        return None


@st.composite
def mutated_bytes(draw: st.DrawFn, body: bytes) -> bytes:
    data = bytearray(body)
    for _ in range(draw(st.integers(1, 4))):
        position = draw(st.integers(0, len(data)))
        replacement = draw(st.binary(max_size=3))
        data[position : position + draw(st.integers(0, 3))] = replacement
    return bytes(data)


def places(value: object, path: tuple[str | int, ...] = ()) -> Iterator[tuple[str | int, ...]]:
    """The path to every value in a JSON document, the document itself first."""
    yield path
    items = value.items() if isinstance(value, dict) else enumerate(value) if isinstance(value, list) else ()
    for key, inner in items:
        yield from places(inner, (*path, key))


def changed_at(value: Any, path: Sequence[str | int], new: object) -> Any:
    """``value`` with the value at ``path`` replaced by ``new``, or removed when ``new`` is REMOVED."""
    if not path:
        return new
    head, *rest = path
    inner = changed_at(value[head], rest, new)
    if isinstance(value, dict):
        return {key: item for key, item in value.items() if key != head} if inner is REMOVED else {**value, head: inner}
    index = int(head)
    return [*value[:index], *([] if inner is REMOVED else [inner]), *value[index + 1 :]]


def changed_somewhere(data: st.DataObject, metadata: object, values: st.SearchStrategy[object]) -> object:
    """``metadata`` with one value in it (any, the whole included) replaced by one of ``values``, or removed."""
    path = data.draw(st.sampled_from(list(places(metadata))))
    return changed_at(metadata, path, data.draw(values | st.just(REMOVED) if path else values))


@needs_interop
@settings(deadline=None)
@given(data=st.data())
def test_mutated_bytes_of_real_notary_metadata(data: st.DataObject) -> None:
    files = vector_files()
    role = data.draw(st.sampled_from(sorted(files)))
    files[role] = data.draw(mutated_bytes(files[role]))
    verifies_or_refuses(files, str(VECTOR["gun"]), data.draw(st.sampled_from(VECTOR_TARGETS)), now=VECTOR_TIME)


@needs_interop
@settings(deadline=None)
@given(data=st.data())
def test_changed_structures_of_real_notary_metadata(data: st.DataObject) -> None:
    files = vector_files()
    role = data.draw(st.sampled_from(sorted(files)))
    files[role] = json.dumps(changed_somewhere(data, json.loads(files[role]), JSON)).encode()
    verifies_or_refuses(files, str(VECTOR["gun"]), data.draw(st.sampled_from(VECTOR_TARGETS)), now=VECTOR_TIME)


# A repository whose root was rotated once since the lock: root 1 (key A, locked) → root 2 (key B).
GUN = "registry.example.com/team/app"
LOCKED_ROOT_KEY = Key.generate(GUN)
REPOSITORY = TufRepository(GUN)
OLDER_ROOT = REPOSITORY.root(1, root_keys=[LOCKED_ROOT_KEY])
ROLES = {
    "root": REPOSITORY.root(2, signers=[LOCKED_ROOT_KEY, *REPOSITORY.root_keys]),
    "targets": REPOSITORY.targets(2, {"1.0.0": ("sha256:" + "a" * 64, 10)}, delegate=True),
    RELEASES: REPOSITORY.releases(2, {"1.0.0": ("sha256:" + "b" * 64, 20)}),
}
PINS = Pins(frozenset({LOCKED_ROOT_KEY.keyid}), 1, {"root": 1, "timestamp": 1, "snapshot": 1, "targets": 1})


def resigned(role: str, signed: object) -> tuple[dict[str, bytes], bytes]:
    """The repository's files and older root with ``role``'s ``signed`` replaced, signed, and described anew."""
    roles, older_root = dict(ROLES), OLDER_ROOT
    if role == "1.root":
        older_root = document(signed, LOCKED_ROOT_KEY)
    elif role == "root":
        roles["root"] = document(signed, LOCKED_ROOT_KEY, *REPOSITORY.root_keys)
    elif role in roles:
        roles[role] = REPOSITORY.sign(role, signed)
    files = REPOSITORY.chain(2, roles)
    if role == "snapshot":
        files["snapshot"] = REPOSITORY.sign("snapshot", signed)
        files["timestamp"] = REPOSITORY.timestamp(2, files["snapshot"])
    elif role == "timestamp":
        files["timestamp"] = REPOSITORY.sign("timestamp", signed)
    return files, older_root


def signed_part(role: str) -> object:
    files = REPOSITORY.chain(2, ROLES)
    return json.loads(OLDER_ROOT if role == "1.root" else files[role])["signed"]


def test_the_signed_repository_verifies_as_built() -> None:
    """The property below starts from metadata that verifies, so its changes reach every check."""
    files, older_root = resigned("targets", signed_part("targets"))
    found = verify_repository(files, GUN, "1.0.0", now=datetime.now(UTC), pins=PINS, older_roots=[older_root])
    assert found.role == RELEASES


@pytest.mark.parametrize("role", ["1.root", "root", "timestamp", "snapshot", "targets", RELEASES])
@settings(deadline=None)
@given(data=st.data())
def test_malformed_metadata_behind_valid_signatures(role: str, data: st.DataObject) -> None:
    files, older_root = resigned(role, changed_somewhere(data, signed_part(role), SIGNABLE))
    verifies_or_refuses(files, GUN, "1.0.0", now=datetime.now(UTC), pins=PINS, older_roots=[older_root])
