"""The ``imagelock`` command line: parses arguments, calls ``imagelock.project``, prints results.

Reports go to stdout (aligned for people, or ``--json``); progress, warnings, summaries and
errors go to stderr (under ``--json`` an error also goes to stdout). Colour only on a terminal, and
never with ``NO_COLOR``.

Exit codes: 0 success; 1 a check or policy failed; 2 bad input; 3 registry or network failure;
130 interrupted.
"""

from __future__ import annotations

import copy
import json
import os
import sys
import time
import traceback
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, NoReturn, TypeVar

import typer
from rich.text import Text
from typer._click.exceptions import ClickException, NoArgsIsHelpError
from typer.core import TyperGroup

from imagelock import __version__
from imagelock._fastpath import remember
from imagelock.errors import EXIT_CHECK_FAILED, EXIT_INTERRUPTED, EXIT_REGISTRY, ImagelockError, InputError
from imagelock.freshness import made_json
from imagelock.lockfile import LockedImage
from imagelock.project import Change, LockResult, Project
from imagelock.relocation import parse_relocations

if TYPE_CHECKING:
    from rich.console import Console
    from rich.progress import Progress, TaskID
    from typer._click import Context

    from imagelock.audit.scan import AuditReport, Finding
    from imagelock.pinning import Notice, Skipped
    from imagelock.resolver import Explanation


class _Program(TyperGroup):
    """The top command, where whatever a command raises ends, once (see ``_failures_reported``)."""

    def make_context(
        self, info_name: str | None, args: list[str], parent: Context | None = None, **extra: Any
    ) -> Context:
        with _failures_reported(as_json="--json" in args, debug=lambda: False):
            return super().make_context(info_name, args, parent, **extra)

    def invoke(self, ctx: Context) -> Any:
        with _failures_reported(as_json="--json" in ctx.args, debug=lambda: bool(ctx.obj and ctx.obj.get("debug"))):
            return super().invoke(ctx)


@contextmanager
def _failures_reported(*, as_json: bool, debug: Callable[[], bool]) -> Iterator[None]:
    """An expected failure or a usage mistake becomes one line on stderr (also ``{"error": …}`` on stdout
    under --json) and its exit code; Ctrl-C at any moment becomes ``interrupted`` and exit 130."""
    try:
        yield
    except KeyboardInterrupt:
        _fail("interrupted", EXIT_INTERRUPTED, as_json=as_json)
    except ImagelockError as error:
        if debug():
            traceback.print_exc()
        _fail(str(error), error.exit_code, as_json=as_json)
    except NoArgsIsHelpError as error:  # `imagelock` (or `imagelock vulndb`) alone: its help, as a usage mistake
        typer.echo(error.format_message())
        raise typer.Exit(error.exit_code) from None
    except ClickException as error:
        context = getattr(error, "ctx", None)
        where = f"{context.command_path}: " if context is not None else ""
        _fail(where + " ".join(error.format_message().split()), error.exit_code, as_json=as_json)


def _fail(message: str, exit_code: int, *, as_json: bool) -> NoReturn:
    if as_json:
        _print_json({"error": {"message": message, "exit": exit_code}})
    lines = [message] if exit_code == EXIT_INTERRUPTED else [f"error: {line}" for line in message.splitlines()]
    typer.echo("\n".join(lines), err=True)  # several failures (SeveralFailuresError): one line each
    raise typer.Exit(exit_code)


app = typer.Typer(
    name="imagelock",
    cls=_Program,
    help="Lock container images to digests, the way pip-tools locks Python packages.",
    no_args_is_help=True,
    add_completion=True,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,  # help text is plain text: `HOST[/PATH]` is not markup
    context_settings={"help_option_names": ["-h", "--help"]},
)

ConfigOption = Annotated[Path, typer.Option("--config", "-c", help="The images.toml to read.", dir_okay=False)]
LockfileOption = Annotated[
    Path | None,
    typer.Option("--lockfile", help="The lock file (default: images.lock beside the config).", dir_okay=False),
]
DbOption = Annotated[
    Path | None,
    typer.Option("--db", help="OSV records offline: a directory of *.json records or all.zip exports, or one zip."),
]
OsvUrlOption = Annotated[str | None, typer.Option("--osv-url", help="The OSV API to ask (default: api.osv.dev).")]
BundleOption = Annotated[
    Path | None,
    typer.Option("--bundle", help="Read the images from this bundle ('imagelock bundle'), offline: no registry."),
]
ExcludeNewerOption = Annotated[
    str | None,
    typer.Option(
        "--exclude-newer", metavar="TIME", help="Resolve as of this RFC 3339 time: later images do not exist."
    ),
]
JsonOption = Annotated[bool, typer.Option("--json", help="Print a machine-readable report (see docs/commands.md).")]
DryRunOption = Annotated[bool, typer.Option("--dry-run", help="Print what would change; write nothing.")]
VerboseOption = Annotated[bool, typer.Option("--verbose", "-v", help="List unchanged images too.")]
RelocateOption = Annotated[
    list[str] | None,
    typer.Option(
        "--relocate",
        metavar="OLD=NEW",
        help="Name the mirror: repositories under OLD (HOST[/PATH]) are written under NEW, same digests (repeatable).",
    ),
]
T = TypeVar("T")


class ExportFormat(StrEnum):
    kustomize = "kustomize"
    helm_values = "helm-values"
    json = "json"


STYLES = {
    "upgraded": "green",
    "added": "green",
    "downgraded": "red",
    "removed": "red",
    "rebuilt": "yellow",
    "tag moved": "red",
    "re-indexed": "yellow",
}


class TerminalEvents:
    """Warnings on stderr; a progress bar on stderr only when it is a terminal and the run is long."""

    def __init__(self) -> None:
        self._console: Console | None = None
        self.progress: Progress | None = None
        self.task: TaskID | None = None

    @property
    def console(self) -> Console:
        if self._console is None:  # rich.console is imported only by runs that print through it
            self._console = _console(stderr=True)
        return self._console

    def warning(self, message: str) -> None:
        self.console.print(f"warning: {message}", style="yellow", markup=False, highlight=False, soft_wrap=True)

    def started(self, total: int) -> None:
        if _animated(self.console) and total > 1 and self.progress is None:
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


def _complete_names(context: typer.Context, incomplete: str) -> list[str]:
    """Shell completion for NAME arguments: the image names of images.toml (or of the lock)."""
    config = context.params.get("config") or Path("images.toml")
    lockfile = context.params.get("lockfile")
    given = set(context.params.get("names") or ())  # update NAME…: each name once
    names = Project.at(Path(config), Path(lockfile) if lockfile else None).names()
    return [name for name in names if name.startswith(incomplete) and name not in given]


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


def _run(
    context: typer.Context,
    config: Path,
    lockfile: Path | None,
    operation: Callable[[Project], T],
    **options: object,
) -> T:
    """Run an operation on the project, its progress on stderr; failures are reported by ``_Program``."""
    events = TerminalEvents()
    try:
        return operation(Project.at(config, lockfile, events=events, **options))
    finally:
        events.close()


# -- output ---------------------------------------------------------------------------------------


def _console(*, stderr: bool = False, highlight: bool = True, soft_wrap: bool = False) -> Console:
    """Styles only on a terminal; under NO_COLOR none at all (rich's own NO_COLOR keeps bold and dim)."""
    from rich.console import Console

    no_color = os.environ.get("NO_COLOR", "") != ""  # no-color.org: set and not empty
    return Console(stderr=stderr, highlight=highlight, soft_wrap=soft_wrap, color_system=None if no_color else "auto")


def _animated(console: Console) -> bool:
    """Whether a progress bar may redraw itself, with escape sequences: on a terminal that takes styles."""
    return console.is_terminal and console.color_system is not None


def _stdout() -> Console:
    return _console(highlight=False, soft_wrap=True)


def _print_rows(rows: Sequence[Sequence[Text | str]]) -> None:
    """Aligned columns, two spaces apart; the last column is never padded."""
    if not rows:
        return
    widths = [max(len(str(row[index])) for row in rows) for index in range(len(rows[0]) - 1)]
    lines = []
    for row in rows:
        line = Text()
        for index, cell in enumerate(row):
            text = cell if isinstance(cell, Text) else Text(cell)
            line.append_text(text)
            if index < len(widths):
                line.append(" " * (widths[index] - len(text) + 2))
        lines.append(line)
    console = _stdout()
    if console.color_system is None:  # a pipe or a file: no styles to render, and rendering is all rich would do
        console.file.write("".join(f"{line.plain}\n" for line in lines))
    else:
        console.print(Text("\n").join(lines))


def _short(digest: str) -> str:
    algorithm, _, hexdigest = digest.partition(":")
    return f"{algorithm}:{hexdigest[:12]}…"


def _change_text(change: Change) -> Text:
    text = _change_kind_text(change)
    if change.skipped is not None:
        text.append(f" ({change.skipped})")
    return text


def _change_kind_text(change: Change) -> Text:
    old, new, style = change.old, change.new, STYLES.get(change.kind, "")
    if change.kind == "added" and new is not None:
        return Text.assemble(("added", style), f" {new.tag}  {_short(new.digest)}")
    if change.kind == "removed" and old is not None:
        return Text.assemble(("removed", style), f" (was {old.tag})")
    assert old is not None
    assert new is not None
    if change.kind == "unchanged":
        return Text(f"{new.tag} unchanged", style="dim")
    if change.kind in ("rebuilt", "tag moved", "re-indexed"):
        return Text.assemble(f"{new.tag} ", (change.kind, style), f"  {_short(old.digest)} → {_short(new.digest)}")
    if old.image != new.image:
        return Text(f"{old.image}:{old.tag} → {new.image}:{new.tag}", style=style)
    text = Text.assemble(f"{old.tag} → ", (new.tag, style))
    if change.kind == "downgraded":
        text.append(" (downgraded)", style=style)
    return text


def _entry_json(entry: LockedImage | None) -> dict[str, Any] | None:
    if entry is None:
        return None
    return {"image": entry.image, "tag": entry.tag, "digest": entry.digest, "platforms": dict(entry.platforms)}


def _change_json(change: Change) -> dict[str, Any]:
    return {
        "name": change.name,
        "change": change.kind,
        "old": _entry_json(change.old),
        "new": _entry_json(change.new),
        "skipped": change.skipped,
    }


def _print_json(document: object) -> None:
    typer.echo(json.dumps(document, indent=2, sort_keys=True))


def _report_lock(result: LockResult, lock_path: Path, *, dry_run: bool, verbose: bool, as_json: bool) -> str:
    """Print the changes (or the JSON report) and the summary line on stderr, which is returned."""
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
        held_back = [change for change in result.changes if change.kind == "unchanged" and change.held_back]
        shown = result.changes if verbose else sorted([*result.changed, *held_back], key=lambda change: change.name)
        _print_rows([[Text(change.name, style="bold"), _change_text(change)] for change in shown])
    if result.merged is not None:
        again = ", ".join(result.merged.disputed) or "none"
        typer.echo(
            f"merged the git conflict in {lock_path} (entries the two sides lock differently: {again})", err=True
        )
    count = len(result.lock.images)
    if dry_run:
        summary = f"dry run: {len(result.changed)} change(s); {lock_path} not written"
    elif result.written:
        summary = f"wrote {lock_path}: {count} image(s), {len(result.changed)} changed"
    else:
        summary = f"{lock_path} is up to date ({count} image(s))"
    typer.echo(summary, err=True)
    return summary


def _remember_up_to_date(command: str, project: Project, started_ns: int, stream: int, message: str) -> None:
    """Let the next run of this command line on the same files answer before the CLI loads (_fastpath.py)."""
    try:
        inputs = project.inputs()
    except ImagelockError:  # images.toml changed meanwhile: nothing to remember
        return
    remember(command, inputs, started_ns, stream, message)


def _skipped_json(skipped: Sequence[Skipped], notices: Sequence[Notice]) -> dict[str, Any]:
    return {
        "skipped": [{"path": str(s.path), "line": s.line, "text": s.text, "reason": s.reason} for s in skipped],
        "notices": [{"path": str(n.path), "line": n.line, "message": n.message} for n in notices],
    }


def _report_skipped(skipped: Sequence[Skipped], notices: Sequence[Notice]) -> None:
    for notice in notices:
        where = f"{notice.path}:{notice.line}" if notice.line is not None else f"{notice.path}"
        typer.echo(f"{where}: {notice.message}", err=True)
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
        list[str] | None,
        typer.Option(
            "--upgrade-image",
            "--upgrade-package",  # pip-compile's spelling
            "-P",
            help="Re-resolve this image (repeatable).",
            autocompletion=_complete_names,
        ),
    ] = None,
    dry_run: DryRunOption = False,
    verbose: VerboseOption = False,
    as_json: JsonOption = False,
    db: DbOption = None,
    osv_url: OsvUrlOption = None,
    exclude_newer: ExcludeNewerOption = None,
) -> None:
    """Resolve images.toml into images.lock. Entries whose spec is unchanged keep their pins."""
    started = time.time_ns()
    selection: bool | list[str] = True if upgrade else list(upgrade_image or [])
    result = _run(
        context,
        config,
        lockfile,
        lambda project: project.lock(upgrade=selection, dry_run=dry_run),
        vulnerability_db=db,
        osv_url=osv_url,
        exclude_newer=exclude_newer,
    )
    project = Project.at(config, lockfile)
    summary = _report_lock(result, project.lock_path, dry_run=dry_run, verbose=verbose, as_json=as_json)
    if not result.written and not dry_run:
        _remember_up_to_date("lock", project, started, 2, summary)


@app.command("update")
def update_command(
    context: typer.Context,
    names: Annotated[
        list[str] | None, typer.Argument(help="Images to update (default: all).", autocompletion=_complete_names)
    ] = None,
    config: ConfigOption = Path("images.toml"),
    lockfile: LockfileOption = None,
    dry_run: DryRunOption = False,
    verbose: VerboseOption = False,
    as_json: JsonOption = False,
    db: DbOption = None,
    osv_url: OsvUrlOption = None,
    exclude_newer: ExcludeNewerOption = None,
) -> None:
    """Move pins forward: re-resolve all images, or only NAMES, to the newest tags their specs allow."""
    selection: bool | list[str] = list(names) if names else True
    result = _run(
        context,
        config,
        lockfile,
        lambda project: project.lock(upgrade=selection, dry_run=dry_run),
        vulnerability_db=db,
        osv_url=osv_url,
        exclude_newer=exclude_newer,
    )
    _report_lock(result, Project.at(config, lockfile).lock_path, dry_run=dry_run, verbose=verbose, as_json=as_json)


@app.command("check")
def check_command(
    context: typer.Context,
    config: ConfigOption = Path("images.toml"),
    lockfile: LockfileOption = None,
    as_json: JsonOption = False,
) -> None:
    """Exit 1 if images.lock does not match images.toml (offline; for CI)."""
    started = time.time_ns()
    project = Project.at(config, lockfile)
    lock_path = project.lock_path
    stale = _run(context, config, lockfile, lambda project: project.check())
    found = lock_path.exists()
    if as_json:
        entries = [{"name": entry.name, "reason": entry.reason} for entry in stale]
        _print_json({"ok": found and not stale, "lockfile": str(lock_path), "found": found, "stale": entries})
    elif not found:
        typer.echo(f"{lock_path}: not found; run 'imagelock lock'")
    elif not stale:
        typer.echo(f"{lock_path} is up to date")
        _remember_up_to_date("check", project, started, 1, f"{lock_path} is up to date")
    else:
        for entry in stale:
            typer.echo(f"{entry.name}: {entry.reason}")
    if found and stale:
        typer.echo(f"{lock_path} is stale; run 'imagelock lock'", err=True)
    if not found or stale:
        raise typer.Exit(EXIT_CHECK_FAILED)


@app.command("outdated")
def outdated_command(
    context: typer.Context,
    config: ConfigOption = Path("images.toml"),
    lockfile: LockfileOption = None,
    exit_code: Annotated[bool, typer.Option("--exit-code", help="Exit 1 when something is outdated.")] = False,
    as_json: JsonOption = False,
    exclude_newer: ExcludeNewerOption = None,
) -> None:
    """List images an update would move (online, read-only)."""
    changes = _run(context, config, lockfile, lambda project: project.outdated(), exclude_newer=exclude_newer)
    if as_json:
        _print_json({"outdated": [{**_change_json(change), **made_json(change.made)} for change in changes]})
    elif changes:
        headings = ("NAME", "LOCKED", "LATEST", "AGE", "CHANGE")
        rows: list[list[Text | str]] = [[Text(h, style="bold") for h in headings]]
        for change in changes:
            locked = change.old.tag if change.old is not None else "-"
            latest = change.new.tag if change.new is not None else "-"
            age = made_json(change.made)["age"] or "-"
            kind = "not locked" if change.kind == "added" else change.kind
            rows.append([change.name, locked, latest, age, Text(kind, style=STYLES.get(change.kind, ""))])
        _print_rows(rows)
    else:
        typer.echo("every image is up to date")
    if changes and exit_code:
        raise typer.Exit(EXIT_CHECK_FAILED)


@app.command("why")
def why_command(
    context: typer.Context,
    name: Annotated[str, typer.Argument(help="The image to explain.", autocompletion=_complete_names)],
    config: ConfigOption = Path("images.toml"),
    lockfile: LockfileOption = None,
    as_json: JsonOption = False,
    db: DbOption = None,
    osv_url: OsvUrlOption = None,
    exclude_newer: ExcludeNewerOption = None,
) -> None:
    """Why NAME resolves to the tag it does: every tag considered, newest first, with its verdict."""
    explanation = _run(
        context,
        config,
        lockfile,
        lambda project: project.why(name),
        vulnerability_db=db,
        osv_url=osv_url,
        exclude_newer=exclude_newer,
    )
    if as_json:
        tags = [
            {"tag": t.tag, "version": t.version, "verdict": t.verdict, **made_json(t.made)} for t in explanation.tags
        ]
        document: dict[str, object] = {"name": explanation.name, "image": explanation.image, "tags": tags}
        document |= {"chosen": explanation.chosen, "chosen_digest": explanation.chosen_digest}
        _print_json({**document, "locked": _entry_json(explanation.locked), "hint": explanation.hint})
        return
    lock_path = Project.at(config, lockfile).lock_path
    _stdout().print(Text.assemble((explanation.name, "bold"), f"  {_why_summary(explanation, lock_path)}"))
    if explanation.hint is not None:
        _stdout().print(Text(f"  hint: {explanation.hint}", style="yellow"), soft_wrap=True)
    styles = {"chosen": "green bold", "chosen, locked": "green bold", "locked": "cyan", "older": "dim"}
    _print_rows([["  " + t.tag, Text(t.verdict, style=styles.get(t.verdict, ""))] for t in explanation.tags])


def _why_summary(explanation: Explanation, lock_path: Path) -> str:
    """``IMAGE  locked: TAG (sha256:…)  newest allowed: TAG``: what the lock pins beside what a fresh resolve picks."""
    locked, newest = explanation.locked, explanation.chosen or "nothing"
    if locked is None:
        pinned = "not locked" if lock_path.exists() else f"not locked (no {lock_path.name})"
    else:
        where = "" if locked.image == explanation.image else f"{locked.image}:"
        pinned = f"locked: {where}{locked.tag} ({_short(locked.digest)})"
    if explanation.rebuilt is not None:
        newest += f" (rebuilt: {_short(explanation.rebuilt)})"
    return f"{explanation.image}  {pinned}  newest allowed: {newest}"


@app.command("verify")
def verify_command(
    context: typer.Context,
    config: ConfigOption = Path("images.toml"),
    lockfile: LockfileOption = None,
    as_json: JsonOption = False,
    bundle: BundleOption = None,
) -> None:
    """Check that every locked digest still exists and offers its locked platforms (online, read-only),
    or with --bundle, offline, that a bundle holds exactly what the lock says."""
    results = _run(context, config, lockfile, lambda project: project.verify(bundle=bundle))
    failed = [result for result in results if not result.ok]
    if as_json:
        images = [
            {"name": r.name, "reference": r.reference, "ok": r.ok, "problems": list(r.problems), "notes": list(r.notes)}
            for r in results
        ]
        _print_json({"ok": not failed, "images": images})
    else:
        _print_rows(
            [
                [
                    Text(r.name, style="bold"),
                    Text("; ".join(["ok", *r.notes]), style="green") if r.ok else Text("; ".join(r.problems), "red"),
                ]
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
    image: Annotated[
        str, typer.Argument(help="Repository, e.g. nginx or ghcr.io/org/app; IMAGE:TAG follows that tag.")
    ],
    version: Annotated[str | None, typer.Option("--version", help="PEP 440 specifier, e.g. '>=1.25'.")] = None,
    tag: Annotated[str | None, typer.Option("--tag", help="A tag to follow instead of a version range.")] = None,
    variant: Annotated[str | None, typer.Option("--variant", help="Only tags '<version>-<variant>'.")] = None,
    config: ConfigOption = Path("images.toml"),
    lockfile: LockfileOption = None,
    as_json: JsonOption = False,
    db: DbOption = None,
    osv_url: OsvUrlOption = None,
) -> None:
    """Add an image to images.toml (keeping its comments and layout) and lock it."""
    result = _run(
        context,
        config,
        lockfile,
        lambda project: project.add(name, image, version=version, tag=tag, variant=variant),
        vulnerability_db=db,
        osv_url=osv_url,
    )
    _report_lock(result, Project.at(config, lockfile).lock_path, dry_run=False, verbose=False, as_json=as_json)


@app.command("remove")
def remove_command(
    context: typer.Context,
    name: Annotated[str, typer.Argument(help="The entry to remove.", autocompletion=_complete_names)],
    config: ConfigOption = Path("images.toml"),
    lockfile: LockfileOption = None,
    as_json: JsonOption = False,
) -> None:
    """Remove an image from images.toml and from the lock."""
    result = _run(context, config, lockfile, lambda project: project.remove(name))
    _report_lock(result, Project.at(config, lockfile).lock_path, dry_run=False, verbose=False, as_json=as_json)


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
    relocate: RelocateOption = None,
    as_json: JsonOption = False,
) -> None:
    """Render Jinja2 templates with the lock: {{ images.web }} is the pinned reference."""
    if out is None and (check or as_json):
        option = "--check compares with files on disk" if check else "--json reports the files written"
        raise InputError(f"{option}: give -o OUT")
    result = _run(
        context,
        config,
        lockfile,
        lambda project: project.render(paths, out, check=check, relocations=parse_relocations(relocate or ())),
    )
    if as_json:
        outputs = [{"path": str(target), "changed": target in result.drift} for target, _ in result.outputs]
        _print_json({"ok": not (check and result.drift), "check": check, "outputs": outputs})
    else:
        for target, text in result.outputs:
            if target is None:
                typer.echo(text, nl=False)
        for target in result.drift if check else ():
            typer.echo(f"{target}: differs from what the lock renders")
    if check and result.drift:
        typer.echo(f"{len(result.drift)} rendered file(s) out of date; run 'imagelock render'", err=True)
        raise typer.Exit(EXIT_CHECK_FAILED)
    if not check and out is not None:
        typer.echo(f"rendered {len(result.outputs)} file(s) into {out}", err=True)


@app.command("pin")
def pin_command(
    context: typer.Context,
    paths: Annotated[list[Path], typer.Argument(help="Dockerfiles, YAML files, or directories of them.")],
    check: Annotated[bool, typer.Option("--check", help="Change nothing; exit 1 if any file would change.")] = False,
    config: ConfigOption = Path("images.toml"),
    lockfile: LockfileOption = None,
    relocate: RelocateOption = None,
    as_json: JsonOption = False,
) -> None:
    """Rewrite image references in files to their pinned form, keeping everything else as it is."""
    result = _run(
        context,
        config,
        lockfile,
        lambda project: project.pin(paths, check=check, relocations=parse_relocations(relocate or ())),
    )
    if as_json:
        changes = [{"path": str(c.path), "line": c.line, "old": c.old, "new": c.new} for c in result.changes]
        ok = not (check and changes)
        _print_json({"ok": ok, "check": check, "changes": changes, **_skipped_json(result.skipped, result.notices)})
    else:
        _print_rows([[f"{c.path}:{c.line}", Text.assemble(f"{c.old} → ", (c.new, "green"))] for c in result.changes])
    _report_skipped(result.skipped, result.notices)
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
    as_json: JsonOption = False,
) -> None:
    """Write a starting images.toml that follows the tags found in Dockerfiles and YAML files."""
    result = _run(context, config, None, lambda project: project.init(paths, force=force))
    images = result.config.images
    if as_json:
        entries = {name: {"image": str(spec.repository), "tag": spec.tag} for name, spec in images.items()}
        _print_json({"config": str(config), "images": entries, **_skipped_json(result.skipped, result.notices)})
    else:
        _print_rows([[Text(name, style="bold"), f"{spec.repository}:{spec.tag}"] for name, spec in images.items()])
    _report_skipped(result.skipped, result.notices)
    typer.echo(f"wrote {config}: {len(images)} image(s); next: imagelock lock", err=True)


@app.command("audit")
def audit_command(
    context: typer.Context,
    names: Annotated[
        list[str] | None, typer.Argument(help="Images to audit (default: all locked).", autocompletion=_complete_names)
    ] = None,
    config: ConfigOption = Path("images.toml"),
    lockfile: LockfileOption = None,
    fail_on: Annotated[
        str | None,
        typer.Option(
            "--fail-on", help="Fail on findings at or above: low, medium, high or critical (overrides policy)."
        ),
    ] = None,
    db: DbOption = None,
    offline: Annotated[
        bool, typer.Option("--offline", help="Use the database 'imagelock vulndb download' fetched.")
    ] = False,
    osv_url: OsvUrlOption = None,
    sarif: Annotated[
        Path | None,
        typer.Option("--sarif", help="Also write the findings as SARIF 2.1.0 to this file.", dir_okay=False),
    ] = None,
    as_json: JsonOption = False,
    bundle: BundleOption = None,
) -> None:
    """Find known vulnerabilities in the locked images. Exit 1 when a finding fails the audit policy."""
    from imagelock.audit.database import default_database_dir
    from imagelock.audit.layers import cache_dir
    from imagelock.audit.policy import FAIL_ON_LEVELS
    from imagelock.audit.report import report_json, report_sarif

    if fail_on is not None and fail_on.lower() not in FAIL_ON_LEVELS:
        raise InputError(f"--fail-on: expected one of {', '.join(FAIL_ON_LEVELS)}, got {fail_on!r}")
    if offline and db is None:
        db = default_database_dir(cache_dir())
    report = _run(
        context,
        config,
        lockfile,
        lambda project: project.audit(list(names or []), fail_on=fail_on.lower() if fail_on else None, bundle=bundle),
        vulnerability_db=db,
        osv_url=osv_url,
    )
    if sarif is not None:
        lock_path = Project.at(config, lockfile).lock_path
        document = report_sarif(report, lock_path.name, lock_path.read_text(encoding="utf-8"))
        sarif.write_text(json.dumps(document, indent=2) + "\n", encoding="utf-8")
    for error in report.errors:
        typer.echo(f"error: {error}", err=True)
    if as_json:
        _print_json(report_json(report))
    else:
        _print_audit(report)
    if report.errors:  # the audit is incomplete: that outranks a finding (docs/commands.md, exit codes)
        raise typer.Exit(EXIT_REGISTRY)
    if report.failed:
        raise typer.Exit(EXIT_CHECK_FAILED)


def _print_audit(report: AuditReport) -> None:
    console = _stdout()
    styles = {"critical": "red bold", "high": "red", "medium": "yellow", "low": "", "unknown": "dim"}
    counts: dict[str, int] = {}
    for image in report.images:
        target = image.target
        audited = [p for p in image.platforms if p.error is None]
        sources = sorted({f"{p.source}{', ' + p.release if p.release else ''}" for p in audited})
        from_where = f"  ({'; '.join(sources)})" if sources else ""
        console.print(Text.assemble((target.name, "bold"), f"  {target.reference}{from_where}"))
        for platform in image.platforms:
            if platform.error is not None:
                console.print(Text(f"  {platform.platform}: not audited: {platform.error}", style="red"))
        for note in dict.fromkeys(note for platform in image.platforms for note in platform.notes):
            console.print(Text(f"  note: {note}", style="dim"))
        if not image.findings:
            if audited:
                console.print(Text("  no known vulnerabilities", style="green"))
            continue
        failing = set(image.failing)
        rows: list[list[Text | str]] = [
            [Text(h, style="bold") for h in ("  PACKAGE", "INSTALLED", "FIXED", "ID", "SEVERITY", "PLATFORMS")]
        ]
        merged: dict[tuple[str, str, str], list[Finding]] = {}
        for finding in image.findings:
            merged.setdefault((finding.package, finding.version, finding.id), []).append(finding)
        for group in merged.values():
            finding = group[0]
            counts[finding.severity] = counts.get(finding.severity, 0) + 1
            identifier = finding.id + (f" ({', '.join(finding.aliases[:3])})" if finding.aliases else "")
            severity = Text(finding.severity, style=styles[finding.severity])
            if finding.ignored:
                severity = Text(f"{finding.severity}, ignored", style="dim")
            elif finding in failing:
                severity.append(" ✗", style="red bold")
            platforms = ", ".join(f.platform for f in group)
            rows.append(
                ["  " + finding.package, finding.version, finding.fixed or "-", identifier, severity, platforms]
            )
        _print_rows(rows)
    total = sum(counts.values())
    by_severity = ", ".join(
        f"{counts[level]} {level}" for level in ("critical", "high", "medium", "low", "unknown") if level in counts
    )
    failing_images = [image.target.name for image in report.images if image.failing]
    summary = f"{total} finding(s) in {len(report.images)} image(s)" + (f" ({by_severity})" if by_severity else "")
    if report.errors:
        summary += f"; {len(report.errors)} platform(s) not audited"
    if failing_images:
        typer.echo(f"{summary}; audit failed for {', '.join(failing_images)}", err=True)
    elif not report.errors:
        typer.echo(f"{summary}; audit passed", err=True)
    else:
        typer.echo(summary, err=True)


vulndb_app = typer.Typer(help="The offline vulnerability database (OSV exports).", no_args_is_help=True)
app.add_typer(vulndb_app, name="vulndb")


@vulndb_app.command("download")
def vulndb_download_command(
    ecosystems: Annotated[
        list[str] | None, typer.Argument(help="OSV ecosystems (default: Alpine Debian PyPI npm).")
    ] = None,
    dest: Annotated[
        Path | None, typer.Option("--dest", help="Where to keep them (default: the user's cache directory).")
    ] = None,
    url: Annotated[str | None, typer.Option("--url", help="Where OSV's exports are served from.")] = None,
) -> None:
    """Fetch OSV's per-ecosystem all.zip exports once, for 'imagelock audit --offline' (or --db DIR)."""
    from imagelock.audit.database import DEFAULT_ECOSYSTEMS, OSV_EXPORTS, default_database_dir, download
    from imagelock.audit.layers import cache_dir
    from imagelock.errors import ImagelockError as Failure

    destination = dest or default_database_dir(cache_dir())
    console = _console(stderr=True)
    from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TransferSpeedColumn

    with Progress(
        TextColumn("{task.description}"), BarColumn(), DownloadColumn(), TransferSpeedColumn(),
        console=console, transient=not _animated(console), disable=not _animated(console),
    ) as progress:  # fmt: skip
        tasks: dict[str, TaskID] = {}

        def report(ecosystem: str, received: int, total: int | None) -> None:
            if ecosystem not in tasks:
                tasks[ecosystem] = progress.add_task(ecosystem, total=total)
            progress.update(tasks[ecosystem], completed=received, total=total)

        try:
            written = download(
                list(ecosystems or DEFAULT_ECOSYSTEMS), destination, url=url or OSV_EXPORTS, progress=report
            )
        except Failure as error:
            progress.stop()
            typer.echo(f"error: {error}", err=True)
            raise typer.Exit(error.exit_code) from None
    for path in written:
        typer.echo(f"{path}  {path.stat().st_size} bytes")
    typer.echo(f"audit offline with: imagelock audit --db {destination}", err=True)


@app.command("ref")
def ref_command(
    context: typer.Context,
    name: Annotated[str, typer.Argument(help="The locked image.", autocompletion=_complete_names)],
    platform: Annotated[
        str | None, typer.Option("--platform", help="That platform's manifest digest, e.g. linux/arm64.")
    ] = None,
    digest_only: Annotated[bool, typer.Option("--digest-only", help="repo@sha256:… without the tag.")] = False,
    config: ConfigOption = Path("images.toml"),
    lockfile: LockfileOption = None,
    relocate: RelocateOption = None,
) -> None:
    """Print one image's pinned reference from the lock (offline): docker run "$(imagelock ref web)"."""
    reference = _run(
        context,
        config,
        lockfile,
        lambda project: project.ref(
            name, platform=platform, digest_only=digest_only, relocations=parse_relocations(relocate or ())
        ),
    )
    typer.echo(reference)


@app.command("export")
def export_command(
    context: typer.Context,
    format_name: Annotated[
        ExportFormat, typer.Option("--format", "-f", help="kustomize, helm-values or json.", case_sensitive=False)
    ],
    config: ConfigOption = Path("images.toml"),
    lockfile: LockfileOption = None,
    relocate: RelocateOption = None,
) -> None:
    """Print the lock for other tools (offline): a kustomization images: list, Helm values, or JSON."""
    text = _run(
        context,
        config,
        lockfile,
        lambda project: project.export(format_name.value, relocations=parse_relocations(relocate or ())),
    )
    typer.echo(text, nl=False)


class _BytesProgress:
    """A progress bar in bytes for 'mirror', 'bundle' and 'load', on stderr and only on a terminal."""

    def __init__(self, label: str = "mirroring") -> None:
        self.label = label
        self.console = _console(stderr=True)
        self.progress: Progress | None = None
        self.task: TaskID | None = None

    def planned(self, size: int) -> None:
        if self.progress is None and _animated(self.console):
            from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TransferSpeedColumn

            self.progress = Progress(
                TextColumn(self.label), BarColumn(), DownloadColumn(), TransferSpeedColumn(),
                console=self.console, transient=True,
            )  # fmt: skip
            self.task = self.progress.add_task(self.label, total=0)
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
    names: Annotated[
        list[str] | None, typer.Argument(help="Images to mirror (default: all).", autocompletion=_complete_names)
    ] = None,
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


@app.command("bundle")
def bundle_command(
    context: typer.Context,
    out: Annotated[Path, typer.Argument(help="A directory (OCI image layout), or a file ending in .tar.")],
    names: Annotated[
        list[str] | None, typer.Argument(help="Images to bundle (default: all).", autocompletion=_complete_names)
    ] = None,
    config: ConfigOption = Path("images.toml"),
    lockfile: LockfileOption = None,
    as_json: JsonOption = False,
) -> None:
    """Write the locked images, with their signatures and the lock, as an OCI image layout for air-gapped delivery."""
    progress = _BytesProgress("bundling")
    try:
        result = _run(context, config, lockfile, lambda project: project.bundle(out, names or (), progress=progress))
    finally:
        progress.close()
    if as_json:
        images = [{"name": i.name, "reference": i.reference, "signatures": i.signatures} for i in result.images]
        _print_json(
            {
                "bundle": result.path, "images": images, "blobs_written": result.blobs_written,
                "blobs_present": result.blobs_present, "bytes_written": result.bytes_written,
            }
        )  # fmt: skip
    else:
        _print_rows(
            [
                [Text(i.name, style="bold"), i.reference, f"{i.signatures} signature(s)" if i.signatures else ""]
                for i in result.images
            ]
        )
    typer.echo(
        f"bundled {len(result.images)} image(s) into {result.path}: {result.blobs_written} blob(s) written "
        f"({_size(result.bytes_written)}), {result.blobs_present} already there",
        err=True,
    )


@app.command("load")
def load_command(
    context: typer.Context,
    bundle: Annotated[Path, typer.Argument(help="A bundle written by 'imagelock bundle' (directory or .tar).")],
    target: Annotated[str, typer.Argument(help="Registry host and optional path, e.g. registry.internal:5000/mirror.")],
    names: Annotated[
        list[str] | None, typer.Argument(help="Images to load (default: all in the bundle's lock).")
    ] = None,
    config: ConfigOption = Path("images.toml"),
    lockfile: LockfileOption = None,
    as_json: JsonOption = False,
) -> None:
    """Push a bundle's images, with their signatures, into TARGET/<repository path>, each digest checked first."""
    progress = _BytesProgress("loading")
    try:
        result = _run(
            context, config, lockfile, lambda project: project.load(bundle, target, names or (), progress=progress)
        )
    finally:
        progress.close()
    if as_json:
        images = [
            {"name": i.name, "target": i.target, "manifests_pushed": i.manifests_pushed,
             "blobs_uploaded": i.blobs_uploaded, "bytes_uploaded": i.bytes_uploaded, "signatures": i.signatures}
            for i in result.images
        ]  # fmt: skip
        _print_json({"target": result.target, "images": images})
    else:
        _print_rows(
            [
                [
                    Text(i.name, style="bold"),
                    i.target,
                    Text("loaded", "green") if i.copied else Text("up to date", "dim"),
                ]
                for i in result.images
            ]
        )
    uploaded = sum(image.bytes_uploaded for image in result.images)
    copied = sum(1 for image in result.images if image.copied)
    typer.echo(
        f"loaded {len(result.images)} image(s) into {result.target}: {copied} copied, {_size(uploaded)} uploaded",
        err=True,
    )


def _size(size: int) -> str:
    value = float(size)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if value < 1024 or unit == "GiB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    raise AssertionError("unreachable")


def main() -> None:
    program = app_for(sys.argv[1:])
    program(prog_name="imagelock")  # also under `python -m imagelock`: completion is keyed on the program name


def app_for(arguments: Sequence[str]) -> typer.Typer:
    """The program, with only the command the arguments start with, when they do.

    typer turns every command's signature into click parameters before it parses anything: 70 ms for
    all of them, paid by every run; one command is all a run needs (``--version`` needs none). Another
    option first, a mistyped command (which "did you mean" answers from all of them), and shell
    completion get the whole program.
    """
    if not arguments or "_IMAGELOCK_COMPLETE" in os.environ:
        return app
    commands = [info for info in app.registered_commands if info.name == arguments[0]]
    groups = [info for info in app.registered_groups if info.name == arguments[0]]
    if not commands and not groups and arguments != ["--version"]:
        return app
    program = copy.copy(app)
    program.registered_commands, program.registered_groups = commands, groups
    return program
