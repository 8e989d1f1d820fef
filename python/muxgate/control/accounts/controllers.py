"""Accounts, their balances and their ledger."""

from __future__ import annotations

from litestar import Controller, delete, get, patch, post
from litestar.di import NamedDependency
from litestar.params import FromPath, JSONBody

from muxgate.control.accounts.schemas import (
    Account,
    AccountCreate,
    AccountUpdate,
    LedgerCursor,
    LedgerEntry,
    LedgerEntryCreate,
    LedgerLimit,
)
from muxgate.control.deps import RoutingChanged
from muxgate.control.errors import responses
from muxgate.control.fields import utc
from muxgate.store import Store, accounts, ledger
from muxgate.store.money import usd_to_nano


class AccountController(Controller):
    path = "/accounts"
    tags = ("accounts",)

    @get("/", responses=responses())
    async def list_accounts(self, store: NamedDependency[Store]) -> list[Account]:
        return [Account.of(a) for a in await accounts.list_accounts(store)]

    @post("/", responses=responses(409, 422))
    async def create_account(
        self,
        store: NamedDependency[Store],
        changed: NamedDependency[RoutingChanged],
        data: JSONBody[AccountCreate],
    ) -> Account:
        """A new account; it receives the trial credit the settings define. A default fallback
        must name an existing model (422 otherwise)."""
        record = await accounts.create_account(
            store,
            data.id,
            name=data.name,
            blocked=data.blocked,
            default_fallback=data.default_fallback,
        )
        await changed()
        return Account.of(record)

    @get("/{account_id:str}", responses=responses(404))
    async def get_account(
        self, store: NamedDependency[Store], account_id: FromPath[str]
    ) -> Account:
        return Account.of(await accounts.get_account(store, account_id))

    @patch("/{account_id:str}", responses=responses(404, 422))
    async def update_account(
        self,
        store: NamedDependency[Store],
        changed: NamedDependency[RoutingChanged],
        account_id: FromPath[str],
        data: JSONBody[AccountUpdate],
    ) -> Account:
        record = await accounts.update_account(
            store,
            account_id,
            name=data.name,
            blocked=data.blocked,
            retain_content=data.retain_content,
            default_fallback=data.default_fallback,
        )
        await changed()
        return Account.of(record)

    @delete("/{account_id:str}", responses=responses(404, 409))
    async def delete_account(
        self,
        store: NamedDependency[Store],
        changed: NamedDependency[RoutingChanged],
        account_id: FromPath[str],
    ) -> None:
        """Only an account without keys or ledger entries, and that no rate-limit policy names,
        can be deleted; block others."""
        await accounts.delete_account(store, account_id)
        await changed()

    @get("/{account_id:str}/ledger", responses=responses(404))
    async def list_ledger(
        self,
        store: NamedDependency[Store],
        account_id: FromPath[str],
        limit: LedgerLimit = 100,
        before: LedgerCursor = None,
    ) -> list[LedgerEntry]:
        """Newest first; `before` pages to entries with an id below it."""
        entries = await ledger.list_entries(store, account_id, limit=limit, before_id=before)
        return [LedgerEntry.of(e) for e in entries]

    @post("/{account_id:str}/ledger", responses=responses(404, 422))
    async def add_ledger_entry(
        self,
        store: NamedDependency[Store],
        changed: NamedDependency[RoutingChanged],
        account_id: FromPath[str],
        data: JSONBody[LedgerEntryCreate],
    ) -> LedgerEntry:
        """Top up, refund or adjust; a balance above zero again unblocks the account."""
        entry = await ledger.add_entry(
            store,
            account_id,
            data.kind,
            usd_to_nano(data.amount, "amount"),
            bucket=data.bucket,
            expires_at=utc(data.expires_at, "expires_at"),
            note=data.note,
        )
        await changed()
        return LedgerEntry.of(entry)
