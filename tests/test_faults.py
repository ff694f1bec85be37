"""Faults and rate limits through the proxy in front of the real registry: finish the run, or fail cleanly."""

from __future__ import annotations

import json
import random
import threading
import time
import tomllib
from collections import Counter
from collections.abc import Iterator

import pytest

from imagelock.errors import InputError, RegistryError, SeveralFailuresError
from imagelock.trust import SignatureError
from tests.conftest import Project, Registry
from tests.support.proxy import RESET, Answer, Intercept, Proxy


@pytest.fixture
def proxy(registry: Registry) -> Iterator[Proxy]:
    running = Proxy(registry.host).start()
    yield running
    running.stop()


def many_images(host: str) -> str:
    return (
        f'[images.web]\nimage = "{host}/library/nginx"\nversion = ">=1.25,<1.27"\n'
        f'[images.edge]\nimage = "{host}/library/nginx"\nversion = ">=1"\nvariant = "alpine"\n'
        f'[images.py]\nimage = "{host}/library/python"\nversion = "~=3.12"\n'
        f"[images.os]\nimage = \"{host}/library/ubuntu\"\ntag-pattern = '^jammy-(?P<version>\\d{{8}})$'\n"
        f'[images.cache]\nimage = "{host}/library/redis"\ntag = "7.2"\n'
        f'[images.db]\nimage = "{host}/library/postgres"\nversion = "~=16.0"\n'
        f'[images.legacy]\nimage = "{host}/team/legacy"\ntag = "1.0.0"\n'
    )


class Flaky:
    """Answers a share of requests with 429 or 503 (seeded), never more than twice in a row for one path."""

    def __init__(self, rate: float, seed: int = 7) -> None:
        self.rate = rate
        self.random = random.Random(seed)
        self.streak: Counter[str] = Counter()
        self.injected = 0
        self.lock = threading.Lock()

    def __call__(self, method: str, path: str) -> Answer | None:
        with self.lock:
            if self.streak[path] < 2 and self.random.random() < self.rate:
                self.streak[path] += 1
                self.injected += 1
                status = self.random.choice([429, 503])
                body = json.dumps({"errors": [{"code": "TOOMANYREQUESTS", "message": "slow down"}]}).encode()
                return Answer(status, {"Content-Type": "application/json"}, body if status == 429 else b"")
            self.streak[path] = 0
            return None


def first_time_per_path(action: object, *, only: str = "") -> Intercept:
    """Do ``action`` (RESET, a delay, an answer) the first time each matching path is asked for."""
    seen: set[str] = set()
    lock = threading.Lock()

    def intercept(method: str, path: str) -> Answer | str | float | None:
        with lock:
            if only not in path or path in seen:
                return None
            seen.add(path)
        return action  # type: ignore[return-value]

    return intercept


def test_a_run_under_30_percent_injected_429_and_503_gives_the_same_lock(project: Project, proxy: Proxy) -> None:
    project.write(many_images(proxy.host))
    assert project.run("lock").exit_code == 0
    clean = project.lock.read_bytes()
    project.lock.unlink()

    flaky = Flaky(0.3)
    proxy.intercept = flaky
    result = project.run("lock")

    assert result.exit_code == 0, result.stderr
    assert flaky.injected >= 5
    assert project.lock.read_bytes() == clean


def test_retries_that_run_out_exit_3_and_keep_the_old_lock(project: Project, proxy: Proxy) -> None:
    project.write(f'[images.web]\nimage = "{proxy.host}/library/nginx"\nversion = "==1.26.1"\n')
    assert project.run("lock").exit_code == 0
    before = project.lock.read_bytes()

    def unavailable(method: str, path: str) -> Answer | None:
        return Answer(503, {}, b"") if "/manifests/" in path else None

    proxy.intercept = unavailable
    project.write(f'[images.web]\nimage = "{proxy.host}/library/nginx"\nversion = "==1.26.2"\n')
    result = project.run("lock")

    assert result.exit_code == 3
    assert proxy.host in result.stderr
    assert "library/nginx:1.26.2" in result.stderr
    assert "503" in result.stderr
    assert "after 4 attempts" in result.stderr
    assert project.lock.read_bytes() == before


def test_retry_after_is_honoured(project: Project, proxy: Proxy) -> None:
    proxy.intercept = first_time_per_path(Answer(429, {"Retry-After": "1"}, b""), only="/manifests/")
    project.write(f'[images.cache]\nimage = "{proxy.host}/library/redis"\ntag = "7.2"\n')
    started = time.monotonic()
    result = project.run("lock")
    assert result.exit_code == 0, result.stderr
    assert time.monotonic() - started >= 1.0  # waited as asked, not the 0.25 s backoff


def test_connection_resets_are_retried(project: Project, proxy: Proxy) -> None:
    proxy.intercept = first_time_per_path(RESET)
    project.write(many_images(proxy.host))
    result = project.run("lock")
    assert result.exit_code == 0, result.stderr
    assert len(tomllib.loads(project.lock.read_text())["images"]) == 7


def test_slow_answers_time_out_and_are_retried(project: Project, proxy: Proxy) -> None:
    proxy.intercept = first_time_per_path(2.0, only="/manifests/")
    project.write(
        f'[registries."{proxy.host}"]\ntimeout = 0.5\n'
        f'[images.cache]\nimage = "{proxy.host}/library/redis"\ntag = "7.2"\n'
    )
    result = project.run("lock")
    assert result.exit_code == 0, result.stderr


def test_a_registry_that_never_answers_in_time_is_exit_3(project: Project, proxy: Proxy) -> None:
    proxy.intercept = lambda method, path: 1.0
    project.write(
        f'[registries."{proxy.host}"]\ntimeout = 0.2\n'
        f'[images.cache]\nimage = "{proxy.host}/library/redis"\ntag = "7.2"\n'
    )
    result = project.run("lock")
    assert result.exit_code == 3
    assert "timed out" in result.stderr
    assert proxy.host in result.stderr


@pytest.mark.parametrize(
    ("status", "code", "expected"),
    [
        (403, "DENIED", "access denied (HTTP 403): DENIED: requested access to the resource is denied"),
        (401, "UNAUTHORIZED", "unauthorized"),
        (429, "TOOMANYREQUESTS", "rate limited (HTTP 429 after 4 attempts): TOOMANYREQUESTS"),
    ],
)
def test_registry_errors_become_one_clear_line(
    project: Project, proxy: Proxy, status: int, code: str, expected: str
) -> None:
    body = json.dumps({"errors": [{"code": code, "message": "requested access to the resource is denied"}]})

    def refuse(method: str, path: str) -> Answer | None:
        return Answer(status, {"Content-Type": "application/json"}, body.encode()) if "/manifests/" in path else None

    proxy.intercept = refuse
    project.write(f'[images.cache]\nimage = "{proxy.host}/library/redis"\ntag = "7.2"\n')
    result = project.run("lock")
    assert result.exit_code == 3
    assert result.stderr.count("\n") <= 2  # the error, and nothing but the error
    assert expected in result.stderr
    assert "library/redis:7.2" in result.stderr or status == 401


def error_lines(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if line.startswith("error: ")]


def test_every_failing_entry_is_reported_by_name_and_the_worst_exit_code_wins(
    project: Project, proxy: Proxy, registry: Registry
) -> None:
    healthy = (
        f'[images.web]\nimage = "{proxy.host}/library/nginx"\nversion = "==1.26.2"\n'
        f'[images.cache]\nimage = "{proxy.host}/library/redis"\ntag = "7.2"\n'
    )
    project.write(healthy + f'[images.db]\nimage = "{proxy.host}/library/postgres"\nversion = "~=16.0"\n')
    assert project.run("lock").exit_code == 0
    before = project.lock.read_bytes()

    def redis_unavailable(method: str, path: str) -> Answer | None:
        return Answer(503, {}, b"") if path.startswith("/v2/library/redis/manifests/") else None

    proxy.intercept = redis_unavailable
    project.write(healthy + f'[images.db]\nimage = "{proxy.host}/library/postgres"\nversion = "==99.*"\n')
    for command in ("update", "outdated"):  # both ask the registry about every entry
        result = project.run(command)
        assert result.exit_code == 3, result.stderr  # the registry's failure outranks db's check failure (1)
        cache, db = error_lines(result.stderr)
        assert cache.startswith("error: [images.cache]: ")
        assert f"{proxy.host}/library/redis:7.2: failed (HTTP 503 after 4 attempts)" in cache
        assert db.startswith(f"error: [images.db]: no tag of {proxy.host}/library/postgres matches ==99.*")
        assert "Traceback" not in result.stderr
        assert project.lock.read_bytes() == before

    only_db = project.run("lock")  # cache is kept as locked: only db is resolved
    assert only_db.exit_code == 1
    assert error_lines(only_db.stderr) == [line for line in error_lines(result.stderr) if "[images.db]" in line]
    assert project.lock.read_bytes() == before


def test_the_worst_exit_code_is_bad_input_then_registry_then_a_failed_check() -> None:
    check, registry, bad_input = SignatureError("[images.a]: x"), RegistryError("[images.b]: y"), InputError("z")
    assert SeveralFailuresError([check, registry]).exit_code == 3
    assert SeveralFailuresError([registry, check]).exit_code == 3
    assert SeveralFailuresError([check, bad_input, registry]).exit_code == 2
    assert SeveralFailuresError([check, check]).exit_code == 1
    assert str(SeveralFailuresError([check, registry])) == "[images.a]: x\n[images.b]: y"


def test_verify_reports_each_unreachable_entry_and_each_problem(
    project: Project, proxy: Proxy, registry: Registry
) -> None:
    registry.seeder.push_image("faults/verified", "1.0.0")
    project.write(
        f'[images.web]\nimage = "{proxy.host}/library/nginx"\nversion = "==1.26.2"\n'
        f'[images.cache]\nimage = "{proxy.host}/library/redis"\ntag = "7.2"\n'
        f'[images.app]\nimage = "{proxy.host}/faults/verified"\ntag = "1.0.0"\n'
    )
    assert project.run("lock").exit_code == 0
    arm64 = tomllib.loads(project.lock.read_text())["images"]["app"]["platforms"]["linux/arm64"]
    registry.seeder.client.delete(f"/v2/faults/verified/manifests/{arm64}").raise_for_status()

    def unavailable(method: str, path: str) -> Answer | None:
        return Answer(503, {}, b"") if "/library/" in path and "/manifests/" in path else None

    proxy.intercept = unavailable
    result = project.run("verify")
    assert result.exit_code == 3, result.stderr
    app, cache, web = error_lines(result.stderr)
    assert app == f"error: [images.app]: platform linux/arm64 manifest {arm64} no longer exists"
    assert cache.startswith("error: [images.cache]: ")
    assert "503" in cache
    assert web.startswith("error: [images.web]: ")
    assert "503" in web


def test_unknown_tag_names_the_manifest(project: Project, registry: Registry) -> None:
    project.write(f'[images.cache]\nimage = "{registry.host}/library/redis"\ntag = "no-such-tag"\n')
    result = project.run("lock")
    assert result.exit_code == 3
    assert f"{registry.host}/library/redis:no-such-tag not found (MANIFEST_UNKNOWN)" in result.stderr


def test_a_low_docker_hub_rate_limit_is_a_warning(project: Project, proxy: Proxy) -> None:
    def low(method: str, path: str, answer: Answer) -> Answer:
        return Answer(
            answer.status,
            {**answer.headers, "ratelimit-limit": "100;w=21600", "ratelimit-remaining": "3;w=21600"},
            answer.body,
        )

    proxy.tamper = low
    project.write(many_images(proxy.host))
    result = project.run("lock")
    assert result.exit_code == 0, result.stderr
    assert result.stderr.count("warning:") == 1  # once per registry, not per request
    assert "only 3 of 100 pulls left" in result.stderr


def test_a_tag_still_naming_the_locked_digest_costs_a_head_not_a_get(project: Project, proxy: Proxy) -> None:
    project.write(f'[images.cache]\nimage = "{proxy.host}/library/redis"\ntag = "7.2"\n')
    assert project.run("lock").exit_code == 0
    first = tomllib.loads(project.lock.read_text())["images"]["cache"]
    proxy.requests.clear()

    project.write(f'[images.cache]\nimage = "{proxy.host}/library/redis"\ntag = "7.2"\nplatforms = ["linux/arm64"]\n')
    assert project.run("lock").exit_code == 0

    assert proxy.requests["HEAD /v2/library/redis/manifests/7.2"] == 1
    assert not [request for request in proxy.requests if request.startswith("GET") and "/manifests/" in request]
    second = tomllib.loads(project.lock.read_text())["images"]["cache"]
    assert second["digest"] == first["digest"]
    assert second["platforms"] == first["platforms"]
    assert second["spec"] != first["spec"]


def test_a_retagged_image_is_fetched_again(project: Project, registry: Registry) -> None:
    registry.seeder.push_image("team/moving", "stable", salt="first")
    project.write(f'[images.app]\nimage = "{registry.host}/team/moving"\ntag = "stable"\n')
    assert project.run("lock").exit_code == 0
    moved = registry.seeder.push_image("team/moving", "stable", salt="second")
    project.write(f'[images.app]\nimage = "{registry.host}/team/moving"\ntag = "stable"\nplatforms = ["linux/amd64"]\n')
    assert project.run("lock").exit_code == 0
    entry = tomllib.loads(project.lock.read_text())["images"]["app"]
    assert entry["digest"] == moved.digest
    assert entry["platforms"] == moved.platforms


def test_images_resolve_concurrently(project: Project, proxy: Proxy) -> None:
    proxy.intercept = lambda method, path: 0.05
    project.write(many_images(proxy.host))
    assert project.run("lock").exit_code == 0
    assert proxy.most_in_flight >= 4


def test_concurrent_requests_reuse_their_connections(project: Project, proxy: Proxy) -> None:
    proxy.intercept = lambda method, path: 0.05
    project.write(many_images(proxy.host))
    assert project.run("lock").exit_code == 0
    assert sum(proxy.requests.values()) > proxy.most_in_flight >= 4
    # Each of the 7 entries has one request in flight at a time, so a pool that opens a connection only
    # when none stands idle opens at most 7, however the requests interleave (the proxy's own count of
    # requests in flight lags the client's on a busy machine: it is no bound); one per request is 12.
    assert proxy.connections <= 7 < sum(proxy.requests.values())


def test_per_registry_concurrency_limit(project: Project, proxy: Proxy) -> None:
    proxy.intercept = lambda method, path: 0.02
    project.write(f'[registries."{proxy.host}"]\nconcurrency = 1\n' + many_images(proxy.host))
    assert project.run("lock").exit_code == 0
    assert proxy.most_in_flight == 1


def test_no_progress_output_when_stderr_is_not_a_terminal(project: Project, registry: Registry) -> None:
    project.write(many_images(registry.host))
    result = project.run("lock")
    assert result.exit_code == 0
    assert result.stderr.splitlines() == [f"wrote {project.lock}: 7 image(s), 7 changed"]
