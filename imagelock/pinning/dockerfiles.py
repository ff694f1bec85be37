"""Image references in Dockerfiles: ``FROM`` (with ``--platform`` and ``AS name``), ``ARG`` defaults
used in ``FROM``, and ``COPY --from=image``."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

from imagelock.lockfile import LockedImage
from imagelock.pinning.sites import Edit, Site, Skipped, name_part, pinned

_INSTRUCTION = re.compile(r"^(\s*)(\w+)(\s+)(.*?)\s*$")
_FLAG = re.compile(r"--[\w-]+(=\S*)?")
_VARIABLE = re.compile(r"^\$(?:\{(\w+)\}|(\w+))$")
_ARG = re.compile(r"^(\w+)=(\"[^\"]*\"|'[^']*'|\S+)")


def scan_dockerfile(path: Path, text: str) -> tuple[list[Site], list[Skipped]]:
    sites: list[Site] = []
    skipped: list[Skipped] = []
    stages: set[str] = set()
    global_args: dict[str, tuple[int, int, int, str]] = {}  # name → (line, start, end, default), before any FROM
    seen_from = False
    for number, line in enumerate(text.splitlines(keepends=True)):
        match = _INSTRUCTION.match(line)
        if not match or line.lstrip().startswith("#"):
            continue
        instruction = match.group(2).upper()
        arguments_start = match.end(3)
        arguments = match.group(4)
        if instruction == "ARG" and not seen_from:
            argument = _ARG.match(arguments)
            if argument:
                value = argument.group(2)
                start = arguments_start + argument.start(2)
                if value[:1] in "\"'":
                    value, start = value[1:-1], start + 1
                global_args[argument.group(1)] = (number, start, start + len(value), value)
        elif instruction == "FROM":
            seen_from = True
            words = list(re.finditer(r"\S+", arguments))
            positional = [word for word in words if not _FLAG.fullmatch(word.group())]
            if not positional:
                continue
            image = positional[0]
            if len(positional) >= 3 and positional[1].group().upper() == "AS":
                stages.add(positional[2].group().lower())
            _site(path, number, arguments_start + image.start(), image.group(), stages, global_args, sites, skipped)
        elif instruction == "COPY":
            for word in re.finditer(r"--from=(\S+)", arguments):
                value = word.group(1)
                if value.lower() in stages or value.isdigit():
                    continue
                _site(path, number, arguments_start + word.start(1), value, stages, global_args, sites, skipped)
    return sites, skipped


def _site(
    path: Path,
    line: int,
    start: int,
    text: str,
    stages: set[str],
    global_args: dict[str, tuple[int, int, int, str]],
    sites: list[Site],
    skipped: list[Skipped],
) -> None:
    if text.lower() == "scratch" or text.lower() in stages:
        return
    variable = _VARIABLE.match(text)
    if variable:
        name = variable.group(1) or variable.group(2)
        if name not in global_args:
            skipped.append(Skipped(path, line + 1, text, f"ARG {name} has no default before the first FROM"))
            return
        arg_line, arg_start, arg_end, default = global_args[name]
        if not any(site.line == arg_line + 1 and site.path == path for site in sites):  # one ARG, many FROMs
            sites.append(Site(path, arg_line + 1, default, _replace(arg_line, arg_start, arg_end, default)))
        return
    if "$" in text:
        skipped.append(Skipped(path, line + 1, text, "uses a variable imagelock cannot resolve"))
        return
    sites.append(Site(path, line + 1, text, _replace(line, start, start + len(text), text)))


def _replace(line: int, start: int, end: int, text: str) -> Callable[[LockedImage], tuple[Edit, ...]]:
    def rewrite(entry: LockedImage) -> tuple[Edit, ...]:
        return (Edit(line, start, end, pinned(name_part(text), entry)),)

    return rewrite
