"""The OCPI HTTP API: one router per module, shared dependencies (authentication, routing
headers, pagination) and one error handler rendering the OCPI envelope."""
