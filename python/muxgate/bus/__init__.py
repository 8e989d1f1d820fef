"""The bus between the control plane and gateway workers (`redis.RedisBus` in production,
`LocalBus` in embedded mode)."""

from muxgate.bus.base import BusUnavailable, DeadLetter, SnapshotBus, UsageBus, UsageEntry
from muxgate.bus.local import LocalBus

__all__ = ["BusUnavailable", "DeadLetter", "LocalBus", "SnapshotBus", "UsageBus", "UsageEntry"]
