"""imagelock audit end to end: images built from the shared inventories, pushed to the real registry, audited
offline (directory and zip) and online (a local server speaking the OSV API), and the gate in lock and update."""

from __future__ import annotations

import gzip
import json
import random
import tarfile
import tracemalloc
import zipfile
from pathlib import Path
from typing import Any

import pytest

from imagelock.cli import app
from tests.conftest import Project, Registry
from tests.support.cosign import SigningKey, attest_image, sign_image
from tests.support.layers import CraftedLayer, Layer, oversized, push_layered, tree
from tests.support.osv import OsvServer, StaticServer
from tests.support.proxy import Answer, Proxy
from tests.support.vulndata import needs_vulndata, vulndata

pytestmark = needs_vulndata

FLASK = {"usr/lib/python3/site-packages/Flask-2.0.0.dist-info/METADATA": b"Name: Flask\nVersion: 2.0.0\n"}


def inventory(name: str) -> Layer:
    return Layer(files=tree(vulndata(f"inventory/{name}")))


@pytest.fixture(scope="module")
def images(registry: Registry) -> dict[str, str]:
    """One tag per shared inventory (as an index, the way BuildKit pushes), plus the special cases."""
    seeder = registry.seeder
    pushed = {
        "alpine": push_layered(seeder, "audit/alpine", "3.18", [inventory("alpine318")], index=True),
        "debian": push_layered(seeder, "audit/debian", "12", [inventory("debian12")], index=True),
        "distroless": push_layered(seeder, "audit/distroless", "10", [inventory("distroless")], index=True),
        "node7": push_layered(seeder, "audit/node", "0.0.7", [inventory("node/ansi-html-0.0.7")]),
        "node8": push_layered(seeder, "audit/node", "0.0.8", [inventory("node/ansi-html-0.0.8")]),
        "flask": push_layered(seeder, "audit/flask", "2.0.0", [inventory("debian12"), Layer(files=FLASK)]),
        "whiteout": push_layered(
            seeder,
            "audit/whiteout",
            "1",
            [inventory("alpine318"), Layer(whiteouts=["lib/apk/db/installed"], compression="zstd")],
        ),
    }
    sbom = json.loads(vulndata("sbom/alpine-3.16.2.syft.spdx22.json").read_bytes())
    layers = [inventory("alpine318")]
    single = push_layered(seeder, "audit/sbom", "scratch", layers)  # the platform manifest the SBOM describes
    statement = json.dumps(
        {
            "_type": "https://in-toto.io/Statement/v0.1",
            "predicateType": "https://spdx.dev/Document",
            "subject": [{"name": "sbom", "digest": {"sha256": single.digest.removeprefix("sha256:")}}],
            "predicate": sbom,
        }
    ).encode()
    pushed["sbom"] = push_layered(seeder, "audit/sbom", "1", layers, index=True, attestation=statement)
    return {name: f"{image.repository}:{image.tag}" for name, image in pushed.items()}


def write_config(project: Project, host: str, images: dict[str, str], extra: str = "") -> None:
    lines = [extra, "[images]"]
    for name, reference in sorted(images.items()):
        repository, tag = reference.rsplit(":", 1)
        lines.append(f'{name} = "{host}/{repository}:{tag}"')
    project.write("\n".join(lines) + "\n")


def audit_json(project: Project, *arguments: str) -> tuple[int, dict[str, Any]]:
    result = project.run("audit", "--json", *arguments)
    assert result.exit_code in (0, 1), result.stderr
    return result.exit_code, json.loads(result.stdout)


def findings(report: dict[str, Any]) -> set[tuple[str, str, str, str, str]]:
    return {
        (image["name"], f["package"], f["version"], f["id"], f["fixed"] or "")
        for image in report["images"]
        for f in image["findings"]
    }


EXPECTED = {
    ("alpine", "musl", "1.2.4-r0", "ALPINE-CVE-2025-26519", "1.2.4-r3"),
    ("alpine", "musl-utils", "1.2.4-r0", "ALPINE-CVE-2025-26519", "1.2.4-r3"),
    ("flask", "Flask", "2.0.0", "PYSEC-2023-62", "2.2.5"),
    ("node7", "ansi-html", "0.0.7", "GHSA-whgm-jr23-g3j9", "0.0.8"),
    ("sbom", "musl", "1.2.3-r0", "ALPINE-CVE-2025-26519", "1.2.3-r4"),
    ("sbom", "musl-utils", "1.2.3-r0", "ALPINE-CVE-2025-26519", "1.2.3-r4"),
}


@pytest.fixture
def locked(project: Project, registry: Registry, images: dict[str, str]) -> Project:
    write_config(project, registry.host, images)
    result = project.run("lock")
    assert result.exit_code == 0, result.stderr
    return project


@pytest.fixture(autouse=True)
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("IMAGELOCK_CACHE_DIR", str(tmp_path / "cache"))
    return tmp_path / "cache"


def test_offline_audit_reports_exactly_the_expected_findings(locked: Project) -> None:
    code, report = audit_json(locked, "--db", str(vulndata("osv")))
    assert findings(report) == EXPECTED
    assert code == 1  # musl and ansi-html are rated high; the default fail-on is high
    by_name = {image["name"]: image for image in report["images"]}
    assert by_name["sbom"]["platforms"][0]["source"].startswith("SBOM attestation")
    assert by_name["alpine"]["platforms"][0]["release"] == "alpine 3.18.1"
    assert by_name["distroless"]["platforms"][0]["release"] == "debian 10.8"
    assert by_name["flask"]["findings"][0]["severity"] == "unknown"
    assert not by_name["whiteout"]["findings"]
    assert by_name["whiteout"]["platforms"][0]["packages"] == 0


def test_a_zip_export_gives_the_same_report(locked: Project, tmp_path: Path) -> None:
    archive = tmp_path / "osv" / "all.zip"
    archive.parent.mkdir()
    with zipfile.ZipFile(archive, "w") as writing:
        for path in vulndata("osv").rglob("*.json"):
            writing.write(path, path.name)
    assert audit_json(locked, "--db", str(archive))[1] == audit_json(locked, "--db", str(vulndata("osv")))[1]
    assert findings(audit_json(locked, "--db", str(archive.parent))[1]) == EXPECTED


def test_fail_on_and_ignore(locked: Project, registry: Registry, images: dict[str, str]) -> None:
    db = str(vulndata("osv"))
    assert audit_json(locked, "--db", db, "--fail-on", "critical")[0] == 0
    assert audit_json(locked, "--db", db, "flask")[0] == 0  # unrated: fails only at "low"
    assert audit_json(locked, "--db", db, "flask", "--fail-on", "low")[0] == 1
    write_config(
        locked,
        registry.host,
        images,
        '[defaults.audit]\nignore = ["CVE-2025-26519"]\n[images.node7]\nimage = "'
        + f'{registry.host}/audit/node"\ntag = "0.0.7"\naudit = false\n',
    )
    locked.config.write_text(locked.config.read_text().replace(f'node7 = "{registry.host}/audit/node:0.0.7"\n', ""))
    assert locked.run("lock").exit_code == 0
    code, report = audit_json(locked, "--db", db)
    assert code == 0, [(i["name"], i["findings"]) for i in report["images"] if not i["ok"]]
    assert "node7" not in {image["name"] for image in report["images"]}
    assert all(f["ignored"] for image in report["images"] for f in image["findings"] if f["package"].startswith("musl"))
    named = locked.run("audit", "--db", db, "node7")  # named explicitly, audited even so
    assert named.exit_code == 1
    assert "GHSA-whgm-jr23-g3j9" in named.stdout


def test_table_summary_and_sarif(locked: Project, tmp_path: Path) -> None:
    sarif = tmp_path / "audit.sarif"
    result = locked.run("audit", "--db", str(vulndata("osv")), "--sarif", str(sarif))
    assert result.exit_code == 1
    assert "ALPINE-CVE-2025-26519 (CVE-2025-26519)" in result.stdout
    assert "6 finding(s) in 8 image(s) (5 high, 1 unknown)" in result.stderr
    assert "audit failed for alpine, node7, sbom" in result.stderr
    document = json.loads(sarif.read_text())
    assert document["version"] == "2.1.0"
    run = document["runs"][0]
    assert {rule["id"] for rule in run["tool"]["driver"]["rules"]} == {f[3] for f in EXPECTED}
    assert len(run["results"]) == len(EXPECTED)
    lock_lines = locked.lock.read_text().splitlines()
    for sarif_result in run["results"]:
        location = sarif_result["locations"][0]
        line = lock_lines[location["physicalLocation"]["region"]["startLine"] - 1]
        assert line == f"[images.{location['logicalLocations'][0]['name']}]"


def test_the_second_audit_reads_no_layer(project: Project, registry: Registry, images: dict[str, str]) -> None:
    proxy = Proxy(registry.host).start()
    try:
        write_config(project, proxy.host, {"alpine": images["alpine"], "flask": images["flask"]})
        assert project.run("lock").exit_code == 0
        db = str(vulndata("osv"))
        before = sum(count for path, count in proxy.requests.items() if "/blobs/" in path)
        first = audit_json(project, "--db", db)[1]
        layer_reads = sum(count for path, count in proxy.requests.items() if "/blobs/" in path) - before
        assert layer_reads == 3  # one per layer: alpine's, and flask's two
        second = audit_json(project, "--db", db)[1]
        assert sum(count for path, count in proxy.requests.items() if "/blobs/" in path) - before == layer_reads
        assert second == first
    finally:
        proxy.stop()


def test_online_through_the_osv_api(locked: Project) -> None:
    records = [json.loads(path.read_bytes()) for path in sorted(vulndata("osv").rglob("*.json"))]
    musl = next(record for record in records if record["id"] == "ALPINE-CVE-2025-26519")
    withdrawn = dict(musl, id="TEST-WITHDRAWN-1", withdrawn="2026-01-01T00:00:00Z")  # on musl's second page
    server = OsvServer([*records, withdrawn]).start()
    try:
        code, report = audit_json(locked, "--osv-url", server.url)
        assert (code, findings(report)) == (1, EXPECTED)
        assert server.requests["/v1/querybatch"] == 2  # musl's second page asked for with its token
        assert server.requests["/v1/vulns/TEST-WITHDRAWN-1"] == 1  # fetched, and not reported
        server.failing = True
        failed = locked.run("audit", "--osv-url", server.url)
        assert failed.exit_code == 3
        assert failed.stderr.count("\n") == 1
        assert "querybatch: HTTP 500" in failed.stderr
    finally:
        server.stop()


def test_an_osv_answer_that_would_decode_to_gibs_is_refused_unread(locked: Project) -> None:
    records = [json.loads(path.read_bytes()) for path in sorted(vulndata("osv").rglob("*.json"))]
    bomb = gzip.compress(gzip.compress(b'{"results": []}' + b" " * (256 << 20)))  # 256 MiB of JSON in 1 KiB
    server = OsvServer(records, gzip_bomb=bomb).start()
    try:
        tracemalloc.start()
        try:
            result = locked.run("audit", "--osv-url", server.url)
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
    finally:
        server.stop()
    assert result.exit_code == 3
    assert result.stderr.count("\n") == 1, result.stderr
    assert "querybatch: sent with Content-Encoding 'gzip, gzip'" in result.stderr
    assert peak < 16 << 20, f"peak {peak >> 20} MiB"


def test_an_osv_answer_past_its_size_cap_is_refused(locked: Project, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("imagelock.audit.database.MAX_QUERY_ANSWER_BYTES", 1 << 20)
    records = [json.loads(path.read_bytes()) for path in sorted(vulndata("osv").rglob("*.json"))]
    server = OsvServer(records, padding=2 << 20).start()
    try:
        result = locked.run("audit", "--osv-url", server.url)
    finally:
        server.stop()
    assert result.exit_code == 3
    assert "querybatch: answer is larger than 1048576 bytes" in result.stderr


def test_no_data_is_exit_3_and_the_lock_is_untouched(locked: Project, tmp_path: Path) -> None:
    before = locked.lock.read_bytes()
    result = locked.run("audit", "--db", str(tmp_path / "nowhere"))
    assert result.exit_code == 3
    assert "vulnerability database not found" in result.stderr
    assert locked.lock.read_bytes() == before
    assert locked.run("audit", "nosuch", "--db", str(vulndata("osv"))).exit_code == 2


def test_gate_skips_a_vulnerable_newer_tag_in_lock_why_and_update(project: Project, registry: Registry) -> None:
    seeder = registry.seeder
    push_layered(seeder, "audit/gated", "1.0", [inventory("debian12")])
    push_layered(seeder, "audit/gated", "1.1", [inventory("alpine318")])
    project.write(
        f'[images.app]\nimage = "{registry.host}/audit/gated"\nversion = ">=1.0"\n[images.app.audit]\ngate = true\n'
    )
    db = str(vulndata("osv"))
    result = project.run("lock", "--db", db)
    assert result.exit_code == 0, result.stderr
    assert 'tag = "1.0"' in project.lock.read_text()
    assert "skipping tag 1.1: audit: 2 finding(s) at or above high (ALPINE-CVE-2025-26519)" in result.stderr
    assert result.stdout.rstrip().endswith("(1 newer skipped: refused by the audit gate)")
    why = project.run("why", "app", "--db", db)
    assert "1.1" in why.stdout
    assert "audit: 2 finding(s)" in why.stdout
    push_layered(seeder, "audit/gated", "1.2", [inventory("node/ansi-html-0.0.8")])
    updated = project.run("update", "--db", db)
    assert updated.exit_code == 0, updated.stderr
    assert 'tag = "1.2"' in project.lock.read_text()
    project.write(
        f'[images.app]\nimage = "{registry.host}/audit/gated"\nversion = ">=1.0"\n'
        '[images.app.audit]\ngate = true\nfail-on = "low"\nignore = []\n'
    )
    push_layered(seeder, "audit/gated", "1.3", [inventory("alpine318")])
    before = project.lock.read_bytes()
    assert project.run("lock", "--db", str(Path("/nonexistent"))).exit_code == 3  # fail closed, lock untouched
    assert project.lock.read_bytes() == before


def cyclonedx_statement(digest: str, bom: dict[str, Any] | None = None) -> bytes:
    """A statement about ``digest`` carrying ``bom``, by default the shared SBOM of alpine 3.16.2 (musl 1.2.3-r0)."""
    if bom is None:
        bom = json.loads(vulndata("sbom/alpine-3.16.2.syft.cdx14.json").read_bytes())
    subject = [{"name": "", "digest": {"sha256": digest.removeprefix("sha256:")}}]
    return json.dumps(
        {"_type": "https://in-toto.io/Statement/v0.1", "predicateType": "https://cyclonedx.org/bom", "subject": subject}
        | {"predicate": bom}
    ).encode()


def write_cosign_policy_config(project: Project, key: SigningKey, image: str) -> None:
    """images.toml with one image, ``app``, under a cosign policy of ``key``."""
    key.write_public(project.directory / "keys" / "team.pub")
    project.write(
        '[policies.team]\nmethod = "cosign"\nkey = "keys/team.pub"\n[defaults]\nverify = "team"\n'
        f'[images]\napp = "{image}"\n'
    )


@pytest.mark.parametrize("signer", ["policy key", "another key"])
def test_a_cosign_attestation_is_used_only_when_the_policy_key_signed_it(
    project: Project, registry: Registry, signer: str
) -> None:
    repository = f"audit/attested-{signer.split()[0]}"
    image = push_layered(registry.seeder, repository, "1", [inventory("alpine318")])
    key, other = SigningKey.ecdsa(), SigningKey.ecdsa()
    sign_image(registry.seeder, registry.host, repository, image.digest, key)
    attest_image(
        registry.seeder,
        repository,
        image.digest,
        key if signer == "policy key" else other,
        cyclonedx_statement(image.digest),
    )
    write_cosign_policy_config(project, key, f"{registry.host}/{repository}:1")
    assert project.run("lock").exit_code == 0
    report = audit_json(project, "--db", str(vulndata("osv")))[1]
    (platform,) = report["images"][0]["platforms"]
    fixed = {f["fixed"] for f in report["images"][0]["findings"]}
    if signer == "policy key":
        assert platform["source"].startswith("cosign attestation")
        assert fixed == {"1.2.3-r4"}  # alpine 3.16, from the SBOM
    else:
        assert platform["source"] == "layers"
        assert fixed == {"1.2.4-r3"}  # alpine 3.18, from the apk database in the layer
        assert any("cosign attestation not used" in note for note in platform["notes"])


def test_an_attestation_about_another_digest_is_not_used(project: Project, registry: Registry) -> None:
    """Signed by the policy key, but about another image: the layers are read."""
    repository = "audit/misattested"
    image = push_layered(registry.seeder, repository, "1", [inventory("alpine318")])
    key = SigningKey.ecdsa()
    sign_image(registry.seeder, registry.host, repository, image.digest, key)
    attest_image(registry.seeder, repository, image.digest, key, cyclonedx_statement("sha256:" + "0" * 64))
    write_cosign_policy_config(project, key, f"{registry.host}/{repository}:1")
    assert project.run("lock").exit_code == 0
    (platform,) = audit_json(project, "--db", str(vulndata("osv")))[1]["images"][0]["platforms"]
    assert platform["source"] == "layers"
    assert any(f"subject is not {image.digest}" in note for note in platform["notes"])


def test_an_unsigned_attestation_cannot_hide_the_vulnerabilities_in_the_layers(
    project: Project, registry: Registry
) -> None:
    """Anyone who may push to the repository can attach an attestation; without a policy key it proves nothing."""
    repository = "audit/unsigned-attestation"
    image = push_layered(registry.seeder, repository, "1", [inventory("alpine318")])
    empty_sbom = {"bomFormat": "CycloneDX", "specVersion": "1.4", "components": []}
    attest_image(registry.seeder, repository, image.digest, None, cyclonedx_statement(image.digest, empty_sbom))
    project.write(f'[images]\napp = "{registry.host}/{repository}:1"\n')
    assert project.run("lock").exit_code == 0

    code, report = audit_json(project, "--db", str(vulndata("osv")))

    assert code == 1
    (platform,) = report["images"][0]["platforms"]
    assert platform["source"] == "layers"
    assert {f["package"] for f in report["images"][0]["findings"]} == {"musl", "musl-utils"}
    assert any("cosign attestation not used" in note for note in platform["notes"])


def test_a_big_layer_streams_through_without_being_held(
    project: Project, registry: Registry, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    noise = random.Random(7).randbytes(48 << 20)  # incompressible: the layer blob is as big as its content
    big = Layer(files={**tree(vulndata("inventory/alpine318")), "opt/noise.bin": noise})
    push_layered(registry.seeder, "audit/big", "1", [big])
    project.write(f'[images]\napp = "{registry.host}/audit/big:1"\n')
    assert project.run("lock").exit_code == 0
    del noise, big
    audit_json(project, "--db", str(vulndata("osv")))  # the modules an audit imports are not what is measured
    monkeypatch.setenv("IMAGELOCK_CACHE_DIR", str(tmp_path / "cold"))  # read the layer again
    tracemalloc.start()
    try:
        report = audit_json(project, "--db", str(vulndata("osv")))[1]
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert {f["package"] for f in report["images"][0]["findings"]} == {"musl", "musl-utils"}
    assert peak < 8 << 20, f"peak {peak >> 20} MiB while auditing a 48 MiB layer"


@pytest.mark.parametrize(
    ("kind", "what"),
    [
        (tarfile.GNUTYPE_LONGNAME, "GNU long name"),
        (tarfile.GNUTYPE_LONGLINK, "GNU long link"),
        (tarfile.XHDTYPE, "pax"),
    ],
)
def test_a_header_of_512_mib_fails_the_audit_naming_its_layer_in_little_memory(
    project: Project, registry: Registry, kind: bytes, what: str
) -> None:
    bomb = oversized(kind, 512)  # about 530 KiB of gzip
    repository = f"audit/bomb-{what.replace(' ', '-').lower()}"
    push_layered(registry.seeder, repository, "1", [inventory("alpine318"), bomb])
    project.write(f'[images]\napp = "{registry.host}/{repository}:1"\n')
    assert project.run("lock").exit_code == 0
    project.run("audit", "--db", str(vulndata("osv")))  # the modules an audit imports are not what is measured
    tracemalloc.start()
    try:
        result = project.run("audit", "--db", str(vulndata("osv")))
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert result.exit_code == 3
    assert [line for line in result.stderr.splitlines() if line.startswith("error: ")] == [
        result.stderr.splitlines()[0]
    ]
    assert f"{repository}@{bomb.digest}: a {what} header of {512 << 20} bytes, over the 1 MiB bound" in result.stderr
    assert peak < 8 << 20, f"peak {peak >> 20} MiB while refusing a 512 MiB {what} header"


def test_a_layer_that_does_not_match_its_digest_gives_no_inventory(project: Project, registry: Registry) -> None:
    push_layered(registry.seeder, "audit/tampered", "1", [inventory("alpine318")])

    def swap(method: str, path: str, answer: Answer) -> Answer:
        if "/blobs/" in path and method == "GET" and answer.body[:2] == b"\x1f\x8b":
            empty = Layer(files={"etc/os-release": b"ID=alpine\nVERSION_ID=3.18.1\n"}).blob()
            return Answer(answer.status, answer.headers, empty)
        return answer

    proxy = Proxy(registry.host, tamper=swap).start()
    try:
        project.write(f'[images]\napp = "{proxy.host}/audit/tampered:1"\n')
        assert project.run("lock").exit_code == 0
        result = project.run("audit", "--db", str(vulndata("osv")))
        assert result.exit_code == 3
        assert "does not match the digest" in result.stderr
    finally:
        proxy.stop()


def test_an_unreadable_layer_is_an_error_for_its_image_and_platform_and_the_others_are_audited(
    project: Project, registry: Registry, images: dict[str, str]
) -> None:
    seeder = registry.seeder
    whole = inventory("alpine318").blob()
    push_layered(seeder, "audit/truncated", "1", [CraftedLayer(whole[: len(whole) // 2])])
    push_layered(seeder, "audit/not-a-tar", "1", [CraftedLayer(gzip.compress(b"no tar here " * 200, mtime=0))])
    unserved = CraftedLayer(inventory("debian12").blob())
    push_layered(seeder, "audit/unserved", "1", [unserved])

    def fail_the_layer(method: str, path: str) -> Answer | None:
        return Answer(500, {}, b"") if path == f"/v2/audit/unserved/blobs/{unserved.digest}" else None

    proxy = Proxy(registry.host, intercept=fail_the_layer).start()
    try:
        broken = {name: f"audit/{name}:1" for name in ("truncated", "not-a-tar", "unserved")}
        write_config(project, proxy.host, {"node7": images["node7"], **broken})
        assert project.run("lock").exit_code == 0
        lock = project.lock.read_bytes()

        result = project.run("audit", "--db", str(vulndata("osv")))
        assert result.exit_code == 3, result.stderr  # after auditing the rest: node7's finding alone would be 1
        errors = [line for line in result.stderr.splitlines() if line.startswith("error: ")]
        assert [line.split(": ")[1] for line in errors] == [
            "[images.not-a-tar] linux/amd64",
            "[images.truncated] linux/amd64",
            "[images.unserved] linux/amd64",
        ]
        assert "not a readable layer archive" in errors[0]
        assert "not a readable layer archive" in errors[1]
        assert "HTTP 500" in errors[2]
        assert "GHSA-whgm-jr23-g3j9" in result.stdout
        assert "Traceback" not in result.stderr
        assert (
            result.stderr.splitlines()[-1]
            == "1 finding(s) in 4 image(s) (1 high); 3 platform(s) not audited; audit failed for node7"
        )

        as_json = project.run("audit", "--json", "--db", str(vulndata("osv")))
        assert as_json.exit_code == 3
        report = json.loads(as_json.stdout)
        assert report["ok"] is False
        assert report["errors"] == [line.removeprefix("error: ") for line in errors]
        assert {image["name"]: [p["error"] is None for p in image["platforms"]] for image in report["images"]} == {
            "node7": [True], "not-a-tar": [False], "truncated": [False], "unserved": [False]
        }  # fmt: skip
        assert findings(report) == {("node7", "ansi-html", "0.0.7", "GHSA-whgm-jr23-g3j9", "0.0.8")}
        assert project.lock.read_bytes() == lock
    finally:
        proxy.stop()


def test_vulndb_download_then_audit_offline(locked: Project, tmp_path: Path, cache: Path) -> None:
    exports = tmp_path / "exports"
    for ecosystem in ("Alpine", "PyPI"):
        (exports / ecosystem).mkdir(parents=True)
        with zipfile.ZipFile(exports / ecosystem / "all.zip", "w") as writing:
            for path in vulndata(f"osv/{ecosystem}").glob("*.json"):
                writing.write(path, path.name)
    server = StaticServer(exports).start()
    try:
        result = locked.runner.invoke(app, ["vulndb", "download", "Alpine", "PyPI", "--url", server.url])
        assert result.exit_code == 0, result.stderr
        assert sorted(p.relative_to(cache).as_posix() for p in cache.rglob("*.zip")) == [
            "osv/Alpine/all.zip",
            "osv/PyPI/all.zip",
        ]
        report = audit_json(locked, "--offline")[1]
        assert {f[3] for f in findings(report)} == {"ALPINE-CVE-2025-26519", "PYSEC-2023-62"}  # no npm data fetched
        before = (cache / "osv" / "Alpine" / "all.zip").read_bytes()
        failed = locked.runner.invoke(app, ["vulndb", "download", "Alpine", "npm", "--url", server.url])
        assert failed.exit_code == 3  # no npm export there
        assert (cache / "osv" / "Alpine" / "all.zip").read_bytes() == before
    finally:
        server.stop()


def test_audit_bundle_reads_the_images_from_the_bundle_with_no_registry(
    locked: Project, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    bundle = tmp_path / "bundle.tar"
    assert locked.run("bundle", str(bundle)).exit_code == 0

    async def no_network(*arguments: object, **options: object) -> None:
        raise AssertionError("audit --bundle sent a request")

    with monkeypatch.context() as patched:  # the layer cache is still empty: every layer comes from the bundle
        patched.setattr("imagelock.registry.transport.Transport.request", no_network)
        offline = audit_json(locked, "--db", str(vulndata("osv")), "--bundle", str(bundle))

    assert findings(offline[1]) == EXPECTED
    assert offline == audit_json(locked, "--db", str(vulndata("osv")))
