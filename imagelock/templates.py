"""Rendering Jinja2 templates with the lock (``imagelock render``).

Templates see one variable, ``images``: ``{{ images.web }}`` is the pinned reference
``docker.io/library/nginx:1.26.2@sha256:…``, with ``.image``, ``.tag``, ``.digest``,
``.platforms["linux/arm64"]`` and ``.ref("linux/arm64")``. Rendering is strict (an unknown name or
attribute is an error naming the template and line) and sandboxed (no files, no environment, no
Python internals).
"""

from __future__ import annotations

import traceback
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import jinja2
from jinja2.sandbox import SandboxedEnvironment

from imagelock.errors import InputError, did_you_mean
from imagelock.lockfile import LockedImage


class TemplateError(InputError):
    """A template that cannot be rendered: syntax, unknown image, missing attribute, forbidden access."""


@dataclass(frozen=True)
class ImageView:
    """What a template sees of one locked image."""

    name: str
    image: str
    tag: str
    digest: str
    platforms: Mapping[str, str]

    def ref(self, platform: str) -> str:
        """The pinned reference of one platform's manifest."""
        if platform not in self.platforms:
            offered = ", ".join(sorted(self.platforms))
            raise jinja2.UndefinedError(f"image {self.name!r} has no platform {platform!r} (it has {offered})")
        return f"{self.image}:{self.tag}@{self.platforms[platform]}"

    def __str__(self) -> str:
        return f"{self.image}:{self.tag}@{self.digest}"

    def __getattr__(self, attribute: str) -> object:
        if attribute.startswith("_"):
            raise AttributeError(attribute)
        attributes = ("image", "tag", "digest", "platforms", "ref")
        raise jinja2.UndefinedError(
            f"image {self.name!r} has no attribute {attribute!r} (it has {', '.join(attributes)})"
            + did_you_mean(attribute, attributes)
        )


class Images:
    """``images`` in templates: attribute or item access by name; unknown names are errors."""

    def __init__(self, views: Mapping[str, ImageView]) -> None:
        self._views = dict(views)

    def __getattr__(self, name: str) -> ImageView:
        if name.startswith("_"):
            raise AttributeError(name)
        return self[name]

    def __getitem__(self, name: str) -> ImageView:
        if name not in self._views:
            known = ", ".join(sorted(self._views)) or "none"
            raise jinja2.UndefinedError(
                f"unknown image {name!r} (images.lock has: {known}){did_you_mean(name, self._views)}"
            )
        return self._views[name]

    def __iter__(self):  # type: ignore[no-untyped-def]
        return iter(sorted(self._views))


def views(entries: Mapping[str, LockedImage]) -> dict[str, ImageView]:
    return {
        name: ImageView(name, entry.image, entry.tag, entry.digest, dict(entry.platforms))
        for name, entry in entries.items()
    }


class _NoFiles(jinja2.BaseLoader):
    """Refuses ``{% include %}``, ``{% import %}`` and ``{% extends %}``: templates cannot reach other files."""

    def get_source(self, environment: jinja2.Environment, template: str) -> tuple[str, str | None, None]:
        raise jinja2.TemplateNotFound(f"{template} (templates cannot include, import or extend files)")


def environment() -> SandboxedEnvironment:
    return SandboxedEnvironment(
        undefined=jinja2.StrictUndefined, keep_trailing_newline=True, autoescape=False, loader=_NoFiles()
    )


def render(path: Path, source: str, entries: Mapping[str, LockedImage], env: SandboxedEnvironment) -> str:
    """Render one template; TemplateError names the template and the line."""
    try:
        code = env.compile(source, name=path.name, filename=str(path))
        template = env.template_class.from_code(env, code, env.make_globals(None))
        return template.render(images=Images(views(entries)))
    except jinja2.TemplateSyntaxError as error:
        raise TemplateError(f"{path}:{error.lineno}: template syntax error: {error.message}") from None
    except jinja2.TemplateError as error:
        line = _template_line(error, str(path))
        where = f"{path}:{line}" if line else str(path)
        raise TemplateError(f"{where}: {_describe(error)}") from None


def _template_line(error: BaseException, filename: str) -> int | None:
    """The template line an error was raised at (Jinja2 puts template frames into the traceback)."""
    for frame in reversed(traceback.extract_tb(error.__traceback__)):
        if frame.filename == filename and frame.lineno:
            return frame.lineno
    return None


def _describe(error: jinja2.TemplateError) -> str:
    if isinstance(error, jinja2.exceptions.SecurityError):
        return f"not allowed in templates: {error}"
    return str(error) or type(error).__name__
