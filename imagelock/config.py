"""``images.toml`` version 1: parsing, validation and the normalised image specs.

Every error names the file, the image and the key. The spec of each image is normalised
(fully qualified repository, canonical specifier, sorted lists) so that its hash changes only
when what it resolves to could change.
"""

from __future__ import annotations

import functools
import hashlib
import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import tomli
from packaging.specifiers import InvalidSpecifier, Specifier, SpecifierSet
from packaging.version import Version

from imagelock.audit.policy import FAIL_ON_LEVELS, AuditPolicy
from imagelock.errors import InputError
from imagelock.freshness import TAG_MOVE_RULES, UNKNOWN_RULES, Freshness, duration, parse_time
from imagelock.lockfile import read_at_most
from imagelock.platforms import Platform, parse_declared_platform
from imagelock.reference import Repository, is_valid_registry_host, is_valid_tag, parse_reference
from imagelock.versions import ORDERS, TagMatcher, parse_version

if TYPE_CHECKING:  # the trust package is imported only when images.toml names a policy
    from imagelock.trust import ContentTrustPolicy, KeylessPolicy, NotationPolicy, TrustPolicy
    from imagelock.trust.provenance import ProvenanceRequirement

CONFIG_VERSION = 1
MAX_FILE_BYTES = 16 << 20  # far beyond any real images.toml or lock; refuses runaway or wrong files quickly
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,127}")
_TOP_LEVEL_KEYS = frozenset({"version", "defaults", "registries", "policies", "images"})
_FRESHNESS_KEYS = frozenset({"min-age", "min-age-unknown", "exclude-newer", "on-tag-move"})
_DEFAULTS_KEYS = frozenset({"platforms", "verify", "audit"}) | _FRESHNESS_KEYS
_AUDIT_KEYS = frozenset({"fail-on", "ignore", "gate"})
_COSIGN_KEYS = frozenset({"method", "key", "keys", "match-repository", "rekor-key", "provenance"})
_KEYLESS_KEYS = frozenset({"method", "issuer", "identity", "identity-regexp", "trusted-root", "provenance"})
_PROVENANCE_KEYS = frozenset({"predicate-type", "builder-id", "builder-id-regexp", "source-repository", "source-ref"})
_NOTATION_KEYS = frozenset({"method", "trust-store", "identities"})
_CONTENT_TRUST_KEYS = frozenset({"method", "server", "ca-cert"})
_METHODS = ("cosign", "cosign-keyless", "notation", "content-trust")
_REGISTRY_KEYS = frozenset({"insecure", "ca-cert", "concurrency", "timeout", "tag-api", "http2"})
_IMAGE_KEYS = (
    frozenset(
        {
            "image",
            "version",
            "tag",
            "variant",
            "tag-pattern",
            "prereleases",
            "exclude",
            "order",
            "platforms",
            "verify",
            "audit",
        }
    )
    | _FRESHNESS_KEYS
)


@dataclass(frozen=True)
class RegistrySettings:
    """Per-host transport settings from ``[registries."host"]``."""

    insecure: bool = False
    ca_cert: Path | None = None
    concurrency: int | None = None  # requests in flight at once; None: the client's default
    timeout: float | None = None  # seconds per request; None: the client's default
    tag_api: str | None = None  # host of a Docker-Hub-shaped tag API dating this registry's tags
    http2: bool = False  # HTTPS through HTTP/2 (httpx) instead of the transport's own HTTP/1.1 connections


@dataclass(frozen=True)
class ImageSpec:
    """One ``[images.NAME]`` entry, normalised.

    Exactly one of ``tag`` and ``matcher`` is set: an entry either follows a tag or selects the
    newest version its matcher allows.
    """

    name: str
    repository: Repository
    platforms: tuple[Platform, ...]
    tag: str | None = None
    matcher: TagMatcher | None = None
    policy: TrustPolicy | None = None  # the signature an image must carry; None: none required
    audit: AuditPolicy | None = field(default_factory=AuditPolicy)  # None: ``audit = false``, the image is not audited
    freshness: Freshness = field(default_factory=Freshness)  # min-age and exclude-newer
    on_tag_move: str = "warn"  # a version's tag re-pushed under the pin: "warn" or "fail" (not in the spec hash)

    def canonical(self) -> dict[str, Any]:
        """The resolution-relevant content, in a canonical form (the basis of the spec hash)."""
        content: dict[str, Any] = {"image": str(self.repository)}
        if self.tag is not None:
            content["tag"] = self.tag
        if self.matcher is not None:
            content["version"] = str(self.matcher.specifier)
            content["variant"] = self.matcher.variant
            content["tag-pattern"] = self.matcher.pattern.pattern if self.matcher.pattern else None
            content["prereleases"] = self.matcher.prereleases
            content["exclude"] = sorted(self.matcher.exclude)
            if self.matcher.order != "version":  # absent from older specs: their hashes, and locks, stay valid
                content["order"] = self.matcher.order
        content["platforms"] = [str(platform) for platform in self.platforms]
        if self.policy is not None:
            content["verify"] = self.policy.canonical()
        if self.audit is not None and self.audit.gate:
            content["audit-gate"] = self.audit.canonical()
        content.update(self.freshness.canonical())  # absent when unset: older specs' hashes, and locks, stay valid
        return content

    def constraint_clauses(self) -> tuple[tuple[str, str], ...]:
        """What selects the tag, key by key, as (key, value) pairs in the order ``constraint`` writes them."""
        clauses: list[tuple[str, str]] = []
        if self.tag is not None:
            clauses.append(("tag", self.tag))
        if self.matcher is not None:
            matcher = self.matcher
            if str(matcher.specifier):
                clauses.append(("version", _specifier_words(matcher.specifier)))
            if matcher.variant is not None:
                clauses.append(("variant", matcher.variant))
            if matcher.prereleases is not None:
                clauses.append(("prereleases", str(matcher.prereleases).lower()))
            if matcher.exclude:
                clauses.append(("exclude", " ".join(sorted(matcher.exclude))))
            if matcher.order != "version":
                clauses.append(("order", matcher.order))
        if self.platforms:
            clauses.append(("platforms", " ".join(str(platform) for platform in self.platforms)))
        clauses += self.freshness.canonical().items()
        if self.matcher is not None and self.matcher.pattern is not None:
            clauses.append(("tag-pattern", self.matcher.pattern.pattern))  # last: a regex may hold ", "
        return tuple(clauses)

    @property
    def constraint(self) -> str:
        """The spec in words, for a reviewer of the lock: ``>=1.25,<1.27, variant alpine`` (see docs/images-lock.md)."""
        return constraint_words(self.constraint_clauses())

    @functools.cached_property  # a frozen dataclass keeps it in __dict__: computed once per spec
    def spec_hash(self) -> str:
        return _hash(self.canonical_form)

    @functools.cached_property
    def canonical_form(self) -> dict[str, Any]:
        return self.canonical()


@dataclass(frozen=True)
class Config:
    path: Path
    images: Mapping[str, ImageSpec]
    registries: Mapping[str, RegistrySettings] = field(default_factory=dict)
    files: tuple[Path, ...] = ()  # the other files it names (keys, certificates), which its meaning depends on

    def excluding_newer(self, moment: datetime) -> Config:
        """Every entry resolved as of ``moment`` (``--exclude-newer``), whatever its own ``exclude-newer`` says."""
        images = {
            name: replace(spec, freshness=replace(spec.freshness, exclude_newer=moment))
            for name, spec in self.images.items()
        }
        return replace(self, images=images)

    @property
    def inputs_hash(self) -> str:
        """Hash of the resolution-relevant, normalised content of the whole file."""
        return _hash({name: spec.canonical_form for name, spec in sorted(self.images.items())})


ANY_VERSION = "any version"


def constraint_words(clauses: Sequence[tuple[str, str]]) -> str:
    """Clauses joined by ", ": the version specifier bare, ``prereleases``/``no prereleases``, else ``key value``."""
    words = []
    for key, value in clauses:
        if key == "version":
            words.append(value)
        elif key == "prereleases":
            words.append("prereleases" if value == "true" else "no prereleases")
        else:
            words.append(f"{key} {value}")
    return ", ".join(words) or ANY_VERSION


def constraint_clauses(words: str) -> dict[str, str]:
    """The clauses of a lock entry's ``constraint``: the inverse of ``constraint_words``."""
    head, marker, pattern = f", {words}".partition(", tag-pattern ")  # the last clause; its regex may hold ", "
    clauses: dict[str, str] = {"tag-pattern": pattern} if marker else {}
    for clause in head.removeprefix(", ").split(", "):
        if clause in ("", ANY_VERSION):
            continue
        if clause in ("prereleases", "no prereleases"):
            clauses["prereleases"] = str(clause == "prereleases").lower()
        elif clause[0] in "<>=!~":
            clauses["version"] = clause
        else:
            key, _, value = clause.partition(" ")
            clauses[key] = value
    return clauses


def constraint_changes(old_words: str, spec: ImageSpec) -> list[str]:
    """What changed between a lock entry's ``constraint`` and ``spec``, key by key: ``version ">=1.25" → ">=1.26"``."""
    old, new = constraint_clauses(old_words), dict(spec.constraint_clauses())
    order = [key for key in (*new, *old) if old.get(key) != new.get(key)]
    return [f"{key} {_quoted(key, old.get(key))} → {_quoted(key, new.get(key))}" for key in dict.fromkeys(order)]


def _specifier_words(specifier: SpecifierSet) -> str:
    """The specifier's clauses by version, as a reader writes a range: ``>=1.25,!=1.26.0,<1.27``."""

    def position(clause: Specifier) -> tuple[int, Version | str, str]:
        version = parse_version(clause.version.removesuffix(".*"))
        return (0, version, clause.operator) if version is not None else (1, clause.version, clause.operator)

    return ",".join(str(clause) for clause in sorted(specifier, key=position))


def _quoted(key: str, value: str | None) -> str:
    if value is None:
        return "all" if key == "platforms" else "none"  # no platforms named: every platform the image offers
    return json.dumps(value, ensure_ascii=False)


def _hash(content: object) -> str:
    encoded = json.dumps(content, sort_keys=True, separators=(",", ":"), ensure_ascii=True)
    return "sha256:" + hashlib.sha256(encoded.encode()).hexdigest()


def load_config(path: Path) -> Config:
    """Read and validate ``images.toml``; raise InputError naming file, image and key."""
    try:
        with path.open("rb") as handle:
            raw = read_at_most(handle, MAX_FILE_BYTES + 1)
    except FileNotFoundError:
        raise InputError(f"{path}: not found (create it, see images.toml.example)") from None
    except OSError as error:
        raise InputError(f"{path}: cannot read: {error.strerror}") from None
    if len(raw) > MAX_FILE_BYTES:
        raise InputError(f"{path}: larger than {MAX_FILE_BYTES >> 20} MiB; not an images.toml")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise InputError(f"{path}: not UTF-8 text") from None
    return parse_config(text, path)


def parse_config(text: str, path: Path) -> Config:
    """Validate the text of an images.toml; ``path`` names it in errors and anchors relative paths."""
    try:
        document = tomli.loads(text)
    except tomli.TOMLDecodeError as error:
        raise InputError(f"{path}: invalid TOML: {error}") from None
    return _ConfigParser(path).parse(document)


class _ConfigParser:
    def __init__(self, path: Path) -> None:
        self.path = path
        self.policies: dict[str, TrustPolicy] = {}
        self.default_policy: TrustPolicy | None = None
        self.default_audit: AuditPolicy | None = AuditPolicy()
        self.files: list[Path] = []

    def file(self, relative: str) -> Path:
        """A file images.toml names, relative to its directory."""
        path = self.path.parent / relative
        self.files.append(path)
        return path

    def error(self, where: str, message: str) -> InputError:
        return InputError(f"{self.path}: {where}: {message}")

    def parse(self, document: dict[str, Any]) -> Config:
        self.check_keys("top level", document, _TOP_LEVEL_KEYS)
        version = document.get("version", CONFIG_VERSION)
        if version != CONFIG_VERSION or isinstance(version, bool):
            raise self.error("key 'version'", f"unsupported version {version!r} (this imagelock reads version 1)")
        defaults = self.table("[defaults]", document.get("defaults", {}))
        self.check_keys("[defaults]", defaults, _DEFAULTS_KEYS)
        default_platforms = self.platforms("[defaults]", defaults.get("platforms", []))
        self.policies = {
            name: self.policy(f"[policies.{name}]", name, self.table(f"[policies.{name}]", value))
            for name, value in self.table("[policies]", document.get("policies", {})).items()
        }
        self.default_policy = self.verify_setting("[defaults]", "defaults", defaults.get("verify", False), None)
        self.default_audit = self.audit_setting("[defaults.audit]", defaults.get("audit"), AuditPolicy())
        self.default_freshness = self.freshness("[defaults]", defaults, Freshness())
        self.default_on_tag_move = self.on_tag_move("[defaults]", defaults, "warn")
        registries = self.registries(self.table("[registries]", document.get("registries", {})))
        images_table = self.table("[images]", document.get("images", {}))
        images: dict[str, ImageSpec] = {}
        seen: dict[str, str] = {}
        for name, value in images_table.items():
            where = f"[images.{name}]"
            if not _NAME.fullmatch(name):
                raise self.error(where, "invalid name (letters, digits, '.', '_', '-'; up to 128)")
            if name.lower() in seen:
                raise self.error(where, f"duplicate name (already defined as {seen[name.lower()]!r})")
            seen[name.lower()] = name
            images[name] = self.image(name, value, default_platforms)
        return Config(self.path, dict(sorted(images.items())), registries, tuple(self.files))

    def check_keys(self, where: str, table: Mapping[str, Any], allowed: frozenset[str]) -> None:
        for key in table:
            if key not in allowed:
                raise self.error(where, f"unknown key {key!r} (allowed: {', '.join(sorted(allowed))})")

    def table(self, where: str, value: object) -> dict[str, Any]:
        if not isinstance(value, dict):
            raise self.error(where, f"expected a table, got {_type_name(value)}")
        return value

    def string(self, where: str, key: str, value: object) -> str:
        if not isinstance(value, str):
            raise self.error(where, f"key {key!r}: expected a string, got {_type_name(value)}")
        return value

    def boolean(self, where: str, key: str, value: object) -> bool:
        if not isinstance(value, bool):
            raise self.error(where, f"key {key!r}: expected true or false, got {_type_name(value)}")
        return value

    def string_list(self, where: str, key: str, value: object) -> list[str]:
        if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
            raise self.error(where, f"key {key!r}: expected a list of strings, got {_type_name(value)}")
        return value

    def platforms(self, where: str, value: object) -> tuple[Platform, ...]:
        platforms = set()
        for text in self.string_list(where, "platforms", value):
            try:
                platforms.add(parse_declared_platform(text))
            except InputError as error:
                raise self.error(where, f"key 'platforms': {error}") from None
        return tuple(sorted(platforms))

    def registries(self, table: dict[str, Any]) -> dict[str, RegistrySettings]:
        registries: dict[str, RegistrySettings] = {}
        for host, value in table.items():
            where = f'[registries."{host}"]'
            settings = self.table(where, value)
            self.check_keys(where, settings, _REGISTRY_KEYS)
            if not is_valid_registry_host(host):
                raise self.error(where, "invalid registry host (expected host[:port])")
            insecure = self.boolean(where, "insecure", settings.get("insecure", False))
            ca_cert = None
            if "ca-cert" in settings:
                ca_cert = self.file(self.string(where, "ca-cert", settings["ca-cert"]))
                if not ca_cert.is_file():
                    raise self.error(where, f"key 'ca-cert': file {str(ca_cert)!r} not found")
            concurrency = settings.get("concurrency")
            if concurrency is not None and (
                not isinstance(concurrency, int) or isinstance(concurrency, bool) or not 1 <= concurrency <= 256
            ):
                raise self.error(where, "key 'concurrency': expected an integer from 1 to 256")
            timeout = settings.get("timeout")
            if timeout is not None and (
                not isinstance(timeout, int | float) or isinstance(timeout, bool) or not 0 < timeout <= 3600
            ):
                raise self.error(where, "key 'timeout': expected seconds, a number above 0 and at most 3600")
            tag_api = settings.get("tag-api")
            if tag_api is not None and not is_valid_registry_host(self.string(where, "tag-api", tag_api)):
                raise self.error(where, "key 'tag-api': invalid host (expected host[:port], as in \"hub.docker.com\")")
            http2 = self.boolean(where, "http2", settings.get("http2", False))
            normalised = parse_reference(f"{host}/x").repository.registry
            registries[normalised] = RegistrySettings(
                insecure, ca_cert, concurrency, float(timeout) if timeout is not None else None, tag_api, http2
            )
        return registries

    def image(self, name: str, value: object, default_platforms: tuple[Platform, ...]) -> ImageSpec:
        where = f"[images.{name}]"
        if isinstance(value, str):
            return self.shorthand(name, value, default_platforms)
        entry = self.table(where, value)
        self.check_keys(where, entry, _IMAGE_KEYS)
        if "image" not in entry:
            raise self.error(where, "missing key 'image'")
        image_text = self.string(where, "image", entry["image"])
        try:
            reference = parse_reference(image_text)
        except InputError as error:
            raise self.error(where, f"key 'image': {error}") from None
        if reference.tag is not None or reference.digest is not None:
            raise self.error(
                where,
                f"key 'image': {image_text!r} has a tag or digest; put the tag in 'tag' or the range in 'version'",
            )
        platforms = self.platforms(where, entry["platforms"]) if "platforms" in entry else default_platforms
        policy = self.verify_setting(where, f"images.{name}", entry.get("verify"), self.default_policy)
        self.check_policy_applies(where, reference.repository, policy)
        audit = self.audit_setting(f"[images.{name}.audit]", entry.get("audit"), self.default_audit)
        freshness = self.freshness(where, entry, self.default_freshness)
        on_tag_move = self.on_tag_move(where, entry, self.default_on_tag_move)
        has = {key for key in ("version", "tag", "tag-pattern") if key in entry}
        if not has:
            raise self.error(where, "needs one of 'version', 'tag' or 'tag-pattern'")
        if "tag" in has and len(has) > 1:
            raise self.error(where, "'tag' cannot be combined with 'version' or 'tag-pattern'")
        if "variant" in entry and "tag-pattern" in entry:
            raise self.error(where, "'variant' cannot be combined with 'tag-pattern' (put the variant in the pattern)")
        if "tag" in has:
            for key in ("variant", "prereleases", "exclude", "order"):
                if key in entry:
                    raise self.error(where, f"key {key!r}: only applies to 'version' or 'tag-pattern' entries")
            tag = self.string(where, "tag", entry["tag"])
            if not is_valid_tag(tag):
                raise self.error(where, f"key 'tag': invalid tag {tag!r}")
            return ImageSpec(
                name,
                reference.repository,
                platforms,
                tag=tag,
                policy=policy,
                audit=audit,
                freshness=freshness,
                on_tag_move=on_tag_move,
            )
        matcher = self.matcher(where, entry)
        return ImageSpec(
            name,
            reference.repository,
            platforms,
            matcher=matcher,
            policy=policy,
            audit=audit,
            freshness=freshness,
            on_tag_move=on_tag_move,
        )

    def on_tag_move(self, where: str, table: Mapping[str, Any], default: str) -> str:
        if "on-tag-move" not in table:
            return default
        rule = self.string(where, "on-tag-move", table["on-tag-move"])
        if rule not in TAG_MOVE_RULES:
            raise self.error(where, f'key \'on-tag-move\': expected "warn" or "fail", got {rule!r}')
        return rule

    def freshness(self, where: str, table: Mapping[str, Any], default: Freshness) -> Freshness:
        """``min-age``, ``min-age-unknown`` and ``exclude-newer``, each overriding the default's one."""
        min_age, unknown, exclude_newer = default.min_age, default.unknown, default.exclude_newer
        if "min-age" in table:
            min_age = self.string(where, "min-age", table["min-age"])
            try:
                duration(min_age)
            except ValueError as error:
                raise self.error(where, f"key 'min-age': {error}") from None
        if "min-age-unknown" in table:
            unknown = self.string(where, "min-age-unknown", table["min-age-unknown"])
            if unknown not in UNKNOWN_RULES:
                raise self.error(where, f'key \'min-age-unknown\': expected "skip" or "allow", got {unknown!r}')
        if "exclude-newer" in table:
            value = table["exclude-newer"]
            if isinstance(value, datetime) and value.tzinfo is not None:  # a TOML offset date-time
                exclude_newer = value.astimezone(UTC)
            else:
                try:
                    exclude_newer = parse_time(self.string(where, "exclude-newer", value))
                except ValueError as error:
                    raise self.error(where, f"key 'exclude-newer': {error}") from None
        return Freshness(min_age, unknown, exclude_newer)

    def audit_setting(self, where: str, value: object, default: AuditPolicy | None) -> AuditPolicy | None:
        """``audit``: a table whose keys override the defaults' one by one, or false; absent means the default."""
        if value is None:
            return default
        if value is False:
            return None
        if value is True:
            return default or AuditPolicy()
        table = self.table(where, value)
        self.check_keys(where, table, _AUDIT_KEYS)
        base = default or AuditPolicy()
        fail_on = base.fail_on
        if "fail-on" in table:
            fail_on = self.string(where, "fail-on", table["fail-on"]).lower()
            if fail_on not in FAIL_ON_LEVELS:
                raise self.error(where, f"key 'fail-on': expected one of {', '.join(FAIL_ON_LEVELS)}, got {fail_on!r}")
        ignore = base.ignore
        if "ignore" in table:
            ignore = frozenset(self.string_list(where, "ignore", table["ignore"]))
            if any(not item.strip() for item in ignore):
                raise self.error(where, "key 'ignore': an empty id")
        gate = self.boolean(where, "gate", table["gate"]) if "gate" in table else base.gate
        return AuditPolicy(fail_on, ignore, gate)

    def check_policy_applies(self, where: str, repository: Repository, policy: TrustPolicy | None) -> None:
        if policy is None:
            return
        from imagelock.trust import ContentTrustPolicy

        if isinstance(policy, ContentTrustPolicy) and policy.server_for(repository) is None:
            raise self.error(
                where, f"policy {policy.name!r} needs a 'server': only docker.io images have a default notary server"
            )

    def verify_setting(self, where: str, owner: str, value: object, default: TrustPolicy | None) -> TrustPolicy | None:
        """``verify``: a policy name, an inline policy table, or false; absent means the default."""
        if value is None:
            return default
        if value is False:
            return None
        if isinstance(value, str):
            if value not in self.policies:
                known = ", ".join(sorted(self.policies)) or "none defined"
                raise self.error(where, f"key 'verify': unknown policy {value!r} (policies: {known})")
            return self.policies[value]
        if isinstance(value, dict):
            return self.policy(f"{where} verify", f"{owner}.verify", value)
        raise self.error(where, "key 'verify': expected a policy name, an inline table or false")

    def policy(self, where: str, name: str, table: dict[str, Any]) -> TrustPolicy:
        from imagelock.trust import CosignPolicy, load_public_key

        method = table.get("method")
        if method not in _METHODS:
            raise self.error(where, f"key 'method': expected one of {', '.join(_METHODS)}, got {method!r}")
        if method == "cosign-keyless":
            return self.keyless_policy(where, name, table)
        if method == "notation":
            return self.notation_policy(where, name, table)
        if method == "content-trust":
            return self.content_trust_policy(where, name, table)
        self.check_keys(where, table, _COSIGN_KEYS)
        if ("key" in table) == ("keys" in table):
            raise self.error(where, "needs exactly one of 'key' (one PEM public key) and 'keys' (a list)")
        paths = (
            [self.string(where, "key", table["key"])]
            if "key" in table
            else self.string_list(where, "keys", table["keys"])
        )
        if not paths:
            raise self.error(where, "key 'keys': the list is empty")
        keys = []
        for relative in paths:
            try:
                keys.append(load_public_key(self.file(relative)))
            except InputError as error:
                raise self.error(where, str(error)) from None
        match_repository = self.boolean(where, "match-repository", table.get("match-repository", True))
        rekor_keys = []
        if "rekor-key" in table:
            try:
                rekor_keys.append(load_public_key(self.file(self.string(where, "rekor-key", table["rekor-key"]))))
            except InputError as error:
                raise self.error(where, f"key 'rekor-key': {error}") from None
        provenance = self.provenance(where, table)
        return CosignPolicy(name, tuple(keys), match_repository, tuple(rekor_keys), provenance)

    def keyless_policy(self, where: str, name: str, table: dict[str, Any]) -> KeylessPolicy:
        from imagelock.trust import KeylessPolicy

        self.check_keys(where, table, _KEYLESS_KEYS)
        if "issuer" not in table:
            raise self.error(
                where, "missing key 'issuer' (the OIDC issuer, e.g. https://token.actions.githubusercontent.com)"
            )
        if ("identity" in table) == ("identity-regexp" in table):
            raise self.error(where, "needs exactly one of 'identity' and 'identity-regexp'")
        identity = self.string(where, "identity", table["identity"]) if "identity" in table else None
        pattern = (
            self.string(where, "identity-regexp", table["identity-regexp"]) if "identity-regexp" in table else None
        )
        root = self.file(self.string(where, "trusted-root", table["trusted-root"])) if "trusted-root" in table else None
        try:
            policy = KeylessPolicy.create(name, self.string(where, "issuer", table["issuer"]), identity, pattern, root)
        except InputError as error:
            raise self.error(where, str(error)) from None
        return replace(policy, provenance=self.provenance(where, table))

    def provenance(self, where: str, policy: dict[str, Any]) -> ProvenanceRequirement | None:
        """``[policies.X.provenance]``: the SLSA provenance an image must carry too; None when absent."""
        from imagelock.trust.provenance import PREDICATE_TYPES, ProvenanceRequirement

        if "provenance" not in policy:
            return None
        where = f"{where.removesuffix(']')}.provenance]" if where.endswith("]") else f"{where} provenance"
        table = self.table(where, policy["provenance"])
        self.check_keys(where, table, _PROVENANCE_KEYS)
        predicate_type = self.string(where, "predicate-type", table.get("predicate-type", PREDICATE_TYPES[0]))
        if predicate_type not in PREDICATE_TYPES:
            raise self.error(where, f"key 'predicate-type': expected one of {', '.join(PREDICATE_TYPES)}")
        if ("builder-id" in table) == ("builder-id-regexp" in table):
            raise self.error(where, "needs exactly one of 'builder-id' and 'builder-id-regexp'")
        if "source-repository" not in table:
            raise self.error(where, "missing key 'source-repository' (e.g. https://github.com/acme/app)")
        pattern = None
        if "builder-id-regexp" in table:
            try:
                pattern = re.compile(self.string(where, "builder-id-regexp", table["builder-id-regexp"]))
            except re.error as error:
                raise self.error(where, f"key 'builder-id-regexp': invalid regex: {error}") from None
        return ProvenanceRequirement(
            source_repository=self.string(where, "source-repository", table["source-repository"]),
            predicate_type=predicate_type,
            builder_id=self.string(where, "builder-id", table["builder-id"]) if "builder-id" in table else None,
            builder_id_regexp=pattern,
            source_ref=self.string(where, "source-ref", table["source-ref"]) if "source-ref" in table else None,
        )

    def notation_policy(self, where: str, name: str, table: dict[str, Any]) -> NotationPolicy:
        from imagelock.trust import NotationPolicy

        self.check_keys(where, table, _NOTATION_KEYS)
        for key, example in (("trust-store", '["certs/root.pem"]'), ("identities", '["x509.subject: C=US, O=Acme"]')):
            if key not in table:
                raise self.error(where, f"missing key {key!r}, e.g. {key} = {example}")
        paths = self.string_list(where, "trust-store", table["trust-store"])
        identities = self.string_list(where, "identities", table["identities"])
        if not paths:
            raise self.error(where, "key 'trust-store': the list is empty")
        if not identities:
            raise self.error(where, "key 'identities': the list is empty (use [\"*\"] to trust any identity)")
        for identity in identities:
            if identity != "*" and not identity.startswith("x509.subject:"):
                raise self.error(where, f"key 'identities': expected '*' or 'x509.subject: <DN>', got {identity!r}")
        try:
            return NotationPolicy.create(name, [self.file(path) for path in paths], identities)
        except InputError as error:
            raise self.error(where, str(error)) from None

    def content_trust_policy(self, where: str, name: str, table: dict[str, Any]) -> ContentTrustPolicy:
        from imagelock.trust import ContentTrustPolicy

        self.check_keys(where, table, _CONTENT_TRUST_KEYS)
        server = self.string(where, "server", table["server"]) if "server" in table else None
        ca_cert = self.file(self.string(where, "ca-cert", table["ca-cert"])) if "ca-cert" in table else None
        try:
            return ContentTrustPolicy.create(name, server, ca_cert)
        except InputError as error:
            raise self.error(where, str(error)) from None

    def matcher(self, where: str, entry: dict[str, Any]) -> TagMatcher:
        order_text = self.string(where, "order", entry.get("order", "version"))
        order = next((known for known in ORDERS if known == order_text), None)
        if order is None:
            raise self.error(where, f"key 'order': expected one of {', '.join(ORDERS)}, got {order_text!r}")
        if order != "version":
            if "tag-pattern" not in entry:
                raise self.error(where, f"order {order!r} needs a 'tag-pattern' whose 'version' group it orders")
            for key in ("version", "prereleases"):
                if key in entry:
                    raise self.error(where, f"key {key!r}: does not apply with order {order!r}; remove it")
        specifier_text = self.string(where, "version", entry.get("version", ""))
        try:
            specifier = SpecifierSet(specifier_text)
        except InvalidSpecifier:
            hint = _specifier_hint(specifier_text)
            raise self.error(
                where, f"key 'version': invalid PEP 440 specifier {specifier_text!r}{f' ({hint})' if hint else ''}"
            ) from None
        variant = None
        if "variant" in entry:
            variant = self.string(where, "variant", entry["variant"])
            if variant.startswith("-"):
                raise self.error(
                    where,
                    f"key 'variant': invalid variant {variant!r} (the dash is implied: "
                    f'variant = "{variant.lstrip("-")}" matches 1.2.3-{variant.lstrip("-")})',
                )
            if not variant or not is_valid_tag(f"0-{variant}"):
                raise self.error(where, f"key 'variant': invalid variant {variant!r}")
        pattern = None
        if "tag-pattern" in entry:
            pattern_text = self.string(where, "tag-pattern", entry["tag-pattern"])
            try:
                pattern = re.compile(pattern_text)
            except re.error as error:
                raise self.error(where, f"key 'tag-pattern': invalid regex: {error}") from None
            if "version" not in pattern.groupindex:
                raise self.error(
                    where, "key 'tag-pattern': the regex needs a named group 'version', e.g. (?P<version>...)"
                )
        prereleases = None
        if "prereleases" in entry:
            prereleases = self.boolean(where, "prereleases", entry["prereleases"])
        exclude = self.string_list(where, "exclude", entry.get("exclude", []))
        for tag in exclude:
            if not is_valid_tag(tag):
                raise self.error(where, f"key 'exclude': invalid tag {tag!r}")
        return TagMatcher(specifier, variant, pattern, prereleases, frozenset(exclude), order)

    def shorthand(self, name: str, text: str, default_platforms: tuple[Platform, ...]) -> ImageSpec:
        where = f"[images] {name}"
        try:
            reference = parse_reference(text)
        except InputError as error:
            raise self.error(where, str(error)) from None
        if reference.tag is None or reference.digest is not None:
            raise self.error(where, f"shorthand {text!r} must be a reference with a tag, e.g. 'postgres:16.4'")
        self.check_policy_applies(where, reference.repository, self.default_policy)
        return ImageSpec(
            name,
            reference.repository,
            default_platforms,
            tag=reference.tag,
            policy=self.default_policy,
            audit=self.default_audit,
            freshness=self.default_freshness,
            on_tag_move=self.default_on_tag_move,
        )


def _specifier_hint(text: str) -> str | None:
    """What the user most likely meant by a specifier in another tool's syntax (npm, Cargo, a bare version)."""
    text = text.strip()
    if len(text.split()) > 1:
        suggestion, why = ",".join(text.split()), "clauses are separated by commas"
    elif text[:1] == "^" and (version := parse_version(text[1:])) is not None:
        suggestion, why = f">={version},<{_caret_bound(version)}", "PEP 440 has no '^'"
    elif text[:1] == "~" and (version := parse_version(text[1:])) is not None:
        suggestion, why = f"~={version}{'.0' if len(version.release) < 3 else ''}", "PEP 440 writes '~' as '~='"
    elif text.endswith(".*") and (version := parse_version(text[:-2])) is not None:
        suggestion, why = f"=={version}.*", "a wildcard needs '=='"
    elif (version := parse_version(text)) is not None:
        suggestion = f"=={version}.*" if len(version.release) < 3 else f"=={version}"
        why = "a bare version needs an operator"
    else:
        return None
    try:
        SpecifierSet(suggestion)
    except InvalidSpecifier:
        return None
    return f'did you mean "{suggestion}"? ({why})'


def _caret_bound(version: Version) -> str:
    """npm's caret: the next release of the first non-zero component (^1.2 → 2, ^0.3 → 0.4)."""
    release = list(version.release)
    position = next((index for index, number in enumerate(release) if number), len(release) - 1)
    return ".".join(str(number) for number in [*release[:position], release[position] + 1])


def _type_name(value: object) -> str:
    names = {bool: "a boolean", int: "an integer", float: "a float", str: "a string", list: "an array", dict: "a table"}
    return names.get(type(value), type(value).__name__)
