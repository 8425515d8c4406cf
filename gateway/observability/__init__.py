"""Metrics, traces, logs and the request log."""
