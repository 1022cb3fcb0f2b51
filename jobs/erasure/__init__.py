"""The right to erasure: `userpipeline erase` (erase.py) and the ledger the stream consults (ledger.py)."""
