"""The 2:4 pattern along C: checker, magnitude pruning, TensorRT's force pattern, tail rule, idempotence."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from dlakit.sparsity.pattern import (
    density,
    energy_kept,
    force_mask,
    has_2to4,
    magnitude_mask,
    prune,
    violating_groups,
)


def rand(shape, seed=0, dtype=np.float32):
    return np.random.default_rng(seed).standard_normal(shape).astype(dtype)


def groups_along_c(w: np.ndarray):
    """Every (k, r, s) run of 4 consecutive C values, the tail group as it is (reference, by loops)."""
    k, c = w.shape[:2]
    for ki in range(k):
        for pos in itertools.product(*(range(d) for d in w.shape[2:])):
            column = w[(ki, slice(None), *pos)]
            for start in range(0, c, 4):
                yield column[start:start + 4]


@pytest.mark.parametrize("shape", [(8, 16, 3, 3), (5, 72, 1, 1), (4, 67, 3, 1), (3, 66, 2, 2), (2, 65, 1, 3),
                                   (6, 128), (2, 4, 1, 1, 1)])
@pytest.mark.parametrize("mode", ["magnitude", "force"])
def test_every_group_of_four_has_two_zeros(shape, mode):
    w = rand(shape)
    p = prune(w, mode)
    assert p.shape == w.shape and p.dtype == w.dtype
    for group in groups_along_c(p):
        padded = np.concatenate([group, np.zeros(4 - len(group), group.dtype)])
        assert (padded == 0).sum() >= 2, group
    assert has_2to4(p) and violating_groups(p) == 0
    # only zeros are introduced: every kept value is the original one
    assert np.all((p == 0) | (p == w))


def test_magnitude_keeps_the_two_largest():
    w = rand((16, 96, 3, 3), seed=1)
    p = prune(w, "magnitude")
    for orig, pruned in zip(groups_along_c(w), groups_along_c(p), strict=True):
        if len(orig) < 4:
            continue
        top = np.sort(np.abs(orig))[-2:]
        np.testing.assert_array_equal(np.sort(np.abs(pruned[pruned != 0])), top)


def test_magnitude_ties_keep_the_earlier_channel():
    w = np.array([1.0, -1.0, 1.0, 0.5, 2.0, 2.0, -2.0, 2.0], np.float32).reshape(1, 8, 1, 1)
    p = prune(w, "magnitude").ravel()
    np.testing.assert_array_equal(p, [1.0, -1.0, 0, 0, 2.0, 2.0, 0, 0])


def test_force_is_tensorrts_position_pattern():
    """sampleUtils.cpp sparsify: per (k, r, s), keep C positions 0,1 of every window of 4, zero 2,3 (tail too)."""
    w = rand((3, 11, 2, 2)) + 5.0  # no zeros
    p = prune(w, "force")
    kept = np.array([c % 4 < 2 for c in range(11)])
    assert np.all(p[:, kept] == w[:, kept]) and np.all(p[:, ~kept] == 0)
    np.testing.assert_array_equal(force_mask(w), np.broadcast_to(kept[None, :, None, None], w.shape))


@pytest.mark.parametrize("c, zeros", [(65, 0), (66, 0), (67, 1)])
def test_tail_rule(c, zeros):
    """C mod 4 = 1 or 2: the tail is padded with zeros and already valid; C mod 4 = 3 needs one zero."""
    w = rand((2, c, 1, 1)) + 10.0
    p = prune(w, "magnitude")
    tail = p[:, c - c % 4:]
    assert np.all((tail == 0).sum(axis=1) == zeros)
    if zeros == 0:
        np.testing.assert_array_equal(tail, w[:, c - c % 4:])
    else:  # the smallest of the three is the one zeroed
        assert np.all(np.argmin(np.abs(w[:, c - 3:]), axis=1) == np.argmax(tail == 0, axis=1))


@pytest.mark.parametrize("mode", ["magnitude", "force"])
def test_idempotent(mode):
    w = rand((8, 100, 3, 3), seed=3)
    once = prune(w, mode)
    np.testing.assert_array_equal(prune(once, mode), once)


def test_magnitude_leaves_a_2to4_tensor_alone():
    """A model pruned elsewhere (ModelOpt, ASP) with zeros at other positions than force's is not changed."""
    w = prune(rand((4, 96, 3, 3), seed=4), "magnitude")
    assert has_2to4(w)
    np.testing.assert_array_equal(prune(w, "magnitude"), w)
    assert not np.array_equal(prune(w, "force"), w)  # force ignores where the zeros are


def test_checker_rejects_dense_and_counts_violations():
    w = rand((2, 8, 1, 1)) + 10.0
    assert not has_2to4(w)
    assert violating_groups(w) == 4
    w[0, 0:2] = 0
    assert violating_groups(w) == 3
    assert has_2to4(np.zeros((2, 8, 3, 3), np.float32))


def test_input_not_modified_and_fp16_kept():
    w = rand((4, 80, 3, 3), dtype=np.float16)
    copy = w.copy()
    p = prune(w)
    np.testing.assert_array_equal(w, copy)
    assert p.dtype == np.float16 and has_2to4(p)


def test_density_and_energy():
    w = rand((16, 128, 3, 3))
    p = prune(w)
    assert density(w) == 1.0 and density(p) == pytest.approx(0.5)
    kept = energy_kept(w, p)
    assert 0.5 < kept < 1.0  # the 2 largest of 4 carry more than half the energy
    assert energy_kept(w, w) == 1.0 and energy_kept(np.zeros(4), np.zeros(4)) == 1.0


def test_bad_inputs():
    with pytest.raises(ValueError):
        prune(np.ones(5, np.float32))
    with pytest.raises(ValueError):
        prune(np.ones((2, 4), np.float32), "random")


def test_masks_match_prune():
    w = rand((4, 70, 3, 3), seed=5)
    np.testing.assert_array_equal(prune(w, "magnitude"), np.where(magnitude_mask(w), w, 0))
    np.testing.assert_array_equal(prune(w, "force"), np.where(force_mask(w), w, 0))
