"""SLSA provenance statements shaped like the specification's examples (slsa.dev/provenance v1 and v0.2)."""

from __future__ import annotations

import json

GITHUB_BUILDER = "https://github.com/actions/runner/github-hosted"
SOURCE = "https://github.com/acme/app"
COMMIT = "c27d339ee6075c1f744c5d4b200f7901aad2c369"


def slsa_v1(
    digest: str, *, builder: str = GITHUB_BUILDER, repository: str = SOURCE, ref: str = "refs/heads/main"
) -> bytes:
    """A v1 statement of the GitHub Actions workflow build type, as in the v1 specification's example."""
    algorithm, _, hexdigest = digest.partition(":")
    predicate = {
        "buildDefinition": {
            "buildType": "https://actions.github.io/buildtypes/workflow/v1",
            "externalParameters": {
                "workflow": {"ref": ref, "repository": repository, "path": ".github/workflows/release.yml"}
            },
            "internalParameters": {
                "github": {"event_name": "push", "repository_id": "1", "runner_environment": "github-hosted"}
            },
            "resolvedDependencies": [{"uri": f"git+{repository}@{ref}", "digest": {"gitCommit": COMMIT}}],
        },
        "runDetails": {
            "builder": {"id": builder},
            "metadata": {"invocationId": f"{repository}/actions/runs/1/attempts/1"},
        },
    }
    return _statement(
        "https://in-toto.io/Statement/v1", algorithm, hexdigest, "https://slsa.dev/provenance/v1", predicate
    )


def slsa_v02(digest: str, *, builder: str = GITHUB_BUILDER, repository: str = SOURCE, ref: str = "main") -> bytes:
    """A v0.2 statement as in the v0.2 specification's example: the source in ``invocation.configSource``."""
    algorithm, _, hexdigest = digest.partition(":")
    predicate = {
        "builder": {"id": builder},
        "buildType": "https://github.com/Attestations/GitHubActionsWorkflow@v1",
        "invocation": {
            "configSource": {"uri": f"git+{repository}@{ref}", "digest": {"sha1": COMMIT}, "entryPoint": "release.yml"}
        },
        "metadata": {"buildInvocationId": "1-1", "completeness": {"parameters": True}},
        "materials": [{"uri": f"git+{repository}@{ref}", "digest": {"sha1": COMMIT}}],
    }
    return _statement(
        "https://in-toto.io/Statement/v0.1", algorithm, hexdigest, "https://slsa.dev/provenance/v0.2", predicate
    )


def buildkit_v02(digest: str, *, repository: str = SOURCE) -> bytes:
    """What BuildKit writes (docker/build-push-action, Git context): the source as ``<url>.git#<ref>``."""
    algorithm, _, hexdigest = digest.partition(":")
    predicate = {
        "builder": {"id": "https://github.com/acme/app/actions/runs/1"},
        "buildType": "https://mobyproject.org/buildkit@v1",
        "invocation": {
            "configSource": {
                "uri": f"{repository}.git#refs/heads/main",
                "digest": {"sha1": COMMIT},
                "entryPoint": "Dockerfile",
            }
        },
        "materials": [{"uri": "pkg:docker/debian@bookworm", "digest": {"sha256": "0" * 64}}],
    }
    return _statement(
        "https://in-toto.io/Statement/v0.1", algorithm, hexdigest, "https://slsa.dev/provenance/v0.2", predicate
    )


def _statement(kind: str, algorithm: str, hexdigest: str, predicate_type: str, predicate: object) -> bytes:
    document = {
        "_type": kind,
        "subject": [{"name": "registry.example/acme/app", "digest": {algorithm: hexdigest}}],
        "predicateType": predicate_type,
        "predicate": predicate,
    }
    return json.dumps(document, separators=(",", ":")).encode()
