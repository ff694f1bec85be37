"""``--relocate OLD=NEW``: parsing, prefix matching at path-component boundaries, longest match, errors."""

from __future__ import annotations

import pytest

from imagelock.errors import EXIT_BAD_INPUT, InvalidReferenceError
from imagelock.relocation import Prefix, Relocation, parse_relocation, parse_relocations, relocate, relocate_entries
from tests.test_pin import LOCKED


def rules(*texts: str) -> tuple[Relocation, ...]:
    return parse_relocations(texts)


@pytest.mark.parametrize(
    ("text", "old", "new"),
    [
        ("docker.io=registry.internal/mirror", Prefix("docker.io"), Prefix("registry.internal", "mirror")),
        ("docker.io/library/nginx=reg.io/x/nginx", Prefix("docker.io", "library/nginx"), Prefix("reg.io", "x/nginx")),
        ("index.docker.io=mirror.io", Prefix("docker.io"), Prefix("mirror.io")),
        ("registry-1.docker.io/library=mirror.io/hub", Prefix("docker.io", "library"), Prefix("mirror.io", "hub")),
        ("GHCR.IO/acme=Reg.Internal:5000/ghcr", Prefix("ghcr.io", "acme"), Prefix("reg.internal:5000", "ghcr")),
        ("localhost:5000=localhost", Prefix("localhost:5000"), Prefix("localhost")),
        ("quay.io=reg.io/quay.io", Prefix("quay.io"), Prefix("reg.io", "quay.io")),
        ("[::1]:5000/a=reg.io", Prefix("[::1]:5000", "a"), Prefix("reg.io")),
    ],
)  # fmt: skip
def test_parse(text: str, old: Prefix, new: Prefix) -> None:
    assert parse_relocation(text) == Relocation(old, new)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("docker.io", "invalid --relocate 'docker.io': expected OLD=NEW"),
        ("", "invalid --relocate '': expected OLD=NEW"),
        ("=reg.io", "OLD '': empty"),
        ("docker.io=", "NEW '': empty"),
        ("nginx=reg.io/nginx", "OLD 'nginx': 'nginx' is not a registry host"),
        ("library/nginx=reg.io/nginx", "OLD 'library/nginx': 'library' is not a registry host"),
        ("docker.io=mirror/x", "NEW 'mirror/x': 'mirror' is not a registry host"),
        ("docker.io/library/nginx:1.26=reg.io", "no tag or digest"),
        ("docker.io=reg.io/x@sha256:" + "a" * 64, "no tag or digest"),
        ("docker.io=reg.io/Mirror", "bad path component 'Mirror'"),
        ("docker.io=reg.io//x", "bad path component ''"),
        ("docker.io=reg.io/x/", "bad path component ''"),
        ("docker.io=-bad.io", "'-bad.io' is not a registry host"),
        ("docker.io=reg.io:port", "'reg.io:port' is not a registry host"),
        ("docker.io=reg.io=x", "'reg.io=x' is not a registry host"),
        # Docker would read reg/x/nginx as docker.io/reg/x/nginx: a mirror's host needs a dot, a port or localhost
        ("docker.io/library/nginx=reg/x/nginx", "NEW 'reg/x/nginx': 'reg' is not a registry host"),
    ],
)  # fmt: skip
def test_malformed_rules_are_one_line_errors_exit_2(text: str, message: str) -> None:
    with pytest.raises(InvalidReferenceError) as raised:
        parse_relocation(text)
    assert message in str(raised.value)
    assert "\n" not in str(raised.value)
    assert raised.value.exit_code == EXIT_BAD_INPUT


@pytest.mark.parametrize(
    ("repository", "given", "expected"),
    [
        # a registry: every repository under it, the whole path kept
        ("docker.io/library/nginx", ["docker.io=registry.internal/mirror"], "registry.internal/mirror/library/nginx"),
        ("docker.io/bitnami/redis", ["docker.io=registry.internal/mirror"], "registry.internal/mirror/bitnami/redis"),
        ("ghcr.io/acme/app", ["docker.io=registry.internal/mirror"], "ghcr.io/acme/app"),
        # one repository only
        ("docker.io/library/nginx", ["docker.io/library/nginx=reg.io/x/nginx"], "reg.io/x/nginx"),
        ("docker.io/library/nginx-x", ["docker.io/library/nginx=reg.io/x/nginx"], "docker.io/library/nginx-x"),
        ("docker.io/library/nginx/sub", ["docker.io/library/nginx=reg.io/x/nginx"], "reg.io/x/nginx/sub"),
        # path-component boundaries, not string prefixes
        ("docker.io/library/nginx", ["docker.io/lib=reg.io"], "docker.io/library/nginx"),
        ("docker.io/library/nginx", ["docker.io/library=reg.io/hub"], "reg.io/hub/nginx"),
        ("docker.io.example.com/a/b", ["docker.io=reg.io"], "docker.io.example.com/a/b"),
        ("localhost:5000/a", ["localhost=reg.io"], "localhost:5000/a"),
        # the longest OLD wins, whatever the order given
        ("docker.io/library/nginx", ["docker.io=m.io/hub", "docker.io/library/nginx=m.io/web"], "m.io/web"),
        ("docker.io/library/nginx", ["docker.io/library/nginx=m.io/web", "docker.io=m.io/hub"], "m.io/web"),
        ("docker.io/library/redis", ["docker.io/library/nginx=m.io/web", "docker.io=m.io/h"], "m.io/h/library/redis"),
        ("docker.io/library/redis", ["docker.io/library=m.io/lib", "docker.io=m.io/hub"], "m.io/lib/redis"),
        # the mirror's layout with the source registry as the first path component
        ("docker.io/library/nginx", ["docker.io=reg.io/mirror/docker.io"], "reg.io/mirror/docker.io/library/nginx"),
        ("ghcr.io/acme/app", ["ghcr.io=reg.io/mirror/ghcr.io"], "reg.io/mirror/ghcr.io/acme/app"),
        ("localhost:5000/team/app", ["localhost:5000=reg.io/local"], "reg.io/local/team/app"),
        # to a bare host; the result is canonical (Docker Hub's library/)
        ("ghcr.io/acme/app", ["ghcr.io=mirror.io"], "mirror.io/acme/app"),
        ("quay.io/org/tool", ["quay.io/org/tool=docker.io/tool"], "docker.io/library/tool"),
        ("quay.io/org/tool", ["quay.io/org=index.docker.io"], "docker.io/library/tool"),
        ("docker.io/library/nginx", [], "docker.io/library/nginx"),
    ],
)  # fmt: skip
def test_relocate(repository: str, given: list[str], expected: str) -> None:
    assert relocate(repository, rules(*given)) == expected


def test_relocating_a_whole_repository_to_a_bare_host_is_an_error() -> None:
    with pytest.raises(InvalidReferenceError, match="leaves no repository path"):
        relocate("docker.io/library/nginx", rules("docker.io/library/nginx=reg.io"))


def test_the_same_old_twice() -> None:
    assert rules("docker.io=a.io", "docker.io=a.io") == (Relocation(Prefix("docker.io"), Prefix("a.io")),)
    assert rules("index.docker.io=a.io", "docker.io=a.io") == (Relocation(Prefix("docker.io"), Prefix("a.io")),)
    with pytest.raises(InvalidReferenceError, match=r"docker\.io is already relocated to a\.io"):
        rules("docker.io=a.io", "docker.io=b.io")


def test_entries_keep_tags_digests_and_platforms() -> None:
    relocated = relocate_entries(LOCKED, rules("docker.io/library=reg.io/hub"))
    assert relocated["web"].image == "reg.io/hub/nginx"
    assert relocated["chart"].image == "docker.io/bitnami/redis"
    for name, entry in relocated.items():
        original = LOCKED[name]
        assert (entry.tag, entry.digest, entry.platforms, entry.spec) == (
            original.tag,
            original.digest,
            original.platforms,
            original.spec,
        )
    assert relocate_entries(LOCKED, ()) == LOCKED
