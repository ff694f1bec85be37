"""Signatures while locking: cosign keys against the real registry, every attack, and the upstream vectors."""

from __future__ import annotations

import base64
import hashlib
import json
import re
import tomllib
from collections.abc import Callable

import httpx
import pytest
from cryptography.hazmat.primitives.asymmetric import ec

from imagelock.trust import SignatureError
from imagelock.trust.cosign import verify_simple_signing
from imagelock.trust.keys import load_public_key
from imagelock.trust.rekor import verify_signed_entry
from tests.conftest import Project, Registry
from tests.support.cosign import (
    SigningKey,
    dsse_envelope,
    payload,
    push_cosign_tag,
    rekor_bundle,
    sign_image,
    sign_image_bundle,
    statement,
)
from tests.support.interop import Case, interop_cases, interop_folder, mutated
from tests.support.proxy import Answer, Proxy
from tests.support.registry import PushedImage

INTEROP = interop_folder("cosign")


@pytest.fixture(scope="module")
def key() -> SigningKey:
    return SigningKey.ecdsa()


@pytest.fixture
def repository(request: pytest.FixtureRequest) -> str:
    return "signed/" + re.sub(r"[^a-z0-9]+", "-", request.node.name.lower())[:60].strip("-")


def policy_config(project: Project, key: SigningKey, extra: str = "") -> str:
    key.write_public(project.directory / "keys" / "release.pub")
    return f'[policies.release]\nmethod = "cosign"\nkey = "keys/release.pub"\n{extra}\n[defaults]\nverify = "release"\n'


def image_entry(registry: Registry, repository: str, selector: str = 'version = ">=1"') -> str:
    return f'[images.app]\nimage = "{registry.host}/{repository}"\n{selector}\n'


def locked(project: Project) -> dict[str, object]:
    entry: dict[str, object] = tomllib.loads(project.lock.read_text())["images"]["app"]
    return entry


def push_signed(registry: Registry, repository: str, tag: str, key: SigningKey, **attack: object) -> PushedImage:
    image = registry.seeder.push_image(repository, tag)
    sign_image(registry.seeder, registry.host, repository, image.digest, key, **attack)  # type: ignore[arg-type]
    return image


def test_the_newest_signed_tag_is_locked_with_its_evidence(
    project: Project, registry: Registry, key: SigningKey, repository: str
) -> None:
    push_signed(registry, repository, "1.0.0", key)
    signed = push_signed(registry, repository, "1.1.0", key)
    registry.seeder.push_image(repository, "1.2.0")  # newer, but unsigned
    project.write(policy_config(project, key) + image_entry(registry, repository))

    result = project.run("lock")

    assert result.exit_code == 0, result.stderr
    entry = locked(project)
    assert entry["tag"] == "1.1.0"
    assert entry["digest"] == signed.digest
    signature_tag = f"/v2/{repository}/manifests/sha256-{signed.digest[7:]}.sig"
    signature_digest = httpx.head(
        f"{registry.server.url}{signature_tag}", headers={"Accept": "application/vnd.oci.image.manifest.v1+json"}
    ).headers["docker-content-digest"]
    assert entry["verified"] == {"method": "cosign", "key": key.fingerprint, "signature": signature_digest}
    assert "skipping tag 1.2.0: no cosign signature" in result.stderr
    assert result.stdout.rstrip().endswith(f"added 1.1.0  {signed.digest[:19]}… (1 newer skipped: no valid signature)")
    assert 'verified = {method = "cosign"' in project.lock.read_text()

    why = project.run("why", "app")
    verdicts = dict(line.split(None, 1) for line in why.stdout.splitlines()[1:])
    assert verdicts["1.2.0"].startswith("signature: no cosign signature")
    assert verdicts["1.1.0"] == "chosen"
    assert project.run("verify").exit_code == 0


def test_a_followed_tag_without_a_valid_signature_stops_the_lock(
    project: Project, registry: Registry, key: SigningKey, repository: str
) -> None:
    project.write(policy_config(project, key) + image_entry(registry, repository, 'tag = "stable"'))
    push_signed(registry, repository, "stable", key)
    assert project.run("lock").exit_code == 0
    before = project.lock.read_bytes()

    registry.seeder.push_image(repository, "stable", salt="moved")  # the tag moves to an unsigned image
    result = project.run("update")

    assert result.exit_code == 1
    assert "[images.app]: tag stable: no cosign signature" in result.stderr
    assert project.lock.read_bytes() == before


ATTACKS: dict[str, tuple[Callable[[SigningKey, str, str], dict[str, object]], str]] = {
    "signature over another digest": (
        lambda key, ref, digest: {"signed_digest": "sha256:" + "0" * 64},
        "signature is for sha256:000",
    ),
    "wrong key": (lambda key, ref, digest: {"key": SigningKey.ecdsa()}, "does not verify"),
    "payload swapped under a valid annotation": (
        lambda key, ref, digest: {
            "uploaded_payload": payload(ref, digest).replace(b'"optional":null', b'"optional":{"evil":1}')
        },
        "does not verify",
    ),
    "signature copied from another repository": (
        lambda key, ref, digest: {"docker_reference": "docker.io/library/other"},
        "names another repository",
    ),
    "malformed base64": (lambda key, ref, digest: {"signature": "not*base64!"}, "not base64"),
    "malformed JSON": (
        lambda key, ref, digest: {"signed_payload": b"{not json"},
        "not a cosign simple-signing document",
    ),
    "another payload type": (
        lambda key, ref, digest: {"signed_payload": payload(ref, digest, kind="something else")},
        "has type 'something else'",
    ),
    "oversize payload": (
        lambda key, ref, digest: {"signed_payload": payload(ref, digest)[:-1] + b' ,"pad":"' + b"x" * 70000 + b'"}'},
        "larger than 65536 bytes",
    ),
}


@pytest.mark.parametrize("attack", sorted(ATTACKS))
def test_attacks_are_rejected(
    project: Project, registry: Registry, key: SigningKey, repository: str, attack: str
) -> None:
    make, message = ATTACKS[attack]
    image = registry.seeder.push_image(repository, "1.0.0")
    options = make(key, f"{registry.host}/{repository}", image.digest)
    signing_key = options.pop("key", key)
    sign_image(registry.seeder, registry.host, repository, image.digest, signing_key, **options)  # type: ignore[arg-type]
    project.write(policy_config(project, key) + image_entry(registry, repository))

    result = project.run("lock")

    assert result.exit_code == 1, result.stderr
    assert "[images.app]" in result.stderr
    assert message in result.stderr
    assert not project.lock.exists()


def test_unsigned_image_under_a_policy_is_rejected(
    project: Project, registry: Registry, key: SigningKey, repository: str
) -> None:
    registry.seeder.push_image(repository, "1.0.0")
    project.write(policy_config(project, key) + image_entry(registry, repository))
    result = project.run("lock")
    assert result.exit_code == 1
    assert "no tag of" in result.stderr
    assert "no cosign signature" in result.stderr


def test_match_repository_false_accepts_a_signature_copied_from_elsewhere(
    project: Project, registry: Registry, key: SigningKey, repository: str
) -> None:
    push_signed(registry, repository, "1.0.0", key, docker_reference="docker.io/library/other")
    project.write(policy_config(project, key, "match-repository = false") + image_entry(registry, repository))
    assert project.run("lock").exit_code == 0


@pytest.mark.parametrize(
    "make_key",
    [SigningKey.rsa, SigningKey.ed25519, lambda: SigningKey.ecdsa(ec.SECP384R1())],
    ids=["rsa", "ed25519", "p384"],
)
def test_other_key_types(
    project: Project, registry: Registry, repository: str, make_key: Callable[[], SigningKey]
) -> None:
    key = make_key()
    push_signed(registry, repository, "1.0.0", key)
    project.write(policy_config(project, key) + image_entry(registry, repository))
    result = project.run("lock")
    assert result.exit_code == 0, result.stderr
    assert locked(project)["verified"]["key"] == key.fingerprint  # type: ignore[index]


def test_any_one_of_several_keys_suffices(
    project: Project, registry: Registry, key: SigningKey, repository: str
) -> None:
    other = SigningKey.ecdsa()
    push_signed(registry, repository, "1.0.0", key)
    other.write_public(project.directory / "keys" / "other.pub")
    key.write_public(project.directory / "keys" / "release.pub")
    project.write(
        '[policies.team]\nmethod = "cosign"\nkeys = ["keys/other.pub", "keys/release.pub"]\n'
        + image_entry(registry, repository)
        + 'verify = "team"\n'
    )
    assert project.run("lock").exit_code == 0
    assert locked(project)["verified"]["key"] == key.fingerprint  # type: ignore[index]


def test_verify_false_opts_an_image_out_and_inline_policies_work(
    project: Project, registry: Registry, key: SigningKey, repository: str
) -> None:
    registry.seeder.push_image(repository, "1.0.0")
    project.write(policy_config(project, key) + image_entry(registry, repository) + "verify = false\n")
    assert project.run("lock").exit_code == 0
    assert "verified" not in locked(project)

    project.write(
        policy_config(project, key)
        + image_entry(registry, repository)
        + 'verify = { method = "cosign", key = "keys/release.pub" }\n'
    )
    assert project.run("check").exit_code == 1  # the policy changed: the entry is stale
    result = project.run("lock")
    assert result.exit_code == 1
    assert "no cosign signature" in result.stderr


def test_a_changed_policy_makes_the_lock_stale_and_verify_rechecks_signatures(
    project: Project, registry: Registry, key: SigningKey, repository: str
) -> None:
    image = push_signed(registry, repository, "1.0.0", key)
    project.write(policy_config(project, key) + image_entry(registry, repository))
    assert project.run("lock").exit_code == 0
    assert project.run("check").exit_code == 0

    signature = f"{registry.server.url}/v2/{repository}/manifests/sha256-{image.digest[7:]}.sig"
    accept = {"Accept": "application/vnd.oci.image.manifest.v1+json"}
    signature_digest = httpx.head(signature, headers=accept).headers["docker-content-digest"]
    httpx.delete(f"{registry.server.url}/v2/{repository}/manifests/{signature_digest}").raise_for_status()
    result = project.run("verify")
    assert result.exit_code == 1
    assert "app  signature: no cosign signature" in result.stdout

    SigningKey.ecdsa().write_public(project.directory / "keys" / "release.pub")  # the key was rotated
    check = project.run("check")
    assert check.exit_code == 1
    assert "app: spec changed (verify or audit gate)" in check.stdout


@pytest.mark.parametrize(
    ("policy", "message"),
    [
        ('[policies.release]\nmethod = "cosign"\nkey = "keys/missing.pub"\n', "[policies.release]: key file"),
        ('[policies.release]\nmethod = "cosign"\nkey = "keys/garbage.pub"\n', "not a PEM public key"),
        ('[policies.release]\nmethod = "cosign"\nkey = "keys/odd-curve.pub"\n', "unsupported public key"),
        ('[policies.release]\nmethod = "cosign"\n', "needs exactly one of 'key'"),
        ('[policies.release]\nmethod = "gpg"\nkey = "k"\n', "key 'method': expected one of cosign"),
        ('[policies.release]\nmethod = "cosign"\nkey = "keys/garbage.pub"\nextra = 1\n', "unknown key 'extra'"),
        ('[policies.release]\nmethod = "notation"\n', "missing key 'trust-store'"),
        ('[images.app]\nimage = "nginx"\ntag = "1"\nverify = "relase"\n', "[images.app]: key 'verify': unknown policy"),
        ('[defaults]\nverify = "nope"\n', "[defaults]: key 'verify': unknown policy 'nope'"),
    ],
)
def test_policy_errors_are_exit_2_naming_file_policy_and_image(project: Project, policy: str, message: str) -> None:
    (project.directory / "keys").mkdir()
    (project.directory / "keys" / "garbage.pub").write_text("not a key\n")
    p256 = base64.b64decode(b"".join(SigningKey.ecdsa().public_pem().splitlines()[1:-1]))
    # P-256's curve OID 1.2.840.10045.3.1.7 made 1.6.840.10045.3.1.7, which no library knows
    odd_curve = p256.replace(bytes.fromhex("2a8648ce3d030107"), bytes.fromhex("2e8648ce3d030107"))
    pem = b"-----BEGIN PUBLIC KEY-----\n" + base64.encodebytes(odd_curve) + b"-----END PUBLIC KEY-----\n"
    (project.directory / "keys" / "odd-curve.pub").write_bytes(pem)
    project.write(policy)
    result = project.run("lock")
    assert result.exit_code == 2
    assert str(project.config) in result.stderr
    assert message in result.stderr


# -- the upstream vectors (containers/image fixtures, made by cosign and skopeo) --------------------


def _mutated(relative: str, case: Case) -> bytes:
    return mutated(INTEROP, relative, case)


KEY_CASES = [case for case in interop_cases(INTEROP) if "public_keys" in case["trust"]]  # type: ignore[operator]


@pytest.mark.skipif(not KEY_CASES, reason="../shared/interop is not beside this checkout (CI has it)")
@pytest.mark.parametrize("case", KEY_CASES, ids=[str(case["id"]) for case in KEY_CASES])
def test_interop_cosign_key_vectors(case: dict[str, object]) -> None:
    """Signatures the real cosign and skopeo made verify; every tampered or mis-trusted variant fails."""
    raw = _mutated(str(case["signature"]), case)
    prefix = b"\x00sigstore-json\n"
    assert raw.startswith(prefix)
    signature = json.loads(raw[len(prefix) :])
    manifest = _mutated(str(case["manifest"]), case)
    digest = "sha256:" + hashlib.sha256(manifest).hexdigest()
    keys = [load_public_key(INTEROP / name) for name in case["trust"]["public_keys"]]  # type: ignore[index]
    expected_reference = case["expected_docker_reference"]

    rekor_keys = [load_public_key(INTEROP / name) for name in case["trust"].get("rekor_public_keys", [])]  # type: ignore[attr-defined]
    annotations = signature["annotations"]

    def verify() -> None:
        if signature["mimeType"] != "application/vnd.dev.cosign.simplesigning.v1+json":
            raise SignatureError("not a simple-signing layer")
        payload_bytes = base64.b64decode(signature["payload"])
        verified = verify_simple_signing(
            payload_bytes,
            annotations.get("dev.cosignproject.cosign/signature", ""),
            keys,
            digest,
            lambda reference: reference == expected_reference,
        )
        if case.get("require_rekor") or rekor_keys:
            if "dev.sigstore.cosign/bundle" not in annotations:
                raise SignatureError("no Rekor SET")
            verify_signed_entry(
                annotations["dev.sigstore.cosign/bundle"],
                rekor_keys,
                payload_bytes,
                annotations["dev.cosignproject.cosign/signature"],
                verified.key,
            )

    if case["expected"] == "valid":
        verify()
        claims = case.get("expected_claims") or {}
        if "docker-manifest-digest" in claims:  # type: ignore[operator]
            assert claims["docker-manifest-digest"] == digest  # type: ignore[index]
    else:
        with pytest.raises(SignatureError):
            verify()


# -- cosign v3: sigstore bundles attached as OCI referrers -----------------------------------------


def test_a_v3_bundle_signature_is_found_through_the_referrers_tag_and_verified(
    project: Project, registry: Registry, key: SigningKey, repository: str
) -> None:
    image = registry.seeder.push_image(repository, "1.0.0")
    bundle_manifest = sign_image_bundle(registry.seeder, repository, image.digest, key)
    project.write(policy_config(project, key) + image_entry(registry, repository))
    result = project.run("lock")
    assert result.exit_code == 0, result.stderr
    assert locked(project)["verified"] == {"method": "cosign", "key": key.fingerprint, "signature": bundle_manifest}


@pytest.mark.parametrize(
    ("attack", "message"),
    [("subject", "subject is not"), ("wrong key behind the right hint", "DSSE signature does not verify")],
)
def test_v3_bundle_attacks_are_rejected(
    project: Project, registry: Registry, key: SigningKey, repository: str, attack: str, message: str
) -> None:
    image = registry.seeder.push_image(repository, "1.0.0")
    if attack == "subject":
        sign_image_bundle(registry.seeder, repository, image.digest, key, subject_digest="sha256:" + "1" * 64)
    else:
        sign_image_bundle(registry.seeder, repository, image.digest, SigningKey.ecdsa(), hint_key=key)
    project.write(policy_config(project, key) + image_entry(registry, repository))
    result = project.run("lock")
    assert result.exit_code == 1
    assert message in result.stderr
    assert not project.lock.exists()


SBOM_PREDICATE = "https://spdx.dev/Document"


def test_a_v3_bundle_holding_an_attestation_by_the_policy_key_is_not_a_signature(
    project: Project, registry: Registry, key: SigningKey, repository: str
) -> None:
    """``cosign attest`` stores an SBOM beside signatures, under the same artifact type and the same key."""
    image = registry.seeder.push_image(repository, "stable")
    sign_image_bundle(registry.seeder, repository, image.digest, key)
    project.write(policy_config(project, key) + image_entry(registry, repository, 'tag = "stable"'))
    assert project.run("lock").exit_code == 0
    before = project.lock.read_bytes()

    moved = registry.seeder.push_image(repository, "stable", salt="attested, never signed")
    sign_image_bundle(registry.seeder, repository, moved.digest, key, predicate_type=SBOM_PREDICATE)
    result = project.run("update")

    assert result.exit_code == 1
    assert result.stderr.count("\n") == 1
    assert f"an attestation of predicate type {SBOM_PREDICATE!r}, not a signature" in result.stderr
    assert project.lock.read_bytes() == before


def test_an_attestation_at_the_sig_tag_is_not_a_signature(
    project: Project, registry: Registry, key: SigningKey, repository: str
) -> None:
    """A legacy signature is a simple-signing layer: a DSSE attestation signed by the policy key is not one."""
    image = registry.seeder.push_image(repository, "1.0.0")
    envelope = json.dumps(dsse_envelope(key, statement(image.digest, SBOM_PREDICATE))).encode()
    push_cosign_tag(
        registry.seeder, repository, image.digest, "sig", "application/vnd.dsse.envelope.v1+json", envelope, {}
    )
    project.write(policy_config(project, key) + image_entry(registry, repository, 'tag = "1.0.0"'))
    result = project.run("lock")
    assert result.exit_code == 1
    assert "the .sig manifest has no simple-signing layer" in result.stderr
    assert not project.lock.exists()


def test_the_tag_moving_during_the_run_cannot_swap_in_an_unverified_image(
    registry: Registry, project: Project, key: SigningKey, repository: str
) -> None:
    """Right after imagelock read the tag, it is moved to an unsigned image: the lock holds what was verified."""
    signed = push_signed(registry, repository, "1.0.0", key)
    proxy = Proxy(registry.host)
    moved: list[PushedImage] = []

    def move_tag(method: str, path: str, answer: Answer) -> Answer:
        if path.endswith(f"/{repository}/manifests/1.0.0") and method == "GET" and not moved:
            moved.append(registry.seeder.push_image(repository, "1.0.0", salt="swapped in"))
        return answer

    proxy.tamper = move_tag
    proxy.start()
    try:
        # Through the proxy the registry has another name, so the signature's docker-reference differs.
        relaxed = policy_config(project, key, "match-repository = false")
        project.write(relaxed + f'[images.app]\nimage = "{proxy.host}/{repository}"\ntag = "1.0.0"\n')
        result = project.run("lock")
    finally:
        proxy.stop()
    assert result.exit_code == 0, result.stderr
    assert moved
    assert moved[0].digest != signed.digest
    assert locked(project)["digest"] == signed.digest  # the digest that was resolved is the one verified and pinned


# -- rekor-key: a Rekor SET is required beside the signature ---------------------------------------


def test_rekor_key_requires_a_transparency_log_entry_binding_the_signature(
    project: Project, registry: Registry, key: SigningKey, repository: str
) -> None:
    log, other_log = SigningKey.ecdsa(), SigningKey.ecdsa()
    log.write_public(project.directory / "keys" / "rekor.pub")
    push_signed(registry, repository, "1.0.0", key, rekor=log)
    push_signed(registry, repository, "1.1.0", key)  # no SET at all
    push_signed(registry, repository, "1.2.0", key, rekor=other_log)  # a SET by a log nobody trusts
    project.write(policy_config(project, key, 'rekor-key = "keys/rekor.pub"') + image_entry(registry, repository))
    result = project.run("lock")
    assert result.exit_code == 0, result.stderr
    assert locked(project)["tag"] == "1.0.0"
    assert locked(project)["verified"]["log-index"] == "7"  # type: ignore[index]
    assert "skipping tag 1.2.0: " in result.stderr
    assert "not signed by a trusted transparency log key" in result.stderr
    assert "skipping tag 1.1.0: " in result.stderr
    assert "has no Rekor SET" in result.stderr


def test_a_rekor_set_for_another_signature_is_rejected(
    project: Project, registry: Registry, key: SigningKey, repository: str
) -> None:
    log = SigningKey.ecdsa()
    log.write_public(project.directory / "keys" / "rekor.pub")
    image = registry.seeder.push_image(repository, "1.0.0")
    elsewhere = payload(f"{registry.host}/{repository}", image.digest.replace("a", "b").replace("1", "2"))
    stolen_set = rekor_bundle(log, elsewhere, base64.b64encode(key.sign(elsewhere)).decode(), key)
    signature_digest = sign_image(registry.seeder, registry.host, repository, image.digest, key)
    manifest = json.loads(
        httpx.get(
            f"{registry.server.url}/v2/{repository}/manifests/{signature_digest}",
            headers={"Accept": "application/vnd.oci.image.manifest.v1+json"},
        ).content
    )
    manifest["layers"][0]["annotations"]["dev.sigstore.cosign/bundle"] = stolen_set
    algorithm, _, hexdigest = image.digest.partition(":")
    registry.seeder.push_manifest(
        repository, f"{algorithm}-{hexdigest}.sig", json.dumps(manifest).encode(), manifest["mediaType"]
    )
    project.write(
        policy_config(project, key, 'rekor-key = "keys/rekor.pub"') + image_entry(registry, repository, 'tag = "1.0.0"')
    )
    result = project.run("lock")
    assert result.exit_code == 1
    assert "the Rekor entry is for another payload" in result.stderr
