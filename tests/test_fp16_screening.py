"""FP16 candidate screening by adaptive group testing (issue 19): the best candidates with fewer emulator runs
than candidates, when output noise adds up."""

from __future__ import annotations

import numpy as np

from dlakit.recover.mixed import Candidate, screen_groups


class AdditiveTrials:
    """Output noise = base minus the gains of the candidates in FP16 (each node is one candidate)."""

    def __init__(self, gains: dict[str, float], base: float) -> None:
        self.gains, self.base, self.runs = gains, base, 0

    def sqnrs(self, trials, source, description, progress=False):  # type: ignore[no-untyped-def]
        self.runs += len(trials)
        return [-10 * np.log10(self.base - sum(self.gains[n] for n in fp16)) for _, fp16 in trials]


def _pool(count: int, seed: int) -> tuple[list[Candidate], dict[str, float]]:
    rng = np.random.default_rng(seed)
    gains = {f"t{i}": float(g) for i, g in enumerate(rng.pareto(1.5, count) * 1e-4)}
    pool = [Candidate(name, [], frozenset({name}), int(rng.integers(1_000, 100_000)), float(rng.random()))
            for name in gains]
    return pool, gains


def test_group_testing_finds_the_exact_best_with_fewer_runs_than_candidates():
    for seed in range(3):
        pool, gains = _pool(96, seed)
        base = sum(gains.values()) * 1.5
        trials = AdditiveTrials(gains, base)
        floor = 2_000.0
        ranked = screen_groups(trials, {}, pool, None, base, floor, 12)  # type: ignore[arg-type]
        best = sorted(pool, key=lambda c: -gains[c.tensor] / max(c.macs, floor))[:12]
        assert [c.tensor for c in ranked] == [c.tensor for c in best]
        assert trials.runs < len(pool) * 0.8, trials.runs


def test_a_pool_smaller_than_a_group_is_still_ranked_by_gain():
    pool, gains = _pool(5, 7)
    gains["t2"] = 0.0  # gains nothing: never ranked
    base = sum(gains.values()) * 2
    ranked = screen_groups(AdditiveTrials(gains, base), {}, pool, None, base, 1.0, 12)  # type: ignore[arg-type]
    assert {c.tensor for c in ranked} == {"t0", "t1", "t3", "t4"}
