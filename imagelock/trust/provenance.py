"""SLSA provenance required by a trust policy: what built the image, and from which source.

A policy's ``[policies.X.provenance]`` table is a ``ProvenanceRequirement``. After the image's
signature is verified, a signed in-toto statement of the required SLSA predicate type must name the
digest imagelock pins (the index of a multi-platform image: the digest builders attest) as its
subject, be signed by the same policy (its key(s), or its keyless identity), and claim an allowed
builder, the required source repository and, when asked, the source ref. Where each SLSA version
keeps these claims:

- v1: ``runDetails.builder.id``; the source in ``buildDefinition.externalParameters`` (GitHub
  Actions: ``workflow.repository`` and ``workflow.ref``; BuildKit: ``configSource.uri``) and its
  revision in the ``buildDefinition.resolvedDependencies`` entry for that repository.
- v0.2: ``builder.id``; the source in ``invocation.configSource.uri`` (revision: its ``digest``),
  else in the ``materials`` entry for that repository.

Statements are found as cosign attestations (``sha256-<hex>.att``, DSSE layers; key-based policies
only) and as sigstore bundles attached through referrers (cosign v3 ``attest``, GitHub artifact
attestations). BuildKit's provenance inside the index is unsigned: never enough, a refusal only
shows what it claims.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from imagelock.errors import NotFoundError
from imagelock.trust._base import Evidence, SignatureError
from imagelock.trust.statements import check_statement, open_envelope
from imagelock.untrusted import load_json

if TYPE_CHECKING:
    from imagelock.reference import Repository
    from imagelock.registry import ImageReader
    from imagelock.trust.cosign import CosignPolicy
    from imagelock.trust.keyless import KeylessPolicy

SLSA_V1 = "https://slsa.dev/provenance/v1"
SLSA_V02 = "https://slsa.dev/provenance/v0.2"
PREDICATE_TYPES = (SLSA_V1, SLSA_V02)
DSSE_LAYER = "application/vnd.dsse.envelope.v1+json"
PREDICATE_ANNOTATION = "in-toto.io/predicate-type"  # on BuildKit's in-toto layers inside an index
MAX_ATTESTATION_BYTES = 4 << 20
MAX_ATTESTATIONS = 32
REVISION_DIGESTS = ("gitCommit", "sha1", "sha256")


class ProvenanceError(SignatureError):
    """The image carries no verified provenance that satisfies the policy (exit 1, like a missing signature)."""

    def __init__(self, reason: str) -> None:
        super().__init__(f"provenance: {reason}")

    @property
    def verdict(self) -> str:
        return str(self)


@dataclass(frozen=True)
class ProvenanceRequirement:
    """``[policies.X.provenance]``: the builder and source a signed SLSA statement must claim."""

    source_repository: str
    predicate_type: str = SLSA_V1
    builder_id: str | None = None
    builder_id_regexp: re.Pattern[str] | None = None
    source_ref: str | None = None

    def canonical(self) -> dict[str, Any]:
        return {
            "predicate-type": self.predicate_type,
            "builder-id": self.builder_id,
            "builder-id-regexp": self.builder_id_regexp.pattern if self.builder_id_regexp else None,
            "source-repository": self.source_repository,
            "source-ref": self.source_ref,
        }

    def refusal(self, claims: Claims) -> str | None:
        """Why ``claims`` do not satisfy the requirement; None when they do."""
        builder = claims.builder_id
        if self.builder_id is not None and builder != self.builder_id:
            return f"builder {builder or '(none)'} not allowed"
        if self.builder_id_regexp is not None and not self.builder_id_regexp.fullmatch(builder):
            return f"builder {builder or '(none)'} not allowed"
        if same_repository(claims.source_repository) != same_repository(self.source_repository):
            return f"source repository {claims.source_repository or '(none)'} is not {self.source_repository}"
        if self.source_ref is not None and not _same_ref(claims.source_ref, self.source_ref):
            return f"source ref {claims.source_ref or '(none)'} is not {self.source_ref}"
        return None


@dataclass(frozen=True)
class Claims:
    """What a provenance statement says about the build, read where its SLSA version keeps it."""

    predicate_type: str
    builder_id: str
    source_repository: str
    source_ref: str
    source_revision: str


def read_claims(statement: dict[str, object]) -> Claims:
    """The claims of an in-toto statement with a SLSA provenance predicate (missing fields read as empty)."""
    predicate_type = str(statement.get("predicateType", ""))
    predicate = _table(statement.get("predicate"))
    if predicate_type == SLSA_V02:
        config_source = _table(_table(predicate.get("invocation")).get("configSource"))
        repository, ref = split_source_uri(_text(config_source.get("uri")))
        revision = _revision(config_source.get("digest")) or _dependency_revision(
            predicate.get("materials"), repository
        )
        return Claims(predicate_type, _text(_table(predicate.get("builder")).get("id")), repository, ref, revision)
    definition = _table(predicate.get("buildDefinition"))
    external = _table(definition.get("externalParameters"))
    workflow = _table(external.get("workflow"))
    if workflow:
        repository, ref = _text(workflow.get("repository")), _text(workflow.get("ref"))
    else:
        repository, ref = split_source_uri(_text(_table(external.get("configSource")).get("uri")))
    revision = _dependency_revision(definition.get("resolvedDependencies"), repository)
    builder = _text(_table(_table(predicate.get("runDetails")).get("builder")).get("id"))
    return Claims(predicate_type, builder, repository, ref, revision)


def split_source_uri(uri: str) -> tuple[str, str]:
    """``(repository, ref)`` of a source URI: ``git+https://h/o/r@refs/heads/main`` or ``https://h/o/r.git#ref``."""
    uri = uri.removeprefix("git+")
    if "#" in uri:
        repository, _, ref = uri.partition("#")
        return repository, ref
    scheme, sep, rest = uri.partition("://")
    host, slash, path = rest.partition("/")
    path, _, ref = path.partition("@")  # after the host: an ``@`` before it would be user information
    repository = f"{scheme}{sep}{host}{slash}{path}"
    return repository, ref


def same_repository(uri: str) -> str:
    """A repository URL compared without ``git+``, a trailing ``.git`` or ``/``, or the host's case."""
    repository = uri.removeprefix("git+").rstrip("/").removesuffix(".git")
    scheme, sep, rest = repository.partition("://")
    host, slash, path = rest.partition("/")
    return f"{scheme}{sep}{host.lower()}{slash}{path}" if sep else repository


def _same_ref(claimed: str, required: str) -> bool:
    """Refs compare exactly; a short ref (``main``) stands for the branch or tag of that name."""
    return claimed == required or (
        not claimed.startswith("refs/") and required in (f"refs/heads/{claimed}", f"refs/tags/{claimed}")
    )


def _dependency_revision(dependencies: object, repository: str) -> str:
    """The commit of the dependency (v1) or material (v0.2) that is ``repository``."""
    if not isinstance(dependencies, list) or not repository:
        return ""
    for dependency in dependencies:
        entry = _table(dependency)
        if same_repository(split_source_uri(_text(entry.get("uri")))[0]) == same_repository(repository):
            revision = _revision(entry.get("digest"))
            if revision:
                return revision
    return ""


def _revision(digest: object) -> str:
    digests = _table(digest)
    return next((_text(digests[name]) for name in REVISION_DIGESTS if name in digests), "")


def _table(value: object) -> dict[str, object]:
    return value if isinstance(value, dict) else {}


def _text(value: object) -> str:
    return value if isinstance(value, str) else ""


async def verify(
    policy: CosignPolicy | KeylessPolicy,
    requirement: ProvenanceRequirement,
    repository: Repository,
    digest: str,
    client: ImageReader,
) -> Evidence:
    """Evidence of the first signed provenance statement about ``digest`` that satisfies ``requirement``."""
    refusals: list[str] = []
    problems: list[str] = []
    for attestation, signed in await _signed_statements(policy, repository, digest, client, problems):
        try:
            payload_type, body = await signed.open()
            check_statement(payload_type, body, digest)
        except SignatureError as error:
            problems.append(f"attestation {attestation}: {error}")
            continue
        statement = load_json(body)
        assert isinstance(statement, dict)  # check_statement read it as one
        if statement.get("predicateType") != requirement.predicate_type:
            continue
        claims = read_claims(statement)
        refusal = requirement.refusal(claims)
        if refusal is not None:
            refusals.append(refusal)
            continue
        return Evidence(
            {
                "provenance": claims.predicate_type,
                "builder": claims.builder_id,
                "source": claims.source_repository,
                "revision": claims.source_revision,
                "attestation": attestation,
            }
        )
    reasons = refusals + problems or [f"no signed {requirement.predicate_type} attestation for {digest}"]
    reasons += [
        f"unsigned in-index provenance (not trusted) claims {claims}"
        for claims in await _unsigned(repository, digest, client)
    ]
    raise ProvenanceError("; ".join(reasons))


async def _unsigned(repository: Repository, digest: str, client: ImageReader) -> list[str]:
    """What BuildKit's provenance inside the index claims: shown, never trusted (nobody signed it)."""
    index = await client.get_manifest(repository, digest)
    described: list[str] = []
    for child in [child for child in index.children if child.is_attestation][:MAX_ATTESTATIONS]:
        try:
            layers = (await client.get_manifest(repository, child.digest)).layers[:MAX_ATTESTATIONS]
        except NotFoundError:
            continue
        for layer in layers:
            if layer.annotations.get(PREDICATE_ANNOTATION) not in PREDICATE_TYPES or layer.size > MAX_ATTESTATION_BYTES:
                continue
            try:
                statement = load_json(await client.get_blob(repository, layer.digest, max_bytes=MAX_ATTESTATION_BYTES))
            except (NotFoundError, ValueError):
                continue
            if isinstance(statement, dict):
                claims = read_claims(statement)
                source = f"{claims.source_repository or '(none)'}@{claims.source_ref or claims.source_revision or '?'}"
                described.append(f"builder {claims.builder_id or '(none)'}, source {source}")
    return sorted(set(described))


async def _signed_statements(
    policy: CosignPolicy | KeylessPolicy, repository: Repository, digest: str, client: ImageReader, problems: list[str]
) -> list[tuple[str, Opener]]:
    """Every attestation of ``digest`` the policy can verify, as (its manifest's digest, how to open it)."""
    from imagelock.trust.cosign import CosignPolicy, NoSignatureError, find_bundles

    found = await _tagged(policy, repository, digest, client) if isinstance(policy, CosignPolicy) else []
    try:
        bundles = await find_bundles(repository, digest, client, problems)
    except NoSignatureError:
        bundles = []
    found += [(manifest_digest, Opener(policy, bundle, bundled=True)) for manifest_digest, bundle in bundles]
    return found


async def _tagged(
    policy: CosignPolicy, repository: Repository, digest: str, client: ImageReader
) -> list[tuple[str, Opener]]:
    """cosign's ``.att`` attestations (key-based only: a keyless ``.att`` layer carries no bundle to verify offline)."""
    algorithm, _, hexdigest = digest.partition(":")
    try:
        manifest = await client.get_manifest(repository, f"{algorithm}-{hexdigest}.att")
    except NotFoundError:
        return []
    found = []
    for layer in manifest.layers[:MAX_ATTESTATIONS] if not manifest.is_index else ():
        if layer.media_type == DSSE_LAYER and layer.size <= MAX_ATTESTATION_BYTES:
            blob = await client.get_blob(repository, layer.digest, max_bytes=MAX_ATTESTATION_BYTES)
            found.append((manifest.digest, Opener(policy, blob, bundled=False)))
    return found


@dataclass(frozen=True)
class Opener:
    """One attestation, opened (its signature verified) only when its turn comes."""

    policy: CosignPolicy | KeylessPolicy
    blob: bytes
    bundled: bool  # a sigstore bundle; else a bare DSSE envelope

    async def open(self) -> tuple[str, bytes]:
        """``(payloadType, payload)`` signed by the policy; SignatureError when it is not."""
        from imagelock.trust.cosign import CosignPolicy

        if isinstance(self.policy, CosignPolicy):
            try:
                envelope = load_json(self.blob)
                envelope = envelope["dsseEnvelope"] if self.bundled else envelope
            except (ValueError, KeyError, TypeError):
                raise SignatureError("not a DSSE envelope") from None
            payload_type, body, _ = open_envelope(envelope, self.policy.keys)
            return payload_type, body
        import asyncio

        from imagelock.trust.keyless import verify_keyless_bundle

        result = await asyncio.to_thread(verify_keyless_bundle, self.blob, self.policy)
        return result.payload_type, result.payload
