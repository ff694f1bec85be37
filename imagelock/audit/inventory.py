"""What is installed in an image: its distribution release and its packages, from the package databases.

Pure and synchronous: each parser takes the bytes of one file and returns what it says; ``merge``
lays the files found in an image's layers on top of each other, whiteouts applied, and turns what
is left into an ``Inventory``. Reading the layers is ``imagelock.audit.layers``'s job.

The files, and how each is read:

- ``var/lib/dpkg/status``: RFC 822 stanzas; only those whose ``Status`` ends in ``installed``.
- ``var/lib/dpkg/status.d/*`` (distroless): one stanza per file and no ``Status``: present means installed.
- ``lib/apk/db/installed``: ``X:value`` lines, stanzas separated by blank lines; ``o:`` is the origin.
- ``etc/os-release`` (or ``usr/lib/os-release``, which it usually links to): ``ID`` and ``VERSION_ID``;
  lines without ``=`` are ignored. Without ``VERSION_ID``, ``etc/debian_version`` or ``etc/alpine-release``.
- ``*.dist-info/METADATA`` and ``*.egg-info/PKG-INFO``: ``Name`` and ``Version`` headers.
- ``node_modules/[@scope/]name/package.json``: ``name`` and ``version``.
"""

from __future__ import annotations

import email.parser
import posixpath
import re
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from imagelock.untrusted import load_json

DPKG_STATUS = "var/lib/dpkg/status"
DPKG_STATUS_D = "var/lib/dpkg/status.d/"
APK_INSTALLED = "lib/apk/db/installed"
OS_RELEASE = ("etc/os-release", "usr/lib/os-release")
DEBIAN_VERSION = "etc/debian_version"
ALPINE_RELEASE = "etc/alpine-release"
_RELEASE_FILES = frozenset({*OS_RELEASE, DEBIAN_VERSION, ALPINE_RELEASE})
_PYTHON_METADATA = re.compile(r"(?:^|/)[^/]+\.(?:dist-info/METADATA|egg-info/PKG-INFO)$")
_NODE_PACKAGE = re.compile(r"(?:^|/)node_modules/(?:@[^/]+/)?[^/@.][^/]*/package\.json$")
_PEP503 = re.compile(r"[-_.]+")
_DPKG_SOURCE = re.compile(r"\s*(\S+)(?:\s*\((\S+)\))?\s*")
_FIELD_LINE = re.compile(r"^\S.*", re.MULTILINE)  # not blank, nor a continuation (which starts with a space)
_BLANK_LINE = re.compile(r"\n[^\S\n]*\n")

MAX_DATABASE_BYTES = 64 << 20  # a dpkg status or apk database
MAX_SMALL_FILE_BYTES = 1 << 20  # os-release, METADATA, package.json


@dataclass(frozen=True)
class Package:
    """One installed package, with what OSV knows it by.

    ``ecosystem`` is the OSV ecosystem, release included once known (``Debian:12``, ``Alpine:v3.18``,
    ``PyPI``, ``npm``). ``source`` and ``source_version`` are the name and version OSV records use when
    they differ from the installed ones: the Debian source package, the Alpine origin.
    """

    name: str
    version: str
    ecosystem: str
    source: str = ""
    source_version: str = ""
    location: str = ""  # the file (or SBOM) it was found in

    @property
    def osv_name(self) -> str:
        name = self.source or self.name
        return normalize_name(self.ecosystem, name)

    @property
    def osv_key(self) -> tuple[str, str]:
        """``(ecosystem without its release, OSV name)``: what a database indexes its records by."""
        return self.ecosystem.split(":", 1)[0], self.osv_name

    @property
    def osv_version(self) -> str:
        return self.source_version or self.version

    def to_json(self) -> dict[str, str]:
        document = {"name": self.name, "version": self.version, "ecosystem": self.ecosystem}
        for key, value in (("source", self.source), ("source_version", self.source_version)):
            if value:
                document[key] = value
        return document

    @classmethod
    def from_json(cls, document: Mapping[str, Any], location: str) -> Package:
        return cls(
            str(document["name"]),
            str(document["version"]),
            str(document["ecosystem"]),
            str(document.get("source", "")),
            str(document.get("source_version", "")),
            location,
        )


def normalize_name(ecosystem: str, name: str) -> str:
    """The package name as OSV records spell it: PEP 503 for PyPI, as is elsewhere."""
    if ecosystem == "PyPI":
        return _PEP503.sub("-", name).lower()
    return name


@dataclass(frozen=True)
class Release:
    """The distribution an image is built on, as OSV scopes its ecosystems (``Debian:12``, ``Alpine:v3.18``)."""

    distro: str  # os-release ID: debian, alpine, ubuntu, …
    version: str  # VERSION_ID, or the release file's version

    @property
    def ecosystem(self) -> str | None:
        """The OSV ecosystem of the distribution's packages; None when the release is not one OSV names."""
        if self.distro == "debian":
            major = self.version.split(".", 1)[0]
            return f"Debian:{major}" if major.isdigit() else None
        if self.distro == "alpine":
            parts = self.version.split(".")
            if len(parts) >= 2 and parts[0].isdigit() and parts[1].isdigit():
                return f"Alpine:v{parts[0]}.{parts[1]}"
            return None
        return None

    def __str__(self) -> str:
        return f"{self.distro} {self.version}".strip()


@dataclass(frozen=True)
class Inventory:
    """Everything an image (one platform of it) or an SBOM says is installed."""

    packages: tuple[Package, ...]
    release: Release | None = None
    source: str = "layers"  # "layers", or the SBOM it came from
    notes: tuple[str, ...] = ()  # what could not be read, for the report


# -- the records one file yields ---------------------------------------------------------------------


@dataclass(frozen=True)
class FileRecord:
    """What one package-database file in one layer says; ``kind`` tells which file it is.

    Kinds: ``packages`` (dpkg, apk, METADATA, package.json), ``os-release`` (``fields``),
    ``release`` (the text of debian_version or alpine-release, in ``fields["text"]``), ``link`` (a
    symlink, ``fields["target"]``).
    """

    kind: str
    packages: tuple[Package, ...] = ()
    fields: Mapping[str, str] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        document: dict[str, Any] = {"kind": self.kind}
        if self.packages:
            document["packages"] = [package.to_json() for package in self.packages]
        if self.fields:
            document["fields"] = dict(self.fields)
        return document

    @classmethod
    def from_json(cls, document: Mapping[str, Any], path: str) -> FileRecord:
        packages = tuple(Package.from_json(item, path) for item in document.get("packages", []))
        fields = {str(key): str(value) for key, value in document.get("fields", {}).items()}
        return cls(str(document["kind"]), packages, fields)


def wanted(path: str) -> int:
    """The most bytes worth reading of ``path`` (a normalised path in a layer), or 0 when it is not wanted."""
    if path in (DPKG_STATUS, APK_INSTALLED):
        return MAX_DATABASE_BYTES
    if path.startswith(DPKG_STATUS_D) and "/" not in path[len(DPKG_STATUS_D) :]:
        return 0 if path.endswith((".md5sums", ".list", ".conffiles")) else MAX_SMALL_FILE_BYTES
    if path in _RELEASE_FILES or _PYTHON_METADATA.search(path) or _NODE_PACKAGE.search(path):
        return MAX_SMALL_FILE_BYTES
    return 0


def parse_file(path: str, data: bytes) -> FileRecord | None:
    """The record of one wanted file, or None when it says nothing usable."""
    text = data.decode("utf-8", errors="replace")
    if path == DPKG_STATUS:
        return FileRecord("packages", tuple(parse_dpkg(text, path, require_status=True)))
    if path.startswith(DPKG_STATUS_D):
        packages = tuple(parse_dpkg(text, path, require_status=False))
        return FileRecord("packages", packages) if packages else None
    if path == APK_INSTALLED:
        return FileRecord("packages", tuple(parse_apk(text, path)))
    if path in OS_RELEASE:
        return FileRecord("os-release", fields=parse_os_release(text))
    if path in (DEBIAN_VERSION, ALPINE_RELEASE):
        return FileRecord("release", fields={"text": text.strip()})
    if _PYTHON_METADATA.search(path):
        package = parse_python_metadata(text, path)
        return FileRecord("packages", (package,)) if package else None
    if _NODE_PACKAGE.search(path):
        package = parse_package_json(data, path)
        return FileRecord("packages", (package,)) if package else None
    return None


# -- the parsers ---------------------------------------------------------------------------------------


def stanzas(text: str, field: Callable[[str], tuple[str, str] | None]) -> Iterator[dict[str, str]]:
    """Blank-line-separated stanzas, each as the ``(key, value)`` fields ``field`` finds in their lines (the
    first of each key counts). Only lines that start a field are read, one at a time: continuation lines (of
    fields such as Description) and blank lines are skipped by the regex engine, however many there are."""
    current: dict[str, str] = {}
    end = 0
    for line in _FIELD_LINE.finditer(text):
        if current and _BLANK_LINE.search(text, end, line.start()):
            yield current
            current = {}
        if (found := field(line.group())) is not None:
            current.setdefault(*found)
        end = line.end()
    if current:
        yield current


def _dpkg_field(line: str) -> tuple[str, str] | None:
    """``Key: value`` of the fields used."""
    key, colon, value = line.partition(":")
    if not colon or key.strip() not in ("Package", "Version", "Status", "Source"):
        return None
    return key.strip(), value.strip()


def _apk_field(line: str) -> tuple[str, str] | None:
    """``P:`` name, ``V:`` version, ``o:`` origin."""
    return (line[0], line[2:].strip()) if line[1:2] == ":" and line[0] in "PVo" else None


def parse_dpkg(text: str, location: str, *, require_status: bool) -> list[Package]:
    """Installed packages of a dpkg status file (or a distroless ``status.d`` file, which has no Status)."""
    packages = []
    for stanza in stanzas(text, _dpkg_field):
        name, version = stanza.get("Package", ""), stanza.get("Version", "")
        if not name or not version:
            continue
        status = stanza.get("Status", "").split()
        if (require_status or status) and (len(status) < 3 or status[2] != "installed"):
            continue
        source, source_version = name, version
        if match := _DPKG_SOURCE.fullmatch(stanza.get("Source", "")):
            source = match.group(1)
            source_version = match.group(2) or version
        packages.append(Package(name, version, "Debian", source, source_version, location))
    return packages


def parse_apk(text: str, location: str) -> list[Package]:
    """Installed packages of an apk database: ``P:`` name, ``V:`` version, ``o:`` origin (the OSV name)."""
    return [
        Package(fields["P"], fields["V"], "Alpine", fields.get("o", ""), "", location)
        for fields in stanzas(text, _apk_field)
        if fields.get("P") and fields.get("V")
    ]


def parse_os_release(text: str) -> dict[str, str]:
    """``KEY=value`` pairs, shell quoting removed; lines without ``=`` (a captured prompt, say) are ignored."""
    fields = {}
    for line in text.splitlines():
        key, equals, value = line.strip().partition("=")
        if not equals or not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", key):
            continue
        value = value.strip()
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "\"'":
            value = value[1:-1]
        fields[key] = value
    return fields


def parse_python_metadata(text: str, location: str) -> Package | None:
    headers = email.parser.HeaderParser().parsestr(text)
    name, version = headers.get("Name"), headers.get("Version")
    if not name or not version:
        return None
    return Package(str(name).strip(), str(version).strip(), "PyPI", location=location)


def parse_package_json(data: bytes, location: str) -> Package | None:
    try:
        document = load_json(data)
    except ValueError:
        return None
    if not isinstance(document, dict):
        return None
    name, version = document.get("name"), document.get("version")
    if not isinstance(name, str) or not isinstance(version, str) or not name or not version:
        return None
    return Package(name, version, "npm", location=location)


def release_of(os_release: Mapping[str, str] | None, release_files: Mapping[str, str]) -> Release | None:
    """The release from os-release; without a ``VERSION_ID`` there, from debian_version or alpine-release."""
    distro = (os_release or {}).get("ID", "").lower()
    version = (os_release or {}).get("VERSION_ID", "")
    if not distro:
        if DEBIAN_VERSION in release_files:
            distro = "debian"
        elif ALPINE_RELEASE in release_files:
            distro = "alpine"
        else:
            return None
    if not version:
        fallback = {"debian": DEBIAN_VERSION, "alpine": ALPINE_RELEASE}.get(distro)
        version = release_files.get(fallback, "") if fallback else ""
    return Release(distro, version)


# -- layers on top of each other -------------------------------------------------------------------------


@dataclass(frozen=True)
class LayerContent:
    """The wanted files of one layer, and what it deletes from the layers below it."""

    files: Mapping[str, FileRecord]
    whiteouts: frozenset[str] = frozenset()  # paths removed (files or whole directories)
    opaque: frozenset[str] = frozenset()  # directories whose lower content is hidden

    def to_json(self) -> dict[str, Any]:
        return {
            "files": {path: record.to_json() for path, record in sorted(self.files.items())},
            "whiteouts": sorted(self.whiteouts),
            "opaque": sorted(self.opaque),
        }

    @classmethod
    def from_json(cls, document: Mapping[str, Any]) -> LayerContent:
        files = {str(path): FileRecord.from_json(record, str(path)) for path, record in document["files"].items()}
        return cls(files, frozenset(map(str, document["whiteouts"])), frozenset(map(str, document["opaque"])))


def _under(path: str, directory: str) -> bool:
    return path == directory or path.startswith(directory + "/") or not directory


def merge(layers: Iterable[LayerContent], location_prefix: str = "") -> Inventory:
    """The inventory of the filesystem the layers make, bottom layer first, whiteouts applied."""
    files: dict[str, FileRecord] = {}
    for layer in layers:
        for removed in layer.whiteouts:
            for path in [path for path in files if _under(path, removed)]:
                del files[path]
        for directory in layer.opaque:
            for path in [path for path in files if path != directory and _under(path, directory)]:
                del files[path]
        files.update(layer.files)
    return inventory_of(files, location_prefix)


def _follow(files: Mapping[str, FileRecord], path: str) -> FileRecord | None:
    """The record at ``path``, through up to a few symlinks (etc/os-release → ../usr/lib/os-release)."""
    for _ in range(8):
        record = files.get(path)
        if record is None or record.kind != "link":
            return record
        target = record.fields.get("target", "")
        path = posixpath.normpath(posixpath.join(posixpath.dirname(path), target)).lstrip("/")
    return None


def inventory_of(files: Mapping[str, FileRecord], location_prefix: str = "") -> Inventory:
    """Turn the surviving files into packages, each OS package scoped to the image's release."""
    os_release = None
    for path in OS_RELEASE:
        record = _follow(files, path)
        if record is not None and record.kind == "os-release":
            os_release = record.fields
            break
    release_files = {}
    for path in (DEBIAN_VERSION, ALPINE_RELEASE):
        record = _follow(files, path)
        if record is not None and record.kind == "release":
            release_files[path] = record.fields.get("text", "")
    release = release_of(os_release, release_files)
    scoped = release.ecosystem if release is not None else None
    notes = []
    packages: list[Package] = []
    for path in sorted(files):
        record = files[path]
        if record.kind != "packages":
            continue
        for package in record.packages:
            location = location_prefix + "/" + path
            if package.ecosystem in ("Debian", "Alpine"):
                if scoped is None or scoped.split(":", 1)[0] != package.ecosystem:
                    found = f"the image is {release}" if release is not None else "no os-release was found"
                    notes.append(f"{path}: {package.ecosystem} packages, but {found}: they are not matched")
                else:
                    package = replace(package, ecosystem=scoped)
            packages.append(replace(package, location=location))
    return Inventory(tuple(packages), release, "layers", tuple(dict.fromkeys(notes)))
