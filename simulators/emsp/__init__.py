"""OCPI 2.2.1 eMSP simulator: the counterpart of the bridge's CPO side, for end-to-end tests
(``simulators.emsp.server.EmspSimulator``, in-process on 127.0.0.1) and for people
(``python -m simulators.emsp --help``)."""
