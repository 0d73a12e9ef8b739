"""OCPP 2.0.1 adapter: wire payloads <-> version-neutral domain, one thin handler per action."""
