"""Canonical JSON, the byte form TUF metadata and Rekor entries are signed in."""

from __future__ import annotations

from imagelock.trust._base import SignatureError


def canonical_json(value: object) -> bytes:
    """securesystemslib's canonical JSON: sorted keys, no whitespace, only quote and backslash escaped."""
    return _canonical(value).encode()


def _canonical(value: object) -> str:
    if value is None:
        return "null"
    if value is True:
        return "true"
    if value is False:
        return "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, str):
        return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
    if isinstance(value, list):
        return "[" + ",".join(_canonical(item) for item in value) + "]"
    if isinstance(value, dict):
        items = sorted(value.items())
        return "{" + ",".join(f"{_canonical(key)}:{_canonical(item)}" for key, item in items) + "}"
    raise SignatureError(f"metadata holds a value canonical JSON cannot encode: {value!r}")
