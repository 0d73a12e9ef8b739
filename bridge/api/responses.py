"""OCPI responses: the envelope, serialized once from pydantic models (no ``jsonable_encoder``
walk over large dicts)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from fastapi import Response
from pydantic import BaseModel

from bridge.ocpi.wire import OcpiStatus, envelope_json
from csms.clock import utc_now


def ocpi_response(
    data: BaseModel | Sequence[BaseModel] | Sequence[str] | None = None,
    *,
    status: int = OcpiStatus.SUCCESS,
    message: str | None = None,
    http_status: int = 200,
    raw_data: Any = None,
    headers: Mapping[str, str] | None = None,
) -> Response:
    body = envelope_json(
        status,
        data=list(data) if isinstance(data, Sequence) else data,  # type: ignore[arg-type]
        raw_data=raw_data,
        message=message if message is not None else ("Success" if status < 2000 else None),
        timestamp=utc_now(),
    )
    return Response(
        content=body,
        status_code=http_status,
        media_type="application/json",
        headers=dict(headers) if headers else None,
    )
