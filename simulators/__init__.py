"""Simulated OpenAI and vLLM backends: seeded, scripted latency, outage and budget-exhaustion profiles.

``create_app(flavour="openai"|"vllm", profile=..., seed=..., name=..., clock=...)`` returns an ASGI app;
``python -m simulators`` serves one with uvicorn. See docs/SIMULATORS.md.
"""

from simulators.failures import SimulatedConnectionReset
from simulators.profile import Profile, ProfileError, list_profiles, load_profile
from simulators.simulator import SimulatorApp, create_app

__all__ = [
    "Profile",
    "ProfileError",
    "SimulatedConnectionReset",
    "SimulatorApp",
    "create_app",
    "list_profiles",
    "load_profile",
]
