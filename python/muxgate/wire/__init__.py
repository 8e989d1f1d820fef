"""Wire models shared by the data plane and the control plane (msgspec, one per message)."""

from muxgate.wire.errors import ErrorBody, ErrorDetail, error_json
from muxgate.wire.snapshot import (
    PROTOCOLS,
    Account,
    ApiKey,
    Channel,
    Model,
    Price,
    Provider,
    RoutingSnapshot,
    Settings,
    Timeouts,
)
from muxgate.wire.usage import UsageEvent

__all__ = [
    "PROTOCOLS",
    "Account",
    "ApiKey",
    "Channel",
    "ErrorBody",
    "ErrorDetail",
    "Model",
    "Price",
    "Provider",
    "RoutingSnapshot",
    "Settings",
    "Timeouts",
    "UsageEvent",
    "error_json",
]
