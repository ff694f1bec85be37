"""URLs a registry sends (token realms, upload locations): http(s) with a host, or nothing."""

from __future__ import annotations

import httpx


def http_url(text: str, base: httpx.URL | None = None) -> httpx.URL | None:
    """``text``, resolved against ``base`` if given, when it is an http(s) URL with a host; else None."""
    try:
        url = base.join(text) if base is not None else httpx.URL(text)
        return url if url.scheme in ("https", "http") and url.host else None
    except (httpx.InvalidURL, ValueError):  # idna's errors are ValueErrors, raised when ``host`` decodes
        return None
