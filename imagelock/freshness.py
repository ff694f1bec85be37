"""When an image was made, and the freshness rules that judge a candidate by it: min-age and exclude-newer."""

from __future__ import annotations

import re
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from imagelock.untrusted import load_json

if TYPE_CHECKING:  # images.toml is read without the registry client
    from imagelock.reference import Repository
    from imagelock.registry.manifests import Manifest
    from imagelock.registry.reader import ImageReader

CREATED_ANNOTATION = "org.opencontainers.image.created"
UNKNOWN_RULES = ("skip", "allow")
TAG_MOVE_RULES = ("warn", "fail")
_DURATION = re.compile(r"([1-9][0-9]{0,5})([mhdw])")
_UNITS = {"m": timedelta(minutes=1), "h": timedelta(hours=1), "d": timedelta(days=1), "w": timedelta(weeks=1)}
# RFC 3339 as registries write it; Go writes up to nine fraction digits, Python reads six.
_TIMESTAMP = re.compile(r"(\d{4}-\d\d-\d\d[Tt ]\d\d:\d\d:\d\d)(\.\d+)?([Zz]|[+-]\d\d:\d\d)")


@dataclass(frozen=True)
class Freshness:
    """The rules of one entry: how old a candidate must be, and the time after which nothing exists."""

    min_age: str | None = None  # as written: "7d"
    unknown: str = "skip"  # what a candidate whose time cannot be found gets: "skip" or "allow"
    exclude_newer: datetime | None = None

    @property
    def active(self) -> bool:
        return self.min_age is not None or self.exclude_newer is not None

    def canonical(self) -> dict[str, str]:
        content: dict[str, str] = {}
        if self.min_age is not None:
            content["min-age"] = self.min_age
        if self.exclude_newer is not None:
            content["exclude-newer"] = format_time(self.exclude_newer)
        if self.active and self.unknown != "skip":
            content["min-age-unknown"] = self.unknown
        return content

    def verdict(self, made: datetime | None, now: datetime) -> str | None:
        """Why a candidate made at ``made`` is passed over (``too new: 2d old, min-age 7d``), or None."""
        if not self.active:
            return None
        if made is None:
            return None if self.unknown == "allow" else 'time unknown (min-age-unknown = "skip")'
        if self.exclude_newer is not None and made > self.exclude_newer:
            return f"made after exclude-newer ({format_time(made)} > {format_time(self.exclude_newer)})"
        if self.min_age is not None and now - made < duration(self.min_age):
            return f"too new: {format_age(now - made)} old, min-age {self.min_age}"
        return None


def tag_move_kind(followed: bool, old_platforms: Mapping[str, str], new_platforms: Mapping[str, str]) -> str:
    """How a locked tag that now names another digest moved.

    ``re-indexed``: every locked platform digest is still in the new index (only the index changed);
    ``rebuilt``: a followed tag moved, as such tags do; ``tag moved``: a tag chosen as a version was re-pushed.
    """
    if old_platforms and all(new_platforms.get(platform) == digest for platform, digest in old_platforms.items()):
        return "re-indexed"
    return "rebuilt" if followed else "tag moved"


def chosen_words(freshness: Freshness, made: datetime | None) -> str:
    """``why``'s verdict for the chosen tag, naming the rule that let a tag of unknown time through."""
    if freshness.active and made is None:
        return 'chosen (time unknown, min-age-unknown = "allow")'
    return "chosen"


def duration(text: str) -> timedelta:
    """``7d`` → 7 days; ValueError for anything but a positive whole number and one unit of m, h, d or w."""
    match = _DURATION.fullmatch(text)
    if match is None:
        raise ValueError(f'invalid duration {text!r} (a number and a unit: m, h, d or w, as in "7d")')
    return int(match[1]) * _UNITS[match[2]]


def parse_time(text: str) -> datetime:
    """An RFC 3339 time with its offset, in UTC; ValueError otherwise."""
    match = _TIMESTAMP.fullmatch(text.strip())
    if match is None:
        raise ValueError(f'invalid time {text!r} (RFC 3339, as in "2026-11-01T00:00:00Z")')
    fraction = (match[2] or "")[:7]
    offset = "+00:00" if match[3] in ("Z", "z") else match[3]
    return datetime.fromisoformat(f"{match[1].replace(' ', 'T')}{fraction}{offset}").astimezone(UTC)


def format_time(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def format_age(age: timedelta) -> str:
    """The largest whole unit: ``2d``, ``5h``, ``30m`` (``0m`` for a time in the future)."""
    minutes = max(0, int(age.total_seconds() // 60))
    for unit, size in (("w", 7 * 24 * 60), ("d", 24 * 60), ("h", 60)):
        if minutes >= size:
            return f"{minutes // size}{unit}"
    return f"{minutes}m"


def made_json(made: datetime | None, now: datetime | None = None) -> dict[str, str | None]:
    """When an image was made and its age, for JSON output: ``{"made": "2026-11-29T10:00:00Z", "age": "2d"}``."""
    if made is None:
        return {"made": None, "age": None}
    return {"made": format_time(made), "age": format_age((now or datetime.now(UTC)) - made)}


async def image_created(
    reader: ImageReader, repository: Repository, manifest: Manifest, platforms: Collection[str]
) -> datetime | None:
    """When the image was made: the manifest's or index's ``created`` annotation, else its config's ``created``
    (for an index, the newest among the configs of ``platforms``, or of every platform when none is required)."""
    annotated = time_in(_document(manifest.body).get("annotations"), CREATED_ANNOTATION)
    if annotated is not None:
        return annotated
    if not manifest.is_index:
        return await _config_created(reader, repository, manifest)
    children = manifest.platforms()
    wanted = [digest for platform, digest in children.items() if not platforms or platform in platforms]
    times = [
        await _config_created(reader, repository, await reader.get_manifest(repository, digest)) for digest in wanted
    ]
    known = [moment for moment in times if moment is not None]
    return max(known) if known else None


async def _config_created(reader: ImageReader, repository: Repository, manifest: Manifest) -> datetime | None:
    from imagelock.registry.reader import MAX_CONFIG_BYTES

    if manifest.config is None:
        return None
    body = await reader.get_blob(repository, manifest.config.digest, max_bytes=MAX_CONFIG_BYTES)
    return time_in(_document(body), "created")


def _document(body: bytes) -> dict[str, Any]:
    try:
        document = load_json(body)
    except ValueError:
        return {}
    return document if isinstance(document, dict) else {}


def time_in(table: object, key: str) -> datetime | None:
    """A time a registry's JSON gives; a missing or malformed one is no time (never an error)."""
    value = table.get(key) if isinstance(table, dict) else None
    if not isinstance(value, str):
        return None
    try:
        return parse_time(value)
    except ValueError:
        return None
