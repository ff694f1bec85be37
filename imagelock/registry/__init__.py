"""The registry client: authentication, transport and manifests behind one small surface."""

from imagelock.registry.authn import Anonymous, Credential, DockerConfigKeychain, Keychain
from imagelock.registry.client import RegistryClient
from imagelock.registry.manifests import Manifest
from imagelock.registry.transport import HostSettings

__all__ = [
    "Anonymous",
    "Credential",
    "DockerConfigKeychain",
    "HostSettings",
    "Keychain",
    "Manifest",
    "RegistryClient",
]
