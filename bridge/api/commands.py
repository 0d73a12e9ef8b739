"""Commands module, Receiver interface (reference 3.6): ``POST /ocpi/2.2.1/commands/{command}``.

The synchronous answer is a CommandResponse (see ``bridge.commands`` for when it is ACCEPTED,
REJECTED or UNKNOWN_SESSION); an unknown Location, EVSE or connector is HTTP 404 with status
2003 and REJECTED; an invalid body or command type is status 2001. The CommandResult follows
on the command's ``response_url``.
"""

from __future__ import annotations

from fastapi import APIRouter, Response

from bridge.api.deps import JsonBody, Platform, Routed
from bridge.api.responses import ocpi_response
from bridge.commands import CommandRefused, CommandService, InvalidCommand
from bridge.errors import InvalidParameters
from bridge.ocpi.commands import CommandResponse, CommandType
from bridge.ocpi.locations import DisplayText
from bridge.ocpi.models import ModuleID
from bridge.ocpi.wire import VERSION

router = APIRouter(prefix=f"/ocpi/{VERSION}/{ModuleID.COMMANDS.value}")


def _service(platform: Platform) -> CommandService:
    if platform.commands is None:  # pragma: no cover - wired by the composition root
        raise RuntimeError("commands are not wired")
    return platform.commands


@router.post("/{command}")
async def post_command(
    command: str, body: JsonBody, platform: Platform, routed: Routed
) -> Response:
    try:
        kind = CommandType(command.upper())
    except ValueError:
        known = ", ".join(c.value for c in CommandType)
        raise InvalidParameters(f"unknown command {command!r} (one of {known})") from None
    service = _service(platform)
    try:
        response = await service.receive(routed.caller.partner, kind, body)
    except InvalidCommand as exc:
        raise InvalidParameters(str(exc)) from exc
    except CommandRefused as exc:
        refused = CommandResponse(
            result=exc.result,
            timeout=service.timeout_s,
            message=[DisplayText(language="en", text=str(exc)[:512])],
        )
        return ocpi_response(
            refused, status=exc.status_code, message=str(exc), http_status=exc.http_status
        )
    return ocpi_response(response)
