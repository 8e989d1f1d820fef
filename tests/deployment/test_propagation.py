"""Admin changes and balance crossings reach every gateway process (how fast is measured by
`bench/control_propagation.py`, a second at most on a quiet machine): key
creation, rotation and revocation, an operator's block, a balance that runs out and the top-up
that ends it."""

from __future__ import annotations

import time

import openai
import pytest

from deployment.conftest import Deploy
from deployment.helpers import chat, converge, error_type, sdk
from waiting import HANG

OK = (200, None)
INVALID_KEY = (401, "invalid_api_key")
NO_CREDIT = (402, "insufficient_credit")


def test_keys_and_blocks_reach_every_gateway(deploy: Deploy) -> None:
    d = deploy(workers=(2, 1))
    d.admin.catalog(d.mock_url)
    d.admin.account("acme")
    gateways = d.gateways

    key_id, secret = d.admin.key("acme")
    created = time.monotonic()
    converge(gateways, secret, OK, created)
    with sdk(gateways[1], secret) as client:
        assert chat(client)

    rotated = d.admin.call("POST", f"/keys/{key_id}/rotate")["secret"]
    since = time.monotonic()
    converge(gateways, secret, INVALID_KEY, since)
    converge(gateways, rotated, OK, since)

    d.admin.revoke(key_id)
    revoked = time.monotonic()
    converge(gateways, rotated, INVALID_KEY, revoked)

    _, other = d.admin.key("acme")
    converge(gateways, other, OK, time.monotonic())
    d.admin.block("acme", True)
    blocked = time.monotonic()
    converge(gateways, other, NO_CREDIT, blocked)
    d.admin.block("acme", False)
    converge(gateways, other, OK, time.monotonic())


def test_exhausted_balance_blocks_everywhere_and_a_top_up_unblocks(deploy: Deploy) -> None:
    d = deploy(workers=(2, 1))
    # A dollar per token: the first request eats the whole trial credit (5 USD).
    d.admin.catalog(d.mock_url, price="1000000")
    d.admin.account("thrifty")
    _, secret = d.admin.key("thrifty")
    gateways = d.gateways
    converge(gateways, secret, OK, time.monotonic())

    with sdk(gateways[0], secret) as client:
        request_id = chat(client)
    deadline = time.monotonic() + HANG
    recorded = None
    while time.monotonic() < deadline:
        charges = [e for e in d.admin.ledger("thrifty") if e["kind"] == "charge"]
        if charges:
            recorded = time.monotonic()
            assert [e["request_id"] for e in charges] == [request_id]
            break
        time.sleep(0.02)
    assert recorded is not None, "the charge was never recorded"
    converge(gateways, secret, NO_CREDIT, recorded)

    account = d.admin.call("GET", "/accounts/thrifty")
    assert account["effectively_blocked"] and account["balance"]["total_nano"] <= 0
    for gateway in gateways:
        with sdk(gateway, secret) as client, pytest.raises(openai.APIStatusError) as refused:
            chat(client)
        assert (refused.value.status_code, error_type(refused.value)) == NO_CREDIT

    d.admin.top_up("thrifty", "1000")
    topped = time.monotonic()
    converge(gateways, secret, OK, topped)
    with sdk(gateways[1], secret) as client:
        assert chat(client)
