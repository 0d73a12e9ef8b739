"""OCPP-J RPC framework shared by the 1.6 and 2.0.1 adapters: frames, errors, connection."""
