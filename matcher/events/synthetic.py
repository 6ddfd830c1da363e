"""A seeded synthetic event, the same for the tests and the benchmark."""
from __future__ import annotations

import random

from .solver import Candidate, EventSpec


def synthetic_event(seed: int = 7, firms: int = 30, institutions: int = 30, slots: int = 6,
                    pairs_per_firm: int = 8) -> EventSpec:
    """``firms`` firms × ``institutions`` institutions × ``slots`` slots with random match scores.

    Capacities are 3 meetings per firm and per institution and 15 tables per slot,
    the size of a district's half-day 对接会.
    """
    rng = random.Random(seed)
    cands = []
    outcome = 0
    for firm in range(1, firms + 1):
        for k in range(pairs_per_firm):
            outcome += 1
            cands.append(Candidate(firm * 100 + k % 3, outcome, firm, rng.randint(1, institutions),
                                   round(rng.random(), 4)))
    return EventSpec(
        slots=[f"{9 + i // 2:02d}:{'00' if i % 2 == 0 else '30'}" for i in range(slots)],
        candidates=cands,
        max_meetings_per_firm=3, max_meetings_per_institution=3, max_meetings_per_slot=15,
    )
