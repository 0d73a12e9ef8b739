"""Stateful answers of the OCPP 2.0.1 simulator to the CSMS's remote-control and
smart-charging calls: Request{Start,Stop}Transaction, ReserveNow, CancelReservation,
UnlockConnector, SetChargingProfile, ClearChargingProfile and GetCompositeSchedule.

Same structure as ``v16_commands``: answers follow from ``station`` (per EVSE) and
``profiles``; the follow-ups run once the answer has been sent and are implemented by
``ChargerSimulator201``. The library hands nested structures over with snake_case keys, so the
raw payload (``current_payload()``) is read where structures matter.
"""

from __future__ import annotations

from collections.abc import Callable
from decimal import Decimal
from typing import Any, TypeVar, cast

from ocpp.routing import on
from ocpp.v201 import call_result
from ocpp.v201.enums import Action

from simulators.charger.common import utc_now
from simulators.charger.core import SimulatorCore
from simulators.charger.smart_charging import (
    DEFAULT_MAX_POWER_W,
    EXTERNAL_PROFILE,
    TX_PROFILE,
    ChargingProfile,
    ProfileStore,
    composite_schedule,
    parse_datetime,
)
from simulators.charger.station import Reservation, StartCheck, StationState
from simulators.charger.v201_model import EvseSpec

_Handler = TypeVar("_Handler", bound=Callable[..., Any])

STATION_MAX_PROFILE = "ChargingStationMaxProfile"


def _on(action: str) -> Callable[[_Handler], _Handler]:
    """Typed wrapper around the untyped ``ocpp.routing.on`` decorator."""
    return cast("Callable[[_Handler], _Handler]", on(action))


class CsmsCommandHandlers201(SimulatorCore):
    """Mixin of ``ChargerSimulator201``, which provides the state and the follow-ups below."""

    station: StationState
    profiles: ProfileStore
    auto_start: bool
    auto_stop: bool

    # --- provided by ChargerSimulator201 -------------------------------------------------

    def evse_spec(self, evse_id: int) -> EvseSpec | None:
        raise NotImplementedError

    async def run_remote_start(
        self,
        evse_id: int,
        id_token: tuple[str, str],
        remote_start_id: int,
        charging_profile: dict[str, Any] | None = None,
    ) -> dict[str, Any] | None:
        raise NotImplementedError

    async def run_remote_authorize(
        self, transaction_id: str, id_token: tuple[str, str], remote_start_id: int
    ) -> dict[str, Any]:
        raise NotImplementedError

    async def run_remote_stop(self, transaction_id: str) -> dict[str, Any] | None:
        raise NotImplementedError

    async def announce_reservation(
        self, reservation: Reservation, replaced: Reservation | None
    ) -> None:
        raise NotImplementedError

    async def announce_available(self, evse_id: int | None) -> None:
        raise NotImplementedError

    def arm_expiry(self, reservation: Reservation) -> None:
        raise NotImplementedError

    def disarm_expiry(self, reservation_id: int) -> None:
        raise NotImplementedError

    # --- transactions --------------------------------------------------------------------

    @_on(Action.request_start_transaction)
    def on_request_start_transaction(
        self, remote_start_id: int, evse_id: int | None = None, **_: Any
    ) -> Any:
        """A transaction already running on the EVSE for the same token, or without a token
        yet (cable plugged in first): Accepted with its transactionId. Otherwise Accepted when
        the EVSE (given, else the first free one) may start for the token: no transaction, not
        reserved for another token, not Unavailable/Faulted."""
        payload = self.current_payload()
        token = (str(payload["idToken"]["idToken"]), str(payload["idToken"]["type"]))
        profile = payload.get("chargingProfile")
        if profile is not None and profile["chargingProfilePurpose"] != TX_PROFILE:
            return call_result.RequestStartTransaction(status="Rejected")
        running = self.station.transaction_on(evse_id) if evse_id is not None else None
        if running is not None:
            if running.id_tag is None:
                if self.auto_start:
                    tx = str(running.transaction_id)
                    self._defer(
                        "remote-authorize",
                        lambda: self.run_remote_authorize(tx, token, remote_start_id),
                    )
            elif running.id_tag.upper() != token[0].upper():
                return call_result.RequestStartTransaction(status="Rejected")
            return call_result.RequestStartTransaction(
                status="Accepted", transaction_id=str(running.transaction_id)
            )
        if evse_id is None:
            unit = self.station.free_unit(token[0])
        elif self.station.check_start(evse_id, token[0]) is StartCheck.OK:
            unit = evse_id
        else:
            unit = None
        if unit is None:
            return call_result.RequestStartTransaction(status="Rejected")
        if self.auto_start:
            self.station.starting.add(unit)
            self._defer(
                "remote-start",
                lambda: self.run_remote_start(unit, token, remote_start_id, profile),
            )
        return call_result.RequestStartTransaction(status="Accepted")

    @_on(Action.request_stop_transaction)
    def on_request_stop_transaction(self, transaction_id: str, **_: Any) -> Any:
        """Accepted when ``transaction_id`` runs here."""
        if transaction_id not in self.station.transactions:
            return call_result.RequestStopTransaction(status="Rejected")
        if self.auto_stop and transaction_id not in self.station.stopping:
            self.station.stopping.add(transaction_id)
            self._defer("remote-stop", lambda: self.run_remote_stop(transaction_id))
        return call_result.RequestStopTransaction(status="Accepted")

    @_on(Action.unlock_connector)
    def on_unlock_connector(self, evse_id: int, connector_id: int, **_: Any) -> Any:
        spec = self.evse_spec(evse_id)
        known = spec is not None and 1 <= connector_id <= len(spec.connectors)
        return call_result.UnlockConnector(status="Unlocked" if known else "UnknownConnector")

    # --- reservations --------------------------------------------------------------------

    @_on(Action.reserve_now)
    def on_reserve_now(
        self,
        id: int,
        expiry_date_time: str,
        evse_id: int | None = None,
        connector_type: str | None = None,
        **_: Any,
    ) -> Any:
        """Rejected for an expiry in the past, an unknown EVSE or one without a connector of
        ``connectorType``; without evseId any matching EVSE may take it (the reservation then
        keeps one EVSE free); otherwise ``StationState.check_reserve`` decides."""
        expiry = parse_datetime(expiry_date_time)
        token = str(self.current_payload()["idToken"]["idToken"])
        units = tuple(
            evse
            for evse in self.station.unit_ids
            if connector_type is None or connector_type in self._connector_types(evse)
        )
        if expiry <= utc_now() or (evse_id is not None and evse_id not in units):
            return call_result.ReserveNow(status="Rejected")
        status = self.station.check_reserve(evse_id, id, units=units)
        if status == "Accepted":
            reservation = Reservation(id, evse_id, token, expiry, connector_type=connector_type)
            replaced = self.station.reserve(reservation)
            self.arm_expiry(reservation)
            self._defer("reserved", lambda: self.announce_reservation(reservation, replaced))
        return call_result.ReserveNow(status=status)

    def _connector_types(self, evse_id: int) -> tuple[str, ...]:
        spec = self.evse_spec(evse_id)
        return () if spec is None else spec.connectors

    @_on(Action.cancel_reservation)
    def on_cancel_reservation(self, reservation_id: int, **_: Any) -> Any:
        cancelled = self.station.cancel(reservation_id)
        if cancelled is None:
            return call_result.CancelReservation(status="Rejected")
        self.disarm_expiry(reservation_id)
        self._defer("cancelled", lambda: self.announce_available(cancelled.unit_id))
        return call_result.CancelReservation(status="Accepted")

    # --- smart charging ------------------------------------------------------------------

    @_on(Action.set_charging_profile)
    def on_set_charging_profile(self, evse_id: int, **_: Any) -> Any:
        """Rejected for an unknown EVSE, a ChargingStationMaxProfile off EVSE 0, external
        constraints (not the CSMS's to set) and a TxProfile without its transaction running
        on the EVSE; otherwise stored."""
        raw = self.current_payload()["chargingProfile"]
        profile = ChargingProfile.from_ocpp201(raw, evse_id, utc_now())
        accepted = evse_id == 0 or self.station.exists(evse_id)
        if profile.purpose == EXTERNAL_PROFILE or (
            profile.purpose == STATION_MAX_PROFILE and evse_id != 0
        ):
            accepted = False
        if profile.purpose == TX_PROFILE:
            running = self.station.transaction_on(evse_id) if evse_id else None
            accepted = accepted and running is not None
            if running is not None and profile.transaction_id not in (
                None,
                running.transaction_id,
            ):
                accepted = False
        if accepted:
            self.profiles.install(profile)
        return call_result.SetChargingProfile(status="Accepted" if accepted else "Rejected")

    @_on(Action.clear_charging_profile)
    def on_clear_charging_profile(self, charging_profile_id: int | None = None, **_: Any) -> Any:
        criteria = self.current_payload().get("chargingProfileCriteria") or {}
        removed = self.profiles.clear(
            profile_id=charging_profile_id,
            unit_id=criteria.get("evseId"),
            purpose=criteria.get("chargingProfilePurpose"),
            stack_level=criteria.get("stackLevel"),
        )
        return call_result.ClearChargingProfile(status="Accepted" if removed else "Unknown")

    @_on(Action.get_composite_schedule)
    def on_get_composite_schedule(
        self, duration: int, evse_id: int, charging_rate_unit: str | None = None, **_: Any
    ) -> Any:
        """Accepted with the composite schedule of the profiles that apply to the EVSE (0: the
        station's own), from now on; Rejected when none applies."""
        if evse_id != 0 and not self.station.exists(evse_id):
            return call_result.GetCompositeSchedule(status="Rejected")
        running = self.station.transaction_on(evse_id) if evse_id else None
        composite = composite_schedule(
            self.profiles.applicable(
                evse_id, running.transaction_id if running is not None else None
            ),
            start=utc_now().replace(microsecond=0),
            duration=duration,
            unit=charging_rate_unit,
            tx_start=running.started_at if running is not None else None,
            max_power_w=self._max_power_w(evse_id),
        )
        if composite is None:
            return call_result.GetCompositeSchedule(status="Rejected")
        return call_result.GetCompositeSchedule(
            status="Accepted", schedule=composite.to_ocpp201(evse_id)
        )

    def _max_power_w(self, evse_id: int) -> Decimal:
        """The EVSE's maximum power (EVSE 0: the sum over the EVSEs)."""
        evses = self.station.unit_ids if evse_id == 0 else (evse_id,)
        powers = [(spec.max_power_w if spec else None) for spec in map(self.evse_spec, evses)]
        return Decimal(sum(p if p is not None else DEFAULT_MAX_POWER_W for p in powers))
