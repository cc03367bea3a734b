"""The Redis limiter as production runs it: one round trip per authorize, and the same script on a
real 3-node Redis Cluster (every key of a call under the organization's hash tag)."""

from __future__ import annotations

import random
import secrets
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
from redis.connection import Connection

from billing.limiter import Correction, Limits, authorization_parse, get_limiter
from billing.limiter_redis import RedisRateLimiter
from billing.tests.factories import fund, make_api_key

REDIS_SERVER = shutil.which("redis-server")
REDIS_CLI = shutil.which("redis-cli")


@pytest.fixture
def round_trips(monkeypatch) -> list[bytes]:
    """Every request this process sends to any Redis (the limiter's and Django's cache alike)."""
    sent: list[bytes] = []
    original = Connection.send_packed_command

    def counting(self, command, check_health=True):
        sent.append(command if isinstance(command, bytes) else b"".join(command))
        return original(self, command, check_health)

    monkeypatch.setattr(Connection, "send_packed_command", counting)
    return sent


@pytest.mark.django_db
def test_one_redis_round_trip_per_authorize(gateway, round_trips, settings):
    assert settings.REDIS_URL, "this test needs REDIS_URL"
    raw, key = make_api_key()
    fund(key.organization, "50")
    assert gateway.authorize(raw).status_code == 200  # loads the script into Redis once
    round_trips.clear()
    for _ in range(20):
        assert gateway.authorize(raw, estimate=10).status_code == 200
    assert len(round_trips) == 20
    assert all(b"EVALSHA" in command for command in round_trips)


def _free_cluster_port(used: set[int]) -> int:
    """A port that is free and whose cluster bus port (+10000) is free too."""
    for _ in range(200):
        port = random.randint(20_000, 30_000)
        if port in used:
            continue
        try:
            for candidate in (port, port + 10_000):
                with socket.socket() as sock:
                    sock.bind(("127.0.0.1", candidate))
        except OSError:
            continue
        return port
    raise RuntimeError("no free port pair")


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[list[int]]:
    if REDIS_SERVER is None or REDIS_CLI is None:
        pytest.skip("redis-server / redis-cli are not installed: the Redis Cluster test cannot start a cluster")
    root: Path = tmp_path_factory.mktemp("redis-cluster")
    ports: list[int] = []
    processes: list[subprocess.Popen[bytes]] = []
    try:
        for _ in range(3):
            port = _free_cluster_port(set(ports))
            ports.append(port)
            node = root / str(port)
            node.mkdir()
            processes.append(subprocess.Popen(  # noqa: S603 -- our own arguments
                [REDIS_SERVER, "--port", str(port), "--bind", "127.0.0.1", "--cluster-enabled", "yes",
                 "--cluster-config-file", str(node / "nodes.conf"), "--dir", str(node), "--save", "",
                 "--appendonly", "no", "--protected-mode", "no"],
                stdout=(node / "out.log").open("wb"), stderr=subprocess.STDOUT,
            ))
        for port in ports:
            _wait(lambda port=port: redis.Redis(port=port).ping(), f"node {port} did not start")
        created = subprocess.run(  # noqa: S603
            [REDIS_CLI, "--cluster", "create", *[f"127.0.0.1:{p}" for p in ports], "--cluster-replicas", "0",
             "--cluster-yes"], capture_output=True, timeout=60, check=False,
        )
        if created.returncode != 0:
            pytest.skip(f"the Redis Cluster could not be created: {created.stdout.decode()[-500:]}")
        for port in ports:
            _wait(lambda port=port: b"cluster_state:ok" in redis.Redis(port=port).execute_command(
                "CLUSTER", "INFO"), "the cluster did not reach cluster_state:ok")
        yield ports
    except (OSError, RuntimeError) as exc:
        pytest.skip(f"the Redis Cluster could not start: {exc}")
    finally:
        for process in processes:
            process.terminate()
        for process in processes:
            process.wait(timeout=10)


def _wait(check, message: str, timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if check():
                return
        except redis.RedisError:
            pass
        time.sleep(0.1)
    pytest.skip(message)


def test_the_script_runs_unchanged_on_a_redis_cluster(cluster, settings):
    settings.CONSOLE_CONCURRENCY_LEASE_SECONDS = 600
    limiter = RedisRateLimiter(f"redis://127.0.0.1:{cluster[0]}/0", cluster=True)
    limits = Limits(concurrency=3, org_rpm=100, org_tpm=5000, org_tpd=None, project_rpm=None, project_tpm=5000)
    # Two organizations whose hash tag lands on each node (random ids, drawn until every node has two:
    # twelve ids drawn blindly missed a node about once in forty runs).
    orgs_by_node: dict[int, list[str]] = {port: [] for port in cluster}
    for _ in range(1000):
        org = f"org-{secrets.token_hex(8)}"
        node = orgs_by_node[limiter.client.get_node_from_key("{" + org + "}").port]
        if len(node) < 2:
            node.append(org)
        if all(len(orgs) == 2 for orgs in orgs_by_node.values()):
            break
    assert all(len(orgs) == 2 for orgs in orgs_by_node.values()), orgs_by_node
    for org in (org for orgs in orgs_by_node.values() for org in orgs):
        project = f"proj_{secrets.token_hex(8)}"
        decisions = [limiter.consume(organization_id=org, project_id=project, limits=limits, tokens=1000)
                     for _ in range(4)]
        assert [d.allowed for d in decisions] == [True, True, True, False]
        assert decisions[-1].limit == "concurrency"
        first = authorization_parse(decisions[0].authorization_id)
        # Two events of the first call (400 tokens each): its estimate is given back once (the
        # marker key shares the organization's slot, or the script would fail with CROSSSLOT).
        chunk = Correction(org, project, first.minute, 400, lease=first.nonce, estimate=first.tokens)
        limiter.correct([chunk])
        limiter.correct([chunk])
        second = authorization_parse(decisions[1].authorization_id)
        limiter.release(organization_id=org, leases=[second.nonce])
        usage = limiter.usage(organization_id=org, project_id=project)
        assert (usage.concurrency, usage.org_tokens, usage.project_tokens, usage.org_requests) == (1, 2800, 2800, 3)
        # The keys really live on that node: its own keyspace holds the organization's tag.
        node = limiter.client.get_node_from_key("{" + org + "}")
        assert redis.Redis(port=node.port).keys("rl:{" + org + "}:*")


def test_the_console_uses_the_cluster_when_told(cluster, settings):
    settings.REDIS_URL = f"redis://127.0.0.1:{cluster[1]}/0"
    settings.CONSOLE_REDIS_CLUSTER = True
    limiter = get_limiter()
    assert isinstance(limiter, RedisRateLimiter) and limiter.cluster
    assert limiter.ping()
