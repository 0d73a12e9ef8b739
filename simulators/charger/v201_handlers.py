"""Default answers of the OCPP 2.0.1 simulator to calls initiated by the central system.

The handlers are registered with ``ocpp.routing.on``/``after``; the library validates the
incoming request against the 2.0.1 JSON schema, hands it over with *snake_case* keys (nested
dicts included, e.g. ``{"evse": {"id": 1, "connector_id": 2}}``) and camelCases and validates
the response. Fault injection (silence, CallErrors, overridden answers) happens before these
handlers are reached, see ``SimulatorCore._on_csms_call``; an overridden GetBaseReport answer
therefore sends no NotifyReport. The stateful answers to remote-control and smart-charging calls
are in ``v201_commands``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar, cast

from ocpp.routing import after, on
from ocpp.v201 import call_result
from ocpp.v201.enums import Action

_Handler = TypeVar("_Handler", bound=Callable[..., Any])


def _on(action: str) -> Callable[[_Handler], _Handler]:
    """Typed wrapper around the untyped ``ocpp.routing.on`` decorator."""
    return cast("Callable[[_Handler], _Handler]", on(action))


def _after(action: str) -> Callable[[_Handler], _Handler]:
    """Typed wrapper around the untyped ``ocpp.routing.after`` decorator."""
    return cast("Callable[[_Handler], _Handler]", after(action))


def _key(item: dict[str, Any]) -> tuple[str, str]:
    return str(item["component"]["name"]), str(item["variable"]["name"])


class CsmsCallHandlers201:
    """Mixin answering CSMS-initiated 2.0.1 calls.

    The host class provides ``variables`` and ``start_report``.
    """

    variables: dict[tuple[str, str], str]

    def start_report(self, request_id: int) -> None:
        """Provided by the host class (``ChargerSimulator201``)."""
        ...

    @_on(Action.get_base_report)
    def on_get_base_report(self, **_: Any) -> Any:
        return call_result.GetBaseReport(status="Accepted")

    @_after(Action.get_base_report)
    def after_get_base_report(self, request_id: int, **_: Any) -> None:
        self.start_report(request_id)  # runs as a background task, after the answer was sent

    @_on(Action.get_variables)
    def on_get_variables(self, get_variable_data: list[dict[str, Any]], **_: Any) -> Any:
        results = []
        for item in get_variable_data:
            result: dict[str, Any] = {"component": item["component"], "variable": item["variable"]}
            attribute_type = item.get("attribute_type", "Actual")
            if _key(item) not in self.variables:
                result["attribute_status"] = "UnknownVariable"
            elif attribute_type != "Actual":
                result["attribute_status"] = "NotSupportedAttributeType"
                result["attribute_type"] = attribute_type
            else:
                result["attribute_status"] = "Accepted"
                result["attribute_value"] = self.variables[_key(item)]
            results.append(result)
        return call_result.GetVariables(get_variable_result=results)

    @_on(Action.set_variables)
    def on_set_variables(self, set_variable_data: list[dict[str, Any]], **_: Any) -> Any:
        results = []
        for item in set_variable_data:
            self.variables[_key(item)] = str(item["attribute_value"])
            results.append(
                {
                    "attribute_status": "Accepted",
                    "component": item["component"],
                    "variable": item["variable"],
                }
            )
        return call_result.SetVariables(set_variable_result=results)

    @_on(Action.reset)
    def on_reset(self, **_: Any) -> Any:
        return call_result.Reset(status="Accepted")

    @_on(Action.change_availability)
    def on_change_availability(self, **_: Any) -> Any:
        return call_result.ChangeAvailability(status="Accepted")

    @_on(Action.trigger_message)
    def on_trigger_message(self, **_: Any) -> Any:
        return call_result.TriggerMessage(status="Accepted")

    @_on(Action.data_transfer)
    def on_data_transfer(self, **_: Any) -> Any:
        return call_result.DataTransfer(status="UnknownVendorId")

    @_on(Action.clear_cache)
    def on_clear_cache(self, **_: Any) -> Any:
        return call_result.ClearCache(status="Accepted")

    @_on(Action.send_local_list)
    def on_send_local_list(self, **_: Any) -> Any:
        return call_result.SendLocalList(status="Accepted")

    @_on(Action.get_local_list_version)
    def on_get_local_list_version(self, **_: Any) -> Any:
        return call_result.GetLocalListVersion(version_number=0)
