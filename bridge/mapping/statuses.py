"""OCPI EVSE status from what the charger reported (design.md section 5, reference 4.2).

One OCPI EVSE per OCPP 2.0.1 EVSE, and per OCPP 1.6 connectorId. The connectors of an EVSE are
aggregated: in use > reserved > available > unavailable > faulted. OCPP 1.6 connectorId 0 (the
whole charger) reporting ``Unavailable``/``Faulted`` overrides every EVSE of that charger until
it reports ``Available`` again. A charger offline longer than the liveness timeout shows
``UNKNOWN``, as does an EVSE that never reported a status.

1.6 ``Preparing``, ``SuspendedEV``, ``SuspendedEVSE`` and ``Finishing`` map to ``CHARGING``
("in use"): the spec has no normative table and this is the reading most eMSPs expect.
"""

from __future__ import annotations

from collections.abc import Iterable

from bridge.ocpi.locations import Status
from csms.domain.model import ConnectorStatus

_IN_USE = frozenset(
    {
        ConnectorStatus.PREPARING,
        ConnectorStatus.CHARGING,
        ConnectorStatus.SUSPENDED_EV,
        ConnectorStatus.SUSPENDED_EVSE,
        ConnectorStatus.FINISHING,
        ConnectorStatus.OCCUPIED,
    }
)

_PRECEDENCE: tuple[tuple[frozenset[ConnectorStatus], Status], ...] = (
    (_IN_USE, Status.CHARGING),
    (frozenset({ConnectorStatus.RESERVED}), Status.RESERVED),
    (frozenset({ConnectorStatus.AVAILABLE}), Status.AVAILABLE),
    (frozenset({ConnectorStatus.UNAVAILABLE}), Status.INOPERATIVE),
    (frozenset({ConnectorStatus.FAULTED}), Status.OUTOFORDER),
)


def to_ocpi_status(status: ConnectorStatus) -> Status:
    """The OCPI status of one connector's OCPP status."""
    for members, ocpi in _PRECEDENCE:
        if status in members:
            return ocpi
    raise ValueError(f"no OCPI status for {status!r}")  # pragma: no cover - enum is exhaustive


def to_ocpi_evse_status(
    connectors: Iterable[ConnectorStatus],
    *,
    whole_charger: ConnectorStatus | None = None,
    offline: bool = False,
) -> Status:
    """The status of an OCPI EVSE from its connectors' statuses, the charger-wide status (1.6
    connectorId 0) and whether the charger is offline beyond the liveness timeout."""
    if offline:
        return Status.UNKNOWN
    if whole_charger is ConnectorStatus.UNAVAILABLE:
        return Status.INOPERATIVE
    if whole_charger is ConnectorStatus.FAULTED:
        return Status.OUTOFORDER
    reported = set(connectors)
    for members, ocpi in _PRECEDENCE:
        if reported & members:
            return ocpi
    return Status.UNKNOWN
