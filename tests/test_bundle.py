"""``imagelock bundle`` / ``load`` / ``verify --bundle``: air-gapped delivery between two real registries,
read and written by Debian's skopeo too."""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
import tarfile
from pathlib import Path
from typing import Any

import httpx
import pytest

from imagelock.project import Project as Operations
from tests.conftest import Project
from tests.support.registry import RegistryServer
from tests.test_mirror import (  # the mirror's source registry and its helpers: a bundle is a mirror on disk
    BIG_LAYER,
    IMAGES,
    Source,
    images_toml,
    lock_against,
    locked,
    locked_project,
    same_pins,
    source,
    target,
)

__all__ = ["source", "target"]  # fixtures, used by name

ACCEPT = "application/vnd.oci.image.index.v1+json, application/vnd.oci.image.manifest.v1+json"


def skopeo(*arguments: str) -> subprocess.CompletedProcess[bytes]:
    if shutil.which("skopeo") is None:
        message = "Debian's skopeo is not installed (scripts/bootstrap.sh installs it as root)"
        if os.geteuid() == 0 or os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    result = subprocess.run(["skopeo", *arguments], capture_output=True, timeout=120, check=False)
    assert result.returncode == 0, result.stderr.decode()
    return result


def bundled(project: Project, out: Path, *names: str) -> dict[str, Any]:
    result = project.run("bundle", str(out), *names, "--json")
    assert result.exit_code == 0, result.stderr
    report: dict[str, Any] = json.loads(result.stdout)
    return report


def catalog(server: RegistryServer) -> list[str]:
    repositories: list[str] = httpx.get(f"{server.url}/v2/_catalog").json()["repositories"] or []
    return repositories


def served_digest(server: RegistryServer, path: str, reference: str) -> str | None:
    answer = httpx.head(f"{server.url}/v2/{path}/manifests/{reference}", headers={"Accept": ACCEPT})
    return answer.headers["docker-content-digest"] if answer.status_code == 200 else None


def test_a_bundle_directory_is_an_oci_layout_naming_each_image_with_the_lock_inside(
    tmp_path: Path, source: Source
) -> None:
    project = locked_project(tmp_path, source)
    out = tmp_path / "bundle"

    report = bundled(project, out)

    assert json.loads((out / "oci-layout").read_text()) == {"imageLayoutVersion": "1.0.0"}
    assert (out / "images.lock").read_text() == project.lock.read_text()
    index = json.loads((out / "index.json").read_text())
    named = {
        m["annotations"]["org.opencontainers.image.ref.name"]: m
        for m in index["manifests"]
        if "org.opencontainers.image.ref.name" in m["annotations"]
    }
    assert set(named) == set(IMAGES)
    pins = locked(project)
    for name, (path, tag) in IMAGES.items():
        assert named[name]["digest"] == pins[name]["digest"]
        assert named[name]["annotations"]["io.containerd.image.name"] == f"{source.host}/{path}:{tag}"
    signatures = {m["annotations"]["io.containerd.image.name"] for m in index["manifests"]}
    web = pins["web"]["digest"]
    assert isinstance(web, str)
    assert f"{source.host}/library/nginx:{web.replace(':', '-')}.sig" in signatures
    by_name = {image["name"]: image for image in report["images"]}
    assert by_name["web"]["signatures"] == 2
    assert by_name["app"]["signatures"] == 1
    for blob in (out / "blobs" / "sha256").iterdir():  # every blob is stored once, under its own digest
        assert hashlib.sha256(blob.read_bytes()).hexdigest() == blob.name


def test_skopeo_inspect_reads_the_locked_digests_bytes_from_the_bundle(tmp_path: Path, source: Source) -> None:
    project = locked_project(tmp_path, source)
    out = tmp_path / "bundle"
    bundled(project, out)

    for name in ("web", "app"):  # OCI indexes (skopeo looks up only OCI media types by name)
        raw = skopeo("inspect", "--raw", f"oci:{out}:{name}").stdout

        assert "sha256:" + hashlib.sha256(raw).hexdigest() == locked(project)[name]["digest"]


@pytest.mark.parametrize("name", ["bundle", "bundle.tar"])
def test_a_second_bundle_run_adds_only_what_is_missing(tmp_path: Path, source: Source, name: str) -> None:
    project = locked_project(tmp_path, source)
    out = tmp_path / name
    first = bundled(project, out, "web")
    assert first["blobs_written"]

    second = bundled(project, out, "web", "big")

    assert second["blobs_present"] == first["blobs_written"]  # everything of web's is kept, not fetched again
    assert second["bytes_written"] >= len(BIG_LAYER)
    third = bundled(project, out, "web", "big")
    assert third["blobs_written"] == third["bytes_written"] == 0


class ByteCounter:
    """A TransferProgress that adds up what it is told."""

    def __init__(self) -> None:
        self.total = self.done = 0

    def planned(self, size: int) -> None:
        self.total += size

    def transferred(self, size: int) -> None:
        self.done += size


def test_bundle_progress_is_reported_in_bytes(tmp_path: Path, source: Source) -> None:
    project = locked_project(tmp_path, source)
    counter = ByteCounter()

    result = Operations.at(project.config).bundle(tmp_path / "bundle.tar", ["big"], progress=counter)

    assert counter.total == counter.done > len(BIG_LAYER)
    assert result.bytes_written > counter.done  # plus the manifests, fetched whole beforehand


@pytest.mark.parametrize("form", ["directory", "tar"])
def test_bundle_then_load_into_another_registry_gives_the_same_digests_and_signatures_verify(
    tmp_path: Path, source: Source, target: RegistryServer, form: str
) -> None:
    project = locked_project(tmp_path, source)
    before = locked(project)
    out = tmp_path / ("bundle.tar" if form == "tar" else "bundle")
    bundled(project, out)
    far_side = Project(tmp_path / "far", project.runner)  # nothing there but the bundle
    far_side.directory.mkdir()

    result = far_side.run("load", str(out), f"{target.host}/mirror", "--json")

    assert result.exit_code == 0, result.stderr
    report = {image["name"]: image for image in json.loads(result.stdout)["images"]}
    assert report["web"]["target"] == f"{target.host}/mirror/library/nginx:1.26.2@{before['web']['digest']}"
    assert report["web"]["signatures"] == 2
    assert report["app"]["signatures"] == 1
    after = lock_against(tmp_path, source, f"{target.host}/mirror")
    assert set(after) == set(before)
    for name in before:
        assert same_pins(before[name], after[name]), name
    assert after["web"]["verified"]["method"] == "cosign"
    assert after["app"]["verified"]["method"] == "cosign"


def test_a_second_load_copies_nothing_and_relocate_then_works_as_after_mirror(
    tmp_path: Path, source: Source, target: RegistryServer
) -> None:
    project = locked_project(tmp_path, source)
    out = tmp_path / "bundle.tar"
    bundled(project, out)
    assert project.run("load", str(out), f"{target.host}/mirror").exit_code == 0

    again = project.run("load", str(out), f"{target.host}/mirror")

    assert again.exit_code == 0, again.stderr
    assert again.stdout.count("up to date") == len(IMAGES)
    assert "0 copied, 0 B uploaded" in again.stderr
    relocated = project.run("ref", "web", "--relocate", f"{source.server.host}={target.host}/mirror")
    assert relocated.exit_code == 0, relocated.stderr
    reference, digest = relocated.stdout.strip().split("@")
    assert reference == f"{target.host}/mirror/library/nginx:1.26.2"
    assert served_digest(target, "mirror/library/nginx", digest) == digest


def test_skopeo_copies_an_image_out_of_a_bundle_tar_with_its_digest(
    tmp_path: Path, source: Source, target: RegistryServer
) -> None:
    project = locked_project(tmp_path, source)
    out = tmp_path / "bundle.tar"
    bundled(project, out, "web")
    with tarfile.open(out) as archive:  # a plain tar any tool reads
        assert {"oci-layout", "index.json", "images.lock"} <= set(archive.getnames())

    # --preserve-digests: skopeo then fails rather than rewrite a manifest (it re-encodes these test layers,
    # whose bytes are not the gzip their media type says)
    archive_name, destination = f"oci-archive:{out}:web", f"docker://{target.host}/web:1.26.2"
    skopeo("copy", "--all", "--preserve-digests", "--dest-tls-verify=false", archive_name, destination)

    assert served_digest(target, "web", "1.26.2") == locked(project)["web"]["digest"]


def test_load_reads_a_layout_skopeo_wrote(tmp_path: Path, source: Source, target: RegistryServer) -> None:
    project = locked_project(tmp_path, source)
    layout = tmp_path / "skopeo-layout"
    source_name = f"docker://{source.host}/library/nginx:1.26.2"
    skopeo("copy", "--all", "--preserve-digests", "--src-tls-verify=false", source_name, f"oci:{layout}:web")

    result = project.run("load", str(layout), target.host, "web")  # checked against this project's lock

    assert result.exit_code == 0, result.stderr
    assert served_digest(target, "library/nginx", "1.26.2") == locked(project)["web"]["digest"]


def test_load_of_an_image_the_skopeo_layout_lacks_is_exit_3_naming_it(
    tmp_path: Path, source: Source, target: RegistryServer
) -> None:
    project = locked_project(tmp_path, source)
    layout = tmp_path / "skopeo-layout"
    source_name = f"docker://{source.host}/team/app:2.0.0"
    skopeo("copy", "--all", "--preserve-digests", "--src-tls-verify=false", source_name, f"oci:{layout}:web")

    result = project.run("load", str(layout), target.host, "web")

    assert result.exit_code == 3
    assert "[images.web]" in result.stderr
    assert "in the bundle" in result.stderr
    assert catalog(target) == []


def test_bundling_an_image_that_is_not_in_the_lock_is_exit_2(tmp_path: Path, source: Source) -> None:
    project = locked_project(tmp_path, source)

    result = project.run("bundle", str(tmp_path / "bundle"), "nope")

    assert result.exit_code == 2
    assert "no locked image named 'nope'" in result.stderr
    assert not (tmp_path / "bundle").exists()


def test_verify_bundle_checks_every_entry_offline_and_verifies_signatures(
    tmp_path: Path, source: Source, monkeypatch: pytest.MonkeyPatch
) -> None:
    project = locked_project(tmp_path, source)
    out = tmp_path / "bundle.tar"
    bundled(project, out)

    async def no_network(*arguments: object, **options: object) -> None:
        raise AssertionError("verify --bundle sent a request")

    monkeypatch.setattr("imagelock.registry.transport.Transport.request", no_network)
    result = project.run("verify", "--bundle", str(out), "--json")

    assert result.exit_code == 0, result.stdout + result.stderr
    report = json.loads(result.stdout)
    assert report["ok"] is True
    assert {image["name"] for image in report["images"]} == set(IMAGES)


def test_verify_bundle_is_exit_1_when_the_bundle_lacks_an_entry_or_holds_one_the_lock_does_not(
    tmp_path: Path, source: Source
) -> None:
    project = locked_project(tmp_path, source)
    only_web = tmp_path / "web-only"
    bundled(project, only_web, "web")

    lacking = project.run("verify", "--bundle", str(only_web))

    assert lacking.exit_code == 1
    assert "not in the bundle" in lacking.stdout
    assert f"{len(IMAGES) - 1} of {len(IMAGES)} image(s) failed verification" in lacking.stderr
    everything = tmp_path / "everything"
    bundled(project, everything)
    project.write(images_toml(source.host, source.key_path, only=("web",)))
    assert project.run("lock").exit_code == 0

    extra = project.run("verify", "--bundle", str(everything))

    assert extra.exit_code == 1
    assert "in the bundle, not in the lock" in extra.stdout


def test_verify_bundle_is_exit_1_when_a_signature_the_policy_requires_is_not_in_the_bundle(
    tmp_path: Path, source: Source
) -> None:
    project = locked_project(tmp_path, source)
    out = tmp_path / "bundle"
    bundled(project, out)
    index_path = out / "index.json"
    index = json.loads(index_path.read_text())
    index["manifests"] = [
        m for m in index["manifests"] if not m["annotations"]["io.containerd.image.name"].endswith(".sig")
    ]
    index_path.write_text(json.dumps(index))

    result = project.run("verify", "--bundle", str(out))

    assert result.exit_code == 1
    assert "signature:" in result.stdout
    assert "1 of" in result.stderr  # web's; app's v3 bundle is a referrer, still there


def flip_a_byte(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))


def test_a_tampered_bundle_is_refused_by_verify_and_load_naming_the_blob_and_nothing_is_pushed(
    tmp_path: Path, source: Source, target: RegistryServer
) -> None:
    project = locked_project(tmp_path, source)
    out = tmp_path / "bundle"
    bundled(project, out)
    layer = "sha256:" + hashlib.sha256(BIG_LAYER).hexdigest()
    flip_a_byte(out / "blobs" / "sha256" / layer.removeprefix("sha256:"))

    verified = project.run("verify", "--bundle", str(out))
    loaded = project.run("load", str(out), target.host)

    for result in (verified, loaded):
        assert result.exit_code == 3, result.stderr
        assert f"blob {layer} does not match its digest" in result.stderr
        assert len(result.stderr.strip().splitlines()) == 1
    assert catalog(target) == []


def test_a_truncated_bundle_tar_is_refused_naming_the_blob_and_nothing_is_pushed(
    tmp_path: Path, source: Source, target: RegistryServer
) -> None:
    project = locked_project(tmp_path, source)
    out = tmp_path / "bundle.tar"
    bundled(project, out)
    with out.open("r+b") as handle:
        handle.truncate(out.stat().st_size * 2 // 3)

    verified = project.run("verify", "--bundle", str(out))
    loaded = project.run("load", str(out), target.host)

    for result in (verified, loaded):
        assert result.exit_code == 3, result.stderr
        assert re.search(r"blob sha256:[0-9a-f]{64} is (missing|truncated|\d+ bytes)", result.stderr), result.stderr
    assert catalog(target) == []


def test_bundling_into_a_directory_that_is_not_a_layout_is_exit_2_and_leaves_it_alone(
    tmp_path: Path, source: Source
) -> None:
    project = locked_project(tmp_path, source)
    elsewhere = tmp_path / "documents"
    elsewhere.mkdir()
    (elsewhere / "notes.txt").write_text("mine")

    result = project.run("bundle", str(elsewhere))

    assert result.exit_code == 2
    assert "not an OCI layout" in result.stderr
    assert [path.name for path in elsewhere.iterdir()] == ["notes.txt"]


def test_a_full_disk_while_writing_a_tar_is_one_line_exit_2_and_leaves_no_bundle(
    tmp_path: Path, source: Source
) -> None:
    project = locked_project(tmp_path, source)
    out = tmp_path / "bundle.tar"
    (tmp_path / "bundle.tar.partial").symlink_to("/dev/full")  # where the tar is streamed before its rename

    result = project.run("bundle", str(out), "web")

    assert result.exit_code == 2
    assert result.stderr == f"error: {out}: cannot write: No space left on device\n"
    assert not out.exists()


def test_bundling_a_stale_lock_is_exit_1_and_writes_nothing(tmp_path: Path, source: Source) -> None:
    project = locked_project(tmp_path, source)
    project.write(project.config.read_text().replace('tag = "1.26.2"', 'tag = "1.27.0"'))

    result = project.run("bundle", str(tmp_path / "bundle"))

    assert result.exit_code == 1
    assert "is stale" in result.stderr
    assert not (tmp_path / "bundle").exists()
