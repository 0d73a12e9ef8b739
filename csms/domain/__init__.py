"""Version-neutral domain model of the central system.

Frozen, keyword-only dataclasses with no I/O imports. Energy is in Wh, power in W, every time
is aware UTC. OCPP 1.6 and 2.0.1 adapters translate their wire messages into these types; the
services decide on them; the OCPI bridge consumes the events.
"""
