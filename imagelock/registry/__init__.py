"""The registry client: authentication, transport and manifests behind one small surface."""

from imagelock.registry.authn import Anonymous, ChainKeychain, Credential, Keychain, default_keychain
from imagelock.registry.client import RegistryClient
from imagelock.registry.manifests import Manifest
from imagelock.registry.reader import ImageReader
from imagelock.registry.transport import HostSettings, RetryPolicy

__all__ = [
    "Anonymous",
    "ChainKeychain",
    "Credential",
    "HostSettings",
    "ImageReader",
    "Keychain",
    "Manifest",
    "RegistryClient",
    "RetryPolicy",
    "default_keychain",
]
