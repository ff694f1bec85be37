"""Tag → version parsing, candidate filtering and the selection order."""

from __future__ import annotations

import random
import re

import pytest
from hypothesis import given
from hypothesis import strategies as st
from packaging.specifiers import SpecifierSet

from imagelock.versions import TagMatcher, candidates, classify, judge, parse_version
from tests.support.tag_histories import tag_history

NGINX = [
    "1.25.4",
    "1.26.2",
    "1.26",
    "1.27.0",
    "mainline",
    "latest",
    "1.26.2-alpine",
    "1.26.2-alpine3.19",
    "1.26.2-perl",
]


def pick(tags: list[str], **matcher: object) -> list[str]:
    specifier = SpecifierSet(str(matcher.pop("version", "")))
    return [candidate.tag for candidate in candidates(tags, TagMatcher(specifier, **matcher))]  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("tag", "version"),
    [
        ("1.26.2", "1.26.2"),
        ("v2.1.0", "2.1.0"),
        ("3.13.0rc1", "3.13.0rc1"),
        ("1.25", "1.25"),
        ("20240125", "20240125"),
        ("1.5.1-17", "1.5.1.post17"),
    ],
)
def test_versions_from_tags(tag: str, version: str) -> None:
    parsed = parse_version(tag)
    assert parsed is not None
    assert str(parsed) == version


@pytest.mark.parametrize(
    "tag", ["latest", "stable", "mainline", "sha-abc1234", "jammy", "vv1.0", "V", "v", "1.26.2-alpine", ".1"]
)
def test_tags_that_are_not_versions(tag: str) -> None:
    assert parse_version(tag) is None


def test_newest_version_first_ignoring_non_versions() -> None:
    assert pick(NGINX, version=">=1.25") == ["1.27.0", "1.26.2", "1.26", "1.25.4"]


def test_specifier_filters() -> None:
    assert pick(NGINX, version=">=1.25,<1.27") == ["1.26.2", "1.26", "1.25.4"]
    assert pick(NGINX, version="==1.25.*") == ["1.25.4"]


def test_variant_is_an_exact_suffix() -> None:
    assert pick(NGINX, version=">=1", variant="alpine") == ["1.26.2-alpine"]
    assert pick(NGINX, version=">=1", variant="alpine3.19") == ["1.26.2-alpine3.19"]


def test_tag_pattern_uses_its_version_group() -> None:
    tags = ["jammy-20240111", "jammy-20240125", "noble-20240423", "jammy", "jammy-2024012"]
    pattern = re.compile(r"^jammy-(?P<version>\d{8})$")
    assert pick(tags, pattern=pattern) == ["jammy-20240125", "jammy-20240111"]
    assert pick(tags, pattern=pattern, version="<20240120") == ["jammy-20240111"]


def test_exclude_removes_tags() -> None:
    assert pick(NGINX, version=">=1.25", exclude=frozenset({"1.27.0", "1.26"})) == ["1.26.2", "1.25.4"]


@pytest.mark.parametrize(
    ("version", "prereleases", "expected"),
    [
        (">=3.11", None, ["3.12.4"]),
        ("", None, ["3.12.4"]),
        (">=3.11", True, ["3.13.0rc1", "3.12.4"]),
        (">=3.13.0rc1", None, ["3.13.0rc1"]),
        (">=3.13.0rc1", False, []),
    ],
)
def test_prereleases_as_pep_440(version: str, prereleases: bool | None, expected: list[str]) -> None:
    assert pick(["3.12.4", "3.13.0rc1", "3.11.0a1"], version=version, prereleases=prereleases)[:2] == expected


def test_equal_versions_prefer_more_components_then_lexically_smallest() -> None:
    assert pick(["2.1", "v2.1.0", "2.1.0", "v2.1", "2.0.9"], version=">=2") == [
        "2.1.0",
        "v2.1.0",
        "2.1",
        "v2.1",
        "2.0.9",
    ]


@pytest.mark.parametrize(
    ("tag", "reason"),
    [
        ("1.26.2", "candidate"),
        ("1.24.0", "outside spec"),
        ("1.27.0rc1", "pre-release"),
        ("latest", "not a version"),
        ("1.26.1", "excluded"),
        ("1.26.2-perl", "not a version"),
    ],
)
def test_verdicts(tag: str, reason: str) -> None:
    matcher = TagMatcher(SpecifierSet(">=1.25"), exclude=frozenset({"1.26.1"}))
    assert classify(tag, matcher)[0].reason == reason


def test_variant_mismatch_verdict() -> None:
    matcher = TagMatcher(SpecifierSet(">=1"), variant="alpine")
    assert classify("1.26.2", matcher)[0].reason == "variant mismatch"
    assert classify("1.26.2-alpine3.19", matcher)[0].reason == "not a version"


TAGS = st.lists(
    st.one_of(
        st.from_regex(r"v?[0-9]{1,3}(\.[0-9]{1,3}){0,3}((a|b|rc)[0-9])?", fullmatch=True),
        st.sampled_from(["latest", "stable", "1.0-alpine", "sha-abc"]),
    ),
    max_size=30,
    unique=True,
)


@given(TAGS, st.randoms())
def test_order_does_not_depend_on_listing_order(tags: list[str], shuffler: random.Random) -> None:
    shuffled = list(tags)
    shuffler.shuffle(shuffled)
    assert pick(tags, version=">=0") == pick(shuffled, version=">=0")


@given(TAGS)
def test_order_is_newest_first_and_total(tags: list[str]) -> None:
    chosen = candidates(tags, TagMatcher(SpecifierSet(""), prereleases=True))
    versions = [candidate.version for candidate in chosen if candidate.version is not None]
    assert versions == sorted(versions, reverse=True)
    assert len({candidate.tag for candidate in chosen}) == len(chosen)


@given(TAGS, st.randoms())
def test_the_whole_order_is_deterministic_even_between_equal_versions(tags: list[str], shuffler: random.Random) -> None:
    matcher = TagMatcher(SpecifierSet(""), prereleases=True)
    shuffled = list(tags) + [f"v{tag}" for tag in tags if tag[:1].isdigit()]  # "1.2" and "v1.2": same version
    ordered = [candidate.tag for candidate in candidates(shuffled, matcher)]
    shuffler.shuffle(shuffled)
    assert [candidate.tag for candidate in candidates(shuffled, matcher)] == ordered


@given(st.text(max_size=40))
def test_parse_version_never_raises(text: str) -> None:
    parse_version(text)


# Date stamps beside versions (alpine's edge snapshots)


@pytest.mark.parametrize(("history", "newest"), [("alpine-2026-08", "3.24.1"), ("alpine-2024-10", "3.20.3")])
@pytest.mark.parametrize("version", ["", ">=3.19"])
def test_a_date_stamp_beside_versions_is_not_the_newest_version(history: str, newest: str, version: str) -> None:
    assert pick(tag_history(history), version=version)[0] == newest


def test_a_spec_bounded_by_dates_considers_only_date_like_versions() -> None:
    assert pick(tag_history("alpine-2026-08"), version=">=20240101") == ["20260805"]


def test_skipped_date_stamps_are_named_date_like() -> None:
    verdicts = judge(tag_history("alpine-2026-08"), TagMatcher(SpecifierSet(">=3.19")))
    assert verdicts["20260805"][0].reason == "date-like"
    assert judge(["20260805", "3.24.1"], TagMatcher(SpecifierSet(">=20240101")))["3.24.1"][0].reason == "not date-like"


def test_only_date_like_versions_compete_when_there_is_nothing_else() -> None:
    pattern = re.compile(r"^jammy-(?P<version>\d{8})$")
    assert pick([*tag_history("ubuntu-2024-10"), "jammy-20240911"], pattern=pattern)[0] == "jammy-20240911"


# Pre-release words


def test_a_preview_comes_before_the_release_candidates() -> None:
    assert pick(tag_history("ruby-2024-12"), version=">=3.4.0a0") == ["3.4.0-rc1", "3.4-rc", "3.4.0-preview2"]


@pytest.mark.parametrize(
    "older_to_newer",
    [
        ["1.0.dev1", "1.0a1", "1.0alpha2", "1.0b1", "1.0beta2", "1.0-pre1", "1.0-preview2", "1.0rc1", "1.0c2", "1.0"],
        ["8.0.100-preview.7", "8.0.100-rc.1", "8.0.100-rc.2", "8.0.100"],  # mcr.microsoft.com/dotnet/sdk, 2023
    ],
)
def test_pre_release_words_in_order(older_to_newer: list[str]) -> None:
    assert pick(older_to_newer, prereleases=True) == older_to_newer[::-1]


# Build numbers and revisions


def test_temurin_build_number_beats_the_moving_major_tag() -> None:
    tags = tag_history("eclipse-temurin-2026-08")
    assert pick(tags, version=">=21,<22", variant="jre-jammy") == [
        "21.0.12_8-jre-jammy",
        "21.0.11_10-jre-jammy",
        "21-jre-jammy",
    ]


def test_a_build_number_is_not_part_of_the_version_the_spec_sees() -> None:
    tags = tag_history("eclipse-temurin-2026-08")
    assert pick(tags, version="==21.0.12", variant="jre-jammy") == ["21.0.12_8-jre-jammy"]


def test_a_build_group_orders_equal_versions_by_number() -> None:
    pattern = re.compile(r"^(?P<version>\d+\.\d+\.\d+)-debian-12-r(?P<build>\d+)$")
    assert pick(tag_history("bitnami-redis"), pattern=pattern) == [
        "7.2.4-debian-12-r16",
        "7.2.4-debian-12-r12",
        "7.2.4-debian-12-r11",
        "7.2.4-debian-12-r9",
    ]


def test_a_respin_is_the_newest_build_of_its_date() -> None:
    pattern = re.compile(r"^jammy-(?P<version>\d{8})(?:\.(?P<build>\d+))?$")
    tags = [*tag_history("ubuntu-2024-10"), "jammy-20240911"]
    assert pick(tags, pattern=pattern) == ["jammy-20240911.1", "jammy-20240911", "jammy-20240808"]


# Orderings that are not versions


def test_alphabetical_order_suits_rfc3339_timestamps() -> None:
    pattern = re.compile(r"^(?P<version>\d{4}-\d{2}-\d{2}T\d{2}-\d{2}-\d{2}Z)$")
    tags = tag_history("flux-rfc3339")
    assert pick(tags, pattern=pattern, order="alphabetical")[0] == "2023-05-08T00-20-00Z"
    assert pick(tags, pattern=pattern) == []  # not versions


def test_numerical_order_reads_the_captured_text_as_an_integer() -> None:
    pattern = re.compile(r"^rel-(?P<version>\d+)$")
    tags = tag_history("flux-unix-timestamps")
    assert pick(tags, pattern=pattern, order="numerical")[0] == "rel-1606364286"
    assert pick(
        ["build-9", "build-10", "build-x"], pattern=re.compile(r"^build-(?P<version>.+)$"), order="numerical"
    ) == [
        "build-10",
        "build-9",
    ]
