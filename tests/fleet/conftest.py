"""Real PostgreSQL and Redis servers for the fleet tests (skipped without the binaries, unless
NPCRT_REQUIRE_SERVICES=1: CI installs them)."""

from __future__ import annotations

import os

import pytest

from tests.helpers.fleet import find_nginx
from tests.helpers.postgres import PostgresServer, find_pg_bin
from tests.helpers.redis_server import RedisServer, find_redis


def _need(what: str, present: bool) -> None:
    if present:
        return
    if os.environ.get("NPCRT_REQUIRE_SERVICES") == "1":
        pytest.fail(f"NPCRT_REQUIRE_SERVICES=1 but {what} is not installed (apt-get install {what})")
    pytest.skip(f"{what} is not installed (apt-get install {what})")


@pytest.fixture(scope="session")
def postgres():
    _need("postgresql", find_pg_bin() is not None)
    server = PostgresServer(find_pg_bin()).start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def redis_server():
    _need("redis-server", find_redis() is not None)
    server = RedisServer().start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def nginx():
    _need("nginx", find_nginx() is not None)
    return find_nginx()
