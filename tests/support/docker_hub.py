"""A loopback server shaped like Docker Hub's tag API, which dates tags (``tag_last_pushed``).

It answers ``GET /v2/namespaces/NS/repositories/NAME/tags/TAG`` with the documented JSON record
(https://docs.docker.com/reference/api/hub/latest/#tag/repositories/operation/GetRepositoryTag), and
404 with Docker Hub's error shape for a tag it does not know.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

from tests.support.serving import QuietHandler, serve, shut_down

_TAG_PATH = re.compile(r"/v2/namespaces/([^/]+)/repositories/([^/]+)/tags/([^/?]+)")


@dataclass
class DockerHubTags:
    """The tags the server dates: ``"namespace/name:tag"`` → ``tag_last_pushed``; the paths it was asked."""

    host: str = ""
    pushed: dict[str, str] = field(default_factory=dict)
    asked: list[str] = field(default_factory=list)


def _record(name: str, pushed: str) -> dict[str, object]:
    return {
        "id": 1,
        "images": [
            {
                "architecture": "amd64",
                "os": "linux",
                "digest": "sha256:" + "0" * 64,
                "size": 1024,
                "status": "active",
                "last_pushed": pushed,
            }
        ],
        "creator": 1,
        "last_updated": pushed,
        "last_updater": 1,
        "last_updater_username": "someone",
        "name": name,
        "repository": 1,
        "full_size": 1024,
        "v2": True,
        "tag_status": "active",
        "tag_last_pulled": pushed,
        "tag_last_pushed": pushed,
        "media_type": "application/vnd.oci.image.index.v1+json",
        "content_type": "image",
        "digest": "sha256:" + "0" * 64,
    }


@contextmanager
def docker_hub_tags() -> Iterator[DockerHubTags]:
    tags = DockerHubTags()

    class Handler(QuietHandler):
        def do_GET(self) -> None:
            tags.asked.append(self.path)
            match = _TAG_PATH.fullmatch(self.path)
            key = f"{match[1]}/{match[2]}:{match[3]}" if match else ""
            if key not in tags.pushed:
                self.send_json(404, {"message": f"httperror 404: tag '{key}' not found", "errinfo": {}})
                return
            self.send_json(200, _record(key.rsplit(":", 1)[1], tags.pushed[key]))

    server = serve(Handler)
    tags.host = f"127.0.0.1:{server.server_address[1]}"
    try:
        yield tags
    finally:
        shut_down(server)
