"""PostgreSQL refuses the control plane for a few seconds: gateways keep serving, usage waits in
the stream until the database is back, and the control plane's background work outlives the
outage (it still republishes when Redis later restarts empty)."""

from __future__ import annotations

import asyncio
import time

import asyncpg

from deployment.conftest import PG_ADMIN, Deploy
from deployment.helpers import converge, load
from waiting import HANG


async def _admin(*statements: str) -> None:
    conn = await asyncpg.connect(PG_ADMIN, timeout=5)
    try:
        for sql in statements:
            await conn.execute(sql)
    finally:
        await conn.close()


def test_control_plane_outlives_a_database_outage(postgres_url: str, deploy: Deploy) -> None:
    d = deploy(database=postgres_url, workers=(1,))
    name = postgres_url.rpartition("/")[2]
    d.admin.catalog(d.mock_url)
    d.admin.account("acme")
    _, secret = d.admin.key("acme")
    converge(d.gateways, secret, (200, None), time.monotonic())

    asyncio.run(
        _admin(
            f'ALTER DATABASE "{name}" WITH ALLOW_CONNECTIONS false',
            f"SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '{name}'",
        )
    )
    try:
        sent = set(load(d.gateways, secret, 20))
        time.sleep(2.5)  # a few ticks of the control plane's watch (1 s) against the outage
    finally:
        asyncio.run(_admin(f'ALTER DATABASE "{name}" WITH ALLOW_CONNECTIONS true'))
    assert not d.store.wait_for(sent, timeout=HANG), "usage from the outage was not recorded"

    d.redis.stop()
    d.redis.start()
    back = time.monotonic()
    late = d.add_gateway(1, healthy=False)
    converge(d.gateways, secret, (200, None), back)
    late.wait_healthy()
    assert "reading the stored routing snapshot failed" in d.control.log()
