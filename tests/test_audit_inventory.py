"""Package inventories: each database format from ../shared/vulndata/inventory, and layers with whiteouts."""

from __future__ import annotations

import io
import tarfile
import tracemalloc
from collections.abc import Callable
from pathlib import Path

import pytest

from imagelock.audit.inventory import (
    Inventory,
    LayerContent,
    Release,
    merge,
    parse_apk,
    parse_dpkg,
    parse_os_release,
    release_of,
)
from imagelock.audit.layers import LayerCache, LayerError, cache_dir, scan_tar
from tests.support.layers import Layer, oversized, rewritten, tree
from tests.support.vulndata import needs_vulndata, vulndata

FLASK_METADATA = b"Metadata-Version: 2.1\nName: Flask\nVersion: 2.0.0\n"


def scan(*layers: Layer) -> Inventory:
    return merge(scan_tar(io.BytesIO(layer.blob())) for layer in layers)


def summary(inventory: Inventory) -> set[tuple[str, str, str, str]]:
    return {(p.name, p.version, p.osv_name, p.osv_version) for p in inventory.packages}


@needs_vulndata
def test_dpkg_status_maps_binaries_to_source_packages() -> None:
    packages = parse_dpkg(vulndata("inventory/debian12/var/lib/dpkg/status").read_text(), "status", require_status=True)
    assert {(p.name, p.version, p.osv_name, p.osv_version) for p in packages} == {
        ("accountsservice", "22.08.8-6", "accountsservice", "22.08.8-6"),
        ("acl", "2.3.1-3", "acl", "2.3.1-3"),
        ("adduser", "3.131", "adduser", "3.131"),
        ("admin-session", "2023.06.26.c543406313-00", "admin-session", "2023.06.26.c543406313-00"),
        ("attr", "1:2.5.1-4", "attr", "1:2.5.1-4"),
        ("libacl1", "2.3.1-3", "acl", "2.3.1-3"),
        ("util-linux-extra", "2.38.1-5+b1", "util-linux", "2.38.1-5"),
    }


@needs_vulndata
def test_dpkg_status_d_stanzas_with_binnmu_source_versions() -> None:
    path = vulndata("inventory/debian12/var/lib/dpkg/status.d/coreutils-relationships")
    packages = {p.name: p for p in parse_dpkg(path.read_text(), "status.d", require_status=False)}
    assert len(packages) == 9
    assert (packages["libselinux1"].version, packages["libselinux1"].osv_name) == ("3.4-1+b6", "libselinux")
    assert packages["libselinux1"].osv_version == "3.4-1"
    assert (packages["libc6"].osv_name, packages["libc6"].osv_version) == ("glibc", "2.36-9+deb12u1")
    assert (packages["gcc-12-base"].osv_name, packages["libgmp10"].osv_version) == ("gcc-12", "2:6.2.1+dfsg1-1.1")


def test_dpkg_skips_packages_not_installed() -> None:
    text = (
        "Package: gone\nStatus: deinstall ok config-files\nVersion: 1.0-1\n\n"
        "Package: half\nStatus: install ok half-installed\nVersion: 1.0-1\n\n"
        "Package: here\nStatus: install ok installed\nVersion: 2.0-1\nDescription: x\n two\n .\n three\n"
    )
    assert [p.name for p in parse_dpkg(text, "status", require_status=True)] == ["here"]
    # status.d files have no Status: present means installed; one that has a Status still obeys it
    assert [p.name for p in parse_dpkg(text, "status.d/x", require_status=False)] == ["here"]
    assert parse_dpkg("Package: x\nVersion: 1\n", "status", require_status=True) == []


def test_dpkg_reads_only_single_line_fields() -> None:
    text = "Package: zlib1g\n and-more\nVersion: 1:1.2.13.dfsg-1\nDescription: x\n" + " line\n" * 1000
    (package,) = parse_dpkg(text, "status.d/zlib", require_status=False)
    assert (package.name, package.version) == ("zlib1g", "1:1.2.13.dfsg-1")


@pytest.mark.parametrize(
    ("path", "database", "name"),
    [
        ("var/lib/dpkg/status", b"Package: zlib1g\nStatus: install ok installed\nVersion: 1:1.2.13.dfsg-1\n", "zlib1g"),
        ("lib/apk/db/installed", b"P:zlib\nV:1.2.13-r1\no:zlib\n", "zlib"),
    ],
    ids=["dpkg", "apk"],
)
def test_a_database_of_millions_of_empty_lines_is_read_in_little_memory(path: str, database: bytes, name: str) -> None:
    blob = Layer({path: b"\n" * (16 << 20) + database}).blob()  # 16 KiB of gzip
    tracemalloc.start()
    try:
        (record,) = scan_tar(io.BytesIO(blob)).files.values()
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert [package.name for package in record.packages] == [name]
    assert peak < 40 << 20, f"peak {peak >> 20} MiB reading a database of 16 MiB"  # its bytes and its text


@needs_vulndata
def test_apk_database_names_packages_by_origin() -> None:
    packages = parse_apk(vulndata("inventory/alpine318/lib/apk/db/installed").read_text(), "installed")
    assert len(packages) == 15
    by_name = {p.name: p for p in packages}
    assert (by_name["musl-utils"].version, by_name["musl-utils"].osv_name) == ("1.2.4-r0", "musl")
    assert by_name["libssl3"].osv_name == "openssl"
    assert by_name["ssl_client"].osv_name == "busybox"
    assert {p.name for p in packages if p.osv_name == "musl"} == {"musl", "musl-utils"}


@needs_vulndata
def test_os_release_files_and_their_traps() -> None:
    alpine = parse_os_release(vulndata("inventory/alpine318/etc/os-release").read_text())
    assert alpine["ID"] == "alpine"
    assert alpine["VERSION_ID"] == "3.18.1"
    assert not any(" " in key for key in alpine)  # the captured shell prompt is not a field
    assert release_of(alpine, {}) == Release("alpine", "3.18.1")
    assert Release("alpine", "3.18.1").ecosystem == "Alpine:v3.18"
    debian = parse_os_release(vulndata("inventory/debian12/etc/os-release").read_text())
    assert release_of(debian, {}) == Release("debian", "12")
    distroless = parse_os_release(vulndata("inventory/distroless/etc/os-release").read_text())
    assert "VERSION_ID" not in distroless
    debian_version = vulndata("inventory/distroless/etc/debian_version").read_text().strip()
    release = release_of(distroless, {"etc/debian_version": debian_version})
    assert release is not None
    assert release.ecosystem == "Debian:10"


@needs_vulndata
@pytest.mark.parametrize("compression", ["gzip", "zstd"])
def test_layers_of_each_inventory(compression: str) -> None:
    debian = scan(Layer(tree(vulndata("inventory/debian12")), compression=compression))
    assert debian.release == Release("debian", "12")
    assert len(debian.packages) == 16
    assert {p.ecosystem for p in debian.packages} == {"Debian:12"}
    assert ("libselinux1", "3.4-1+b6", "libselinux", "3.4-1") in summary(debian)
    distroless = scan(Layer(tree(vulndata("inventory/distroless")), compression=compression))
    assert summary(distroless) == {("libsqlite3-0", "3.34.1-3", "sqlite3", "3.34.1-3")}
    assert {p.ecosystem for p in distroless.packages} == {"Debian:10"}
    alpine = scan(Layer(tree(vulndata("inventory/alpine318")), compression=compression))
    assert len(alpine.packages) == 15
    assert {p.ecosystem for p in alpine.packages} == {"Alpine:v3.18"}
    node = scan(Layer({"app/" + k: v for k, v in tree(vulndata("inventory/node/ansi-html-0.0.7")).items()}))
    assert summary(node) == {("ansi-html", "0.0.7", "ansi-html", "0.0.7")}
    assert node.packages[0].location == "/app/node_modules/ansi-html/package.json"


def test_python_and_node_packages_anywhere_but_not_in_their_fixtures() -> None:
    inventory = scan(
        Layer(
            {
                "usr/lib/python3/site-packages/Flask-2.0.0.dist-info/METADATA": FLASK_METADATA,
                "usr/lib/python3/site-packages/Flask-2.0.0.dist-info/RECORD": b"",
                "srv/node_modules/@scope/tool/package.json": b'{"name": "@scope/tool", "version": "1.2.3"}',
                "srv/node_modules/tool/test/fixtures/package.json": b'{"name": "fixture", "version": "9.9.9"}',
                "srv/node_modules/tool/node_modules/dep/package.json": b'{"name": "dep", "version": "0.1.0"}',
                "srv/node_modules/broken/package.json": b"{not json",
                "srv/node_modules/deep/package.json": b"[" * 100_000 + b"]" * 100_000,
            }
        )
    )
    assert {(p.name, p.ecosystem, p.osv_name) for p in inventory.packages} == {
        ("Flask", "PyPI", "flask"),
        ("@scope/tool", "npm", "@scope/tool"),
        ("dep", "npm", "dep"),
    }


@needs_vulndata
def test_a_database_deleted_in_an_upper_layer_is_gone() -> None:
    base = Layer(tree(vulndata("inventory/alpine318")))
    assert len(scan(base).packages) == 15
    assert scan(base, Layer(whiteouts=["lib/apk/db/installed"])).packages == ()
    assert scan(base, Layer(whiteouts=["lib/apk"])).packages == ()  # the directory holding it
    assert scan(base, Layer(opaque=["lib/apk/db"])).packages == ()
    # a whiteout removes only from the layers below: the same layer may add the file again
    again = Layer({"lib/apk/db/installed": b"P:zlib\nV:1.2.13-r1\no:zlib\n"}, whiteouts=["lib/apk/db/installed"])
    assert summary(scan(base, again)) == {("zlib", "1.2.13-r1", "zlib", "1.2.13-r1")}
    # an upper file that says nothing still hides the one below it
    assert scan(base, Layer({"lib/apk/db/installed": b""})).packages == ()


def test_os_release_through_its_symlink_and_a_replaced_release() -> None:
    status = b"Package: zlib1g\nStatus: install ok installed\nSource: zlib\nVersion: 1:1.2.13.dfsg-1\n"
    base = Layer(
        {"usr/lib/os-release": b'ID=debian\nVERSION_ID="12"\n', "var/lib/dpkg/status": status},
        symlinks={"etc/os-release": "../usr/lib/os-release"},
    )
    inventory = scan(base)
    assert inventory.release == Release("debian", "12")
    assert {p.ecosystem for p in inventory.packages} == {"Debian:12"}
    upgraded = scan(base, Layer({"usr/lib/os-release": b"ID=debian\nVERSION_ID=13\n"}))
    assert {p.ecosystem for p in upgraded.packages} == {"Debian:13"}
    unknown = scan(Layer({"var/lib/dpkg/status": status}))
    assert {p.ecosystem for p in unknown.packages} == {"Debian"}  # no release: never matched
    assert unknown.notes


@pytest.mark.parametrize("compression", ["gzip", "zstd"])
def test_a_layer_that_is_not_a_tar_archive(compression: str) -> None:
    blob = Layer({"etc/os-release": b"ID=alpine\n" * 1000}, compression=compression).blob()
    with pytest.raises(LayerError, match="not a readable layer archive"):
        scan_tar(io.BytesIO(blob[:20] + b"garbage" * 100))


def test_a_layer_that_unpacks_past_the_bound_is_cut_off_there() -> None:
    bomb = io.BytesIO(oversized(tarfile.REGTYPE, 256, fill=b"\0").blob())  # 256 MiB of zeros in 270 KiB
    with pytest.raises(LayerError, match=r"^unpacks to more than 1 MiB$"):
        scan_tar(bomb, max_unpacked_bytes=1 << 20)
    assert bomb.tell() < len(bomb.getvalue()) // 16  # the rest is never unpacked


def test_a_member_longer_than_the_layer_ends_the_read() -> None:
    endless = rewritten(Layer({"big": b""}).tar(), 0, "size", b"\x80" + (2**80).to_bytes(11, "big"))
    with pytest.raises(LayerError, match=r"^ends inside a member$"):  # tarfile would skip on for ever
        scan_tar(io.BytesIO(endless))


OS_RELEASE = Layer({"etc/os-release": b"ID=alpine\n"}).tar()


def test_a_run_of_headers_in_front_of_one_member_is_refused() -> None:
    run = tarfile.TarInfo.create_pax_global_header({"comment": "x"}) * 400  # tarfile would recurse once for each
    with pytest.raises(LayerError, match=r"^more than 8 GNU or pax headers in front of one member$"):
        scan_tar(io.BytesIO(run + OS_RELEASE))
    global_header = tarfile.TarInfo.create_pax_global_header({"comment": "a git commit"})
    directory = "srv/" + "a" * 200  # a path this long takes a pax header of its own
    layer = Layer(whiteouts=[f"{directory}/.wh.old"]).tar()
    assert scan_tar(io.BytesIO(global_header + layer)).whiteouts == {f"{directory}/old"}


def test_global_pax_headers_are_bounded_together() -> None:
    halves = b"".join(
        tarfile.TarInfo.create_pax_global_header({f"key{index}": "v" * (600 << 10)}) for index in range(2)
    )
    with pytest.raises(LayerError, match=r"^pax global headers of more than 1 MiB together$"):
        scan_tar(io.BytesIO(halves + OS_RELEASE))


def old_gnu_sparse() -> bytes:
    member = tarfile.TarInfo("var/lib/dpkg/status")
    member.type = tarfile.GNUTYPE_SPARSE
    return member.tobuf(tarfile.GNU_FORMAT)


def pax_sparse() -> bytes:
    member = tarfile.TarInfo("var/lib/dpkg/status")
    member.size = tarfile.BLOCKSIZE
    member.pax_headers = {"GNU.sparse.major": "1", "GNU.sparse.minor": "0", "GNU.sparse.realsize": "10"}
    return member.tobuf(tarfile.PAX_FORMAT) + b"1\n0\n10\n".ljust(tarfile.BLOCKSIZE, b"\0")


@pytest.mark.parametrize("sparse", [old_gnu_sparse, pax_sparse])
def test_a_sparse_file_is_refused(sparse: Callable[[], bytes]) -> None:
    with pytest.raises(LayerError, match=r"^a sparse file"):
        scan_tar(io.BytesIO(sparse() + OS_RELEASE))


def test_a_layer_of_many_members_is_read_without_keeping_them() -> None:
    blob = Layer({f"srv/{index}": b"" for index in range(5000)}).blob()
    tracemalloc.start()
    try:
        scan_tar(io.BytesIO(blob))
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 1 << 20, f"peak {peak >> 10} KiB reading 5000 empty files"


def test_layer_cache_round_trip(tmp_path: Path) -> None:
    content = scan_tar(io.BytesIO(Layer({"lib/apk/db/installed": b"P:musl\nV:1.2.4-r0\no:musl\n"}).blob()))
    cache = LayerCache(tmp_path)
    digest = "sha256:" + "ab" * 32
    assert cache.get(digest) is None
    cache.put(digest, content)
    assert cache.get(digest) == LayerContent(content.files, content.whiteouts, content.opaque)
    (tmp_path / "layers-v1" / "sha256" / ("ab" * 32 + ".json")).write_text("{broken")
    assert cache.get(digest) is None
    assert LayerCache(None).get(digest) is None


def test_cache_directory() -> None:
    assert cache_dir({"IMAGELOCK_CACHE_DIR": "/x"}) == Path("/x")
    assert cache_dir({"XDG_CACHE_HOME": "/y"}) == Path("/y/imagelock")
    assert cache_dir({}) == Path.home() / ".cache" / "imagelock"
