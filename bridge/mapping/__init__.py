"""Pure mappings from the central system's domain to OCPI objects (no I/O)."""
