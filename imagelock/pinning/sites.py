"""Where image references sit in a file, and the edits that pin them.

A ``Site`` is one image reference found in a file, with the function that turns a lock entry into
the edits pinning it. Edits are spans of one line, so applying them changes those characters and
nothing else: comments, quoting, key order and every other line stay byte for byte.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

from imagelock.errors import InputError
from imagelock.lockfile import LockedImage
from imagelock.reference import parse_repository


@dataclass(frozen=True)
class Edit:
    """Replace ``line[start:end]`` with ``text`` (0-based line); ``insert_line`` adds a whole new line."""

    line: int
    start: int
    end: int
    text: str
    insert_line: bool = False  # insert ``text`` as a new line before ``line``


@dataclass(frozen=True)
class Site:
    path: Path
    line: int  # 1-based, for messages
    reference: str  # the reference as written (reconstructed for map conventions)
    rewrite: Callable[[LockedImage], tuple[Edit, ...]]


@dataclass(frozen=True)
class Skipped:
    """A reference-like value that is not one imagelock can pin (a variable, a stage name, …)."""

    path: Path
    line: int
    text: str
    reason: str


def pinned(name_as_written: str, entry: LockedImage) -> str:
    """The pinned form of a reference, keeping the name as the file spells it (see ``written_name``)."""
    return f"{written_name(name_as_written, entry)}:{entry.tag}@{entry.digest}"


def written_name(name_as_written: str, entry: LockedImage) -> str:
    """The name as the file spells it when it names the entry's repository; otherwise (``--relocate``)
    the entry's repository."""
    try:
        same = str(parse_repository(name_as_written)) == entry.image
    except InputError:
        same = False
    return name_as_written if same else entry.image


def name_part(reference: str) -> str:
    """``nginx:1.25@sha256:…`` → ``nginx``; ``localhost:5000/app:1`` → ``localhost:5000/app``."""
    name = reference.split("@", 1)[0]
    colon, slash = name.rfind(":"), name.rfind("/")
    return name[:colon] if colon > slash else name


def apply_edits(text: str, edits: Iterable[Edit]) -> str:
    lines = text.splitlines(keepends=True)
    # from the end: a line's own edits before a new line is inserted in front of it
    ordered = sorted(edits, key=lambda edit: (edit.line, not edit.insert_line, edit.start), reverse=True)
    for edit in ordered:
        if edit.insert_line:
            lines.insert(edit.line, edit.text)
            continue
        line = lines[edit.line]
        lines[edit.line] = line[: edit.start] + edit.text + line[edit.end :]
    return "".join(lines)


def scalar_span(line: str, column: int, *, flow: bool = False) -> tuple[int, int, str, str] | None:
    """The YAML scalar starting at ``column``: (start, end, value, quote); None if it is not a one-line scalar.

    ``flow``: the scalar is inside a flow collection (``{…}``, ``[…]``), where ``,]}`` end it.
    """
    if column >= len(line):
        return None
    quote = line[column] if line[column] in "'\"" else ""
    if quote:
        position = column + 1
        value = []
        while position < len(line):
            character = line[position]
            if quote == "'" and character == "'":
                if line[position + 1 : position + 2] == "'":
                    value.append("'")
                    position += 2
                    continue
                return column, position + 1, "".join(value), quote
            if quote == '"' and character == "\\":
                return None  # escapes: not a reference anyone writes; leave it alone
            if quote == '"' and character == '"':
                return column, position + 1, "".join(value), quote
            value.append(character)
            position += 1
        return None
    end = column
    while end < len(line) and line[end] not in "\r\n":
        if line[end] == "#" and end > column and line[end - 1] in " \t":
            break
        if flow and line[end] in ",]}":
            break
        end += 1
    raw = line[column:end].rstrip()
    return (column, column + len(raw), raw, "") if raw else None


def quoted(value: str, quote: str) -> str:
    if quote == "'":
        return "'" + value.replace("'", "''") + "'"
    if quote == '"':
        return '"' + value + '"'
    return value
