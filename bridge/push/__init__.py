"""Outgoing OCPI traffic: the HTTP client every module uses (and, later, the outbox worker)."""
