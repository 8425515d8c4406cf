"""Randomness, seeded.

Every random decision (routing, jitter, chaos, ids) draws from an :class:`Rng` derived from one seed. A child
stream is derived by name, so adding a consumer of randomness in one component does not shift the draws of
another: ``Rng(42).child("router")`` is the same stream whatever else was drawn before.
"""

from __future__ import annotations

import hashlib
import random


class Rng(random.Random):
    """A seeded ``random.Random`` that can derive independent named child streams and ids."""

    def __init__(self, seed: int | str = 0) -> None:
        self.seed_value = seed
        super().__init__(_digest(str(seed)))

    def child(self, name: str) -> Rng:
        return Rng(f"{self.seed_value}/{name}")

    def hex_id(self, nbytes: int = 12) -> str:
        return self.getrandbits(nbytes * 8).to_bytes(nbytes, "big").hex()


def _digest(text: str) -> int:
    return int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "big")
