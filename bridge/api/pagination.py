"""One pagination rule for every OCPI list GET (reference 1.6): ``offset``, ``limit`` (capped at
the configured page size, announced in ``X-Limit``), ``date_from`` (inclusive) and ``date_to``
(exclusive) on ``last_updated``; ``X-Total-Count``; ``Link`` to the next page repeating the
original filters, absent on the last page."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Annotated
from urllib.parse import urlencode

from fastapi import Depends, Request, Response
from pydantic import BaseModel

from bridge.api.deps import Platform
from bridge.api.responses import ocpi_response
from bridge.errors import MalformedRequest
from bridge.ocpi.wire import parse_datetime


@dataclass(frozen=True, kw_only=True)
class PageRequest:
    offset: int
    limit: int
    max_limit: int
    date_from: datetime | None
    date_to: datetime | None


async def page_request(request: Request, platform: Platform) -> PageRequest:
    # ``async``: no thread pool hop (see ``get_platform``).
    params = request.query_params
    offset = _int(params.get("offset"), "offset", default=0)
    limit = _int(params.get("limit"), "limit", default=platform.max_page_size)
    return PageRequest(
        offset=offset,
        limit=min(limit, platform.max_page_size),
        max_limit=platform.max_page_size,
        date_from=_datetime(params.get("date_from"), "date_from"),
        date_to=_datetime(params.get("date_to"), "date_to"),
    )


Page = Annotated[PageRequest, Depends(page_request)]


def paged_response(
    request: Request,
    page: PageRequest,
    items: Sequence[BaseModel] | Sequence[str],
    *,
    total: int,
    base_url: str,
) -> Response:
    headers = {"X-Total-Count": str(total), "X-Limit": str(page.max_limit)}
    next_offset = page.offset + len(items)
    if items and next_offset < total:
        query = [(k, v) for k, v in request.query_params.multi_items() if k not in _PAGING]
        query += [("offset", str(next_offset)), ("limit", str(page.limit))]
        url = f"{base_url}{request.url.path}?{urlencode(query)}"
        headers["Link"] = f'<{url}>; rel="next"'
    return ocpi_response(items, headers=headers)


_PAGING = {"offset", "limit"}
_MAX_PARAMETER = 2**31 - 1


def _int(value: str | None, name: str, *, default: int) -> int:
    if value is None or value == "":
        return default
    try:
        number = int(value)
    except ValueError:
        raise MalformedRequest(f"{name} must be a non-negative integer, got {value!r}") from None
    if number < 0 or (name == "limit" and number == 0):
        raise MalformedRequest(f"{name} must be {'positive' if name == 'limit' else '>= 0'}")
    if number > _MAX_PARAMETER:
        raise MalformedRequest(f"{name} must be at most {_MAX_PARAMETER}")
    return number


def _datetime(value: str | None, name: str) -> datetime | None:
    if value is None or value == "":
        return None
    try:
        return parse_datetime(value)
    except ValueError:
        raise MalformedRequest(f"{name} must be an RFC 3339 date-time, got {value!r}") from None
