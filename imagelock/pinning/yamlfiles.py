"""Image references in YAML: Kubernetes manifests, Compose files, Helm values and kustomizations.

- any ``image:`` key whose value is a string: every workload's containers, init and ephemeral
  containers, CronJob templates, Compose ``services.*.image``, Helm values written as strings;
- any ``image:`` key whose value is a map with ``repository`` (and ``tag``, ``digest``, ``registry``):
  the Helm values convention;
- a kustomization's ``images:`` entries (``name``, ``newName``, ``newTag``, ``digest``).

ruamel.yaml finds the values and their positions; the edits are made on the original text, so
nothing else in the file moves.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap, CommentedSeq
from ruamel.yaml.error import YAMLError

from imagelock.errors import InputError
from imagelock.lockfile import LockedImage
from imagelock.pinning.sites import Edit, Site, Skipped, name_part, pinned, quoted, scalar_span, written_name


def scan_yaml(path: Path, text: str) -> tuple[list[Site], list[Skipped]]:
    try:
        documents = list(YAML(typ="rt").load_all(text))
    except YAMLError as error:
        raise InputError(f"{path}: not valid YAML: {str(error).splitlines()[0]}") from None
    lines = text.splitlines(keepends=True)
    sites: list[Site] = []
    skipped: list[Skipped] = []
    for document in documents:
        kustomization = isinstance(document, CommentedMap) and (
            document.get("kind") == "Kustomization" or path.name in ("kustomization.yaml", "kustomization.yml")
        )
        if kustomization and isinstance(document.get("images"), CommentedSeq):
            for item in document["images"]:
                if isinstance(item, CommentedMap):
                    _kustomize_site(path, lines, item, sites)
        for mapping in _mappings(document):
            if "image" not in mapping:
                continue
            value = mapping["image"]
            if isinstance(value, str):
                _string_site(path, lines, mapping, sites, skipped)
            elif isinstance(value, CommentedMap) and "repository" in value:
                _helm_site(path, lines, value, sites, skipped)
    return sites, skipped


def _mappings(node: Any) -> Iterator[CommentedMap]:
    if isinstance(node, CommentedMap):
        yield node
        for value in node.values():
            yield from _mappings(value)
    elif isinstance(node, CommentedSeq):
        for item in node:
            yield from _mappings(item)


def _string_site(
    path: Path, lines: list[str], mapping: CommentedMap, sites: list[Site], skipped: list[Skipped]
) -> None:
    line, column = mapping.lc.value("image")
    span = scalar_span(lines[line], column, flow=mapping.fa.flow_style())
    if span is None:
        skipped.append(Skipped(path, line + 1, str(mapping["image"]), "not a one-line scalar"))
        return
    start, end, value, quote = span
    if "$" in value or "{{" in value:
        skipped.append(Skipped(path, line + 1, value, "uses a variable imagelock cannot resolve"))
        return

    def rewrite(entry: LockedImage) -> tuple[Edit, ...]:
        return (Edit(line, start, end, quoted(pinned(name_part(value), entry), quote)),)

    sites.append(Site(path, line + 1, value, rewrite))


def _value_edit(lines: list[str], mapping: CommentedMap, key: str, new_value: str) -> Edit | None:
    line, column = mapping.lc.value(key)
    span = scalar_span(lines[line], column, flow=mapping.fa.flow_style())
    if span is None:
        return None
    start, end, _, quote = span
    return Edit(line, start, end, quoted(new_value, quote))


def _raw(lines: list[str], mapping: CommentedMap, key: str) -> str | None:
    if key not in mapping or mapping[key] is None:
        return None
    line, column = mapping.lc.value(key)
    span = scalar_span(lines[line], column, flow=mapping.fa.flow_style())
    return span[2] if span else None


def _insert_after(lines: list[str], mapping: CommentedMap, after_key: str, key: str, value: str) -> Edit:
    """A new ``key: value`` line after ``after_key``'s line, indented like it."""
    line, column = mapping.lc.key(after_key)
    ending = "\r\n" if lines[line].endswith("\r\n") else "\n"
    return Edit(line + 1, 0, 0, f"{' ' * column}{key}: {value}{ending}", insert_line=True)


def _helm_site(path: Path, lines: list[str], image: CommentedMap, sites: list[Site], skipped: list[Skipped]) -> None:
    repository = _raw(lines, image, "repository")
    registry = _raw(lines, image, "registry")
    tag = _raw(lines, image, "tag")
    digest = _raw(lines, image, "digest")
    line = image.lc.value("repository")[0]
    if not repository or "tag" not in image:
        skipped.append(Skipped(path, line + 1, repository or "", "image map without repository and tag"))
        return
    reference = f"{registry}/{repository}" if registry else repository
    reference += f":{tag}" if tag else ""
    reference += f"@{digest}" if digest else ""

    def rewrite(entry: LockedImage) -> tuple[Edit, ...]:
        edits = [_value_edit(lines, image, "tag", entry.tag)]
        if written_name(name_part(reference), entry) != name_part(reference):  # relocated: name the mirror
            host, _, path = entry.image.partition("/")
            if registry:
                edits += [_value_edit(lines, image, "registry", host), _value_edit(lines, image, "repository", path)]
            else:
                edits.append(_value_edit(lines, image, "repository", entry.image))
        if "digest" in image and image["digest"] is not None:
            edits.append(_value_edit(lines, image, "digest", entry.digest))
        else:
            edits.append(_insert_after(lines, image, "tag", "digest", entry.digest))
        return tuple(edit for edit in edits if edit is not None)

    sites.append(Site(path, line + 1, reference, rewrite))


def _kustomize_site(path: Path, lines: list[str], item: CommentedMap, sites: list[Site]) -> None:
    name = _raw(lines, item, "newName") or _raw(lines, item, "name")
    if not name:
        return
    tag, digest = _raw(lines, item, "newTag"), _raw(lines, item, "digest")
    reference = name + (f":{tag}" if tag else "") + (f"@{digest}" if digest else "")
    line = item.lc.key("newName" if "newName" in item else "name")[0]

    def rewrite(entry: LockedImage) -> tuple[Edit, ...]:
        edits: list[Edit | None] = []
        if "newTag" in item:
            edits.append(_value_edit(lines, item, "newTag", entry.tag))
        if "digest" in item:
            edits.append(_value_edit(lines, item, "digest", entry.digest))
        else:
            last_key = list(item.keys())[-1]
            edits.append(_insert_after(lines, item, last_key, "digest", entry.digest))
        if written_name(name, entry) != name:  # relocated: newName is the mirror's repository
            if "newName" in item:
                edits.append(_value_edit(lines, item, "newName", entry.image))
            else:  # inserted after any digest line at the same place, so it comes first
                edits.append(_insert_after(lines, item, "name", "newName", entry.image))
        return tuple(edit for edit in edits if edit is not None)

    sites.append(Site(path, line + 1, reference, rewrite))
