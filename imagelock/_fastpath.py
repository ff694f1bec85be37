"""``imagelock check`` and a ``lock`` with nothing to do, answered before the command line is imported.

A run that finds the lock up to date remembers it in the user's cache directory: the BLAKE2b hash of the
bytes of every file its answer depends on (images.toml, the keys and certificates it names, the lock:
``Project.inputs``), under a key made of the command line, the working directory and imagelock's own
code, with the line the run printed. The next run of the same command line, on the same bytes, prints
that line and exits 0 after hashing the files: nothing is parsed, the command line is not imported.
Other bytes, another option, an unreadable record: the full run, which decides and remembers anew.

A comment or whitespace edit of images.toml changes its bytes, so the next run is a full one: it finds
the lock still up to date (spec hashes are of the meaning, not the text) and remembers the new bytes.

Only modules Python has loaded at start-up (and BLAKE2) are imported here: dataclasses, typing and
pathlib each cost more than the whole answer. BLAKE2b, not sha256: the interpreter's own sha256 takes
three times as long over a 1,000-image lock, and OpenSSL's takes longer to load than the whole answer.
"""

from __future__ import annotations

import os
import sys

try:  # the interpreter's own BLAKE2: hashlib loads OpenSSL first
    from _blake2 import blake2b
except ImportError:  # pragma: no cover - CPython always builds it; hashlib finds it elsewhere
    from hashlib import blake2b

FORMAT = b"imagelock-fresh-2"
COMMANDS = ("check", "lock")
_OPTIONS = {"-c": "config", "--config": "config", "--lockfile": "lockfile"}
# A file whose status changed this shortly before the run started may have changed while the run read
# it (filesystems keep ctime to a second, some to two): such a run remembers nothing.
CHANGE_MARGIN_NS = 2_000_000_000


def question(arguments: list[str]) -> tuple[str, str, str] | None:
    """(command, --config, --lockfile) of a command line this module may answer: ``check`` or ``lock``
    with at most those two options; None for any other."""
    if not arguments or arguments[0] not in COMMANDS:
        return None
    given: dict[str, str] = {}
    rest = arguments[1:]
    while rest:
        option, has_value, value = rest[0].partition("=")
        rest = rest[1:]
        if option not in _OPTIONS or (has_value and option == "-c"):
            return None
        if not has_value:
            if not rest:
                return None
            value, rest = rest[0], rest[1:]
        if _OPTIONS[option] in given or not value or value.startswith("-"):
            return None
        given[_OPTIONS[option]] = value
    return arguments[0], given.get("config", ""), given.get("lockfile", "")


def answer(arguments: list[str]) -> int | None:
    """Print the remembered answer to this command line and return its exit status, or None."""
    asked = question(arguments)
    if asked is None:
        return None
    try:
        with open(_record_path(asked), "rb") as record:
            version, stream, message, digest, *inputs = record.read().split(b"\0")
        if version != FORMAT or not inputs or _digest(inputs) != digest:
            return None
    except (OSError, ValueError):
        return None
    (sys.stdout if stream == b"1" else sys.stderr).write(message.decode("ascii") + "\n")
    return 0


def remember(command: str, inputs: tuple[os.PathLike[str], ...], started_ns: int, stream: int, message: str) -> None:
    """Record that this process's command line, a ``command`` that began reading its ``inputs`` at
    ``started_ns`` (time.time_ns), found the lock up to date and printed ``message`` on ``stream``."""
    asked = question(sys.argv[1:])
    if asked is None or asked[0] != command or not message.isascii() or "\0" in message:
        return
    paths = [os.fsencode(path) for path in inputs]
    try:
        digest = _digest(paths)  # read before the status below: bytes no change since the start can have touched
        changed = (
            max(status.st_ctime_ns, status.st_mtime_ns) >= started_ns - CHANGE_MARGIN_NS  # ctime: creation on Windows
            for path in paths
            for status in (os.stat(path), os.lstat(path))
        )
        if any(changed):  # a link's own status too: one pointed elsewhere meanwhile
            return
        record = _record_path(asked)
        os.makedirs(os.path.dirname(record), exist_ok=True)
        partial = f"{record}.{os.getpid()}"
        with open(partial, "wb") as handle:
            handle.write(b"\0".join([FORMAT, str(stream).encode(), message.encode(), digest, *paths]))
        os.replace(partial, record)
    except OSError:
        pass  # no cache directory: every run is a full one


def _digest(paths: list[bytes]) -> bytes:
    """The hex hash of the paths and the hash of each one's bytes."""
    total = blake2b()
    for path in paths:
        with open(path, "rb") as handle:
            content = blake2b(handle.read()).digest()
        total.update(len(path).to_bytes(4, "big") + path + content)
    hexdigest: str = total.hexdigest()
    return hexdigest.encode()


def _record_path(asked: tuple[str, str, str]) -> str:
    """Where the answer to this command line, in this directory, with this imagelock, is remembered."""
    key = blake2b("\0".join([*asked, os.getcwd(), sys.version, _code_stamp()]).encode("utf-8", "surrogateescape"))
    return os.path.join(cache_directory(os.environ), "fresh", key.hexdigest())


def _code_stamp() -> str:
    """imagelock's code as installed: each module's name, size and modification time."""
    stamps = []
    for directory, _, files in os.walk(os.path.dirname(os.path.abspath(__file__))):
        for name in sorted(files):
            if name.endswith(".py"):
                status = os.stat(os.path.join(directory, name))
                stamps.append(f"{directory}/{name}:{status.st_size}:{status.st_mtime_ns}")
    return "\n".join(sorted(stamps))


def cache_directory(environ: os._Environ[str] | dict[str, str]) -> str:
    """``$IMAGELOCK_CACHE_DIR``, else ``$XDG_CACHE_HOME/imagelock``, else ``~/.cache/imagelock``."""
    if environ.get("IMAGELOCK_CACHE_DIR"):
        return environ["IMAGELOCK_CACHE_DIR"]
    return os.path.join(environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache"), "imagelock")
