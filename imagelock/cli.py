"""The ``imagelock`` command line: parses arguments, calls ``imagelock.project``, prints results.

Reports go to stdout (aligned for people, or ``--json``); progress, warnings, summaries and
errors go to stderr. Colour only on a terminal, and never with ``NO_COLOR``.

Exit codes: 0 success; 1 a check or policy failed; 2 bad input; 3 registry or network failure.
"""

from __future__ import annotations

import json
import traceback
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, TypeVar

import typer
from rich.console import Console
from rich.text import Text

from imagelock import __version__
from imagelock.errors import EXIT_CHECK_FAILED, ImagelockError
from imagelock.lockfile import LockedImage
from imagelock.project import Change, LockResult, Project

if TYPE_CHECKING:
    from rich.progress import Progress, TaskID

    from imagelock.pinning import Skipped

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
    typer.Option("--lockfile", help="The lock file (default: images.lock beside the config).", dir_okay=False),
]
JsonOption = Annotated[bool, typer.Option("--json", help="Print a machine-readable report (see docs/commands.md).")]
DryRunOption = Annotated[bool, typer.Option("--dry-run", help="Print what would change; write nothing.")]
VerboseOption = Annotated[bool, typer.Option("--verbose", "-v", help="List unchanged images too.")]
T = TypeVar("T")

STYLES = {"upgraded": "green", "added": "green", "downgraded": "red", "removed": "red", "rebuilt": "yellow"}


class TerminalEvents:
    """Warnings on stderr; a progress bar on stderr only when it is a terminal and the run is long."""

    def __init__(self) -> None:
        self.console = Console(stderr=True)
        self.progress: Progress | None = None
        self.task: TaskID | None = None

    def warning(self, message: str) -> None:
        self.console.print(f"warning: {message}", style="yellow", markup=False, highlight=False, soft_wrap=True)

    def started(self, total: int) -> None:
        if self.console.is_terminal and total > 1 and self.progress is None:
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

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
            self.progress = None


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


def _run(context: typer.Context, config: Path, lockfile: Path | None, operation: Callable[[Project], T]) -> T:
    """Run an operation on the project; an expected failure becomes one line on stderr and its exit code."""
    events = TerminalEvents()
    try:
        return operation(Project.at(config, lockfile, events=events))
    except ImagelockError as error:
        events.close()
        if context.obj and context.obj.get("debug"):
            traceback.print_exc()
        typer.echo(f"error: {error}", err=True)
        raise typer.Exit(error.exit_code) from None
    except KeyboardInterrupt:
        events.close()
        typer.echo("interrupted", err=True)
        raise typer.Exit(130) from None
    finally:
        events.close()


# -- output ---------------------------------------------------------------------------------------


def _stdout() -> Console:
    return Console(highlight=False, soft_wrap=True)


def _print_rows(rows: Sequence[Sequence[Text | str]]) -> None:
    """Aligned columns, two spaces apart; the last column is never padded."""
    if not rows:
        return
    widths = [max(len(str(row[index])) for row in rows) for index in range(len(rows[0]) - 1)]
    console = _stdout()
    for row in rows:
        line = Text()
        for index, cell in enumerate(row):
            text = cell if isinstance(cell, Text) else Text(cell)
            line.append_text(text)
            if index < len(widths):
                line.append(" " * (widths[index] - len(text) + 2))
        console.print(line)


def _short(digest: str) -> str:
    algorithm, _, hexdigest = digest.partition(":")
    return f"{algorithm}:{hexdigest[:12]}…"


def _change_text(change: Change) -> Text:
    old, new, style = change.old, change.new, STYLES.get(change.kind, "")
    if change.kind == "added" and new is not None:
        return Text.assemble(("added", style), f" {new.tag}  {_short(new.digest)}")
    if change.kind == "removed" and old is not None:
        return Text.assemble(("removed", style), f" (was {old.tag})")
    assert old is not None
    assert new is not None
    if change.kind == "unchanged":
        return Text(f"{new.tag} unchanged", style="dim")
    if change.kind == "rebuilt":
        return Text.assemble(f"{new.tag} ", ("rebuilt", style), f"  {_short(old.digest)} → {_short(new.digest)}")
    if old.image != new.image:
        return Text(f"{old.image}:{old.tag} → {new.image}:{new.tag}", style=style)
    return Text.assemble(f"{old.tag} → ", (new.tag, style))


def _entry_json(entry: LockedImage | None) -> dict[str, Any] | None:
    if entry is None:
        return None
    return {"image": entry.image, "tag": entry.tag, "digest": entry.digest, "platforms": dict(entry.platforms)}


def _change_json(change: Change) -> dict[str, Any]:
    return {"name": change.name, "change": change.kind, "old": _entry_json(change.old), "new": _entry_json(change.new)}


def _print_json(document: object) -> None:
    typer.echo(json.dumps(document, indent=2, sort_keys=True))


def _report_lock(result: LockResult, lock_path: Path, *, dry_run: bool, verbose: bool, as_json: bool) -> None:
    if as_json:
        _print_json(
            {
                "lockfile": str(lock_path),
                "written": result.written,
                "dry_run": dry_run,
                "changes": [_change_json(change) for change in result.changes],
            }
        )
    else:
        shown = result.changes if verbose else result.changed
        _print_rows([[Text(change.name, style="bold"), _change_text(change)] for change in shown])
    count = len(result.lock.images)
    if dry_run:
        summary = f"dry run: {len(result.changed)} change(s); {lock_path} not written"
    elif result.written:
        summary = f"wrote {lock_path}: {count} image(s), {len(result.changed)} changed"
    else:
        summary = f"{lock_path} is up to date ({count} image(s))"
    typer.echo(summary, err=True)


def _report_skipped(skipped: Sequence[Skipped]) -> None:
    for item in skipped:
        typer.echo(f"{item.path}:{item.line}: left alone: {item.text}: {item.reason}", err=True)


# -- commands -------------------------------------------------------------------------------------


@app.command("lock")
def lock_command(
    context: typer.Context,
    config: ConfigOption = Path("images.toml"),
    lockfile: LockfileOption = None,
    upgrade: Annotated[bool, typer.Option("--upgrade", "-U", help="Re-resolve every image.")] = False,
    upgrade_image: Annotated[
        list[str] | None, typer.Option("--upgrade-image", "-P", help="Re-resolve this image (repeatable).")
    ] = None,
    dry_run: DryRunOption = False,
    verbose: VerboseOption = False,
    as_json: JsonOption = False,
) -> None:
    """Resolve images.toml into images.lock. Entries whose spec is unchanged keep their pins."""
    selection: bool | list[str] = True if upgrade else list(upgrade_image or [])
    result = _run(context, config, lockfile, lambda project: project.lock(upgrade=selection, dry_run=dry_run))
    _report_lock(result, Project.at(config, lockfile).lock_path, dry_run=dry_run, verbose=verbose, as_json=as_json)


@app.command("update")
def update_command(
    context: typer.Context,
    names: Annotated[list[str] | None, typer.Argument(help="Images to update (default: all).")] = None,
    config: ConfigOption = Path("images.toml"),
    lockfile: LockfileOption = None,
    dry_run: DryRunOption = False,
    verbose: VerboseOption = False,
    as_json: JsonOption = False,
) -> None:
    """Move pins forward: re-resolve all images, or only NAMES, to the newest tags their specs allow."""
    selection: bool | list[str] = list(names) if names else True
    result = _run(context, config, lockfile, lambda project: project.lock(upgrade=selection, dry_run=dry_run))
    _report_lock(result, Project.at(config, lockfile).lock_path, dry_run=dry_run, verbose=verbose, as_json=as_json)


@app.command("check")
def check_command(
    context: typer.Context,
    config: ConfigOption = Path("images.toml"),
    lockfile: LockfileOption = None,
) -> None:
    """Exit 1 if images.lock does not match images.toml (offline; for CI)."""
    lock_path = Project.at(config, lockfile).lock_path
    stale = _run(context, config, lockfile, lambda project: project.check())
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


@app.command("outdated")
def outdated_command(
    context: typer.Context,
    config: ConfigOption = Path("images.toml"),
    lockfile: LockfileOption = None,
    exit_code: Annotated[bool, typer.Option("--exit-code", help="Exit 1 when something is outdated.")] = False,
    as_json: JsonOption = False,
) -> None:
    """List images an update would move (online, read-only)."""
    changes = _run(context, config, lockfile, lambda project: project.outdated())
    if as_json:
        _print_json({"outdated": [_change_json(change) for change in changes]})
    elif changes:
        rows: list[list[Text | str]] = [[Text(h, style="bold") for h in ("NAME", "LOCKED", "LATEST", "CHANGE")]]
        for change in changes:
            locked = change.old.tag if change.old is not None else "-"
            latest = change.new.tag if change.new is not None else "-"
            kind = "not locked" if change.kind == "added" else change.kind
            rows.append([change.name, locked, latest, Text(kind, style=STYLES.get(change.kind, ""))])
        _print_rows(rows)
    else:
        typer.echo("every image is up to date")
    if changes and exit_code:
        raise typer.Exit(EXIT_CHECK_FAILED)


@app.command("why")
def why_command(
    context: typer.Context,
    name: Annotated[str, typer.Argument(help="The image to explain.")],
    config: ConfigOption = Path("images.toml"),
    lockfile: LockfileOption = None,
    as_json: JsonOption = False,
) -> None:
    """Why NAME resolves to the tag it does: every tag considered, newest first, with its verdict."""
    explanation = _run(context, config, lockfile, lambda project: project.why(name))
    if as_json:
        tags = [{"tag": t.tag, "version": t.version, "verdict": t.verdict} for t in explanation.tags]
        _print_json({"name": explanation.name, "image": explanation.image, "chosen": explanation.chosen, "tags": tags})
        return
    chosen = explanation.chosen or "nothing"
    _stdout().print(Text.assemble((explanation.name, "bold"), f"  {explanation.image}  chosen: {chosen}"))
    styles = {"chosen": "green bold", "older": "dim"}
    _print_rows([["  " + t.tag, Text(t.verdict, style=styles.get(t.verdict, ""))] for t in explanation.tags])


@app.command("verify")
def verify_command(
    context: typer.Context,
    config: ConfigOption = Path("images.toml"),
    lockfile: LockfileOption = None,
    as_json: JsonOption = False,
) -> None:
    """Check that every locked digest still exists and offers its locked platforms (online, read-only)."""
    results = _run(context, config, lockfile, lambda project: project.verify())
    failed = [result for result in results if not result.ok]
    if as_json:
        images = [{"name": r.name, "reference": r.reference, "ok": r.ok, "problems": list(r.problems)} for r in results]
        _print_json({"ok": not failed, "images": images})
    else:
        _print_rows(
            [
                [Text(r.name, style="bold"), Text("ok", style="green") if r.ok else Text("; ".join(r.problems), "red")]
                for r in results
            ]
        )
    if failed:
        typer.echo(f"{len(failed)} of {len(results)} image(s) failed verification", err=True)
        raise typer.Exit(EXIT_CHECK_FAILED)


@app.command("add")
def add_command(
    context: typer.Context,
    name: Annotated[str, typer.Argument(help="The new entry's name.")],
    image: Annotated[str, typer.Argument(help="Repository, e.g. nginx or ghcr.io/org/app.")],
    version: Annotated[str | None, typer.Option("--version", help="PEP 440 specifier, e.g. '>=1.25'.")] = None,
    tag: Annotated[str | None, typer.Option("--tag", help="A tag to follow instead of a version range.")] = None,
    variant: Annotated[str | None, typer.Option("--variant", help="Only tags '<version>-<variant>'.")] = None,
    config: ConfigOption = Path("images.toml"),
    lockfile: LockfileOption = None,
) -> None:
    """Add an image to images.toml (keeping its comments and layout) and lock it."""
    result = _run(
        context,
        config,
        lockfile,
        lambda project: project.add(name, image, version=version, tag=tag, variant=variant),
    )
    _report_lock(result, Project.at(config, lockfile).lock_path, dry_run=False, verbose=False, as_json=False)


@app.command("remove")
def remove_command(
    context: typer.Context,
    name: Annotated[str, typer.Argument(help="The entry to remove.")],
    config: ConfigOption = Path("images.toml"),
    lockfile: LockfileOption = None,
) -> None:
    """Remove an image from images.toml and from the lock."""
    result = _run(context, config, lockfile, lambda project: project.remove(name))
    _report_lock(result, Project.at(config, lockfile).lock_path, dry_run=False, verbose=False, as_json=False)


@app.command("render")
def render_command(
    context: typer.Context,
    paths: Annotated[list[Path], typer.Argument(help="Template files or directories.")],
    out: Annotated[
        Path | None, typer.Option("--output", "-o", help="Output file, or directory (kept relative paths).")
    ] = None,
    check: Annotated[bool, typer.Option("--check", help="Write nothing; exit 1 if any output would change.")] = False,
    config: ConfigOption = Path("images.toml"),
    lockfile: LockfileOption = None,
) -> None:
    """Render Jinja2 templates with the lock: {{ images.web }} is the pinned reference."""
    if check and out is None:
        typer.echo("error: --check compares with files on disk: give -o OUT", err=True)
        raise typer.Exit(2)
    result = _run(context, config, lockfile, lambda project: project.render(paths, out, check=check))
    for target, text in result.outputs:
        if target is None:
            typer.echo(text, nl=False)
    if check:
        for target in result.drift:
            typer.echo(f"{target}: differs from what the lock renders")
        if result.drift:
            typer.echo(f"{len(result.drift)} rendered file(s) out of date; run 'imagelock render'", err=True)
            raise typer.Exit(EXIT_CHECK_FAILED)
    elif out is not None:
        typer.echo(f"rendered {len(result.outputs)} file(s) into {out}", err=True)


@app.command("pin")
def pin_command(
    context: typer.Context,
    paths: Annotated[list[Path], typer.Argument(help="Dockerfiles, YAML files, or directories of them.")],
    check: Annotated[bool, typer.Option("--check", help="Change nothing; exit 1 if any file would change.")] = False,
    config: ConfigOption = Path("images.toml"),
    lockfile: LockfileOption = None,
) -> None:
    """Rewrite image references in files to their pinned form, keeping everything else as it is."""
    result = _run(context, config, lockfile, lambda project: project.pin(paths, check=check))
    _print_rows([[f"{c.path}:{c.line}", Text.assemble(f"{c.old} → ", (c.new, "green"))] for c in result.changes])
    _report_skipped(result.skipped)
    files = len({change.path for change in result.changes})
    if check and result.changes:
        typer.echo(f"{len(result.changes)} reference(s) in {files} file(s) not pinned to the lock", err=True)
        raise typer.Exit(EXIT_CHECK_FAILED)
    if not check:
        typer.echo(f"pinned {len(result.changes)} reference(s) in {files} file(s)", err=True)


@app.command("init")
def init_command(
    context: typer.Context,
    paths: Annotated[list[Path], typer.Argument(help="Deploy files or directories to scan.")],
    force: Annotated[bool, typer.Option("--force", help="Overwrite an existing images.toml.")] = False,
    config: ConfigOption = Path("images.toml"),
) -> None:
    """Write a starting images.toml that follows the tags found in Dockerfiles and YAML files."""
    created, skipped = _run(context, config, None, lambda project: project.init(paths, force=force))
    _print_rows([[Text(name, style="bold"), f"{spec.repository}:{spec.tag}"] for name, spec in created.images.items()])
    _report_skipped(skipped)
    typer.echo(f"wrote {config}: {len(created.images)} image(s); next: imagelock lock", err=True)


class _BytesProgress:
    """A progress bar in bytes for 'mirror', on stderr and only on a terminal."""

    def __init__(self) -> None:
        self.console = Console(stderr=True)
        self.progress: Progress | None = None
        self.task: TaskID | None = None

    def planned(self, size: int) -> None:
        if self.progress is None and self.console.is_terminal:
            from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TransferSpeedColumn

            self.progress = Progress(
                TextColumn("mirroring"), BarColumn(), DownloadColumn(), TransferSpeedColumn(),
                console=self.console, transient=True,
            )  # fmt: skip
            self.task = self.progress.add_task("mirroring", total=0)
            self.progress.start()
        if self.progress is not None and self.task is not None:
            total = self.progress.tasks[0].total or 0
            self.progress.update(self.task, total=total + size)

    def transferred(self, size: int) -> None:
        if self.progress is not None and self.task is not None:
            self.progress.advance(self.task, size)

    def close(self) -> None:
        if self.progress is not None:
            self.progress.stop()
            self.progress = None


@app.command("mirror")
def mirror_command(
    context: typer.Context,
    target: Annotated[str, typer.Argument(help="Registry host and optional path, e.g. registry.internal:5000/mirror.")],
    names: Annotated[list[str] | None, typer.Argument(help="Images to mirror (default: all).")] = None,
    config: ConfigOption = Path("images.toml"),
    lockfile: LockfileOption = None,
    as_json: JsonOption = False,
) -> None:
    """Copy the locked images, with their signatures, into TARGET/<repository path>, digests unchanged."""
    progress = _BytesProgress()
    try:
        result = _run(context, config, lockfile, lambda project: project.mirror(target, names or (), progress=progress))
    finally:
        progress.close()
    if as_json:
        images = [
            {
                "name": image.name, "source": image.source, "target": image.target,
                "manifests_pushed": image.manifests_pushed, "blobs_uploaded": image.blobs_uploaded,
                "blobs_mounted": image.blobs_mounted, "blobs_present": image.blobs_present,
                "bytes_uploaded": image.bytes_uploaded, "signatures": image.signatures,
            }
            for image in result.images
        ]  # fmt: skip
        _print_json({"target": result.target, "images": images})
    else:
        rows: list[list[Text | str]] = []
        for image in result.images:
            if image.copied:
                what = (
                    f"copied {image.manifests_pushed} manifest(s), {image.blobs_uploaded} blob(s) "
                    f"({_size(image.bytes_uploaded)}), mounted {image.blobs_mounted}"
                )
                status = Text(what, style="green")
            else:
                status = Text("up to date", style="dim")
            signed = f"  {image.signatures} signature(s)" if image.signatures else ""
            rows.append([Text(image.name, style="bold"), image.target, Text.assemble(status, signed)])
        _print_rows(rows)
    copied = sum(1 for image in result.images if image.copied)
    total = sum(image.bytes_uploaded for image in result.images)
    typer.echo(
        f"mirrored {len(result.images)} image(s) to {result.target}: {copied} copied, {_size(total)} uploaded", err=True
    )


def _size(size: int) -> str:
    value = float(size)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if value < 1024 or unit == "GiB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    raise AssertionError("unreachable")


def main() -> None:
    app()
