"""init → lock → pin → ``pin --check`` on a corpus of real deploy files (issue 17, "Done when").

The corpus (tests/fixtures/corpus/, sources and licences in its README) is copied to a temporary
directory, scanned by ``init`` and locked against the test registry: each image is pushed there
under its canonical repository path (``docker.io/library/nginx``), images.toml names it
``{registry}/docker.io/library/nginx``, and pin relocates ``{registry}/docker.io`` back to
``docker.io``, so the files keep their own spelling and get the test registry's digests.

The expensive part runs once per module (``corpus``); each test then checks one promise. Tests of
behaviour issue 17 adds are marked xfail (strict) with the item they hold.
"""

from __future__ import annotations

import difflib
import re
import shutil
import tomllib
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from ruamel.yaml import YAML
from typer.testing import CliRunner

from imagelock.reference import parse_reference
from tests.conftest import CliResult, Project, Registry

CORPUS = Path(__file__).parent / "fixtures" / "corpus"

# What init must propose for the YAML files of the corpus, read off the files by hand:
# (canonical repository, tag), one per distinct reference. Not proposed: `demo-microservice`
# (built locally by its Compose service), argo-cd's `controller.image` (empty repository: it
# inherits `global.image`), `jnorwood/helm-docs` (inside a `run:` script), and the flow-map loop items of
# flow-maps/ (name parts of a reference built at run time).
EXPECTED_PROPOSALS = frozenset(
    {
        # compose-merge-keys/getredash-setup: the anchor's image, reached by four services, once
        ("docker.io/redash/redash", "8.0.0.b32245"),
        ("docker.io/library/redis", "5.0-alpine"),
        ("docker.io/pgautoupgrade/pgautoupgrade", "15-alpine3.8"),
        ("docker.io/redash/nginx", "latest"),
        # compose-merge-keys/apache-airflow: the anchor's image is a variable (left alone), two plain ones
        ("docker.io/library/postgres", "13"),
        ("docker.io/library/redis", "latest"),
        # compose-build/awesome-compose-wasmedge-mysql-nginx
        ("docker.io/library/nginx", "alpine"),
        ("docker.io/library/mariadb", "10.9"),
        # helm/bitnami-redis: {registry, repository, tag, digest}
        ("docker.io/bitnami/redis", "8.2.1-debian-12-r0"),
        ("docker.io/bitnami/redis-sentinel", "8.2.1-debian-12-r0"),
        ("docker.io/bitnami/redis-exporter", "1.76.0-debian-12-r0"),
        ("docker.io/bitnami/os-shell", "12-debian-12-r51"),
        ("docker.io/bitnami/kubectl", "1.33.4-debian-12-r0"),
        # helm/kube-prometheus-stack: {registry, repository, tag, sha}; tag "" is appVersion v0.93.1
        ("docker.io/library/busybox", "latest"),
        ("quay.io/prometheus-operator/prometheus-operator", "v0.93.1"),
        ("quay.io/prometheus-operator/prometheus-config-reloader", "v0.93.1"),
        ("quay.io/thanos/thanos", "v0.42.4"),
        ("quay.io/prometheus/prometheus", "v3.14.0-distroless"),
        # helm/ingress-nginx-4.11.2: {registry, image, tag, digest}, image being a name part
        ("registry.k8s.io/ingress-nginx/controller", "v1.11.2"),
        # helm/ingress-nginx (4.15.1): the same map, but its registry moved to global.image.registry
        ("registry.k8s.io/ingress-nginx/controller", "v1.15.1"),
        # helm/argo-cd: maps without a digest key; global.image tag "" is appVersion v3.4.4
        ("quay.io/argoproj/argocd", "v3.4.4"),
        ("ghcr.io/dexidp/dex", "v2.45.1"),
        # helm/palworld: the artifacthub.io/images annotation names the same image as values.yaml
        ("docker.io/thijsvanloef/palworld-server-docker", "latest"),
        # helm/enterprise-logs: `image: &image` in values, `image: *image` for the subchart
        ("docker.io/grafana/enterprise-logs", "v1.5.2"),
        # kubernetes/: a tagless `image: nginx` follows latest; argo-cd's install manifest
        ("docker.io/library/nginx", "latest"),
        ("public.ecr.aws/docker/library/redis", "8.10.1-alpine"),
        ("quay.io/argoproj/argocd", "latest"),
        # flow-maps/argo-cd-openfaas-function: a manifest written as JSON, flow style throughout
        ("ghcr.io/openfaas/alpine", "latest"),
        # github-actions/: container string, service image, container.image map, docker:// step
        ("docker.io/library/node", "latest"),
        ("docker.io/library/postgres", "latest"),
        ("ecr-public.aws.com/artifacthub/ah", "v1.14.0"),
        ("docker.io/github/super-linter", "v3.12.0"),
        # gitlab-ci/: image as a `name:` map, image as a string, services as strings
        ("docker.io/hashicorp/packer", "1.0.4"),
        ("docker.io/library/docker", "latest"),
        ("docker.io/library/docker", "dind"),
        ("registry.gitlab.com/gitlab-org/cluster-integration/auto-build-image", "v1.0.0"),
        ("docker.io/library/docker", "20.10.6-dind"),  # services item as a `name:` map
    }
)

CHART_TEMPLATES = (
    "helm/bitnami-redis/templates/master/application.yaml",
    "helm/kube-prometheus-stack/templates/prometheus-operator/deployment.yaml",
    "helm/ingress-nginx/templates/controller-deployment.yaml",
    "helm/ingress-nginx-4.11.2/templates/controller-deployment.yaml",
    "helm/palworld/templates/deployments.yaml",
)
CRLF_FILE = "kubernetes/examples-aws-ebs-web/aws-ebs-web.yaml"  # turned into CRLF in the copy
ARGO_LOOP_ITEMS = "flow-maps/argo-workflows-loops-maps/loops-maps.yaml"
OPENFAAS_JSON = "flow-maps/argo-cd-openfaas-function/degraded_no_secret.yaml"


@dataclass(frozen=True)
class Pinning:
    """pin, then pin --check, then pin again, with the files after each pin."""

    pin: CliResult
    files: dict[str, bytes] = field(repr=False)
    check: CliResult
    again: CliResult
    files_again: dict[str, bytes] = field(repr=False)


@dataclass(frozen=True)
class CorpusRun:
    """What each step did on the copy of the corpus."""

    directory: Path
    original: dict[str, bytes] = field(repr=False)  # the files before pin
    init: CliResult
    proposals: list[tuple[str, str]] | None  # init's entries as (canonical repository, tag); None if it failed
    digests: dict[tuple[str, str], str]  # (canonical repository, tag) → the digest pushed and locked
    lock: CliResult
    pinning: Pinning | None  # None when lock failed

    def pinned(self) -> Pinning:
        """The pin steps, after asserting that lock and pin succeeded (every test of pin needs it)."""
        assert self.pinning is not None, f"lock exited {self.lock.exit_code}: {self.lock.stderr}"
        assert self.pinning.pin.exit_code == 0, f"pin exited {self.pinning.pin.exit_code}: {self.pinning.pin.stderr}"
        return self.pinning

    def digest(self, repository: str, tag: str) -> str:
        return self.digests[(repository, tag)]

    def text(self, relative: str) -> str:
        return self.pinned().files[relative].decode()

    def load(self, relative: str) -> Any:
        return YAML(typ="safe").load(self.text(relative))


def snapshot(directory: Path) -> dict[str, bytes]:
    return {str(p.relative_to(directory)): p.read_bytes() for p in sorted(directory.rglob("*")) if p.is_file()}


def canonical(image: str, tag: str) -> tuple[str, str]:
    return str(parse_reference(image).repository), tag


def write_config(path: Path, entries: list[tuple[str, str]], host: str) -> None:
    """images.toml naming each image under its canonical path in the test registry."""
    tables = [f'[images.i{n}]\nimage = "{host}/{image}"\ntag = "{tag}"\n' for n, (image, tag) in enumerate(entries)]
    path.write_text("\n".join(tables))


def run_pipeline(work: Path, registry: Registry) -> CorpusRun:
    deploy = work / "deploy"
    shutil.copytree(CORPUS, deploy)
    crlf = deploy / CRLF_FILE
    crlf.write_bytes(crlf.read_bytes().replace(b"\n", b"\r\n"))
    project = Project(work, CliRunner())
    original = snapshot(deploy)

    init = project.run("init", str(deploy))
    proposals = None
    if init.exit_code == 0:
        config = tomllib.loads(project.config.read_text())
        proposals = [canonical(spec["image"], spec["tag"]) for spec in config.get("images", {}).values()]
    # Lock what init proposed; while init cannot read the corpus, what it should have proposed.
    entries = sorted(set(proposals) if proposals else EXPECTED_PROPOSALS)
    digests: dict[tuple[str, str], str] = {}
    for image, tag in entries:
        try:
            digests[(image, tag)] = registry.seeder.push_image(
                image, tag, index=False, platforms=("linux/amd64",)
            ).digest
        except httpx.HTTPError:  # a name init should not have proposed; lock then fails, and so do the tests
            continue
    write_config(project.config, entries, registry.host)
    relocations = [
        option
        for host in sorted({image.split("/", 1)[0] for image, _ in entries})
        for option in ("--relocate", f"{registry.host}/{host}={host}")
    ]
    lock = project.run("lock")
    if lock.exit_code != 0:
        return CorpusRun(deploy, original, init, proposals, digests, lock, None)
    pin = project.run("pin", str(deploy), *relocations)
    files = snapshot(deploy)
    check = project.run("pin", "--check", str(deploy), *relocations)
    again = project.run("pin", str(deploy), *relocations)
    pinning = Pinning(pin, files, check, again, snapshot(deploy))
    return CorpusRun(deploy, original, init, proposals, digests, lock, pinning)


@pytest.fixture(scope="module")
def corpus(empty_registry: Registry, tmp_path_factory: pytest.TempPathFactory) -> Iterator[CorpusRun]:
    work = tmp_path_factory.mktemp("corpus")
    with pytest.MonkeyPatch.context() as patch:  # an empty Docker config, as for every test (conftest)
        (work / "docker-config").mkdir()
        patch.setenv("DOCKER_CONFIG", str(work / "docker-config"))
        yield run_pipeline(work, empty_registry)


def hexes(corpus: CorpusRun) -> set[str]:
    return {digest.removeprefix("sha256:") for digest in corpus.digests.values()}


def test_every_corpus_file_names_its_source_in_the_readme() -> None:
    readme = (CORPUS / "README.md").read_text()
    files = [p.relative_to(CORPUS) for p in CORPUS.rglob("*") if p.is_file() and p.name != "README.md"]
    assert files
    for path in files:
        if path.parts[0] != "dockerfiles":  # documented by its own README
            assert f"| `{path}` |" in readme, path


# -- init ---------------------------------------------------------------------------------------


def test_init_proposes_one_entry_per_distinct_reference(corpus: CorpusRun) -> None:
    assert corpus.init.exit_code == 0, corpus.init.stderr
    assert corpus.proposals is not None
    assert len(corpus.proposals) == len(set(corpus.proposals))  # one entry per distinct reference
    if not (CORPUS / "dockerfiles").is_dir():
        assert set(corpus.proposals) == EXPECTED_PROPOSALS
    assert set(corpus.proposals) >= EXPECTED_PROPOSALS


def test_init_finds_the_image_behind_a_merge_key_once(corpus: CorpusRun) -> None:
    assert corpus.proposals is not None, corpus.init.stderr
    assert corpus.proposals.count(("docker.io/redash/redash", "8.0.0.b32245")) == 1


def test_init_proposes_the_app_version_for_an_empty_tag(corpus: CorpusRun) -> None:
    assert corpus.proposals is not None, corpus.init.stderr
    for repository, app_version in (
        ("quay.io/prometheus-operator/prometheus-operator", "v0.93.1"),
        ("quay.io/prometheus-operator/prometheus-config-reloader", "v0.93.1"),
        ("quay.io/argoproj/argocd", "v3.4.4"),
    ):
        assert (repository, app_version) in corpus.proposals
    assert ("quay.io/prometheus-operator/prometheus-operator", "latest") not in corpus.proposals
    assert ("quay.io/prometheus-operator/prometheus-config-reloader", "latest") not in corpus.proposals


def test_init_reads_the_image_maps_of_real_charts(corpus: CorpusRun) -> None:
    assert corpus.proposals is not None, corpus.init.stderr
    assert ("docker.io/library/busybox", "latest") in corpus.proposals  # crds.upgradeJob.image.busybox
    assert ("quay.io/thanos/thanos", "v0.42.4") in corpus.proposals  # thanosImage
    assert ("registry.k8s.io/ingress-nginx/controller", "v1.11.2") in corpus.proposals  # image is a name part
    assert ("ghcr.io/dexidp/dex", "v2.45.1") in corpus.proposals  # no digest key


def test_init_does_not_propose_an_image_built_locally(corpus: CorpusRun) -> None:
    assert corpus.proposals is not None, corpus.init.stderr
    assert not [entry for entry in corpus.proposals if "demo-microservice" in entry[0]]


def test_init_finds_the_references_of_ci_files(corpus: CorpusRun) -> None:
    assert corpus.proposals is not None, corpus.init.stderr
    for entry in (
        ("docker.io/library/node", "latest"),
        ("docker.io/library/postgres", "latest"),
        ("ecr-public.aws.com/artifacthub/ah", "v1.14.0"),
        ("docker.io/github/super-linter", "v3.12.0"),
        ("docker.io/hashicorp/packer", "1.0.4"),
        ("docker.io/library/docker", "latest"),
        ("docker.io/library/docker", "dind"),
    ):
        assert entry in corpus.proposals


# -- lock, pin, pin --check, pin again -------------------------------------------------------


def test_pin_then_check_then_pin_again_changes_nothing(corpus: CorpusRun) -> None:
    pinning = corpus.pinned()
    assert pinning.files != corpus.original
    assert pinning.check.exit_code == 0, pinning.check.stdout + pinning.check.stderr
    assert pinning.again.exit_code == 0
    assert pinning.files_again == pinning.files


def same_apart_from_pins(old: Any, new: Any, digests: set[str], where: str = "") -> None:
    """The parsed documents are equal, except strings that now carry a locked digest and added digest keys."""
    if isinstance(old, dict) and isinstance(new, dict):
        assert set(old) <= set(new), where
        assert set(new) - set(old) <= {"digest"}, where
        for key in old:
            same_apart_from_pins(old[key], new[key], digests, f"{where}.{key}")
    elif isinstance(old, list) and isinstance(new, list):
        assert len(old) == len(new), where
        for index, (old_item, new_item) in enumerate(zip(old, new, strict=True)):
            same_apart_from_pins(old_item, new_item, digests, f"{where}[{index}]")
    elif old != new:
        assert isinstance(new, str), where
        assert any(digest in new for digest in digests), f"{where}: {old!r} → {new!r}"


def test_changed_files_parse_to_the_same_structure_and_change_only_reference_lines(corpus: CorpusRun) -> None:
    files = corpus.pinned().files
    digests = hexes(corpus)
    changed = [name for name, data in files.items() if data != corpus.original[name]]
    assert changed
    for name in changed:
        old, new = corpus.original[name].decode(), files[name].decode()
        if name.endswith((".yaml", ".yml")):
            documents = zip(YAML(typ="safe").load_all(old), YAML(typ="safe").load_all(new), strict=True)
            for old_document, new_document in documents:
                same_apart_from_pins(old_document, new_document, digests, name)
        old_lines, new_lines = old.splitlines(keepends=True), new.splitlines(keepends=True)
        for tag, old_start, old_end, new_start, new_end in difflib.SequenceMatcher(
            None, old_lines, new_lines, autojunk=False
        ).get_opcodes():
            if tag == "equal":
                continue
            assert tag in ("replace", "insert"), f"{name}: lines {old_start + 1}-{old_end} deleted"
            for line in new_lines[new_start:new_end]:  # every changed or added line carries a pin
                assert any(digest in line for digest in digests), f"{name}: {line!r}"


def test_crlf_quoting_and_comments_survive(corpus: CorpusRun) -> None:
    crlf = corpus.text(CRLF_FILE)
    assert crlf.count("\n") == crlf.count("\r\n")
    assert f"      image: nginx:latest@{corpus.digest('docker.io/library/nginx', 'latest')}\r\n" in crlf
    bitnami = corpus.text("helm/bitnami-redis/values.yaml")
    assert f'  digest: "{corpus.digest("docker.io/bitnami/redis", "8.2.1-debian-12-r0")}"\n' in bitnami
    assert "## @param image.digest Redis(R) image digest in the way sha256:aa...." in bitnami
    assert '    tag: "v1.15.1"\n' in corpus.text("helm/ingress-nginx/values.yaml")


# -- where each pin lands ----------------------------------------------------------------------


def test_a_merge_key_image_is_pinned_once_at_the_anchor(corpus: CorpusRun) -> None:
    name = "compose-merge-keys/getredash-setup/docker-compose.yml"
    digest = corpus.digest("docker.io/redash/redash", "8.0.0.b32245")
    text = corpus.text(name)
    assert text.count(digest) == 1
    assert f"  image: redash/redash:8.0.0.b32245@{digest}\n" in text.splitlines(keepends=True)[2]
    services = corpus.load(name)["services"]
    for service in ("server", "scheduler", "scheduled_worker", "adhoc_worker"):
        assert services[service]["image"] == f"redash/redash:8.0.0.b32245@{digest}"
    assert services["nginx"]["image"] == f"redash/nginx:latest@{corpus.digest('docker.io/redash/nginx', 'latest')}"
    airflow = corpus.load("compose-merge-keys/apache-airflow/docker-compose.yaml")["services"]
    assert airflow["airflow-webserver"]["image"] == "${AIRFLOW_IMAGE_NAME:-apache/airflow:|version|}"
    assert airflow["postgres"]["image"] == f"postgres:13@{corpus.digest('docker.io/library/postgres', '13')}"


def test_an_image_built_locally_is_left_alone_and_reported(corpus: CorpusRun) -> None:
    name = "compose-build/awesome-compose-wasmedge-mysql-nginx/compose.yml"
    services = corpus.load(name)["services"]
    assert services["backend"]["image"] == "demo-microservice"
    assert services["frontend"]["image"] == f"nginx:alpine@{corpus.digest('docker.io/library/nginx', 'alpine')}"
    assert re.search(rf"{re.escape(str(corpus.directory / name))}:10: .*built locally", corpus.pinned().pin.stderr)


def bitnami_renders(image: dict[str, str], app_version: str) -> str:
    """common.images.image (charts/common/templates/_images.tpl in the fixture)."""
    termination = f"@{image['digest']}" if image["digest"] else f":{image['tag'] or app_version}"
    return f"{image['registry']}/{image['repository']}{termination}"


def test_bitnami_maps_get_the_digest_the_chart_renders(corpus: CorpusRun) -> None:
    values = corpus.load("helm/bitnami-redis/values.yaml")
    for path, repository, tag in (
        (("image",), "bitnami/redis", "8.2.1-debian-12-r0"),
        (("sentinel", "image"), "bitnami/redis-sentinel", "8.2.1-debian-12-r0"),
        (("metrics", "image"), "bitnami/redis-exporter", "1.76.0-debian-12-r0"),
        (("volumePermissions", "image"), "bitnami/os-shell", "12-debian-12-r51"),
        (("kubectl", "image"), "bitnami/kubectl", "1.33.4-debian-12-r0"),
        (("sysctl", "image"), "bitnami/os-shell", "12-debian-12-r51"),
    ):
        image = values
        for key in path:
            image = image[key]
        digest = corpus.digest(f"docker.io/{repository}", tag)
        assert image["tag"] == tag
        assert bitnami_renders(image, "8.2.1") == f"docker.io/{repository}@{digest}"


def prometheus_renders(image: dict[str, str], app_version: str) -> str:
    """templates/prometheus-operator/deployment.yaml: the sha key holds bare hex."""
    reference = f"{image['registry']}/{image['repository']}:{image['tag'] or app_version}"
    return f"{reference}@sha256:{image['sha']}" if image["sha"] else reference


def test_prometheus_maps_get_the_bare_hex_the_chart_renders(corpus: CorpusRun) -> None:
    values = corpus.load("helm/kube-prometheus-stack/values.yaml")
    operator = values["prometheusOperator"]
    for image, tag, written_tag in (
        (values["crds"]["upgradeJob"]["image"]["busybox"], "latest", "latest"),  # a map under image.busybox
        (operator["image"], "v0.93.1", ""),  # tag "" is appVersion and stays empty
        (operator["prometheusConfigReloader"]["image"], "v0.93.1", ""),
        (operator["thanosImage"], "v0.42.4", "v0.42.4"),  # a map under another key
        (values["prometheus"]["prometheusSpec"]["image"], "v3.14.0-distroless", "v3.14.0-distroless"),
    ):
        repository = str(parse_reference(f"{image['registry']}/{image['repository']}").repository)
        digest = corpus.digest(repository, tag)
        assert image["tag"] == written_tag
        assert image["sha"] == digest.removeprefix("sha256:")
        assert prometheus_renders(image, "v0.93.1") == f"{image['registry']}/{image['repository']}:{tag}@{digest}"


def ingress_nginx_renders(image: dict[str, str]) -> str:
    """templates/controller-deployment.yaml with templates/_helpers.tpl (chroot false): registry/image:tag@digest."""
    return f"{image['registry']}/{image['image']}:{image['tag']}@{image['digest']}"


def test_ingress_nginx_keeps_image_a_name_and_moves_the_digest(corpus: CorpusRun) -> None:
    image = corpus.load("helm/ingress-nginx-4.11.2/values.yaml")["controller"]["image"]
    digest = corpus.digest("registry.k8s.io/ingress-nginx/controller", "v1.11.2")
    assert image["image"] == "ingress-nginx/controller"
    assert ingress_nginx_renders(image) == f"registry.k8s.io/ingress-nginx/controller:v1.11.2@{digest}"
    assert image["digestChroot"] == "sha256:21b55a2f0213a18b91612a8c0850167e00a8e34391fd595139a708f9c047e7a8"


def test_ingress_nginx_takes_the_registry_from_global_image(corpus: CorpusRun) -> None:
    values = corpus.load("helm/ingress-nginx/values.yaml")
    image = {**values["global"]["image"], **values["controller"]["image"]}  # merge controller.image global.image
    digest = corpus.digest("registry.k8s.io/ingress-nginx/controller", "v1.15.1")
    assert ingress_nginx_renders(image) == f"registry.k8s.io/ingress-nginx/controller:v1.15.1@{digest}"


def test_maps_without_a_digest_key_get_the_digest_in_the_tag(corpus: CorpusRun) -> None:
    values = corpus.load("helm/argo-cd/values.yaml")
    dex = values["dex"]["image"]
    assert (
        f"{dex['repository']}:{dex['tag']}"
        == f"ghcr.io/dexidp/dex:v2.45.1@{corpus.digest('ghcr.io/dexidp/dex', 'v2.45.1')}"
    )
    argocd = values["global"]["image"]  # tag "" is appVersion: the rendered reference carries the digest
    rendered = f"{argocd['repository']}:{argocd['tag'] or 'v3.4.4'}"
    assert rendered == f"quay.io/argoproj/argocd:v3.4.4@{corpus.digest('quay.io/argoproj/argocd', 'v3.4.4')}"
    assert values["controller"]["image"] == {"repository": "", "tag": "", "imagePullPolicy": ""}


def test_chart_templates_are_untouched_and_noted(corpus: CorpusRun) -> None:
    pinning = corpus.pinned()
    notes = [line for line in pinning.pin.stderr.splitlines() if "note: Helm templates not scanned" in line]
    for template in CHART_TEMPLATES:
        assert pinning.files[template] == corpus.original[template]
        chart, _, inside = template.partition("/templates/")
        assert any(
            note.startswith(f"{corpus.directory / chart / 'templates'}: ")
            and inside in note.split(": ")[-1].split(", ")
            for note in notes
        ), template


def test_the_artifacthub_images_annotation_is_pinned(corpus: CorpusRun) -> None:
    chart = corpus.load("helm/palworld/Chart.yaml")
    (image,) = YAML(typ="safe").load(chart["annotations"]["artifacthub.io/images"])
    digest = corpus.digest("docker.io/thijsvanloef/palworld-server-docker", "latest")
    assert image == {"name": "palworld-server-docker", "image": f"thijsvanloef/palworld-server-docker:latest@{digest}"}
    server = corpus.load("helm/palworld/values.yaml")["server"]["image"]  # no digest key: the tag carries it
    assert f"{server['repository']}:{server['tag']}" == f"thijsvanloef/palworld-server-docker:latest@{digest}"


def test_an_aliased_image_map_is_pinned_once_at_the_anchor(corpus: CorpusRun) -> None:
    name = "helm/enterprise-logs/values.yaml"
    digest = corpus.digest("docker.io/grafana/enterprise-logs", "v1.5.2")
    text = corpus.text(name)
    assert text.count(digest) == 1
    assert text.splitlines()[21] == f"  tag: v1.5.2@{digest}"
    values = corpus.load(name)
    assert values["loki-distributed"]["loki"]["image"] == values["image"]


def test_kubernetes_manifests_pin_tagless_and_tagged_references(corpus: CorpusRun) -> None:
    pod = corpus.load(CRLF_FILE)
    assert pod["spec"]["containers"][0]["image"] == f"nginx:latest@{corpus.digest('docker.io/library/nginx', 'latest')}"
    spec = corpus.load("kubernetes/argo-cd-install/install.yaml")["spec"]["template"]["spec"]
    redis = corpus.digest("public.ecr.aws/docker/library/redis", "8.10.1-alpine")
    assert spec["containers"][0]["image"] == f"public.ecr.aws/docker/library/redis:8.10.1-alpine@{redis}"
    argocd = corpus.digest("quay.io/argoproj/argocd", "latest")
    assert spec["initContainers"][0]["image"] == f"quay.io/argoproj/argocd:latest@{argocd}"


def test_flow_maps_holding_only_name_parts_are_left_alone_and_reported(corpus: CorpusRun) -> None:
    pinning = corpus.pinned()
    assert pinning.files[ARGO_LOOP_ITEMS] == corpus.original[ARGO_LOOP_ITEMS]
    steps = corpus.load(ARGO_LOOP_ITEMS)["spec"]["templates"][0]["steps"]
    assert steps[0][0]["withItems"][0] == {"image": "debian", "tag": "9.1"}  # `- { image: 'debian', tag: '9.1' }`
    path = re.escape(str(corpus.directory / ARGO_LOOP_ITEMS))
    for line, name in ((26, "debian"), (27, "debian"), (28, "alpine"), (29, "ubuntu")):
        assert re.search(rf"^{path}:{line}: left alone: {name}: image is a name component", pinning.pin.stderr, re.M)


def test_a_flow_map_is_pinned_inside_its_braces(corpus: CorpusRun) -> None:
    """A manifest written as JSON is YAML in flow style: the image is edited in place, nothing else."""
    digest = corpus.digest("ghcr.io/openfaas/alpine", "latest")
    before, after = corpus.original[OPENFAAS_JSON].decode(), corpus.text(OPENFAAS_JSON)
    assert after == before.replace(
        '"image": "ghcr.io/openfaas/alpine:latest",', f'"image": "ghcr.io/openfaas/alpine:latest@{digest}",'
    )
    document = corpus.load(OPENFAAS_JSON)
    assert document["spec"]["image"] == f"ghcr.io/openfaas/alpine:latest@{digest}"
    assert '\\"image\\":\\"ghcr.io/openfaas/alpine:latest\\"' in after  # inside a string: not a field


def test_github_actions_references_are_pinned(corpus: CorpusRun) -> None:
    job = corpus.load("github-actions/remarkablemark-postgres-example/.github/workflows/postgres.yml")["jobs"][
        "postgres"
    ]
    assert job["container"] == f"node:latest@{corpus.digest('docker.io/library/node', 'latest')}"
    postgres = corpus.digest("docker.io/library/postgres", "latest")
    assert job["services"]["postgres"]["image"] == f"postgres:latest@{postgres}"
    job = corpus.load("github-actions/argo-helm/.github/workflows/lint-and-test.yml")["jobs"]["linter-artifacthub"]
    ah = corpus.digest("ecr-public.aws.com/artifacthub/ah", "v1.14.0")
    assert job["container"]["image"] == f"ecr-public.aws.com/artifacthub/ah:v1.14.0@{ah}"
    steps = corpus.load("github-actions/grafana-helm-charts/.github/workflows/linter.yml")["jobs"]["build"]["steps"]
    linter = corpus.digest("docker.io/github/super-linter", "v3.12.0")
    assert steps[2]["uses"] == f"docker://github/super-linter:v3.12.0@{linter}"
    assert "jnorwood/helm-docs:v1.8.1\n" in steps[1]["run"]  # a script, not a reference field


def test_gitlab_ci_references_are_pinned(corpus: CorpusRun) -> None:
    image = corpus.load("gitlab-ci/getredash-setup/.gitlab-ci.yml")["image"]
    assert image["name"] == f"hashicorp/packer:1.0.4@{corpus.digest('docker.io/hashicorp/packer', '1.0.4')}"
    job = corpus.load("gitlab-ci/gitlab-docker-template/.gitlab-ci.yml")["build-master"]
    assert job["image"] == f"docker:latest@{corpus.digest('docker.io/library/docker', 'latest')}"
    assert job["services"] == [f"docker:dind@{corpus.digest('docker.io/library/docker', 'dind')}"]
    text = corpus.text("gitlab-ci/gitlab-auto-devops-build/.gitlab-ci.yml")
    build = "registry.gitlab.com/gitlab-org/cluster-integration/auto-build-image"
    assert f"  image: '{build}:v1.0.0@{corpus.digest(build, 'v1.0.0')}'\n" in text  # quoting kept
    dind = corpus.digest("docker.io/library/docker", "20.10.6-dind")
    assert f"    - name: 'docker:20.10.6-dind@{dind}'\n" in text
