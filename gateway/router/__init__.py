"""The router: every resilience policy, composed in one place."""
