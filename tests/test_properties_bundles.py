"""Property tests: DSSE envelopes and sigstore/cosign bundles made hostile by mutating real ones.

Whatever the bytes, each entry point that reads them either accepts them or raises the project's own
error with a one-line message: never another exception, which would end the run in a traceback. The
originals are bundles made the way cosign makes them (tests/support/cosign.py) and the upstream sigstore
vectors. Mutations are byte-level (flips, insertions, deletions, truncation), structural (a JSON node
replaced by any JSON value, removed, or nested deeper than a parser's recursion limit), and inside signed
content (a mutated statement or log entry signed again by the trusted key, which reaches the checks made
only after a signature verifies).
"""

from __future__ import annotations

import base64
import json
from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from imagelock.errors import ImagelockError
from imagelock.trust.cosign import verify_bundle
from imagelock.trust.keyless import KeylessPolicy, verify_keyless_bundle
from imagelock.trust.keys import parse_public_key
from imagelock.trust.rekor import verify_signed_entry
from imagelock.trust.statements import check_signature_statement, open_attestation
from tests.support.cosign import (
    SigningKey,
    dsse_envelope,
    hashedrekord,
    key_bundle,
    payload,
    rekor_bundle,
    rekor_set,
    statement,
)
from tests.support.interop import interop_cases, interop_folder, needs_interop

DIGEST = "sha256:" + "ab" * 32
SIGNER = SigningKey.ecdsa()
LOG = SigningKey.ecdsa()
SIGNER_KEY, LOG_KEY = (parse_public_key(key.public_pem(), "test key") for key in (SIGNER, LOG))
SBOM_STATEMENT = statement(DIGEST, "https://cyclonedx.org/bom")
SIGSTORE = interop_folder("sigstore")
VALID_SIGSTORE_CASES = [case for case in interop_cases(SIGSTORE) if case["expected"] == "valid"]

NASTY_TEXT = st.sampled_from(["", "\x00", "\n", "\ud800", "a\udfffb"])  # JSON can escape lone surrogates
JSON_SCALARS = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False)
    | st.text(st.characters(blacklist_categories=()), max_size=12)
)
JSON_VALUES = st.recursive(
    JSON_SCALARS, lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3)
)
DEEP = "\x00deep\x00"  # a placeholder for JSON nested deeper than any parser's recursion limit
DELETED = object()


def paths(node: object, path: tuple[str | int, ...] = ()) -> list[tuple[str | int, ...]]:
    """Every node of a JSON document, as the keys and indexes that lead to it."""
    children: list[tuple[str | int, object]] = []
    if isinstance(node, dict):
        children = list(node.items())
    elif isinstance(node, list):
        children = list(enumerate(node))
    return [path] + [deeper for key, child in children for deeper in paths(child, (*path, key))]


def replaced(node: object, path: tuple[str | int, ...], value: object) -> object:
    """A copy of ``node`` with the node at ``path`` replaced by ``value``, or removed when it is DELETED."""
    if not path:
        return value
    head, rest = path[0], path[1:]
    if isinstance(node, dict):
        changed = dict(node)
    else:
        assert isinstance(node, list)
        changed = dict(enumerate(node))
    if rest or value is not DELETED:
        changed[head] = replaced(changed[head], rest, value)
    else:
        del changed[head]
    return changed if isinstance(node, dict) else list(changed.values())


@st.composite
def json_mutations(draw: st.DrawFn, original: bytes) -> bytes:
    """``original`` (JSON) with one node replaced by any JSON value, removed, or nested very deep."""
    document = json.loads(original)
    path = draw(st.sampled_from(paths(document)))
    value = draw(NASTY_TEXT | JSON_VALUES | st.just(DEEP) | (st.just(DELETED) if path else st.nothing()))
    text = json.dumps(replaced(document, path, value))
    depth = draw(st.integers(1, 100_000))
    return text.replace(json.dumps(DEEP), "[" * depth + "]" * depth).encode()


@st.composite
def byte_mutations(draw: st.DrawFn, original: bytes) -> bytes:
    """``original`` with a few bytes flipped, inserted or deleted, or cut short."""
    data = bytearray(original)
    for _ in range(draw(st.integers(1, 4))):
        at = draw(st.integers(0, len(data)))
        operation = draw(st.sampled_from(["flip", "insert", "delete", "truncate"]))
        if operation == "flip" and at < len(data):
            data[at] = draw(st.integers(0, 255))
        elif operation == "insert":
            data[at:at] = draw(st.binary(min_size=1, max_size=8))
        elif operation == "delete":
            del data[at : at + draw(st.integers(1, 16))]
        else:
            del data[at:]
    return bytes(data)


def mutations(original: bytes) -> st.SearchStrategy[bytes]:
    return byte_mutations(original) | json_mutations(original)


def re_signed(make: Callable[[bytes], bytes], signed: bytes) -> st.SearchStrategy[bytes]:
    """``make`` around a mutation of ``signed`` content: a signature that verifies over hostile content."""
    return mutations(signed).map(make)


def returns_or_raises_its_own_error(check: Callable[[], object]) -> None:
    """``check`` returns, or raises the project's own error with a one-line message (what the CLI prints)."""
    message = ""
    try:
        check()
    except ImagelockError as error:
        message = str(error)
    assert "\n" not in message


# What these properties found, pinned so that every run tries it.
TOO_DEEP = b"[" * 100_000 + b"]" * 100_000
LONE_SURROGATE = "\ud800"


def edited(document: bytes, change: Callable[[dict[str, Any]], object]) -> bytes:
    parsed = json.loads(document)
    change(parsed)
    return json.dumps(parsed).encode()


QUIET = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@QUIET
@example(TOO_DEEP)
@given(
    mutations(key_bundle(SIGNER, statement(DIGEST)))
    | re_signed(lambda body: key_bundle(SIGNER, body), statement(DIGEST))
)
def test_key_based_bundles(bundle: bytes) -> None:
    """cosign v3 bundles checked with the policy key, as the cosign policy reads them from a referrer."""
    returns_or_raises_its_own_error(lambda: verify_bundle(bundle, [SIGNER_KEY], DIGEST))


@QUIET
@example(TOO_DEEP)
@example(
    edited(json.dumps(dsse_envelope(SIGNER, SBOM_STATEMENT)).encode(), lambda e: e.update(payloadType=LONE_SURROGATE))
)
@given(
    mutations(json.dumps(dsse_envelope(SIGNER, SBOM_STATEMENT)).encode())
    | re_signed(lambda body: json.dumps(dsse_envelope(SIGNER, body)).encode(), SBOM_STATEMENT)
)
def test_cosign_attestation_envelopes(envelope: bytes) -> None:
    """DSSE envelopes of ``sha256-<hex>.att`` layers, as the audit opens them under a cosign policy."""
    returns_or_raises_its_own_error(lambda: open_attestation(envelope, [SIGNER_KEY], DIGEST))


SIGNED_PAYLOAD = payload("registry.example/app", DIGEST)
SIGNATURE = base64.b64encode(SIGNER.sign(SIGNED_PAYLOAD)).decode()
REKOR_BUNDLE = rekor_bundle(LOG, SIGNED_PAYLOAD, SIGNATURE, SIGNER).encode()


@QUIET
@example(TOO_DEEP)
@example(edited(REKOR_BUNDLE, lambda annotation: annotation["Payload"].update(logID=LONE_SURROGATE)))
@given(
    mutations(REKOR_BUNDLE)
    | re_signed(lambda body: rekor_set(LOG, body).encode(), hashedrekord(SIGNED_PAYLOAD, SIGNATURE, SIGNER))
)
def test_rekor_bundle_annotations(annotation: bytes) -> None:
    """cosign's ``dev.sigstore.cosign/bundle`` annotation on a legacy signature, under ``rekor-key``."""
    text = annotation.decode("utf-8", "replace")
    returns_or_raises_its_own_error(lambda: verify_signed_entry(text, [LOG_KEY], SIGNED_PAYLOAD, SIGNATURE, SIGNER_KEY))


def break_timestamps(bundle: dict[str, Any]) -> None:
    """Every RFC 3161 timestamp the bundle carries replaced by three zero bytes."""
    timestamps = bundle["verificationMaterial"].get("timestampVerificationData", {}).get("rfc3161Timestamps", [])
    for timestamp in timestamps:
        timestamp["signedTimestamp"] = "AAAA"


@needs_interop
@pytest.mark.parametrize("case", VALID_SIGSTORE_CASES, ids=[str(case["id"]) for case in VALID_SIGSTORE_CASES])
def test_keyless_bundles(case: dict[str, Any]) -> None:
    """The upstream sigstore bundles, through the sigstore library and then imagelock's signature check."""
    identity, root = case["identity"], SIGSTORE / case["trusted_root"]
    policy = KeylessPolicy.create(case["id"], identity["oidc_issuer"], identity["san"], None, root)
    digest = "sha256:" + case["expected_claims"]["subject"][0]["digest"]["sha256"]
    original = (SIGSTORE / case["bundle"]).read_bytes()

    def verify(bundle: bytes) -> None:
        result = verify_keyless_bundle(bundle, policy)
        check_signature_statement(result.payload_type, result.payload, digest)

    @QUIET
    @example(edited(original, break_timestamps))
    @given(mutations(original))
    def property_of(bundle: bytes) -> None:
        returns_or_raises_its_own_error(lambda: verify(bundle))

    property_of()
