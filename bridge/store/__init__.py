"""Storage of the OCPI side: partners (and, later, OCPI objects and the outbox). Shares the
central system's database and its single-writer discipline."""
