"""Property-based runs of every API the control plane serves (the admin API, the account's
management API and its insurance export) against their one OpenAPI document: no input, valid
or not, may produce a 5xx, and every answer must match the documented status, type and body.
Runs are small and derandomized, so each one sends the same requests."""

from __future__ import annotations

import asyncio
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from litestar import Litestar
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from muxgate.control import create_app
from muxgate.store import Store, accounts, catalog, keys

ADMIN_TOKEN = "admin-test-token"
AUTH = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
SECRET_KEY = "hFSN0DgkcDuoDUQRZ1Zk5ZsJ23hDk3n7tVx7vsdLRx8="


async def _seeded(url: str) -> tuple[Store, str]:
    """A store with a few rows, so generated requests also hit existing resources, and the
    secret of its API key."""
    store = await Store.open(url, secret_key=SECRET_KEY)
    await accounts.create_account(store, "acme")
    _, secret = await keys.create_key(store, account_id="acme", key_id="ci", name="ci")
    await catalog.create_provider(store, "openai", base_url="https://api.openai.com/v1")
    await catalog.create_model(store, "openai/gpt-4o-mini", aliases=["gpt-4o-mini"])
    await catalog.create_channel(
        store, "direct", model_slug="openai/gpt-4o-mini", provider_id="openai", upstream_model="x"
    )
    # The app runs on the schemathesis event loop: it opens its own connections there.
    await store.engine.dispose()
    return store, secret


def _admin_app() -> tuple[Litestar, tempfile.TemporaryDirectory[str], str]:
    # Built at import: schemathesis parametrizes the test from the schema at collection time.
    workdir = tempfile.TemporaryDirectory(prefix="muxgate-schemathesis-")
    store, secret = asyncio.run(_seeded(f"sqlite:///{Path(workdir.name) / 'admin.db'}"))

    async def ignore() -> None:
        return None

    return create_app(store, admin_token=ADMIN_TOKEN, on_change=ignore), workdir, secret


APP, WORKDIR, KEY_SECRET = _admin_app()
schema = schemathesis.openapi.from_asgi("/admin/v1/schema/openapi.json", APP)


@pytest.fixture(scope="module", autouse=True)
def _remove_workdir() -> Iterator[None]:
    yield
    WORKDIR.cleanup()


CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
]
# Small and repeatable: the same few examples of every operation on every run.
BOUNDED = settings(
    max_examples=10,
    derandomize=True,
    deadline=None,
    database=None,
    suppress_health_check=list(HealthCheck),
)


@schema.include(path_regex=r"^/admin/").parametrize()
@BOUNDED
def test_admin_api_conforms_to_its_schema(case: schemathesis.Case) -> None:
    case.call_and_validate(headers=AUTH, checks=CHECKS)


@schema.include(path_regex=r"^/api/v1/management/").parametrize()
@BOUNDED
def test_management_api_conforms_to_its_schema(case: schemathesis.Case) -> None:
    case.call_and_validate(headers={"Authorization": f"Bearer {KEY_SECRET}"}, checks=CHECKS)


@schema.include(path_regex=r"^/api/v1/insurance/").parametrize()
@BOUNDED
def test_insurance_api_conforms_to_its_schema(case: schemathesis.Case) -> None:
    case.call_and_validate(headers={"Authorization": f"Bearer {KEY_SECRET}"}, checks=CHECKS)
