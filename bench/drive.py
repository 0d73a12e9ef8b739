"""What a simulated charger does: boot, statuses, sessions and meter values, the same way in
OCPP 1.6 and 2.0.1."""

from __future__ import annotations

import json
from dataclasses import dataclass

from bench import frames
from bench.loadgen import CallFailed, Charger


@dataclass
class Transaction:
    """A running transaction of one charger."""

    ref: int | str  # 1.6: the central system's id; 2.0.1: ours
    meter_wh: int
    seq_no: int = 0


async def boot(charger: Charger) -> None:
    """BootNotification; a charger not Accepted fails."""
    reply = await charger.call(*frames.boot(charger.version))
    if '"Accepted"' not in reply:
        charger.stats.error("BootNotification:not-accepted")
        raise CallFailed(reply[:200])


async def status(charger: Charger, available: bool) -> None:
    await charger.call(*frames.status(charger.version, available))


async def start(charger: Charger, id_tag: str, serial: int, meter_wh: int = 0) -> Transaction:
    """Start a transaction on EVSE 1 with ``id_tag`` (``serial`` makes 2.0.1 ids unique)."""
    if charger.version == frames.V16:
        reply = await charger.call(*frames.start_16(id_tag, meter_wh))
        answer = json.loads(reply)[2]
        if answer.get("idTagInfo", {}).get("status") != "Accepted":
            charger.stats.error("StartTransaction:not-accepted")
        return Transaction(ref=int(answer["transactionId"]), meter_wh=meter_wh)
    ref = f"{charger.charger_id}-{serial}"
    reply = await charger.call(*frames.event_201("Started", ref, 0, meter_wh, id_tag))
    if '"Accepted"' not in reply:
        charger.stats.error("TransactionEvent:not-accepted")
    return Transaction(ref=ref, meter_wh=meter_wh)


async def meter(charger: Charger, tx: Transaction, step_wh: int = 10) -> None:
    """One periodic meter value (MeterValues / TransactionEvent Updated), a pre-built frame."""
    tx.meter_wh += step_wh
    message_id = charger.message_id()
    if charger.version == frames.V16:
        assert isinstance(tx.ref, int)
        frame = frames.meter_16(message_id, tx.ref, tx.meter_wh)
        await charger.send(message_id, "MeterValues", frame)
    else:
        tx.seq_no += 1
        frame = frames.updated_201(message_id, str(tx.ref), tx.seq_no, tx.meter_wh)
        await charger.send(message_id, "TransactionEvent", frame)


async def stop(charger: Charger, tx: Transaction) -> None:
    """End the transaction (StopTransaction / TransactionEvent Ended)."""
    if charger.version == frames.V16:
        assert isinstance(tx.ref, int)
        await charger.call(*frames.stop_16(tx.ref, tx.meter_wh))
    else:
        tx.seq_no += 1
        await charger.call(*frames.event_201("Ended", str(tx.ref), tx.seq_no, tx.meter_wh))
