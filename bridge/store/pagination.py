"""Page queries in a stable order (``last_updated``, then the key) with the total count of the
filtered set, for every OCPI list endpoint."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any, TypeVar

from sqlalchemy import func
from sqlmodel import select
from sqlmodel.ext.asyncio.session import AsyncSession
from sqlmodel.sql.expression import SelectOfScalar

T = TypeVar("T")


async def fetch_page(
    session: AsyncSession,
    stmt: SelectOfScalar[T],
    *,
    last_updated: Any,
    key: Any,
    offset: int,
    limit: int,
    date_from: datetime | None,
    date_to: datetime | None,
) -> tuple[Sequence[T], int]:
    """One page of ``stmt`` filtered on ``date_from <= last_updated < date_to``, and the number
    of rows the filter matches."""
    if date_from is not None:
        stmt = stmt.where(last_updated >= date_from)
    if date_to is not None:
        stmt = stmt.where(last_updated < date_to)
    total = (await session.exec(select(func.count()).select_from(stmt.subquery()))).one()
    rows = (await session.exec(stmt.order_by(last_updated, key).offset(offset).limit(limit))).all()
    return rows, int(total)
