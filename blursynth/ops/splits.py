"""Deterministic assignment of whole sources to the train/val splits."""

from __future__ import annotations

from blursynth.seeding import derive_seed


def assign_splits(keys: list[str], val_fraction: float, seed: int) -> dict[str, str]:
    """Send ``round(val_fraction * len(keys))`` whole sources to ``val`` (no source is in two splits).

    Sources are ranked by a hash of (seed, key), so the assignment depends only on the set of keys and the
    seed, never on processing order. With ``val_fraction > 0`` and at least two sources, val gets at least
    one source and train keeps at least one.
    """
    keys = list(keys)
    n_val = 0
    if val_fraction > 0 and len(keys) >= 2:
        n_val = min(len(keys) - 1, max(1, round(val_fraction * len(keys))))
    ranked = sorted(keys, key=lambda k: (derive_seed(seed, "split", k), k))
    val = set(ranked[:n_val])
    return {k: ("val" if k in val else "train") for k in keys}
