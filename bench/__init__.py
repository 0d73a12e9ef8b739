"""Reproducible load benchmarks of ocpi-bridge (issue #9): see docs/benchmarks.md.

Everything here drives real processes over real sockets on 127.0.0.1; nothing imports ``csms``
or ``bridge`` (the bridge under test is an ``ocpi-bridge serve`` subprocess)."""
