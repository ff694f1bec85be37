"""Hostile OCI layouts: index.json and the lock inside a bundle are unverified input (only the blobs they
name are checked against digests). Mutated, they may make reading the bundle fail only with the
project's own errors (exit 2 or 3), never a traceback."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import tempfile
from pathlib import Path

from hypothesis import given, settings

from imagelock.bundle import BundleReader
from imagelock.errors import ImagelockError
from imagelock.reference import parse_repository
from tests.support.mutations import mutated_json

HOSTILE = settings(max_examples=100, deadline=None)
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
REPOSITORY = parse_repository("registry.example.com/team/app")


def blob(root: Path, body: bytes) -> dict[str, object]:
    digest = hashlib.sha256(body).hexdigest()
    (root / "blobs" / "sha256").mkdir(parents=True, exist_ok=True)
    (root / "blobs" / "sha256" / digest).write_bytes(body)
    return {"digest": f"sha256:{digest}", "size": len(body)}


def seed_layout(root: Path) -> bytes:
    """A layout with one image and a referrer of it; its index.json."""
    config = {
        "mediaType": "application/vnd.oci.image.config.v1+json",
        **blob(root, b'{"os":"linux","architecture":"amd64"}'),
    }
    layer = {"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", **blob(root, b"layer")}
    image = {
        "mediaType": OCI_MANIFEST,
        **blob(
            root,
            json.dumps({"schemaVersion": 2, "mediaType": OCI_MANIFEST, "config": config, "layers": [layer]}).encode(),
        ),
    }
    signature = {
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "artifactType": "application/example",
        "config": config,
        "layers": [],
        "subject": image,
    }
    referrer = {"mediaType": OCI_MANIFEST, **blob(root, json.dumps(signature).encode())}
    (root / "oci-layout").write_text('{"imageLayoutVersion":"1.0.0"}')
    index = {
        "schemaVersion": 2,
        "manifests": [
            {
                **image,
                "annotations": {
                    "org.opencontainers.image.ref.name": "web",
                    "io.containerd.image.name": f"{REPOSITORY}:1.0",
                },
            },
            {
                **referrer,
                "artifactType": "application/example",
                "annotations": {"io.containerd.image.name": f"{REPOSITORY}@{referrer['digest']}"},
            },
        ],
    }
    return json.dumps(index).encode()


def read_everything(root: Path) -> None:
    async def main() -> None:
        reader = BundleReader(root)
        try:
            await reader.check_integrity()
            manifest = await reader.get_manifest(REPOSITORY, "1.0")
            await reader.platforms(REPOSITORY, manifest)
            await reader.referrers(REPOSITORY, manifest.digest)
        finally:
            reader.close()

    asyncio.run(main())


with tempfile.TemporaryDirectory() as _directory:
    SEED = seed_layout(Path(_directory))


def test_the_seed_layout_reads() -> None:
    with tempfile.TemporaryDirectory() as directory:
        root = Path(directory)
        (root / "index.json").write_bytes(seed_layout(root))
        read_everything(root)


@HOSTILE
@given(mutated_json(SEED))
def test_a_hostile_index_json_raises_only_our_errors(index: bytes) -> None:
    with tempfile.TemporaryDirectory() as directory:
        root = Path(directory)
        seed_layout(root)
        (root / "index.json").write_bytes(index)
        with contextlib.suppress(ImagelockError):
            read_everything(root)
