"""Image references in Dockerfiles, read the way BuildKit reads them.

Found: ``FROM`` (with ``--platform`` and ``AS name``), ``COPY --from=image``, the ``# syntax=``
parser directive, and the ``ARG`` default behind ``FROM ${ARG}``. An instruction continues over
lines ending with the escape character (``\\``, or a backtick after ``# escape=```), skipping
comment and empty lines; heredoc bodies (``RUN <<EOF`` … ``EOF``) are not instructions.
"""

from __future__ import annotations

import re
from bisect import bisect_right
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from imagelock.lockfile import LockedImage
from imagelock.pinning.sites import Edit, Site, Skipped, name_part, pinned

# BuildKit's ``(.+?)\s*$`` backtracks quadratically in Python's engine; the value is right-stripped where read
_DIRECTIVE = re.compile(r"#\s*([a-zA-Z][a-zA-Z0-9]*)\s*=\s*(\S.*)")
_DIRECTIVES = ("syntax", "escape", "check")  # BuildKit stops reading directives at any other key
_HEREDOC = re.compile(r"\d*<<(-?)([^<]+)")  # a whole word: ``<<EOF``, ``<<-EOT``, ``<<"EOF"``, ``5<<FILE``
_HEREDOC_INSTRUCTIONS = ("RUN", "COPY", "ADD")
_PLAIN_VARIABLE = re.compile(r"\$(?:\{(\w+)\}|(\w+))")
_VARIABLE = re.compile(r"\$(?:\{(\w+)[^}]*\}|(\w+))")  # also ``${NAME:-default}`` and the like


@dataclass(frozen=True)
class _Word:
    """A word of an instruction, where its first character sits (0-based line and column)."""

    text: str
    line: int
    column: int
    one_line: bool  # the whole word sits on that line, so it can be edited in place


@dataclass(frozen=True)
class _Instruction:
    keyword: str  # upper case
    arguments: tuple[_Word, ...]


@dataclass(frozen=True)
class _Arg:
    """An ``ARG`` before the first ``FROM``; ``default`` is None when it has none."""

    name: str
    default: str | None
    line: int
    column: int  # of the default
    one_line: bool


def scan_dockerfile(path: Path, text: str) -> tuple[list[Site], list[Skipped]]:
    lines = text.splitlines(keepends=True)
    directives = _directives(lines)
    escape_directive = directives.get("escape")
    escape = escape_directive.text if escape_directive and escape_directive.text in ("`", "\\") else "\\"
    sites: list[Site] = []
    skipped: list[Skipped] = []
    if "syntax" in directives:
        syntax = directives["syntax"]
        image = syntax.text.split(" ", 1)[0]  # the rest are the frontend's options
        sites.append(Site(path, syntax.line + 1, image, _replace(syntax.line, syntax.column, image)))
    stages: set[str] = set()
    global_args: dict[str, _Arg] = {}
    seen_from = False
    pinned_lines: set[int] = set()  # an ARG default is one site, however many FROMs use it

    def add(word: _Word) -> None:
        found = _reference(path, word, stages, global_args)
        if isinstance(found, Skipped):
            skipped.append(found)
        elif found is not None and found.line not in pinned_lines:
            pinned_lines.add(found.line)
            sites.append(found)

    for instruction in _instructions(lines, escape):
        flags = _flags(instruction.arguments)
        if instruction.keyword == "ARG" and not seen_from:
            for word in instruction.arguments:
                argument = _arg(word)
                global_args[argument.name] = argument
        elif instruction.keyword == "FROM":
            seen_from = True
            positional = instruction.arguments[len(flags) :]
            if not positional:
                continue
            add(positional[0])
            if len(positional) >= 3 and positional[1].text.upper() == "AS":
                stages.add(positional[2].text.lower())
        elif instruction.keyword == "COPY":
            for flag in flags:
                if flag.text.startswith("--from="):
                    source = _Word(flag.text[len("--from=") :], flag.line, flag.column + len("--from="), flag.one_line)
                    if not source.text.isdigit():
                        add(source)
    return sites, skipped


def _reference(path: Path, word: _Word, stages: set[str], global_args: dict[str, _Arg]) -> Site | Skipped | None:
    """What ``word`` (the image of a ``FROM`` or ``COPY --from``) stands for: a site to pin, a reference
    left alone with its reason, or None for a stage or ``scratch``."""
    text = word.text
    if _is_stage(text, stages):
        return None
    whole = _PLAIN_VARIABLE.fullmatch(text)
    if whole:
        arg = global_args.get(whole.group(1) or whole.group(2))
        if arg is not None and arg.default is not None and "$" not in arg.default:
            if _is_stage(arg.default, stages):
                return None
            if not arg.one_line:
                return Skipped(path, arg.line + 1, arg.default, _SPLIT)
            return Site(path, arg.line + 1, arg.default, _replace(arg.line, arg.column, arg.default))
    if "$" in text:
        return _built_from_args(path, word, stages, global_args)
    if not word.one_line:
        return Skipped(path, word.line + 1, text, _SPLIT)
    return Site(path, word.line + 1, text, _replace(word.line, word.column, text))


_SPLIT = "split over several lines; join it on one line to have it pinned"


def _built_from_args(path: Path, word: _Word, stages: set[str], global_args: dict[str, _Arg]) -> Skipped | None:
    """A reference made of ARGs: None if their defaults name a stage, otherwise why it is left alone."""
    used: list[_Arg] = []
    missing: list[str] = []
    pending = [word.text]
    while pending:
        for match in _VARIABLE.finditer(pending.pop(0)):
            name = match.group(1) or match.group(2)
            arg = global_args.get(name)
            if arg is None or arg.default is None:
                if name not in missing:
                    missing.append(name)
            elif arg not in used:
                used.append(arg)
                pending.append(arg.default)
    line, text = word.line + 1, word.text
    if missing:
        if len(missing) == 1:
            return Skipped(path, line, text, f"ARG {missing[0]} has no default before the first FROM")
        return Skipped(path, line, text, f"ARGs {', '.join(missing)} have no default before the first FROM")
    if _is_stage(_expand(text, global_args), stages):
        return None
    defaults = ", ".join(f"line {arg.line + 1}: {arg.name}={arg.default}" for arg in used)
    return Skipped(
        path, line, text, f"built from ARG defaults ({defaults}); name the image whole in one ARG to have it pinned"
    )


def _expand(text: str, global_args: dict[str, _Arg]) -> str:
    """``text`` with plain ``$NAME``/``${NAME}`` replaced by ARG defaults (modifiers such as
    ``${NAME:-x}`` are left as written)."""
    for _ in range(len(global_args) + 1):  # defaults may name other ARGs; a cycle stops here
        expanded = _PLAIN_VARIABLE.sub(lambda match: _default(match, global_args), text)
        if expanded == text or len(expanded) > _LONGEST_NAME:  # ARGs doubling each other grow without end
            break
        text = expanded
    return text


_LONGEST_NAME = 4096  # longer than any stage name or image reference anyone writes


def _default(match: re.Match[str], global_args: dict[str, _Arg]) -> str:
    arg = global_args.get(match.group(1) or match.group(2))
    return arg.default if arg is not None and arg.default is not None else match.group()


def _is_stage(text: str, stages: set[str]) -> bool:
    return text.lower() == "scratch" or text.lower() in stages


def _arg(word: _Word) -> _Arg:
    name, equals, default = word.text.partition("=")
    column = word.column + len(name) + 1
    if len(default) >= 2 and default[0] in "\"'" and default[-1] == default[0]:
        default, column = default[1:-1], column + 1
    return _Arg(name, default if equals else None, word.line, column, word.one_line)


def _flags(arguments: tuple[_Word, ...]) -> tuple[_Word, ...]:
    count = 0
    while count < len(arguments) and arguments[count].text.startswith("--"):
        count += 1
    return arguments[:count]


def _content(line: str) -> str:
    return line.rstrip("\r\n")


def _directives(lines: list[str]) -> dict[str, _Word]:
    """The parser directives at the top of the file, as BuildKit finds ``syntax``: a byte-order mark and
    a ``#!`` line are passed over, and the first line that is not a known directive ends them."""
    found: dict[str, _Word] = {}
    for number, line in enumerate(lines):
        content = _content(line)
        offset = 1 if number == 0 and content.startswith("\ufeff") else 0
        if number == 0 and content.startswith("#!", offset):
            continue
        match = _DIRECTIVE.fullmatch(content, offset)
        if match is None or match.group(1).lower() not in _DIRECTIVES:
            break
        found.setdefault(match.group(1).lower(), _Word(match.group(2).rstrip(), number, match.start(2), True))
    return found


def _instructions(lines: list[str], escape: str) -> Iterator[_Instruction]:
    """The instructions, each joined from its continued lines, with heredoc bodies passed over."""
    escaped = re.escape(escape)
    continuation = re.compile(rf"(?<!{escaped}){escaped}[ \t]*$")
    word = re.compile(rf"(?:[^\s\"'{escaped}]|{escaped}.?|\"(?:[^\"{escaped}]|{escaped}.)*\"?|'[^']*'?)+")
    number = 0
    while number < len(lines):
        content = _content(lines[number])
        stripped = content.lstrip().removeprefix("\ufeff") if number == 0 else content.lstrip()
        pieces = [(number, len(content) - len(stripped), stripped)]  # (line, column, text)
        number += 1
        if not stripped or stripped.startswith("#"):
            continue
        while continuation.search(pieces[-1][2]):
            last_line, last_column, last_text = pieces.pop()
            pieces.append((last_line, last_column, continuation.sub("", last_text)))
            while number < len(lines) and (not lines[number].strip() or lines[number].lstrip().startswith("#")):
                number += 1
            if number == len(lines):
                break
            pieces.append((number, 0, _content(lines[number])))
            number += 1
        words = _words(pieces, word)
        if not words:
            continue
        instruction = _Instruction(words[0].text.upper(), tuple(words[1:]))
        yield instruction
        for delimiter, strip_tabs in _heredocs(instruction):
            while number < len(lines):
                body_line = _content(lines[number])
                number += 1
                if (body_line.lstrip("\t") if strip_tabs else body_line) == delimiter:
                    break


def _words(pieces: list[tuple[int, int, str]], word: re.Pattern[str]) -> list[_Word]:
    joined = "".join(text for _, _, text in pieces)
    starts = [0]
    for _, _, text in pieces[:-1]:
        starts.append(starts[-1] + len(text))

    def position(offset: int) -> tuple[int, int]:
        index = bisect_right(starts, offset) - 1
        line, column, _ = pieces[index]
        return line, column + offset - starts[index]

    words = []
    for match in word.finditer(joined):
        line, column = position(match.start())
        words.append(_Word(match.group(), line, column, position(match.end() - 1)[0] == line))
    return words


def _heredocs(instruction: _Instruction) -> list[tuple[str, bool]]:
    """The heredocs an instruction opens, in order: (delimiter, strip leading tabs from its end line)."""
    keyword, arguments = instruction.keyword, instruction.arguments
    if keyword == "ONBUILD" and arguments:
        keyword, arguments = arguments[0].text.upper(), arguments[1:]
    if keyword not in _HEREDOC_INSTRUCTIONS:
        return []
    matches = (_HEREDOC.fullmatch(word.text) for word in arguments)
    return [(re.sub("[\"']", "", match.group(2)), match.group(1) == "-") for match in matches if match]


def _replace(line: int, start: int, text: str) -> Callable[[LockedImage], tuple[Edit, ...]]:
    def rewrite(entry: LockedImage) -> tuple[Edit, ...]:
        return (Edit(line, start, start + len(text), pinned(name_part(text), entry)),)

    return rewrite
