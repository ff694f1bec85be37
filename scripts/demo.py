"""The demo behind scripts/demo: a local registry, example images, ``imagelock lock``, the lock.

Everything runs on loopback; the demo project is left in ./demo/ to look at afterwards.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.support.registry import RegistryServer, Seeder, seed_catalog

ROOT = Path(__file__).resolve().parent.parent
IMAGELOCK = [sys.executable, "-m", "imagelock"]


def step(title: str) -> None:
    bold = sys.stdout.isatty() and not os.environ.get("NO_COLOR")  # like imagelock itself: plain when piped
    print(f"\n\033[1m== {title}\033[0m" if bold else f"\n== {title}", flush=True)


def run(*arguments: str, cwd: Path) -> None:
    print(f"$ imagelock {' '.join(arguments)}", flush=True)
    completed = subprocess.run([*IMAGELOCK, *arguments], cwd=cwd, check=False)
    print(f"(exit {completed.returncode})", flush=True)


def main() -> None:
    project = ROOT / "demo"
    shutil.rmtree(project, ignore_errors=True)
    project.mkdir()
    with tempfile.TemporaryDirectory(prefix="imagelock-demo-") as workdir:
        step("Starting Debian's docker-registry on loopback and pushing example images")
        server = RegistryServer(Path(workdir)).start()
        try:
            seeder = Seeder(server.url)
            pushed = seed_catalog(seeder)
            seeder.close()
            repositories = sorted({image.repository for image in pushed.values()})
            print(f"registry {server.host}: {len(pushed)} tags in {', '.join(repositories)}")

            step("images.toml: the images this project runs (the example, pointed at the local registry)")
            example = (ROOT / "images.toml.example").read_text()
            for name in ("nginx", "ubuntu", "redis", "postgres:16.4"):
                example = example.replace(f'"{name}"', f'"{server.host}/library/{name}"')
            (project / "images.toml").write_text(example)
            print(example)

            step("Lock: resolve every entry to the newest allowed tag and pin its digests")
            run("lock", cwd=project)
            step("images.lock")
            print((project / "images.lock").read_text())

            step("Upstream publishes nginx 1.26.3-alpine. Pins stay put until you ask:")
            seeder = Seeder(server.url)
            seeder.push_image("library/nginx", "1.26.3-alpine")
            seeder.close()
            run("lock", cwd=project)
            run("outdated", cwd=project)
            run("why", "web", cwd=project)
            step("Move just that one pin forward, and see the change")
            run("update", "web", cwd=project)

            step("With the registry stopped: nothing changed, so lock makes no request at all")
            server.stop()
            run("lock", cwd=project)

            step("Check (offline, for CI): the lock matches images.toml")
            run("check", cwd=project)
            step("Edit images.toml, then check again: the stale entry is named and the exit code is 1")
            text = (project / "images.toml").read_text().replace(">=1.25,<1.27", ">=1.25")
            (project / "images.toml").write_text(text)
            run("check", cwd=project)
        finally:
            server.stop()
    print(f"\nThe demo project is in {project}")


if __name__ == "__main__":
    main()
