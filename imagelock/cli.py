"""The ``imagelock`` command line: parses arguments, calls ``imagelock.project``, prints results.

Exit codes: 0 success; 1 a check or policy failed; 2 bad input; 3 registry or network failure.
"""

from __future__ import annotations

import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, TypeVar

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TaskID, TextColumn, TimeElapsedColumn

from imagelock import __version__, project
from imagelock.errors import EXIT_CHECK_FAILED, ImagelockError

app = typer.Typer(
    name="imagelock",
    help="Lock container images to digests, the way pip-tools locks Python packages.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

ConfigOption = Annotated[Path, typer.Option("--config", "-c", help="The images.toml to read.", dir_okay=False)]
LockfileOption = Annotated[
    Path | None,
    typer.Option("--lockfile", help="The lock to write (default: images.lock beside the config).", dir_okay=False),
]
T = TypeVar("T")


def _version(value: bool) -> None:
    if value:
        typer.echo(f"imagelock {__version__}")
        raise typer.Exit()


@app.callback()
def _options(
    context: typer.Context,
    debug: Annotated[bool, typer.Option("--debug", help="Show tracebacks for errors.")] = False,
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Show the version and exit.")
    ] = False,
) -> None:
    context.obj = {"debug": debug}


def _run(context: typer.Context, operation: Callable[[], T]) -> T:
    """Run an operation; an expected failure becomes one line on stderr and its exit code."""
    try:
        return operation()
    except ImagelockError as error:
        if context.obj and context.obj.get("debug"):
            traceback.print_exc()
        typer.echo(f"error: {error}", err=True)
        raise typer.Exit(error.exit_code) from None
    except KeyboardInterrupt:
        typer.echo("interrupted", err=True)
        raise typer.Exit(130) from None


class TerminalEvents:
    """Warnings on stderr; a progress bar on stderr only when it is a terminal and the run is long."""

    def __init__(self) -> None:
        self.console = Console(stderr=True)
        self.progress: Progress | None = None
        self.task: TaskID | None = None

    def warning(self, message: str) -> None:
        self.console.print(f"warning: {message}", style="yellow", markup=False, highlight=False)

    def started(self, total: int) -> None:
        if self.console.is_terminal and total > 1:
            self.progress = Progress(
                TextColumn("resolving"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                console=self.console, transient=True,
            )  # fmt: skip
            self.task = self.progress.add_task("resolving", total=total)
            self.progress.start()

    def resolved(self, name: str) -> None:
        if self.progress is not None and self.task is not None:
            self.progress.advance(self.task)

    def close(self) -> None:
        if self.progress is not None:
            self.progress.stop()


@app.command("lock")
def lock_command(
    context: typer.Context,
    config: ConfigOption = Path("images.toml"),
    lockfile: LockfileOption = None,
) -> None:
    """Resolve images.toml into images.lock. Entries whose spec is unchanged keep their pins."""
    events = TerminalEvents()
    try:
        result = _run(context, lambda: project.lock(config, lockfile, events=events))
    finally:
        events.close()
    lock_path = lockfile or project.default_lockfile(config)
    for name in result.resolved:
        typer.echo(f"{name}  {result.lock.images[name].reference}")
    for name in result.dropped:
        typer.echo(f"{name}  removed")
    kept = len(result.lock.images) - len(result.resolved)
    if result.written:
        summary = f"wrote {lock_path}: {len(result.lock.images)} image(s), {len(result.resolved)} resolved, {kept} kept"
    else:
        summary = f"{lock_path} is up to date ({len(result.lock.images)} image(s))"
    typer.echo(summary, err=True)


@app.command("check")
def check_command(
    context: typer.Context,
    config: ConfigOption = Path("images.toml"),
    lockfile: LockfileOption = None,
) -> None:
    """Exit 1 if images.lock does not match images.toml (offline; for CI)."""
    lock_path = lockfile or project.default_lockfile(config)
    stale = _run(context, lambda: project.check(config, lockfile))
    if not lock_path.exists():
        typer.echo(f"{lock_path}: not found; run 'imagelock lock'")
        raise typer.Exit(EXIT_CHECK_FAILED)
    if not stale:
        typer.echo(f"{lock_path} is up to date")
        return
    for entry in stale:
        typer.echo(f"{entry.name}: {entry.reason}")
    typer.echo(f"{lock_path} is stale; run 'imagelock lock'", err=True)
    raise typer.Exit(EXIT_CHECK_FAILED)


def main() -> None:
    app()
