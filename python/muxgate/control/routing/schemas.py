"""The account's routing settings as its management API shows them."""

from __future__ import annotations

import msgspec

from muxgate.control.fields import FallbackModel


class RoutingSettings(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    default_fallback: FallbackModel | None
    """The model (`model` or `model:provider`) tried when every channel of a requested model
    failed and the request names no fallback of its own; null for none."""


class RoutingSettingsEnvelope(msgspec.Struct, frozen=True, kw_only=True):
    success: bool = True
    data: RoutingSettings
