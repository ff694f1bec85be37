"""Image references in YAML: Kubernetes manifests, Compose files, Helm values and charts,
kustomizations, GitHub Actions workflows and GitLab CI files.

- any ``image:`` key whose value is a string: every workload's containers, init and ephemeral
  containers, CronJob templates, Compose ``services.*.image`` (unless the service has ``build:``:
  that image is built locally), GitHub Actions ``services.*.image``, GitLab CI ``image:``;
- any map, under whatever key, in a Helm image convention: ``{registry, repository, tag, digest}``,
  ``{repository, tag, sha}``, ``{registry, image, tag, digest}`` (see ``_image_map``);
- a kustomization's ``images:`` entries (``name``, ``newName``, ``newTag``, ``digest``);
- GitHub Actions ``jobs.*.container`` and ``uses: docker://…``; GitLab CI ``image: {name: …}`` and
  ``services:``;
- a chart's ``Chart.yaml`` annotation ``artifacthub.io/images``.

The file is *composed* (ruamel.yaml's node graph), not loaded: nodes carry their exact position, an
alias is the very node its anchor defines (so an edit goes once, to the anchor), and merge keys
(``<<: *defaults``) are resolved here as YAML does. Edits are made on the original text, so nothing
else in the file moves.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

from ruamel.yaml import YAML
from ruamel.yaml.error import MarkedYAMLError, YAMLError
from ruamel.yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from imagelock.lockfile import LockedImage
from imagelock.pinning.sites import Edit, Site, Skipped, name_part, pinned, quoted, written_name

_MERGE = "tag:yaml.org,2002:merge"
_NULL = "tag:yaml.org,2002:null"
_DOCKER_SCHEME = "docker://"
_ANNOTATIONS = ("artifacthub.io/images", "images")  # Artifact Hub's key, and bitnami's

Entries = dict[str, tuple[ScalarNode, Node]]  # key → (key node, value node)


class NotYamlError(Exception):
    """The text is not YAML; ``line`` (1-based) is where the parser gave up."""

    def __init__(self, line: int | None, problem: str) -> None:
        super().__init__(problem)
        self.line = line
        self.problem = problem


def compose(text: str) -> list[Node]:
    """Every document's node graph; NotYamlError if the text is not YAML."""
    try:
        return [document for document in YAML(typ="rt").compose_all(text) if document is not None]
    except YAMLError as error:
        mark = error.problem_mark if isinstance(error, MarkedYAMLError) else None
        problem = (error.problem if isinstance(error, MarkedYAMLError) else None) or str(error).splitlines()[0]
        raise NotYamlError(mark.line + 1 if mark is not None else None, problem) from None
    except RecursionError:
        raise NotYamlError(None, "nested too deeply") from None


def scan_yaml(path: Path, text: str, *, app_version: str | None = None) -> tuple[list[Site], list[Skipped]]:
    """The image references in a YAML file. ``app_version``: the appVersion of the chart whose values
    file this is (an empty ``tag`` means it). Raises NotYamlError."""
    bom = text.startswith("\ufeff")  # not counted in the parser's columns: the first line's edits shift by one
    body = text[1:] if bom else text
    scanner = _Scanner(path, body.splitlines(keepends=True), _flavour(path), app_version)
    for document in compose(body):
        scanner.document(document)
    sites = [_past_bom(site) for site in scanner.sites] if bom else scanner.sites
    return sorted(sites, key=lambda site: site.line), scanner.skipped


def app_version(chart_text: str) -> str | None:
    """A ``Chart.yaml``'s ``appVersion``, as written (``1.10`` stays ``1.10``). Raises NotYamlError."""
    for document in compose(chart_text):
        if isinstance(document, MappingNode):
            found = _entries(document).get("appVersion")
            return (_text(found[1]) or None) if found else None
    return None


def _flavour(path: Path) -> str:
    parts = path.parts
    if path.name == "Chart.yaml":
        return "chart"
    if any(parts[index : index + 2] == (".github", "workflows") for index in range(len(parts) - 1)):
        return "github"
    if path.name.endswith((".gitlab-ci.yml", ".gitlab-ci.yaml")):
        return "gitlab"
    if path.name in ("kustomization.yaml", "kustomization.yml"):
        return "kustomization"
    return "yaml"


@dataclass(frozen=True)
class _Span:
    """Where a one-line scalar's text sits: ``line[start:end]``, quoted with ``quote`` ('' for plain)."""

    line: int
    start: int
    end: int
    quote: str


class _Scanner:
    def __init__(self, path: Path, lines: list[str], flavour: str, app_version: str | None) -> None:
        self.path = path
        self.lines = lines
        self.flavour = flavour
        self.app_version = app_version
        self.sites: list[Site] = []
        self.skipped: list[Skipped] = []
        self._seen: set[int] = set()  # nodes walked
        self._referenced: set[int] = set()  # scalars made sites
        self._memo: dict[int, Entries] = {}  # each map's keys, merges resolved
        self._global_registry: tuple[ScalarNode, Node] | None = None  # this document's global.image.registry

    def document(self, root: Node) -> None:
        self._global_registry = None
        if isinstance(root, MappingNode):
            top = _entries(root)
            self._global_registry = _path(top, "global", "image", "registry")
            kind = top.get("kind")
            if self.flavour == "kustomization" or (kind and _text(kind[1]) == "Kustomization"):
                images = top.get("images")
                if images and isinstance(images[1], SequenceNode):
                    for item in images[1].value:
                        if isinstance(item, MappingNode):
                            self._kustomize_site(item)
            if self.flavour == "chart":
                self._chart_annotation(top)
        self._walk(root)

    # -- the walk: every node once, whether reached directly or through an alias ----------------

    def _walk(self, node: Node) -> None:
        if id(node) in self._seen:
            return
        self._seen.add(id(node))
        if isinstance(node, MappingNode):
            self._mapping(node)
            for _, value in node.value:
                self._walk(value)
        elif isinstance(node, SequenceNode):
            for item in node.value:
                self._walk(item)

    def _mapping(self, mapping: MappingNode) -> None:
        entries = _entries(mapping, self._memo)
        if self._image_map(entries):
            return
        for key, (_, value) in _own(mapping).items():
            if key == "image" and isinstance(value, ScalarNode):
                if "build" in entries:
                    self._skip(value, "built locally (the service has build:), not pulled")
                else:
                    self._reference_site(value)
            elif isinstance(value, ScalarNode) and self._names_image(key, value):
                self._reference_site(value)
            elif self.flavour == "gitlab" and key == "image" and isinstance(value, MappingNode):
                self._gitlab_named(value)
            elif self.flavour == "gitlab" and key == "services" and isinstance(value, SequenceNode):
                for service in value.value:
                    if isinstance(service, ScalarNode):
                        self._reference_site(service)
                    elif isinstance(service, MappingNode):
                        self._gitlab_named(service)

    def _names_image(self, key: str, value: ScalarNode) -> bool:
        """GitHub Actions: ``uses: docker://…`` and a job's ``container:`` written as a string."""
        if key == "uses":
            return (_text(value) or "").startswith(_DOCKER_SCHEME)
        return self.flavour == "github" and key == "container"

    def _gitlab_named(self, mapping: MappingNode) -> None:
        name = _entries(mapping, self._memo).get("name")
        if name is not None and isinstance(name[1], ScalarNode):
            self._reference_site(name[1])

    # -- a reference written as one string ---------------------------------------------------------

    def _reference_site(self, node: ScalarNode) -> None:
        if id(node) in self._referenced:
            return  # the same anchored scalar, reached again through an alias
        self._referenced.add(id(node))
        text = _text(node)
        if not text:
            return
        span = self._span(node)
        if span is None:
            self._skip(node, "not a one-line scalar")
            return
        scheme = _DOCKER_SCHEME if text.startswith(_DOCKER_SCHEME) else ""
        value = text.removeprefix(scheme)
        if "$" in value or "{{" in value:
            self._skip(node, "uses a variable imagelock cannot resolve")
            return

        def rewrite(entry: LockedImage) -> tuple[Edit, ...]:
            new = scheme + pinned(name_part(value), entry)
            return (Edit(span.line, span.start, span.end, quoted(new, span.quote)),)

        self.sites.append(Site(self.path, span.line + 1, value, rewrite))

    # -- Helm image maps -------------------------------------------------------------------------

    def _image_map(self, entries: Entries) -> bool:
        """A map in one of the Helm charts' image conventions; its site, if it is one.

        The name is ``repository`` (with ``registry`` before it when set), or ``registry``/``image``
        (ingress-nginx, where ``image`` is a name component). The digest goes where the chart reads
        it: ``digest`` (``sha256:…``), else ``sha`` (bare hex, prometheus-community), else into
        ``tag`` as ``TAG@sha256:…``, which a chart rendering ``repository:tag`` turns into a pinned
        reference. An empty or missing ``tag`` is the chart's appVersion.
        """
        repository, image = _text_of(entries, "repository"), _text_of(entries, "image")
        versioned = any(key in entries for key in ("tag", "digest", "sha"))
        name_key = "repository" if repository else "image" if image and versioned else None
        if name_key is None:
            return False
        anchor = entries[name_key][1]
        if not versioned:
            if "://" not in str(repository) and "pullPolicy" in entries:
                self._skip(anchor, 'image map without tag, digest or sha: add the key your chart reads (digest: "")')
            return False
        # the host: the map's own registry, kyverno's defaultRegistry when that is null, or for
        # ingress-nginx's {image, tag, digest} the document's global.image.registry
        registry_entry = next((entries[key] for key in ("registry", "defaultRegistry") if _text_of(entries, key)), None)
        if registry_entry is None and name_key == "image":
            registry_entry = self._global_registry
            if registry_entry is None:
                self._skip(
                    anchor, "image is a name component, and no registry: (nor global.image.registry) names a host"
                )
                return True
        registry = _text(registry_entry[1]) if registry_entry else None
        name = f"{registry}/{_text(anchor)}" if registry else str(_text(anchor))
        tag_text = _text(entries["tag"][1]) if "tag" in entries else None
        tag, _, digest_in_tag = (tag_text or "").partition("@")
        if "digest" in entries:
            convention, digest = "digest", _text(entries["digest"][1]) or digest_in_tag
        elif "sha" in entries:
            sha = _text(entries["sha"][1])
            convention, digest = "sha", f"sha256:{sha}" if sha else digest_in_tag
        else:
            convention, digest = "tag", digest_in_tag
        if convention == "tag" and "tag" not in entries:
            return False
        if not tag:
            if self.app_version is None:
                self._skip(anchor, "tag is empty: the chart's appVersion, and no Chart.yaml beside this file says it")
                return True
            tag = self.app_version
        if "$" in name + tag or "{{" in name + tag:
            self._skip(anchor, "uses a variable imagelock cannot resolve")
            return True
        reference = f"{name}:{tag}" + (f"@{digest}" if digest else "")

        def rewrite(entry: LockedImage) -> tuple[Edit | None, ...]:
            edits: list[Edit | None] = []
            if convention == "tag":
                edits.append(self._set(entries["tag"], f"{entry.tag}@{entry.digest}"))
            else:
                if tag_text:  # an empty tag stays empty: the chart fills in its appVersion
                    edits.append(self._set(entries["tag"], entry.tag))
                if convention == "digest":
                    edits.append(self._set(entries["digest"], entry.digest))
                else:
                    edits.append(self._set(entries["sha"], entry.digest.removeprefix("sha256:")))
            if written_name(name, entry) != name:  # relocated: name the mirror
                host, _, rest = entry.image.partition("/")
                if registry_entry is not None:
                    edits += [self._set(registry_entry, host), self._set(entries[name_key], rest)]
                else:
                    edits.append(self._set(entries[name_key], entry.image))
            return tuple(edits)

        self.sites.append(Site(self.path, anchor.start_mark.line + 1, reference, _complete(rewrite)))
        return True

    # -- kustomizations --------------------------------------------------------------------------

    def _kustomize_site(self, item: MappingNode) -> None:
        entries = _entries(item, self._memo)
        name_key = "newName" if _text_of(entries, "newName") else "name"
        name = _text_of(entries, name_key)
        if not name:
            return
        tag, digest = _text_of(entries, "newTag"), _text_of(entries, "digest")
        reference = name + (f":{tag}" if tag else "") + (f"@{digest}" if digest else "")
        scalars = [key for key, (_, value) in _own(item).items() if isinstance(value, ScalarNode)]
        last_scalar = scalars[-1] if scalars else name_key

        def rewrite(entry: LockedImage) -> tuple[Edit | None, ...]:
            edits: list[Edit | None] = []
            if "newTag" in entries:
                edits.append(self._set(entries["newTag"], entry.tag))
            if "digest" in entries:
                edits.append(self._set(entries["digest"], entry.digest))
            else:
                edits.append(self._insert_after(item, entries[last_scalar], "digest", entry.digest))
            if written_name(name, entry) != name:  # relocated: newName is the mirror's repository
                if "newName" in entries:
                    edits.append(self._set(entries["newName"], entry.image))
                else:  # inserted after any digest line at the same place, so it comes first
                    edits.append(self._insert_after(item, entries["name"], "newName", entry.image))
            return tuple(edits)

        line = entries[name_key][0].start_mark.line + 1
        self.sites.append(Site(self.path, line, reference, _complete(rewrite), any_tag=tag is None))

    # -- Chart.yaml ------------------------------------------------------------------------------

    def _chart_annotation(self, top: Entries) -> None:
        """``annotations: {artifacthub.io/images: |…}``: a YAML list of ``{name, image}`` inside a
        literal block; scanned as a document of its own, its edits shifted into the file."""
        annotations = top.get("annotations")
        if annotations is None or not isinstance(annotations[1], MappingNode):
            return
        found = next((pair for key, pair in _entries(annotations[1]).items() if key in _ANNOTATIONS), None)
        if found is None or not isinstance(found[1], ScalarNode):
            return
        block = found[1]
        if block.style != "|":
            self._skip(block, "not a literal block (|): imagelock cannot edit it in place")
            return
        first = block.start_mark.line + 1
        body = self.lines[first : block.end_mark.line + (1 if block.end_mark.column else 0)]
        indent = min((len(line) - len(line.lstrip(" ")) for line in body if line.strip()), default=0)
        inner = _Scanner(
            self.path, [line[indent:] if line.strip() else line.lstrip(" ") for line in body], "yaml", None
        )
        try:
            documents = compose("".join(inner.lines))
        except NotYamlError as error:
            self._skip(block, f"the images annotation is not YAML ({error.problem})")
            return
        for document in documents:
            inner.document(document)
        self.skipped += [replace(item, line=item.line + first) for item in inner.skipped]
        self.sites += [_shifted(site, first, indent) for site in inner.sites]

    # -- positions and edits ---------------------------------------------------------------------

    def _skip(self, node: Node, reason: str) -> None:
        text = node.value if isinstance(node, ScalarNode) else ""
        self.skipped.append(Skipped(self.path, node.start_mark.line + 1, str(text), reason))

    def _span(self, node: ScalarNode) -> _Span | None:
        """Where a one-line plain or quoted scalar's text is (after any ``&anchor`` or ``!tag``)."""
        start, end = node.start_mark, node.end_mark
        if node.style not in (None, "'", '"') or start.line != end.line:
            return None
        line = self.lines[start.line]
        column = start.column
        while line[column : column + 1] in ("&", "!"):
            prefix = re.compile(r"\S+\s+").match(line, column)
            if prefix is None:
                return None
            column = prefix.end()
        if column >= end.column or (node.style == '"' and "\\" in line[column : end.column]):
            return None  # empty, or escapes: not a reference anyone writes
        return _Span(start.line, column, end.column, node.style or "")

    def _set(self, entry: tuple[ScalarNode, Node], new: str) -> Edit | None:
        """The edit giving a map's key the value ``new``: its scalar replaced, or, where the key has
        no value at all (``digest:``), the value written after the colon."""
        key, value = entry
        if not isinstance(value, ScalarNode) or _text(value) == new:
            return None
        span = self._span(value)
        if span is not None:
            return Edit(span.line, span.start, span.end, quoted(new, span.quote))
        if value.value == "" and value.style is None:
            line = self.lines[key.end_mark.line]
            colon = line.find(":", key.end_mark.column)
            if colon >= 0:
                return Edit(key.end_mark.line, colon + 1, colon + 1, " " + quoted(new, ""))
        return None

    def _insert_after(self, mapping: MappingNode, after: tuple[ScalarNode, Node], key: str, value: str) -> Edit | None:
        """A new ``key: value`` after the entry ``after`` (a one-line scalar): on its own line in a
        block map, indented like ``after``; after its value in a flow map (``{name: x, newTag: y}``)."""
        after_key, after_value = after
        span = self._span(after_value) if isinstance(after_value, ScalarNode) else None
        if span is None:
            return None
        if mapping.flow_style:
            return Edit(span.line, span.end, span.end, f", {key}: {quoted(value, '')}")
        ending = "\r\n" if self.lines[span.line].endswith("\r\n") else "\n"
        indent = " " * after_key.start_mark.column
        return Edit(span.line + 1, 0, 0, f"{indent}{key}: {quoted(value, '')}{ending}", insert_line=True)


def _entries(mapping: MappingNode, memo: dict[int, Entries] | None = None) -> Entries:
    """A map's keys as YAML reads them: merge keys (``<<``) resolved, own keys first, then the
    merged maps in order. ``memo`` keeps each map's answer, so maps merging maps that merge maps
    (a hostile file's doubling chain) cost each map once."""
    memo = {} if memo is None else memo
    if id(mapping) in memo:
        return memo[id(mapping)]
    memo[id(mapping)] = {}  # a map merging itself, through an alias, adds nothing
    merged: Entries = {}
    for key, value in mapping.value:
        if key.tag == _MERGE:
            for source in value.value if isinstance(value, SequenceNode) else [value]:
                if isinstance(source, MappingNode):
                    for name, pair in _entries(source, memo).items():
                        merged.setdefault(name, pair)
    memo[id(mapping)] = {**merged, **_own(mapping)}
    return memo[id(mapping)]


def _own(mapping: MappingNode) -> Entries:
    return {
        key.value: (key, value)
        for key, value in mapping.value
        if isinstance(key, ScalarNode) and key.tag != _MERGE and isinstance(key.value, str)
    }


def _text(node: Node) -> str | None:
    """A scalar's text; None for a null (``~``, ``null``, nothing) or a collection."""
    if not isinstance(node, ScalarNode) or node.tag == _NULL or not isinstance(node.value, str):
        return None
    return node.value


def _path(entries: Entries, *keys: str) -> tuple[ScalarNode, Node] | None:
    """The entry at ``keys`` down nested maps (``global.image.registry``), if it holds a non-empty scalar."""
    *parents, last = keys
    for key in parents:
        found = entries.get(key)
        if found is None or not isinstance(found[1], MappingNode):
            return None
        entries = _entries(found[1])
    return entries[last] if _text_of(entries, last) else None


def _text_of(entries: Entries, key: str) -> str | None:
    return _text(entries[key][1]) if key in entries else None


def _complete(rewrite: Callable[[LockedImage], tuple[Edit | None, ...]]) -> Callable[[LockedImage], tuple[Edit, ...]]:
    """A rewrite without the edits that had nothing to do."""

    def edits(entry: LockedImage) -> tuple[Edit, ...]:
        return tuple(edit for edit in rewrite(entry) if edit is not None)

    return edits


def _shifted(site: Site, lines: int, columns: int) -> Site:
    """A site found in text cut out of the file (an annotation's block), placed back in the file."""

    def rewrite(entry: LockedImage) -> tuple[Edit, ...]:
        return tuple(_shift(edit, lines, columns) for edit in site.rewrite(entry))

    return replace(site, line=site.line + lines, rewrite=rewrite)


def _past_bom(site: Site) -> Site:
    """A site found in a file's text after its byte-order mark, placed back in the file."""

    def rewrite(entry: LockedImage) -> tuple[Edit, ...]:
        return tuple(_shift(edit, 0, 1) if edit.line == 0 else edit for edit in site.rewrite(entry))

    return replace(site, rewrite=rewrite)


def _shift(edit: Edit, lines: int, columns: int) -> Edit:
    if edit.insert_line:
        return replace(edit, line=edit.line + lines, text=" " * columns + edit.text)
    return replace(edit, line=edit.line + lines, start=edit.start + columns, end=edit.end + columns)
