"""The upstreams' own health, checked actively off the request path."""
