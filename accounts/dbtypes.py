"""Column types shared by the models and the migrations.

Kept apart from :mod:`accounts.models` so migrations can import them without
importing the (changing) models.

* :class:`UTCDateTime` stores UTC and always hands back *aware* UTC datetimes,
  also on SQLite, which has no time-zone support.
* :class:`Money` is an exact decimal with two places: ``NUMERIC(18, 2)`` on
  PostgreSQL and an integer count of hundredths on SQLite (SQLite has no exact
  decimal type; integers keep SQL comparisons and sums exact).
* :data:`JSONType` is JSON, stored as ``JSONB`` on PostgreSQL.
"""

from __future__ import annotations

from datetime import datetime, timezone
from decimal import ROUND_HALF_EVEN, Decimal
from typing import Any, Optional

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.types import TypeDecorator

MONEY_SCALE = 2
_QUANT = Decimal(1).scaleb(-MONEY_SCALE)
_FACTOR = 10**MONEY_SCALE

JSONType = sa.JSON().with_variant(JSONB(), "postgresql")


class UTCDateTime(TypeDecorator):
    """Timestamp that refuses naive datetimes and returns aware UTC ones."""

    impl = sa.DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: Optional[datetime], dialect: Any) -> Optional[datetime]:
        """Convert an aware datetime to UTC (naive UTC on SQLite)."""
        if value is None:
            return None
        if value.tzinfo is None or value.utcoffset() is None:
            raise ValueError(f"naive datetime {value!r}; pass an aware UTC datetime")
        value = value.astimezone(timezone.utc)
        if dialect.name == "sqlite":
            return value.replace(tzinfo=None)
        return value

    def process_result_value(self, value: Optional[datetime], dialect: Any) -> Optional[datetime]:
        """Return the stored value as an aware UTC datetime."""
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=timezone.utc)
        return value.astimezone(timezone.utc)


def to_money(value: Any) -> Decimal:
    """Return ``value`` as a Decimal rounded to the money scale.

    Args:
        value: A Decimal, int or numeric string (floats are refused).

    Returns:
        The quantized Decimal.
    """
    if isinstance(value, float):
        raise TypeError("use Decimal or str for money, not float")
    return Decimal(value).quantize(_QUANT, rounding=ROUND_HALF_EVEN)


class Money(TypeDecorator):
    """Exact amount with two decimal places (see module docstring)."""

    impl = sa.Numeric(18, MONEY_SCALE)
    cache_ok = True

    def load_dialect_impl(self, dialect: Any) -> Any:
        """Use a BIGINT of hundredths on SQLite, NUMERIC elsewhere."""
        if dialect.name == "sqlite":
            return dialect.type_descriptor(sa.BigInteger())
        return dialect.type_descriptor(sa.Numeric(18, MONEY_SCALE, asdecimal=True))

    def process_bind_param(self, value: Any, dialect: Any) -> Any:
        """Quantize; on SQLite convert to an integer number of hundredths."""
        if value is None:
            return None
        amount = to_money(value)
        if dialect.name == "sqlite":
            return int(amount * _FACTOR)
        return amount

    def process_result_value(self, value: Any, dialect: Any) -> Optional[Decimal]:
        """Return a quantized Decimal."""
        if value is None:
            return None
        if dialect.name == "sqlite":
            return (Decimal(int(value)) / _FACTOR).quantize(_QUANT)
        return to_money(value)
