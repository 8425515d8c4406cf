"""Per-consumer quotas and rate limits on the shared state store."""
