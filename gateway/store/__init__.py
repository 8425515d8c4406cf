"""The shared state store (Redis): one bound for every call, the store's health, probing off the request path."""
