"""Regions partition the pairs, budgets cap the queue, human labels always win."""

import warnings

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rlthf_selector.config import CurveConfig, SelectionConfig
from rlthf_selector.curve import analyze_curve
from rlthf_selector.pairs import LabelSource
from rlthf_selector.selection import Region, assign_regions, priority_key, resolve_labels, select_pairs


@st.composite
def selection_inputs(draw):
    n = draw(st.integers(0, 300))
    gaps = draw(st.lists(st.floats(-20, 20, allow_nan=False), min_size=n, max_size=n))
    human = draw(st.lists(st.sampled_from([-1, 0, 0, 1]), min_size=n, max_size=n))
    ai = draw(st.lists(st.sampled_from([-1, 0, 1, 1]), min_size=n, max_size=n))
    budget = draw(st.integers(0, 400))
    beta = draw(st.floats(0, 0.9))
    priority = draw(st.sampled_from(["lowest-gap", "knee-first", "margin"]))
    fill = draw(st.booleans())
    band_first = draw(st.booleans())
    reflection = draw(st.sampled_from(["gap", "index", "none"]))
    return (np.array(gaps, float), np.array(human, np.int8), np.array(ai, np.int8), budget, beta,
            SelectionConfig(priority=priority, fill_budget=fill, band_first=band_first), CurveConfig(reflection=reflection))


@settings(max_examples=150, deadline=None)
@given(selection_inputs())
def test_selection_properties(inputs):
    gap, human, ai, budget, beta, config, curve_config = inputs
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        curve = analyze_curve(gap, config=curve_config)
    sel = select_pairs(gap, curve, human_label=human, budget=budget, back_off=beta, config=config)
    n = gap.shape[0]
    # Regions partition the pairs: one valid region each.
    assert sel.region.shape == (n,)
    assert set(np.unique(sel.region)) <= {int(r) for r in Region}
    # The queue respects the budget, has no duplicates and never asks twice for a human label.
    assert sel.human_queue.shape[0] <= budget
    assert np.unique(sel.human_queue).shape[0] == sel.human_queue.shape[0]
    assert np.all(human[sel.human_queue] == 0)
    if not config.fill_budget:
        assert np.all(sel.region[sel.human_queue] == Region.HUMAN)
    # With band_first, band pairs come before any pair outside the band.
    in_band = sel.region[sel.human_queue] == Region.HUMAN
    if config.band_first:
        assert not np.any(np.diff(in_band.astype(int)) > 0)
    # Pairs being flipped are asked only after every other unlabeled pair.
    flipped_in_queue = sel.flip_mask[sel.human_queue]
    assert not np.any(np.diff(flipped_in_queue.astype(int)) < 0)
    # Flips never touch human-labelled pairs and only happen in the flip region.
    assert not np.any(sel.flip_mask & (human != 0))
    assert np.all(sel.region[sel.flip_mask] == Region.FLIP)
    # Human labels win over everything.
    labels, source = resolve_labels(ai, human, flip_mask=sel.flip_mask, rm_label=np.sign(gap + 1e-9).astype(np.int8))
    assert np.all(labels[human != 0] == human[human != 0])
    assert np.all(source[human != 0] == LabelSource.HUMAN)
    flipped = source == LabelSource.FLIPPED
    assert np.all(labels[flipped] == -ai[flipped])


def test_regions_follow_curve_positions():
    rng = np.random.default_rng(0)
    gap = np.concatenate([np.linspace(10, 2, 100), np.linspace(2, -1, 700), np.linspace(-1, -10, 200)])
    gap = rng.permutation(gap)
    curve = analyze_curve(gap)
    region = assign_regions(curve, back_off=0.25)
    by_rank = region[curve.order]
    # Along the sorted curve the regions appear in the order trusted, held, human, flip.
    order_of = {Region.TRUSTED: 0, Region.HELD: 1, Region.HUMAN: 2, Region.FLIP: 3}
    ranks = np.array([order_of[Region(r)] for r in by_rank])
    assert np.all(np.diff(ranks) >= 0)
    held = (region == Region.HELD).sum()
    assert held == curve.knee_index - int(np.floor(curve.knee_index * 0.75))


def test_lowest_gap_priority_asks_the_most_contradicted_first():
    gap = np.array([3.0, -0.5, 0.2, -2.0, 1.0] * 10)
    key = priority_key(gap, strategy="lowest-gap")
    assert gap[np.argmin(key)] == -2.0
    key = priority_key(gap, strategy="margin")
    assert gap[np.argmin(key)] == 0.2


def test_evidence_fuses_with_the_gap_rank():
    gap = np.array([-1.0, 0.0, 1.0, 2.0])
    doubt = np.array([0.0, 0.0, 0.0, 1.0])
    only_gap = priority_key(gap, strategy="lowest-gap", judge_doubt=doubt, evidence_weight=0.0)
    only_doubt = priority_key(gap, strategy="lowest-gap", judge_doubt=doubt, evidence_weight=1.0)
    assert np.argmin(only_gap) == 0
    assert np.argmin(only_doubt) == 3


def test_unknown_strategy_and_bad_budget_are_named():
    with pytest.raises(ValueError, match="priority strategy 'nope'"):
        priority_key(np.zeros(3), strategy="nope")
    curve = analyze_curve(np.zeros(3))
    with pytest.raises(ValueError, match="budget"):
        select_pairs(np.zeros(3), curve, human_label=np.zeros(3, np.int8), budget=-1, back_off=0.1)
    with pytest.raises(ValueError, match="back_off"):
        assign_regions(curve, back_off=1.0)


def test_resolution_order_human_then_flip_then_ai_then_rm():
    ai = np.array([1, 1, 0, -1], np.int8)
    human = np.array([-1, 0, 0, 0], np.int8)
    flip = np.array([True, True, True, False])
    rm = np.array([1, 1, -1, 1], np.int8)
    labels, source = resolve_labels(ai, human, flip_mask=flip, rm_label=rm)
    np.testing.assert_array_equal(labels, [-1, -1, -1, -1])
    np.testing.assert_array_equal(source, [LabelSource.HUMAN, LabelSource.FLIPPED, LabelSource.RM, LabelSource.AI])


def test_mix_control_draws_spreads_uniform_draws_through_the_queue():
    from rlthf_selector.selection import mix_control_draws

    unlabeled = np.ones(100, dtype=bool)
    unlabeled[90:] = False
    queue = np.arange(20, dtype=np.int64)
    batch, is_control = mix_control_draws(queue, unlabeled=unlabeled, share=0.1, rng=np.random.default_rng(0))
    assert batch.shape == (20,) and is_control.sum() == 2
    assert np.flatnonzero(is_control).tolist() == [5, 15]  # evenly spread
    assert len(set(batch.tolist())) == 20 and unlabeled[batch].all()
    # The queue keeps its order in the other slots and loses only its tail (or pairs the control took).
    rest = batch[~is_control]
    assert np.all(np.diff(rest) > 0) and set(rest.tolist()) <= set(range(20))
    # Control draws are uniform over every unlabeled pair, queued ones included.
    counts = np.zeros(100)
    for seed in range(3000):
        b, c = mix_control_draws(queue, unlabeled=unlabeled, share=0.1, rng=np.random.default_rng(seed))
        np.add.at(counts, b[c], 1)
    assert counts[90:].sum() == 0
    expected = 3000 * 2 / 90
    assert counts[:20].mean() == pytest.approx(expected, rel=0.1) and counts[20:90].mean() == pytest.approx(expected, rel=0.1)


def test_mix_control_draws_edges():
    from rlthf_selector.selection import mix_control_draws

    rng = np.random.default_rng(0)
    unlabeled = np.ones(10, dtype=bool)
    queue = np.array([3, 1, 4], dtype=np.int64)
    batch, is_control = mix_control_draws(queue, unlabeled=unlabeled, share=0.0, rng=rng)
    assert batch.tolist() == [3, 1, 4] and not is_control.any()
    _, is_control = mix_control_draws(queue, unlabeled=unlabeled, share=0.01, rng=rng)
    assert is_control.sum() == 1  # at least one control draw in every batch
    batch, is_control = mix_control_draws(np.zeros(0, np.int64), unlabeled=unlabeled, share=0.5, rng=rng)
    assert batch.size == 0
    unlabeled[1] = False
    with pytest.raises(ValueError, match="already has a human label"):
        mix_control_draws(queue, unlabeled=unlabeled, share=0.1, rng=rng)
    with pytest.raises(ValueError, match="control share"):
        mix_control_draws(queue, unlabeled=np.ones(10, bool), share=1.5, rng=rng)


def test_adaptive_control_share_known_answers():
    from rlthf_selector.selection import adaptive_control_share

    # Beta(1, 6) (control: 0 of 5 overturned) above Beta(6, 1) (queue: 5 of 5): 1 / C(12, 6).
    assert adaptive_control_share(5, 5, 0, 5, floor=0.0) == pytest.approx(1 / 924, rel=1e-6)
    assert adaptive_control_share(0, 5, 5, 5, floor=0.0) == pytest.approx(1 - 1 / 924, rel=1e-6)
    # The same answers in both groups: a coin toss, so half the batch.
    assert adaptive_control_share(30, 100, 30, 100, floor=0.1) == pytest.approx(0.5, abs=1e-6)
    # A queue that clearly wins keeps all but the floor; one that clearly loses gives the control everything.
    assert adaptive_control_share(60, 100, 20, 100, floor=0.1) == 0.1
    assert adaptive_control_share(200, 1000, 500, 1000, floor=0.1) == pytest.approx(1.0)
    # Nothing answered in a group: nothing to compare, so the floor.
    assert adaptive_control_share(0, 0, 3, 4, floor=0.2) == 0.2
    assert adaptive_control_share(3, 4, 0, 0, floor=0.2) == 0.2
    # More evidence that the queue loses, a larger share.
    shares = [adaptive_control_share(3 * k, 10 * k, 5 * k, 10 * k, floor=0.0) for k in (1, 4, 16)]
    assert shares == sorted(shares) and shares[-1] > 0.99


def test_adaptive_control_share_names_bad_input():
    from rlthf_selector.selection import adaptive_control_share

    with pytest.raises(ValueError, match="control share must be in"):
        adaptive_control_share(1, 2, 1, 2, floor=1.5)
    with pytest.raises(ValueError, match="queue: 3 overturned of 2 answered"):
        adaptive_control_share(3, 2, 1, 2, floor=0.1)
    with pytest.raises(ValueError, match="control: -1 overturned"):
        adaptive_control_share(1, 2, -1, 2, floor=0.1)


def test_ranking_shares_known_answers():
    from rlthf_selector.selection import adaptive_control_share, ranking_shares

    rng = lambda: np.random.default_rng(0)  # noqa: E731
    # Until the queue and the control both have answers, the queue keeps all but the floor.
    assert ranking_shares((0, 0), (0, 0), (3, 4), floor=0.1, rng=rng()) == {"queue": 0.9, "reversed": 0.0, "control": 0.1}
    assert ranking_shares((3, 4), (0, 0), (0, 0), floor=0.2, rng=rng()) == {"queue": 0.8, "reversed": 0.0, "control": 0.2}
    # A reversed ranking that never finds a mistake drops out: the shares are the two-arm closed form's (Monte Carlo).
    for queue, control in (((30, 100), (30, 100)), ((3, 10), (5, 10)), ((12, 30), (6, 30))):
        shares = ranking_shares(queue, (0, 2000), control, floor=0.0, rng=rng(), draws=200_000)
        assert shares["reversed"] == 0.0
        assert shares["control"] == pytest.approx(adaptive_control_share(*queue, *control, floor=0.0), abs=0.005)
    # Three sources with the same answers: a three-way toss.
    even = ranking_shares((300, 1000), (300, 1000), (300, 1000), floor=0.0, rng=rng(), draws=200_000)
    assert all(v == pytest.approx(1 / 3, abs=0.01) for v in even.values())
    # The reversed ranking's prior mirrors the queue about the control: untried, it is worth a label where the queue
    # loses to random draws, and not where the queue wins.
    losing = ranking_shares((5, 100), (0, 0), (50, 100), floor=0.1, rng=rng())
    assert losing["reversed"] > 0.85 and losing["queue"] < 0.01
    winning = ranking_shares((60, 100), (0, 0), (20, 100), floor=0.1, rng=rng())
    assert winning["reversed"] < 0.01 and winning["control"] == 0.1
    # Its own answers take over from the prior.
    assert ranking_shares((5, 100), (0, 20), (50, 100), floor=0.1, rng=rng())["control"] > 0.99
    for shares in (losing, winning, even):
        assert sum(shares.values()) == pytest.approx(1.0) and min(shares.values()) >= 0.0
    # Seeded, the shares are reproducible.
    assert ranking_shares((3, 9), (4, 6), (2, 5), floor=0.1, rng=rng()) == ranking_shares((3, 9), (4, 6), (2, 5), floor=0.1, rng=rng())


def test_ranking_shares_names_bad_input():
    from rlthf_selector.selection import ranking_shares

    rng = np.random.default_rng(0)
    with pytest.raises(ValueError, match="control share must be in"):
        ranking_shares((1, 2), (0, 0), (1, 2), floor=-0.1, rng=rng)
    with pytest.raises(ValueError, match="prior_strength must be > 0"):
        ranking_shares((1, 2), (0, 0), (1, 2), floor=0.1, rng=rng, prior_strength=0.0)
    with pytest.raises(ValueError, match="reversed queue: 3 overturned of 2 answered"):
        ranking_shares((1, 2), (3, 2), (1, 2), floor=0.1, rng=rng)


def test_batch_shares_follow_the_options():
    from rlthf_selector.selection import adaptive_control_share, batch_shares, ranking_shares

    counts = {"queue": (5, 100), "reversed": (0, 0), "control": (50, 100)}  # the queue loses
    rng = lambda: np.random.default_rng(0)  # noqa: E731
    assert batch_shares(counts, floor=0.1, adapt=False, reversed_ranking=False, rng=rng()) == (0.1, 0.0)
    assert batch_shares(counts, floor=0.1, adapt=True, reversed_ranking=False, rng=rng()) == (
        adaptive_control_share(5, 100, 50, 100, floor=0.1), 0.0)
    three = ranking_shares((5, 100), (0, 0), (50, 100), floor=0.1, rng=rng())
    assert batch_shares(counts, floor=0.1, adapt=True, reversed_ranking=True, rng=rng()) == (
        three["control"], pytest.approx(three["reversed"]))
    # A fixed control share: the targeted slots are still shared between the queue and the reversed ranking.
    control, reversed_share = batch_shares(counts, floor=0.1, adapt=False, reversed_ranking=True, rng=rng())
    assert control == 0.1 and reversed_share == pytest.approx(0.9 * three["reversed"] / (1 - three["control"]))
    # No control draws: nothing to compare with, so the queue alone.
    assert batch_shares(counts, floor=0.0, adapt=True, reversed_ranking=True, rng=rng()) == (0.0, 0.0)


def test_interleave_reversed_spreads_the_share_and_fills_from_the_other_ranking():
    from rlthf_selector.selection import interleave_reversed

    n = 200
    gap = np.linspace(-1.0, 1.0, n)  # pair i's oriented gap rises with i: the reversed ranking starts at 199
    drawable = np.ones(n, dtype=bool)
    queue = np.arange(40)
    order, from_rev = interleave_reversed(queue, gap, drawable=drawable, share=0.0, length=20)
    assert order.tolist() == list(range(20)) and not from_rev.any()
    order, from_rev = interleave_reversed(queue, gap, drawable=drawable, share=0.25, length=20)
    assert from_rev.sum() == 5 and all(from_rev[i:i + 4].sum() == 1 for i in range(0, 20, 4))
    assert order[from_rev].tolist() == [199, 198, 197, 196, 195] and order[~from_rev].tolist() == list(range(15))
    # Only drawable pairs outside the queue are served reversed.
    drawable[199] = False
    order, from_rev = interleave_reversed(np.array([198, 0]), gap, drawable=drawable, share=0.5, length=4)
    assert sorted(order[from_rev].tolist()) == [196, 197] and order[~from_rev].tolist() == [198, 0]
    # A queue that runs out leaves its slots to the reversed ranking, and the reverse.
    order, from_rev = interleave_reversed(queue[:3], gap, drawable=np.ones(n, bool), share=0.5, length=10)
    assert len(order) == 10 and (~from_rev).sum() == 3 and from_rev.sum() == 7
    few = np.zeros(n, dtype=bool)
    few[[150, 160]] = True
    order, from_rev = interleave_reversed(queue, gap, drawable=few, share=0.5, length=10)
    assert len(order) == 10 and order[from_rev].tolist() == [160, 150]


def test_beta_exceedance_known_answers():
    from rlthf_selector.selection import beta_exceedance

    assert beta_exceedance((1, 1), (1, 1)) == pytest.approx(0.5)
    assert beta_exceedance((2, 1), (1, 1)) == pytest.approx(2 / 3)  # integral of 2x * x over [0, 1]
    assert beta_exceedance((1, 2), (1, 1)) == pytest.approx(1 / 3)
    for x, y in (((3, 7), (5, 2)), ((40, 60), (35, 70)), ((2001, 3000), (501, 500))):
        assert beta_exceedance(x, y) + beta_exceedance(y, x) == pytest.approx(1.0, abs=1e-9)
    # Large counts stay finite: rates 0.48 (50,000 answers) against 0.50 (5,000), z = 2.7 by the normal approximation.
    assert beta_exceedance((2501, 2501), (24001, 26001)) == pytest.approx(0.9965, abs=5e-4)
