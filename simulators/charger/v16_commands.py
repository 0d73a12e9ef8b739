"""Stateful answers of the OCPP 1.6 simulator to the CSMS's remote-control and smart-charging
calls: RemoteStart/StopTransaction, ReserveNow, CancelReservation, UnlockConnector,
SetChargingProfile, ClearChargingProfile and GetCompositeSchedule.

Answers follow from ``station`` (statuses, transactions, reservations) and ``profiles``; what
the charger does afterwards (StatusNotification Reserved, the StartTransaction of an accepted
remote start with ``auto_start``, ...) runs once the answer has been sent (``_defer``) and is
implemented by ``ChargerSimulator16``. The fault knobs of ``SimulatorCore`` come first.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar, cast

from ocpp.routing import on
from ocpp.v16 import call_result

from simulators.charger.common import utc_now
from simulators.charger.core import SimulatorCore
from simulators.charger.smart_charging import (
    TX_PROFILE,
    ChargingProfile,
    ProfileStore,
    composite_schedule,
    parse_datetime,
)
from simulators.charger.station import Reservation, StartCheck, StationState

_Handler = TypeVar("_Handler", bound=Callable[..., Any])

CHARGE_POINT_MAX_PROFILE = "ChargePointMaxProfile"


def _on(action: str) -> Callable[[_Handler], _Handler]:
    """Typed wrapper around the untyped ``ocpp.routing.on`` decorator."""
    return cast("Callable[[_Handler], _Handler]", on(action))


class CsmsCommandHandlers16(SimulatorCore):
    """Mixin of ``ChargerSimulator16``, which provides the state and the follow-ups below."""

    station: StationState
    profiles: ProfileStore
    auto_start: bool
    auto_stop: bool

    # --- follow-ups, implemented by ChargerSimulator16 -----------------------------------

    async def run_remote_start(
        self, connector_id: int, id_tag: str, charging_profile: dict[str, Any] | None = None
    ) -> dict[str, Any] | None:
        raise NotImplementedError

    async def run_remote_stop(self, transaction_id: int) -> dict[str, Any] | None:
        raise NotImplementedError

    async def announce_reservation(
        self, reservation: Reservation, replaced: Reservation | None
    ) -> None:
        raise NotImplementedError

    async def announce_available(self, connector_id: int | None) -> None:
        raise NotImplementedError

    def arm_expiry(self, reservation: Reservation) -> None:
        raise NotImplementedError

    def disarm_expiry(self, reservation_id: int) -> None:
        raise NotImplementedError

    # --- transactions --------------------------------------------------------------------

    @_on("RemoteStartTransaction")
    def on_remote_start_transaction(
        self, id_tag: str, connector_id: int | None = None, **_: Any
    ) -> Any:
        """Accepted when the connector (given, else the first free one) may start for
        ``id_tag``: no transaction, not reserved for another tag, not Unavailable/Faulted."""
        profile = self.current_payload().get("chargingProfile")
        if connector_id is None:
            unit = self.station.free_unit(id_tag)
        elif self.station.check_start(connector_id, id_tag) is StartCheck.OK:
            unit = connector_id
        else:
            unit = None
        if unit is None or (
            profile is not None and profile["chargingProfilePurpose"] != TX_PROFILE
        ):
            return call_result.RemoteStartTransaction(status="Rejected")
        if self.auto_start:
            self.station.starting.add(unit)
            self._defer("remote-start", lambda: self.run_remote_start(unit, id_tag, profile))
        return call_result.RemoteStartTransaction(status="Accepted")

    @_on("RemoteStopTransaction")
    def on_remote_stop_transaction(self, transaction_id: int, **_: Any) -> Any:
        """Accepted when ``transaction_id`` runs here."""
        if transaction_id not in self.station.transactions:
            return call_result.RemoteStopTransaction(status="Rejected")
        if self.auto_stop and transaction_id not in self.station.stopping:
            self.station.stopping.add(transaction_id)
            self._defer("remote-stop", lambda: self.run_remote_stop(transaction_id))
        return call_result.RemoteStopTransaction(status="Accepted")

    @_on("UnlockConnector")
    def on_unlock_connector(self, connector_id: int, **_: Any) -> Any:
        status = "Unlocked" if self.station.exists(connector_id) else "NotSupported"
        return call_result.UnlockConnector(status=status)

    # --- reservations --------------------------------------------------------------------

    @_on("ReserveNow")
    def on_reserve_now(
        self,
        connector_id: int,
        expiry_date: str,
        id_tag: str,
        reservation_id: int,
        parent_id_tag: str | None = None,
        **_: Any,
    ) -> Any:
        """Connector 0 (ReserveConnectorZeroSupported is not offered) and an expiry in the past
        are Rejected; otherwise ``StationState.check_reserve`` decides."""
        expiry = parse_datetime(expiry_date)
        if connector_id == 0 or expiry <= utc_now():
            return call_result.ReserveNow(status="Rejected")
        status = self.station.check_reserve(connector_id, reservation_id)
        if status == "Accepted":
            reservation = Reservation(reservation_id, connector_id, id_tag, expiry, parent_id_tag)
            replaced = self.station.reserve(reservation)
            self.arm_expiry(reservation)
            self._defer("reserved", lambda: self.announce_reservation(reservation, replaced))
        return call_result.ReserveNow(status=status)

    @_on("CancelReservation")
    def on_cancel_reservation(self, reservation_id: int, **_: Any) -> Any:
        cancelled = self.station.cancel(reservation_id)
        if cancelled is None:
            return call_result.CancelReservation(status="Rejected")
        self.disarm_expiry(reservation_id)
        self._defer("cancelled", lambda: self.announce_available(cancelled.unit_id))
        return call_result.CancelReservation(status="Accepted")

    # --- smart charging ------------------------------------------------------------------

    @_on("SetChargingProfile")
    def on_set_charging_profile(self, connector_id: int, **_: Any) -> Any:
        """Rejected for an unknown connector, a ChargePointMaxProfile off connector 0 and a
        TxProfile without its transaction running on the connector; otherwise stored."""
        raw = self.current_payload()["csChargingProfiles"]
        profile = ChargingProfile.from_ocpp16(raw, connector_id, utc_now())
        accepted = connector_id == 0 or self.station.exists(connector_id)
        if profile.purpose == CHARGE_POINT_MAX_PROFILE and connector_id != 0:
            accepted = False
        if profile.purpose == TX_PROFILE:
            running = self.station.transaction_on(connector_id) if connector_id else None
            accepted = accepted and running is not None
            if running is not None and profile.transaction_id not in (
                None,
                running.transaction_id,
            ):
                accepted = False
        if accepted:
            self.profiles.install(profile)
        return call_result.SetChargingProfile(status="Accepted" if accepted else "Rejected")

    @_on("ClearChargingProfile")
    def on_clear_charging_profile(
        self,
        id: int | None = None,
        connector_id: int | None = None,
        charging_profile_purpose: str | None = None,
        stack_level: int | None = None,
        **_: Any,
    ) -> Any:
        removed = self.profiles.clear(
            profile_id=id,
            unit_id=connector_id,
            purpose=charging_profile_purpose,
            stack_level=stack_level,
        )
        return call_result.ClearChargingProfile(status="Accepted" if removed else "Unknown")

    @_on("GetCompositeSchedule")
    def on_get_composite_schedule(
        self, connector_id: int, duration: int, charging_rate_unit: str | None = None, **_: Any
    ) -> Any:
        """Accepted with the composite schedule of the profiles that apply to the connector
        (0: the charger's own), from now on; Rejected when none applies."""
        if connector_id != 0 and not self.station.exists(connector_id):
            return call_result.GetCompositeSchedule(status="Rejected")
        running = self.station.transaction_on(connector_id) if connector_id else None
        composite = composite_schedule(
            self.profiles.applicable(
                connector_id, running.transaction_id if running is not None else None
            ),
            start=utc_now().replace(microsecond=0),
            duration=duration,
            unit=charging_rate_unit,
            tx_start=running.started_at if running is not None else None,
        )
        if composite is None:
            return call_result.GetCompositeSchedule(status="Rejected")
        payload = composite.to_ocpp16(connector_id)
        return call_result.GetCompositeSchedule(
            status="Accepted",
            connector_id=connector_id,
            schedule_start=payload["scheduleStart"],
            charging_schedule=payload["chargingSchedule"],
        )
