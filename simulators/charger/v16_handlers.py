"""Default answers of the OCPP 1.6 simulator to calls initiated by the central system.

The handlers are registered with ``ocpp.routing.on``; the library validates the incoming request
against the 1.6 JSON schema before calling them and validates the response they return.
Fault injection (silence, CallErrors, overridden answers) happens before these handlers are
reached, see ``SimulatorCore._on_csms_call``. The stateful answers to remote-control and
smart-charging calls are in ``v16_commands``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar, cast

from ocpp.routing import on
from ocpp.v16 import call_result

_Handler = TypeVar("_Handler", bound=Callable[..., Any])

SUPPORTED_FEATURE_PROFILES = (
    "Core,FirmwareManagement,LocalAuthListManagement,Reservation,SmartCharging,RemoteTrigger"
)
READ_ONLY_KEYS = frozenset({"NumberOfConnectors", "SupportedFeatureProfiles"})


def _on(action: str) -> Callable[[_Handler], _Handler]:
    """Typed wrapper around the untyped ``ocpp.routing.on`` decorator."""
    return cast("Callable[[_Handler], _Handler]", on(action))


def default_configuration(connectors: int) -> dict[str, str]:
    """Configuration keys reported by GetConfiguration (values are strings, as in OCPP 1.6)."""
    return {
        "AuthorizeRemoteTxRequests": "false",
        "ClockAlignedDataInterval": "0",
        "ConnectionTimeOut": "60",
        "HeartbeatInterval": "300",
        "LocalAuthorizeOffline": "true",
        "LocalPreAuthorize": "false",
        "MeterValueSampleInterval": "60",
        "MeterValuesSampledData": "Energy.Active.Import.Register,Power.Active.Import,"
        "Current.Import,SoC",
        "NumberOfConnectors": str(connectors),
        "StopTransactionOnInvalidId": "true",
        "SupportedFeatureProfiles": SUPPORTED_FEATURE_PROFILES,
    }


class CsmsCallHandlers16:
    """Mixin answering CSMS-initiated 1.6 calls; the host class provides ``configuration``."""

    configuration: dict[str, str]

    @_on("GetConfiguration")
    def on_get_configuration(self, key: list[str] | None = None, **_: Any) -> Any:
        wanted = key or sorted(self.configuration)
        known = [k for k in wanted if k in self.configuration]
        unknown = [k for k in wanted if k not in self.configuration]
        return call_result.GetConfiguration(
            configuration_key=[
                {"key": k, "readonly": k in READ_ONLY_KEYS, "value": self.configuration[k]}
                for k in known
            ],
            unknown_key=unknown or None,
        )

    @_on("ChangeConfiguration")
    def on_change_configuration(self, key: str, value: str, **_: Any) -> Any:
        if key in READ_ONLY_KEYS:
            return call_result.ChangeConfiguration(status="Rejected")
        self.configuration[key] = value
        return call_result.ChangeConfiguration(status="Accepted")

    @_on("Reset")
    def on_reset(self, **_: Any) -> Any:
        return call_result.Reset(status="Accepted")

    @_on("ChangeAvailability")
    def on_change_availability(self, **_: Any) -> Any:
        return call_result.ChangeAvailability(status="Accepted")

    @_on("TriggerMessage")
    def on_trigger_message(self, **_: Any) -> Any:
        return call_result.TriggerMessage(status="Accepted")

    @_on("DataTransfer")
    def on_data_transfer(self, **_: Any) -> Any:
        return call_result.DataTransfer(status="UnknownVendorId")

    @_on("ClearCache")
    def on_clear_cache(self, **_: Any) -> Any:
        return call_result.ClearCache(status="Accepted")

    @_on("GetLocalListVersion")
    def on_get_local_list_version(self, **_: Any) -> Any:
        return call_result.GetLocalListVersion(list_version=0)

    @_on("SendLocalList")
    def on_send_local_list(self, **_: Any) -> Any:
        return call_result.SendLocalList(status="Accepted")

    @_on("GetDiagnostics")
    def on_get_diagnostics(self, **_: Any) -> Any:
        return call_result.GetDiagnostics()

    @_on("UpdateFirmware")
    def on_update_firmware(self, **_: Any) -> Any:
        return call_result.UpdateFirmware()
