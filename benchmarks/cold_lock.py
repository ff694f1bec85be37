"""Cold lock of many images behind a slow network, against its floor.

A real registry (Debian's docker-registry) seeded with N repositories of T tags each, behind the
test suite's proxy adding a fixed round-trip time to every request. imagelock locks all N images
cold; the floor is start-up plus the longest chain of sequential requests (tag list, then the
manifest) times the round-trip time.

    .venv/bin/python benchmarks/cold_lock.py [--images 100] [--tags 5] [--rtt-ms 20] [--runs 3]
"""

from __future__ import annotations

import argparse
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.support.proxy import Proxy
from tests.support.registry import RegistryServer, Seeder

CHAIN = 2  # requests one after another for a version entry: the tag list, then the chosen manifest


def timed(command: list[str], cwd: Path) -> tuple[float, float]:
    """Wall-clock seconds, and CPU seconds the command used."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    subprocess.run(command, cwd=cwd, check=True, capture_output=True)
    wall = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return wall, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", type=int, default=100)
    parser.add_argument("--tags", type=int, default=5)
    parser.add_argument("--rtt-ms", type=float, default=20.0)
    parser.add_argument("--runs", type=int, default=3)
    options = parser.parse_args()
    rtt = options.rtt_ms / 1000

    with tempfile.TemporaryDirectory(prefix="imagelock-bench-") as workdir:
        root = Path(workdir)
        server = RegistryServer(root / "registry").start()
        proxy = Proxy(server.host, intercept=lambda method, path: rtt).start()
        try:
            seeder = Seeder(server.url)
            print(f"seeding {options.images} repositories x {options.tags} tags ...", file=sys.stderr)
            for index in range(options.images):
                for minor in range(options.tags):
                    seeder.push_image(f"bench/app{index}", f"1.{minor}.0", attestations=False)
            seeder.close()
            project = root / "project"
            project.mkdir()
            (project / "images.toml").write_text(
                "".join(
                    f'[images.app{index}]\nimage = "{proxy.host}/bench/app{index}"\nversion = ">=1"\n'
                    for index in range(options.images)
                )
            )
            imagelock = [sys.executable, "-m", "imagelock"]
            startup = statistics.median(timed([*imagelock, "--version"], project)[0] for _ in range(options.runs))
            times, cpu, requests = [], [], 0
            for _ in range(options.runs):
                (project / "images.lock").unlink(missing_ok=True)
                proxy.requests.clear()
                wall, used = timed([*imagelock, "lock"], project)
                times.append(wall)
                cpu.append(used)
                requests = sum(proxy.requests.values())
            floor = startup + CHAIN * rtt
            sequential = startup + CHAIN * rtt * options.images
            median = statistics.median(times)
            print(f"images {options.images}, tags {options.tags}, RTT {options.rtt_ms:.0f} ms, runs {options.runs}")
            print(f"{'cold lock (median)':<28}{median:8.2f} s   spread {min(times):.2f}-{max(times):.2f} s")
            print(f"{'floor (start-up + chain)':<28}{floor:8.2f} s   ratio {median / floor:.2f}")
            speedup = sequential / median
            print(f"{'one image after another':<28}{sequential:8.2f} s   imagelock is {speedup:.1f}x faster")
            print(f"{'requests per image':<28}{requests / options.images:8.2f}")
            print(f"{'imagelock CPU time (median)':<28}{statistics.median(cpu):8.2f} s")
        finally:
            proxy.stop()
            server.stop()


if __name__ == "__main__":
    main()
