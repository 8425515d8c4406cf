"""Faultline: an OpenAI-compatible inference gateway built on SRE principles."""

__version__ = "0.1.0"
