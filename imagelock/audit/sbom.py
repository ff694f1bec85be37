"""Inventories from SBOMs: SPDX 2.x and CycloneDX JSON, bare or as the predicate of an in-toto statement.

Read leniently, the way real SBOMs are written: only the package URLs (and the operating-system
entry, for the release) are used, so a document a strict validator rejects for an unrelated field
still gives its packages. A package URL becomes what OSV knows the package by:

- ``pkg:apk/alpine/…`` and syft's older ``pkg:alpine/…``: ecosystem ``Alpine:vX.Y`` from the
  ``distro`` qualifier (``alpine-3.16.2`` or ``3.22.0``), OSV name from ``origin`` or ``upstream``;
- ``pkg:deb/debian/…``: ``Debian:N`` from ``distro`` (``debian-12.9``), source from ``upstream``
  (``name`` or ``name@version``) or SPDX's ``sourceInfo`` ("built package from: name version");
- ``pkg:pypi/…``, ``pkg:npm/[scope/]…`` and ``pkg:golang/…``: PyPI, npm and Go.

Anything else is not matched and is counted in the inventory's notes.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Any

from imagelock.audit.inventory import Inventory, Package, Release
from imagelock.untrusted import load_json

SPDX_PREDICATES = frozenset(
    {"https://spdx.dev/Document", "https://spdx.dev/Document/v2.2", "https://spdx.dev/Document/v2.3"}
)
CYCLONEDX_PREDICATES = frozenset(
    {
        "https://cyclonedx.org/bom",
        "https://cyclonedx.org/bom/v1.4",
        "https://cyclonedx.org/bom/v1.5",
        "https://cyclonedx.org/bom/v1.6",
    }
)
SBOM_PREDICATES = SPDX_PREDICATES | CYCLONEDX_PREDICATES
_BUILT_FROM = re.compile(r"built package from:\s*(\S+)(?:\s+(\S+))?")


class NotAnSbomError(ValueError):
    """A document that is neither SPDX nor CycloneDX JSON."""


def statement_sbom(body: bytes) -> tuple[str, dict[str, Any]] | None:
    """``(predicateType, predicate)`` of an in-toto statement carrying an SBOM; None for any other statement."""
    try:
        statement = load_json(body)
    except ValueError:
        return None
    if not isinstance(statement, dict) or not str(statement.get("_type", "")).startswith(
        "https://in-toto.io/Statement"
    ):
        return None
    predicate_type, predicate = statement.get("predicateType"), statement.get("predicate")
    if not isinstance(predicate_type, str) or predicate_type not in SBOM_PREDICATES or not isinstance(predicate, dict):
        return None
    return predicate_type, predicate


def statement_subjects(body: bytes) -> list[str]:
    """The ``sha256:…`` digests an in-toto statement is about."""
    try:
        statement = load_json(body)
    except ValueError:
        return []
    subjects = statement.get("subject") if isinstance(statement, dict) else None
    digests = [subject.get("digest") for subject in _dicts(subjects)]
    return [
        f"sha256:{digest['sha256']}"
        for digest in digests
        if isinstance(digest, dict) and isinstance(digest.get("sha256"), str)
    ]


def parse_sbom(document: object, source: str) -> Inventory:
    """The packages an SPDX or CycloneDX document lists; ``source`` names it in the report."""
    if not isinstance(document, dict):
        raise NotAnSbomError(f"{source}: not a JSON object")
    if "spdxVersion" in document:
        return _spdx(document, source)
    if document.get("bomFormat") == "CycloneDX" or "components" in document:
        return _cyclonedx(document, source)
    raise NotAnSbomError(f"{source}: neither SPDX (spdxVersion) nor CycloneDX (bomFormat)")


def _spdx(document: Mapping[str, Any], source: str) -> Inventory:
    release = None
    found: list[tuple[str, str]] = []  # (purl, sourceInfo)
    for package in _dicts(document.get("packages")):
        if package.get("primaryPackagePurpose") == "OPERATING-SYSTEM":
            release = Release(str(package.get("name", "")).lower(), str(package.get("versionInfo", "")))
            continue
        for reference in _dicts(package.get("externalRefs")):
            if reference.get("referenceType") == "purl" and isinstance(reference.get("referenceLocator"), str):
                found.append((reference["referenceLocator"], str(package.get("sourceInfo", ""))))
    return _inventory(found, release, source)


def _cyclonedx(document: Mapping[str, Any], source: str) -> Inventory:
    release = None
    found: list[tuple[str, str]] = []
    for component in _components(document.get("components")):
        if component.get("type") == "operating-system":
            release = Release(str(component.get("name", "")).lower(), str(component.get("version", "")))
        elif isinstance(component.get("purl"), str):
            found.append((component["purl"], ""))
    return _inventory(found, release, source)


def _components(value: object) -> Iterable[Mapping[str, Any]]:
    for component in _dicts(value):
        yield component
        yield from _components(component.get("components"))  # CycloneDX nests components


def _dicts(value: object) -> list[Mapping[str, Any]]:
    return [item for item in value if isinstance(item, dict)] if isinstance(value, list) else []


def _inventory(found: list[tuple[str, str]], release: Release | None, source: str) -> Inventory:
    packages: dict[tuple[str, str, str, str], Package] = {}
    unmatched = 0
    for purl, source_info in found:
        package = package_from_purl(purl, source, release, source_info)
        if package is None:
            unmatched += 1
        else:
            packages.setdefault((package.ecosystem, package.name, package.version, package.osv_name), package)
    notes = (f"{source}: {unmatched} package(s) of kinds OSV matching does not cover",) if unmatched else ()
    return Inventory(tuple(packages.values()), release, source, notes)


def package_from_purl(
    purl: str, location: str, release: Release | None = None, source_info: str = ""
) -> Package | None:
    """The package a purl names, as OSV knows it; None when it is not of a kind matched here."""
    from packageurl import PackageURL

    try:
        parsed = PackageURL.from_string(purl)
    except ValueError:
        return None
    qualifiers = parsed.qualifiers if isinstance(parsed.qualifiers, dict) else {}
    version = parsed.version or ""
    if not version:
        return None
    kind, namespace, name = parsed.type, (parsed.namespace or "").lower(), parsed.name
    if kind in ("apk", "alpine") and namespace in ("", "alpine"):
        ecosystem = _scoped("alpine", qualifiers.get("distro", ""), release)
        origin = qualifiers.get("origin") or qualifiers.get("upstream") or ""
        return Package(name, version, ecosystem, origin.split("@", 1)[0], "", location) if ecosystem else None
    if kind == "deb" and namespace in ("debian", ""):
        ecosystem = _scoped("debian", qualifiers.get("distro", ""), release)
        source, source_version = _deb_source(qualifiers.get("upstream", ""), source_info, name)
        return Package(name, version, ecosystem, source, source_version, location) if ecosystem else None
    if kind == "pypi":
        return Package(name, version, "PyPI", location=location)
    if kind == "npm":
        full = f"{parsed.namespace}/{name}" if parsed.namespace else name
        return Package(full, version, "npm", location=location)
    if kind == "golang":
        full = f"{parsed.namespace}/{name}" if parsed.namespace else name
        return Package(full, version, "Go", location=location)
    return None


def _scoped(distro: str, qualifier: str, release: Release | None) -> str | None:
    """The release-scoped ecosystem from a ``distro`` qualifier, else from the SBOM's operating system."""
    if qualifier:
        version = qualifier[len(distro) + 1 :] if qualifier.lower().startswith(distro + "-") else qualifier
        if version[:1].isdigit():
            return Release(distro, version).ecosystem
    if release is not None and release.distro == distro:
        return release.ecosystem
    return None


def _deb_source(upstream: str, source_info: str, name: str) -> tuple[str, str]:
    """(source name, source version) of a Debian package: "" for either means "same as the binary"."""
    if upstream:
        source, _, version = upstream.partition("@")
        return source, version
    if match := _BUILT_FROM.search(source_info):
        return match.group(1), match.group(2) or ""
    return name, ""
