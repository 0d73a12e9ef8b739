"""Page queries in a stable order (``last_updated``, then the key) with the total count of the
filtered set, for every OCPI list endpoint.

One statement per page: the rows and, as an uncorrelated scalar subquery (evaluated once), the
count of the filtered set; a second statement counts only when the page is empty (an offset at
or past the end). ``DocumentPages`` (the stored OCPI documents of the list endpoints) builds its
statements once per filter combination and runs them as prepared reads (``Database.fetch``:
no ORM, no session); ``fetch_page`` pages through mapped entities with the ORM, the count
first."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any, TypeVar

from sqlalchemy import bindparam, func
from sqlmodel import select
from sqlmodel.ext.asyncio.session import AsyncSession
from sqlmodel.sql.expression import SelectOfScalar

from csms.store.database import Database
from csms.store.prepared import PreparedSelect

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
    """One page of the entities ``stmt`` selects, filtered on ``date_from <= last_updated <
    date_to``, and the number of rows the filter matches."""
    if date_from is not None:
        stmt = stmt.where(last_updated >= date_from)
    if date_to is not None:
        stmt = stmt.where(last_updated < date_to)
    count = select(func.count()).select_from(stmt.subquery("filtered"))
    ordered = stmt.order_by(last_updated, key).offset(offset).limit(limit)
    total = (await session.exec(count)).one()
    return (await session.exec(ordered)).all(), int(total)


class DocumentPages:
    """Pages of one column (a stored OCPI document) of the rows ``where`` selects, ordered by
    ``last_updated`` then ``key``. ``where`` may hold ``bindparam``s, given to ``page`` by
    name; ``date_from``/``date_to`` filter on ``last_updated`` (from inclusive, to
    exclusive)."""

    def __init__(
        self,
        document: Any,
        *,
        where: Sequence[Any],
        last_updated: Any,
        key: Any,
    ) -> None:
        self._document = document
        self._where = tuple(where)
        self._last_updated = last_updated
        self._key = key
        self._queries: dict[tuple[bool, bool], tuple[PreparedSelect, PreparedSelect]] = {}

    async def page(
        self,
        db: Database,
        *,
        offset: int,
        limit: int,
        date_from: datetime | None,
        date_to: datetime | None,
        **values: Any,
    ) -> tuple[list[Any], int]:
        """The documents of one page and the number of rows the filter matches."""
        page, count = self._prepared(date_from is not None, date_to is not None)
        values.update(offset=offset, limit=limit, date_from=date_from, date_to=date_to)
        found = await db.fetch(page, **values)
        if not found:
            return [], int((await db.fetch(count, **values))[0][0])
        return [row[0] for row in found], int(found[0][-1])

    def _prepared(self, since: bool, until: bool) -> tuple[PreparedSelect, PreparedSelect]:
        found = self._queries.get((since, until))
        if found is None:
            where = list(self._where)
            if since:
                where.append(self._last_updated >= bindparam("date_from"))
            if until:
                where.append(self._last_updated < bindparam("date_to"))
            filtered = select(self._document).where(*where)
            count = select(func.count()).select_from(filtered.subquery("filtered"))
            page = (
                filtered.order_by(self._last_updated, self._key)
                .offset(bindparam("offset"))
                .limit(bindparam("limit"))
                .add_columns(count.scalar_subquery().label("total"))
            )
            found = self._queries[(since, until)] = (PreparedSelect(page), PreparedSelect(count))
        return found
