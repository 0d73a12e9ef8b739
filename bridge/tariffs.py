"""The operator's Tariffs (reference 3.4): described in the site file's ``[[tariffs]]``
tables, stored as OCPI JSON, served by the tariffs SENDER and PUT to every partner with a
tariffs RECEIVER through the outbox (on change, and all of them when a partner registers).

A ``[[tariffs]]`` table is an OCPI Tariff without ``country_code``, ``party_id`` and
``last_updated``, which the bridge sets; ``last_updated`` moves only when the tariff changes.
Connectors reference tariffs by id (``tariff_ids``); a session freezes the tariff valid at its
start.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Collection, Mapping, Sequence
from datetime import datetime
from typing import Any
from urllib.parse import quote

from pydantic import ValidationError
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from bridge.identity import CpoIdentity
from bridge.inventory import InventoryError
from bridge.locations import ORIGIN_SITE, ApplyReport
from bridge.ocpi.models import InterfaceRole, ModuleID, validation_details
from bridge.ocpi.tariffs import Tariff
from bridge.partners import Partner
from bridge.push.outbox import FullObject, PushRequest
from bridge.store.database import Database
from bridge.store.outbox import enqueue
from bridge.store.pagination import DocumentPages
from bridge.store.tables import TariffRow

log = logging.getLogger(__name__)

_TARIFFS = DocumentPages(
    col(TariffRow.document),
    where=[],
    last_updated=col(TariffRow.last_updated),
    key=col(TariffRow.key),
)

FALLBACK_PREFIX = "tariffs"
_SET_BY_BRIDGE = ("country_code", "party_id", "last_updated")


class TariffError(InventoryError):
    """Tariffs that cannot be stored, or unknown tariff ids on connectors: every problem, one
    message each (reported like any other problem of the site's inventory)."""


def parse_tariffs(
    entries: Sequence[Mapping[str, Any]],
    source: str,
    *,
    country_code: str,
    party_id: str,
    now: datetime,
) -> list[Tariff]:
    """The site's ``[[tariffs]]`` as Tariffs of this CPO; ``TariffError`` lists every problem
    (with the entry and field) when any entry is invalid."""
    tariffs: list[Tariff] = []
    problems: list[str] = []
    seen: set[str] = set()
    for index, entry in enumerate(entries):
        where = f"{source}: tariffs[{index}]"
        given = [key for key in _SET_BY_BRIDGE if key in entry]
        if given:
            problems.append(f"{where}: {', '.join(given)} are set by the bridge, remove them")
            continue
        try:
            tariff = Tariff.model_validate(
                {**entry, "country_code": country_code, "party_id": party_id, "last_updated": now}
            )
        except ValidationError as exc:
            problems.append(f"{where}: {validation_details(exc)}")
            continue
        if tariff.id.upper() in seen:
            problems.append(f"{where}.id: duplicate tariff id {tariff.id!r}")
            continue
        seen.add(tariff.id.upper())
        tariffs.append(tariff)
    if problems:
        raise TariffError(problems)
    return tariffs


def _content(tariff: Tariff) -> dict[str, Any]:
    data: dict[str, Any] = tariff.model_dump(mode="json", exclude_none=True)
    data.pop("last_updated", None)
    return data


def _path(tariff: Tariff) -> str:
    return "/".join(quote(p, safe="") for p in (tariff.country_code, tariff.party_id, tariff.id))


async def tariffs_by_ids(session: AsyncSession, ids: Sequence[str]) -> list[Tariff]:
    """The stored tariffs with these ids (CiStrings), in the order of ``ids``."""
    keys = [i.upper() for i in ids]
    rows = (await session.exec(select(TariffRow).where(col(TariffRow.key).in_(keys)))).all()
    by_key = {row.key: Tariff.model_validate_json(row.document) for row in rows}
    return [by_key[key] for key in keys if key in by_key]


class TariffService:
    def __init__(
        self,
        db: Database,
        *,
        partners: Callable[[], Any],
        identity: Callable[[], CpoIdentity],
        on_enqueued: Callable[[], None],
        clock: Callable[[], datetime],
    ) -> None:
        self._db = db
        self._partners = partners
        self._identity = identity
        self._on_enqueued = on_enqueued
        self._clock = clock

    def parse(self, entries: Sequence[Mapping[str, Any]], source: str) -> list[Tariff]:
        identity = self._identity()
        return parse_tariffs(
            entries,
            source,
            country_code=identity.country_code,
            party_id=identity.party_id,
            now=self._clock(),
        )

    async def known_ids(self) -> set[str]:
        async with self._db.read() as session:
            return set((await session.exec(select(TariffRow.key))).all())

    async def origins(self) -> dict[str, str]:
        """Every stored tariff's key (upper-cased id) and where it was described."""
        async with self._db.read() as session:
            rows = (await session.exec(select(TariffRow.key, TariffRow.origin))).all()
        return dict(rows)

    async def apply(
        self,
        tariffs: Sequence[Tariff],
        *,
        origin: str = ORIGIN_SITE,
        remove: Collection[str] = (),
    ) -> ApplyReport:
        """Store new and changed tariffs (an unchanged one keeps its ``last_updated``), delete
        the ``remove`` ids, and queue a PUT or DELETE of each to every partner with a tariffs
        RECEIVER, all in one transaction. The caller checks that no connector still refers to
        a removed tariff (sessions keep a copy of theirs)."""
        report = ApplyReport()
        receivers = await self._receivers()
        async with self._db.transaction() as uow:
            requests: list[PushRequest] = []
            for tariff in tariffs:
                row = await uow.session.get(TariffRow, tariff.id.upper())
                if row is not None and _content(
                    Tariff.model_validate_json(row.document)
                ) == _content(tariff):
                    report.unchanged.append(tariff.id)
                    row.origin = origin
                    uow.session.add(row)
                    continue
                (report.updated if row is not None else report.created).append(tariff.id)
                row = row or TariffRow(
                    key=tariff.id.upper(),
                    origin=origin,
                    last_updated=tariff.last_updated,
                    document="",
                )
                row.origin = origin
                row.last_updated = tariff.last_updated
                row.document = tariff.model_dump_json(exclude_none=True)
                uow.session.add(row)
                requests += [self._put(partner, tariff) for partner in receivers]
            for key in sorted({k.upper() for k in remove}):
                row = await uow.session.get(TariffRow, key)
                if row is None:
                    continue
                gone = Tariff.model_validate_json(row.document)
                await uow.session.delete(row)
                report.removed.append(gone.id)
                requests += [self._delete(partner, gone) for partner in receivers]
            await enqueue(uow.session, requests, now=self._clock(), coalesce=False)
            report.pushes = len(requests)
        if report.pushes:
            self._on_enqueued()
        return report

    async def send_all(self, partner: Partner) -> int:
        """Queue a PUT of every tariff to ``partner`` (after it registered)."""
        if not (
            partner.registered and partner.endpoint_url(ModuleID.TARIFFS, InterfaceRole.RECEIVER)
        ):
            return 0
        async with self._db.transaction() as uow:
            rows = (await uow.session.exec(select(TariffRow))).all()
            requests = [
                self._put(partner, Tariff.model_validate_json(row.document)) for row in rows
            ]
            await enqueue(uow.session, requests, now=self._clock(), coalesce=False)
        if requests:
            self._on_enqueued()
        log.info("queued %d Tariff(s) for OCPI partner %d", len(requests), partner.id)
        return len(requests)

    async def page(
        self, *, offset: int, limit: int, date_from: datetime | None, date_to: datetime | None
    ) -> tuple[list[str], int]:
        return await _TARIFFS.page(
            self._db, offset=offset, limit=limit, date_from=date_from, date_to=date_to
        )

    async def all_tariffs(self) -> list[Tariff]:
        async with self._db.read() as session:
            rows = (await session.exec(select(TariffRow).order_by(col(TariffRow.key)))).all()
        return [Tariff.model_validate_json(row.document) for row in rows]

    async def full_object(self, session: AsyncSession, key: str) -> FullObject | None:
        row = await session.get(TariffRow, key.partition(":")[2].upper())
        if row is None:
            return None
        tariff = Tariff.model_validate_json(row.document)
        return FullObject(path=_path(tariff), body=json.loads(row.document))

    async def _receivers(self) -> list[Partner]:
        partners: list[Partner] = await self._partners()
        return [
            p
            for p in partners
            if p.registered and p.endpoint_url(ModuleID.TARIFFS, InterfaceRole.RECEIVER)
        ]

    @staticmethod
    def _delete(partner: Partner, tariff: Tariff) -> PushRequest:
        return PushRequest(
            partner_id=partner.id,
            module=ModuleID.TARIFFS,
            method="DELETE",
            path=_path(tariff),
            body={},
            ordering_key=f"tariffs/{tariff.id.upper()}",
        )

    @staticmethod
    def _put(partner: Partner, tariff: Tariff) -> PushRequest:
        return PushRequest(
            partner_id=partner.id,
            module=ModuleID.TARIFFS,
            method="PUT",
            path=_path(tariff),
            body=tariff.model_dump(mode="json", exclude_none=True),
            ordering_key=f"tariffs/{tariff.id.upper()}",
            fallback=f"{FALLBACK_PREFIX}:{tariff.id.upper()}",
        )
