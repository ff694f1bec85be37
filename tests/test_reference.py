"""Image references: grammar, Docker normalisation, tags, digests, platforms."""

from __future__ import annotations

import contextlib

import pytest
from hypothesis import given
from hypothesis import strategies as st

from imagelock.errors import InputError, InvalidReferenceError
from imagelock.platforms import Platform, parse_platform
from imagelock.reference import Reference, Repository, parse_reference, parse_repository

DIGEST = "sha256:" + "a" * 64


@pytest.mark.parametrize(
    ("text", "registry", "path", "tag", "digest"),
    [
        ("nginx", "docker.io", "library/nginx", None, None),
        ("nginx:1.26", "docker.io", "library/nginx", "1.26", None),
        ("library/nginx", "docker.io", "library/nginx", None, None),
        ("bitnami/redis", "docker.io", "bitnami/redis", None, None),
        ("docker.io/nginx", "docker.io", "library/nginx", None, None),
        ("index.docker.io/nginx", "docker.io", "library/nginx", None, None),
        ("registry-1.docker.io/library/nginx", "docker.io", "library/nginx", None, None),
        ("ghcr.io/org/app", "ghcr.io", "org/app", None, None),
        ("ghcr.io/app", "ghcr.io", "app", None, None),  # library/ is Docker Hub's only
        ("localhost/app", "localhost", "app", None, None),
        ("localhost:5000/team/app:v1", "localhost:5000", "team/app", "v1", None),
        ("Registry.Example.COM:443/a/b", "registry.example.com:443", "a/b", None, None),
        ("[::1]:5000/app", "[::1]:5000", "app", None, None),
        (f"nginx@{DIGEST}", "docker.io", "library/nginx", None, DIGEST),
        (f"nginx:1.26@{DIGEST}", "docker.io", "library/nginx", "1.26", DIGEST),
        ("quay.io/a/b/c/d:1.0-rc_1", "quay.io", "a/b/c/d", "1.0-rc_1", None),
        ("a_b__c-d---e/x.y", "docker.io", "a_b__c-d---e/x.y", None, None),
    ],
)
def test_parse_and_normalise(text: str, registry: str, path: str, tag: str | None, digest: str | None) -> None:
    assert parse_reference(text) == Reference(Repository(registry, path), tag, digest)


@pytest.mark.parametrize(
    "text",
    [
        "",
        " nginx",
        "nginx ",
        "NGINX",
        "team/App",
        "nginx:",
        "nginx:-bad",
        "nginx:" + "a" * 129,
        "nginx@sha256:abc",
        "nginx@sha256:" + "A" * 64,
        "nginx@md5:" + "a" * 32,
        "/nginx",
        "nginx/",
        "a//b",
        "team/_app",
        "team/app_",
        "bad host!/app",
        "-host.io/app",
        "a" * 256,
        "a_b.c/x",  # a dot makes the first component a host, and '_' has no place in a host
    ],
)
def test_invalid_references_are_refused(text: str) -> None:
    with pytest.raises(InvalidReferenceError):
        parse_reference(text)


@pytest.mark.parametrize(
    "text", ["nginx", "ghcr.io/org/app", f"localhost:5000/a/b:1.0@{DIGEST}", "docker.io/library/nginx:latest"]
)
def test_string_form_is_canonical_and_round_trips(text: str) -> None:
    reference = parse_reference(text)
    assert parse_reference(str(reference)) == reference
    assert str(reference).startswith(reference.repository.registry + "/")


def test_docker_hub_is_served_by_registry_1() -> None:
    assert parse_repository("nginx").api_host == "registry-1.docker.io"
    assert parse_repository("ghcr.io/org/app").api_host == "ghcr.io"


@pytest.mark.parametrize("text", ["nginx:1.26", f"nginx@{DIGEST}"])
def test_a_repository_has_no_tag_or_digest(text: str) -> None:
    with pytest.raises(InvalidReferenceError, match="without tag or digest"):
        parse_repository(text)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("linux/amd64", "linux/amd64"),
        ("linux/x86_64", "linux/amd64"),
        ("linux/aarch64", "linux/arm64"),
        ("linux/arm64/v8", "linux/arm64"),
        ("linux/arm", "linux/arm/v7"),
        ("linux/arm/v6", "linux/arm/v6"),
        ("Linux/AMD64", "linux/amd64"),
        ("windows/amd64", "windows/amd64"),
    ],
)
def test_platforms_normalise_like_containerd(text: str, expected: str) -> None:
    assert str(parse_platform(text)) == expected


@pytest.mark.parametrize("text", ["linux", "linux/", "/amd64", "linux/arm/v7/extra", "linux/am d64", ""])
def test_bad_platforms_are_input_errors(text: str) -> None:
    with pytest.raises(InputError, match="invalid platform"):
        parse_platform(text)


def test_platform_order_is_total() -> None:
    platforms = [Platform.of("linux", "arm64"), Platform.of("linux", "amd64"), Platform.of("linux", "arm", "v6")]
    assert [str(p) for p in sorted(platforms)] == ["linux/amd64", "linux/arm/v6", "linux/arm64"]


# -- properties: any string, and every reference the grammar allows --------------------------------

COMPONENT = st.from_regex(r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+){0,2}", fullmatch=True).filter(lambda c: len(c) < 30)
HOST = st.one_of(
    st.from_regex(r"[a-z0-9]+(\.[a-z0-9]+)+(:[1-9][0-9]{0,3})?", fullmatch=True),
    st.from_regex(r"localhost(:[1-9][0-9]{0,3})?", fullmatch=True),
)
TAG = st.from_regex(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,20}", fullmatch=True)
DIGESTS = st.from_regex(r"sha256:[a-f0-9]{64}", fullmatch=True)


@st.composite
def references(draw: st.DrawFn) -> str:
    host = draw(st.one_of(st.none(), HOST))
    components = draw(st.lists(COMPONENT, min_size=1, max_size=3))
    if host is None and len(components) > 1:
        # Without a host, Docker reads a first component with a '.' (or "localhost") as a registry host.
        components[0] = components[0].replace(".", "-").replace("localhost", "local-host")
    path = "/".join(components)
    tag = draw(st.one_of(st.none(), TAG))
    digest = draw(st.one_of(st.none(), DIGESTS))
    return (f"{host}/" if host else "") + path + (f":{tag}" if tag else "") + (f"@{digest}" if digest else "")


@given(st.text(max_size=80))
def test_any_string_parses_or_is_the_documented_error(text: str) -> None:
    with contextlib.suppress(InvalidReferenceError):  # the only error a string may give
        parse_reference(text)


@given(references())
def test_every_reference_the_grammar_allows_parses_and_round_trips(text: str) -> None:
    reference = parse_reference(text)
    assert parse_reference(str(reference)) == reference
    assert str(parse_reference(str(reference))) == str(reference)  # the canonical form is a fixed point


HUB_FIRST = COMPONENT.filter(lambda c: "." not in c and c != "localhost")


@given(st.lists(COMPONENT, min_size=0, max_size=2), HUB_FIRST, st.one_of(st.none(), TAG))
def test_docker_hub_short_names_normalise_one_way(rest: list[str], first: str, tag: str | None) -> None:
    components = [first, *rest]
    path = "/".join(components)
    suffix = f":{tag}" if tag else ""
    short = parse_reference(path + suffix)
    expected_path = path if len(components) > 1 else f"library/{path}"
    assert str(short.repository) == f"docker.io/{expected_path}"
    assert parse_reference(f"docker.io/{path}{suffix}") == short
    assert parse_reference(f"index.docker.io/{path}{suffix}") == short
