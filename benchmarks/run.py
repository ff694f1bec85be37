"""imagelock's benchmark: one command, one table (docs/benchmarks.md explains every row and column).

A real registry (Debian's docker-registry) seeded with N repositories of T tags each, every tag a
multi-platform index, behind a loopback proxy that adds a fixed one-way latency to every request
and every answer and counts requests. Each scenario runs several times; the table gives the
median, the spread, requests per image and peak memory, and checks the targets of issue #8 (and
issue #16's memory bound on an audit of a hostile layer).

    .venv/bin/python benchmarks/run.py                      # the full benchmark (N=200, T=40, RTT 20 ms)
    .venv/bin/python benchmarks/run.py --quick              # a smoke run in a few seconds
    .venv/bin/python benchmarks/run.py --scenarios cold,unchanged --images 50 --runs 3 --markdown
"""

from __future__ import annotations

import argparse
import asyncio
import datetime
import hashlib
import json
import math
import os
import platform
import re
import shutil
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from imagelock.registry.transport import DEFAULT_CONCURRENCY  # noqa: E402
from tests.support.layers import oversized, push_layered  # noqa: E402
from tests.support.proxy import Proxy  # noqa: E402
from tests.support.registry import OCI_CONFIG, OCI_INDEX, OCI_LAYER, OCI_MANIFEST, RegistryServer  # noqa: E402
from tests.support.registry import Seeder as ApiSeeder  # noqa: E402

SCENARIOS = ("cold", "min-age", "reference", "unchanged", "update", "verify", "skopeo", "scaling", "bomb", "noop")
SKOPEO = "/usr/bin/skopeo"
TIME = "/usr/bin/time"
REFERENCE = Path(__file__).resolve().parent / "reference.py"
STARTUP_RUNS = 10
SKOPEO_PARALLEL = 8
MB = 1024 * 1024

# Targets of issue #8.
FLOOR_RATIO_TARGET = 2.0
SKOPEO_SEQUENTIAL_TARGET = 20.0
SKOPEO_PARALLEL_TARGET = 3.0
UNCHANGED_SECONDS_TARGET = 0.3  # for 1,000 images, start-up included
REQUESTS_PER_IMAGE_TARGET = 3.0
MANY_TAGS_MEMORY_TARGET = 150.0  # MB
BOMB_MEMORY_TARGET = 64.0  # MB, issue #16: an audit refusing a layer whose tar header claims (and has) BOMB_MIB
BOMB_MIB = 512

# Targets of issue #20.
NOOP_IMAGES = 1000
NOOP_RUNS = 10
NOOP_SECONDS_TARGET = 0.060  # check and lock, nothing changed, 1,000 images: the minimum of NOOP_RUNS
NOOP_PYTHON_RATIO_TARGET = 3.0  # ... and within this many times `python -c pass`
CPU_PER_REQUEST_TARGET = 0.8  # ms, a cold lock of 200 images
REFERENCE_RATIO_TARGET = 1.5  # a cold lock's wall time / the reference client's
SKOPEO_PARALLEL_TARGET_20 = 6.0
LINEAR_CPU_TOLERANCE = 1.2  # CPU per request at 1,000 images at most this many times that at 200
LARGE_MEMORY_TARGET = 80.0  # MB, a cold lock of 1,000 images


# -- seeding ---------------------------------------------------------------------------------------


class Seeder:
    """The benchmark's images: two platform manifests with their BuildKit-style attestations,
    shared by every tag; each tag is a multi-platform index of them. Blobs pushed to a second
    repository are mounted from the first, not uploaded again."""

    def __init__(self, url: str, concurrency: int = 16) -> None:
        self._client = httpx.AsyncClient(
            base_url=url, timeout=120, limits=httpx.Limits(max_connections=concurrency, max_keepalive_connections=16)
        )
        self._slots = asyncio.Semaphore(concurrency)
        self._source: str | None = None
        self._blobs: list[tuple[str, bytes]] = []
        self._manifests: list[bytes] = []
        self.children: list[dict[str, object]] = []  # the descriptors every index lists
        for architecture in ("amd64", "arm64"):
            layer = f"benchmark layer for linux/{architecture}\n".encode() * 64
            config = json.dumps(
                {"architecture": architecture, "os": "linux", "rootfs": {"type": "layers", "diff_ids": [_sha(layer)]}},
                sort_keys=True,
            ).encode()
            manifest = self._manifest(OCI_CONFIG, config, [(OCI_LAYER, layer)])
            self.children.append(
                {
                    "mediaType": OCI_MANIFEST,
                    "digest": _sha(manifest),
                    "size": len(manifest),
                    "platform": {"architecture": architecture, "os": "linux"},
                }
            )
        for child in list(self.children):  # BuildKit-style attestations, which imagelock must skip
            statement = json.dumps({"_type": "https://in-toto.io/Statement/v0.1", "subject": child["digest"]}).encode()
            manifest = self._manifest(OCI_CONFIG, b"{}", [("application/vnd.in-toto+json", statement)])
            self.children.append(
                {
                    "mediaType": OCI_MANIFEST,
                    "digest": _sha(manifest),
                    "size": len(manifest),
                    "platform": {"architecture": "unknown", "os": "unknown"},
                    "annotations": {
                        "vnd.docker.reference.digest": child["digest"],
                        "vnd.docker.reference.type": "attestation-manifest",
                    },
                }
            )

    def _manifest(self, config_type: str, config: bytes, layers: list[tuple[str, bytes]]) -> bytes:
        for blob in (config, *(data for _, data in layers)):
            if all(digest != _sha(blob) for digest, _ in self._blobs):
                self._blobs.append((_sha(blob), blob))
        body = json.dumps(
            {
                "schemaVersion": 2,
                "mediaType": OCI_MANIFEST,
                "config": {"mediaType": config_type, "digest": _sha(config), "size": len(config)},
                "layers": [{"mediaType": kind, "digest": _sha(data), "size": len(data)} for kind, data in layers],
            }
        ).encode()
        self._manifests.append(body)
        return body

    async def close(self) -> None:
        await self._client.aclose()

    async def _call(self, method: str, url: str | httpx.URL, **options: object) -> httpx.Response:
        async with self._slots:
            response = await self._client.request(method, url, **options)  # type: ignore[arg-type]
        if response.status_code >= 400:
            raise RuntimeError(f"seeding: {method} {url}: HTTP {response.status_code}: {response.text[:300]}")
        return response

    async def _blob(self, repository: str, digest: str, data: bytes) -> None:
        if self._source is not None:
            mounted = await self._call(
                "POST", f"/v2/{repository}/blobs/uploads/", params={"mount": digest, "from": self._source}
            )
            if mounted.status_code == 201:
                return
        else:
            mounted = await self._call("POST", f"/v2/{repository}/blobs/uploads/")
        location = httpx.URL(mounted.headers["location"]).copy_merge_params({"digest": digest})
        await self._call("PUT", location, content=data, headers={"Content-Type": "application/octet-stream"})

    async def base(self, repository: str) -> None:
        """Blobs and platform manifests in one repository, through the registry's API."""
        await asyncio.gather(*(self._blob(repository, digest, data) for digest, data in self._blobs))
        await asyncio.gather(
            *(
                self._call(
                    "PUT",
                    f"/v2/{repository}/manifests/{_sha(body)}",
                    content=body,
                    headers={"Content-Type": OCI_MANIFEST},
                )
                for body in self._manifests
            )
        )
        self._source = self._source or repository

    def index(self, repository: str, tag: str) -> bytes:
        """The multi-platform index a tag names; its annotation makes each digest distinct, and dates it
        (``org.opencontainers.image.created``, as BuildKit writes it) for min-age."""
        return json.dumps(
            {
                "schemaVersion": 2,
                "mediaType": OCI_INDEX,
                "manifests": self.children,
                "annotations": {
                    "org.opencontainers.image.ref.name": f"{repository}:{tag}",
                    "org.opencontainers.image.created": "2024-01-01T00:00:00Z",
                },
            }
        ).encode()

    async def tags(self, pairs: Sequence[tuple[str, str]]) -> None:
        """Push one index per (repository, tag) through the API."""
        await asyncio.gather(
            *(
                self._call(
                    "PUT",
                    f"/v2/{repository}/manifests/{tag}",
                    content=self.index(repository, tag),
                    headers={"Content-Type": OCI_INDEX},
                )
                for repository, tag in pairs
            )
        )

    def write_storage(self, storage: Path, repository: str, tags: Sequence[str]) -> None:
        """What pushing the base and every tag would leave in the registry's filesystem storage
        (distribution's layout: blob data by digest, per-repository links), written directly:
        pushing 40,000 indexes through the API takes minutes on a small machine."""
        v2 = storage / "docker" / "registry" / "v2"
        home = v2 / "repositories" / repository

        def link(path: Path, digest: str) -> None:
            path.mkdir(parents=True, exist_ok=True)
            (path / "link").write_text(digest)

        for digest, _ in self._blobs:
            link(home / "_layers" / "sha256" / digest.removeprefix("sha256:"), digest)
        for body in self._manifests:
            digest = _sha(body)
            link(home / "_manifests" / "revisions" / "sha256" / digest.removeprefix("sha256:"), digest)
        for tag in tags:
            body = self.index(repository, tag)
            digest = _sha(body)
            hexdigest = digest.removeprefix("sha256:")
            blob = v2 / "blobs" / "sha256" / hexdigest[:2] / hexdigest
            blob.mkdir(parents=True, exist_ok=True)
            (blob / "data").write_bytes(body)
            link(home / "_manifests" / "revisions" / "sha256" / hexdigest, digest)
            link(home / "_manifests" / "tags" / tag / "current", digest)
            link(home / "_manifests" / "tags" / tag / "index" / "sha256" / hexdigest, digest)


def _sha(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def seed(server: RegistryServer, repositories: Sequence[tuple[str, Sequence[str]]]) -> None:
    """Every (repository, its tags): the first through the registry's API (which checks the images
    are valid), the rest written into its storage; then a look through the API that they are served."""
    (first, first_tags), *rest = repositories

    async def push() -> None:
        seeder = Seeder(server.url)
        try:
            await seeder.base(first)
            await seeder.tags([(first, tag) for tag in first_tags])
        finally:
            await seeder.close()

    asyncio.run(push())
    seeder = Seeder(server.url)
    for repository, tags in rest:
        seeder.write_storage(server.workdir / "storage", repository, tags)
    for repository, tags in (repositories[0], repositories[-1]):
        listed = httpx.get(f"{server.url}/v2/{repository}/tags/list", timeout=60)
        if listed.status_code != 200 or len(listed.json()["tags"]) != len(tags):
            raise RuntimeError(f"seeding: {repository} lists {listed.text[:200]}")
        manifest = httpx.get(
            f"{server.url}/v2/{repository}/manifests/{tags[-1]}", headers={"Accept": OCI_INDEX}, timeout=60
        )
        if manifest.status_code != 200 or manifest.content != seeder.index(repository, tags[-1]):
            raise RuntimeError(f"seeding: {repository}:{tags[-1]} is not served: {manifest.text[:200]}")


def push_tag(url: str, repositories: Sequence[str], tag: str) -> None:
    """A new tag in each repository, pushed through the API."""

    async def main() -> None:
        seeder = Seeder(url)
        try:
            await seeder.tags([(repository, tag) for repository in repositories])
        finally:
            await seeder.close()

    asyncio.run(main())


# -- measuring -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Sample:
    wall: float  # seconds
    cpu: float  # user + system seconds of the measured process (and its children)
    peak_mb: float  # the measured process's peak resident memory
    requests: int  # requests the proxy saw during the run
    tag_pages: int = 0  # the most tag-list requests for one repository (pages followed one after another)
    harness_cpu: float = 0.0  # CPU seconds the proxy and the registry used meanwhile


@dataclass
class Result:
    key: str
    label: str
    images: int
    samples: list[Sample] = field(default_factory=list)
    after_tags: int | None = None  # requests one after another besides the tag list (None: no floor)
    floor: float | None = None

    @property
    def chain(self) -> int | None:
        """The longest chain of requests that must follow one another: tag list pages, then the rest."""
        return None if self.after_tags is None else self.after_tags + max(s.tag_pages for s in self.samples)

    def round_trips(self, concurrency: int) -> int | None:
        """The fewest round trips the run can take: the chain, or the requests passed ``concurrency`` at a time."""
        chain = self.chain
        return None if chain is None else max(chain, math.ceil(self.requests / concurrency))

    @property
    def median(self) -> float:
        return statistics.median(s.wall for s in self.samples)

    @property
    def spread(self) -> tuple[float, float]:
        return min(s.wall for s in self.samples), max(s.wall for s in self.samples)

    @property
    def requests(self) -> int:
        return max(s.requests for s in self.samples)

    @property
    def per_image(self) -> float:
        return self.requests / self.images if self.images else 0.0

    @property
    def peak_mb(self) -> float:
        return max(s.peak_mb for s in self.samples)

    @property
    def cpu(self) -> float:
        return statistics.median(s.cpu for s in self.samples)

    @property
    def least_wall(self) -> float:
        return min(s.wall for s in self.samples)

    @property
    def least_cpu(self) -> float:
        return min(s.cpu for s in self.samples)

    def cpu_per_request(self, startup_cpu: float) -> float:
        """Milliseconds of CPU per request, start-up's CPU left out: the least over the runs (the machine is shared)."""
        return (self.least_cpu - startup_cpu) * 1000 / self.requests if self.requests else 0.0

    @property
    def harness_cpu(self) -> float:
        return statistics.median(s.harness_cpu for s in self.samples)


@dataclass
class Harness:
    """What serves the measured commands: the proxy (threads of this process) and the registry.
    Around each measurement it counts requests and the CPU the two of them used, which on a small
    machine is CPU the measured command could not have."""

    proxy: Proxy
    registry_pid: int
    _cpu: float = 0.0

    def _cpu_now(self) -> float:
        own = os.times()
        try:
            fields = Path(f"/proc/{self.registry_pid}/stat").read_text().rsplit(")", 1)[1].split()
            registry = (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime, stime
        except (OSError, IndexError, ValueError):
            registry = 0.0
        return own.user + own.system + registry

    def start(self) -> None:
        with self.proxy._lock:
            self.proxy.requests.clear()
        self._cpu = self._cpu_now()

    def stop(self) -> tuple[int, int, float]:
        """Requests, the most tag-list pages of one repository, and the harness's CPU seconds."""
        cpu = self._cpu_now() - self._cpu
        with self.proxy._lock:
            counts = dict(self.proxy.requests)
        pages = [count for path, count in counts.items() if path.startswith("GET ") and path.endswith("/tags/list")]
        return sum(counts.values()), max(pages, default=0), cpu


def measure(command: Sequence[str], cwd: Path, harness: Harness, env: dict[str, str], exit_code: int = 0) -> Sample:
    """Run one command in its own process, which must exit with ``exit_code``; its CPU comes from wait4, its
    peak memory from GNU time (TIME) where there is one: a process's ru_maxrss counts the memory of the
    process it was forked from, before exec, and this one is large."""
    harness.start()
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err, tempfile.NamedTemporaryFile() as peak:
        wrapper = [TIME, "--format", "%M", "--output", peak.name] if Path(TIME).exists() else []
        started = time.perf_counter()
        process = subprocess.Popen([*wrapper, *command], cwd=cwd, stdout=out, stderr=err, env=env)
        _, status, usage = os.wait4(process.pid, 0)
        wall = time.perf_counter() - started
        process.returncode = os.waitstatus_to_exitcode(status)
        if process.returncode != exit_code:
            err.seek(0)
            raise RuntimeError(f"{' '.join(command)} exited {process.returncode}: {err.read().decode()[-2000:]}")
        kilobytes = int(Path(peak.name).read_text().split()[-1]) if wrapper else usage.ru_maxrss
    requests, pages, harness_cpu = harness.stop()
    return Sample(wall, usage.ru_utime + usage.ru_stime, kilobytes / 1024, requests, pages, harness_cpu)


def timed(function: Callable[[], None], harness: Harness) -> Sample:
    """Time a function that runs many processes (the skopeo scripts); memory is not measured."""
    harness.start()
    before = os.times()
    started = time.perf_counter()
    function()
    wall = time.perf_counter() - started
    after = os.times()
    requests, pages, harness_cpu = harness.stop()
    cpu = (after.children_user - before.children_user) + (after.children_system - before.children_system)
    return Sample(wall, cpu, 0.0, requests, pages, harness_cpu)


# -- the skopeo scripts ----------------------------------------------------------------------------


def _version(tag: str) -> tuple[int, ...] | None:
    return tuple(int(part) for part in tag.split(".")) if re.fullmatch(r"\d+(\.\d+)*", tag) else None


def skopeo_lock(image: str) -> str:
    """What a user would script without imagelock: list the tags, pick the newest version, ask its digest."""
    listed = subprocess.run(
        [SKOPEO, "list-tags", "--tls-verify=false", f"docker://{image}"], check=True, capture_output=True
    )
    versions = [(v, tag) for tag in json.loads(listed.stdout)["Tags"] if (v := _version(tag)) is not None]
    newest = max(versions)[1]
    digest = subprocess.run(
        [SKOPEO, "inspect", "--tls-verify=false", "--no-tags", "--format", "{{.Digest}}", f"docker://{image}:{newest}"],
        check=True,
        capture_output=True,
    )
    return f"{image}:{newest}@{digest.stdout.decode().strip()}"


def skopeo_script(images: Sequence[str], workers: int) -> Callable[[], None]:
    def run() -> None:
        with ThreadPoolExecutor(max_workers=workers) as pool:
            list(pool.map(skopeo_lock, images))

    return run


# -- the benchmark ---------------------------------------------------------------------------------


@dataclass
class Bench:
    options: argparse.Namespace
    root: Path
    proxy: Proxy
    harness: Harness
    command: list[str]
    env: dict[str, str]
    startup: Sample | None = None
    results: dict[str, Result] = field(default_factory=dict)

    @property
    def rtt(self) -> float:
        return float(self.options.rtt_ms) / 1000

    def repositories(self, count: int) -> list[str]:
        return [f"bench/app{index}" for index in range(count)]

    def project(self, name: str, entries: dict[str, str]) -> Path:
        directory = self.root / "projects" / name
        directory.mkdir(parents=True, exist_ok=True)
        (directory / "images.toml").write_text(
            "".join(
                f'[images.{key}]\nimage = "{self.proxy.host}/{repository}"\nversion = ">=1"\n'
                for key, repository in entries.items()
            )
        )
        return directory

    def images_project(self, name: str, count: int) -> Path:
        return self.project(name, {f"app{index}": f"bench/app{index}" for index in range(count)})

    def run(self, arguments: Sequence[str], cwd: Path, exit_code: int = 0) -> Sample:
        return measure([*self.command, *arguments], cwd, self.harness, self.env, exit_code)

    def add(self, result: Result) -> Result:
        self.results[result.key] = result
        round_trips = result.round_trips(DEFAULT_CONCURRENCY)
        if round_trips is not None and self.startup is not None:
            result.floor = self.startup.wall + round_trips * self.rtt
        median, (low, high) = result.median, result.spread
        print(
            f"  {result.label}: {median:.3f} s ({low:.3f}-{high:.3f}), {result.requests} requests, "
            f"{result.peak_mb:.0f} MB",
            file=sys.stderr,
        )
        return result

    def measure_startup(self) -> None:
        """``imagelock --version``: the least of STARTUP_RUNS runs, what start-up costs when no neighbour interferes."""
        samples = [self.run(["--version"], self.root) for _ in range(STARTUP_RUNS)]
        self.startup = Sample(
            min(s.wall for s in samples), min(s.cpu for s in samples), max(s.peak_mb for s in samples), 0
        )

    def reference(
        self, key: str, label: str, images: int, cold: Result | None = None, project: Path | None = None
    ) -> Result:
        """The reference client (benchmarks/reference.py): the same requests at the same concurrency. With a
        ``cold`` result, its samples are measured again, a cold lock of ``project`` before each reference run:
        on a shared machine the load drifts from one minute to the next, and only neighbours compare fairly."""
        command = [
            sys.executable,
            str(REFERENCE),
            self.proxy.host,
            str(DEFAULT_CONCURRENCY),
            *self.repositories(images),
        ]
        result = Result(key, label, images)
        measure(command, self.root, self.harness, self.env)  # as cold(): not counted
        if cold is not None:
            cold.samples = []
        for _ in range(self.options.runs):
            if cold is not None and project is not None:
                (project / "images.lock").unlink(missing_ok=True)
                cold.samples.append(self.run(["lock"], project))
            result.samples.append(measure(command, self.root, self.harness, self.env))
        if cold is not None:
            self.add(cold)
        return self.add(result)

    def noop(self, project: Path) -> None:
        """``imagelock check`` and ``imagelock lock`` with nothing changed, and ``python -c pass``: NOOP_RUNS
        rounds, one of each per round, after one round that is not counted (it finds the lock up to date
        the slow way and remembers it)."""
        images = self.options.noop_images
        commands = {
            "noop-python": ("8. python -c pass", [sys.executable, "-c", "pass"]),
            "noop-check": (f"8. check, nothing changed, {images} images", [*self.command, "check"]),
            "noop-lock": (f"8. lock, nothing changed, {images} images", [*self.command, "lock"]),
        }
        for _, command in commands.values():
            measure(command, project, self.harness, self.env)
        samples: dict[str, list[Sample]] = {key: [] for key in commands}
        for _ in range(NOOP_RUNS):
            for key, (_, command) in commands.items():
                samples[key].append(measure(command, project, self.harness, self.env))
        for key, (label, _) in commands.items():
            self.add(Result(key, label, images, samples[key]))

    def cold(self, key: str, label: str, project: Path, images: int) -> Result:
        """A cold lock (no lock file), after one that is not counted: the first pass over repositories
        seeded moments before reads the registry's files into its caches, which no later run pays."""
        result = Result(key, label, images, after_tags=1)
        (project / "images.lock").unlink(missing_ok=True)
        self.run(["lock"], project)
        for _ in range(self.options.runs):
            (project / "images.lock").unlink(missing_ok=True)
            result.samples.append(self.run(["lock"], project))
        return self.add(result)

    def repeated(
        self, key: str, label: str, arguments: Sequence[str], project: Path, images: int, chain: int
    ) -> Result:
        result = Result(key, label, images, after_tags=chain)
        result.samples = [self.run(arguments, project) for _ in range(self.options.runs)]
        return self.add(result)

    def bomb(self, registry_url: str) -> Result:
        """``imagelock audit`` of an image whose one layer opens with a GNU long name header of BOMB_MIB MiB,
        which it holds (a small gzip): refused with exit 3, having read the header and no more."""
        seeder = ApiSeeder(registry_url)
        try:
            layer = oversized(tarfile.GNUTYPE_LONGNAME, BOMB_MIB)
            push_layered(seeder, "bench/bomb", "1", [layer])
        finally:
            seeder.close()
        project = self.project("bomb", {"bomb": "bench/bomb"})
        (project / "osv").mkdir()
        (project / "osv" / "BENCH-0.json").write_text('{"id": "BENCH-0"}')  # a layer read through would exit 0
        self.run(["lock"], project)
        label = f"7. audit refusing a {BOMB_MIB} MiB tar header ({len(layer.blob()) >> 10} KiB layer)"
        result = Result("bomb", label, 1)
        result.samples = [self.run(["audit", "--db", "osv"], project, exit_code=3) for _ in range(self.options.runs)]
        return self.add(result)


def run_benchmark(options: argparse.Namespace, root: Path) -> Bench:
    scenarios = set(options.scenarios)
    scale = sorted(set(options.scale)) if "scaling" in scenarios else []
    count = max([options.images, *scale, *([options.noop_images] if "noop" in scenarios else [])])
    tags = [f"1.{minor}.0" for minor in range(options.tags)]
    many = [f"1.{minor}.0" for minor in range(options.many_tags)] if "scaling" in scenarios else []

    server = RegistryServer(root / "registry").start()
    proxy = Proxy(server.host, latency=float(options.rtt_ms) / 2000).start()
    try:
        started = time.perf_counter()
        print(
            f"seeding {count} repositories x {options.tags} tags"
            + (f" and one of {len(many)} tags" if many else "")
            + " ...",
            file=sys.stderr,
        )
        seed(
            server,
            [*((f"bench/app{index}", tags) for index in range(count)), *([("bench/many", many)] if many else [])],
        )
        print(f"  seeded in {time.perf_counter() - started:.1f} s", file=sys.stderr)

        binary = Path(sys.executable).parent / "imagelock"
        command = [str(binary)] if binary.exists() else [sys.executable, "-m", "imagelock"]
        home = root / "home"
        (home / ".docker").mkdir(parents=True)
        env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "HOME": str(home),
            "DOCKER_CONFIG": str(home / ".docker"),
            "NO_COLOR": "1",
            "LANG": "C.UTF-8",
        }
        assert server.process is not None
        bench = Bench(options, root, proxy, Harness(proxy, server.process.pid), command, env)
        bench.measure_startup()
        assert bench.startup is not None
        print(f"  start-up (imagelock --version): {bench.startup.wall:.3f} s", file=sys.stderr)

        images = options.images
        project = bench.images_project("main", images)
        label = f"{images} images x {options.tags} tags"
        if scenarios & {"cold", "unchanged", "update", "verify"}:
            print("cold lock ...", file=sys.stderr)
            bench.cold("cold", f"1. cold lock, {label}", project, images)
        if "min-age" in scenarios:
            print("cold lock with min-age ...", file=sys.stderr)
            aged = bench.images_project("min-age", images)
            (aged / "images.toml").write_text('[defaults]\nmin-age = "7d"\n' + (aged / "images.toml").read_text())
            bench.cold("min-age", f"1. cold lock with min-age, {label}", aged, images)
        if "reference" in scenarios:
            print("reference client, each run after a cold lock (counted with row 1) ...", file=sys.stderr)
            bench.reference("reference", f"1. reference client, {label}", images, bench.results.get("cold"), project)
        if "unchanged" in scenarios:
            print("nothing changed ...", file=sys.stderr)
            bench.repeated("unchanged", f"2. lock, nothing changed, {images} images", ["lock"], project, images, 0)
        if "verify" in scenarios:
            print("verify ...", file=sys.stderr)
            bench.repeated("verify", f"4. verify, {images} images", ["verify"], project, images, 2)
        if "skopeo" in scenarios:
            if not Path(SKOPEO).exists():
                print(f"skopeo scenario skipped: {SKOPEO} is missing (apt-get install skopeo)", file=sys.stderr)
            else:
                references = [f"{proxy.host}/{repository}" for repository in bench.repositories(images)]
                for key, workers, name in (
                    ("skopeo-sequential", 1, "sequential"),
                    ("skopeo-parallel", SKOPEO_PARALLEL, f"{SKOPEO_PARALLEL} in parallel"),
                ):
                    print(f"skopeo script, {name} ...", file=sys.stderr)
                    result = Result(key, f"5. skopeo script, {name}, {label}", images)
                    script = skopeo_script(references, workers)
                    result.samples = [timed(script, bench.harness) for _ in range(options.runs)]
                    bench.add(result)
        if "scaling" in scenarios:
            for size in scale:
                print(f"scaling: cold lock of {size} images ...", file=sys.stderr)
                sized = bench.images_project(f"scale{size}", size)
                bench.cold(f"scale-{size}", f"6. cold lock, {size} images x {options.tags} tags", sized, size)
            largest = scale[-1]
            print(f"scaling: nothing changed, {largest} images ...", file=sys.stderr)
            bench.repeated(
                f"scale-{largest}-unchanged",
                f"6. lock, nothing changed, {largest} images",
                ["lock"],
                bench.root / "projects" / f"scale{largest}",
                largest,
                0,
            )
            print(f"scaling: one repository of {len(many)} tags ...", file=sys.stderr)
            single = bench.project("many", {"many": "bench/many"})
            bench.cold("many-tags", f"6. cold lock, 1 image x {len(many)} tags", single, 1)
        if "noop" in scenarios:
            print(f"nothing changed, {options.noop_images} images: check, lock and python -c pass ...", file=sys.stderr)
            noop = bench.images_project(f"scale{options.noop_images}", options.noop_images)
            if not (noop / "images.lock").exists():
                bench.run(["lock"], noop)
            bench.noop(noop)
        if "bomb" in scenarios:
            print(f"audit of a layer with a {BOMB_MIB} MiB tar header ...", file=sys.stderr)
            bench.bomb(server.url)
        if "update" in scenarios:  # last: it pushes new tags
            print("update after a new tag in every repository ...", file=sys.stderr)
            result = Result("update", f"3. update after a new tag, {images} images", images, after_tags=1)
            for run in range(options.runs):
                push_tag(server.url, bench.repositories(images), f"1.{options.tags + run}.0")
                result.samples.append(bench.run(["update"], project))
            bench.add(result)
        return bench
    finally:
        proxy.stop()
        server.stop()


# -- the report ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Target:
    text: str
    measured: str
    met: bool | None  # None: not measured in this run


def targets(bench: Bench) -> list[Target]:
    results, options = bench.results, bench.options
    found: list[Target] = []
    cold = results.get("cold")
    if cold is not None and cold.floor:
        ratio = cold.median / cold.floor
        found.append(
            Target(
                f"cold lock within {FLOOR_RATIO_TARGET:g}x the floor",
                f"{cold.median:.2f} s / {cold.floor:.2f} s = {ratio:.2f}x",
                ratio <= FLOOR_RATIO_TARGET,
            )
        )
    for key, goal in (("skopeo-sequential", SKOPEO_SEQUENTIAL_TARGET), ("skopeo-parallel", SKOPEO_PARALLEL_TARGET)):
        script = results.get(key)
        if cold is not None and script is not None:
            speedup = script.median / cold.median
            found.append(
                Target(
                    f"at least {goal:g}x faster than the {key.removeprefix('skopeo-')} skopeo script",
                    f"{script.median:.2f} s / {cold.median:.2f} s = {speedup:.1f}x",
                    speedup >= goal,
                )
            )
    unchanged = results.get("unchanged")
    if unchanged is not None:
        found.append(
            Target("nothing changed: zero requests", f"{unchanged.requests} requests", unchanged.requests == 0)
        )
    large = max((r for r in results.values() if r.key.endswith("-unchanged")), key=lambda r: r.images, default=None)
    if large is not None:
        found.append(
            Target(
                f"nothing changed: under {UNCHANGED_SECONDS_TARGET:g} s for {large.images} images"
                + ("" if large.images == 1000 else " (the target is for 1000)"),
                f"{large.median:.3f} s, {large.requests} requests",
                large.median < UNCHANGED_SECONDS_TARGET and large.requests == 0,
            )
        )
    if cold is not None:
        found.append(
            Target(
                f"cold lock: at most {REQUESTS_PER_IMAGE_TARGET:g} requests per image",
                f"{cold.per_image:.2f} ({cold.requests} for {cold.images})",
                cold.per_image <= REQUESTS_PER_IMAGE_TARGET,
            )
        )
    many = results.get("many-tags")
    if many is not None:
        found.append(
            Target(
                f"{options.many_tags} tags in one repository: under {MANY_TAGS_MEMORY_TARGET:g} MB peak",
                f"{many.peak_mb:.0f} MB",
                many.peak_mb < MANY_TAGS_MEMORY_TARGET,
            )
        )
    bomb = results.get("bomb")
    if bomb is not None:
        found.append(
            Target(
                f"audit of a layer with a {BOMB_MIB} MiB tar header: under {BOMB_MEMORY_TARGET:g} MB peak",
                f"{bomb.peak_mb:.0f} MB",
                bomb.peak_mb < BOMB_MEMORY_TARGET,
            )
        )
    return found + issue_20_targets(bench)


def issue_20_targets(bench: Bench) -> list[Target]:
    """Issue #20: the no-op in tens of milliseconds, the cold lock bound by the network and not by imagelock's CPU."""
    results, found = bench.results, []
    python = results.get("noop-python")
    for key in ("noop-check", "noop-lock"):
        noop = results.get(key)
        if noop is not None and python is not None:
            ratio = noop.least_wall / python.least_wall
            found.append(
                Target(
                    f"{noop.label.removeprefix('8. ')}: under {NOOP_SECONDS_TARGET * 1000:g} ms and within "
                    f"{NOOP_PYTHON_RATIO_TARGET:g}x python -c pass (least of {len(noop.samples)})",
                    f"{noop.least_wall * 1000:.0f} ms; python -c pass {python.least_wall * 1000:.0f} ms = {ratio:.2f}x",
                    noop.least_wall < NOOP_SECONDS_TARGET and ratio <= NOOP_PYTHON_RATIO_TARGET,
                )
            )
    startup_cpu = bench.startup.cpu if bench.startup else 0.0
    cold, reference = results.get("cold"), results.get("reference")
    if cold is not None:
        per_request = cold.cpu_per_request(startup_cpu)
        # For scale: the reference client's CPU per request by the same measure, Python's own start-up left out.
        context = (
            f" (the reference client: {reference.cpu_per_request(python.least_cpu):.2f} ms)"
            if reference is not None and python is not None
            else ""
        )
        found.append(
            Target(
                f"cold lock: imagelock's CPU under {CPU_PER_REQUEST_TARGET:g} ms per request",
                f"({cold.least_cpu:.2f} s - start-up {startup_cpu:.2f} s) / {cold.requests} = "
                f"{per_request:.2f} ms{context}",
                per_request < CPU_PER_REQUEST_TARGET,
            )
        )
    if cold is not None and reference is not None:
        ratio = cold.median / reference.median
        found.append(
            Target(
                f"cold lock within {REFERENCE_RATIO_TARGET:g}x the reference client",
                f"{cold.median:.2f} s / {reference.median:.2f} s = {ratio:.2f}x",
                ratio <= REFERENCE_RATIO_TARGET,
            )
        )
    parallel = results.get("skopeo-parallel")
    if cold is not None and parallel is not None:
        speedup = parallel.median / cold.median
        found.append(
            Target(
                f"at least {SKOPEO_PARALLEL_TARGET_20:g}x faster than the parallel skopeo script",
                f"{parallel.median:.2f} s / {cold.median:.2f} s = {speedup:.1f}x",
                speedup >= SKOPEO_PARALLEL_TARGET_20,
            )
        )
    small, large = results.get("scale-200"), results.get("scale-1000")
    if small is not None and large is not None:
        ratio = large.cpu_per_request(startup_cpu) / small.cpu_per_request(startup_cpu)
        found.append(
            Target(
                f"1000 images: CPU per request at most {LINEAR_CPU_TOLERANCE:g}x that at 200",
                f"{large.cpu_per_request(startup_cpu):.2f} ms / {small.cpu_per_request(startup_cpu):.2f} ms = "
                f"{ratio:.2f}x",
                ratio <= LINEAR_CPU_TOLERANCE,
            )
        )
        found.append(
            Target(
                f"cold lock of 1000 images: under {LARGE_MEMORY_TARGET:g} MB peak",
                f"{large.peak_mb:.0f} MB",
                large.peak_mb < LARGE_MEMORY_TARGET,
            )
        )
    return found


def machine() -> str:
    model = "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    load = ", ".join(f"{value:.2f}" for value in os.getloadavg())
    return (
        f"{os.cpu_count()} CPUs ({model}), Python {platform.python_version()}, {platform.system()} "
        f"{platform.release()}, {datetime.date.today().isoformat()}, load average before the run {load}"
    )


def table(headers: Sequence[str], rows: Sequence[Sequence[str]], markdown: bool) -> str:
    if markdown:
        lines = ["| " + " | ".join(headers) + " |", "|" + "|".join(" --- " for _ in headers) + "|"]
        lines += ["| " + " | ".join(row) + " |" for row in rows]
        return "\n".join(lines)
    widths = [max(len(str(cell)) for cell in column) for column in zip(headers, *rows, strict=True)]

    def render(row: Sequence[str]) -> str:
        return "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip()

    return "\n".join([render(headers), render(["-" * width for width in widths]), *(render(row) for row in rows)])


def report(bench: Bench, markdown: bool, load: str) -> str:
    options = bench.options
    startup = bench.startup.wall if bench.startup else 0.0
    cold = bench.results.get("cold")
    headers = [
        "scenario",
        "time (median)",
        "spread",
        "floor",
        "x floor",
        "x skopeo seq.",
        "x skopeo 8-way",
        "requests/image",
        "CPU",
        "harness CPU",
        "peak memory",
    ]
    rows: list[list[str]] = []
    ranked = sorted(bench.results.values(), key=lambda r: int(r.label.split(".")[0]))  # stable: run order within
    for result in ranked:
        skopeo = ["", ""]
        same_as_cold = cold is not None and result.images == cold.images and not result.key.endswith("-unchanged")
        if result.key == "cold" or (result.key.startswith("scale-") and same_as_cold):
            skopeo = [
                f"{bench.results[key].median / result.median:.1f}x" if key in bench.results else "n/a"
                for key in ("skopeo-sequential", "skopeo-parallel")
            ]
        low, high = result.spread
        rows.append(
            [
                result.label,
                f"{result.median:.3f} s",
                f"{low:.3f}-{high:.3f} s",
                f"{result.floor:.3f} s" if result.floor is not None else "",
                f"{result.median / result.floor:.2f}" if result.floor else "",
                *skopeo,
                f"{result.per_image:.2f}",
                f"{result.cpu:.2f} s",
                f"{result.harness_cpu:.2f} s",
                f"{result.peak_mb:.0f} MB" if result.peak_mb else "",
            ]
        )
    goals = targets(bench)
    target_rows = [
        [goal.text, goal.measured, "PASS" if goal.met else "FAIL" if goal.met is False else "n/a"] for goal in goals
    ]
    heading = (
        f"imagelock benchmark: {options.images} images x {options.tags} tags, RTT {options.rtt_ms:g} ms "
        f"({options.rtt_ms / 2:g} ms each way), {options.runs} run(s) each, start-up {startup:.3f} s\n"
        f"machine: {load}"
    )
    return "\n\n".join(
        [heading, table(headers, rows, markdown), table(["target", "measured", "result"], target_rows, markdown)]
    )


def as_json(bench: Bench) -> dict[str, object]:
    return {
        "options": {key: value for key, value in vars(bench.options).items() if key != "json"},
        "startup": asdict(bench.startup) if bench.startup else None,
        "results": {
            key: {
                "label": result.label,
                "images": result.images,
                "median": result.median,
                "spread": result.spread,
                "floor": result.floor,
                "requests": result.requests,
                "requests_per_image": result.per_image,
                "peak_mb": result.peak_mb,
                "samples": [asdict(sample) for sample in result.samples],
            }
            for key, result in bench.results.items()
        },
        "targets": [asdict(goal) for goal in targets(bench)],
    }


def parse(arguments: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0] if __doc__ else None,
        epilog=f"scenarios: {', '.join(SCENARIOS)}; see docs/benchmarks.md",
    )
    parser.add_argument("--images", type=int, default=200, help="repositories (images) to lock (default 200)")
    parser.add_argument("--tags", type=int, default=40, help="tags per repository (default 40)")
    parser.add_argument("--rtt-ms", type=float, default=20.0, help="round-trip time added by the proxy (default 20)")
    parser.add_argument("--runs", type=int, default=3, help="runs of each scenario (default 3)")
    parser.add_argument(
        "--scenarios",
        type=lambda text: [name.strip() for name in text.split(",") if name.strip()],
        default=list(SCENARIOS),
        help=f"comma-separated subset of {','.join(SCENARIOS)} (default all)",
    )
    parser.add_argument(
        "--scale",
        type=lambda text: [int(size) for size in text.split(",")],
        default=[50, 200, 1000],
        help="image counts for the scaling scenario (default 50,200,1000)",
    )
    parser.add_argument(
        "--many-tags", type=int, default=10_000, help="tags of the one large repository (default 10000)"
    )
    parser.add_argument(
        "--noop-images", type=int, default=NOOP_IMAGES, help=f"images of the noop scenario (default {NOOP_IMAGES})"
    )
    parser.add_argument("--quick", action="store_true", help="a smoke run: 4 images, 3 tags, RTT 2 ms, 1 run")
    parser.add_argument("--markdown", action="store_true", help="print the tables as markdown")
    parser.add_argument("--json", type=Path, help="also write every measurement to this JSON file")
    options = parser.parse_args(arguments)
    unknown = set(options.scenarios) - set(SCENARIOS)
    if unknown:
        parser.error(f"unknown scenario(s): {', '.join(sorted(unknown))}; choose from {', '.join(SCENARIOS)}")
    if options.quick:
        options.images, options.tags, options.rtt_ms, options.runs = 4, 3, 2.0, 1
        options.scale, options.many_tags, options.noop_images = [2, 4], 300, 4
    if options.images < 1 or options.tags < 1 or options.runs < 1 or min(options.scale) < 1:
        parser.error("--images, --tags, --runs and --scale must be positive")
    return options


@contextmanager
def workspace() -> Iterator[Path]:
    """A directory for the registry's storage and the projects: in memory (/dev/shm) when there is
    one, since seeding writes, and removing deletes, some 250,000 small files."""
    shm = Path("/dev/shm")
    memory = shm.is_dir() and os.access(shm, os.W_OK)
    directory = Path(tempfile.mkdtemp(prefix="imagelock-bench-", dir=shm if memory else None))
    try:
        yield directory
    finally:
        shutil.rmtree(directory, ignore_errors=True)


def main(arguments: Sequence[str] | None = None) -> int:
    options = parse(arguments)
    load = machine()
    with workspace() as root:
        bench = run_benchmark(options, root)
        print(report(bench, options.markdown, load), flush=True)
        if options.json is not None:
            options.json.write_text(json.dumps(as_json(bench), indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
