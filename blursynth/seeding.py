"""The one seeding scheme of blursynth.

Every random choice is drawn from a generator seeded by ``derive_seed(global_seed, *key)``, where the key
names the thing being randomised (a source key, a sample index, ...). Results therefore never depend on
processing order or worker count.
"""

from __future__ import annotations

import hashlib

import numpy as np


def derive_seed(seed: int, *key: object) -> int:
    """Return a 64-bit seed derived from a global seed and a key (stable across runs and platforms)."""
    text = "\x1f".join([str(int(seed))] + [str(k) for k in key])
    return int.from_bytes(hashlib.blake2b(text.encode("utf-8"), digest_size=8).digest(), "little")


def create_rng(seed: int, *key: object) -> np.random.Generator:
    """A numpy Generator seeded by ``derive_seed(seed, *key)``."""
    return np.random.Generator(np.random.PCG64(derive_seed(seed, *key)))
