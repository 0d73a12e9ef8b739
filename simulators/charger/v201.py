"""OCPP 2.0.1 charging station simulator built on the client side of the ``ocpp`` library.

Same conventions as the 1.6 simulator: every station -> CSMS method returns the *raw camelCase
payload* of the CallResult and raises ``CallErrorReceived`` on a CallError; payload arguments
that are OCPP structures (meter values, event data, schedules) are raw camelCase dicts. Other
``OCPPError``s (e.g. a payload failing the 2.0.1 schema) propagate unchanged.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from ocpp.v201 import ChargePoint, call

from simulators.charger.common import CallErrorReceived, format_timestamp, utc_now
from simulators.charger.core import SimulatorCore
from simulators.charger.smart_charging import (
    EXTERNAL_PROFILE,
    ChargingProfile,
    ProfileStore,
    external_constraint,
    external_level,
)
from simulators.charger.station import INOPERATIVE, Reservation, StationState, Transaction
from simulators.charger.v201_commands import CsmsCommandHandlers201
from simulators.charger.v201_handlers import CsmsCallHandlers201
from simulators.charger.v201_model import (
    HEARTBEAT_INTERVAL,
    EvseSpec,
    SimulatorConfig201,
    default_variables,
    paginate,
    report_data,
)

__all__ = ["CallErrorReceived", "ChargerSimulator201", "EvseSpec", "SimulatorConfig201"]


class ChargerSimulator201(
    CsmsCallHandlers201,
    CsmsCommandHandlers201,
    SimulatorCore,
    ChargePoint,  # type: ignore[misc]
):
    """OCPP 2.0.1 charging station. ``station`` tracks (per EVSE) the statuses sent, the
    transactions reported through ``transaction_event`` and the reservations; ``auto_start``
    / ``auto_stop`` (from the config, changeable at any time) make accepted remote starts and
    stops happen."""

    task_prefix = "ocpp201"
    config: SimulatorConfig201

    def __init__(self, config: SimulatorConfig201) -> None:
        super().__init__(config)
        self.variables = default_variables(config)
        self.reports_sent: list[dict[str, Any]] = []  # NotifyReport payloads, as sent
        self.seq_nos: dict[str, int] = {}  # transaction id -> next seqNo
        self.station = StationState(tuple(evse.evse_id for evse in config.evses))
        self.profiles = ProfileStore()
        self.connector_statuses: dict[tuple[int, int], str] = {}  # (EVSE, connector) -> status
        self.auto_start = config.auto_start
        self.auto_stop = config.auto_stop
        self.meter_wh: dict[int, int] = {}  # energy register per EVSE (remote sessions)

    @property
    def active_transactions(self) -> dict[str, int | None]:
        """Running transactions: transaction id -> EVSE id (None if never reported)."""
        return {str(t.transaction_id): t.unit_id for t in self.station.transactions.values()}

    @property
    def reservations(self) -> dict[int, Reservation]:
        """Reservations held, by reservation id."""
        return dict(self.station.reservations)

    @property
    def charging_profiles(self) -> dict[int, dict[int, dict[str, Any]]]:
        """Installed profiles as received: {EVSE id: {profile id: chargingProfile}}."""
        return self.profiles.by_unit()

    def evse_spec(self, evse_id: int) -> EvseSpec | None:
        return next((e for e in self.config.evses if e.evse_id == evse_id), None)

    # ------------------------------------------------------------------ station -> CSMS

    async def boot(self, reason: str = "PowerUp") -> dict[str, Any]:
        station = {"model": self.config.model, "vendorName": self.config.vendor}
        if self.config.serial_number is not None:
            station["serialNumber"] = self.config.serial_number
        if self.config.firmware_version is not None:
            station["firmwareVersion"] = self.config.firmware_version
        response = await self._call(call.BootNotification(charging_station=station, reason=reason))
        if response.get("status") == "Accepted" and "interval" in response:
            self.variables[HEARTBEAT_INTERVAL] = str(response["interval"])
        return response

    async def heartbeat(self) -> dict[str, Any]:
        return await self._call(call.Heartbeat())

    async def status(
        self, evse_id: int, connector_id: int, status: str, *, timestamp: datetime | None = None
    ) -> dict[str, Any]:
        self.connector_statuses[(evse_id, connector_id)] = status
        self.station.statuses[evse_id] = self._evse_status(evse_id)
        return await self._call(
            call.StatusNotification(
                timestamp=format_timestamp(timestamp or utc_now()),
                connector_status=status,
                evse_id=evse_id,
                connector_id=connector_id,
            )
        )

    async def authorize(self, id_token: str, token_type: str = "ISO14443") -> dict[str, Any]:
        return await self._call(call.Authorize(id_token={"idToken": id_token, "type": token_type}))

    def next_seq_no(self, transaction_id: str) -> int:
        """seqNo the next ``transaction_event`` of ``transaction_id`` gets by default."""
        return self.seq_nos.get(transaction_id, 0)

    async def transaction_event(
        self,
        event_type: str,
        transaction_id: str,
        trigger_reason: str,
        *,
        seq_no: int | None = None,
        timestamp: datetime | None = None,
        evse: tuple[int, int | None] | None = None,
        id_token: tuple[str, str] | None = None,
        charging_state: str | None = None,
        stopped_reason: str | None = None,
        remote_start_id: int | None = None,
        time_spent_charging: int | None = None,
        meter_value: list[dict[str, Any]] | None = None,
        offline: bool | None = None,
        reservation_id: int | None = None,
        number_of_phases_used: int | None = None,
    ) -> dict[str, Any]:
        """Send (or queue, while offline: then ``offline`` defaults to true) a TransactionEvent.

        ``evse`` is ``(evse_id, connector_id or None)``, ``id_token`` is ``(value, type)``.
        The first id token of a transaction uses a reservation held for it on the EVSE (or
        for the station): its id is sent as ``reservationId`` unless one is given.
        """
        if seq_no is None:
            seq_no = self.next_seq_no(transaction_id)
        self.seq_nos[transaction_id] = max(self.next_seq_no(transaction_id), seq_no + 1)
        info: dict[str, Any] = {"transactionId": transaction_id}
        optional_info = {
            "chargingState": charging_state,
            "timeSpentCharging": time_spent_charging,
            "stoppedReason": stopped_reason,
            "remoteStartId": remote_start_id,
        }
        info.update({key: value for key, value in optional_info.items() if value is not None})
        if self._offline and offline is None:
            offline = True
        used = self._use_reservation(transaction_id, evse, id_token)
        if reservation_id is None and used is not None:
            reservation_id = used.reservation_id
        self._track_transaction(
            event_type, transaction_id, evse, id_token, remote_start_id, timestamp or utc_now()
        )
        payload = call.TransactionEvent(
            event_type=event_type,
            timestamp=format_timestamp(timestamp or utc_now()),
            trigger_reason=trigger_reason,
            seq_no=seq_no,
            transaction_info=info,
            meter_value=meter_value,
            offline=offline,
            number_of_phases_used=number_of_phases_used,
            reservation_id=reservation_id,
            evse=None if evse is None else _evse(*evse),
            id_token=None if id_token is None else {"idToken": id_token[0], "type": id_token[1]},
        )
        return await self._call_or_queue(payload)

    async def meter_values(self, evse_id: int, meter_value: list[dict[str, Any]]) -> dict[str, Any]:
        return await self._call_or_queue(call.MeterValues(evse_id=evse_id, meter_value=meter_value))

    async def notify_event(
        self,
        event_data: list[dict[str, Any]],
        *,
        seq_no: int = 0,
        tbc: bool = False,
        generated_at: datetime | None = None,
    ) -> dict[str, Any]:
        return await self._call(
            call.NotifyEvent(
                generated_at=format_timestamp(generated_at or utc_now()),
                seq_no=seq_no,
                event_data=event_data,
                tbc=tbc,
            )
        )

    async def security_event(self, type_: str, *, tech_info: str | None = None) -> dict[str, Any]:
        return await self._call(
            call.SecurityEventNotification(
                type=type_, timestamp=format_timestamp(utc_now()), tech_info=tech_info
            )
        )

    async def firmware_status(self, status: str, request_id: int | None = None) -> dict[str, Any]:
        return await self._call(
            call.FirmwareStatusNotification(status=status, request_id=request_id)
        )

    async def log_status(self, status: str, request_id: int | None = None) -> dict[str, Any]:
        return await self._call(call.LogStatusNotification(status=status, request_id=request_id))

    async def reservation_status(self, reservation_id: int, status: str) -> dict[str, Any]:
        return await self._call(
            call.ReservationStatusUpdate(
                reservation_id=reservation_id, reservation_update_status=status
            )
        )

    async def notify_charging_limit(
        self,
        source: str,
        *,
        evse_id: int | None = None,
        schedule: list[dict[str, Any]] | None = None,
    ) -> dict[str, Any]:
        """Report an external limit of ``source`` (EMS, SO, CSO, Other) on ``evse_id`` (None:
        the whole station). With a ``schedule`` (camelCase ChargingScheduleType dicts) the
        first one is installed before the report as the station's external constraint of that
        source on that EVSE (``smart_charging.external_constraint``), so that
        GetCompositeSchedule takes it into account from then on."""
        if schedule:
            self.profiles.install(
                external_constraint(schedule[0], unit_id=evse_id or 0, source=source, now=utc_now())
            )
        return await self._call(
            call.NotifyChargingLimit(
                charging_limit={"chargingLimitSource": source},
                charging_schedule=schedule,
                evse_id=evse_id,
            )
        )

    async def cleared_charging_limit(
        self, source: str, *, evse_id: int | None = None
    ) -> dict[str, Any]:
        """Report that the external limit of ``source`` on ``evse_id`` (None: the station) is
        gone; the constraint ``notify_charging_limit`` installed there is removed first."""
        self.profiles.clear(
            unit_id=evse_id or 0, purpose=EXTERNAL_PROFILE, stack_level=external_level(source)
        )
        return await self._call(
            call.ClearedChargingLimit(charging_limit_source=source, evse_id=evse_id)
        )

    async def data_transfer(
        self, vendor_id: str, message_id: str | None = None, data: Any = None
    ) -> dict[str, Any]:
        """Note: the library camelCases the keys of dicts inside ``data`` before sending."""
        return await self._call(
            call.DataTransfer(vendor_id=vendor_id, message_id=message_id, data=data)
        )

    async def notify_report(self, request_id: int) -> list[dict[str, Any]]:
        """Send the whole base report as NotifyReport pages; return the CSMS's answers."""
        generated_at = format_timestamp(utc_now())
        pages = paginate(report_data(self.config), self.config.report_page_size)
        responses = []
        for seq_no, page in enumerate(pages):
            payload: dict[str, Any] = {
                "requestId": request_id,
                "generatedAt": generated_at,
                "seqNo": seq_no,
                "tbc": seq_no < len(pages) - 1,
            }
            if page:
                payload["reportData"] = page
            self._require_connection()
            self.reports_sent.append(payload)
            responses.append(
                await self._call(
                    call.NotifyReport(
                        request_id=request_id,
                        generated_at=generated_at,
                        seq_no=seq_no,
                        report_data=page or None,
                        tbc=payload["tbc"],
                    )
                )
            )
        return responses

    def start_report(self, request_id: int) -> None:
        """Send the base report from a background task (see ``wait_background``)."""
        self._spawn(self.notify_report(request_id), f"report-{request_id}")

    # ------------------------------------------------------------------ offline behaviour

    async def come_online(self) -> list[dict[str, Any]]:
        """(Re)connect if needed (no BootNotification) and replay the queue in order.

        If a replayed call fails, the simulator stays offline and the unsent items stay queued.
        """
        if not self.connected:
            await self.connect()
        responses: list[dict[str, Any]] = []
        while self._queue:
            responses.append(await self._call(self._queue[0].payload))
            self._queue.pop(0)
        self._offline = False
        return responses

    def _use_reservation(
        self,
        transaction_id: str,
        evse: tuple[int, int | None] | None,
        id_token: tuple[str, str] | None,
    ) -> Reservation | None:
        known = self.station.transactions.get(transaction_id)
        if id_token is None or (known is not None and known.id_tag is not None):
            return None
        evse_id = evse[0] if evse is not None else (known.unit_id if known else None)
        used = self.station.consume(evse_id, id_token[0])
        if used is not None:
            self.disarm_expiry(used.reservation_id)
        return used

    def _track_transaction(
        self,
        event_type: str,
        transaction_id: str,
        evse: tuple[int, int | None] | None,
        id_token: tuple[str, str] | None = None,
        remote_start_id: int | None = None,
        at: datetime | None = None,
    ) -> None:
        if event_type == "Ended":
            ended = self.station.end(transaction_id)
            if ended is not None:
                self.profiles.transaction_ended(ended.unit_id, transaction_id)
            return
        known = self.station.transactions.get(transaction_id)
        if known is None:
            known = Transaction(transaction_id, None, None, at or utc_now())
            self.station.begin(known)
        if evse is not None:
            known.unit_id, known.connector_id = evse
            self.station.starting.discard(evse[0])
        if id_token is not None and known.id_tag is None:
            known.id_tag = id_token[0]
        if remote_start_id is not None:
            known.remote_start_id = remote_start_id

    def _evse_status(self, evse_id: int) -> str:
        """The EVSE's status from its connectors' (unreported ones count as Available)."""
        spec = self.evse_spec(evse_id)
        count = len(spec.connectors) if spec is not None else 1
        statuses = [
            self.connector_statuses.get((evse_id, n), "Available") for n in range(1, count + 1)
        ]
        if all(status in INOPERATIVE for status in statuses):
            return "Faulted" if all(s == "Faulted" for s in statuses) else "Unavailable"
        for status in ("Occupied", "Reserved"):
            if status in statuses:
                return status
        return "Available"

    # ------------------------------------------------------------------ remote control

    async def run_remote_start(
        self,
        evse_id: int,
        id_token: tuple[str, str],
        remote_start_id: int,
        charging_profile: dict[str, Any] | None = None,
    ) -> dict[str, Any] | None:
        """What follows an accepted RequestStartTransaction (with ``auto_start``): Authorize
        when AuthCtrlr.AuthorizeRemoteStart is true (stopping there unless Accepted), then
        TransactionEvent Started (triggerReason RemoteStart, remoteStartId, idToken, a
        Transaction.Begin energy reading; a reservation for the token is used) on connector 1,
        the request's TxProfile installed for the new transaction and StatusNotification
        Occupied. Returns the TransactionEvent answer."""
        try:
            if self.variables.get(("AuthCtrlr", "AuthorizeRemoteStart")) == "true":
                authorized = await self.authorize(*id_token)
                if authorized.get("idTokenInfo", {}).get("status") != "Accepted":
                    return None
            transaction_id = str(uuid.uuid4())
            meter = self.meter_wh.get(evse_id, 0)
            started = await self.transaction_event(
                "Started",
                transaction_id,
                "RemoteStart",
                evse=(evse_id, 1),
                id_token=id_token,
                charging_state="EVConnected",
                remote_start_id=remote_start_id,
                meter_value=[_energy(meter, "Transaction.Begin")],
            )
        finally:
            self.station.starting.discard(evse_id)
        if transaction_id in self.station.transactions:
            self.station.transactions[transaction_id].meter_start_wh = meter
        if charging_profile is not None:
            profile = ChargingProfile.from_ocpp201(charging_profile, evse_id, utc_now())
            self.profiles.install(profile.with_transaction(transaction_id))
        await self.status(evse_id, 1, "Occupied")
        return started

    async def run_remote_authorize(
        self, transaction_id: str, id_token: tuple[str, str], remote_start_id: int
    ) -> dict[str, Any]:
        """A remote start for a transaction already running without a token (cable plugged
        in first): TransactionEvent Updated, triggerReason RemoteStart, with the token."""
        return await self.transaction_event(
            "Updated",
            transaction_id,
            "RemoteStart",
            id_token=id_token,
            remote_start_id=remote_start_id,
        )

    async def run_remote_stop(self, transaction_id: str) -> dict[str, Any] | None:
        """What follows an accepted RequestStopTransaction (with ``auto_stop``): TransactionEvent
        Ended (triggerReason RemoteStop, stoppedReason Remote, a Transaction.End reading
        ``auto_energy_wh`` after the start), StatusNotification Available. None when the
        transaction is no longer running."""
        transaction = self.station.transactions.get(transaction_id)
        if transaction is None:
            return None
        meter_stop = transaction.meter_start_wh + self.config.auto_energy_wh
        ended = await self.transaction_event(
            "Ended",
            transaction_id,
            "RemoteStop",
            stopped_reason="Remote",
            meter_value=[_energy(meter_stop, "Transaction.End")],
        )
        if transaction.unit_id is not None:
            self.meter_wh[transaction.unit_id] = meter_stop
            await self.status(transaction.unit_id, transaction.connector_id or 1, "Available")
        return ended

    # ------------------------------------------------------------------ reservations

    async def announce_reservation(
        self, reservation: Reservation, replaced: Reservation | None
    ) -> None:
        """StatusNotification Reserved for every connector of the reserved EVSE (none for a
        station-wide reservation), after Available for an EVSE a replaced one held."""
        if replaced is not None and replaced.unit_id not in (None, reservation.unit_id):
            await self.announce_available(replaced.unit_id)
        if reservation.unit_id is not None:
            await self._connectors_status(reservation.unit_id, "Reserved")

    async def announce_available(self, evse_id: int | None) -> None:
        """StatusNotification Available for the connectors of an EVSE that lost its
        reservation (unless a transaction runs there or it is reserved again)."""
        if (
            evse_id is not None
            and self.station.transaction_on(evse_id) is None
            and self.station.reservation_on(evse_id) is None
        ):
            await self._connectors_status(evse_id, "Available")

    async def _connectors_status(self, evse_id: int, status: str) -> None:
        spec = self.evse_spec(evse_id)
        for connector_id in range(1, (len(spec.connectors) if spec else 1) + 1):
            await self.status(evse_id, connector_id, status)

    async def expire_reservation(self, reservation_id: int) -> bool:
        """The reservation expired: forget it, EVSE back to Available, ReservationStatusUpdate
        Expired. False if unknown."""
        return await self._end_reservation(reservation_id, "Expired")

    async def remove_reservation(self, reservation_id: int) -> bool:
        """The station dropped the reservation: as ``expire_reservation``, status Removed."""
        return await self._end_reservation(reservation_id, "Removed")

    async def _end_reservation(self, reservation_id: int, why: str) -> bool:
        ended = self.station.cancel(reservation_id)
        if ended is None:
            return False
        self.disarm_expiry(reservation_id)
        await self.announce_available(ended.unit_id)
        await self.reservation_status(reservation_id, why)
        return True

    def arm_expiry(self, reservation: Reservation) -> None:
        """Expire ``reservation`` at its expiry date (while connected)."""
        delay = (reservation.expiry - utc_now()).total_seconds()
        reservation_id = reservation.reservation_id

        async def expire() -> None:
            if self.connected and reservation_id in self.station.reservations:
                await self.expire_reservation(reservation_id)

        self._arm_timer(f"reservation-{reservation_id}", delay, expire)

    def disarm_expiry(self, reservation_id: int) -> None:
        self._cancel_timer(f"reservation-{reservation_id}")

    def _on_connected(self) -> None:
        for reservation in self.station.reservations.values():
            self.arm_expiry(reservation)


def _energy(wh: int, context: str) -> dict[str, Any]:
    """A meter value holding one Energy.Active.Import.Register reading, taken now."""
    return {
        "timestamp": format_timestamp(utc_now()),
        "sampledValue": [
            {
                "value": wh,
                "context": context,
                "measurand": "Energy.Active.Import.Register",
                "location": "Outlet",
                "unitOfMeasure": {"unit": "Wh"},
            }
        ],
    }


def _evse(evse_id: int, connector_id: int | None) -> dict[str, int]:
    return {"id": evse_id} if connector_id is None else {"id": evse_id, "connectorId": connector_id}
