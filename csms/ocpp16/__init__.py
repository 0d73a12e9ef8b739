"""OCPP 1.6J adapter: wire payloads <-> version-neutral domain, one thin handler per action."""
