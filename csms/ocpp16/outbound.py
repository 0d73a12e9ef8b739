"""Build OCPP 1.6 response payloads (camelCase) from domain decisions."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from csms.clock import format_ocpp_datetime
from csms.domain.model import AuthorizationStatus
from csms.domain.requests import (
    AuthorizationDecision,
    BootDecision,
    DataTransferDecision,
    StartTransactionDecision,
    StopTransactionDecision,
)

# 1.6 knows Accepted, Blocked, Expired, Invalid, ConcurrentTx; every other refusal is Invalid.
_V16_STATUS = {
    AuthorizationStatus.ACCEPTED: "Accepted",
    AuthorizationStatus.BLOCKED: "Blocked",
    AuthorizationStatus.EXPIRED: "Expired",
    AuthorizationStatus.CONCURRENT_TX: "ConcurrentTx",
}


def build_boot(decision: BootDecision) -> dict[str, Any]:
    return {
        "status": decision.status.value,
        "currentTime": format_ocpp_datetime(decision.current_time),
        "interval": decision.interval_s,
    }


def build_heartbeat(now: datetime) -> dict[str, Any]:
    return {"currentTime": format_ocpp_datetime(now)}


def build_id_tag_info(decision: AuthorizationDecision) -> dict[str, Any]:
    info: dict[str, Any] = {"status": _V16_STATUS.get(decision.status, "Invalid")}
    if decision.expires_at is not None:
        info["expiryDate"] = format_ocpp_datetime(decision.expires_at)
    if decision.group_id is not None and len(decision.group_id) <= 20:
        info["parentIdTag"] = decision.group_id
    return info


def build_authorize(decision: AuthorizationDecision) -> dict[str, Any]:
    return {"idTagInfo": build_id_tag_info(decision)}


def build_start_transaction(decision: StartTransactionDecision) -> dict[str, Any]:
    return {
        "transactionId": int(decision.transaction_ref),
        "idTagInfo": build_id_tag_info(decision.authorization),
    }


def build_stop_transaction(decision: StopTransactionDecision) -> dict[str, Any]:
    if decision.authorization is None:
        return {}
    return {"idTagInfo": build_id_tag_info(decision.authorization)}


def build_data_transfer(decision: DataTransferDecision) -> dict[str, Any]:
    payload: dict[str, Any] = {"status": decision.status.value}
    if decision.data is not None:
        payload["data"] = decision.data
    return payload


def build_get_configuration(keys: Sequence[str]) -> dict[str, Any]:
    return {"key": list(keys)}
