"""Image layers built in memory, the way a build tool writes them: tar members, gzip or zstd, whiteouts."""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import tarfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from tests.support.registry import OCI_CONFIG, OCI_INDEX, OCI_MANIFEST, PushedImage, Seeder

OCI_LAYER_GZIP = "application/vnd.oci.image.layer.v1.tar+gzip"
OCI_LAYER_ZSTD = "application/vnd.oci.image.layer.v1.tar+zstd"


@dataclass(frozen=True)
class Layer:
    """One layer: files (path → bytes), symlinks (path → target), whiteouts and opaque directories."""

    files: Mapping[str, bytes] = field(default_factory=dict)
    symlinks: Mapping[str, str] = field(default_factory=dict)
    whiteouts: Sequence[str] = ()
    opaque: Sequence[str] = ()
    compression: str = "gzip"

    def tar(self) -> bytes:
        buffer = io.BytesIO()
        with tarfile.open(fileobj=buffer, mode="w", format=tarfile.PAX_FORMAT) as archive:
            directories: set[str] = set()

            def add_directories(path: str) -> None:
                parts = path.split("/")[:-1]
                for index in range(1, len(parts) + 1):
                    directory = "/".join(parts[:index])
                    if directory not in directories:
                        directories.add(directory)
                        info = tarfile.TarInfo(directory)
                        info.type = tarfile.DIRTYPE
                        info.mode = 0o755
                        archive.addfile(info)

            for path, data in sorted(self.files.items()):
                add_directories(path)
                info = tarfile.TarInfo(path)
                info.size = len(data)
                info.mode = 0o644
                archive.addfile(info, io.BytesIO(data))
            for path, target in sorted(self.symlinks.items()):
                add_directories(path)
                info = tarfile.TarInfo(path)
                info.type = tarfile.SYMTYPE
                info.linkname = target
                archive.addfile(info)
            markers = [*self.whiteouts] + [f"{directory}/.wh..wh..opq" for directory in self.opaque]
            for path in markers:
                directory, _, name = path.rpartition("/")
                marker = path if name.startswith(".wh.") else f"{directory}/.wh.{name}".lstrip("/")
                add_directories(marker)
                archive.addfile(tarfile.TarInfo(marker))
        return buffer.getvalue()

    def blob(self) -> bytes:
        if self.compression == "zstd":
            import zstandard

            return zstandard.ZstdCompressor().compress(self.tar())
        return gzip.compress(self.tar(), mtime=0)

    @property
    def media_type(self) -> str:
        return OCI_LAYER_ZSTD if self.compression == "zstd" else OCI_LAYER_GZIP

    @property
    def diff_id(self) -> str:
        return "sha256:" + hashlib.sha256(self.tar()).hexdigest()


@dataclass(frozen=True)
class CraftedLayer:
    """A gzip layer given byte for byte, the way a hostile publisher would write it."""

    data: bytes
    media_type: str = OCI_LAYER_GZIP

    def blob(self) -> bytes:
        return self.data

    @property
    def digest(self) -> str:
        return "sha256:" + hashlib.sha256(self.data).hexdigest()

    @property
    def diff_id(self) -> str:
        return self.digest  # stands in for the unpacked tar's digest, which imagelock never reads


def oversized(kind: bytes, mebibytes: int, fill: bytes = b"a") -> CraftedLayer:
    """A layer whose first tar member, of type ``kind``, says it is ``mebibytes`` MiB and is: a GNU long name
    (``L``) or link (``K``), a pax header (``x``), or a plain file (``0``). One gzip member of a MiB of ``fill``,
    repeated, keeps the layer near 1 KiB per MiB, like the 509 KiB layer that made an audit hold 1.6 GiB."""
    header = tarfile.TarInfo("././@LongLink" if kind in (tarfile.GNUTYPE_LONGNAME, tarfile.GNUTYPE_LONGLINK) else "big")
    header.type, header.size = kind, mebibytes << 20
    mebibyte = gzip.compress(fill * (1 << 20), mtime=0)
    after = Layer({"etc/os-release": b"ID=alpine\nVERSION_ID=3.18.1\n"}).tar()
    start, end = (gzip.compress(part, mtime=0) for part in (header.tobuf(tarfile.GNU_FORMAT), after))
    return CraftedLayer(start + mebibyte * mebibytes + end)


# The fields of a tar header: (offset, length).
TAR_FIELDS = {"name": (0, 100), "size": (124, 12), "type": (156, 1), "linkname": (157, 100), "magic": (257, 8)}


def rewritten(tar: bytes, header: int, field: str, value: bytes) -> bytes:
    """``tar`` with one field of the header at offset ``header`` set to ``value``, its checksum made right again."""
    offset, length = TAR_FIELDS[field]
    block = bytearray(tar[header : header + tarfile.BLOCKSIZE])
    block[offset : offset + length] = value[:length].ljust(length, b"\0")
    block[148:156] = b" " * 8
    block[148:156] = b"%06o\0 " % sum(block)
    return tar[:header] + bytes(block) + tar[header + tarfile.BLOCKSIZE :]


def tree(root: Path) -> dict[str, bytes]:
    """Every file under ``root``, by its path relative to it (a constructed root filesystem)."""
    return {path.relative_to(root).as_posix(): path.read_bytes() for path in sorted(root.rglob("*")) if path.is_file()}


def push_layered(
    seeder: Seeder,
    repository: str,
    tag: str,
    layers: Sequence[Layer | CraftedLayer],
    *,
    platform: str = "linux/amd64",
    index: bool = False,
    attestation: bytes | None = None,
) -> PushedImage:
    """Push an image of these layers; as an index (optionally with a BuildKit SBOM attestation) or alone."""
    os_name, architecture = platform.split("/")[:2]
    descriptors = []
    diff_ids = []
    for layer in layers:
        blob = layer.blob()
        diff_ids.append(layer.diff_id)
        digest = seeder.push_blob(repository, blob)
        descriptors.append({"mediaType": layer.media_type, "digest": digest, "size": len(blob)})
    config = json.dumps(
        {"architecture": architecture, "os": os_name, "rootfs": {"type": "layers", "diff_ids": diff_ids}},
        sort_keys=True,
    ).encode()
    config_digest = seeder.push_blob(repository, config)
    manifest = json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "config": {"mediaType": OCI_CONFIG, "digest": config_digest, "size": len(config)},
            "layers": descriptors,
        }
    ).encode()
    manifest_digest = "sha256:" + hashlib.sha256(manifest).hexdigest()
    if not index:
        seeder.push_manifest(repository, tag, manifest, OCI_MANIFEST)
        return PushedImage(repository, tag, manifest_digest, OCI_MANIFEST, {platform: manifest_digest})
    seeder.push_manifest(repository, manifest_digest, manifest, OCI_MANIFEST)
    children: list[dict[str, object]] = [
        {
            "mediaType": OCI_MANIFEST,
            "digest": manifest_digest,
            "size": len(manifest),
            "platform": {"architecture": architecture, "os": os_name},
        }
    ]
    if attestation is not None:
        children.append(attestation_manifest(seeder, repository, manifest_digest, attestation))
    body = json.dumps({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": children}).encode()
    digest = seeder.push_manifest(repository, tag, body, OCI_INDEX)
    return PushedImage(repository, tag, digest, OCI_INDEX, {platform: manifest_digest})


def attestation_manifest(
    seeder: Seeder, repository: str, subject: str, statement: bytes, predicate_type: str = "https://spdx.dev/Document"
) -> dict[str, object]:
    """BuildKit's attestation manifest for ``subject``: one in-toto layer holding a statement (an SPDX SBOM)."""
    layer = seeder.push_blob(repository, statement)
    config = seeder.push_blob(repository, b"{}")
    manifest = json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "config": {"mediaType": OCI_CONFIG, "digest": config, "size": 2},
            "layers": [
                {
                    "mediaType": "application/vnd.in-toto+json",
                    "digest": layer,
                    "size": len(statement),
                    "annotations": {"in-toto.io/predicate-type": predicate_type},
                }
            ],
        }
    ).encode()
    digest = seeder.push_manifest(repository, "sha256:" + hashlib.sha256(manifest).hexdigest(), manifest, OCI_MANIFEST)
    return {
        "mediaType": OCI_MANIFEST,
        "digest": digest,
        "size": len(manifest),
        "platform": {"architecture": "unknown", "os": "unknown"},
        "annotations": {
            "vnd.docker.reference.digest": subject,
            "vnd.docker.reference.type": "attestation-manifest",
        },
    }
