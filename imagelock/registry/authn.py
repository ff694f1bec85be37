"""Where credentials come from: the files and helpers ``docker login`` and ``podman login`` set up.

A ``Keychain`` maps a repository to a ``Credential``, or to None for anonymous access. The
default keychain reads, in order, the first that has an entry for the repository:

1. ``$REGISTRY_AUTH_FILE`` (podman, skopeo, buildah);
2. ``$DOCKER_CONFIG/config.json`` or ``~/.docker/config.json``: ``credHelpers`` for the host, then
   ``credsStore``, then ``auths``;
3. ``$XDG_RUNTIME_DIR/containers/auth.json`` (podman's default).

Keys match hosts exactly, never by prefix. Podman-style keys may name a namespace
(``quay.io/team``); the longest one that contains the repository wins.
"""

from __future__ import annotations

import base64
import binascii
import json
import os
import subprocess
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from imagelock.errors import InputError, RegistryError
from imagelock.reference import DOCKER_HUB, Repository

DOCKER_HUB_CONFIG_KEY = "https://index.docker.io/v1/"
_DOCKER_HUB_KEY_HOSTS = frozenset({"index.docker.io", "docker.io", "registry-1.docker.io"})
_HELPER_TIMEOUT = 30.0
_IDENTITY_TOKEN_USERNAME = "<token>"


@dataclass(frozen=True)
class Credential:
    username: str = ""
    password: str = ""
    identity_token: str = ""  # OAuth2 refresh token (docker config ``identitytoken``)
    registry_token: str = ""  # bearer token sent as is (docker config ``registrytoken``)

    @property
    def identity(self) -> str:
        """What tells cached tokens of different users apart, without the secret."""
        if self.username:
            return self.username
        return "<identity-token>" if self.identity_token else "<registry-token>"

    def __repr__(self) -> str:  # never print secrets, even in a traceback
        return f"Credential(username={self.username!r}, ...)"


class Keychain(Protocol):
    def resolve(self, repository: Repository) -> Credential | None: ...


@dataclass(frozen=True)
class Anonymous:
    def resolve(self, repository: Repository) -> Credential | None:
        return None


@dataclass(frozen=True)
class CredentialHelper:
    """``docker-credential-<suffix>``: ``get`` reads the server URL on stdin and answers JSON."""

    suffix: str

    def get(self, server_url: str) -> Credential | None:
        program = f"docker-credential-{self.suffix}"
        try:
            completed = subprocess.run(
                [program, "get"], input=server_url, capture_output=True, text=True, timeout=_HELPER_TIMEOUT, check=False
            )
        except FileNotFoundError:
            raise InputError(f"credential helper {program} is not installed (named in the Docker config)") from None
        except subprocess.TimeoutExpired:
            raise RegistryError(f"credential helper {program} did not answer within {_HELPER_TIMEOUT:.0f} s") from None
        if completed.returncode != 0:
            output = (completed.stdout + completed.stderr).strip()
            if "credentials not found" in output.lower():
                return None
            raise RegistryError(f"credential helper {program} failed for {server_url}: {output.splitlines()[:1]}")
        try:
            answer = json.loads(completed.stdout)
            username, secret = answer.get("Username", ""), answer.get("Secret", "")
        except (ValueError, AttributeError):
            raise RegistryError(f"credential helper {program} answered something that is not JSON") from None
        if not isinstance(username, str) or not isinstance(secret, str) or not secret:
            return None
        if username == _IDENTITY_TOKEN_USERNAME:
            return Credential(identity_token=secret)
        return Credential(username=username, password=secret)


@dataclass(frozen=True)
class _Entry:
    """One key of an auth file: a host, an optional namespace, and a credential or a helper."""

    host: str
    namespace: str
    credential: Credential | None = None
    helper: CredentialHelper | None = None

    def covers(self, repository: Repository) -> bool:
        if self.host != repository.registry:
            return False
        return (
            not self.namespace or repository.path == self.namespace or repository.path.startswith(self.namespace + "/")
        )


@dataclass(frozen=True)
class AuthFile:
    """A Docker ``config.json`` or a containers ``auth.json``: both share the ``auths`` format."""

    path: Path
    entries: tuple[_Entry, ...] = ()
    helpers: Mapping[str, CredentialHelper] = field(default_factory=dict)  # host → credHelpers entry
    store: CredentialHelper | None = None  # credsStore

    def resolve(self, repository: Repository) -> Credential | None:
        helper = self.helpers.get(repository.registry) or self.store
        if helper is not None:
            credential = helper.get(server_url_for(repository.registry))
            if credential is not None:
                return credential
        matching = [entry for entry in self.entries if entry.covers(repository) and entry.credential is not None]
        if not matching:
            return None
        return max(matching, key=lambda entry: len(entry.namespace)).credential

    @classmethod
    def load(cls, path: Path) -> AuthFile:
        try:
            document = json.loads(path.read_bytes())
        except FileNotFoundError:
            return cls(path)
        except (OSError, ValueError) as error:
            raise InputError(f"{path}: cannot read credentials: {error}") from None
        if not isinstance(document, dict):
            raise InputError(f"{path}: expected a JSON object")
        auths = document.get("auths") or {}
        helpers = document.get("credHelpers") or {}
        store = document.get("credsStore") or None
        if not isinstance(auths, dict) or not isinstance(helpers, dict):
            raise InputError(f"{path}: 'auths' and 'credHelpers' must be objects")
        if store is not None and not isinstance(store, str):
            raise InputError(f"{path}: 'credsStore' must be a string")
        entries = []
        for key, value in auths.items():
            if not isinstance(value, dict):
                raise InputError(f"{path}: auths[{key!r}]: expected an object")
            host, namespace = split_auth_key(key)
            entries.append(_Entry(host, namespace, credential=_credential(path, key, value)))
        return cls(
            path,
            tuple(entries),
            {split_auth_key(str(host))[0]: CredentialHelper(str(suffix)) for host, suffix in helpers.items()},
            CredentialHelper(store) if store else None,
        )


@dataclass(frozen=True)
class ChainKeychain:
    """The first file that knows the repository answers."""

    files: Sequence[AuthFile]

    def resolve(self, repository: Repository) -> Credential | None:
        for auth_file in self.files:
            credential = auth_file.resolve(repository)
            if credential is not None:
                return credential
        return None


def default_keychain(environ: Mapping[str, str] | None = None) -> ChainKeychain:
    """The files ``docker`` and ``podman`` read, in the order documented above."""
    environ = os.environ if environ is None else environ
    paths: list[Path] = []
    if environ.get("REGISTRY_AUTH_FILE"):
        paths.append(Path(environ["REGISTRY_AUTH_FILE"]))
    docker_directory = Path(environ["DOCKER_CONFIG"]) if environ.get("DOCKER_CONFIG") else Path.home() / ".docker"
    paths.append(docker_directory / "config.json")
    if environ.get("XDG_RUNTIME_DIR"):
        paths.append(Path(environ["XDG_RUNTIME_DIR"]) / "containers" / "auth.json")
    return ChainKeychain(tuple(AuthFile.load(path) for path in paths))


def split_auth_key(key: str) -> tuple[str, str]:
    """An auth file key as (registry, namespace).

    ``https://index.docker.io/v1/`` → (``docker.io``, ``""``): Docker's legacy URL keys name a host,
    their path means nothing. ``quay.io/team/app`` → (``quay.io``, ``team/app``): podman's keys may
    name a namespace or repository.
    """
    text = key.strip()
    legacy = text.lower().startswith(("https://", "http://"))
    if legacy:
        text = text.split("://", 1)[1]
    host, _, namespace = text.partition("/")
    host = host.lower()
    if host in _DOCKER_HUB_KEY_HOSTS:
        host = DOCKER_HUB
    if legacy:
        namespace = ""
    namespace = namespace.strip("/")
    if host == DOCKER_HUB and namespace and "/" not in namespace:
        namespace = f"library/{namespace}"
    return host, namespace


def server_url_for(registry: str) -> str:
    """What a credential helper is asked for: Docker Hub's legacy URL, or the host."""
    return DOCKER_HUB_CONFIG_KEY if registry == DOCKER_HUB else registry


def _credential(path: Path, key: str, entry: dict[str, object]) -> Credential | None:
    values = {name: entry.get(name) or "" for name in ("username", "password", "identitytoken", "registrytoken")}
    if not all(isinstance(value, str) for value in values.values()):
        raise InputError(f"{path}: auths[{key!r}]: credentials must be strings")
    username, password = str(values["username"]), str(values["password"])
    encoded = entry.get("auth")
    if encoded:
        try:
            decoded = base64.b64decode(str(encoded), validate=True).decode()
        except (binascii.Error, UnicodeDecodeError):
            raise InputError(f"{path}: auths[{key!r}].auth: not base64 of user:password") from None
        if ":" not in decoded:
            raise InputError(f"{path}: auths[{key!r}].auth: not base64 of user:password")
        username, _, password = decoded.partition(":")
    identity_token, registry_token = str(values["identitytoken"]), str(values["registrytoken"])
    if not (username or password or identity_token or registry_token):
        return None
    return Credential(username, password, identity_token, registry_token)
