"""Where image references sit in a file, and the edits that pin them.

A ``Site`` is one image reference found in a file, with the function that turns a lock entry into
the edits pinning it. Edits are spans of one line, so applying them changes those characters and
nothing else: comments, quoting, key order and every other line stay byte for byte.
"""

from __future__ import annotations

import re
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
    any_tag: bool = False  # a kustomization's image without newTag: it keeps whatever tag the resources name


@dataclass(frozen=True)
class Skipped:
    """A reference-like value that is not one imagelock can pin (a variable, a stage name, …)."""

    path: Path
    line: int
    text: str
    reason: str


@dataclass(frozen=True)
class Notice:
    """Something the user should know about a file as a whole: it does not parse, or was not scanned."""

    path: Path
    line: int | None
    message: str


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
            if edit.line == len(lines) and lines and not lines[-1].endswith(("\n", "\r")):
                lines[-1] += "\r\n" if edit.text.endswith("\r\n") else "\n"  # the file ended without one
            lines.insert(edit.line, edit.text)
            continue
        line = lines[edit.line]
        lines[edit.line] = line[: edit.start] + edit.text + line[edit.end :]
    return "".join(lines)


def quoted(value: str, quote: str) -> str:
    """``value`` written as a YAML scalar in the quoting style found (``'``, ``"`` or plain); a plain
    value YAML would read as something other than that string is double-quoted."""
    if quote == "'":
        return "'" + value.replace("'", "''") + "'"
    if quote == '"' or not _PLAIN.fullmatch(value) or _NOT_A_STRING.fullmatch(value):
        return '"' + value + '"'
    return value


_PLAIN = re.compile(r"[\w.+-][\w./:@+-]*")
_NOT_A_STRING = re.compile(
    r"[-+]?(\.[0-9]+|[0-9][0-9_]*(\.[0-9_]*)?)([eE][-+]?[0-9]+)?|0x[0-9a-fA-F]+|0o[0-7]+"
    r"|(?i:true|false|yes|no|on|off|y|n|null|~|\.inf|\.nan)"
)
