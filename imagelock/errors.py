"""The errors imagelock reports, each with the exit code the CLI gives it.

Every error message is one line that names what is wrong and where: the file, the image
and the key, or the registry.

A run that fails for several images reports every failure (``SeveralFailuresError``) and exits with the code
of the worst: bad input (2), then a registry, network or data failure (3: the answer is incomplete,
whatever the other images found), then a failed check or signature (1).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

EXIT_OK = 0
EXIT_CHECK_FAILED = 1
EXIT_BAD_INPUT = 2
EXIT_REGISTRY = 3
EXIT_INTERRUPTED = 130  # Ctrl-C, as shells report a process SIGINT ended


class ImagelockError(Exception):
    """Base class: an expected failure with a user-facing one-line message."""

    exit_code: int = EXIT_BAD_INPUT


class InputError(ImagelockError):
    """Bad configuration, lock file or usage (exit 2)."""

    exit_code = EXIT_BAD_INPUT


class InvalidReferenceError(InputError):
    """A string that is not a valid image reference, tag or digest."""


class ResolutionError(ImagelockError):
    """No tag satisfies an image's spec, or a followed tag lacks a platform (exit 1)."""

    exit_code = EXIT_CHECK_FAILED


class SignatureError(ImagelockError):
    """An image's signature is missing or does not satisfy its trust policy (exit 1).

    It lives here rather than in ``imagelock.trust`` so that a lock without trust policies need not load them.
    """

    exit_code = EXIT_CHECK_FAILED

    @property
    def verdict(self) -> str:
        """The refusal as ``why`` and ``verify`` show it: ``signature: …`` (or ``provenance: …``)."""
        return f"signature: {self}"


class TagMovedError(ImagelockError):
    """A tag chosen as a version now names another digest, under ``on-tag-move = "fail"`` (exit 1)."""

    exit_code = EXIT_CHECK_FAILED


class RegistryError(ImagelockError):
    """The registry or the network failed, or answered something that cannot be trusted (exit 3)."""

    exit_code = EXIT_REGISTRY


class NotFoundError(RegistryError):
    """The registry says the repository, tag or digest does not exist (exit 3)."""


class DataUnavailableError(ImagelockError):
    """Vulnerability data or an image's content cannot be had: offline database, OSV API, layers (exit 3)."""

    exit_code = EXIT_REGISTRY


class SeveralFailuresError(ImagelockError):
    """Several entries failed: one line each, and the exit code of the worst."""

    def __init__(self, failures: Sequence[ImagelockError]) -> None:
        super().__init__("\n".join(str(failure) for failure in failures))
        self.failures = tuple(failures)
        self.exit_code = max((failure.exit_code for failure in failures), key=_SEVERITY.index)


_SEVERITY = (EXIT_CHECK_FAILED, EXIT_REGISTRY, EXIT_BAD_INPUT)  # least to most severe


def raise_all(failures: Sequence[ImagelockError]) -> None:
    """Raise the one failure as itself, several as ``SeveralFailuresError``; nothing when there is none."""
    if len(failures) == 1:
        raise failures[0]
    if failures:
        raise SeveralFailuresError(failures)


def naming(name: str, error: ImagelockError) -> ImagelockError:
    """``error`` led by the entry it concerns (``[images.NAME]: …``), unless its message names it already."""
    where = f"[images.{name}]"
    if str(error).startswith(where):
        return error
    return type(error)(f"{where}: {error}")


def did_you_mean(word: str, choices: Iterable[str]) -> str:
    """``; did you mean 'web'?`` when one of ``choices`` is close to a mistyped ``word``, else nothing."""
    import difflib

    matches = difflib.get_close_matches(word, list(choices), n=1)
    return f"; did you mean {matches[0]!r}?" if matches else ""
