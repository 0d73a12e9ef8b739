"""OCPI 2.2.1 wire format: envelope, types and the objects the bridge exchanges."""
