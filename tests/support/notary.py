"""A real notary server for Docker Content Trust tests: Debian's ``notary-server``, signed with ``notary``.

``NotaryServer`` runs ``notary-server`` on a free loopback port with memory storage, its local signing
service (which keeps the timestamp keys) and TLS with a certificate the test suite makes.
``NotaryClient`` drives the real ``notary`` client the way a publisher would (``init``, ``addhash``,
``publish``, key rotation, delegations), with the passphrases given through the environment.
"""

from __future__ import annotations

import base64
import os
import shutil
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

from tests.support.registry import free_port
from tests.support.serving import terminate, wait_listening
from tests.support.tls import server_certificate

PASSPHRASES = {
    "NOTARY_ROOT_PASSPHRASE": "root-secret",
    "NOTARY_TARGETS_PASSPHRASE": "targets-secret",
    "NOTARY_SNAPSHOT_PASSPHRASE": "snapshot-secret",
    "NOTARY_DELEGATION_PASSPHRASE": "delegation-secret",
}


def notary_binaries() -> bool:
    return all(shutil.which(name) or Path(f"/usr/bin/{name}").exists() for name in ("notary-server", "notary"))


@dataclass
class NotaryServer:
    workdir: Path
    port: int = field(default_factory=free_port)
    process: subprocess.Popen[bytes] | None = None
    ca_cert: Path | None = None

    @property
    def url(self) -> str:
        return f"https://127.0.0.1:{self.port}"

    def start(self) -> NotaryServer:
        self.workdir.mkdir(parents=True, exist_ok=True)
        certificate, key = server_certificate(self.workdir, "imagelock test notary")
        self.ca_cert = certificate
        config = self.workdir / "server.json"
        config.write_text(
            "{"
            f'"server": {{"http_addr": "127.0.0.1:{self.port}", "tls_cert_file": "{certificate}",'
            f' "tls_key_file": "{key}"}},'
            ' "trust_service": {"type": "local"}, "storage": {"backend": "memory"},'
            ' "logging": {"level": "error"}'
            "}"
        )
        log = (self.workdir / "server.log").open("ab")
        self.process = subprocess.Popen(["notary-server", "-config", str(config)], stdout=log, stderr=log)
        wait_listening(self.process, self.port, self.workdir / "server.log", "notary-server")
        return self

    def stop(self) -> None:
        terminate(self.process)


@dataclass
class NotaryClient:
    """The real ``notary`` client with its own trust directory (its keys and cached metadata)."""

    server: NotaryServer
    trust_dir: Path

    def run(self, *arguments: str, answer: str | None = None) -> str:
        assert self.server.ca_cert is not None
        command = ["notary", "-s", self.server.url, "-d", str(self.trust_dir), "--tlscacert", str(self.server.ca_cert)]
        result = subprocess.run(
            [*command, *arguments],
            input=answer.encode() if answer else None,
            capture_output=True,
            env={**os.environ, **PASSPHRASES},
            timeout=60,
            check=False,
        )
        if result.returncode != 0:
            raise RuntimeError(f"notary {' '.join(arguments)} failed: {result.stderr.decode(errors='replace')}")
        return result.stdout.decode()

    def init(self, gun: str) -> None:
        self.run("init", gun)
        self.run("publish", gun)

    def sign(self, gun: str, tag: str, digest: str, size: int, *, role: str | None = None) -> None:
        """Sign ``tag`` as the manifest ``digest`` of ``size`` bytes, as ``docker trust sign`` records it."""
        roles = ["--roles", role] if role else []
        self.run("addhash", gun, tag, str(size), "--sha256", digest.removeprefix("sha256:"), *roles)
        self.run("publish", gun)

    def rotate_root(self, gun: str) -> None:
        self.run("key", "rotate", gun, "root", answer="yes\n")

    def delete(self, gun: str) -> None:
        self.run("delete", gun, "--remote")


def raw_sha256(digest: str) -> str:
    """The base64 raw digest a TUF target records, for comparing with what the server holds."""
    return base64.b64encode(bytes.fromhex(digest.removeprefix("sha256:"))).decode()
