"""Hostile input to the audit's readers of layers and SBOMs: only the project's own errors come out.

Real data are the seeds: layers built from the package databases in ../shared/vulndata/inventory, and the
SPDX, CycloneDX and in-toto documents in ../shared/vulndata. Each is mutated: a byte flipped, the stream
cut short, a tar header field rewritten (its checksum fixed, so tarfile reads on), or a JSON value of the
wrong type (or none) put at any key path. A layer may then be a LayerError (exit 3); an SBOM may be no
SBOM (None, or NotAnSbomError, which the scan takes as "not used"). Anything else would be a traceback.
"""

from __future__ import annotations

import base64
import gzip
import io
import json
import tarfile
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from imagelock.audit.inventory import Inventory, LayerContent, merge, parse_file
from imagelock.audit.layers import LayerError, scan_tar
from imagelock.audit.osv import Record, match_all
from imagelock.audit.sbom import NotAnSbomError, parse_sbom, statement_sbom, statement_subjects
from tests.support.layers import TAR_FIELDS, Layer, rewritten, tree
from tests.support.mutations import flipped_or_truncated, mutated_json, to_json, wrong_types
from tests.support.vulndata import needs_vulndata, vulndata

pytestmark = needs_vulndata

HOSTILE = settings(max_examples=150, deadline=None)


# -- layers ------------------------------------------------------------------------------------------------


def seed_tars() -> list[bytes]:
    """Uncompressed layers of each shared inventory, one with a symlink and a whiteout beside them."""
    if not vulndata("inventory").is_dir():
        return [b""]  # collected without ../shared: the tests skip
    layers = [Layer(tree(vulndata(f"inventory/{name}"))) for name in ("alpine318", "debian12", "distroless")]
    layers.append(
        Layer(
            {"usr/lib/os-release": b"ID=debian\nVERSION_ID=12\n", "srv/node_modules/a/package.json": b'{"name": "a"}'},
            symlinks={"etc/os-release": "../usr/lib/os-release"},
            whiteouts=["lib/apk/db/installed"],
            opaque=["var/lib/dpkg"],
        )
    )
    return [layer.tar() for layer in layers]


def header_offsets(tar: bytes) -> list[int]:
    """Where each header block of ``tar`` starts: the members' and those of the pax headers before them."""
    with tarfile.open(fileobj=io.BytesIO(tar), mode="r:") as archive:
        members = archive.getmembers()
    offsets = {member.offset for member in members}
    for member in members:  # a pax header's own block lies between the member's offset and its header
        offsets.update(range(member.offset, member.offset_data - tarfile.BLOCKSIZE + 1, tarfile.BLOCKSIZE))
    return sorted(offsets)


FIELD_VALUES = st.one_of(
    st.binary(max_size=12),
    st.sampled_from([b"L", b"K", b"x", b"g", b"S", b"X", b"1", b"2", b"5", b"7"]),  # the types tarfile treats apart
    st.integers(0, 8**11 - 1).map(lambda size: b"%011o\0" % size),
    st.integers(-(2**80), 2**80).map(lambda number: b"\x80" + number.to_bytes(11, "big", signed=True)),  # base-256
)


@st.composite
def hostile_tars(draw: st.DrawFn) -> bytes:
    tar = draw(st.sampled_from(SEED_TARS))
    if draw(st.booleans()):
        return draw(flipped_or_truncated(tar))
    header = draw(st.sampled_from(header_offsets(tar)))
    return rewritten(tar, header, draw(st.sampled_from(sorted(TAR_FIELDS))), draw(FIELD_VALUES))


def compressed(tar: bytes, compression: str) -> bytes:
    if compression == "gzip":
        return gzip.compress(tar, mtime=0)
    if compression == "zstd":
        import zstandard

        return zstandard.ZstdCompressor().compress(tar)
    return tar


SEED_TARS = seed_tars()


def read(blob: bytes) -> LayerContent | None:
    try:
        content = scan_tar(io.BytesIO(blob))
    except LayerError:
        return None
    merge([content])  # and what the layer holds can be made into an inventory
    return content


@HOSTILE
@given(tar=hostile_tars(), compression=st.sampled_from(["tar", "gzip", "zstd"]))
def test_a_mutated_tar_stream_is_read_or_is_a_layer_error(tar: bytes, compression: str) -> None:
    read(compressed(tar, compression))


@HOSTILE
@given(data=st.data(), compression=st.sampled_from(["gzip", "zstd"]))
def test_a_mutated_compressed_stream_is_read_or_is_a_layer_error(data: st.DataObject, compression: str) -> None:
    blob = compressed(data.draw(st.sampled_from(SEED_TARS)), compression)
    read(data.draw(flipped_or_truncated(blob)))


def seed_files() -> list[tuple[str, bytes]]:
    """Every package database and release file of the shared inventories, by the path the reader knows it by."""
    if not vulndata("inventory").is_dir():
        return [("etc/os-release", b"")]
    found = [
        (path, data)
        for name in ("alpine318", "debian12", "distroless", "node/ansi-html-0.0.7")
        for path, data in tree(vulndata(f"inventory/{name}")).items()
    ]
    found.append(("srv/Flask-2.0.0.dist-info/METADATA", b"Metadata-Version: 2.1\nName: Flask\nVersion: 2.0.0\n"))
    return [(path, data) for path, data in found if parse_file(path, data) is not None]


SEED_FILES = seed_files()


@HOSTILE
@given(data=st.data())
def test_a_mutated_package_database_is_read_leniently(data: st.DataObject) -> None:
    path, seed = data.draw(st.sampled_from(SEED_FILES))
    parse_file(path, data.draw(flipped_or_truncated(seed)))


# -- SBOMs -------------------------------------------------------------------------------------------------


def statement(predicate_type: str, predicate: object) -> bytes:
    subject = [{"name": "image", "digest": {"sha256": "ab" * 32}}]
    document = {"_type": "https://in-toto.io/Statement/v0.1", "predicateType": predicate_type, "subject": subject}
    return json.dumps(document | {"predicate": predicate}).encode()


def seed_statements() -> list[bytes]:
    """In-toto statements carrying each shared SBOM, the BuildKit one, and the one in a cosign attestation."""
    if not vulndata("sbom").is_dir():
        return [b"{}"]
    statements = []
    for path in sorted(vulndata("sbom").glob("*.json")):
        document = json.loads(path.read_bytes())
        kind = "https://spdx.dev/Document" if "spdxVersion" in document else "https://cyclonedx.org/bom"
        statements.append(statement(kind, document))
    statements.append(vulndata("attestation/buildkit-sbom-spdx.intoto.json").read_bytes())
    envelope = json.loads(vulndata("attestation/cosign-alpine-3.15.4.cdx.dsse.json").read_bytes())
    statements.append(base64.b64decode(envelope["payload"]))
    return statements


def records() -> list[Record]:
    return [Record.parse(json.loads(path.read_bytes())) for path in sorted(vulndata("osv").rglob("*.json"))]


SEED_STATEMENTS = seed_statements()


def sbom_inventory(body: bytes) -> Inventory | None:
    """What the scan makes of an attestation's statement: its subjects, its SBOM's packages, and their matches."""
    subjects = statement_subjects(body)
    assert all(isinstance(subject, str) for subject in subjects)
    carried = statement_sbom(body)
    if carried is None:
        return None
    try:
        found = parse_sbom(carried[1], "a hostile SBOM")
    except NotAnSbomError:
        return None
    match_all(RECORDS, found.packages)
    return found


RECORDS = records() if vulndata("osv").is_dir() else []


@HOSTILE
@given(data=st.data())
def test_a_mutated_sbom_statement_gives_packages_or_none(data: st.DataObject) -> None:
    sbom_inventory(data.draw(mutated_json(data.draw(st.sampled_from(SEED_STATEMENTS)))))


@HOSTILE
@given(data=st.data())
def test_an_sbom_with_values_of_the_wrong_type_gives_packages_or_none(data: st.DataObject) -> None:
    """Two values replaced, so that one can reach inside a list the other made, deep in an SBOM's packages."""
    document: Any = json.loads(data.draw(st.sampled_from(SEED_STATEMENTS)))
    for _ in range(2):
        document = data.draw(wrong_types(document))
    sbom_inventory(to_json(document))


@pytest.mark.parametrize(
    "body",
    [
        json.dumps({"_type": "https://in-toto.io/Statement/v1", "predicateType": [], "predicate": {}}).encode(),
        json.dumps({"_type": "https://in-toto.io/Statement/v1", "subject": 5}).encode(),
        b"[" * 100_000 + b"]" * 100_000,
    ],
    ids=["predicate-type-a-list", "subject-a-number", "nested-too-deep"],
)
def test_statements_seen_to_break_the_reader(body: bytes) -> None:
    sbom_inventory(body)
