"""Operator API for the outbox of pushes (``/admin/outbox``), the HTTP twin of
``ocpi-bridge outbox``: list rows (dead letters first of all), count them per partner, requeue
dead letters. Same authentication and envelope as ``bridge.api.admin``."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Query, Response
from pydantic import BaseModel, ConfigDict, Field, model_validator

from bridge.api.admin import Admin
from bridge.api.deps import JsonBody, Platform, parse_object
from bridge.api.responses import ocpi_response
from bridge.errors import NotFound
from bridge.push.outbox import OutboxEntry, OutboxState
from bridge.push.worker import OutboxService

router = APIRouter(prefix="/admin/outbox")


class OutboxRowView(BaseModel):
    id: int
    partner_id: int
    module: str
    method: str
    url: str | None = Field(description="Absolute target URL (command results)")
    path: str | None = Field(description="Path under the partner's RECEIVER endpoint of module")
    ordering_key: str
    state: OutboxState
    attempts: int
    last_error: str | None
    next_attempt_at: datetime
    created_at: datetime
    dead_at: datetime | None

    @classmethod
    def of(cls, entry: OutboxEntry) -> OutboxRowView:
        return cls(
            id=entry.id,
            partner_id=entry.partner_id,
            module=entry.module.value,
            method=entry.method,
            url=entry.url,
            path=entry.path,
            ordering_key=entry.ordering_key,
            state=entry.state,
            attempts=entry.attempts,
            last_error=entry.last_error,
            next_attempt_at=entry.next_attempt_at,
            created_at=entry.created_at,
            dead_at=entry.dead_at,
        )


class PartnerCounts(BaseModel):
    partner_id: int
    pending: int
    dead: int


class OutboxSummary(BaseModel):
    partners: list[PartnerCounts]
    worker: dict[str, int] = Field(description="Counters of the running worker since start")


class Requeue(BaseModel):
    model_config = ConfigDict(extra="forbid")
    ids: list[int] | None = Field(default=None, min_length=1, max_length=10_000)
    partner_id: int | None = None
    all: bool = False

    @model_validator(mode="after")
    def _one_selection(self) -> Requeue:
        if sum((self.ids is not None, self.partner_id is not None, self.all)) != 1:
            raise ValueError('give exactly one of "ids", "partner_id" and "all": true')
        return self


class Requeued(BaseModel):
    requeued: int


def _service(platform: Platform) -> OutboxService:
    if platform.outbox is None:
        raise NotFound("the outbox is not available")
    return platform.outbox


@router.get("")
async def list_outbox(
    _admin: Admin,
    platform: Platform,
    state: OutboxState | None = None,
    partner_id: int | None = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    after_id: Annotated[int, Query(ge=0)] = 0,
) -> Response:
    """Rows in enqueue order; page on with ``after_id`` = the last id seen."""
    entries = await _service(platform).list_entries(
        state=state, partner_id=partner_id, limit=limit, after_id=after_id
    )
    return ocpi_response([OutboxRowView.of(e) for e in entries])


@router.get("/summary")
async def outbox_summary(_admin: Admin, platform: Platform) -> Response:
    service = _service(platform)
    counts = await service.summary()
    summary = OutboxSummary(
        partners=[
            PartnerCounts(partner_id=c.partner_id, pending=c.pending, dead=c.dead) for c in counts
        ],
        worker=service.stats(),
    )
    return ocpi_response(summary)


@router.post("/requeue")
async def requeue_outbox(_admin: Admin, platform: Platform, body: JsonBody) -> Response:
    """Dead letters back in the queue: ``{"ids": [..]}``, ``{"partner_id": n}`` or
    ``{"all": true}``."""
    request = parse_object(Requeue, body)
    count = await _service(platform).requeue(
        ids=request.ids, partner_id=request.partner_id, everything=request.all
    )
    return ocpi_response(Requeued(requeued=count))
