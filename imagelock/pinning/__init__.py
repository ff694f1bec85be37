"""Finding image references in deploy files and pinning them to the lock (``imagelock pin``, ``init``).

File kinds: Dockerfiles (``Dockerfile``, ``*.Dockerfile``, ``Dockerfile.*``, ``Containerfile``) and
YAML (``*.yaml``, ``*.yml``: Kubernetes, Compose, Helm values and charts, kustomizations, GitHub
Actions workflows, GitLab CI). One file that cannot be read as its kind is a notice, never the end
of the run; a pin that would leave a file unreadable is an error, and nothing is written.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from imagelock.errors import InputError
from imagelock.lockfile import LockedImage
from imagelock.pinning.dockerfiles import scan_dockerfile
from imagelock.pinning.sites import Edit, Notice, Site, Skipped, apply_edits, name_part, pinned
from imagelock.pinning.yamlfiles import NotYamlError, app_version, compose, scan_yaml
from imagelock.reference import Reference, parse_reference
from imagelock.relocation import Relocation, relocate_entries, relocate_entry

__all__ = [
    "FilePlan",
    "Notice",
    "PinChange",
    "Site",
    "Skipped",
    "find_files",
    "match",
    "plan_pins",
    "references_in",
    "scan",
]


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


def find_files(paths: Iterable[Path]) -> tuple[list[Path], list[Notice]]:
    """The files to scan: each file given, and every file of a known kind under each directory given,
    except a Helm chart's templates (a directory holding ``Chart.yaml`` is a chart; its templates are
    YAML only once rendered), which are listed in a notice."""
    found: list[Path] = []
    notices: list[Notice] = []
    for path in paths:
        if path.is_dir():
            files = sorted(p for p in path.rglob("*") if p.is_file() and kind_of(p) and ".git" not in p.parts)
            templates = [chart / "templates" for chart in sorted({p.parent for p in files if p.name == "Chart.yaml"})]
            for directory in templates:
                skipped = [p.relative_to(directory).as_posix() for p in files if p.is_relative_to(directory)]
                if skipped:
                    notices.append(
                        Notice(
                            directory,
                            None,
                            "note: Helm templates not scanned (YAML only once rendered; the images they use are "
                            f"set in the chart's values files, which are): {', '.join(skipped)}",
                        )
                    )
            found += [p for p in files if not any(p.is_relative_to(directory) for directory in templates)]
        elif path.is_file():
            if kind_of(path) is None:
                raise InputError(f"{path}: not a Dockerfile or a YAML file")
            found.append(path)
        else:
            raise InputError(f"{path}: not found")
    return found, notices


def scan(path: Path, text: str) -> tuple[list[Site], list[Skipped]]:
    """The references in one file's text. Raises NotYamlError for a YAML file that is not YAML."""
    if kind_of(path) == "dockerfile":
        return scan_dockerfile(path, text)
    return scan_yaml(path, text, app_version=_chart_app_version(path))


def _chart_app_version(path: Path) -> str | None:
    """The ``appVersion`` of the chart whose ``Chart.yaml`` sits beside ``path``, if any."""
    chart = path.parent / "Chart.yaml"
    if path.name == "Chart.yaml" or not chart.is_file():
        return None
    try:
        return app_version(chart.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, NotYamlError):
        return None


def read_and_scan(path: Path) -> tuple[str, list[Site], list[Skipped], list[Notice]]:
    try:
        text = path.read_bytes().decode("utf-8")  # not read_text: CRLF line endings must survive
    except (OSError, UnicodeDecodeError) as error:
        raise InputError(f"{path}: cannot read: {error}") from None
    try:
        return (text, *scan(path, text), [])
    except NotYamlError as error:
        return text, [], [], [Notice(path, error.line, f"warning: not YAML ({error.problem}); file skipped")]


def match(
    site: Site,
    reference: Reference,
    entries: Mapping[str, LockedImage],
    relocated: Mapping[str, LockedImage] | None = None,
) -> LockedImage | str:
    """The one lock entry a reference in a file stands for, or why none is.

    By repository after normalisation, and by tag where the file has one; no tag means ``latest``,
    as for ``docker pull``. A reference already pinned (with a digest) matches its repository's entry
    whatever its tag, so pins can move forward. With ``relocated`` (the entries under
    ``--relocate``), a reference already naming an entry's relocated repository matches it too.
    Several matches are an InputError: which one was meant is the user's to say.
    """
    repository = str(reference.repository)
    same = [
        entry
        for name, entry in entries.items()
        if entry.image == repository or (relocated is not None and relocated[name].image == repository)
    ]
    if not same:
        return "matches no image in the lock"
    if site.any_tag and reference.tag is None and reference.digest is None:
        if len(same) == 1:
            return same[0]
        names = ", ".join(sorted(entry.name for entry in same))
        return f"no newTag, and several images of {repository} are locked ({names}); set newTag to choose"
    by_digest = [entry for entry in same if entry.digest == reference.digest]
    if reference.digest is not None and reference.tag is None:
        if by_digest or len(same) == 1:
            return (by_digest or same)[0]
        return f"pinned by digest alone, and several images of {repository} are locked; tag it to choose"
    by_tag = [entry for entry in same if entry.tag == (reference.tag or "latest")]
    if reference.digest is not None:
        narrowed = by_digest or by_tag or same
    elif by_tag or reference.tag is not None:
        narrowed = by_tag
    else:
        names = ", ".join(sorted(entry.name for entry in same))
        return f"no tag means :latest, and no image in the lock follows latest of {repository} (it has {names})"
    if len(narrowed) > 1:
        choices = ", ".join(sorted(entry.name for entry in narrowed))
        raise InputError(f"{site.path}:{site.line}: {site.reference} matches several images ({choices}); tag it")
    return narrowed[0] if narrowed else "matches no image in the lock"


def plan_pins(
    files: Iterable[Path], entries: Mapping[str, LockedImage], relocations: Sequence[Relocation] = ()
) -> tuple[list[FilePlan], list[Skipped], list[Notice]]:
    """What pinning would change in each file, what it leaves alone (and why), and notices on
    files it could not read as their kind.

    With ``relocations``, references are rewritten to the relocated repository (same tag and digest).
    A pinned file must still parse: an edit that would break it is an InputError, before anything
    is written.
    """
    relocated = relocate_entries(entries, relocations) if relocations else None
    plans: list[FilePlan] = []
    left_alone: list[Skipped] = []
    notices: list[Notice] = []
    for path in files:
        text, sites, skipped, unreadable = read_and_scan(path)
        left_alone += skipped
        notices += unreadable
        lines = text.splitlines(keepends=True)
        edits: list[Edit] = []
        changes: list[PinChange] = []
        for site in sites:
            reference = _parse_site(site, left_alone)
            if reference is None:
                continue
            found = match(site, reference, entries, relocated)
            if isinstance(found, str):
                left_alone.append(Skipped(path, site.line, site.reference, found))
                continue
            entry = relocate_entry(found, relocations)
            site_edits = site.rewrite(entry)
            if any(_changes(lines, edit) for edit in site_edits):
                edits += site_edits
                new_reference = pinned(name_part(site.reference), entry)
                changes.append(PinChange(path, site.line, site.reference, new_reference, entry.name))
        new_text = apply_edits(text, _distinct(path, edits)) if edits else text
        if new_text != text and kind_of(path) == "yaml":
            _still_parses(path, new_text)
        plans.append(FilePlan(path, text, new_text, tuple(changes)))
    return plans, left_alone, notices


def _distinct(path: Path, edits: list[Edit]) -> list[Edit]:
    """Each edit once: two references reaching one anchored value (``<<: *defaults``) edit it once.
    Two different edits of the same characters are an InputError."""
    unique = list(dict.fromkeys(edits))
    spans = [(edit.line, edit.start, edit.end) for edit in unique if not edit.insert_line]
    if len(spans) != len(set(spans)):
        line = next(span[0] for span in spans if spans.count(span) > 1)
        raise InputError(f"{path}:{line + 1}: one value would be pinned to two different images; split the anchor")
    return unique


def _still_parses(path: Path, text: str) -> None:
    try:
        compose(text)
    except NotYamlError as error:
        where = f"{path}:{error.line}" if error.line else str(path)
        raise InputError(
            f"{where}: pinning would leave this file unreadable ({error.problem}); nothing written"
        ) from None


def _parse_site(site: Site, skipped: list[Skipped]) -> Reference | None:
    """The site's reference, or None (noted in `skipped`) when it is not an image reference at all."""
    try:
        return parse_reference(site.reference)
    except InputError:
        skipped.append(Skipped(site.path, site.line, site.reference, "not an image reference"))
        return None


def _changes(lines: Sequence[str], edit: Edit) -> bool:
    if edit.insert_line:
        return True
    return lines[edit.line][edit.start : edit.end] != edit.text


def references_in(files: Iterable[Path]) -> tuple[list[tuple[str, Reference]], list[Skipped], list[Notice]]:
    """Every distinct image reference in the files, as (name as written, parsed reference), in file
    order; ``nginx`` and ``nginx:latest`` are one reference."""
    found: dict[tuple[str, str], tuple[str, Reference]] = {}
    skipped: list[Skipped] = []
    notices: list[Notice] = []
    for path in files:
        _, sites, left_alone, unreadable = read_and_scan(path)
        skipped += left_alone
        notices += unreadable
        for site in sites:
            reference = _parse_site(site, skipped)
            if reference is None:
                continue
            if reference.tag is None and reference.digest is not None:
                skipped.append(Skipped(path, site.line, site.reference, "pinned by digest alone: no tag to follow"))
                continue
            if reference.tag is None and site.any_tag:
                reason = "no newTag: the tag is the one the resources name, found there"
                skipped.append(Skipped(path, site.line, site.reference, reason))
                continue
            key = (str(reference.repository), reference.tag or "latest")
            found.setdefault(key, (name_part(site.reference), reference))
    return list(found.values()), skipped, notices
