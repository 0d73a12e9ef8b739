"""OCPP 1.6J charge point simulator built on the client side of the ``ocpp`` library.

Every charger -> CSMS method returns the *raw camelCase payload* of the CallResult as received
on the wire (captured in ``route_message`` before the library turns it into a dataclass), and
raises ``CallErrorReceived`` when the central system answered with a CallError. Other
``OCPPError``s (e.g. an outgoing or incoming payload failing the 1.6 schema) propagate unchanged.
"""

from __future__ import annotations

import dataclasses
import itertools
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from ocpp.v16 import ChargePoint, call

from simulators.charger.common import CallErrorReceived, format_timestamp, utc_now
from simulators.charger.core import QueuedCall, SimulatorCore
from simulators.charger.smart_charging import ChargingProfile, ProfileStore
from simulators.charger.station import Reservation, StationState, Transaction
from simulators.charger.v16_commands import CsmsCommandHandlers16
from simulators.charger.v16_handlers import CsmsCallHandlers16, default_configuration

__all__ = ["CallErrorReceived", "ChargerSimulator16", "SimulatorConfig16"]


@dataclass
class SimulatorConfig16:
    url: str  # base URL; the charger id is appended as "/{charger_id}"
    charger_id: str
    password: str | None = None  # HTTP Basic auth (username = charger_id) when set
    connectors: int = 1
    vendor: str = "ocpi-bridge-sim"
    model: str = "SIM-16"
    serial_number: str | None = None
    meter_serial_number: str | None = None
    response_timeout: float = 10.0
    subprotocols: tuple[str, ...] = ("ocpp1.6",)
    auto_start: bool = False  # an accepted RemoteStartTransaction starts a transaction
    auto_stop: bool = False  # an accepted RemoteStopTransaction stops it
    auto_energy_wh: int = 1000  # energy of a transaction between remote start and remote stop


class ChargerSimulator16(
    CsmsCallHandlers16,
    CsmsCommandHandlers16,
    SimulatorCore,
    ChargePoint,  # type: ignore[misc]
):
    """OCPP 1.6 charge point. ``station`` tracks the statuses sent, the transactions started
    and stopped through this API and the reservations; ``auto_start`` / ``auto_stop`` (from
    the config, changeable at any time) make accepted remote starts and stops happen."""

    task_prefix = "ocpp16"
    config: SimulatorConfig16

    def __init__(self, config: SimulatorConfig16) -> None:
        super().__init__(config)
        self.configuration = default_configuration(config.connectors)
        # Offline queue and placeholder -> real transaction id map.
        self.transaction_id_map: dict[int, int] = {}
        self._placeholders = itertools.count(-1, -1)
        self.station = StationState(tuple(range(1, config.connectors + 1)))
        self.profiles = ProfileStore()
        self.auto_start = config.auto_start
        self.auto_stop = config.auto_stop
        self.meter_wh: dict[int, int] = {}  # energy register per connector (remote sessions)

    @property
    def reservations(self) -> dict[int, Reservation]:
        """Reservations held, by reservation id."""
        return dict(self.station.reservations)

    @property
    def charging_profiles(self) -> dict[int, dict[int, dict[str, Any]]]:
        """Installed profiles as received: {connector id: {chargingProfileId: profile}}."""
        return self.profiles.by_unit()

    @property
    def transactions(self) -> dict[int, Transaction]:
        """Running transactions by id (a negative placeholder while started offline)."""
        return dict(self.station.transactions)

    # ------------------------------------------------------------------ charger -> CSMS

    async def boot(self) -> dict[str, Any]:
        response = await self._call(
            call.BootNotification(
                charge_point_model=self.config.model,
                charge_point_vendor=self.config.vendor,
                charge_point_serial_number=self.config.serial_number,
                meter_serial_number=self.config.meter_serial_number,
            )
        )
        if response.get("status") == "Accepted" and "interval" in response:
            self.configuration["HeartbeatInterval"] = str(response["interval"])
        return response

    async def heartbeat(self) -> dict[str, Any]:
        return await self._call(call.Heartbeat())

    async def status(
        self,
        connector_id: int,
        status: str,
        error_code: str = "NoError",
        *,
        info: str | None = None,
        timestamp: datetime | None = None,
        vendor_error_code: str | None = None,
    ) -> dict[str, Any]:
        self.station.statuses[connector_id] = status
        return await self._call(
            call.StatusNotification(
                connector_id=connector_id,
                error_code=error_code,
                status=status,
                timestamp=format_timestamp(timestamp or utc_now()),
                info=info,
                vendor_error_code=vendor_error_code,
            )
        )

    async def authorize(self, id_tag: str) -> dict[str, Any]:
        return await self._call(call.Authorize(id_tag=id_tag))

    async def start_transaction(
        self,
        connector_id: int,
        id_tag: str,
        meter_start_wh: int,
        *,
        timestamp: datetime | None = None,
        reservation_id: int | None = None,
    ) -> dict[str, Any]:
        """Start a transaction. A reservation of the connector for ``id_tag`` is used (its id
        sent as ``reservationId`` unless one is given); the transaction is then tracked."""
        used = self.station.consume(connector_id, id_tag)
        if reservation_id is not None and used is None:
            used = self.station.cancel(reservation_id)
        if used is not None:
            self.disarm_expiry(used.reservation_id)
            reservation_id = reservation_id if reservation_id is not None else used.reservation_id
        started_at = timestamp or utc_now()
        payload = call.StartTransaction(
            connector_id=connector_id,
            id_tag=id_tag,
            meter_start=meter_start_wh,
            timestamp=format_timestamp(started_at),
            reservation_id=reservation_id,
        )
        if self._offline:
            placeholder = next(self._placeholders)
            self._queue.append(QueuedCall(payload, placeholder))
            response: dict[str, Any] = {"transactionId": placeholder}
        else:
            response = await self._call(payload)
        if "transactionId" in response:
            transaction_id = int(response["transactionId"])
            self.station.begin(
                Transaction(transaction_id, connector_id, id_tag, started_at, meter_start_wh)
            )
        return response

    async def meter_values(
        self,
        connector_id: int,
        sampled: list[dict[str, Any]],
        *,
        transaction_id: int | None = None,
        timestamp: datetime | None = None,
    ) -> dict[str, Any]:
        meter_value = {
            "timestamp": format_timestamp(timestamp or utc_now()),
            "sampledValue": sampled,
        }
        payload = call.MeterValues(
            connector_id=connector_id, meter_value=[meter_value], transaction_id=transaction_id
        )
        return await self._call_or_queue(payload)

    async def stop_transaction(
        self,
        transaction_id: int,
        meter_stop_wh: int,
        *,
        timestamp: datetime | None = None,
        reason: str | None = None,
        id_tag: str | None = None,
        transaction_data: list[dict[str, Any]] | None = None,
    ) -> dict[str, Any]:
        """``transaction_data`` is a list of raw MeterValue dicts ({timestamp, sampledValue}).
        The transaction (and its TxProfiles) is forgotten."""
        mapped = self.transaction_id_map.get(transaction_id, transaction_id)
        for known in {transaction_id, mapped}:
            ended = self.station.end(known)
            if ended is not None:
                self.profiles.transaction_ended(ended.unit_id, known)
        payload = call.StopTransaction(
            meter_stop=meter_stop_wh,
            timestamp=format_timestamp(timestamp or utc_now()),
            transaction_id=transaction_id,
            reason=reason,
            id_tag=id_tag,
            transaction_data=transaction_data,
        )
        return await self._call_or_queue(payload)

    async def data_transfer(
        self, vendor_id: str, message_id: str | None = None, data: str | None = None
    ) -> dict[str, Any]:
        return await self._call(
            call.DataTransfer(vendor_id=vendor_id, message_id=message_id, data=data)
        )

    async def diagnostics_status(self, status: str) -> dict[str, Any]:
        return await self._call(call.DiagnosticsStatusNotification(status=status))

    async def firmware_status(self, status: str) -> dict[str, Any]:
        return await self._call(call.FirmwareStatusNotification(status=status))

    # ------------------------------------------------------------------ remote control

    async def run_remote_start(
        self, connector_id: int, id_tag: str, charging_profile: dict[str, Any] | None = None
    ) -> dict[str, Any] | None:
        """What follows an accepted RemoteStartTransaction (with ``auto_start``): Authorize
        when ``AuthorizeRemoteTxRequests`` is true (stopping there unless Accepted),
        StatusNotification Preparing (unless already reported), StartTransaction (using a
        reservation for ``id_tag``), the remote start's TxProfile installed for the new
        transaction, StatusNotification Charging. An id tag the CSMS does not accept in
        StartTransaction.conf stops the transaction again (DeAuthorized) when
        ``StopTransactionOnInvalidId`` is true. Returns the StartTransaction answer."""
        try:
            if self.configuration.get("AuthorizeRemoteTxRequests") == "true":
                authorized = await self.authorize(id_tag)
                if authorized.get("idTagInfo", {}).get("status") != "Accepted":
                    return None
            if self.station.status(connector_id) in ("Available", "Reserved"):
                await self.status(connector_id, "Preparing")
            meter = self.meter_wh.get(connector_id, 0)
            started = await self.start_transaction(connector_id, id_tag, meter)
        finally:
            self.station.starting.discard(connector_id)
        transaction_id = started.get("transactionId")
        if transaction_id is None:
            return started
        if charging_profile is not None:
            profile = ChargingProfile.from_ocpp16(charging_profile, connector_id, utc_now())
            self.profiles.install(profile.with_transaction(int(transaction_id)))
        accepted = started.get("idTagInfo", {}).get("status") == "Accepted"
        if not accepted and self.configuration.get("StopTransactionOnInvalidId") == "true":
            await self.stop_transaction(int(transaction_id), meter, reason="DeAuthorized")
            await self.status(connector_id, "Finishing")
            await self.status(connector_id, "Available")
            return started
        await self.status(connector_id, "Charging")
        return started

    async def run_remote_stop(self, transaction_id: int) -> dict[str, Any] | None:
        """What follows an accepted RemoteStopTransaction (with ``auto_stop``): StopTransaction
        (reason Remote, ``auto_energy_wh`` after the start), StatusNotification Finishing then
        Available. None when the transaction is no longer running."""
        transaction = self.station.transactions.get(transaction_id)
        if transaction is None:
            return None
        meter_stop = transaction.meter_start_wh + self.config.auto_energy_wh
        stopped = await self.stop_transaction(
            transaction_id, meter_stop, reason="Remote", id_tag=transaction.id_tag
        )
        if transaction.unit_id is not None:
            self.meter_wh[transaction.unit_id] = meter_stop
            await self.status(transaction.unit_id, "Finishing")
            await self.status(transaction.unit_id, "Available")
        return stopped

    # ------------------------------------------------------------------ reservations

    async def announce_reservation(
        self, reservation: Reservation, replaced: Reservation | None
    ) -> None:
        """StatusNotification Reserved (and Available for the connector a replaced reservation
        with the same id held)."""
        if replaced is not None and replaced.unit_id not in (None, reservation.unit_id):
            await self.announce_available(replaced.unit_id)
        if reservation.unit_id is not None:
            await self.status(reservation.unit_id, "Reserved")

    async def announce_available(self, connector_id: int | None) -> None:
        """StatusNotification Available for a connector that lost its reservation (unless a
        transaction runs there or it is reserved again)."""
        if (
            connector_id is not None
            and self.station.transaction_on(connector_id) is None
            and self.station.reservation_on(connector_id) is None
        ):
            await self.status(connector_id, "Available")

    async def expire_reservation(self, reservation_id: int) -> bool:
        """The reservation expired: forget it, connector back to Available. False if unknown.
        (OCPP 1.6 has no message telling the CSMS why.)"""
        return await self._end_reservation(reservation_id)

    async def remove_reservation(self, reservation_id: int) -> bool:
        """The charger dropped the reservation (e.g. an operator did): as ``expire_reservation``."""
        return await self._end_reservation(reservation_id)

    async def _end_reservation(self, reservation_id: int) -> bool:
        ended = self.station.cancel(reservation_id)
        if ended is None:
            return False
        self.disarm_expiry(reservation_id)
        await self.announce_available(ended.unit_id)
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

    # ------------------------------------------------------------------ offline behaviour

    async def come_online(self) -> list[dict[str, Any]]:
        """(Re)connect if needed (no BootNotification) and replay the queue in order.

        Placeholder transaction ids are replaced by the ids the CSMS assigns. If a replayed call
        fails, the simulator stays offline and the unsent items stay queued for the next attempt.
        """
        if not self.connected:
            await self.connect()
        responses: list[dict[str, Any]] = []
        while self._queue:
            item = self._queue[0]
            response = await self._call(item.payload)
            self._queue.pop(0)
            if item.placeholder is not None and "transactionId" in response:
                self.transaction_id_map[item.placeholder] = int(response["transactionId"])
                self.station.rename(item.placeholder, int(response["transactionId"]))
            responses.append(response)
        self._offline = False
        return responses

    def _prepare_payload(self, payload: Any) -> Any:
        """Replace a placeholder transaction id by the one the CSMS assigned."""
        placeholder = getattr(payload, "transaction_id", None)
        if placeholder in self.transaction_id_map:
            return dataclasses.replace(payload, transaction_id=self.transaction_id_map[placeholder])
        return payload
