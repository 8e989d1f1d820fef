"""Providers, models and channels. Model slugs contain `/`, so a model is addressed by the
rest of the path (`/models/openai/gpt-4o-mini`)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from litestar import Controller, delete, get, patch, post
from litestar.di import NamedDependency
from litestar.params import FromPath, FromQuery, JSONBody
from msgspec import UnsetType

from muxgate.control.catalog.schemas import (
    Channel,
    ChannelCreate,
    ChannelUpdate,
    Model,
    ModelCreate,
    ModelUpdate,
    Price,
    Provider,
    ProviderCreate,
    ProviderUpdate,
    Timeouts,
)
from muxgate.control.deps import RoutingChanged
from muxgate.control.errors import responses
from muxgate.control.fields import Slug
from muxgate.store import Store, catalog
from muxgate.store.money import usd_to_nano


class ProviderController(Controller):
    path = "/providers"
    tags = ("catalog",)

    @get("/", responses=responses())
    async def list_providers(self, store: NamedDependency[Store]) -> list[Provider]:
        return [Provider.of(p) for p in await catalog.list_providers(store)]

    @post("/", responses=responses(409, 422))
    async def create_provider(
        self,
        store: NamedDependency[Store],
        changed: NamedDependency[RoutingChanged],
        data: JSONBody[ProviderCreate],
    ) -> Provider:
        record = await catalog.create_provider(
            store,
            data.id,
            base_url=data.base_url,
            protocol=data.protocol,
            credential_env=data.credential_env,
            credential=data.credential,
            headers_env=data.headers_env,
            connect_timeout_ms=data.connect_timeout_ms,
        )
        await changed()
        return Provider.of(record)

    @get("/{provider_id:str}", responses=responses(404))
    async def get_provider(
        self, store: NamedDependency[Store], provider_id: FromPath[str]
    ) -> Provider:
        return Provider.of(await catalog.get_provider(store, provider_id))

    @patch("/{provider_id:str}", responses=responses(404, 422))
    async def update_provider(
        self,
        store: NamedDependency[Store],
        changed: NamedDependency[RoutingChanged],
        provider_id: FromPath[str],
        data: JSONBody[ProviderUpdate],
    ) -> Provider:
        record = await catalog.update_provider(
            store,
            provider_id,
            base_url=data.base_url,
            protocol=data.protocol,
            credential_env=data.credential_env,
            credential=data.credential,
            headers_env=data.headers_env,
            connect_timeout_ms=data.connect_timeout_ms,
        )
        await changed()
        return Provider.of(record)

    @delete("/{provider_id:str}", responses=responses(404, 409))
    async def delete_provider(
        self,
        store: NamedDependency[Store],
        changed: NamedDependency[RoutingChanged],
        provider_id: FromPath[str],
    ) -> None:
        await catalog.delete_provider(store, provider_id)
        await changed()


def _slug(path: Path) -> str:
    return str(path).lstrip("/")


def _timeout_fields(timeouts: Timeouts) -> dict[str, Any]:
    return {column: getattr(timeouts, name) for name, column in catalog.TIMEOUT_COLUMNS.items()}


class ModelController(Controller):
    path = "/models"
    tags = ("catalog",)

    @get("/", responses=responses())
    async def list_models(self, store: NamedDependency[Store]) -> list[Model]:
        return [Model.of(m) for m in await catalog.list_models(store)]

    @post("/", responses=responses(409, 422))
    async def create_model(
        self,
        store: NamedDependency[Store],
        changed: NamedDependency[RoutingChanged],
        data: JSONBody[ModelCreate],
    ) -> Model:
        record = await catalog.create_model(
            store,
            data.slug,
            aliases=data.aliases,
            context_length=data.context_length,
            capabilities=data.capabilities,
            max_attempts=data.max_attempts,
            **_timeout_fields(data.timeouts),
        )
        await changed()
        return Model.of(record)

    @get("/{slug:path}", responses=responses(404))
    async def get_model(self, store: NamedDependency[Store], slug: FromPath[Path]) -> Model:
        return Model.of(await catalog.get_model(store, _slug(slug)))

    @patch("/{slug:path}", responses=responses(404, 409, 422))
    async def update_model(
        self,
        store: NamedDependency[Store],
        changed: NamedDependency[RoutingChanged],
        slug: FromPath[Path],
        data: JSONBody[ModelUpdate],
    ) -> Model:
        timeouts = {} if isinstance(data.timeouts, UnsetType) else _timeout_fields(data.timeouts)
        record = await catalog.update_model(
            store,
            _slug(slug),
            aliases=data.aliases,
            context_length=data.context_length,
            capabilities=data.capabilities,
            max_attempts=data.max_attempts,
            **timeouts,
        )
        await changed()
        return Model.of(record)

    @delete("/{slug:path}", responses=responses(404, 409))
    async def delete_model(
        self,
        store: NamedDependency[Store],
        changed: NamedDependency[RoutingChanged],
        slug: FromPath[Path],
    ) -> None:
        """A model with channels cannot be deleted (delete its channels first), nor one that is
        some account's default fallback (409 naming the accounts)."""
        await catalog.delete_model(store, _slug(slug))
        await changed()


def _price_fields(price: Price) -> dict[str, Any]:
    prompt = usd_to_nano(price.prompt, "price.prompt")
    cached = prompt if price.cached is None else usd_to_nano(price.cached, "price.cached")
    return {
        "price_prompt_nano": prompt,
        "price_completion_nano": usd_to_nano(price.completion, "price.completion"),
        "price_cached_nano": cached,
    }


class ChannelController(Controller):
    path = "/channels"
    tags = ("catalog",)

    @get("/", responses=responses())
    async def list_channels(
        self, store: NamedDependency[Store], model: FromQuery[Slug | None] = None
    ) -> list[Channel]:
        return [Channel.of(c) for c in await catalog.list_channels(store, model)]

    @post("/", responses=responses(409, 422))
    async def create_channel(
        self,
        store: NamedDependency[Store],
        changed: NamedDependency[RoutingChanged],
        data: JSONBody[ChannelCreate],
    ) -> Channel:
        record = await catalog.create_channel(
            store,
            data.id,
            model_slug=data.model,
            provider_id=data.provider,
            upstream_model=data.upstream_model,
            weight=data.weight,
            enabled=data.enabled,
            **_price_fields(data.price),
            **_timeout_fields(data.timeouts),
        )
        await changed()
        return Channel.of(record)

    @get("/{channel_id:str}", responses=responses(404))
    async def get_channel(
        self, store: NamedDependency[Store], channel_id: FromPath[str]
    ) -> Channel:
        return Channel.of(await catalog.get_channel(store, channel_id))

    @patch("/{channel_id:str}", responses=responses(404, 409, 422))
    async def update_channel(
        self,
        store: NamedDependency[Store],
        changed: NamedDependency[RoutingChanged],
        channel_id: FromPath[str],
        data: JSONBody[ChannelUpdate],
    ) -> Channel:
        fields: dict[str, Any] = {
            "model_slug": data.model,
            "provider_id": data.provider,
            "upstream_model": data.upstream_model,
            "weight": data.weight,
            "enabled": data.enabled,
        }
        if not isinstance(data.price, UnsetType):
            fields.update(_price_fields(data.price))
        if not isinstance(data.timeouts, UnsetType):
            fields.update(_timeout_fields(data.timeouts))
        record = await catalog.update_channel(store, channel_id, **fields)
        await changed()
        return Channel.of(record)

    @delete("/{channel_id:str}", responses=responses(404, 409))
    async def delete_channel(
        self,
        store: NamedDependency[Store],
        changed: NamedDependency[RoutingChanged],
        channel_id: FromPath[str],
    ) -> None:
        await catalog.delete_channel(store, channel_id)
        await changed()
