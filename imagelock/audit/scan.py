"""Auditing images: for each platform, its packages (from an SBOM the publisher attached, else from its
layers), matched against OSV records, judged by the image's audit policy.

Where the packages come from, in order:

1. a BuildKit SBOM attestation: the index's attestation manifest for the platform, whose in-toto
   layer carries an SPDX or CycloneDX predicate. The locked index names it by digest, so it is
   bound to the lock like the image's own layers, and trusted as much as the image itself;
2. a cosign attestation (``sha256-<digest>.att``) of the platform or the index with an SBOM predicate,
   only under a ``cosign`` key policy: its DSSE signature must verify with the policy's keys and its
   statement must name the digest. Anyone who may push to the repository can attach such a tag, so
   without that policy (none, or a method that cannot check it) it is not used;
3. the image's own layers, streamed (``imagelock.audit.layers``).
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING

from imagelock.audit.inventory import Inventory, LayerContent, merge
from imagelock.audit.layers import LayerCache, is_layer, read_layer
from imagelock.audit.osv import Match, at_or_above, match_all
from imagelock.audit.policy import AuditPolicy
from imagelock.audit.sbom import NotAnSbomError, parse_sbom, statement_sbom, statement_subjects
from imagelock.concurrency import all_or_first_failure
from imagelock.errors import DataUnavailableError, NotFoundError, RegistryError
from imagelock.trust import CosignPolicy, SignatureError
from imagelock.trust.statements import open_attestation

if TYPE_CHECKING:
    from imagelock.audit.database import Database
    from imagelock.reference import Repository
    from imagelock.registry import ImageReader
    from imagelock.registry.manifests import Descriptor, Manifest
    from imagelock.trust import TrustPolicy

IN_TOTO_LAYER = "application/vnd.in-toto+json"
DSSE_LAYER = "application/vnd.dsse.envelope.v1+json"
PREDICATE_ANNOTATION = "in-toto.io/predicate-type"
REFERENCE_DIGEST_ANNOTATION = "vnd.docker.reference.digest"
MAX_ATTESTATION_BYTES = 32 << 20
MAX_LAYER_BYTES = 8 << 30
MAX_CONCURRENT_PLATFORMS = 8


@dataclass(frozen=True)
class Target:
    """One image to audit: where it is, which platform manifests, and the policies that apply."""

    name: str
    repository: Repository
    tag: str
    digest: str
    platforms: Mapping[str, str]  # platform -> manifest digest
    policy: AuditPolicy = field(default_factory=AuditPolicy)
    trust: TrustPolicy | None = None

    @property
    def reference(self) -> str:
        return f"{self.repository}:{self.tag}@{self.digest}"


@dataclass(frozen=True)
class Finding:
    """One vulnerable package in one platform of one image."""

    platform: str
    package: str
    version: str
    ecosystem: str
    fixed: str
    id: str
    aliases: tuple[str, ...]
    severity: str
    score: str
    summary: str
    location: str
    ignored: bool = False

    @classmethod
    def of(cls, match: Match, platform: str, ignore: frozenset[str]) -> Finding:
        record, package = match.record, match.package
        return cls(
            platform=platform,
            package=package.name,
            version=package.version,
            ecosystem=package.ecosystem,
            fixed=match.fixed,
            id=record.id,
            aliases=record.aliases,
            severity=record.severity,
            score=record.score,
            summary=record.summary,
            location=package.location,
            ignored=bool(record.ids() & ignore),
        )


@dataclass(frozen=True)
class PlatformAudit:
    platform: str
    digest: str
    source: str  # "layers", or the SBOM it came from; "" when it could not be audited
    release: str
    packages: int
    notes: tuple[str, ...]
    error: str | None = None  # why its content could not be had (an unreadable layer, a blob not served)


@dataclass(frozen=True)
class ImageAudit:
    target: Target
    platforms: tuple[PlatformAudit, ...]
    findings: tuple[Finding, ...]

    @property
    def failing(self) -> tuple[Finding, ...]:
        """Findings the policy does not accept: not ignored, at or above ``fail-on``."""
        threshold = self.target.policy.fail_on
        return tuple(f for f in self.findings if not f.ignored and at_or_above(f.severity, threshold))


@dataclass(frozen=True)
class AuditReport:
    images: tuple[ImageAudit, ...]

    @property
    def failed(self) -> bool:
        return any(image.failing for image in self.images)

    @property
    def errors(self) -> tuple[str, ...]:
        """``[images.NAME] PLATFORM: why``, for each platform that could not be audited."""
        return tuple(
            f"[images.{image.target.name}] {platform.platform}: {platform.error}"
            for image in self.images
            for platform in image.platforms
            if platform.error is not None
        )


async def audit(targets: Sequence[Target], client: ImageReader, database: Database, cache: LayerCache) -> AuditReport:
    """Audit every platform of every target; the database is asked once, for all packages together.

    A platform whose content cannot be had (a layer that is not a readable archive, a blob the
    registry fails to serve) is reported with its error, and the others are audited.
    """
    slots = asyncio.Semaphore(MAX_CONCURRENT_PLATFORMS)

    async def one(target: Target, platform: str, digest: str) -> Inventory | DataUnavailableError | RegistryError:
        async with slots:
            try:
                return await inventory(target, platform, digest, client, cache)
            except (DataUnavailableError, RegistryError) as error:
                return error

    jobs = [(target, platform, digest) for target in targets for platform, digest in sorted(target.platforms.items())]
    inventories = await all_or_first_failure(one(*job) for job in jobs)
    packages = [package for found in inventories if isinstance(found, Inventory) for package in found.packages]
    records = await database.records_for(packages)
    by_image: dict[str, tuple[list[PlatformAudit], list[Finding]]] = {target.name: ([], []) for target in targets}
    for (target, platform, digest), found in zip(jobs, inventories, strict=True):
        platforms, findings = by_image[target.name]
        if not isinstance(found, Inventory):
            platforms.append(PlatformAudit(platform, digest, "", "", 0, (), str(found)))
            continue
        release = str(found.release) if found.release is not None else ""
        platforms.append(PlatformAudit(platform, digest, found.source, release, len(found.packages), found.notes))
        for match in match_all(records, found.packages):
            findings.append(Finding.of(match, platform, target.policy.ignore))
    return AuditReport(
        tuple(
            ImageAudit(target, tuple(by_image[target.name][0]), tuple(sorted(by_image[target.name][1], key=_order)))
            for target in targets
        )
    )


def _order(finding: Finding) -> tuple[int, str, str, str]:
    severity = ("critical", "high", "medium", "low", "unknown").index(finding.severity)
    return severity, finding.package, finding.id, finding.platform


async def inventory(target: Target, platform: str, digest: str, client: ImageReader, cache: LayerCache) -> Inventory:
    """What is installed in one platform of an image: from an attached SBOM when there is one, else its layers."""
    repository = target.repository
    notes: list[str] = []
    index = await client.get_manifest(repository, target.digest) if target.digest != digest else None
    if index is not None and index.is_index:
        found = await _buildkit_sbom(repository, index, digest, client)
        if found is not None:
            return found
    for subject in dict.fromkeys([digest, target.digest]):
        found = await _cosign_sbom(repository, subject, target.trust, client, notes)
        if found is not None:
            return found
    manifest = await client.get_manifest(repository, digest)
    if manifest.is_index:
        raise RegistryError(f"{repository}@{digest}: the {platform} manifest is an index, not an image")
    layers = [layer for layer in manifest.layers if is_layer(layer)]
    for layer in layers:
        if layer.size > MAX_LAYER_BYTES:
            raise DataUnavailableError(f"{repository}@{layer.digest}: layer larger than {MAX_LAYER_BYTES >> 30} GiB")

    async def content_of(layer: Descriptor) -> LayerContent:
        content = cache.get(layer.digest)
        if content is None:
            content = await read_layer(client, repository, layer)
            cache.put(layer.digest, content)
        return content

    found = merge(await all_or_first_failure(content_of(layer) for layer in layers))
    return replace(found, notes=(*notes, *found.notes))


async def _buildkit_sbom(repository: Repository, index: Manifest, digest: str, client: ImageReader) -> Inventory | None:
    for child in index.children:
        if not child.is_attestation or child.annotations.get(REFERENCE_DIGEST_ANNOTATION) != digest:
            continue
        attestation = await client.get_manifest(repository, child.digest)
        for layer in attestation.layers:
            predicate_type = layer.annotations.get(PREDICATE_ANNOTATION, "")
            if layer.media_type != IN_TOTO_LAYER or not predicate_type.startswith(
                ("https://spdx.dev", "https://cyclonedx.org")
            ):
                continue
            body = await client.get_blob(repository, layer.digest, max_bytes=MAX_ATTESTATION_BYTES)
            subjects = statement_subjects(body)
            if subjects and digest not in subjects:
                continue
            found = _sbom_of(body, f"SBOM attestation {child.digest}")
            if found is not None:
                return found
    return None


async def _cosign_sbom(
    repository: Repository, subject: str, policy: TrustPolicy | None, client: ImageReader, notes: list[str]
) -> Inventory | None:
    algorithm, _, hexdigest = subject.partition(":")
    tag = f"{algorithm}-{hexdigest}.att"
    try:
        manifest = await client.get_manifest(repository, tag)
    except NotFoundError:
        return None
    if not isinstance(policy, CosignPolicy):
        why = f"policy {policy.name!r} cannot verify it" if policy is not None else "no cosign key policy to verify it"
        notes.append(f"{repository}:{tag}: cosign attestation not used ({why})")
        return None
    for layer in manifest.layers:
        if layer.media_type != DSSE_LAYER:
            continue
        blob = await client.get_blob(repository, layer.digest, max_bytes=MAX_ATTESTATION_BYTES)
        try:
            body = open_attestation(blob, policy.keys, subject)
        except SignatureError as error:
            notes.append(f"{repository}:{tag}: cosign attestation not used: {error}")
            continue
        found = _sbom_of(body, f"cosign attestation {manifest.digest}")
        if found is not None:
            return found
    return None


def _sbom_of(statement: bytes, source: str) -> Inventory | None:
    carried = statement_sbom(statement)
    if carried is None:
        return None
    try:
        return parse_sbom(carried[1], source)
    except NotAnSbomError:
        return None
