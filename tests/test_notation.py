"""Notation signatures: a PKI made in the test suite, envelopes pushed to the real registry, the upstream vectors."""

from __future__ import annotations

import base64
import datetime
import hashlib
import json
import re
import tomllib
import uuid

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from imagelock.trust import SignatureError
from imagelock.trust.notation import NotationPolicy, Target, verify_envelope
from tests.conftest import Project, Registry
from tests.support.interop import Case, interop_cases, interop_folder, mutated, needs_interop
from tests.support.notation import NOW, Pki, attach_signature, envelope, issue, target_of


@pytest.fixture(scope="module")
def pki() -> Pki:
    return Pki()


@pytest.fixture
def repository() -> str:
    return f"notation/app-{uuid.uuid4().hex[:8]}"


RELEASE = '["x509.subject: C=US, ST=WA, O=Acme, CN=release"]'


def config(project: Project, pki: Pki, registry: Registry, repository: str, *, selector: str = 'tag = "1.0.0"') -> str:
    pki.write_root(project.directory / "certs" / "root.pem")
    return (
        f'[policies.corp]\nmethod = "notation"\ntrust-store = ["certs/root.pem"]\nidentities = {RELEASE}\n\n'
        f'[defaults]\nverify = "corp"\n\n[images.app]\nimage = "{registry.host}/{repository}"\n{selector}\n'
    )


def sign(registry: Registry, repository: str, digest: str, pki: Pki, **options: object) -> str:
    target = target_of(registry.seeder, repository, digest)
    body = envelope(target, pki.leaf, [pki.intermediate], **options)  # type: ignore[arg-type]
    return attach_signature(registry.seeder, repository, digest, body)


def locked(project: Project) -> dict[str, object]:
    entry: dict[str, object] = tomllib.loads(project.lock.read_text())["images"]["app"]
    return entry


def test_a_signed_image_locks_with_its_signer_in_the_lock(
    project: Project, registry: Registry, pki: Pki, repository: str
) -> None:
    image = registry.seeder.push_image(repository, "1.0.0")
    signature = sign(registry, repository, image.digest, pki)
    project.write(config(project, pki, registry, repository))
    result = project.run("lock")
    assert result.exit_code == 0, result.stderr
    leaf = pki.leaf.certificate
    assert locked(project)["verified"] == {
        "method": "notation",
        "subject": leaf.subject.rfc4514_string(),
        "certificate": "sha256:" + hashlib.sha256(pki.leaf.der()).hexdigest(),
        "signature": signature,
    }
    assert project.run("verify").exit_code == 0


def test_a_version_selector_skips_an_unsigned_newer_tag_and_why_says_so(
    project: Project, registry: Registry, pki: Pki, repository: str
) -> None:
    signed = registry.seeder.push_image(repository, "1.0.0")
    sign(registry, repository, signed.digest, pki)
    registry.seeder.push_image(repository, "1.1.0")
    project.write(config(project, pki, registry, repository, selector='version = ">=1"'))
    result = project.run("lock")
    assert result.exit_code == 0, result.stderr
    assert locked(project)["tag"] == "1.0.0"
    assert "skipping tag 1.1.0: no notation signature" in result.stderr
    why = project.run("why", "app")
    assert re.search(r"1\.1\.0\s+signature: .*no notation signature", why.stdout)


ATTACKS = {
    "signature over another digest": ("targetArtifact", "signed target is"),
    "another size": ("size", "bytes, the image"),
    "untrusted root": ("untrusted", "does not end in the trust store"),
    "wrong identity": ("identity", "is not a trusted identity"),
    "leaf not for code signing": ("eku", "no codeSigning extended key usage"),
    "leaf without digitalSignature": ("ku", "no digitalSignature key usage"),
    "expired certificate": ("expired", "is not valid now"),
    "signature expired": ("expiry", "the signature expired"),
    "unknown critical header": ("crit", "unknown field critical"),
    "alg not matching the key": ("alg", "needs a secp384r1 key"),
    "payload swapped after signing": ("swap", "signature does not verify"),
    "malformed base64": ("base64", "is not base64url"),
    "malformed JSON": ("json", "envelope is not JSON"),
}


@pytest.mark.parametrize("attack", ATTACKS, ids=list(ATTACKS))
def test_attacks_are_rejected_naming_image_tag_and_reason(
    project: Project, registry: Registry, pki: Pki, repository: str, attack: str
) -> None:
    image = registry.seeder.push_image(repository, "1.0.0")
    other = registry.seeder.push_image(repository, "2.0.0")
    target = target_of(registry.seeder, repository, image.digest)
    kind, message = ATTACKS[attack]
    chain = [pki.intermediate]
    leaf = pki.leaf
    options: dict[str, object] = {}
    if kind == "targetArtifact":
        target = target_of(registry.seeder, repository, other.digest)
    elif kind == "size":
        target = {**target, "size": target["size"] + 1}
    elif kind == "untrusted":
        stranger = Pki()
        leaf, chain = stranger.leaf, [stranger.intermediate]
    elif kind == "identity":
        leaf = issue("intruder", pki.intermediate)
    elif kind == "eku":
        leaf = issue("release", pki.intermediate, code_signing=False)
    elif kind == "ku":
        leaf = issue("release", pki.intermediate, digital_signature=False)
    elif kind == "expired":
        leaf = issue(
            "release",
            pki.intermediate,
            not_before=NOW - datetime.timedelta(days=30),
            not_after=NOW - datetime.timedelta(days=1),
        )
    elif kind == "expiry":
        options["header"] = {"io.cncf.notary.expiry": "2020-01-01T00:00:00Z"}
    elif kind == "crit":
        critical = ["io.cncf.notary.signingScheme", "com.example.mustUnderstand"]
        options["header"] = {"crit": critical, "com.example.mustUnderstand": True}
    elif kind == "alg":
        options["alg"] = "ES384"
    body = envelope(target, leaf, chain, **options)  # type: ignore[arg-type]
    if kind == "swap":
        document = json.loads(body)
        forged = {"targetArtifact": {**target, "digest": other.digest}}
        document["payload"] = base64.urlsafe_b64encode(json.dumps(forged).encode()).rstrip(b"=").decode()
        body = json.dumps(document).encode()
    elif kind == "base64":
        document = json.loads(body)
        document["protected"] = "!!" + document["protected"]
        body = json.dumps(document).encode()
    elif kind == "json":
        body = b"{not json"
    attach_signature(registry.seeder, repository, image.digest, body)
    project.write(config(project, pki, registry, repository))
    result = project.run("lock")
    assert result.exit_code == 1, result.stderr
    assert "[images.app]: tag 1.0.0:" in result.stderr
    assert message in result.stderr
    assert not project.lock.exists()


@pytest.mark.parametrize(
    "critical",
    [["io.cncf.notary.signingScheme", {"io.cncf.notary.expiry": True}], {"io.cncf.notary.signingScheme": True}],
    ids=["crit-lists-an-object", "crit-is-an-object"],
)
def test_an_envelope_whose_crit_holds_an_object_is_one_line_exit_1_and_the_lock_unchanged(
    project: Project, registry: Registry, pki: Pki, repository: str, critical: object
) -> None:
    image = registry.seeder.push_image(repository, "1.0.0")
    sign(registry, repository, image.digest, pki)
    project.write(config(project, pki, registry, repository))
    assert project.run("lock").exit_code == 0
    before = project.lock.read_bytes()
    hostile = registry.seeder.push_image(repository, "1.1.0")
    sign(registry, repository, hostile.digest, pki, header={"crit": critical})
    project.write(config(project, pki, registry, repository, selector='tag = "1.1.0"'))
    result = project.run("lock")
    assert result.exit_code == 1
    (line,) = result.stderr.strip().splitlines()
    assert line.startswith("error: [images.app]: tag 1.1.0: ")
    assert "crit" in line
    assert project.lock.read_bytes() == before


def test_unsigned_image_and_cose_only_signature_fail_closed(
    project: Project, registry: Registry, pki: Pki, repository: str
) -> None:
    image = registry.seeder.push_image(repository, "1.0.0")
    project.write(config(project, pki, registry, repository))
    result = project.run("lock")
    assert result.exit_code == 1
    assert "no notation signature" in result.stderr
    attach_signature(registry.seeder, repository, image.digest, b"\xd2\x84", media_type="application/cose")
    result = project.run("lock")
    assert result.exit_code == 1
    assert "COSE envelopes are not supported" in result.stderr


def test_rsa_pss_and_any_identity(project: Project, registry: Registry, repository: str) -> None:
    root = issue("RSA Root", ca=True, key=rsa.generate_private_key(public_exponent=65537, key_size=2048))
    leaf = issue("anyone", root, key=rsa.generate_private_key(public_exponent=65537, key_size=3072))
    image = registry.seeder.push_image(repository, "1.0.0")
    target = target_of(registry.seeder, repository, image.digest)
    attach_signature(registry.seeder, repository, image.digest, envelope(target, leaf, [], alg="PS384"))
    (project.directory / "certs").mkdir()
    (project.directory / "certs" / "root.pem").write_bytes(root.pem())
    project.write(
        '[policies.corp]\nmethod = "notation"\ntrust-store = ["certs/root.pem"]\nidentities = ["*"]\n\n'
        f'[images.app]\nimage = "{registry.host}/{repository}"\ntag = "1.0.0"\nverify = "corp"\n'
    )
    result = project.run("lock")
    assert result.exit_code == 0, result.stderr
    assert "CN=anyone" in str(locked(project)["verified"])


@pytest.mark.parametrize(
    ("policy", "message"),
    [
        ('method = "notation"\nidentities = ["*"]\n', "missing key 'trust-store'"),
        ('method = "notation"\ntrust-store = ["certs/none.pem"]\nidentities = ["*"]\n', "cannot read"),
        ('method = "notation"\ntrust-store = ["certs/junk.pem"]\nidentities = ["*"]\n', "no PEM or DER certificate"),
        ('method = "notation"\ntrust-store = ["certs/root.pem"]\nidentities = ["CN=x"]\n', "expected '*' or"),
        ('method = "notation"\ntrust-store = ["certs/root.pem"]\nidentities = ["x509.subject: XX"]\n', "not a distin"),
        ('method = "notation"\ntrust-store = ["certs/root.pem"]\nidentities = []\n', "the list is empty"),
    ],
)
def test_notation_policy_errors_are_exit_2(project: Project, pki: Pki, policy: str, message: str) -> None:
    pki.write_root(project.directory / "certs" / "root.pem")
    (project.directory / "certs" / "junk.pem").write_text("junk")
    project.write(f'[policies.corp]\n{policy}\n[images.app]\nimage = "127.0.0.1:9/app"\ntag = "1"\nverify = "corp"\n')
    result = project.run("lock")
    assert result.exit_code == 2
    assert str(project.config) in result.stderr
    assert "[policies.corp]" in result.stderr
    assert message in result.stderr


# -- the upstream vectors (made by notation-go) ---------------------------------------------------

INTEROP = interop_folder("notation")
CASES = interop_cases(INTEROP)


def _applies(case: Case) -> str | None:
    if case["timestamp_policy"] == "required":
        return "needs RFC 3161 timestamps, which imagelock does not read (it judges certificates at verification time)"
    return None


@needs_interop
@pytest.mark.parametrize("case", CASES, ids=[str(case["id"]) for case in CASES])
def test_interop_notation_vectors(case: Case) -> None:
    """JWS envelopes the real notation made verify, and every tampered or mis-trusted variant fails;
    COSE envelopes are refused (imagelock reads JWS only), whatever their validity."""
    reason = _applies(case)
    if reason is not None:
        pytest.skip(reason)
    body = mutated(INTEROP, str(case["envelope"]), case)
    anchors: dict[str, object] = case["trust_anchors"]  # type: ignore[assignment]
    if "files" in anchors:
        store = [
            certificate
            for path in anchors["files"]  # type: ignore[attr-defined]
            for certificate in x509.load_pem_x509_certificates((INTEROP / path).read_bytes())
        ]
    else:
        store = []
        if case["envelope_media_type"] == "application/jose+json":  # the anchor is the envelope's own certificate
            chain = json.loads((INTEROP / str(case["envelope"])).read_bytes())["header"]["x5c"]
            anchor = x509.load_der_x509_certificate(base64.b64decode(chain[-1]))
            assert hashlib.sha256(base64.b64decode(chain[-1])).hexdigest() == anchors["sha256_fingerprint"]
            store = [anchor]
    policy = NotationPolicy("interop", tuple(store), ("*",))
    expected: dict[str, object] = case["expected_target_artifact"]  # type: ignore[assignment]
    size = expected["size"]
    assert isinstance(size, int)
    target = Target(str(expected["mediaType"]), str(expected["digest"]), size)
    when = str(case.get("verification_time", "now"))
    now = datetime.datetime.now(datetime.UTC) if when == "now" else datetime.datetime.fromisoformat(when)

    def verify() -> None:
        verify_envelope(body, str(case["envelope_media_type"]), policy, target, now)

    if case["envelope_media_type"] == "application/cose":
        with pytest.raises(SignatureError, match="COSE envelopes are not supported"):
            verify()
    elif case["expected"] == "valid":
        verify()
    else:
        with pytest.raises(SignatureError):
            verify()


MALFORMED_PARTS = {  # one DER element of the leaf, and what a forger puts in its place
    "key on an unknown curve": (bytes.fromhex("06082a8648ce3d030107"), bytes.fromhex("06082e8648ce3d030107")),
    "subject name of a wrong type": (b"\x0c\x07release", b"\x0d\x07release"),
    "key usage not a bit string": (bytes.fromhex("040403020780"), bytes.fromhex("040402020780")),
    "two basic-constraints extensions": (
        bytes.fromhex("0603551d0f"),
        bytes.fromhex("0603551d13"),
    ),  # found by hypothesis
}


@pytest.mark.parametrize("part", MALFORMED_PARTS)
def test_a_leaf_certificate_with_a_malformed_part_is_an_unreadable_chain(pki: Pki, part: str) -> None:
    """cryptography parses a certificate's key, names and extensions only when first used."""
    before, after = MALFORMED_PARTS[part]
    assert pki.leaf.der().count(before) == 1
    leaf = base64.b64encode(pki.leaf.der().replace(before, after)).decode()
    target = {"mediaType": "application/vnd.oci.image.index.v1+json", "digest": "sha256:" + "a" * 64, "size": 10}
    document = json.loads(envelope(target, pki.leaf, [pki.intermediate]))
    document["header"]["x5c"][0] = leaf
    policy = NotationPolicy("p", (pki.root.certificate,), ("*",))
    image = Target("application/vnd.oci.image.index.v1+json", "sha256:" + "a" * 64, 10)
    with pytest.raises(SignatureError, match=r"certificate chain \(x5c\) cannot be read"):
        verify_envelope(json.dumps(document).encode(), "application/jose+json", policy, image, NOW)


def test_an_ecdsa_p384_leaf_signs_with_es384() -> None:
    root = issue("Root", ca=True)
    leaf = issue("release", root, key=ec.generate_private_key(ec.SECP384R1()))
    target = {"mediaType": "application/vnd.oci.image.index.v1+json", "digest": "sha256:" + "a" * 64, "size": 10}
    body = envelope(target, leaf, [], alg="ES384")
    policy = NotationPolicy("p", (root.certificate,), ("x509.subject: O=Acme, CN=release",))
    image = Target("application/vnd.oci.image.index.v1+json", "sha256:" + "a" * 64, 10)
    result = verify_envelope(body, "application/jose+json", policy, image, NOW)
    assert result.subject.startswith("CN=release")
