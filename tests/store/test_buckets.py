"""Bucket labels are computed by the database: both dialects must label a moment alike."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest
from sqlalchemy import literal, select

from muxgate.store import Store
from muxgate.store import tables as t
from muxgate.store.buckets import Width, utc_bucket

# 01:30 at UTC-5 is 06:30 UTC; 00:30 at UTC+2 is 22:30 UTC the day before.
EAST = timezone(timedelta(hours=2))
WEST = timezone(timedelta(hours=-5))


@pytest.mark.parametrize(
    ("moment", "width", "label"),
    [
        (datetime(2026, 11, 23, 1, 30, tzinfo=WEST), "1h", "2026-11-23T06:00:00Z"),
        (datetime(2026, 11, 23, 1, 30, tzinfo=WEST), "1d", "2026-11-23"),
        (datetime(2026, 11, 24, 0, 30, tzinfo=EAST), "1h", "2026-11-23T22:00:00Z"),
        (datetime(2026, 11, 24, 0, 30, tzinfo=EAST), "1d", "2026-11-23"),
    ],
)
async def test_a_moment_falls_in_its_utc_hour_and_day(
    store: Store, moment: datetime, width: Width, label: str
) -> None:
    bucket = utc_bucket(store.dialect, literal(moment, t.UtcDateTime()), width)
    async with store.read() as conn:
        assert (await conn.execute(select(bucket))).scalar_one() == label
