"""Provenance at lock time: signed SLSA statements from the right builder and source, on the real registry."""

from __future__ import annotations

import asyncio
import base64
import json
import re
import tomllib
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import pytest

from imagelock.trust import KeylessPolicy, SignatureError
from imagelock.trust.provenance import Opener, ProvenanceRequirement, read_claims
from imagelock.trust.statements import check_statement
from tests.conftest import Project, Registry
from tests.support.cosign import (
    SigningKey,
    attach_bundle,
    attest_image,
    dsse_envelope,
    key_bundle,
    push_cosign_tag,
    sign_image,
)
from tests.support.interop import interop_cases, interop_folder, needs_interop
from tests.support.layers import attestation_manifest
from tests.support.provenance import COMMIT, GITHUB_BUILDER, SOURCE, buildkit_v02, slsa_v02, slsa_v1

V1 = "https://slsa.dev/provenance/v1"
V02 = "https://slsa.dev/provenance/v0.2"
DSSE_LAYER = "application/vnd.dsse.envelope.v1+json"
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
SIGSTORE = interop_folder("sigstore")


@pytest.fixture(scope="module")
def key() -> SigningKey:
    return SigningKey.ecdsa()


@pytest.fixture
def repository(request: pytest.FixtureRequest) -> str:
    return "built/" + re.sub(r"[^a-z0-9]+", "-", request.node.name.lower())[:60].strip("-")


def config(
    project: Project, registry: Registry, repository: str, key: SigningKey, provenance: str, selector: str
) -> str:
    key.write_public(project.directory / "keys" / "release.pub")
    return (
        f'[policies.release]\nmethod = "cosign"\nkey = "keys/release.pub"\n\n'
        f"[policies.release.provenance]\n{provenance}\n"
        f'[defaults]\nverify = "release"\n\n[images.app]\nimage = "{registry.host}/{repository}"\n{selector}\n'
    )


GITHUB = f'builder-id = "{GITHUB_BUILDER}"\nsource-repository = "{SOURCE}"\nsource-ref = "refs/heads/main"\n'


def signed_image(registry: Registry, repository: str, tag: str, key: SigningKey) -> str:
    image = registry.seeder.push_image(repository, tag)
    sign_image(registry.seeder, registry.host, repository, image.digest, key)
    return image.digest


def locked(project: Project) -> dict[str, object]:
    entry: dict[str, object] = tomllib.loads(project.lock.read_text())["images"]["app"]
    return entry


def test_the_newest_tag_with_provenance_from_the_allowed_builder_is_locked_with_its_evidence(
    project: Project, registry: Registry, key: SigningKey, repository: str
) -> None:
    built = signed_image(registry, repository, "1.0.0", key)
    attestation = attest_image(registry.seeder, repository, built, key, slsa_v1(built), V1)
    elsewhere = signed_image(registry, repository, "1.1.0", key)
    attest_image(registry.seeder, repository, elsewhere, key, slsa_v1(elsewhere, builder="https://ci.evil.example"), V1)
    project.write(config(project, registry, repository, key, GITHUB, 'version = ">=1"'))

    result = project.run("lock")

    assert result.exit_code == 0, result.stderr
    entry = locked(project)
    assert (entry["tag"], entry["digest"]) == ("1.0.0", built)
    evidence = entry["verified"]
    assert isinstance(evidence, dict)
    assert {key: evidence[key] for key in ("provenance", "builder", "source", "revision", "attestation")} == {
        "provenance": V1,
        "builder": GITHUB_BUILDER,
        "source": SOURCE,
        "revision": COMMIT,
        "attestation": attestation,
    }
    assert "skipping tag 1.1.0: provenance: builder https://ci.evil.example not allowed" in result.stderr
    assert "(1 newer skipped: no valid provenance)" in result.stdout

    why = project.run("why", "app")
    verdicts = dict(line.split(None, 1) for line in why.stdout.splitlines()[1:])
    assert verdicts["1.1.0"] == "provenance: builder https://ci.evil.example not allowed"
    assert verdicts["1.0.0"] == "chosen, locked"
    assert project.run("verify").exit_code == 0


def _forged_subject(registry: Registry, repository: str, digest: str, key: SigningKey) -> None:
    """A statement signed about another image, its subject then rewritten to this one."""
    envelope = dsse_envelope(key, slsa_v1("sha256:" + "1" * 64))
    envelope["payload"] = base64.b64encode(slsa_v1(digest)).decode()
    blob = json.dumps(envelope).encode()
    push_cosign_tag(registry.seeder, repository, digest, "att", DSSE_LAYER, blob, {"predicateType": V1})


Attack = Callable[[Registry, str, str, SigningKey], object]
ATTACKS: dict[str, tuple[Attack, str]] = {
    "another digest": (
        lambda r, repo, digest, key: attest_image(r.seeder, repo, digest, key, slsa_v1("sha256:" + "2" * 64)),
        "subject is not sha256:",
    ),
    "another builder": (
        lambda r, repo, digest, key: attest_image(
            r.seeder, repo, digest, key, slsa_v1(digest, builder="https://x.example/b")
        ),
        "provenance: builder https://x.example/b not allowed",
    ),
    "another source repository": (
        lambda r, repo, digest, key: attest_image(
            r.seeder, repo, digest, key, slsa_v1(digest, repository="https://github.com/evil/app")
        ),
        f"provenance: source repository https://github.com/evil/app is not {SOURCE}",
    ),
    "another source ref": (
        lambda r, repo, digest, key: attest_image(r.seeder, repo, digest, key, slsa_v1(digest, ref="refs/heads/dev")),
        "provenance: source ref refs/heads/dev is not refs/heads/main",
    ),
    "a forged subject": (_forged_subject, "DSSE signature does not verify with the policy's key(s)"),
    "an unsigned statement": (
        lambda r, repo, digest, key: attest_image(r.seeder, repo, digest, None, slsa_v1(digest)),
        "DSSE signature does not verify with the policy's key(s)",
    ),
    "another key": (
        lambda r, repo, digest, key: attest_image(r.seeder, repo, digest, SigningKey.ecdsa(), slsa_v1(digest)),
        "DSSE signature does not verify with the policy's key(s)",
    ),
    "no provenance at all": (lambda r, repo, digest, key: None, f"provenance: no signed {V1} attestation for sha256:"),
    "provenance of another predicate type": (
        lambda r, repo, digest, key: attest_image(r.seeder, repo, digest, key, slsa_v02(digest)),
        f"provenance: no signed {V1} attestation for sha256:",
    ),
}


@pytest.mark.parametrize("attack", sorted(ATTACKS))
def test_a_signed_image_without_matching_verified_provenance_is_refused(
    project: Project, registry: Registry, key: SigningKey, attack: str
) -> None:
    repository = "built/refused-" + attack.replace(" ", "-")
    digest = signed_image(registry, repository, "1.0.0", key)
    plant, message = ATTACKS[attack]
    plant(registry, repository, digest, key)
    project.write(config(project, registry, repository, key, GITHUB, 'tag = "1.0.0"'))

    result = project.run("lock")

    assert result.exit_code == 1
    assert result.stderr.count("\n") == 1
    assert "[images.app]: tag 1.0.0: provenance: " in result.stderr
    assert message in result.stderr
    assert not project.lock.exists()


def test_v02_provenance_is_read_from_the_invocation_config_source_and_a_short_ref_names_the_branch(
    project: Project, registry: Registry, key: SigningKey, repository: str
) -> None:
    digest = signed_image(registry, repository, "1.0.0", key)
    attest_image(registry.seeder, repository, digest, key, slsa_v02(digest, ref="main"), V02)
    project.write(config(project, registry, repository, key, f'predicate-type = "{V02}"\n' + GITHUB, 'tag = "1.0.0"'))

    result = project.run("lock")

    assert result.exit_code == 0, result.stderr
    evidence = locked(project)["verified"]
    assert isinstance(evidence, dict)
    assert (evidence["provenance"], evidence["source"], evidence["revision"]) == (V02, SOURCE, COMMIT)


def test_buildkit_provenance_names_its_git_context_and_a_builder_regexp_allows_any_run(
    project: Project, registry: Registry, key: SigningKey, repository: str
) -> None:
    digest = signed_image(registry, repository, "1.0.0", key)
    attest_image(registry.seeder, repository, digest, key, buildkit_v02(digest), V02)
    allowed = r'builder-id-regexp = "https://github\\.com/acme/app/actions/runs/[0-9]+"'
    requirement = (
        f'predicate-type = "{V02}"\n{allowed}\nsource-repository = "{SOURCE}"\nsource-ref = "refs/heads/main"\n'
    )
    project.write(config(project, registry, repository, key, requirement, 'tag = "1.0.0"'))

    result = project.run("lock")

    assert result.exit_code == 0, result.stderr
    evidence = locked(project)["verified"]
    assert isinstance(evidence, dict)
    assert (evidence["builder"], evidence["source"]) == ("https://github.com/acme/app/actions/runs/1", f"{SOURCE}.git")


def test_a_v3_attestation_bundle_found_through_referrers_is_verified_with_the_policy_key(
    project: Project, registry: Registry, key: SigningKey, repository: str
) -> None:
    digest = signed_image(registry, repository, "1.0.0", key)
    attach_bundle(registry.seeder, repository, digest, key_bundle(SigningKey.ecdsa(), slsa_v1(digest)))
    referrer = attach_bundle(registry.seeder, repository, digest, key_bundle(key, slsa_v1(digest)))
    project.write(config(project, registry, repository, key, GITHUB, 'tag = "1.0.0"'))

    result = project.run("lock")

    assert result.exit_code == 0, result.stderr
    evidence = locked(project)["verified"]
    assert isinstance(evidence, dict)
    assert evidence["attestation"] == referrer


def test_verify_checks_provenance_again(project: Project, registry: Registry, key: SigningKey, repository: str) -> None:
    digest = signed_image(registry, repository, "1.0.0", key)
    attest_image(registry.seeder, repository, digest, key, slsa_v1(digest), V1)
    project.write(config(project, registry, repository, key, GITHUB, 'tag = "1.0.0"'))
    assert project.run("lock").exit_code == 0
    attest_image(registry.seeder, repository, digest, key, slsa_v1(digest, builder="https://x.example/b"), V1)

    result = project.run("verify")

    assert result.exit_code == 1
    assert "provenance: builder https://x.example/b not allowed" in result.stdout + result.stderr


@pytest.mark.parametrize(
    ("table", "message"),
    [
        (f'source-repository = "{SOURCE}"', "needs exactly one of 'builder-id' and 'builder-id-regexp'"),
        (f'builder-id = "{GITHUB_BUILDER}"', "missing key 'source-repository'"),
        (GITHUB + 'predicate-type = "https://slsa.dev/provenance/v9"', "key 'predicate-type': expected one of"),
        (GITHUB + 'builder = "x"', "unknown key 'builder'"),
        (f'builder-id-regexp = "("\nsource-repository = "{SOURCE}"', "key 'builder-id-regexp': invalid regex"),
    ],
    ids=["no builder", "no source repository", "unknown predicate type", "unknown key", "invalid regexp"],
)
def test_provenance_policy_errors_are_exit_2_naming_the_table(
    project: Project, registry: Registry, key: SigningKey, table: str, message: str
) -> None:
    project.write(config(project, registry, "built/errors", key, table, 'tag = "1.0.0"'))

    result = project.run("lock")

    assert result.exit_code == 2
    assert "[policies.release.provenance]" in result.stderr
    assert message in result.stderr


@needs_interop
def test_a_real_keyless_slsa_statement_opens_under_its_github_identity_and_is_judged_by_its_claims(
    tmp_path: Path,
) -> None:
    """sigstore-python's bundle, signed by a GitHub Actions workflow identity, of a SLSA v1 statement about a file."""
    case = next(case for case in interop_cases(SIGSTORE) if case["id"] == "rekor-v2-dsse-valid")
    identity: dict[str, str] = case["identity"]  # type: ignore[assignment]
    root = tmp_path / "trusted_root.json"
    root.write_bytes((SIGSTORE / str(case["trusted_root"])).read_bytes())
    builder = "https://github.com/sigstore-conformance/rekor2-dsse-hashedrekord-regen"
    requirement = ProvenanceRequirement(source_repository=SOURCE, builder_id=builder)
    policy = replace(
        KeylessPolicy.create("release", identity["oidc_issuer"], identity["san"], None, root), provenance=requirement
    )
    bundle = (SIGSTORE / str(case["bundle"])).read_bytes()

    payload_type, body = asyncio.run(Opener(policy, bundle, bundled=True).open())

    check_statement(payload_type, body, "sha256:a0cfc71271d6e278e57cd332ff957c3f7043fdda354c4cbb190a30d56efa01bf")
    with pytest.raises(SignatureError, match="subject is not"):
        check_statement(payload_type, body, "sha256:" + "2" * 64)
    claims = read_claims(json.loads(body))
    assert (claims.predicate_type, claims.builder_id) == (V1, builder)
    assert requirement.refusal(claims) == f"source repository (none) is not {SOURCE}"
    other_identity = replace(
        policy, identity="https://github.com/acme/app/.github/workflows/release.yml@refs/heads/main"
    )
    with pytest.raises(SignatureError, match="keyless signature rejected"):
        asyncio.run(Opener(other_identity, bundle, bundled=True).open())


def test_buildkits_unsigned_in_index_provenance_is_never_enough_and_why_shows_what_it_claims(
    project: Project, registry: Registry, key: SigningKey, repository: str
) -> None:
    image = registry.seeder.push_image(repository, "build", ("linux/amd64",), attestations=False)
    (platform_digest,) = image.platforms.values()
    platform_manifest = registry.seeder.client.get(
        f"/v2/{repository}/manifests/{platform_digest}", headers={"Accept": OCI_MANIFEST}
    ).content
    children = [
        {"mediaType": OCI_MANIFEST, "digest": platform_digest, "size": len(platform_manifest),
         "platform": {"architecture": "amd64", "os": "linux"}},
        attestation_manifest(registry.seeder, repository, platform_digest, buildkit_v02(platform_digest), V02),
    ]  # fmt: skip
    index = json.dumps({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": children}).encode()
    digest = registry.seeder.push_manifest(repository, "1.0.0", index, OCI_INDEX)
    sign_image(registry.seeder, registry.host, repository, digest, key)
    project.write(config(project, registry, repository, key, GITHUB, 'tag = "1.0.0"'))

    result = project.run("lock")

    assert result.exit_code == 1
    claims = (
        "unsigned in-index provenance (not trusted) claims builder https://github.com/acme/app/actions/runs/1,"
        f" source {SOURCE}.git@refs/heads/main"
    )
    verdict = f"provenance: no signed {V1} attestation for {digest}; {claims}"
    assert verdict in result.stderr
    assert not project.lock.exists()
    why = project.run("why", "app")
    assert dict(line.split(None, 1) for line in why.stdout.splitlines()[1:]) == {"1.0.0": verdict}


GITHUB_BUNDLE = Path(__file__).parent / "fixtures" / "attestations" / "github-provenance-demo.sigstore.json"


def test_a_real_github_attestations_predicate_is_read_and_locked_when_signed_about_the_image(
    project: Project, registry: Registry, key: SigningKey, repository: str
) -> None:
    """GitHub's own statement (actions/attest-demo), its subject set to the test image, signed with the test key."""
    real = json.loads(base64.b64decode(json.loads(GITHUB_BUNDLE.read_bytes())["dsseEnvelope"]["payload"]))
    digest = signed_image(registry, repository, "1.0.0", key)
    statement = json.dumps({**real, "subject": [{"name": repository, "digest": {"sha256": digest[7:]}}]}).encode()
    attest_image(registry.seeder, repository, digest, key, statement, V1)
    attach_bundle(registry.seeder, repository, digest, GITHUB_BUNDLE.read_bytes())  # the original: not by our key
    requirement = (
        f'builder-id = "{GITHUB_BUILDER}"\nsource-repository = "https://github.com/actions/attest-demo"\n'
        'source-ref = "refs/heads/main"\n'
    )
    project.write(config(project, registry, repository, key, requirement, 'tag = "1.0.0"'))

    result = project.run("lock")

    assert result.exit_code == 0, result.stderr
    evidence = locked(project)["verified"]
    assert isinstance(evidence, dict)
    assert (evidence["builder"], evidence["source"], evidence["revision"]) == (
        GITHUB_BUILDER,
        "https://github.com/actions/attest-demo",
        "a6c23b9806c593664f68637c8f9d45dfcf98b2db",
    )


def test_a_real_github_attestation_bundle_not_signed_by_the_policy_key_is_refused(
    project: Project, registry: Registry, key: SigningKey, repository: str
) -> None:
    digest = signed_image(registry, repository, "1.0.0", key)
    attach_bundle(registry.seeder, repository, digest, GITHUB_BUNDLE.read_bytes())
    project.write(config(project, registry, repository, key, GITHUB, 'tag = "1.0.0"'))

    result = project.run("lock")

    assert result.exit_code == 1
    assert "provenance: attestation sha256:" in result.stderr
    assert "DSSE signature does not verify with the policy's key(s)" in result.stderr


def test_a_changed_provenance_requirement_makes_the_lock_stale(
    project: Project, registry: Registry, key: SigningKey, repository: str
) -> None:
    digest = signed_image(registry, repository, "1.0.0", key)
    attest_image(registry.seeder, repository, digest, key, slsa_v1(digest), V1)
    project.write(config(project, registry, repository, key, GITHUB, 'tag = "1.0.0"'))
    assert project.run("lock").exit_code == 0
    assert project.run("check").exit_code == 0

    project.write(config(project, registry, repository, key, GITHUB.replace("main", "release"), 'tag = "1.0.0"'))

    assert project.run("check").exit_code != 0
    result = project.run("lock")
    assert result.exit_code == 1
    assert "provenance: source ref refs/heads/main is not refs/heads/release" in result.stderr


def test_provenance_about_a_platform_manifest_does_not_vouch_for_the_index(
    project: Project, registry: Registry, key: SigningKey, repository: str
) -> None:
    image = registry.seeder.push_image(repository, "1.0.0")
    sign_image(registry.seeder, registry.host, repository, image.digest, key)
    amd64 = image.platforms["linux/amd64"]
    attest_image(registry.seeder, repository, image.digest, key, slsa_v1(amd64), V1)
    project.write(config(project, registry, repository, key, GITHUB, 'tag = "1.0.0"'))

    result = project.run("lock")

    assert result.exit_code == 1
    assert f"signed statement's subject is not {image.digest}" in result.stderr
