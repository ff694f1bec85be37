"""Finding image references in deploy files and pinning them to the lock (``imagelock pin``, ``init``).

File kinds: Dockerfiles (``Dockerfile``, ``*.Dockerfile``, ``Dockerfile.*``, ``Containerfile``) and
YAML (``*.yaml``, ``*.yml``: Kubernetes, Compose, Helm values, kustomizations).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from imagelock.errors import InputError
from imagelock.lockfile import LockedImage
from imagelock.pinning.dockerfiles import scan_dockerfile
from imagelock.pinning.sites import Edit, Site, Skipped, apply_edits, name_part, pinned
from imagelock.pinning.yamlfiles import scan_yaml
from imagelock.reference import Reference, parse_reference
from imagelock.relocation import Relocation, relocate_entries, relocate_entry

__all__ = ["FilePlan", "PinChange", "Site", "Skipped", "find_files", "match", "plan_pins", "references_in", "scan"]


@dataclass(frozen=True)
class PinChange:
    path: Path
    line: int
    old: str
    new: str
    name: str  # the lock entry


@dataclass(frozen=True)
class FilePlan:
    path: Path
    old_text: str
    new_text: str
    changes: tuple[PinChange, ...]


def kind_of(path: Path) -> str | None:
    name = path.name
    if name in ("Dockerfile", "Containerfile") or name.endswith(".Dockerfile") or name.startswith("Dockerfile."):
        return "dockerfile"
    if path.suffix in (".yaml", ".yml"):
        return "yaml"
    return None


def find_files(paths: Iterable[Path]) -> list[Path]:
    """The files to scan: each file given, and every file of a known kind under each directory given."""
    found: list[Path] = []
    for path in paths:
        if path.is_dir():
            found += sorted(p for p in path.rglob("*") if p.is_file() and kind_of(p) and ".git" not in p.parts)
        elif path.is_file():
            if kind_of(path) is None:
                raise InputError(f"{path}: not a Dockerfile or a YAML file")
            found.append(path)
        else:
            raise InputError(f"{path}: not found")
    return found


def scan(path: Path, text: str) -> tuple[list[Site], list[Skipped]]:
    if kind_of(path) == "dockerfile":
        return scan_dockerfile(path, text)
    return scan_yaml(path, text)


def read_and_scan(path: Path) -> tuple[str, list[Site], list[Skipped]]:
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        raise InputError(f"{path}: cannot read: {error}") from None
    return (text, *scan(path, text))


def match(
    site: Site,
    reference: Reference,
    entries: Mapping[str, LockedImage],
    relocated: Mapping[str, LockedImage] | None = None,
) -> LockedImage | None:
    """The one lock entry a reference in a file stands for, or None.

    By repository after normalisation, and by tag where the file has one; a reference already pinned
    (with a digest) matches its repository's entry whatever its tag, so pins can move forward.
    With ``relocated`` (the entries under ``--relocate``), a reference already naming an entry's
    relocated repository matches it too.
    """
    repository = str(reference.repository)
    same = [
        entry
        for name, entry in entries.items()
        if entry.image == repository or (relocated is not None and relocated[name].image == repository)
    ]
    if reference.digest is not None:
        narrowed = (
            [entry for entry in same if entry.digest == reference.digest]
            or [entry for entry in same if entry.tag == reference.tag]
            or same
        )
    elif reference.tag is not None:
        narrowed = [entry for entry in same if entry.tag == reference.tag]
    else:
        narrowed = same
    if len(narrowed) > 1:
        choices = ", ".join(sorted(entry.name for entry in narrowed))
        raise InputError(f"{site.path}:{site.line}: {site.reference} matches several images ({choices}); tag it")
    return narrowed[0] if narrowed else None


def plan_pins(
    files: Iterable[Path], entries: Mapping[str, LockedImage], relocations: Sequence[Relocation] = ()
) -> tuple[list[FilePlan], list[Skipped]]:
    """What pinning would change in each file, and what it leaves alone (and why).

    With ``relocations``, references are rewritten to the relocated repository (same tag and digest).
    """
    relocated = relocate_entries(entries, relocations) if relocations else None
    plans: list[FilePlan] = []
    left_alone: list[Skipped] = []
    for path in files:
        text, sites, skipped = read_and_scan(path)
        left_alone += skipped
        edits: list[Edit] = []
        changes: list[PinChange] = []
        for site in sites:
            reference = _parse_site(site, left_alone)
            if reference is None:
                continue
            found = match(site, reference, entries, relocated)
            if found is None:
                left_alone.append(Skipped(path, site.line, site.reference, "matches no image in the lock"))
                continue
            entry = relocate_entry(found, relocations)
            site_edits = site.rewrite(entry)
            if any(_changes(text, edit) for edit in site_edits):
                edits += site_edits
                new_reference = pinned(name_part(site.reference), entry)
                changes.append(PinChange(path, site.line, site.reference, new_reference, entry.name))
        new_text = apply_edits(text, edits) if edits else text
        plans.append(FilePlan(path, text, new_text, tuple(changes)))
    return plans, left_alone


def _parse_site(site: Site, skipped: list[Skipped]) -> Reference | None:
    """The site's reference, or None (noted in `skipped`) when it is not an image reference at all."""
    try:
        return parse_reference(site.reference)
    except InputError:
        skipped.append(Skipped(site.path, site.line, site.reference, "not an image reference"))
        return None


def _changes(text: str, edit: Edit) -> bool:
    if edit.insert_line:
        return True
    return text.splitlines(keepends=True)[edit.line][edit.start : edit.end] != edit.text


def references_in(files: Iterable[Path]) -> tuple[list[tuple[str, Reference]], list[Skipped]]:
    """Every distinct image reference in the files, as (name as written, parsed reference), in file order."""
    found: dict[tuple[str, str | None], tuple[str, Reference]] = {}
    skipped: list[Skipped] = []
    for path in files:
        _, sites, left_alone = read_and_scan(path)
        skipped += left_alone
        for site in sites:
            reference = _parse_site(site, skipped)
            if reference is None:
                continue
            if reference.tag is None and reference.digest is not None:
                skipped.append(Skipped(path, site.line, site.reference, "pinned by digest alone: no tag to follow"))
                continue
            key = (str(reference.repository), reference.tag)
            found.setdefault(key, (name_part(site.reference), reference))
    return list(found.values()), skipped
