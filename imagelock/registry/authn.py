"""Where credentials come from: the files ``docker login`` writes.

A ``Keychain`` maps a registry (as named in references, e.g. ``docker.io``) to a ``Credential``
or to None for anonymous access. Hosts match exactly (after stripping the ``https://`` prefix and
path Docker writes into its keys), never by prefix.
"""

from __future__ import annotations

import base64
import binascii
import json
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from imagelock.errors import InputError
from imagelock.reference import DOCKER_HUB

DOCKER_HUB_CONFIG_KEY = "https://index.docker.io/v1/"
_DOCKER_HUB_KEY_HOSTS = frozenset({"index.docker.io", "docker.io", "registry-1.docker.io"})


@dataclass(frozen=True)
class Credential:
    username: str = ""
    password: str = ""
    identity_token: str = ""  # OAuth2 refresh token (docker config ``identitytoken``)
    registry_token: str = ""  # bearer token used as is (docker config ``registrytoken``)

    @property
    def identity(self) -> str:
        """What distinguishes cached tokens of different users, without the secret."""
        return self.username or ("<identity-token>" if self.identity_token else "<registry-token>")


class Keychain(Protocol):
    def resolve(self, registry: str) -> Credential | None: ...


@dataclass(frozen=True)
class Anonymous:
    def resolve(self, registry: str) -> Credential | None:
        return None


@dataclass(frozen=True)
class DockerConfigKeychain:
    """Credentials from ``auths`` in a Docker ``config.json``."""

    path: Path
    auths: Mapping[str, Credential]

    def resolve(self, registry: str) -> Credential | None:
        return self.auths.get(registry)

    @classmethod
    def from_environment(cls, environ: Mapping[str, str] | None = None) -> DockerConfigKeychain:
        environ = os.environ if environ is None else environ
        directory = Path(environ["DOCKER_CONFIG"]) if environ.get("DOCKER_CONFIG") else Path.home() / ".docker"
        return cls.load(directory / "config.json")

    @classmethod
    def load(cls, path: Path) -> DockerConfigKeychain:
        try:
            document = json.loads(path.read_bytes())
        except FileNotFoundError:
            return cls(path, {})
        except (OSError, ValueError) as error:
            raise InputError(f"{path}: cannot read Docker credentials: {error}") from None
        auths = document.get("auths", {}) if isinstance(document, dict) else None
        if not isinstance(auths, dict):
            raise InputError(f"{path}: key 'auths': expected an object")
        credentials: dict[str, Credential] = {}
        for key, entry in auths.items():
            if not isinstance(entry, dict):
                raise InputError(f"{path}: auths[{key!r}]: expected an object")
            credential = _credential(path, key, entry)
            if credential is not None:
                credentials.setdefault(registry_of_config_key(key), credential)
        return cls(path, credentials)


def registry_of_config_key(key: str) -> str:
    """``https://index.docker.io/v1/`` → ``docker.io``; ``http://host:5000/x`` → ``host:5000``."""
    host = key.lower()
    for prefix in ("https://", "http://"):
        if host.startswith(prefix):
            host = host[len(prefix) :]
    host = host.split("/", 1)[0]
    return DOCKER_HUB if host in _DOCKER_HUB_KEY_HOSTS else host


def _credential(path: Path, key: str, entry: dict[str, object]) -> Credential | None:
    identity_token = entry.get("identitytoken") or ""
    registry_token = entry.get("registrytoken") or ""
    username, password = entry.get("username") or "", entry.get("password") or ""
    encoded = entry.get("auth")
    if encoded:
        try:
            username, _, password = base64.b64decode(str(encoded), validate=True).decode().partition(":")
        except (binascii.Error, UnicodeDecodeError):
            raise InputError(f"{path}: auths[{key!r}].auth: not base64 of user:password") from None
    fields = (username, password, identity_token, registry_token)
    if not all(isinstance(value, str) for value in fields):
        raise InputError(f"{path}: auths[{key!r}]: credentials must be strings")
    if not any(fields):
        return None
    return Credential(str(username), str(password), str(identity_token), str(registry_token))
