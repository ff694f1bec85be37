"""Docker Content Trust: a real notary-server beside the real registry, tags signed with the real notary client."""

from __future__ import annotations

import datetime
import json
import os
import re
import ssl
import tomllib
import uuid
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import httpx
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from imagelock.trust import SignatureError
from imagelock.trust.tuf import MAX_ROOT_ROTATIONS, Pins, older_root_versions, verify_repository
from tests.conftest import Project, Registry
from tests.support.interop import Case, interop_cases, interop_folder, mutated, needs_interop
from tests.support.notary import NotaryClient, NotaryServer, notary_binaries
from tests.support.proxy import Answer, Proxy
from tests.support.registry import PushedImage
from tests.support.tuf import RELEASES, Key, TrustServer, TufRepository, certificate, described, document

INTEROP = interop_folder("notary-v1")
ROLES = ("root", "timestamp", "snapshot", "targets", "targets/releases")


@pytest.fixture(scope="module")
def notary(tmp_path_factory: pytest.TempPathFactory) -> Iterator[NotaryServer]:
    if not notary_binaries():
        message = "Debian's notary (notary-server, notary) is not installed (the README's test command installs it)"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    server = NotaryServer(tmp_path_factory.mktemp("notary")).start()
    yield server
    server.stop()


@pytest.fixture
def publisher(notary: NotaryServer, tmp_path: Path) -> NotaryClient:
    return NotaryClient(notary, tmp_path / "publisher-trust")


@pytest.fixture
def repository() -> str:
    return f"dct/app-{uuid.uuid4().hex[:8]}"


def gun(registry: Registry, repository: str) -> str:
    return f"{registry.host}/{repository}"


def config(notary: NotaryServer, registry: Registry, repository: str, selector: str = 'tag = "1.0.0"') -> str:
    assert notary.ca_cert is not None
    return served_config(notary.url, registry, repository, selector, f'ca-cert = "{notary.ca_cert}"\n')


def served_config(
    server: str, registry: Registry, repository: str, selector: str = 'tag = "1.0.0"', extra: str = ""
) -> str:
    """images.toml for one image under a content-trust policy whose notary server is ``server``."""
    return (
        f'[policies.dct]\nmethod = "content-trust"\nserver = "{server}"\n{extra}\n'
        f'[defaults]\nverify = "dct"\n\n[images.app]\nimage = "{gun(registry, repository)}"\n{selector}\n'
    )


def size_of(registry: Registry, repository: str, image: PushedImage) -> int:
    response = httpx.get(
        f"{registry.server.url}/v2/{repository}/manifests/{image.digest}",
        headers={"Accept": image.media_type},
    )
    return len(response.content)


def sign(publisher: NotaryClient, registry: Registry, repository: str, image: PushedImage, tag: str = "1.0.0") -> None:
    publisher.sign(gun(registry, repository), tag, image.digest, size_of(registry, repository, image))


def verified(project: Project) -> dict[str, str]:
    table: dict[str, str] = tomllib.loads(project.lock.read_text())["images"]["app"]["verified"]
    return table


def notary_tls(notary: NotaryServer) -> ssl.SSLContext:
    return ssl.create_default_context(cafile=str(notary.ca_cert))


def trust_files(notary: NotaryServer, name: str) -> dict[str, bytes]:
    files = {}
    for role in ROLES:
        response = httpx.get(f"{notary.url}/v2/{name}/_trust/tuf/{role}.json", verify=notary_tls(notary))
        if response.status_code == 200:
            files[role] = response.content
    return files


def root_keys_of(root: bytes) -> list[str]:
    keyids: list[str] = json.loads(root)["signed"]["roles"]["root"]["keyids"]
    return keyids


@pytest.fixture
def trust_server() -> Iterator[TrustServer]:
    """A notary server's paths over trust data the test signs itself (``tests/support/tuf.py``)."""
    server = TrustServer().start()
    yield server
    server.stop()


# -- locking against the real notary server -------------------------------------------------------


def test_a_signed_tag_locks_with_its_root_keys_pinned(
    project: Project, registry: Registry, notary: NotaryServer, publisher: NotaryClient, repository: str
) -> None:
    image = registry.seeder.push_image(repository, "1.0.0")
    publisher.init(gun(registry, repository))
    sign(publisher, registry, repository, image)
    project.write(config(notary, registry, repository))
    result = project.run("lock")
    assert result.exit_code == 0, result.stderr
    evidence = verified(project)
    root = trust_files(notary, gun(registry, repository))["root"].decode()
    assert evidence["method"] == "content-trust"
    assert evidence["role"] == "targets"
    assert evidence["root-keys"]
    assert evidence["root-keys"] in root
    assert evidence["root-threshold"] == "1"
    assert evidence["root-version"] == "1"
    assert evidence["signature"].startswith("sha256:")
    for role in ("timestamp", "snapshot", "targets"):
        assert int(evidence[f"{role}-version"]) >= 1
    assert project.run("verify").exit_code == 0


@pytest.mark.parametrize("mismatch", ["digest", "length"])
def test_a_target_naming_another_digest_or_length_stops_the_lock(
    project: Project,
    registry: Registry,
    notary: NotaryServer,
    publisher: NotaryClient,
    repository: str,
    mismatch: str,
) -> None:
    image = registry.seeder.push_image(repository, "1.0.0")
    other = registry.seeder.push_image(repository, "2.0.0")
    name = gun(registry, repository)
    publisher.init(name)
    size = size_of(registry, repository, image)
    if mismatch == "digest":
        publisher.sign(name, "1.0.0", other.digest, size)
    else:
        publisher.sign(name, "1.0.0", image.digest, size + 1)
    project.write(config(notary, registry, repository))
    result = project.run("lock")
    assert result.exit_code == 1
    assert "[images.app]: tag 1.0.0:" in result.stderr
    assert ("is not " + image.digest if mismatch == "digest" else "bytes, the manifest") in result.stderr
    assert not project.lock.exists()


def test_an_unsigned_tag_and_a_repository_without_trust_data_fail_closed(
    project: Project, registry: Registry, notary: NotaryServer, publisher: NotaryClient, repository: str
) -> None:
    registry.seeder.push_image(repository, "1.0.0")
    project.write(config(notary, registry, repository))
    result = project.run("lock")
    assert result.exit_code == 1
    assert "no trust data for" in result.stderr

    publisher.init(gun(registry, repository))
    result = project.run("lock")
    assert result.exit_code == 1
    assert "tag 1.0.0 is not signed" in result.stderr


def test_a_version_selector_skips_an_unsigned_newer_tag(
    project: Project, registry: Registry, notary: NotaryServer, publisher: NotaryClient, repository: str
) -> None:
    signed = registry.seeder.push_image(repository, "1.0.0")
    registry.seeder.push_image(repository, "1.1.0")
    publisher.init(gun(registry, repository))
    sign(publisher, registry, repository, signed)
    project.write(config(notary, registry, repository, 'version = ">=1"'))
    result = project.run("lock")
    assert result.exit_code == 0, result.stderr
    assert "skipping tag 1.1.0" in result.stderr
    assert tomllib.loads(project.lock.read_text())["images"]["app"]["tag"] == "1.0.0"
    why = project.run("why", "app")
    assert "1.1.0" in why.stdout
    assert "not signed" in why.stdout


def test_the_releases_delegation_is_preferred_and_other_delegations_are_ignored(
    project: Project,
    registry: Registry,
    notary: NotaryServer,
    publisher: NotaryClient,
    repository: str,
    tmp_path: Path,
) -> None:
    released = registry.seeder.push_image(repository, "1.0.0")
    qa_only = registry.seeder.push_image(repository, "2.0.0")
    name = gun(registry, repository)
    publisher.init(name)
    for role in ("targets/releases", "targets/qa"):
        certificate, key = _delegation_key(tmp_path, role.split("/")[1])
        publisher.run("delegation", "add", name, role, str(certificate), "--all-paths")
        publisher.run("publish", name)
        publisher.run("key", "import", str(key), "--role", role)
    publisher.sign(name, "1.0.0", released.digest, size_of(registry, repository, released), role="targets/releases")
    publisher.sign(name, "2.0.0", qa_only.digest, size_of(registry, repository, qa_only), role="targets/qa")

    project.write(config(notary, registry, repository))
    result = project.run("lock")
    assert result.exit_code == 0, result.stderr
    assert verified(project)["role"] == "targets/releases"

    project.write(config(notary, registry, repository, 'tag = "2.0.0"'))
    result = project.run("lock")
    assert result.exit_code == 1
    assert "tag 2.0.0 is not signed" in result.stderr


def test_a_root_rotation_signed_by_the_pinned_key_is_accepted_and_a_root_swap_is_not(
    project: Project,
    registry: Registry,
    notary: NotaryServer,
    publisher: NotaryClient,
    repository: str,
    tmp_path: Path,
) -> None:
    image = registry.seeder.push_image(repository, "1.0.0")
    name = gun(registry, repository)
    publisher.init(name)
    sign(publisher, registry, repository, image)
    project.write(config(notary, registry, repository))
    assert project.run("lock").exit_code == 0
    pinned = verified(project)["root-keys"]

    publisher.rotate_root(name)
    result = project.run("verify")
    assert result.exit_code == 0, result.stdout + result.stderr

    publisher.delete(name)
    attacker = NotaryClient(notary, tmp_path / "attacker-trust")
    attacker.init(name)
    sign(attacker, registry, repository, image)
    result = project.run("verify")
    assert result.exit_code == 1
    assert "root swap" in result.stdout + result.stderr
    assert pinned in result.stdout + result.stderr


def test_rolled_back_or_expired_metadata_is_refused(
    registry: Registry, notary: NotaryServer, publisher: NotaryClient, repository: str
) -> None:
    image = registry.seeder.push_image(repository, "1.0.0")
    newer = registry.seeder.push_image(repository, "1.1.0")
    name = gun(registry, repository)
    publisher.init(name)
    sign(publisher, registry, repository, image)
    old = trust_files(notary, name)
    sign(publisher, registry, repository, newer, tag="1.1.0")
    new = trust_files(notary, name)
    now = datetime.datetime.now(datetime.UTC)

    latest = verify_repository(new, name, "1.0.0", now=now)
    assert verify_repository(old, name, "1.0.0", now=now).versions["timestamp"] < latest.versions["timestamp"]
    pins = Pins(frozenset(latest.root_keys), latest.root_threshold, latest.versions)
    with pytest.raises(
        SignatureError, match=r"timestamp.json version \d+ is older than the locked version \d+ \(rollback\)"
    ):
        verify_repository(old, name, "1.0.0", now=now, pins=pins)
    with pytest.raises(SignatureError, match=r"timestamp.json expired"):
        verify_repository(new, name, "1.0.0", now=now + datetime.timedelta(days=15))
    with pytest.raises(SignatureError, match=r"not 'docker\.io/other'"):
        verify_repository(new, "docker.io/other", "1.0.0", now=now)


def test_a_root_rotated_twice_is_followed_from_the_locked_root(
    project: Project, registry: Registry, notary: NotaryServer, publisher: NotaryClient, repository: str
) -> None:
    image = registry.seeder.push_image(repository, "1.0.0")
    name = gun(registry, repository)
    publisher.init(name)
    sign(publisher, registry, repository, image)
    project.write(config(notary, registry, repository))
    assert project.run("lock").exit_code == 0

    publisher.rotate_root(name)
    publisher.rotate_root(name)  # root 3 is signed by root 2's key and its own, not by the locked key
    result = project.run("verify")
    assert result.exit_code == 0, result.stdout + result.stderr

    newer = registry.seeder.push_image(repository, "1.0.0", salt="newer")
    sign(publisher, registry, repository, newer)
    result = project.run("lock", "--upgrade")
    assert result.exit_code == 0, result.stderr
    assert verified(project)["root-version"] == "3"
    assert verified(project)["root-keys"] == ",".join(root_keys_of(trust_files(notary, name)["root"]))


def test_a_root_listing_the_locked_key_but_signed_only_by_a_new_one_is_refused(
    project: Project, registry: Registry, notary: NotaryServer, publisher: NotaryClient, repository: str
) -> None:
    image = registry.seeder.push_image(repository, "1.0.0")
    name = gun(registry, repository)
    publisher.init(name)
    sign(publisher, registry, repository, image)
    forged: dict[str, bytes] = {}

    def serve_forged_root(method: str, path: str, answer: Answer) -> Answer:
        return replace(answer, body=forged["root"]) if path.endswith("/_trust/tuf/root.json") and forged else answer

    proxy = Proxy(f"127.0.0.1:{notary.port}", tamper=serve_forged_root, upstream_tls=notary_tls(notary)).start()
    try:
        project.write(served_config(f"http://{proxy.host}", registry, repository))
        assert project.run("lock").exit_code == 0
        pinned = verified(project)["root-keys"]
        root = json.loads(trust_files(notary, name)["root"])["signed"]
        intruder = Key.generate(name)
        root["keys"][intruder.keyid] = intruder.public
        root["roles"]["root"] = {"keyids": [pinned, intruder.keyid], "threshold": 1}
        root["version"] += 1
        forged["root"] = document(root, intruder)
        before = project.lock.read_bytes()
        sign(publisher, registry, repository, registry.seeder.push_image(repository, "1.0.0", salt="newer"))

        result = project.run("lock", "--upgrade")
        assert result.exit_code == 1
        assert result.stderr.count("\n") == 1
        assert "the root changed without the signatures of the old root keys" in result.stderr
        assert pinned in result.stderr
        assert project.lock.read_bytes() == before
        assert project.run("verify").exit_code == 1
    finally:
        proxy.stop()


def test_content_trust_policy_errors_are_exit_2(project: Project) -> None:
    project.write(
        '[policies.dct]\nmethod = "content-trust"\n\n[images.app]\nimage = "ghcr.io/acme/app"\ntag = "1"\n'
        'verify = "dct"\n'
    )
    result = project.run("lock")
    assert result.exit_code == 2
    assert "[images.app]: policy 'dct' needs a 'server'" in result.stderr
    project.write('[policies.dct]\nmethod = "content-trust"\nserver = "notary.example.com"\n')
    result = project.run("lock")
    assert result.exit_code == 2
    assert "key 'server'" in result.stderr
    assert str(project.config) in result.stderr


def _delegation_key(directory: Path, name: str) -> tuple[Path, Path]:
    key = ec.generate_private_key(ec.SECP256R1())
    certificate_path, key_path = directory / f"{name}.crt", directory / f"{name}.key"
    certificate_path.write_bytes(certificate(key, name).public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    return certificate_path, key_path


# -- trust data the test signs itself: what a compromised notary server could serve ----------------

SIGNED_GUN = "registry.example.com/team/app"
SIGNED_TARGETS = {"1.0.0": ("sha256:" + "a" * 64, 10)}


def now() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC)


def as_older_imagelock_wrote_it(project: Project) -> None:
    """Rewrite the lock's evidence as imagelock wrote it before it recorded the root threshold and versions."""
    evidence = verified(project)
    kept = ", ".join(f'{key} = "{evidence[key]}"' for key in ("method", "root-keys", "role", "signature"))
    older = f'verified = {{{kept}, timestamp-version = "{evidence["timestamp-version"]}"}}'
    project.lock.write_text(re.sub(r"^verified = .*$", older, project.lock.read_text(), flags=re.MULTILINE))


@pytest.mark.parametrize(
    ("threshold", "older_lock", "locked_signers", "accepted"),
    [(2, False, 1, False), (1, False, 1, True), (1, True, 1, False), (1, True, 2, True)],
    ids=[
        "below-the-locked-threshold",
        "at-the-locked-threshold",
        "older-lock-one-of-two-locked-keys",
        "older-lock-every-locked-key",
    ],
)
def test_a_new_root_needs_the_locked_threshold_of_the_locked_root_keys(
    project: Project,
    registry: Registry,
    repository: str,
    trust_server: TrustServer,
    threshold: int,
    older_lock: bool,
    locked_signers: int,
    accepted: bool,
) -> None:
    """A lock from before thresholds were recorded holds the next root to every locked key."""
    image = registry.seeder.push_image(repository, "1.0.0")
    name = gun(registry, repository)
    locked_keys, new = [Key.generate(name), Key.generate(name)], Key.generate(name)
    trust = TufRepository(name, root_keys=locked_keys)
    files = trust.publish(1, {"1.0.0": (image.digest, size_of(registry, repository, image))})
    trust_server.files = {**files, "root": trust.root(1, threshold=threshold)}
    project.write(served_config(trust_server.url, registry, repository))
    assert project.run("lock").exit_code == 0
    assert verified(project)["root-threshold"] == str(threshold)
    if older_lock:
        as_older_imagelock_wrote_it(project)

    signers = [*locked_keys[:locked_signers], new]
    rotated = trust.root(2, root_keys=[*locked_keys, new], threshold=1, signers=signers)
    trust_server.files = {**trust_server.files, "root": rotated, "1.root": trust_server.files["root"]}
    result = project.run("verify")
    assert result.exit_code == (0 if accepted else 1), result.stdout + result.stderr
    if not accepted:
        assert "the root changed without the signatures of the old root keys" in result.stdout + result.stderr


@pytest.mark.parametrize("rolled_back", ["snapshot", "targets", RELEASES])
def test_a_fresh_timestamp_over_older_signed_metadata_is_a_rollback(
    project: Project, registry: Registry, repository: str, trust_server: TrustServer, rolled_back: str
) -> None:
    """Whoever holds the timestamp key (on Notary, the server) or also the snapshot key serves old targets."""
    name = gun(registry, repository)
    trust = TufRepository(name)
    old_image = registry.seeder.push_image(repository, "1.0.0")
    old = trust.publish(1, {}, releases={"1.0.0": (old_image.digest, size_of(registry, repository, old_image))})
    new_image = registry.seeder.push_image(repository, "1.0.0", salt="new")
    new = trust.publish(2, {}, releases={"1.0.0": (new_image.digest, size_of(registry, repository, new_image))})
    trust_server.files = new
    project.write(served_config(trust_server.url, registry, repository))
    assert project.run("lock").exit_code == 0
    evidence = verified(project)
    assert [evidence[f"{role}-version"] for role in ("timestamp", "snapshot", "targets", "releases")] == ["2"] * 4
    before = project.lock.read_bytes()

    registry.seeder.push_image(repository, "1.0.0")  # the registry's tag goes back to the old build too
    served = {
        "snapshot": {**old, "timestamp": trust.timestamp(3, old["snapshot"])},
        "targets": trust.chain(3, {"root": old["root"], "targets": old["targets"], RELEASES: old[RELEASES]}),
        RELEASES: trust.chain(3, {"root": old["root"], "targets": new["targets"], RELEASES: old[RELEASES]}),
    }
    trust_server.files = served[rolled_back]
    result = project.run("lock", "--upgrade")
    assert result.exit_code == 1
    assert result.stderr.count("\n") == 1
    assert f"{rolled_back}.json version 1 is older than the locked version 2 (rollback)" in result.stderr
    assert project.lock.read_bytes() == before


@pytest.mark.parametrize(
    ("evidence", "value"), [("timestamp-version", "x"), ("root-version", "-1"), ("root-threshold", "0")]
)
def test_unreadable_content_trust_evidence_in_the_lock_is_an_input_error(
    project: Project, registry: Registry, repository: str, trust_server: TrustServer, evidence: str, value: str
) -> None:
    image = registry.seeder.push_image(repository, "1.0.0")
    trust = TufRepository(gun(registry, repository))
    trust_server.files = trust.publish(1, {"1.0.0": (image.digest, size_of(registry, repository, image))})
    project.write(served_config(trust_server.url, registry, repository))
    assert project.run("lock").exit_code == 0
    locked = project.lock.read_text()
    project.lock.write_text(locked.replace(f'{evidence} = "{verified(project)[evidence]}"', f'{evidence} = "{value}"'))

    result = project.run("verify")
    assert result.exit_code == 2
    assert result.stderr.count("\n") == 1
    assert f"{evidence} = {value!r}" in result.stderr


def test_malformed_trust_data_is_one_line_exit_1(
    project: Project, registry: Registry, repository: str, trust_server: TrustServer
) -> None:
    image = registry.seeder.push_image(repository, "1.0.0")
    trust = TufRepository(gun(registry, repository))
    files = trust.publish(1, {"1.0.0": (image.digest, size_of(registry, repository, image))})
    root = json.loads(files["root"])
    root["signed"]["roles"] = []
    trust_server.files = {**files, "root": json.dumps(root).encode()}
    project.write(served_config(trust_server.url, registry, repository))
    result = project.run("lock")
    assert result.exit_code == 1
    assert result.stderr.count("\n") == 1
    assert "root.json: 'roles' is not a table" in result.stderr
    assert not project.lock.exists()


@pytest.mark.parametrize(("parent", "role"), [("timestamp", "snapshot"), ("snapshot", "targets")])
def test_each_role_has_the_version_its_parent_names(parent: str, role: str) -> None:
    trust = TufRepository(SIGNED_GUN)
    files = trust.publish(2, SIGNED_TARGETS)

    def naming(version: int) -> dict[str, bytes]:
        signed = json.loads(files[parent])["signed"]
        signed["meta"][role]["version"] = version
        named = {**files, parent: trust.sign(parent, signed)}
        return named if parent == "timestamp" else {**named, "timestamp": trust.timestamp(2, named[parent])}

    assert verify_repository(naming(2), SIGNED_GUN, "1.0.0", now=now()).versions[role] == 2
    with pytest.raises(SignatureError, match=rf"^{role}.json is version 2; {parent}.json names version 3$"):
        verify_repository(naming(3), SIGNED_GUN, "1.0.0", now=now())


def test_a_root_older_than_the_locked_one_is_a_rollback() -> None:
    trust = TufRepository(SIGNED_GUN)
    files = trust.publish(1, SIGNED_TARGETS)
    pins = Pins(frozenset({trust.root_keys[0].keyid}), 1, {"root": 2})
    with pytest.raises(SignatureError, match=r"^root.json version 1 is older than the locked version 2 \(rollback\)$"):
        verify_repository(files, SIGNED_GUN, "1.0.0", now=now(), pins=pins)


def test_a_root_far_past_the_locked_one_is_not_walked() -> None:
    trust = TufRepository(SIGNED_GUN)
    root = trust.root(1 + MAX_ROOT_ROTATIONS + 1)
    pins = Pins(frozenset({trust.root_keys[0].keyid}), 1, {"root": 1})
    assert older_root_versions(trust.root(1 + MAX_ROOT_ROTATIONS), pins) == range(1, 1 + MAX_ROOT_ROTATIONS)
    with pytest.raises(SignatureError, match=f"more than {MAX_ROOT_ROTATIONS} rotations past the locked version 1"):
        older_root_versions(root, pins)


@pytest.mark.parametrize(
    ("role", "body", "message"),
    [
        ("root", b"[" * 100_000, "root.json is not TUF metadata"),
        ("root", b'{"signed": {"_type": "Root", "roles": []}, "signatures": []}', "root.json: 'roles' is not a table"),
        (
            "root",
            b'{"signed": {"_type": "Root", "roles": {"root": {"keyids": [[]], "threshold": 1}}}, "signatures": []}',
            "root.json: the root role has no key ids or threshold",
        ),
        (
            "root",
            b'{"signed": {"_type": "Root", "keys": {"k": []}}, "signatures": []}',
            "root.json: key k is not a table",
        ),
        ("root", b'{"signed": {"_type": "Root", "x": "\\ud800"}, "signatures": []}', "root.json is not TUF metadata"),
    ],
    ids=["nested-too-deep", "roles-a-list", "keyid-a-list", "key-a-list", "lone-surrogate"],
)
def test_malformed_trust_metadata_is_a_signature_error(role: str, body: bytes, message: str) -> None:
    files = {**TufRepository(SIGNED_GUN).publish(1, SIGNED_TARGETS), role: body}
    with pytest.raises(SignatureError, match=f"^{re.escape(message)}$"):
        verify_repository(files, SIGNED_GUN, "1.0.0", now=now())


# -- the upstream vectors (made by the notary client, versions 0.1 and 0.3) -----------------------

CASES = interop_cases(INTEROP)


@needs_interop
@pytest.mark.parametrize("case", CASES, ids=[str(case["id"]) for case in CASES])
def test_interop_notary_vectors(case: Case) -> None:
    """Metadata the real notary client wrote verifies; every tampered or mis-trusted variant fails."""
    files = {role: mutated(INTEROP, str(path), case) for role, path in case["metadata"].items()}  # type: ignore[attr-defined]
    pinned_certificate = case.get("pinned_root_certificate")
    pins = Pins(frozenset({Path(str(pinned_certificate)).stem}), 1, {}) if pinned_certificate else None
    when = str(case["verification_time"])
    now = (
        datetime.datetime.now(datetime.UTC)
        if when == "now"
        else datetime.datetime.fromisoformat(when.replace("Z", "+00:00"))
    )
    expected: dict[str, dict[str, object]] = case.get("expected_targets") or {}  # type: ignore[assignment]
    if case["expected"] == "valid":
        for target, facts in expected.items():
            found = verify_repository(files, str(case["gun"]), target, now=now, pins=pins)
            assert found.sha256.hex() == facts["sha256_hex"]
            assert found.length == facts["length"]
            assert found.role == facts["role"]
    else:
        with pytest.raises(SignatureError):
            verify_repository(files, str(case["gun"]), "LICENSE", now=now, pins=pins)


@pytest.mark.parametrize(
    ("offset", "written"),
    [
        (5, "%Y-%m-%dT%H:%M:%S.123456789+05:00"),
        (0, "%Y-%m-%dT%H:%M:%SZ"),
        (0, "%Y-%m-%dT%H:%M:%S"),
        (-8, "%Y-%m-%dT%H:%M:%S-08:00"),
    ],
)
def test_an_expiry_is_read_in_its_own_time_zone(offset: int, written: str) -> None:
    expires = (now() + datetime.timedelta(days=1)).replace(second=0, microsecond=0)
    local = expires.astimezone(datetime.timezone(datetime.timedelta(hours=offset)))
    trust = TufRepository(SIGNED_GUN)
    files = trust.publish(1, SIGNED_TARGETS)
    meta = {"snapshot": described(files["snapshot"])}
    signed = {"_type": "Timestamp", "expires": local.strftime(written), "meta": meta, "version": 1}
    files["timestamp"] = trust.sign("timestamp", signed)
    minute = datetime.timedelta(minutes=1)

    assert verify_repository(files, SIGNED_GUN, "1.0.0", now=expires - minute).role == "targets"
    with pytest.raises(SignatureError, match=rf"^timestamp.json expired at {re.escape(expires.isoformat()[:19])}"):
        verify_repository(files, SIGNED_GUN, "1.0.0", now=expires + minute)
