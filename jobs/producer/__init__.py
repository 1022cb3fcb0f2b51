"""The producer: randomuser API or offline synthetic users -> sanitized -> Kafka (see docs/data-contract.md)."""
