"""Page queries in a stable order (``last_updated``, then the key) with the total count of the
filtered set, for every OCPI list endpoint.

One statement per page: the rows and, as an uncorrelated scalar subquery (evaluated once), the
count of the filtered set; a second statement counts only when the page is empty (an offset at
or past the end). Selects of plain columns (the stored OCPI documents) run on the session's
connection without the ORM's result processing; selects of entities go through the ORM, the
count first."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any, TypeVar, cast

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
    count = select(func.count()).select_from(stmt.subquery())
    ordered = stmt.order_by(last_updated, key).offset(offset).limit(limit)
    if _selects_entities(stmt):
        total = (await session.exec(count)).one()
        return (await session.exec(ordered)).all(), int(total)
    page = ordered.add_columns(count.scalar_subquery().label("total"))
    found = (await (await session.connection()).execute(page)).all()
    if not found:
        return [], int((await session.exec(count)).one())
    return [cast(T, row[0]) for row in found], int(found[0][-1])


def _selects_entities(stmt: SelectOfScalar[Any]) -> bool:
    """Whether ``stmt`` selects mapped classes (rows become objects through the ORM)."""
    return any(isinstance(d["expr"], type) for d in stmt.column_descriptions)
