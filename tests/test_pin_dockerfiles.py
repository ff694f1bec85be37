"""Dockerfiles read as BuildKit reads them: heredoc bodies, continued instructions, the ``# syntax=``
directive and images built from ARGs; on hand-written cases and on real files (tests/fixtures/corpus/dockerfiles)."""

from __future__ import annotations

import shutil
import tomllib
from pathlib import Path

import pytest

from imagelock.pinning.dockerfiles import scan_dockerfile
from imagelock.pinning.sites import apply_edits
from tests.conftest import Project, Registry
from tests.test_pin import digest, entry, write_lock

CORPUS = Path(__file__).parent / "fixtures" / "corpus" / "dockerfiles"
NGINX = entry("web", "docker.io/library/nginx", "1.26.2", "1")
PINNED_NGINX = f"nginx:1.26.2@{digest('1')}"


def references(text: str) -> list[tuple[int, str]]:
    sites, _ = scan_dockerfile(Path("Dockerfile"), text)
    return [(site.line, site.reference) for site in sites]


def left_alone(text: str) -> list[tuple[int, str, str]]:
    _, skipped = scan_dockerfile(Path("Dockerfile"), text)
    return [(item.line, item.text, item.reason) for item in skipped]


def pinned_text(text: str) -> str:
    """``text`` with every nginx reference pinned to NGINX, through the edits the scanner offers."""
    sites, _ = scan_dockerfile(Path("Dockerfile"), text)
    return apply_edits(
        text, [edit for site in sites if site.reference.startswith("nginx") for edit in site.rewrite(NGINX)]
    )


# -- heredocs --------------------------------------------------------------------------------------

HEREDOCS = {
    "RUN": "RUN <<EOF\nFROM evil:1\nEOF\n",
    "COPY": "COPY <<EOF /etc/motd\nCOPY --from=evil:1 / /\nEOF\n",
    "ADD": "ADD <<EOF /etc/motd\nFROM evil:1\nEOF\n",
    "strip tabs": "RUN <<-EOT\n\tFROM evil:1\n\t\tEOT\n",
    "double quoted": 'RUN <<"EOF"\nFROM evil:1\nEOF\n',
    "single quoted": "RUN <<'EOF' sh\nFROM evil:1\nEOF\n",
    "two on one line": "RUN <<A cat - <<B > /out\nFROM evil:1\nA\nFROM evil:2\nB\n",
    "file descriptor": "RUN 5<<FILE cat /proc/self/fd/5\nFROM evil:1\nFILE\n",
    "opened on a continued line": "RUN --mount=type=cache,target=/root \\\n  --network=none <<EOT\nFROM evil:1\nEOT\n",
    "ONBUILD": "ONBUILD RUN <<EOF\nFROM evil:1\nEOF\n",
    "CRLF": "RUN <<EOF\r\nFROM evil:1\r\nEOF\r\n",
    "not the delimiter": "RUN <<EOF\nFROM evil:1\nEOF2\n EOF\nFROM evil:2\nEOF\n",
}


@pytest.mark.parametrize("heredoc", HEREDOCS.values(), ids=HEREDOCS.keys())
def test_a_from_inside_a_heredoc_body_is_not_an_instruction(heredoc: str) -> None:
    text = "FROM nginx:1.26.2 AS base\n" + heredoc + "FROM busybox:1.36\n"
    assert references(text) == [(1, "nginx:1.26.2"), (text.count("\n"), "busybox:1.36")]


def test_only_a_heredoc_operator_word_of_run_copy_or_add_opens_a_body() -> None:
    text = 'FROM nginx:1.26.2\nRUN echo "<<EOF"\nENV X=<<EOF\nFROM busybox:1.36\nRUN <<END\nFROM evil:1\nEND\n'
    assert references(text) == [(1, "nginx:1.26.2"), (4, "busybox:1.36")]


# -- continuations ---------------------------------------------------------------------------------


def test_a_from_continued_on_the_next_lines_is_found_and_pinned_where_the_image_is() -> None:
    text = "FROM --platform=$BUILDPLATFORM \\\n    nginx:1.26.2 \\\n    AS build\nFROM build\n"
    assert references(text) == [(2, "nginx:1.26.2")]
    assert pinned_text(text) == text.replace("    nginx:1.26.2 ", f"    {PINNED_NGINX} ")


def test_comment_and_empty_lines_inside_a_continuation_are_skipped() -> None:
    text = "FROM \\\n# the base image\n\n   \n\tnginx:1.26.2 \\\n  # its stage\n  AS web\nCOPY --from=web / /\n"
    assert references(text) == [(5, "nginx:1.26.2")]
    assert pinned_text(text) == text.replace("\tnginx:1.26.2", f"\t{PINNED_NGINX}")


def test_copy_from_continued_on_the_next_line_is_found() -> None:
    text = "FROM scratch\nCOPY --link \\\n     --from=nginx:1.26.2 /etc/nginx /etc/nginx\n"
    assert references(text) == [(3, "nginx:1.26.2")]
    assert pinned_text(text) == text.replace("=nginx:1.26.2", f"={PINNED_NGINX}")


def test_the_escape_directive_makes_a_backtick_continue_lines_and_a_backslash_plain() -> None:
    text = "# escape=`\nFROM --platform=windows/amd64 `\n  nginx:1.26.2\nRUN dir c:\\\nFROM busybox:1.36\n"
    assert references(text) == [(3, "nginx:1.26.2"), (5, "busybox:1.36")]
    assert pinned_text(text) == text.replace("  nginx:1.26.2", f"  {PINNED_NGINX}")


def test_an_escaped_escape_character_at_the_end_does_not_continue_the_line() -> None:
    text = "RUN echo \\\\\nFROM busybox:1.36\nFROM --platform=linux/arm64 \\\n  nginx:1.26.2\n"
    assert references(text) == [(2, "busybox:1.36"), (4, "nginx:1.26.2")]


def test_an_image_split_across_lines_is_reported_not_pinned() -> None:
    assert left_alone("FROM nginx\\\n:1.26.2\n") == [
        (1, "nginx:1.26.2", "split over several lines; join it on one line to have it pinned")
    ]


# -- the syntax directive --------------------------------------------------------------------------


@pytest.mark.parametrize(
    "directive",
    [
        "# syntax=docker/dockerfile:1.7",
        "#syntax=docker/dockerfile:1.7",
        "# SYNTAX = docker/dockerfile:1.7  ",
        "# syntax=docker/dockerfile:1.7 --frontend-option",
    ],
)
def test_the_syntax_directive_names_an_image_pinned_in_place(directive: str) -> None:
    text = f"{directive}\nFROM nginx:1.26.2\n"
    assert references(text) == [(1, "docker/dockerfile:1.7"), (2, "nginx:1.26.2")]
    frontend = entry("frontend", "docker.io/docker/dockerfile", "1.7", "7")
    sites, _ = scan_dockerfile(Path("Dockerfile"), text)
    pinned = apply_edits(text, sites[0].rewrite(frontend))
    assert pinned == text.replace("docker/dockerfile:1.7", f"docker/dockerfile:1.7@{digest('7')}")


def test_the_syntax_directive_may_follow_other_directives_a_shebang_and_a_byte_order_mark() -> None:
    text = "\ufeff#!/usr/bin/env buildctl\n# escape=\\\n# check=skip=all\n# syntax=docker/dockerfile:1\nFROM scratch\n"
    assert references(text) == [(4, "docker/dockerfile:1")]


@pytest.mark.parametrize(
    "before",
    ["# Build the app\n", "\n", "FROM nginx:1.26.2\n", "# unknown=directive\n", "  # indented comment\n"],
    ids=["after a comment", "after a blank line", "after an instruction", "after an unknown key", "after indent"],
)
def test_parser_directives_end_at_the_first_other_line(before: str) -> None:
    text = f"# syntax=docker/dockerfile:1\n{before}# syntax=docker/dockerfile:1.7\nFROM busybox:1.36\n"
    assert [reference for _, reference in references(text)] == [
        "docker/dockerfile:1",
        *(["nginx:1.26.2"] if before.startswith("FROM") else []),
        "busybox:1.36",
    ]


# -- images built from ARGs ------------------------------------------------------------------------


def test_an_image_built_from_arg_defaults_is_left_alone_naming_the_arg_lines() -> None:
    text = "ARG GO_VERSION=1.22\nARG ALPINE=3.20\nFROM golang:${GO_VERSION}-alpine$ALPINE AS build\n"
    assert references(text) == []
    assert left_alone(text) == [
        (
            3,
            "golang:${GO_VERSION}-alpine$ALPINE",
            "built from ARG defaults (line 1: GO_VERSION=1.22, line 2: ALPINE=3.20); "
            "name the image whole in one ARG to have it pinned",
        )
    ]


def test_arg_defaults_that_use_other_args_name_every_line() -> None:
    text = 'ARG VERSION=29.6\nARG CLI_VERSION="${VERSION}"\nFROM docker:$CLI_VERSION-cli\n'
    assert left_alone(text) == [
        (
            3,
            "docker:$CLI_VERSION-cli",
            "built from ARG defaults (line 2: CLI_VERSION=${VERSION}, line 1: VERSION=29.6); "
            "name the image whole in one ARG to have it pinned",
        )
    ]


def test_an_image_built_from_args_without_defaults_says_which() -> None:
    text = "ARG REGISTRY\nARG TAG=1.0\nFROM ${REGISTRY}/app:${TAG}\nFROM app-$TARGETOS${DEBUG:+-debug}\n"
    assert left_alone(text) == [
        (3, "${REGISTRY}/app:${TAG}", "ARG REGISTRY has no default before the first FROM"),
        (4, "app-$TARGETOS${DEBUG:+-debug}", "ARGs TARGETOS, DEBUG have no default before the first FROM"),
    ]


def test_args_naming_a_stage_are_stages() -> None:
    text = (
        "ARG FLAVOUR=alpine\nARG STAGE=base-alpine\nFROM nginx:1.26.2 AS base-alpine\nFROM base-$FLAVOUR\nFROM $STAGE\n"
    )
    assert references(text) == [(3, "nginx:1.26.2")]
    assert left_alone(text) == []


def test_an_image_named_whole_in_one_arg_is_pinned_at_the_arg_default_once() -> None:
    text = "ARG A=1 BASE='nginx:1.26.2'\nFROM ${BASE} AS one\nFROM $BASE AS two\n"
    assert references(text) == [(1, "nginx:1.26.2")]
    assert pinned_text(text) == text.replace("nginx:1.26.2", PINNED_NGINX)


def test_an_image_named_like_its_own_stage_is_still_an_image() -> None:
    assert references("FROM nginx AS nginx\nFROM nginx\n") == [(1, "nginx")]


# -- real files, through the command line ----------------------------------------------------------

REAL_LOCK = {
    "dockerfile-upstream": entry("dockerfile-upstream", "docker.io/docker/dockerfile-upstream", "master", "a"),
    "binfmt": entry("binfmt", "docker.io/tonistiigi/binfmt", "buildkit-v10.2.3-66", "b"),
    "caddy": entry("caddy", "docker.io/library/caddy", "builder", "c"),
    "caddy-latest": entry("caddy-latest", "docker.io/library/caddy", "latest", "d"),
}


def copy_corpus(project: Project) -> Path:
    work = project.directory / "deploy"
    shutil.copytree(CORPUS, work, ignore=shutil.ignore_patterns("README.md"))
    return work


def test_init_on_real_dockerfiles_proposes_the_syntax_image_and_reports_arg_built_images(project: Project) -> None:
    work = copy_corpus(project)
    result = project.run("init", str(work))
    assert result.exit_code == 0, result.stderr
    assert tomllib.loads(project.config.read_text())["images"] == {
        "binfmt": {"image": "tonistiigi/binfmt", "tag": "buildkit-v10.2.3-66"},
        "caddy": {"image": "caddy", "tag": "builder"},
        "caddy-latest": {"image": "caddy", "tag": "latest"},
        "dockerfile-upstream": {"image": "docker/dockerfile-upstream", "tag": "master"},
    }
    buildkit = work / "buildkit.Dockerfile"
    assert (
        f"{buildkit}:40: left alone: golang:${{GO_VERSION}}-alpine${{ALPINE_VERSION}}: built from ARG defaults "
        "(line 28: GO_VERSION=1.26, line 25: ALPINE_VERSION=3.23); name the image whole in one ARG to have it pinned"
    ) in result.stderr.splitlines()
    assert f"{buildkit}:116: left alone: binaries-$TARGETOS: ARG TARGETOS has no default before the first FROM" in (
        result.stderr.splitlines()
    )


def test_pin_on_real_dockerfiles_edits_only_the_reference_lines(project: Project) -> None:
    write_lock(project.directory, REAL_LOCK)
    work = copy_corpus(project)
    before = {path.name: path.read_text() for path in work.iterdir()}
    result = project.run("pin", str(work))
    assert result.exit_code == 0, result.stderr
    after = {path.name: path.read_text() for path in work.iterdir()}
    assert changed_lines(before["buildkit.Dockerfile"], after["buildkit.Dockerfile"]) == {
        1: f"# syntax=docker/dockerfile-upstream:master@{digest('a')}\n",
        112: f"COPY --link --from=tonistiigi/binfmt:buildkit-v10.2.3-66@{digest('b')} / /out/\n",
    }
    assert changed_lines(before["serverpi-caddy.Dockerfile"], after["serverpi-caddy.Dockerfile"]) == {
        6: f"     caddy:builder@{digest('c')} \\\n",
        20: f"FROM caddy:latest@{digest('d')}\n",
    }
    assert project.run("pin", "--check", str(work)).exit_code == 0
    assert project.run("pin", str(work)).exit_code == 0
    assert {path.name: path.read_text() for path in work.iterdir()} == after  # a second pin changes nothing


def test_a_continued_from_in_a_crlf_file_is_pinned_keeping_every_line_end() -> None:
    text = (CORPUS / "serverpi-caddy.Dockerfile").read_text().replace("\n", "\r\n")
    sites, _ = scan_dockerfile(Path("Dockerfile"), text)
    caddy = [site for site in sites if site.reference.startswith("caddy:builder")]
    assert [site.line for site in caddy] == [6]
    pinned = apply_edits(text, caddy[0].rewrite(REAL_LOCK["caddy"]))
    assert pinned == text.replace(
        "@sha256:f5b1a66449d305280e559dba0ab9f7ce9a2a14c527c79d7c6fb48abc8f895818", "@" + digest("c")
    )


def test_pin_keeps_crlf_line_ends(project: Project) -> None:
    write_lock(project.directory, REAL_LOCK)
    dockerfile = project.directory / "Dockerfile"
    original = (CORPUS / "serverpi-caddy.Dockerfile").read_text().replace("\n", "\r\n")
    dockerfile.write_bytes(original.encode())
    assert project.run("pin", str(dockerfile)).exit_code == 0
    assert dockerfile.read_bytes().count(b"\r\n") == original.count("\r\n")


def changed_lines(before: str, after: str) -> dict[int, str]:
    old, new = before.splitlines(keepends=True), after.splitlines(keepends=True)
    assert len(old) == len(new)
    return {number: line for number, (was, line) in enumerate(zip(old, new, strict=True), 1) if was != line}


# -- the whole path, against the real registry ------------------------------------------------------


def test_init_lock_pin_check_on_a_dockerfile_with_heredocs_continuations_and_a_syntax_image(
    project: Project, registry: Registry
) -> None:
    host = registry.host
    pushed = {
        name: registry.seeder.push_image(f"dockerfiles/{name}", tag)
        for name, tag in {"frontend": "1.7", "build": "1.22", "tool": "2"}.items()
    }
    dockerfile = project.directory / "deploy" / "Dockerfile"
    dockerfile.parent.mkdir()
    original = (
        f"# syntax={host}/dockerfiles/frontend:1.7\n"
        "ARG GO=1.22\n"
        f"FROM --platform=$BUILDPLATFORM \\\n    {host}/dockerfiles/build:1.22 \\\n    AS build\n"
        f"COPY <<EOF /Dockerfile.generated\nFROM {host}/dockerfiles/unlocked:1\nEOF\n"
        f"RUN <<-EOT sh\n\tcp /Dockerfile.generated /out\n\tEOT\n"
        f"FROM {host}/dockerfiles/build:$GO AS test\n"
        f"FROM scratch\nCOPY --from={host}/dockerfiles/tool:2 /bin/tool /tool\nCOPY --from=build /out /\n"
    )
    dockerfile.write_text(original)

    init = project.run("init", str(dockerfile.parent))
    assert init.exit_code == 0, init.stderr
    images = tomllib.loads(project.config.read_text())["images"]
    assert sorted((spec["image"], spec["tag"]) for spec in images.values()) == [
        (f"{host}/dockerfiles/build", "1.22"),
        (f"{host}/dockerfiles/frontend", "1.7"),
        (f"{host}/dockerfiles/tool", "2"),
    ]
    assert f"{dockerfile}:12: left alone: {host}/dockerfiles/build:$GO: built from ARG defaults (line 2: GO=1.22)" in (
        init.stderr
    )

    assert project.run("lock").exit_code == 0
    assert project.run("pin", "--check", str(dockerfile)).exit_code == 1
    assert project.run("pin", str(dockerfile)).exit_code == 0
    assert dockerfile.read_text() == (
        original.replace("frontend:1.7\n", f"frontend:1.7@{pushed['frontend'].digest}\n")
        .replace("build:1.22 \\", f"build:1.22@{pushed['build'].digest} \\")
        .replace("tool:2 ", f"tool:2@{pushed['tool'].digest} ")
    )
    assert project.run("pin", "--check", str(dockerfile)).exit_code == 0
