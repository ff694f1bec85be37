"""Editing images.toml in place (``imagelock add`` / ``remove``), keeping comments, order and layout."""

from __future__ import annotations

from typing import Any

import tomlkit
from tomlkit.exceptions import TOMLKitError

from imagelock.errors import InputError


def entry(image: str, *, version: str | None, tag: str | None, variant: str | None) -> dict[str, str]:
    """The keys of a new ``[images.NAME]`` table, in the order the docs write them."""
    if (version is None) == (tag is None):
        raise InputError("give exactly one of --version and --tag")
    if variant is not None and tag is not None:
        raise InputError("--variant applies to --version, not --tag")
    fields = {"image": image}
    if version is not None:
        fields["version"] = version
    if variant is not None:
        fields["variant"] = variant
    if tag is not None:
        fields["tag"] = tag
    return fields


def add_image(text: str, name: str, fields: dict[str, str]) -> str:
    document = _parse(text)
    table = tomlkit.table()
    for key, value in fields.items():
        table.add(key, value)
    images: Any = document.get("images")
    if images is None:
        images = tomlkit.table(is_super_table=True)
        document.add("images", images)
    images[name] = table
    return _blank_line_before(tomlkit.dumps(document), f"[images.{tomlkit.key(name).as_string()}]")


def remove_image(text: str, name: str) -> str:
    document = _parse(text)
    images: Any = document["images"]
    del images[name]
    return tomlkit.dumps(document)


def _parse(text: str) -> tomlkit.TOMLDocument:
    try:
        return tomlkit.parse(text)
    except TOMLKitError as error:  # pragma: no cover - the caller validated the text already
        raise InputError(f"invalid TOML: {error}") from None


def _blank_line_before(text: str, header: str) -> str:
    """Separate the new table from what precedes it, touching no other line."""
    lines = text.splitlines(keepends=True)
    for index, line in enumerate(lines):
        if line.strip() == header and index > 0 and lines[index - 1].strip():
            lines.insert(index, "\n")
            break
    return "".join(lines)
