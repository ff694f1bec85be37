"""Keyless (Fulcio + Rekor) signatures: the upstream sigstore vectors, and the registry path."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from imagelock.trust import KeylessPolicy, SignatureError
from imagelock.trust.keyless import verify_keyless_bundle
from imagelock.trust.statements import check_signature_statement, check_statement
from tests.conftest import Project, Registry
from tests.support.cosign import SigningKey, attach_bundle, sign_image_bundle
from tests.support.interop import Case, interop_cases, interop_folder, mutated, needs_interop

INTEROP = interop_folder("sigstore")
ATTESTATION = INTEROP / "cosign-oci-attestation"
ATTESTATION_PREDICATE = "https://cosign.sigstore.dev/attestation/v1"


def _mutated(relative: str, case: Case) -> bytes:
    return mutated(INTEROP, relative, case)


CASES = interop_cases(INTEROP)


@needs_interop
@pytest.mark.parametrize("case", CASES, ids=[str(case["id"]) for case in CASES])
def test_interop_sigstore_vectors(case: dict[str, object], tmp_path: Path) -> None:
    """Bundles made by cosign and sigstore-python verify offline; every tampered or mis-trusted variant fails.

    Both valid bundles are attestations (of a cosign predicate, of SLSA provenance): they prove what they
    sign, and a signature policy still refuses them, since only cosign's signature predicate is a signature.
    """
    root = tmp_path / "trusted_root.json"
    root.write_bytes(_mutated(str(case["trusted_root"]), case))
    identity = case["identity"]
    policy = KeylessPolicy.create("case", identity["oidc_issuer"], identity["san"], None, root)  # type: ignore[index]
    bundle = _mutated(str(case["bundle"]), case)
    if case["expected"] != "valid":
        with pytest.raises(SignatureError):
            verify_keyless_bundle(bundle, policy)
        return
    claims: dict[str, Any] = case["expected_claims"]  # type: ignore[assignment]
    result = verify_keyless_bundle(bundle, policy)
    assert result.identity == identity["san"]  # type: ignore[index]
    assert result.log_index == str(claims["rekor"]["logIndex"])
    signed = json.loads(result.payload)
    assert (result.payload_type, signed["predicateType"]) == (claims["payloadType"], claims["predicateType"])
    digest = f"sha256:{claims['subject'][0]['digest']['sha256']}"
    check_statement(result.payload_type, result.payload, digest)
    with pytest.raises(
        SignatureError, match=re.escape(f"an attestation of predicate type '{claims['predicateType']}'")
    ):
        check_signature_statement(result.payload_type, result.payload, digest)


@needs_interop
@pytest.mark.parametrize(
    ("pattern", "valid"), [(r".*@soyland\.com", True), (r"cody@soyland", False), (r".*@evil\.com", False)]
)
def test_identity_regexp_must_match_the_whole_identity(pattern: str, valid: bool) -> None:
    policy = KeylessPolicy.create(
        "case", "https://github.com/login/oauth", None, pattern, ATTESTATION / "trusted_root_pgi.json"
    )
    bundle = (ATTESTATION / "oci-attestation.sigstore.json").read_bytes()
    if valid:
        assert verify_keyless_bundle(bundle, policy).identity == "cody@soyland.com"
    else:
        with pytest.raises(SignatureError, match="no certificate identity matches"):
            verify_keyless_bundle(bundle, policy)


def keyless_config(
    project: Project, registry: Registry, repository: str, selector: str = 'version = ">=1"', verify: str = '"upstream"'
) -> str:
    (project.directory / "trust").mkdir(exist_ok=True)
    (project.directory / "trust" / "root.json").write_bytes((ATTESTATION / "trusted_root_pgi.json").read_bytes())
    return (
        '[policies.upstream]\nmethod = "cosign-keyless"\nissuer = "https://github.com/login/oauth"\n'
        'identity = "cody@soyland.com"\ntrusted-root = "trust/root.json"\n'
        f'[images.app]\nimage = "{registry.host}/{repository}"\n{selector}\nverify = {verify}\n'
    )


@needs_interop
def test_the_upstream_cosign_attestation_is_not_a_keyless_signature(project: Project, registry: Registry) -> None:
    """Its certificate, identity, log entry and DSSE signature are genuine, but ``cosign attest`` made it."""
    repository = "keyless/attested"
    image = registry.seeder.push_image(repository, "1.0.0")
    attach_bundle(
        registry.seeder, repository, image.digest, (ATTESTATION / "oci-attestation.sigstore.json").read_bytes()
    )
    project.write(keyless_config(project, registry, repository, 'tag = "1.0.0"', verify="false"))
    assert project.run("lock").exit_code == 0
    before = project.lock.read_bytes()

    project.write(keyless_config(project, registry, repository, 'tag = "1.0.0"'))
    result = project.run("lock")

    assert result.exit_code == 1
    assert result.stderr.count("\n") == 1
    assert "[images.app]" in result.stderr
    assert f"an attestation of predicate type {ATTESTATION_PREDICATE!r}, not a signature" in result.stderr
    assert project.lock.read_bytes() == before


@needs_interop
def test_verify_bundle_judges_the_sigstore_bundle_it_carries_offline(
    project: Project, registry: Registry, monkeypatch: pytest.MonkeyPatch
) -> None:
    repository = "keyless/bundled"
    image = registry.seeder.push_image(repository, "1.0.0")
    attach_bundle(
        registry.seeder, repository, image.digest, (ATTESTATION / "oci-attestation.sigstore.json").read_bytes()
    )
    project.write(keyless_config(project, registry, repository, 'tag = "1.0.0"', verify="false"))
    assert project.run("lock").exit_code == 0
    bundle = project.directory / "release.tar"
    assert project.run("bundle", str(bundle)).exit_code == 0
    project.write(keyless_config(project, registry, repository, 'tag = "1.0.0"'))

    async def no_network(*arguments: object, **options: object) -> None:
        raise AssertionError("verify --bundle sent a request")

    monkeypatch.setattr("imagelock.registry.transport.Transport.request", no_network)
    result = project.run("verify", "--bundle", str(bundle))

    assert result.exit_code == 1
    assert f"an attestation of predicate type {ATTESTATION_PREDICATE!r}, not a signature" in result.stdout


@needs_interop
def test_keyless_policy_refuses_a_key_based_bundle_and_an_unsigned_image(project: Project, registry: Registry) -> None:
    repository = "keyless/keyed"
    image = registry.seeder.push_image(repository, "1.0.0")
    sign_image_bundle(registry.seeder, repository, image.digest, SigningKey.ecdsa())
    registry.seeder.push_image(repository, "1.1.0")  # unsigned
    project.write(keyless_config(project, registry, repository))
    result = project.run("lock")
    assert result.exit_code == 1
    assert "skipping tag 1.1.0: no sigstore bundle" in result.stderr
    assert "keyless signature rejected" in result.stderr or "not a valid sigstore bundle" in result.stderr


@pytest.mark.parametrize(
    ("policy", "message"),
    [
        ('method = "cosign-keyless"\nidentity = "a@b"\n', "missing key 'issuer'"),
        ('method = "cosign-keyless"\nissuer = "i"\n', "needs exactly one of 'identity' and 'identity-regexp'"),
        ('method = "cosign-keyless"\nissuer = "i"\nidentity-regexp = "(unclosed"\n', "invalid regex"),
        ('method = "cosign-keyless"\nissuer = "i"\nidentity = "a"\ntrusted-root = "missing.json"\n', "cannot read"),
        ('method = "cosign-keyless"\nissuer = "i"\nidentity = "a"\nkey = "k.pub"\n', "unknown key 'key'"),
    ],
)
def test_keyless_policy_errors(project: Project, policy: str, message: str) -> None:
    project.write(f"[policies.upstream]\n{policy}")
    result = project.run("lock")
    assert result.exit_code == 2
    assert "[policies.upstream]" in result.stderr
    assert message in result.stderr


def test_keyless_policy_is_part_of_the_spec(project: Project, tmp_path: Path) -> None:
    """Another identity, issuer or trusted root is another policy: locked entries become stale."""
    from imagelock.config import parse_config

    base = '[policies.p]\nmethod = "cosign-keyless"\nissuer = "i"\nidentity = "a"\n[defaults]\nverify = "p"\n'
    image = '[images.app]\nimage = "nginx"\ntag = "1"\n'
    first = parse_config(base + image, tmp_path / "images.toml").images["app"].spec_hash
    for changed in (base.replace('"a"', '"b"'), base.replace('issuer = "i"', 'issuer = "j"')):
        assert parse_config(changed + image, tmp_path / "images.toml").images["app"].spec_hash != first
    assert re.fullmatch(r"sha256:[0-9a-f]{64}", first)
