"""OCPP-J frames of the load generator, built from string templates (no JSON encoding on the
hot path). A frame is ``[2, "<unique id>", "<Action>", {payload}]``."""

from __future__ import annotations

import json
import time
from typing import Any

V16 = "1.6"
V201 = "2.0.1"
SUBPROTOCOL = {V16: "ocpp1.6", V201: "ocpp2.0.1"}
ENERGY = "Energy.Active.Import.Register"


class Clock:
    """ISO 8601 UTC timestamp of the current second, formatted once per second."""

    def __init__(self) -> None:
        self._second = -1
        self._text = ""

    def now(self) -> str:
        second = int(time.time())
        if second != self._second:
            self._second = second
            self._text = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(second))
        return self._text


CLOCK = Clock()


def call(message_id: str, action: str, payload: dict[str, Any]) -> str:
    """A CALL frame, JSON-encoded (for the messages off the hot path)."""
    return json.dumps([2, message_id, action, payload], separators=(",", ":"))


def boot(version: str) -> tuple[str, dict[str, Any]]:
    if version == V16:
        return "BootNotification", {"chargePointVendor": "bench", "chargePointModel": "load-1"}
    return "BootNotification", {
        "reason": "PowerUp",
        "chargingStation": {"vendorName": "bench", "model": "load-1"},
    }


def status(version: str, available: bool) -> tuple[str, dict[str, Any]]:
    """StatusNotification of connector 1 (EVSE 1): Available, else Unavailable."""
    if version == V16:
        return "StatusNotification", {
            "connectorId": 1,
            "errorCode": "NoError",
            "status": "Available" if available else "Unavailable",
            "timestamp": CLOCK.now(),
        }
    return "StatusNotification", {
        "timestamp": CLOCK.now(),
        "connectorStatus": "Available" if available else "Unavailable",
        "evseId": 1,
        "connectorId": 1,
    }


def start_16(id_tag: str, meter_wh: int) -> tuple[str, dict[str, Any]]:
    return "StartTransaction", {
        "connectorId": 1,
        "idTag": id_tag,
        "meterStart": meter_wh,
        "timestamp": CLOCK.now(),
    }


def stop_16(transaction_id: int, meter_wh: int) -> tuple[str, dict[str, Any]]:
    return "StopTransaction", {
        "transactionId": transaction_id,
        "meterStop": meter_wh,
        "timestamp": CLOCK.now(),
        "reason": "EVDisconnected",
    }


def _sampled_201(meter_wh: int, context: str) -> list[dict[str, Any]]:
    return [
        {
            "timestamp": CLOCK.now(),
            "sampledValue": [
                {
                    "value": meter_wh,
                    "measurand": ENERGY,
                    "context": context,
                    "unitOfMeasure": {"unit": "Wh"},
                }
            ],
        }
    ]


def event_201(
    event: str, transaction_id: str, seq_no: int, meter_wh: int, id_tag: str | None = None
) -> tuple[str, dict[str, Any]]:
    """TransactionEvent Started (with idToken), Updated or Ended on EVSE 1 connector 1."""
    payload: dict[str, Any] = {
        "eventType": event,
        "timestamp": CLOCK.now(),
        "triggerReason": {"Started": "Authorized", "Ended": "EVDeparted"}.get(
            event, "MeterValuePeriodic"
        ),
        "seqNo": seq_no,
        "transactionInfo": {"transactionId": transaction_id, "chargingState": "Charging"},
        "meterValue": _sampled_201(
            meter_wh,
            {"Started": "Transaction.Begin", "Ended": "Transaction.End"}.get(
                event, "Sample.Periodic"
            ),
        ),
    }
    if event == "Started":
        payload["evse"] = {"id": 1, "connectorId": 1}
    if id_tag is not None:
        payload["idToken"] = {"idToken": id_tag, "type": "ISO14443"}
    if event == "Ended":
        payload["transactionInfo"] = {
            "transactionId": transaction_id,
            "chargingState": "Idle",
            "stoppedReason": "EVDisconnected",
        }
    return "TransactionEvent", payload


# Hot path: the periodic meter value of a running transaction, as one format string each.
_METER_16 = (
    '[2,"%s","MeterValues",{"connectorId":1,"transactionId":%d,"meterValue":[{"timestamp":"%s",'
    '"sampledValue":[{"value":"%d","measurand":"' + ENERGY + '","unit":"Wh",'
    '"context":"Sample.Periodic"}]}]}]'
)
_UPDATED_201 = (
    '[2,"%s","TransactionEvent",{"eventType":"Updated","timestamp":"%s",'
    '"triggerReason":"MeterValuePeriodic","seqNo":%d,"transactionInfo":{"transactionId":"%s"},'
    '"meterValue":[{"timestamp":"%s","sampledValue":[{"value":%d,"measurand":"' + ENERGY + '",'
    '"context":"Sample.Periodic","unitOfMeasure":{"unit":"Wh"}}]}]}]'
)


def meter_16(message_id: str, transaction_id: int, meter_wh: int) -> str:
    """MeterValues frame of a 1.6 transaction (energy register in Wh)."""
    return _METER_16 % (message_id, transaction_id, CLOCK.now(), meter_wh)


def updated_201(message_id: str, transaction_id: str, seq_no: int, meter_wh: int) -> str:
    """TransactionEvent Updated frame of a 2.0.1 transaction (energy register in Wh)."""
    now = CLOCK.now()
    return _UPDATED_201 % (message_id, now, seq_no, transaction_id, now, meter_wh)


def answer_server_call(action: str) -> dict[str, Any] | None:
    """Our reply to a call the central system sends after boot; None: NotImplemented."""
    if action == "GetConfiguration":
        return {
            "configurationKey": [{"key": "NumberOfConnectors", "readonly": True, "value": "1"}],
            "unknownKey": [],
        }
    if action == "GetBaseReport":
        return {"status": "NotSupported"}
    if action in ("TriggerMessage", "ChangeConfiguration", "SetVariables"):
        return {"status": "Rejected"}
    return None
