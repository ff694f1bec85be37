"""The operations behind the commands, on one project's two files (images.toml and images.lock).

``Project`` decides what must be resolved and what may be kept; it opens a registry client only
when something must be asked of a registry, and writes a file only after everything it depends
on succeeded. Nothing here knows about the terminal.
"""

from __future__ import annotations

import os
import shlex
from collections.abc import Awaitable, Callable, Collection, Mapping, Sequence
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, field, replace
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar

from packaging.specifiers import SpecifierSet

from imagelock.config import Config, ImageSpec, RegistrySettings, constraint_changes, load_config, parse_config
from imagelock.errors import InputError, TagMovedError, did_you_mean
from imagelock.events import Events, Silent
from imagelock.freshness import format_time, parse_time, tag_move_kind
from imagelock.lockfile import Lock, LockedImage, MergedConflict, exclusive, read_lock, read_lock_merging, write_atomic
from imagelock.versions import TagMatcher

if TYPE_CHECKING:
    from imagelock import pinning
    from imagelock.audit.database import Database
    from imagelock.audit.layers import LayerCache
    from imagelock.audit.scan import AuditReport
    from imagelock.bundle import BundleReader, BundleResult
    from imagelock.mirror import MirrorResult, TransferProgress
    from imagelock.registry import HostSettings, Keychain, RegistryClient, RetryPolicy
    from imagelock.relocation import Relocation
    from imagelock.resolver import Explanation, Gate, Resolution
    from imagelock.verification import Verification

T = TypeVar("T")
DEFAULT_CONFIG = "images.toml"
DEFAULT_LOCKFILE = "images.lock"


@dataclass(frozen=True)
class Change:
    """How one entry of the lock changes: added, removed, upgraded, downgraded, changed, rebuilt, tag moved,
    re-indexed, unchanged (docs/selection.md, "Tags that move")."""

    name: str
    kind: str
    old: LockedImage | None
    new: LockedImage | None
    skipped: str | None = None  # newer candidates passed over when resolving: "2 newer skipped: missing linux/s390x"
    made: datetime | None = None  # when the new entry's image was made, when resolving looked (outdated)

    @property
    def held_back(self) -> bool:
        """A followed tag moved to a digest the freshness rules refuse, and the old pin was kept."""
        return self.skipped is not None and self.skipped.startswith("held back")


@dataclass(frozen=True)
class LockResult:
    lock: Lock
    changes: tuple[Change, ...]  # one per entry of the old or new lock, sorted by name
    written: bool  # the lock file was (or, before writing, needs to be) rewritten
    merged: MergedConflict | None = None  # the lock had git conflict markers, and this is how they were merged

    @property
    def changed(self) -> tuple[Change, ...]:
        return tuple(change for change in self.changes if change.kind != "unchanged")


@dataclass(frozen=True)
class Staleness:
    name: str
    reason: str  # "not locked", what changed (`version ">=1.25" → ">=1.26"`), "not in images.toml", "inputs hash …"


@dataclass(frozen=True)
class Project:
    config_path: Path
    lock_path: Path
    keychain: Keychain | None = None
    events: Events = field(default_factory=Silent)
    retry: RetryPolicy | None = None
    vulnerability_db: Path | None = None  # OSV records offline; None: the OSV API
    osv_url: str | None = None  # the OSV API's address, when not api.osv.dev
    cache: Path | None = None  # where layer inventories are kept; None: the user's cache directory
    exclude_newer: str | None = None  # --exclude-newer: an RFC 3339 time every entry resolves as of

    @classmethod
    def at(cls, config_path: Path, lock_path: Path | None = None, **options: object) -> Project:
        return cls(config_path, lock_path or config_path.with_name(DEFAULT_LOCKFILE), **options)  # type: ignore[arg-type]

    # -- lock and update -------------------------------------------------------------------------

    def lock(self, *, upgrade: bool | Collection[str] = False, dry_run: bool = False) -> LockResult:
        """Bring the lock up to date with images.toml, like pip-compile.

        Entries whose spec is unchanged keep their pins unless ``upgrade`` is true (all) or names
        them; new, changed and upgraded entries are resolved; removed ones are dropped. A lock with
        git conflict markers is merged first; the entries its two sides dispute are resolved again.
        """
        with self._writing(dry_run):
            config = self._resolution_config()
            existing, merged = read_lock_merging(self.lock_path)
            if merged is not None and upgrade is not True:  # the entries a merged conflict disputes: resolved again
                upgrade = {*(upgrade or ()), *(name for name in merged.disputed if name in config.images)}
            result = replace(self._resolve_lock(config, existing, upgrade), merged=merged)
            self._check_tag_moves(config, result.changes)
            if dry_run:
                return replace(result, written=False)
            if result.written:
                write_atomic(self.lock_path, result.lock.dumps())
            return result

    def _resolution_config(self) -> Config:
        """images.toml, with ``--exclude-newer`` (when given) in every entry in place of its own."""
        config = load_config(self.config_path)
        if self.exclude_newer is None:
            return config
        try:
            moment = parse_time(self.exclude_newer)
        except ValueError as error:
            raise InputError(f"--exclude-newer: {error}") from None
        return config.excluding_newer(moment)

    def _check_tag_moves(self, config: Config, changes: Sequence[Change]) -> None:
        """Warn of every tag chosen as a version that now names another digest; fail under ``on-tag-move = "fail"``."""
        moved = [change for change in changes if change.kind == "tag moved"]
        for change in moved:
            self.events.warning(f"[images.{change.name}]: {_moved_words(change)}")
        refused = [change for change in moved if config.images[change.name].on_tag_move == "fail"]
        if refused:
            first = refused[0]
            raise TagMovedError(
                f'[images.{first.name}]: {_moved_words(first)} (on-tag-move = "fail");'
                f" {len(refused)} moved tag(s), {self.lock_path} not changed"
            )

    def _writing(self, dry_run: bool = False) -> AbstractContextManager[None]:
        """One writing run per project directory at a time (a read-only run does not wait)."""
        if dry_run:
            return nullcontext()
        return exclusive(self.lock_path.parent.resolve(), self.events.warning)

    def _existing(self) -> Lock | None:
        return read_lock(self.lock_path)

    def _resolve_lock(
        self, config: Config, existing: Lock | None, upgrade: bool | Collection[str], *, timed: bool = False
    ) -> LockResult:
        locked = dict(existing.images) if existing is not None else {}
        upgrading = set(config.images) if upgrade is True else set(upgrade or ())
        unknown = sorted(upgrading - set(config.images))
        if unknown:
            raise InputError(
                f"{self.config_path}: no image named {unknown[0]!r} (images: {', '.join(config.images) or 'none'})"
                + did_you_mean(unknown[0], config.images)
            )
        kept = {
            name: replace(locked[name], constraint=spec.constraint)  # in words what the hash already vouches for
            for name, spec in config.images.items()
            if name not in upgrading and name in locked and _is_current(locked[name], spec)
        }
        to_resolve = [spec for name, spec in config.images.items() if name not in kept]
        resolved: dict[str, Resolution] = {}
        if to_resolve:
            from imagelock.resolver import resolve_all

            gate = (
                self._audit_gate() if any(spec.audit is not None and spec.audit.gate for spec in to_resolve) else None
            )
            resolved = self._run(
                lambda client: resolve_all(to_resolve, client, locked, self.events, gate, timed=timed), config
            )
        new_images = {**kept, **{name: resolution.locked for name, resolution in resolved.items()}}
        source = os.path.relpath(self.config_path, self.lock_path.parent)
        new_lock = Lock(inputs=config.inputs_hash, images=new_images, command=self._command(), source=source)
        changes = tuple(
            replace(change, skipped=resolved[change.name].skipped_summary, made=resolved[change.name].made)
            if change.name in resolved
            else change
            for change in changes_between(locked, new_lock.images, config)
        )
        current_text = _read_text(self.lock_path)
        return LockResult(new_lock, changes, current_text != new_lock.dumps())

    def _command(self) -> str:
        """The command that regenerates this lock, with paths relative to the lock's directory."""
        base = self.lock_path.parent
        words = ["imagelock", "lock"]
        if self.config_path.resolve() != (base / DEFAULT_CONFIG).resolve():
            words += ["-c", os.path.relpath(self.config_path, base)]
        if self.lock_path.resolve() != self.config_path.resolve().with_name(DEFAULT_LOCKFILE):
            words += ["--lockfile", self.lock_path.name]
        if self.exclude_newer is not None:
            words += ["--exclude-newer", format_time(parse_time(self.exclude_newer))]
        return shlex.join(words)

    # -- read-only commands ----------------------------------------------------------------------

    def inputs(self) -> tuple[Path, ...]:
        """The files the answers of ``check`` and of a ``lock`` with nothing to do depend on."""
        return (self.config_path, *load_config(self.config_path).files, self.lock_path)

    def check(self) -> list[Staleness]:
        """Entries that are out of date; empty when the lock matches images.toml. Offline."""
        config = load_config(self.config_path)
        existing = self._existing()
        locked = existing.images if existing is not None else {}
        stale = [
            Staleness(name, _what_changed(locked[name], spec) if name in locked else "not locked")
            for name, spec in config.images.items()
            if name not in locked or not _is_current(locked[name], spec)
        ]
        stale += [Staleness(name, "not in images.toml") for name in locked if name not in config.images]
        if existing is not None and not stale and existing.inputs != config.inputs_hash:
            stale.append(Staleness("(lock)", "inputs hash does not match images.toml"))
        return sorted(stale, key=lambda entry: entry.name)

    def outdated(self) -> list[Change]:
        """Entries an update would move: a newer allowed tag, or a followed tag that names a new digest."""
        config = self._resolution_config()
        result = self._resolve_lock(config, self._existing(), upgrade=True, timed=True)
        return [change for change in result.changed if change.kind != "removed"]

    def why(self, name: str) -> Explanation:
        config = self._resolution_config()
        spec = self._spec(config, name)
        existing = self._existing()
        previous = existing.images.get(name) if existing is not None else None
        from imagelock.resolver import explain

        gate = self._audit_gate() if spec.audit is not None and spec.audit.gate else None
        return self._run(lambda client: explain(spec, client, previous, gate), config)

    def verify(self, *, bundle: Path | None = None) -> list[Verification]:
        """Check the locked digests at their registries, or (offline) that ``bundle`` holds exactly them."""
        entries = list(self._locked_entries().values())
        config = load_config(self.config_path)
        policies = {name: spec.policy for name, spec in config.images.items()}
        from imagelock.verification import verify_all

        if bundle is not None:
            from imagelock.bundle import verify_bundle

            return self._with_bundle(bundle, lambda reader: verify_bundle(reader, entries, policies))
        return self._run(lambda client: verify_all(entries, client, policies, config.images), config) if entries else []

    def audit(
        self, names: Sequence[str] = (), *, fail_on: str | None = None, bundle: Path | None = None
    ) -> AuditReport:
        """Audit the locked images (all, or those named) for known vulnerabilities, per their audit policy,
        reading them from their registries or from ``bundle``.

        Entries with ``audit = false`` are left out unless named.
        """
        from imagelock.audit.gate import audited_platforms
        from imagelock.audit.policy import AuditPolicy
        from imagelock.audit.scan import AuditReport, Target, audit
        from imagelock.reference import parse_repository

        locked = self._locked_entries()
        config = load_config(self.config_path)
        unknown = [name for name in names if name not in locked]
        if unknown:
            known = ", ".join(sorted(locked)) or "none"
            raise InputError(
                f"{self.lock_path}: no locked image named {unknown[0]!r} (locked: {known})"
                + did_you_mean(unknown[0], locked)
            )
        targets = []
        for name in names or sorted(locked):
            entry, spec = locked[name], config.images.get(name)
            policy = spec.audit if spec is not None else AuditPolicy()
            if policy is None:
                if not names:
                    continue
                policy = AuditPolicy()
            if fail_on is not None:
                policy = replace(policy, fail_on=fail_on)
            platforms = audited_platforms(spec, entry.platforms)
            trust = spec.policy if spec is not None else None
            repository = parse_repository(entry.image)
            targets.append(Target(name, repository, entry.tag, entry.digest, platforms, policy, trust))
        if not targets:
            return AuditReport(())
        database, cache = self._audit_sources()
        if bundle is not None:
            return self._with_bundle(bundle, lambda reader: audit(targets, reader, database, cache))
        return self._run(lambda client: audit(targets, client, database, cache), config)

    def _audit_sources(self) -> tuple[Database, LayerCache]:
        from imagelock.audit.database import OSV_API, OfflineDatabase, OnlineDatabase
        from imagelock.audit.layers import LayerCache, cache_dir

        database: Database = (
            OfflineDatabase(self.vulnerability_db)
            if self.vulnerability_db is not None
            else OnlineDatabase(self.osv_url or OSV_API)
        )
        return database, LayerCache(self.cache or cache_dir())

    def _audit_gate(self) -> Gate:
        from imagelock.audit.gate import audit_gate

        return audit_gate(*self._audit_sources())

    def mirror(
        self,
        target: str,
        names: Sequence[str] = (),
        *,
        progress: TransferProgress | None = None,
        chunk_size: int | None = None,
    ) -> MirrorResult:
        """Copy the locked images (all, or the named ones) into ``target``, digests unchanged."""
        from imagelock import mirror

        parsed = mirror.parse_target(target)
        locked = self._locked_entries()
        config = load_config(self.config_path)
        for name in names:
            if name not in locked:
                self._spec(config, name)  # not in images.toml: exit 2 naming it
        entries = self._fresh_entries(locked, names)
        planned = mirror.plan(entries, parsed)
        images = self._run(
            lambda client: mirror.mirror_all(
                planned, client, events=self.events, progress=progress, chunk_size=chunk_size
            ),
            config,
        )
        return mirror.MirrorResult(str(parsed), images)

    def bundle(self, out: Path, names: Sequence[str] = (), *, progress: TransferProgress | None = None) -> BundleResult:
        """Write the locked images (all, or the named ones) with their signatures as an OCI layout at ``out``
        (a directory, or a file ending in ``.tar``), the lock inside."""
        from imagelock.bundle import write_bundle

        existing = self._existing()
        if existing is None:
            raise InputError(f"{self.lock_path}: not found; run 'imagelock lock'")
        config = load_config(self.config_path)
        for name in names:
            if name not in existing.images:
                known = ", ".join(sorted(existing.images)) or "none"
                raise InputError(f"{self.lock_path}: no locked image named {name!r} (locked: {known})")
        entries = self._fresh_entries(existing.images, names)
        return self._run(
            lambda client: write_bundle(entries, existing, out, client, events=self.events, progress=progress), config
        )

    def load(
        self, bundle: Path, target: str, names: Sequence[str] = (), *, progress: TransferProgress | None = None
    ) -> MirrorResult:
        """Push the images of ``bundle`` (all, or the named ones) into ``target`` as ``mirror`` would, each
        digest checked against the lock inside the bundle (else this project's lock) before anything is pushed."""
        from imagelock import mirror
        from imagelock.bundle import open_bundle

        parsed = mirror.parse_target(target)
        config = load_config(self.config_path) if self.config_path.exists() else parse_config("", self.config_path)
        reader = open_bundle(bundle)
        try:
            lock = reader.lock or self._existing()
            if lock is None:
                raise InputError(f"{bundle}: holds no {DEFAULT_LOCKFILE}, and {self.lock_path} is not found")
            unknown = [name for name in names if name not in lock.images]
            if unknown:
                known = ", ".join(sorted(lock.images)) or "none"
                raise InputError(f"{bundle}: no locked image named {unknown[0]!r} (locked: {known})")
            entries = [lock.images[name] for name in (dict.fromkeys(names) or sorted(lock.images))]
            for entry in entries:
                reader.locked_image(entry)
            planned = mirror.plan(entries, parsed)

            async def load_all(client: RegistryClient) -> tuple[mirror.MirroredImage, ...]:
                await reader.check_integrity()  # every blob, before anything is pushed
                return await mirror.mirror_all(planned, client, events=self.events, progress=progress, source=reader)

            images = self._run(load_all, config)
        finally:
            reader.close()
        return mirror.MirrorResult(str(parsed), images)

    # -- editing images.toml ---------------------------------------------------------------------

    def add(self, name: str, image: str, *, version: str | None, tag: str | None, variant: str | None) -> LockResult:
        """Add an entry to images.toml, keeping its comments and layout, and lock it.

        Nothing is written unless the new entry is valid and resolves.
        """
        from imagelock import edit

        with self._writing():
            text = _read_text(self.config_path) or ""
            config = load_config(self.config_path) if text else parse_config("", self.config_path)
            if name.lower() in {existing.lower() for existing in config.images}:
                raise InputError(f"{self.config_path}: [images.{name}]: already defined; edit it or remove it first")
            new_text = edit.add_image(text, name, edit.entry(image, version=version, tag=tag, variant=variant))
            new_config = parse_config(new_text, self.config_path)
            result = self._resolve_lock(new_config, self._existing(), upgrade=False)
            write_atomic(self.config_path, new_text)
            write_atomic(self.lock_path, result.lock.dumps())
            return result

    def remove(self, name: str) -> LockResult:
        from imagelock import edit

        with self._writing():
            text = _read_text(self.config_path)
            config = load_config(self.config_path)
            self._spec(config, name)
            assert text is not None
            new_text = edit.remove_image(text, name)
            new_config = parse_config(new_text, self.config_path)
            result = self._resolve_lock(new_config, self._existing(), upgrade=False)
            write_atomic(self.config_path, new_text)
            write_atomic(self.lock_path, result.lock.dumps())
            return result

    # -- deploy files ----------------------------------------------------------------------------

    def render(
        self, paths: Sequence[Path], out: Path | None, *, check: bool = False, relocations: Sequence[Relocation] = ()
    ) -> RenderResult:
        """Render templates with the lock; write every output only after all of them rendered."""
        from imagelock import templates
        from imagelock.relocation import relocate_entries

        entries = relocate_entries(self._locked_entries(), relocations)
        jobs = _render_jobs(paths, out)
        env = templates.environment()
        outputs = []
        for source, target in jobs:
            try:
                text = source.read_text(encoding="utf-8")
            except (OSError, UnicodeDecodeError) as error:
                raise InputError(f"{source}: cannot read template: {error}") from None
            outputs.append((target, templates.render(source, text, entries, env)))
        drift = [target for target, text in outputs if target is not None and _read_text(target) != text]
        if not check:
            for target, text in outputs:
                if target is not None:
                    target.parent.mkdir(parents=True, exist_ok=True)
                    write_atomic(target, text)
        return RenderResult(tuple(outputs), tuple(drift))

    def pin(self, paths: Sequence[Path], *, check: bool = False, relocations: Sequence[Relocation] = ()) -> PinResult:
        """Rewrite image references in files to their pinned form; write only after every file is planned."""
        from imagelock import pinning

        entries = self._locked_entries()
        files, not_scanned = pinning.find_files(paths)
        plans, skipped, notices = pinning.plan_pins(files, entries, relocations)
        if not check:
            for plan in plans:
                if plan.new_text != plan.old_text:
                    write_atomic(plan.path, plan.new_text)
        return PinResult(tuple(plans), tuple(skipped), tuple(not_scanned + notices))

    def init(self, paths: Sequence[Path], *, force: bool = False) -> InitResult:
        """Write a starting images.toml that follows the tags found in deploy files."""
        from imagelock import edit, pinning

        with self._writing():
            if self.config_path.exists() and not force:
                raise InputError(f"{self.config_path}: already exists (use --force to overwrite it)")
            files, not_scanned = pinning.find_files(paths)
            references, skipped, notices = pinning.references_in(files)
            text = edit.initial_config(references, [str(path) for path in paths])
            config = parse_config(text, self.config_path)
            write_atomic(self.config_path, text)
            return InitResult(config, tuple(skipped), tuple(not_scanned + notices))

    # -- references for other tools (offline, from the lock alone, like render and pin) ----------

    def ref(
        self,
        name: str,
        *,
        platform: str | None = None,
        digest_only: bool = False,
        relocations: Sequence[Relocation] = (),
    ) -> str:
        """The pinned reference of one locked image: ``image:tag@digest``, or ``image@digest`` with
        ``digest_only``; with ``platform``, that platform's manifest digest."""
        from imagelock.platforms import parse_platform
        from imagelock.relocation import relocate_entry

        entries = self._locked_entries()
        if name not in entries:
            known = ", ".join(sorted(entries)) or "none"
            raise InputError(
                f"{self.lock_path}: no image named {name!r} (images.lock has: {known}){did_you_mean(name, entries)}"
            )
        entry = relocate_entry(entries[name], relocations)
        digest = entry.digest
        if platform is not None:
            wanted = str(parse_platform(platform))
            platforms = {str(parse_platform(key)): value for key, value in entry.platforms.items()}
            if wanted not in platforms:
                offered = ", ".join(sorted(platforms)) or "none"
                raise InputError(
                    f"{self.lock_path}: [images.{name}]: platform {wanted} is not locked (locked: {offered})"
                )
            digest = platforms[wanted]
        return f"{entry.image}@{digest}" if digest_only else f"{entry.image}:{entry.tag}@{digest}"

    def export(self, format_name: str, *, relocations: Sequence[Relocation] = ()) -> str:
        """The lock as a kustomization ``images:`` list, a Helm values fragment, or JSON (see ``imagelock.export``)."""
        from imagelock import export
        from imagelock.relocation import relocate_entries

        entries = self._locked_entries()
        if format_name not in export.FORMATS:
            raise InputError(f"unknown export format {format_name!r} (formats: {', '.join(export.FORMATS)})")
        return export.export(format_name, relocate_entries(entries, relocations), entries)

    def names(self) -> list[str]:
        """The image names of images.toml, or of the lock when images.toml cannot be read; never raises
        (for shell completion)."""
        try:
            return list(load_config(self.config_path).images)
        except (InputError, OSError):
            pass
        try:
            existing = self._existing()
        except (InputError, OSError):
            return []
        return sorted(existing.images) if existing is not None else []

    # -- helpers ---------------------------------------------------------------------------------

    def _locked_entries(self) -> Mapping[str, LockedImage]:
        existing = self._existing()
        if existing is None:
            raise InputError(f"{self.lock_path}: not found; run 'imagelock lock'")
        return existing.images

    def _fresh_entries(self, locked: Mapping[str, LockedImage], names: Sequence[str]) -> list[LockedImage]:
        """The named locked entries (default: all), once the lock is known to match images.toml (else exit 1)."""
        from imagelock.mirror import StaleLockError

        stale = self.check()
        if stale:
            reasons = ", ".join(f"{entry.name}: {entry.reason}" for entry in stale)
            raise StaleLockError(f"{self.lock_path} is stale ({reasons}); run 'imagelock lock' first")
        return [locked[name] for name in (dict.fromkeys(names) or sorted(locked))]

    def _with_bundle(self, path: Path, work: Callable[[BundleReader], Awaitable[T]]) -> T:
        """Run ``work`` reading images from the bundle at ``path`` (no registry, no network)."""
        import asyncio

        from imagelock.bundle import open_bundle

        reader = open_bundle(path)

        async def main() -> T:
            return await work(reader)

        try:
            return asyncio.run(main())
        finally:
            reader.close()

    def _spec(self, config: Config, name: str) -> ImageSpec:
        if name not in config.images:
            raise InputError(
                f"{self.config_path}: no image named {name!r} (images: {', '.join(config.images) or 'none'})"
                + did_you_mean(name, config.images)
            )
        return config.images[name]

    def _run(self, work: Callable[[RegistryClient], Awaitable[T]], config: Config) -> T:
        """Run ``work`` with a registry client open for this run."""
        from imagelock.registry import HostSettings, RegistryClient, default_keychain

        settings = {host: _host_settings(registry) for host, registry in config.registries.items()}
        for host, ca_cert in _notary_servers(config).items():
            settings.setdefault(host, HostSettings(ca_cert=ca_cert))
        keychain = self.keychain or default_keychain()

        async def main() -> T:
            async with RegistryClient.open(keychain, settings, events=self.events, retry=self.retry) as client:
                return await work(client)

        import asyncio

        return asyncio.run(main())


@dataclass(frozen=True)
class RenderResult:
    outputs: tuple[tuple[Path | None, str], ...]  # (output path, or None for stdout; rendered text)
    drift: tuple[Path, ...]  # outputs whose file on disk differs (or is missing)


@dataclass(frozen=True)
class PinResult:
    plans: tuple[pinning.FilePlan, ...]
    skipped: tuple[pinning.Skipped, ...]
    notices: tuple[pinning.Notice, ...]  # files not scanned, or not readable as their kind

    @property
    def changes(self) -> tuple[pinning.PinChange, ...]:
        return tuple(change for plan in self.plans for change in plan.changes)


@dataclass(frozen=True)
class InitResult:
    config: Config
    skipped: tuple[pinning.Skipped, ...]
    notices: tuple[pinning.Notice, ...]


def _render_jobs(paths: Sequence[Path], out: Path | None) -> list[tuple[Path, Path | None]]:
    """(template, output) pairs: a directory keeps its files' relative paths under ``out``."""
    if not paths:
        raise InputError("render needs at least one template file or directory")
    single_file = len(paths) == 1 and paths[0].is_file()
    if out is None and not single_file:
        raise InputError("rendering several templates or a directory needs -o OUT (a directory)")
    jobs: list[tuple[Path, Path | None]] = []
    for path in paths:
        if path.is_dir():
            assert out is not None
            jobs += [(file, out / file.relative_to(path)) for file in sorted(path.rglob("*")) if file.is_file()]
        elif path.is_file():
            if out is None:
                jobs.append((path, None))
            elif single_file and not out.is_dir():
                jobs.append((path, out))
            else:
                jobs.append((path, out / path.name))
        else:
            raise InputError(f"{path}: not found")
    return jobs


def _is_current(entry: LockedImage, spec: ImageSpec) -> bool:
    return entry.spec == spec.spec_hash and entry.image == str(spec.repository)


def _what_changed(entry: LockedImage, spec: ImageSpec) -> str:
    """Why a stale entry is stale, key by key when the lock recorded its constraint: ``version ">=1.25" → ">=1.26"``."""
    changes = [] if entry.image == str(spec.repository) else [f'image "{entry.image}" → "{spec.repository}"']
    if entry.constraint is None:  # an older imagelock's lock: only the hash to go by
        return ", ".join(changes) or "spec changed"
    changes += constraint_changes(entry.constraint, spec)
    return ", ".join(changes) or "spec changed (verify or audit gate)"


def changes_between(
    old: Mapping[str, LockedImage], new: Mapping[str, LockedImage], config: Config | None = None
) -> tuple[Change, ...]:
    """One change per entry of either lock, sorted by name."""
    changes = []
    for name in sorted(set(old) | set(new)):
        before, after = old.get(name), new.get(name)
        spec = config.images.get(name) if config is not None else None
        changes.append(Change(name, _kind(before, after, spec), before, after))
    return tuple(changes)


def _kind(old: LockedImage | None, new: LockedImage | None, spec: ImageSpec | None) -> str:
    if old is None:
        return "added"
    if new is None:
        return "removed"
    if old.image != new.image:
        return "changed"
    if old.tag == new.tag:
        followed = spec is None or spec.tag is not None
        return "unchanged" if old.digest == new.digest else tag_move_kind(followed, old.platforms, new.platforms)
    matcher = spec.matcher if spec is not None and spec.matcher is not None else TagMatcher(SpecifierSet(""))
    before, after = matcher.read(old.tag), matcher.read(new.tag)
    if before is None or after is None:
        return "changed"
    return "upgraded" if after.rank > before.rank else "downgraded" if after.rank < before.rank else "changed"


def _moved_words(change: Change) -> str:
    assert change.old is not None
    assert change.new is not None
    return f"tag {change.new.tag} moved: {change.old.digest} → {change.new.digest}"


def _notary_servers(config: Config) -> dict[str, Path | None]:
    """The notary server host of each content-trust policy in use, with the CA its policy gives."""
    if all(spec.policy is None for spec in config.images.values()):
        return {}  # and the trust methods are not loaded
    from imagelock.trust.content_trust import ContentTrustPolicy, notary_host

    servers: dict[str, Path | None] = {}
    for spec in config.images.values():
        if isinstance(spec.policy, ContentTrustPolicy):
            server = spec.policy.server_for(spec.repository)
            if server is not None:
                servers[notary_host(server)] = spec.policy.ca_cert
    return servers


def _host_settings(registry: RegistrySettings) -> HostSettings:
    from imagelock.registry import HostSettings

    defaults = HostSettings()
    return HostSettings(
        insecure=registry.insecure,
        ca_cert=registry.ca_cert,
        concurrency=registry.concurrency or defaults.concurrency,
        timeout=registry.timeout or defaults.timeout,
        tag_api=registry.tag_api,
        http2=registry.http2,
    )


def _read_text(path: Path) -> str | None:
    try:
        return path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None
    except (OSError, UnicodeDecodeError) as error:
        raise InputError(f"{path}: cannot read: {error}") from None
