"""Keyless (Fulcio + Rekor) signatures: the upstream sigstore vectors, and the registry path."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from imagelock.trust import KeylessPolicy, SignatureError
from imagelock.trust.keyless import verify_keyless_bundle
from tests.conftest import Project, Registry
from tests.support.cosign import SigningKey, attach_bundle, sign_image_bundle
from tests.support.interop import Case, interop_cases, interop_folder, mutated, needs_interop

INTEROP = interop_folder("sigstore")
ATTESTATION = INTEROP / "cosign-oci-attestation"
SIGNED_DIGEST = "sha256:732112270d7e59418a8c080b134b24cabd67d250d0d0147a97ed95ba5c280aa4"


def _mutated(relative: str, case: Case) -> bytes:
    return mutated(INTEROP, relative, case)


CASES = interop_cases(INTEROP)


@needs_interop
@pytest.mark.parametrize("case", CASES, ids=[str(case["id"]) for case in CASES])
def test_interop_sigstore_vectors(case: dict[str, object], tmp_path: Path) -> None:
    """Bundles made by cosign and sigstore-python verify offline; every tampered or mis-trusted variant fails."""
    root = tmp_path / "trusted_root.json"
    root.write_bytes(_mutated(str(case["trusted_root"]), case))
    identity = case["identity"]
    policy = KeylessPolicy.create("case", identity["oidc_issuer"], identity["san"], None, root)  # type: ignore[index]
    claims = case.get("expected_claims") or {}
    subjects = claims.get("subject") or []  # type: ignore[attr-defined]
    digest = f"sha256:{subjects[0]['digest']['sha256']}" if subjects else None
    bundle = _mutated(str(case["bundle"]), case)
    if case["expected"] == "valid":
        result = verify_keyless_bundle(bundle, policy, digest)
        assert result.identity == identity["san"]  # type: ignore[index]
        if "rekor" in claims:  # type: ignore[operator]
            assert result.log_index == str(claims["rekor"]["logIndex"])  # type: ignore[index]
    else:
        with pytest.raises(SignatureError):
            verify_keyless_bundle(bundle, policy, digest)


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
        assert verify_keyless_bundle(bundle, policy, SIGNED_DIGEST).identity == "cody@soyland.com"
    else:
        with pytest.raises(SignatureError, match="no certificate identity matches"):
            verify_keyless_bundle(bundle, policy, SIGNED_DIGEST)


def keyless_config(project: Project, registry: Registry, repository: str, identity: str = "cody@soyland.com") -> str:
    (project.directory / "trust").mkdir(exist_ok=True)
    (project.directory / "trust" / "root.json").write_bytes((ATTESTATION / "trusted_root_pgi.json").read_bytes())
    return (
        '[policies.upstream]\nmethod = "cosign-keyless"\nissuer = "https://github.com/login/oauth"\n'
        f'identity = "{identity}"\ntrusted-root = "trust/root.json"\n'
        f'[images.app]\nimage = "{registry.host}/{repository}"\nversion = ">=1"\nverify = "upstream"\n'
    )


@needs_interop
def test_a_valid_keyless_bundle_copied_onto_another_image_is_rejected(project: Project, registry: Registry) -> None:
    """The signature, certificate, identity and log entry are all genuine: only the subject betrays it."""
    repository = "keyless/copied"
    image = registry.seeder.push_image(repository, "1.0.0")
    attach_bundle(
        registry.seeder, repository, image.digest, (ATTESTATION / "oci-attestation.sigstore.json").read_bytes()
    )
    project.write(keyless_config(project, registry, repository))
    result = project.run("lock")
    assert result.exit_code == 1
    assert "[images.app]" in result.stderr
    assert f"signed statement's subject is not {image.digest}" in result.stderr
    assert not project.lock.exists()


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
