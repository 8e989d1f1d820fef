"""USD decimal strings <-> integer nano-USD, through Decimal so no float touches money."""

from __future__ import annotations

from decimal import Decimal, InvalidOperation

from muxgate.store.errors import Invalid

NANO_PER_USD = 1_000_000_000
_NANO = Decimal(NANO_PER_USD)
# Amounts are bounded so any sum of a few million of them still fits a signed 64-bit column.
MAX_NANO = 10**18


def usd_to_nano(value: str, field: str) -> int:
    """Exact conversion; more precision than 1e-9 USD or a huge amount is refused."""
    try:
        amount = Decimal(value.strip())
    except InvalidOperation as exc:
        raise Invalid(f"{value!r} is not a decimal amount of USD", field) from exc
    if not amount.is_finite():
        raise Invalid(f"{value!r} is not a finite amount", field)
    nano = amount * _NANO
    if nano != nano.to_integral_value():
        raise Invalid(f"{value!r} has more precision than 1e-9 USD", field)
    if abs(nano) > MAX_NANO:
        raise Invalid(f"{value!r} is out of range", field)
    return int(nano)


def nano_to_usd(nano: int) -> str:
    """The shortest exact decimal string: 1_500_000_000 -> "1.5", 0 -> "0"."""
    sign = "-" if nano < 0 else ""
    whole, frac = divmod(abs(nano), NANO_PER_USD)
    if not frac:
        return f"{sign}{whole}"
    return f"{sign}{whole}.{frac:09d}".rstrip("0")
