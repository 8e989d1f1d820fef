"""Field types shared by the API schemas: constrained so the OpenAPI document states the
limits and request decoding enforces them (a violation is a 400 naming the field)."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Annotated, Any

from litestar.openapi.spec import OpenAPIType, Schema
from litestar.plugins import OpenAPISchemaPlugin
from litestar.typing import FieldDefinition
from msgspec import Meta

from muxgate.store import Invalid
from muxgate.store.money import nano_to_usd, usd_to_nano

if TYPE_CHECKING:
    from litestar._openapi.schema_generation import SchemaCreator

# No NUL: PostgreSQL text cannot hold it.
_PLAIN = r"^[^\x00]*$"
_SEGMENT = r"[A-Za-z0-9][A-Za-z0-9._:@+-]*"

Id = Annotated[
    str,
    Meta(
        min_length=1,
        max_length=128,
        pattern=r"^[A-Za-z0-9][A-Za-z0-9._:@-]*$",
        description="Letters, digits and . _ : @ - ; starts with a letter or digit",
    ),
]
Slug = Annotated[
    str,
    Meta(
        min_length=1,
        max_length=200,
        pattern=rf"^{_SEGMENT}(/{_SEGMENT})*$",
        description="A model name such as `openai/gpt-4o-mini`",
    ),
]
ModelPattern = Annotated[
    str,
    Meta(
        min_length=1,
        max_length=200,
        pattern=rf"^(\*|{_SEGMENT}(/{_SEGMENT})*/?\*?)$",
        description="A model slug, or a prefix ending in `*` (`openai/*`, `*`)",
    ),
]
FallbackModel = Annotated[
    str,
    Meta(
        min_length=1,
        max_length=400,
        pattern=r"^[^\x00\s]+$",
        description="A model slug or alias, optionally with `:provider` (a provider or channel "
        "of that model): `google/gemini-2.5-flash`, `anthropic/claude-sonnet-4.5:bedrock`",
    ),
]
Name = Annotated[str, Meta(max_length=200, pattern=_PLAIN)]
Description = Annotated[str, Meta(max_length=500, pattern=_PLAIN)]
Note = Annotated[str, Meta(max_length=1000, pattern=_PLAIN)]
Usd = Annotated[
    str,
    Meta(pattern=r"^-?[0-9]{1,9}(\.[0-9]{1,9})?$", description="USD as a decimal string"),
]
UsdNonNegative = Annotated[
    str,
    Meta(pattern=r"^[0-9]{1,9}(\.[0-9]{1,9})?$", description="USD as a decimal string, >= 0"),
]
Timestamp = Annotated[datetime, Meta(tz=True, description="RFC 3339 with a UTC offset")]


def utc(value: datetime | None, field: str) -> datetime | None:
    """An aware datetime in UTC; one the store cannot represent is refused, not a crash."""
    if value is None:
        return None
    try:
        converted = value.astimezone(UTC)
    except OverflowError as exc:
        raise Invalid("out of range", field) from exc
    if not 1970 <= converted.year <= 9999:
        raise Invalid("year must be between 1970 and 9999", field)
    return converted


def nano(value: str | None, field: str) -> int | None:
    return None if value is None else usd_to_nano(value, field)


def usd(value: int | None) -> str | None:
    return None if value is None else nano_to_usd(value)


class DecimalsAreNumbers(OpenAPISchemaPlugin):
    """Documents `Decimal` as a JSON number: the account APIs write amounts as exact decimal
    numbers (ZenMux's format), where Litestar would document a string."""

    @staticmethod
    def is_plugin_supported_type(value: Any) -> bool:
        return value is Decimal

    def to_openapi_schema(
        self, field_definition: FieldDefinition, schema_creator: SchemaCreator
    ) -> Schema:
        return Schema(type=OpenAPIType.NUMBER, description="USD, an exact decimal number")
