"""The operations behind the commands: ``lock`` and ``check`` on a project's two files.

This module decides what must be resolved and what may be kept; it opens a registry client
only when something must be resolved, and writes the lock only after everything resolved.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from imagelock.config import Config, ImageSpec, RegistrySettings, load_config
from imagelock.events import Events, Silent
from imagelock.lockfile import Lock, LockedImage, read_lock, write_atomic
from imagelock.registry import HostSettings, Keychain, RegistryClient, RetryPolicy, default_keychain
from imagelock.resolver import resolve_all


@dataclass(frozen=True)
class Plan:
    """What a ``lock`` run keeps, resolves and drops, decided without the network."""

    kept: Mapping[str, LockedImage]
    to_resolve: tuple[ImageSpec, ...]
    dropped: tuple[str, ...]


@dataclass(frozen=True)
class LockResult:
    lock: Lock
    resolved: tuple[str, ...]
    dropped: tuple[str, ...]
    written: bool


@dataclass(frozen=True)
class Staleness:
    name: str
    reason: str  # "not locked", "spec changed", "not in images.toml", ...


def default_lockfile(config_path: Path) -> Path:
    return config_path.with_name("images.lock")


def plan(config: Config, existing: Lock | None) -> Plan:
    locked = existing.images if existing is not None else {}
    kept = {
        name: locked[name]
        for name, spec in config.images.items()
        if name in locked and locked[name].spec == spec.spec_hash and locked[name].image == str(spec.repository)
    }
    to_resolve = tuple(spec for name, spec in config.images.items() if name not in kept)
    dropped = tuple(sorted(name for name in locked if name not in config.images))
    return Plan(kept, to_resolve, dropped)


def lock(
    config_path: Path,
    lock_path: Path | None = None,
    *,
    keychain: Keychain | None = None,
    events: Events | None = None,
    retry: RetryPolicy | None = None,
) -> LockResult:
    """Bring the lock up to date with images.toml, resolving only new or changed entries."""
    config = load_config(config_path)
    lock_path = lock_path or default_lockfile(config_path)
    existing = read_lock(lock_path)
    work = plan(config, existing)
    resolved: dict[str, LockedImage] = {}
    if work.to_resolve:
        previous = existing.images if existing is not None else {}
        resolved = asyncio.run(
            _resolve(
                config,
                work.to_resolve,
                previous,
                keychain=keychain or default_keychain(),
                events=events or Silent(),
                retry=retry,
            )
        )
    images = {**work.kept, **resolved}
    new_lock = Lock(inputs=config.inputs_hash, images=dict(sorted(images.items())))
    text = new_lock.dumps()
    written = existing is None or existing.dumps() != text
    if written:
        write_atomic(lock_path, text)
    return LockResult(new_lock, tuple(sorted(resolved)), work.dropped, written)


def check(config_path: Path, lock_path: Path | None = None) -> list[Staleness]:
    """Entries that are out of date; an empty list means the lock matches images.toml. Offline."""
    config = load_config(config_path)
    lock_path = lock_path or default_lockfile(config_path)
    existing = read_lock(lock_path)
    if existing is None:
        return [Staleness(name, "not locked") for name in config.images]
    work = plan(config, existing)
    stale = [
        Staleness(spec.name, "spec changed" if spec.name in existing.images else "not locked")
        for spec in work.to_resolve
    ]
    stale += [Staleness(name, "not in images.toml") for name in work.dropped]
    if not stale and existing.inputs != config.inputs_hash:
        stale.append(Staleness("(lock)", "inputs hash does not match images.toml"))
    return sorted(stale, key=lambda entry: entry.name)


async def _resolve(
    config: Config,
    specs: tuple[ImageSpec, ...],
    previous: Mapping[str, LockedImage],
    *,
    keychain: Keychain,
    events: Events,
    retry: RetryPolicy | None,
) -> dict[str, LockedImage]:
    settings = {host: _host_settings(registry) for host, registry in config.registries.items()}
    async with RegistryClient.open(keychain, settings, events=events, retry=retry) as client:
        return await resolve_all(specs, client, previous, events)


def _host_settings(registry: RegistrySettings) -> HostSettings:
    defaults = HostSettings()
    return HostSettings(
        insecure=registry.insecure,
        ca_cert=registry.ca_cert,
        concurrency=registry.concurrency or defaults.concurrency,
        timeout=registry.timeout or defaults.timeout,
    )
