"""OSV matching: the expected findings of ../shared/vulndata, exactly, and the schema's corner cases."""

from __future__ import annotations

import asyncio
import io
import json
import zipfile
from pathlib import Path
from typing import Any

import pytest

from imagelock.audit.database import OfflineDatabase
from imagelock.audit.inventory import Inventory, Package, merge
from imagelock.audit.layers import scan_tar
from imagelock.audit.osv import Record, at_or_above, match_all, matches, rate
from imagelock.audit.sbom import parse_sbom, statement_sbom
from imagelock.errors import DataUnavailableError
from imagelock.trust import SignatureError, load_public_key
from imagelock.trust.statements import open_envelope
from tests.support.layers import Layer, tree
from tests.support.vulndata import expected_findings, needs_vulndata, vulndata

FLASK_METADATA = b"Metadata-Version: 2.1\nName: Flask\nVersion: 2.0.0\n"


def shared_records() -> list[Record]:
    return [Record.parse(json.loads(path.read_bytes())) for path in sorted(vulndata("osv").rglob("*.json"))]


def inventory_of(name: str) -> Inventory:
    """Where each expected finding's input comes from, read the way an audit reads it."""
    if name.startswith("inventory/"):
        layer = Layer(files=tree(vulndata(name)))
        return merge([scan_tar(io.BytesIO(layer.blob()))])
    if name.startswith("sbom/"):
        return parse_sbom(json.loads(vulndata(name).read_bytes()), name)
    if name.startswith("attestation/"):
        key = load_public_key(vulndata("attestation/cosign-alpine-3.15.4.cdx.dsse.pub"))
        _, body, _ = open_envelope(json.loads(vulndata(name).read_bytes()), [key])
        carried = statement_sbom(body)
        assert carried is not None
        return parse_sbom(carried[1], name)
    layer = Layer(files={"usr/lib/python3/site-packages/Flask-2.0.0.dist-info/METADATA": FLASK_METADATA})
    return merge([scan_tar(io.BytesIO(layer.blob()))])


@needs_vulndata
def test_every_expected_finding_and_nothing_else() -> None:
    records = shared_records()
    inputs = sorted({case["input"] for case in expected_findings()})
    found = {
        (name, match.package.name, match.package.osv_version, match.package.ecosystem, match.record.id)
        for name in inputs
        for match in match_all(records, inventory_of(name).packages)
    }
    expected = {
        (case["input"], case["package"], case["version"], case["ecosystem"], case["osv_id"])
        for case in expected_findings()
        if case["affected"]
    }
    assert len(expected) == 8
    assert found == expected


@needs_vulndata
def test_each_negative_case_is_negative_for_the_reason_given() -> None:
    records = {record.id: record for record in shared_records()}
    for case in expected_findings():
        if case["affected"] or case["version"] is None:
            continue
        packages = [p for p in inventory_of(case["input"]).packages if p.name == case["package"]]
        assert packages, case
        judged = [records[case["osv_id"]]] if case["osv_id"] in records else list(records.values())
        assert all(matches(rec, package) is None for rec in judged for package in packages), case


@needs_vulndata
def test_the_shared_cosign_attestation_verifies_and_a_changed_byte_does_not() -> None:
    key = load_public_key(vulndata("attestation/cosign-alpine-3.15.4.cdx.dsse.pub"))
    envelope = json.loads(vulndata("attestation/cosign-alpine-3.15.4.cdx.dsse.json").read_bytes())
    payload_type, body, _ = open_envelope(envelope, [key])
    assert payload_type == "application/vnd.in-toto+json"
    tampered = dict(envelope, payload=__import__("base64").b64encode(body.replace(b"musl", b"must", 1)).decode())
    with pytest.raises(SignatureError):
        open_envelope(tampered, [key])


@needs_vulndata
def test_buildkit_statement_gives_its_packages_despite_validation_errors() -> None:
    carried = statement_sbom(vulndata("attestation/buildkit-sbom-spdx.intoto.json").read_bytes())
    assert carried is not None
    inventory = parse_sbom(carried[1], "buildkit")
    assert {(p.ecosystem, p.name) for p in inventory.packages} == {
        ("Go", "github.com/AlexGustafsson/cupdate"),
        ("Go", "github.com/caarlos0/env"),
    }


@needs_vulndata
def test_offline_database_as_directory_and_as_zip_gives_the_same_records(tmp_path: Path) -> None:
    archive = tmp_path / "all.zip"
    with zipfile.ZipFile(archive, "w") as writing:
        for path in vulndata("osv").rglob("*.json"):
            writing.write(path, path.name)
    musl = [Package("musl", "1.2.4-r0", "Alpine:v3.18", "musl")]
    from_directory = asyncio.run(OfflineDatabase(vulndata("osv")).records_for(musl))
    from_zip = asyncio.run(OfflineDatabase(archive).records_for(musl))
    assert [r.id for r in from_directory] == [r.id for r in from_zip] == ["ALPINE-CVE-2025-26519"]


def test_offline_database_that_cannot_be_read_is_an_error_not_an_empty_answer(tmp_path: Path) -> None:
    with pytest.raises(DataUnavailableError, match="not found"):
        asyncio.run(OfflineDatabase(tmp_path / "absent").records_for([]))
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataUnavailableError, match="no OSV records"):
        asyncio.run(OfflineDatabase(tmp_path / "empty").records_for([]))
    (tmp_path / "bad.json").write_text("{not json")
    with pytest.raises(DataUnavailableError, match=r"bad\.json"):
        asyncio.run(OfflineDatabase(tmp_path / "bad.json").records_for([]))
    (tmp_path / "bad.zip").write_bytes(b"PK not a zip")
    with pytest.raises(DataUnavailableError, match=r"bad\.zip"):
        asyncio.run(OfflineDatabase(tmp_path / "bad.zip").records_for([]))


# -- the schema's corner cases, on records written here -------------------------------------------------


def record(*ranges: dict[str, Any], versions: list[str] | None = None, **top: Any) -> Record:
    affected: dict[str, Any] = {"package": {"ecosystem": "PyPI", "name": "demo"}, "ranges": list(ranges)}
    if versions is not None:
        affected["versions"] = versions
    return Record.parse({"id": "TEST-1", "modified": "2026-01-01T00:00:00Z", "affected": [affected], **top})


def ecosystem_range(*events: dict[str, str]) -> dict[str, Any]:
    return {"type": "ECOSYSTEM", "events": list(events)}


def affected(rec: Record, version: str) -> str | None:
    match = matches(rec, Package("Demo", version, "PyPI"))
    return None if match is None else match.fixed


@pytest.mark.parametrize(
    ("version", "expected"),
    [("0.9", None), ("1.0", "1.5"), ("1.4.9", "1.5"), ("1.5", None), ("1.9", None), ("2.0", "2.1"), ("2.1", None)],
)
def test_intervals_walked_in_order(version: str, expected: str | None) -> None:
    rec = record(
        ecosystem_range({"introduced": "1.0"}, {"fixed": "1.5"}, {"introduced": "2.0"}, {"fixed": "2.1"}),
    )
    assert affected(rec, version) == expected


def test_last_affected_and_open_ended_ranges() -> None:
    rec = record(ecosystem_range({"introduced": "0"}, {"last_affected": "1.2"}))
    assert affected(rec, "1.2") == ""
    assert affected(rec, "1.2.1") is None
    open_ended = record(ecosystem_range({"introduced": "3.0"}))
    assert affected(open_ended, "99") == ""
    assert affected(open_ended, "2.9") is None


def test_limit_caps_a_range() -> None:
    rec = record(ecosystem_range({"introduced": "0"}, {"limit": "2.0"}))
    assert affected(rec, "1.9") == ""
    assert affected(rec, "2.0") is None
    assert affected(record(ecosystem_range({"introduced": "0"}, {"limit": "*"})), "9") == ""


def test_listed_versions_are_affected_without_a_range_and_git_ranges_are_skipped() -> None:
    git = {"type": "GIT", "repo": "https://example.com/x", "events": [{"introduced": "0"}]}
    rec = record(git, versions=["1.0.1"])
    assert affected(rec, "1.0.1") == ""
    assert affected(rec, "1.0.2") is None


def test_withdrawn_records_are_never_reported() -> None:
    rec = record(ecosystem_range({"introduced": "0"}), withdrawn="2026-02-01T00:00:00Z")
    assert affected(rec, "1.0") is None


def test_other_ecosystems_and_releases_do_not_match() -> None:
    rec = Record.parse(
        {
            "id": "A-1",
            "affected": [
                {
                    "package": {"ecosystem": "Alpine:v3.16", "name": "musl"},
                    "ranges": [ecosystem_range({"introduced": "0"})],
                }
            ],
        }
    )
    assert matches(rec, Package("musl", "1.0-r0", "Alpine:v3.16", "musl")) is not None
    assert matches(rec, Package("musl", "1.0-r0", "Alpine:v3.17", "musl")) is None
    assert matches(rec, Package("musl-utils", "1.0-r0", "Alpine:v3.16", "musl")) is not None  # by origin


@pytest.mark.parametrize(
    ("severity", "expected"),
    [
        ([{"type": "CVSS_V3", "score": "CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H"}], ("critical", 9.8)),
        ([{"type": "CVSS_V3", "score": "CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:N/I:N/A:H"}], ("high", 7.5)),
        ([{"type": "CVSS_V2", "score": "AV:L/AC:M/Au:N/C:N/I:P/A:C"}], ("medium", 5.6)),
        ([{"type": "CVSS_V3", "score": "not a vector"}], ("unknown", None)),
        ([], ("unknown", None)),
    ],
)
def test_severity_from_cvss_vectors(severity: list[dict[str, str]], expected: tuple[str, float | None]) -> None:
    level, _ = rate({"severity": severity})
    assert level == expected[0]


def test_severity_words_and_thresholds() -> None:
    assert rate({"database_specific": {"severity": "MODERATE"}}) == ("medium", "MODERATE")
    assert at_or_above("high", "high")
    assert at_or_above("critical", "high")
    assert not at_or_above("medium", "high")
    assert at_or_above("unknown", "low")
    assert not at_or_above("unknown", "medium")
