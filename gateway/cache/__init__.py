"""The response cache: exact-match answers of deterministic requests, kept on Redis."""
