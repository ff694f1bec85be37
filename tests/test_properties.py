"""Hostile input to every parser of data nothing has verified yet: only the project's own errors come out.

Real documents are the seeds: the upstream vectors in ../shared/interop (when beside the checkout), and
what the real registry serves for images, signatures and referrers lists that tests/support pushes. Each
is mutated: a byte flipped, the document cut short, or a value of the wrong type (or none) put at any key
path, also inside the base64 JSON and the certificates a signature carries, and re-signed where the
signature would otherwise stop the parser before it reads that far. A parser of registry data may then
raise RegistryError (exit 3), a signature check SignatureError (exit 1); any other exception would be a
traceback.
"""

from __future__ import annotations

import base64
import contextlib
import datetime
import hashlib
import json
from dataclasses import dataclass

import httpx
import pytest
from cryptography import x509
from hypothesis import given, settings
from hypothesis import strategies as st

from imagelock.errors import RegistryError
from imagelock.platforms import parse_platform
from imagelock.registry.client import _registry_errors, next_page_url, tags_on_page
from imagelock.registry.manifests import ACCEPT, OCI_INDEX, config_platform, parse_manifest, platform_of
from imagelock.registry.transport import Response
from imagelock.trust import SignatureError
from imagelock.trust.cosign import verify_simple_signing
from imagelock.trust.keys import PublicKey, load_public_key, parse_public_key
from imagelock.trust.notation import JWS, NotationPolicy, Target, verify_envelope
from imagelock.trust.rekor import verify_signed_entry
from tests.conftest import Registry
from tests.support.cosign import (
    REKOR_BUNDLE,
    SIGNATURE_ANNOTATION,
    SigningKey,
    payload,
    rekor_bundle,
    rekor_set,
    sign_image,
)
from tests.support.interop import interop_folder
from tests.support.mutations import flipped_or_truncated, mutated_json, to_json, wrong_types
from tests.support.notation import Pki, attach_signature, envelope, jws, target_of

HOSTILE = settings(max_examples=75, deadline=None)  # the whole file in under ~20 s
REPOSITORY = "hostile/app"


# -- what registries serve: manifests, indexes, referrers lists, image configs, tag lists ---------


@dataclass(frozen=True)
class Served:
    body: bytes
    content_type: str | None


@dataclass(frozen=True)
class RegistrySeeds:
    manifests: list[Served]
    image_configs: list[bytes]
    tag_page: Response  # a page of a tag list, with a Link to the next


@pytest.fixture(scope="module")
def served(empty_registry: Registry) -> RegistrySeeds:
    """Images (OCI and Docker, index and single), a Notation signature, a cosign .sig and a referrers
    list, as the real registry serves them; plus the upstream vectors' manifests."""
    seeder = empty_registry.seeder
    oci = seeder.push_image(REPOSITORY, "1.0.0")
    docker = seeder.push_image(REPOSITORY, "2.0.0", oci=False)
    single = seeder.push_image(REPOSITORY, "3.0.0", platforms=("linux/arm/v7",), index=False)
    pki = Pki()
    target = target_of(seeder, REPOSITORY, oci.digest)
    notation = attach_signature(seeder, REPOSITORY, oci.digest, envelope(target, pki.leaf, [pki.intermediate]))
    key = SigningKey.ecdsa()
    cosign = sign_image(seeder, empty_registry.host, REPOSITORY, oci.digest, key, rekor=SigningKey.ecdsa())
    referrers = oci.digest.replace(":", "-")
    references = [oci.digest, docker.digest, single.digest, *oci.platforms.values(), notation, cosign, referrers]
    manifests = []
    for reference in references:
        response = seeder.client.get(f"/v2/{REPOSITORY}/manifests/{reference}", headers={"Accept": ACCEPT})
        manifests.append(Served(response.content, response.headers["content-type"]))
    config = json.loads(manifests[2].body)["config"]["digest"]  # the single-platform image's
    configs = [seeder.client.get(f"/v2/{REPOSITORY}/blobs/{config}").content]
    page = seeder.client.get(f"/v2/{REPOSITORY}/tags/list")
    link = f'</v2/{REPOSITORY}/tags/list?n=1&last=1.0.0>; rel="next"'  # distribution 3 pages; Debian's 2.8 does not
    tag_page = Response(200, httpx.Headers({"link": link}), page.content, page.url)
    upstream_manifests, upstream_configs = _upstream_documents()
    return RegistrySeeds(manifests + upstream_manifests, configs + upstream_configs, tag_page)


def _upstream_documents() -> tuple[list[Served], list[bytes]]:
    """The manifest skopeo pushed with cosign's vectors, and notation-go's OCI layout: index, manifest, config."""
    layout = interop_folder("notation") / "oci-layout"
    if not layout.exists():
        return [], []
    blobs = layout / "blobs" / "sha256"
    manifest = (blobs / "19dbd2e48e921426ee8ace4dc892edfb2ecdc1d1a72d5416c83670c30acecef0").read_bytes()
    config = (blobs / json.loads(manifest)["config"]["digest"].removeprefix("sha256:")).read_bytes()
    skopeo = (interop_folder("cosign") / "dir-img-cosign-valid" / "manifest.json").read_bytes()
    documents = (skopeo, manifest, (layout / "index.json").read_bytes())
    return [Served(document, json.loads(document).get("mediaType", OCI_INDEX)) for document in documents], [config]


@HOSTILE
@given(data=st.data())
def test_mutated_manifests_indexes_and_referrers_lists_raise_only_registry_errors(
    served: RegistrySeeds, data: st.DataObject
) -> None:
    seed = data.draw(st.sampled_from(served.manifests))
    body = data.draw(mutated_json(seed.body))
    with contextlib.suppress(RegistryError):
        manifest = parse_manifest(
            body, content_type=seed.content_type, claimed_digest=None, expected_digest=None, what="hostile"
        )
        for platform in manifest.platforms():  # the lock records them: each must read back as itself
            assert str(parse_platform(platform)) == platform


@HOSTILE
@given(data=st.data())
def test_mutated_image_configs_raise_only_registry_errors(served: RegistrySeeds, data: st.DataObject) -> None:
    body = data.draw(mutated_json(data.draw(st.sampled_from(served.image_configs))))
    with contextlib.suppress(RegistryError):
        config_platform(body, "hostile")


PLATFORM_PART = st.sampled_from(["linux", "LINUX", "amd64", "arm", "aarch64", "v7", "v8"]) | st.text(max_size=8)


@HOSTILE
@given(st.fixed_dictionaries({"os": PLATFORM_PART, "architecture": PLATFORM_PART}, optional={"variant": PLATFORM_PART}))
def test_a_platform_a_registry_names_is_one_the_lock_reads_back(fields: dict[str, str]) -> None:
    with contextlib.suppress(RegistryError):
        platform = str(platform_of(fields, "hostile"))
        assert str(parse_platform(platform)) == platform


@HOSTILE
@given(data=st.data())
def test_mutated_tag_list_pages_raise_only_registry_errors(served: RegistrySeeds, data: st.DataObject) -> None:
    body = data.draw(mutated_json(served.tag_page.body))
    with contextlib.suppress(RegistryError):
        tags_on_page(body, "hostile")


@HOSTILE
@given(data=st.data())
def test_mutated_tag_list_links_raise_only_registry_errors(served: RegistrySeeds, data: st.DataObject) -> None:
    page = served.tag_page
    link = data.draw(flipped_or_truncated(page.headers["link"].encode()))
    with contextlib.suppress(RegistryError):
        next_page_url(Response(page.status, httpx.Headers({b"link": link}), b"", page.url), "hostile")


@HOSTILE
@given(data=st.data())
def test_mutated_registry_error_bodies_raise_nothing(data: st.DataObject) -> None:
    seed = b'{"errors":[{"code":"MANIFEST_UNKNOWN","message":"manifest unknown","detail":{"Tag":"9"}}]}'
    _registry_errors(data.draw(mutated_json(seed)))


# -- Notation JWS envelopes ----------------------------------------------------------------------


@dataclass(frozen=True)
class NotationSeed:
    envelope: bytes
    policy: NotationPolicy
    target: Target

    def verify(self, envelope: bytes) -> None:
        with contextlib.suppress(SignatureError):
            verify_envelope(envelope, JWS, self.policy, self.target, datetime.datetime.now(datetime.UTC))


PKI = Pki()
TARGET = {"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": "sha256:" + "a" * 64, "size": 481}
OURS = NotationSeed(
    envelope(TARGET, PKI.leaf, [PKI.intermediate]),
    NotationPolicy("hostile", (PKI.root.certificate,), ("x509.subject: O=Acme, CN=release",)),
    Target(str(TARGET["mediaType"]), str(TARGET["digest"]), 481),
)


def _notation_seeds() -> list[NotationSeed]:
    """Ours, and the envelope notation-go made (trusting its own certificate), when the vectors are here."""
    upstream = interop_folder("notation") / "jws_signature.sig"
    if not upstream.exists():
        return [OURS]
    body = upstream.read_bytes()
    anchor = x509.load_der_x509_certificate(base64.b64decode(json.loads(body)["header"]["x5c"][-1]))
    digest = "sha256:19dbd2e48e921426ee8ace4dc892edfb2ecdc1d1a72d5416c83670c30acecef0"
    target = Target("application/vnd.oci.image.manifest.v1+json", digest, 481)
    return [OURS, NotationSeed(body, NotationPolicy("upstream", (anchor,), ("*",)), target)]


NOTATION_SEEDS = _notation_seeds()


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64url(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _with_field(envelope_body: bytes, name: str, value: object) -> bytes:
    return json.dumps({**json.loads(envelope_body), name: value}).encode()


@HOSTILE
@given(data=st.data())
def test_mutated_notation_envelopes_raise_only_signature_errors(data: st.DataObject) -> None:
    seed = data.draw(st.sampled_from(NOTATION_SEEDS))
    seed.verify(data.draw(mutated_json(seed.envelope)))


@HOSTILE
@given(data=st.data())
def test_forged_notation_protected_headers_raise_only_signature_errors(data: st.DataObject) -> None:
    """The header is read before the signature is checked: a forged one needs no signing key."""
    seed = data.draw(st.sampled_from(NOTATION_SEEDS))
    header = json.loads(_unb64url(json.loads(seed.envelope)["protected"]))
    forged = data.draw(wrong_types(header).map(to_json) | flipped_or_truncated(json.dumps(header).encode()))
    seed.verify(_with_field(seed.envelope, "protected", _b64url(forged)))


@HOSTILE
@given(data=st.data())
def test_malformed_notation_headers_and_payloads_the_leaf_signed_raise_only_signature_errors(
    data: st.DataObject,
) -> None:
    """Signed by the trusted leaf, so that every check after the signature reads them too."""
    document = json.loads(OURS.envelope)
    header, payload_ = (_unb64url(document[name]) for name in ("protected", "payload"))
    if data.draw(st.booleans()):
        header = data.draw(wrong_types(json.loads(header)).map(to_json))
    else:
        payload_ = data.draw(wrong_types(json.loads(payload_)).map(to_json))
    OURS.verify(jws(header, payload_, PKI.leaf, [PKI.intermediate]))


@HOSTILE
@given(data=st.data())
def test_mutated_notation_certificates_raise_only_signature_errors(data: st.DataObject) -> None:
    seed = data.draw(st.sampled_from(NOTATION_SEEDS))
    chain = json.loads(seed.envelope)["header"]["x5c"]
    index = data.draw(st.integers(0, len(chain) - 1))
    der = data.draw(flipped_or_truncated(base64.b64decode(chain[index])))
    chain = [*chain[:index], base64.b64encode(der).decode(), *chain[index + 1 :]]
    seed.verify(_with_field(seed.envelope, "header", {"x5c": chain}))


# -- legacy cosign .sig: simple-signing payloads, signatures and their Rekor SETs -----------------


@dataclass(frozen=True)
class CosignSeed:
    payload: bytes
    signature: str
    key: PublicKey
    digest: str
    reference: str
    bundle: str
    rekor_keys: tuple[PublicKey, ...]

    def verify(self, payload: bytes, signature: str) -> None:
        with contextlib.suppress(SignatureError):
            verify_simple_signing(payload, signature, [self.key], self.digest, lambda named: named == self.reference)

    def verify_entry(self, bundle: str) -> None:
        with contextlib.suppress(SignatureError):
            verify_signed_entry(bundle, self.rekor_keys, self.payload, self.signature, self.key)


SIGNER, LOG = SigningKey.ecdsa(), SigningKey.ecdsa()


def _public(key: SigningKey) -> PublicKey:
    return parse_public_key(key.public_pem(), "test key")


def _ours() -> CosignSeed:
    reference, digest = f"registry.example/{REPOSITORY}", "sha256:" + "b" * 64
    signed = payload(reference, digest)
    signature = base64.b64encode(SIGNER.sign(signed)).decode()
    bundle = rekor_bundle(LOG, signed, signature, SIGNER)
    return CosignSeed(signed, signature, _public(SIGNER), digest, reference, bundle, (_public(LOG),))


def _cosign_seeds() -> list[CosignSeed]:
    """Ours, and the Rekor-logged signature cosign made, when the vectors are here."""
    folder = interop_folder("cosign")
    directory = folder / "dir-img-cosign-key-rekor-valid"
    if not directory.exists():
        return [_ours()]
    attachment = json.loads((directory / "signature-1").read_bytes().split(b"\n", 1)[1])
    annotations = attachment["annotations"]
    return [
        _ours(),
        CosignSeed(
            base64.b64decode(attachment["payload"]),
            annotations[SIGNATURE_ANNOTATION],
            load_public_key(folder / "cosign2.pub"),
            "sha256:" + hashlib.sha256((directory / "manifest.json").read_bytes()).hexdigest(),
            "192.168.64.2:5000/cosign-signed/key-1",
            annotations[REKOR_BUNDLE],
            (load_public_key(folder / "rekor.pub"),),
        ),
    ]


COSIGN_SEEDS = _cosign_seeds()


@HOSTILE
@given(data=st.data())
def test_mutated_simple_signing_payloads_and_signatures_raise_only_signature_errors(data: st.DataObject) -> None:
    seed = data.draw(st.sampled_from(COSIGN_SEEDS))
    if data.draw(st.booleans()):
        seed.verify(data.draw(mutated_json(seed.payload)), seed.signature)
    else:
        seed.verify(seed.payload, data.draw(flipped_or_truncated(seed.signature.encode())).decode("latin-1"))


@HOSTILE
@given(data=st.data())
def test_malformed_simple_signing_payloads_the_key_signed_raise_only_signature_errors(data: st.DataObject) -> None:
    """Signed by the policy's key, so that the payload is read after the signature is checked."""
    ours = COSIGN_SEEDS[0]
    body = data.draw(wrong_types(json.loads(ours.payload)).map(to_json))
    ours.verify(body, base64.b64encode(SIGNER.sign(body)).decode())


@HOSTILE
@given(data=st.data())
def test_mutated_rekor_bundles_raise_only_signature_errors(data: st.DataObject) -> None:
    seed = data.draw(st.sampled_from(COSIGN_SEEDS))
    seed.verify_entry(data.draw(mutated_json(seed.bundle.encode())).decode("utf-8", "replace"))


@HOSTILE
@given(data=st.data())
def test_malformed_rekor_entries_the_log_signed_raise_only_signature_errors(data: st.DataObject) -> None:
    """A trusted log's SET over a malformed hashedrekord entry: read after the SET is checked."""
    ours = COSIGN_SEEDS[0]
    entry = json.loads(base64.b64decode(json.loads(ours.bundle)["Payload"]["body"]))
    body = data.draw(wrong_types(entry).map(to_json) | flipped_or_truncated(json.dumps(entry).encode()))
    ours.verify_entry(rekor_set(LOG, body))
