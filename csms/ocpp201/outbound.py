"""Build OCPP 2.0.1 payloads (camelCase) from domain decisions."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from csms.clock import format_ocpp_datetime
from csms.domain.requests import (
    AuthorizationDecision,
    BootDecision,
    DataTransferDecision,
    TransactionEventDecision,
)


def build_boot(decision: BootDecision) -> dict[str, Any]:
    return {
        "currentTime": format_ocpp_datetime(decision.current_time),
        "interval": decision.interval_s,
        "status": decision.status.value,
    }


def build_heartbeat(now: datetime) -> dict[str, Any]:
    return {"currentTime": format_ocpp_datetime(now)}


def build_id_token_info(decision: AuthorizationDecision) -> dict[str, Any]:
    info: dict[str, Any] = {"status": decision.status.value}
    if decision.expires_at is not None:
        info["cacheExpiryDateTime"] = format_ocpp_datetime(decision.expires_at)
    if decision.group_id is not None and len(decision.group_id) <= 36:
        info["groupIdToken"] = {"idToken": decision.group_id, "type": "Central"}
    if decision.evse_ids:
        info["evseId"] = list(decision.evse_ids)
    if decision.message is not None:
        message: dict[str, Any] = {"format": "UTF8", "content": decision.message.text[:512]}
        if decision.message.language:
            message["language"] = decision.message.language[:8]
        info["personalMessage"] = message
    return info


def build_authorize(decision: AuthorizationDecision) -> dict[str, Any]:
    return {"idTokenInfo": build_id_token_info(decision)}


def build_transaction_event(decision: TransactionEventDecision) -> dict[str, Any]:
    """Every TransactionEvent is answered; idTokenInfo whenever an idToken was sent."""
    if decision.authorization is None:
        return {}
    return {"idTokenInfo": build_id_token_info(decision.authorization)}


def build_data_transfer(decision: DataTransferDecision) -> dict[str, Any]:
    payload: dict[str, Any] = {"status": decision.status.value}
    if decision.data is not None:
        payload["data"] = decision.data
    return payload


def build_get_base_report(request_id: int, report_base: str) -> dict[str, Any]:
    return {"requestId": request_id, "reportBase": report_base}
