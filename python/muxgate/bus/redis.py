"""The bus on Redis: versioned routing snapshots behind a pointer that only moves forward, a
pub/sub hint on each move, and the usage stream read through a consumer group."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncGenerator
from typing import Any, cast

import msgspec
import redis.asyncio as aioredis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import RedisError, ResponseError

from muxgate.bus.base import BusUnavailable, DeadLetter, UsageEntry

# KEYS: current pointer, snapshot key, version index. ARGV: version, data, channel, keep.
# Returns {moved, superseded versions...}; the caller expires the superseded snapshots.
PUBLISH_SCRIPT = """
local version = tonumber(ARGV[1])
local current = tonumber(redis.call('GET', KEYS[1]) or '0')
if version <= current then
  return {0}
end
redis.call('SET', KEYS[2], ARGV[2])
redis.call('SET', KEYS[1], ARGV[1])
redis.call('ZADD', KEYS[3], version, ARGV[1])
redis.call('PUBLISH', ARGV[3], ARGV[1])
local keep = tonumber(ARGV[4])
local old = redis.call('ZRANGE', KEYS[3], 0, -(keep + 1))
redis.call('ZREMRANGEBYRANK', KEYS[3], 0, -(keep + 1))
local result = {1}
for _, v in ipairs(old) do
  result[#result + 1] = v
end
return result
"""

# KEYS: usage stream. ARGV: group, entry ids. Acknowledges the ids, then drops the entries every
# group has read and acknowledged: those below the oldest pending entry of each group, or below
# its last delivered one when nothing is pending. Entries are batches of up to ~1 MiB, so a
# consumed stream left to MAXLEN alone would hold gigabytes; unread entries are never dropped.
ACK_SCRIPT = """
redis.call('XACK', KEYS[1], ARGV[1], unpack(ARGV, 2))
local floor = nil
for _, group in ipairs(redis.call('XINFO', 'GROUPS', KEYS[1])) do
  local fields = {}
  for i = 1, #group, 2 do
    fields[group[i]] = group[i + 1]
  end
  local pending = redis.call('XPENDING', KEYS[1], fields['name'])
  local oldest = fields['last-delivered-id']
  if pending[1] > 0 then
    oldest = pending[2]
  end
  local ms, seq = string.match(oldest, '^(%d+)-(%d+)$')
  local key = {tonumber(ms), tonumber(seq)}
  if floor == nil or key[1] < floor[1] or (key[1] == floor[1] and key[2] < floor[2]) then
    floor = key
  end
end
if floor == nil then
  return 0
end
return redis.call('XTRIM', KEYS[1], 'MINID', string.format('%d-%d', floor[1], floor[2]))
"""

_fields = msgspec.json.Encoder()


def _unavailable(exc: RedisError) -> BusUnavailable:
    return BusUnavailable(f"redis: {exc}")


def _first_stream(raw: Any) -> Any:
    """The entries of the one stream read: `{stream: entries}` with the RESP3 response shapes,
    `[[stream, entries]]` with the legacy ones."""
    if not raw:
        return []
    if isinstance(raw, dict):
        return next(iter(raw.values()))
    return raw[0][1]


def _entries(raw: Any) -> list[UsageEntry]:
    """Stream entries as `UsageEntry`; one without a `lines` field keeps all its fields as
    JSON, so it fails decoding visibly instead of vanishing."""
    entries: list[UsageEntry] = []
    for entry_id, fields in raw:
        if fields is None:  # trimmed away while pending
            continue
        lines = fields.get(b"lines")
        if lines is None:
            lines = _fields.encode(
                {k.decode(errors="replace"): v.decode(errors="replace") for k, v in fields.items()}
            )
        entries.append(UsageEntry(id=entry_id.decode(), lines=lines))
    return entries


class RedisBus:
    """Both bus interfaces over one `redis.asyncio` client."""

    def __init__(
        self,
        client: aioredis.Redis,
        *,
        prefix: str = "muxgate",
        keep_versions: int = 5,
        superseded_ttl_s: int = 300,
        usage_maxlen: int = 1_000_000,
        dead_maxlen: int = 100_000,
    ) -> None:
        self.client = client
        self.keep_versions = keep_versions
        self.superseded_ttl_s = superseded_ttl_s
        self.usage_maxlen = usage_maxlen
        self.dead_maxlen = dead_maxlen
        self.current_key = f"{prefix}:routing:current"
        self.versions_key = f"{prefix}:routing:versions"
        self.snapshot_prefix = f"{prefix}:routing:snap:"
        self.channel = f"{prefix}:routing:changed"
        self.usage_key = f"{prefix}:usage"
        self.dead_key = f"{prefix}:usage:dead"
        self._publish = client.register_script(PUBLISH_SCRIPT)
        self._ack = client.register_script(ACK_SCRIPT)

    @classmethod
    def from_url(cls, url: str, **options: Any) -> RedisBus:
        """A client that fails fast (one reconnect attempt): callers own the back-off."""
        client = aioredis.Redis.from_url(
            url, retry=Retry(NoBackoff(), 1), socket_connect_timeout=2, socket_timeout=10
        )
        return cls(client, **options)

    async def aclose(self) -> None:
        await self.client.aclose()

    def snapshot_key(self, version: int) -> str:
        return f"{self.snapshot_prefix}{version}"

    # --- routing snapshots -----------------------------------------------------------------

    async def publish_snapshot(self, version: int, data: bytes) -> bool:
        if version <= 0:
            raise ValueError("snapshot versions start at 1")
        keys = [self.current_key, self.snapshot_key(version), self.versions_key]
        try:
            result = await self._publish(
                keys=keys, args=[version, data, self.channel, self.keep_versions]
            )
            moved, *superseded = cast(list[Any], result)
            if superseded:
                async with self.client.pipeline(transaction=False) as pipe:
                    for old in superseded:
                        pipe.expire(self.snapshot_key(int(old)), self.superseded_ttl_s)
                    await pipe.execute()
        except RedisError as exc:
            raise _unavailable(exc) from exc
        return bool(moved)

    async def current_version(self) -> int | None:
        try:
            value = await self.client.get(self.current_key)
        except RedisError as exc:
            raise _unavailable(exc) from exc
        return int(value) if value is not None else None

    async def fetch_snapshot(self, version: int) -> bytes | None:
        try:
            value = await self.client.get(self.snapshot_key(version))
        except RedisError as exc:
            raise _unavailable(exc) from exc
        return cast(bytes | None, value)

    async def version_hints(self) -> AsyncGenerator[int, None]:
        pubsub = self.client.pubsub()
        try:
            await pubsub.subscribe(self.channel)
            while True:
                message = await pubsub.get_message(timeout=None)
                if message is None:
                    continue
                if message["type"] == "subscribe":
                    # (Re)subscribed: anything published while away was missed.
                    current = await self.current_version()
                    if current is not None:
                        yield current
                elif message["type"] == "message":
                    try:
                        yield int(message["data"])
                    except ValueError:
                        continue
        except RedisError as exc:
            raise _unavailable(exc) from exc
        finally:
            with contextlib.suppress(RedisError):
                await pubsub.aclose()

    async def durability_warning(self) -> str | None:
        """Why usage waiting in the stream would not survive a Redis restart; None when Redis
        persists it, or does not let us look (managed services often disable CONFIG)."""
        try:
            raw: Any = await self.client.config_get("appendonly", "save")
        except RedisError:
            return None
        config = {
            (k.decode() if isinstance(k, bytes) else k): (v.decode() if isinstance(v, bytes) else v)
            for k, v in raw.items()
        }
        if config.get("appendonly") == "yes" or config.get("save"):
            return None
        return (
            "Redis keeps nothing on disk (appendonly no, no save points): usage events not yet "
            "recorded are lost if it restarts; enable appendonly"
        )

    # --- usage stream ------------------------------------------------------------------------

    async def append_usage(self, batch: bytes) -> str:
        try:
            entry_id = await self.client.xadd(
                self.usage_key, {"lines": batch}, maxlen=self.usage_maxlen, approximate=True
            )
        except RedisError as exc:
            raise _unavailable(exc) from exc
        return cast(bytes, entry_id).decode()

    async def ensure_group(self, group: str) -> None:
        """Create the group from the stream's start: entries replayed before the group existed
        (Redis restarted empty, workers replaying spills) are still read."""
        try:
            await self.client.xgroup_create(self.usage_key, group, id="0", mkstream=True)
        except ResponseError as exc:
            if not str(exc).startswith("BUSYGROUP"):
                raise _unavailable(exc) from exc
        except RedisError as exc:
            raise _unavailable(exc) from exc

    async def read_usage(
        self, group: str, consumer: str, count: int, block_ms: int, *, pending: bool = False
    ) -> list[UsageEntry]:
        start = "0" if pending else ">"
        for attempt in range(2):
            try:
                raw: Any = await self.client.xreadgroup(
                    group,
                    consumer,
                    {self.usage_key: start},
                    count=count,
                    block=None if pending else block_ms,
                )
            except ResponseError as exc:
                if attempt == 0 and str(exc).startswith("NOGROUP"):
                    await self.ensure_group(group)
                    continue
                raise _unavailable(exc) from exc
            except RedisError as exc:
                raise _unavailable(exc) from exc
            return _entries(_first_stream(raw))
        return []

    async def ack_usage(self, group: str, ids: list[str]) -> None:
        if not ids:
            return
        try:
            await self._ack(keys=[self.usage_key], args=[group, *ids])
        except RedisError as exc:
            raise _unavailable(exc) from exc

    async def claim_stale_usage(
        self, group: str, consumer: str, min_idle_ms: int, count: int
    ) -> list[UsageEntry]:
        claimed: list[UsageEntry] = []
        cursor = "0-0"
        try:
            while len(claimed) < count:
                result = await self.client.xautoclaim(
                    self.usage_key,
                    group,
                    consumer,
                    min_idle_ms,
                    cursor,
                    count=count - len(claimed),
                )
                claimed.extend(_entries(result[1]))
                cursor = result[0].decode()
                if cursor == "0-0":
                    break
        except ResponseError as exc:
            if str(exc).startswith("NOGROUP"):
                await self.ensure_group(group)
                return claimed
            raise _unavailable(exc) from exc
        except RedisError as exc:
            raise _unavailable(exc) from exc
        return claimed

    async def dead_letter_usage(self, group: str, entry: str, lines: bytes, reason: str) -> None:
        try:
            async with self.client.pipeline(transaction=True) as pipe:
                pipe.xadd(
                    self.dead_key,
                    {"entry": entry, "lines": lines, "reason": reason},
                    maxlen=self.dead_maxlen,
                    approximate=True,
                )
                pipe.xack(self.usage_key, group, entry)
                await pipe.execute()
        except RedisError as exc:
            raise _unavailable(exc) from exc

    async def dead_usage(self, count: int = 100) -> list[DeadLetter]:
        try:
            raw: Any = await self.client.xrange(self.dead_key, count=count)
        except RedisError as exc:
            raise _unavailable(exc) from exc
        return [
            DeadLetter(
                entry=fields[b"entry"].decode(),
                lines=fields[b"lines"],
                reason=fields[b"reason"].decode(errors="replace"),
            )
            for _, fields in raw
        ]
