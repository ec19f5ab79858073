"""Regions, the queue and the flips from the mistake model, the paper's procedure, label resolution, control draws."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rlthf_selector.curve import analyze_curve
from rlthf_selector.pairs import LabelSource
from rlthf_selector.selection import Region, assign_regions, paper_selection, resolve_labels, select_pairs


@st.composite
def selection_inputs(draw):
    n = draw(st.integers(0, 300))
    prob = np.array(draw(st.lists(st.floats(0, 1), min_size=n, max_size=n)))
    slack = np.array(draw(st.lists(st.floats(0, 1), min_size=n, max_size=n)))
    human = np.array(draw(st.lists(st.sampled_from([-1, 0, 0, 1]), min_size=n, max_size=n)), np.int8)
    ai = np.array(draw(st.lists(st.sampled_from([-1, 0, 1, 1]), min_size=n, max_size=n)), np.int8)
    prob[ai == 0] = np.nan  # no AI label: no P(wrong)
    return prob, prob * slack, human, ai, draw(st.integers(0, 400))


@settings(max_examples=150, deadline=None)
@given(selection_inputs())
def test_selection_properties(inputs):
    prob, lower, human, ai, budget = inputs
    n = prob.shape[0]
    sel = select_pairs(prob, lower, region=np.zeros(n, np.int8), human_label=human, budget=budget)
    # The queue respects the budget, has no duplicates and never asks twice for a human label.
    assert sel.human_queue.shape[0] == min(budget, int((human == 0).sum()))
    assert np.unique(sel.human_queue).shape[0] == sel.human_queue.shape[0]
    assert np.all(human[sel.human_queue] == 0)
    # Highest expected gain first: the chance an answer changes the label the pair keeps (flipped or not).
    assert np.all(np.diff(sel.gain[sel.human_queue]) <= 0)
    kept = np.where(np.isnan(prob), 0.5, np.where(sel.flip_mask, 1 - prob, prob))
    np.testing.assert_allclose(sel.gain[human == 0], kept[human == 0])
    # Flips: exactly the unlabeled pairs whose lower bound on P(wrong) is above one half, never a human-labelled one.
    np.testing.assert_array_equal(sel.flip_mask, (human == 0) & (np.nan_to_num(lower) > 0.5))
    # Human labels win over everything.
    labels, source = resolve_labels(ai, human, flip_mask=sel.flip_mask, rm_label=np.ones(n, np.int8))
    assert np.all(labels[human != 0] == human[human != 0])
    assert np.all(source[human != 0] == LabelSource.HUMAN)
    flipped = source == LabelSource.FLIPPED
    assert np.all(labels[flipped] == -ai[flipped])


def test_the_queue_asks_the_pairs_whose_final_label_an_answer_most_likely_changes():
    prob = np.array([0.1, 0.45, 0.9, 0.6, 0.3, np.nan])
    lower = np.array([0.05, 0.3, 0.8, 0.4, 0.2, np.nan])
    human = np.zeros(6, np.int8)
    region = np.zeros(6, np.int8)
    # No answer to come: pair 2 is flipped (lower bound 0.8), so an answer changes its label with chance 0.1; pair
    # 3 is doubted but stays the AI's, so an answer changes it with chance 0.6 and it is asked first.
    sel = select_pairs(prob, lower, region=region, human_label=human, budget=6)
    np.testing.assert_array_equal(sel.flip_mask, [False, False, True, False, False, False])
    np.testing.assert_allclose(sel.gain, [0.1, 0.45, 0.1, 0.6, 0.3, 0.5])
    np.testing.assert_array_equal(sel.human_queue, [3, 5, 1, 4, 0, 2])
    np.testing.assert_array_equal(sel.priority, [4, 2, 5, 0, 3, 1])
    # With answers to come that will let the model flip pair 3 too, its answer is worth 0.4: pair 1 goes first.
    ahead = np.array([0.05, 0.35, 0.85, 0.55, 0.25, np.nan])
    sel = select_pairs(prob, lower, region=region, human_label=human, budget=6, lower_ahead=ahead)
    np.testing.assert_array_equal(sel.flip_mask, [False, False, True, False, False, False])  # not flipped yet
    np.testing.assert_allclose(sel.gain, [0.1, 0.45, 0.1, 0.4, 0.3, 0.5])
    np.testing.assert_array_equal(sel.human_queue, [5, 1, 3, 4, 0, 2])
    labelled = np.array([0, 1, 0, 0, 0, 0], np.int8)
    sel = select_pairs(prob, lower, region=region, human_label=labelled, budget=2, lower_ahead=ahead)
    np.testing.assert_array_equal(sel.human_queue, [5, 3])
    assert sel.priority[1] == np.inf and sel.gain[1] == 0.0


def test_select_pairs_names_bad_input():
    z = np.zeros(3)
    with pytest.raises(ValueError, match="budget"):
        select_pairs(z, z, region=np.zeros(3, np.int8), human_label=np.zeros(3, np.int8), budget=-1)
    with pytest.raises(ValueError, match="one entry per pair"):
        select_pairs(z, z[:2], region=np.zeros(3, np.int8), human_label=np.zeros(3, np.int8), budget=1)
    with pytest.raises(ValueError, match="lower_ahead"):
        select_pairs(z, z, region=np.zeros(3, np.int8), human_label=np.zeros(3, np.int8), budget=1, lower_ahead=z[:1])
    with pytest.raises(ValueError, match="back_off"):
        assign_regions(analyze_curve(z), back_off=1.0)


def test_paper_selection_asks_the_band_most_contradicted_first_and_flips_beyond_the_reflection():
    gap = np.random.default_rng(0).normal(size=300)
    region = np.full(300, Region.TRUSTED, np.int8)
    region[gap < 0] = Region.HUMAN
    region[gap < -1.5] = Region.FLIP
    human = np.zeros(300, np.int8)
    human[np.flatnonzero(region == Region.HUMAN)[:3]] = 1
    human[np.flatnonzero(region == Region.FLIP)[:2]] = -1
    sel = paper_selection(gap, region, human_label=human, budget=10_000)
    band = (region == Region.HUMAN) & (human == 0)
    np.testing.assert_array_equal(np.sort(sel.human_queue), np.flatnonzero(band))  # the band only, all of it
    assert np.all(np.diff(gap[sel.human_queue]) >= 0)  # most contradicted first
    np.testing.assert_array_equal(sel.flip_mask, (region == Region.FLIP) & (human == 0))
    assert sel.flip_mask.sum() == (region == Region.FLIP).sum() - 2
    np.testing.assert_array_equal(paper_selection(gap, region, human_label=human, budget=5).human_queue,
                                  sel.human_queue[:5])


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


def test_resolution_order_human_then_flip_then_ai_then_rm():
    ai = np.array([1, 1, 0, -1], np.int8)
    human = np.array([-1, 0, 0, 0], np.int8)
    flip = np.array([True, True, True, False])
    rm = np.array([1, 1, -1, 1], np.int8)
    labels, source = resolve_labels(ai, human, flip_mask=flip, rm_label=rm)
    np.testing.assert_array_equal(labels, [-1, -1, -1, -1])
    np.testing.assert_array_equal(source, [LabelSource.HUMAN, LabelSource.FLIPPED, LabelSource.RM, LabelSource.AI])


def test_assemble_batch_paces_uniform_control_draws_through_the_batch():
    from rlthf_selector.selection import assemble_batch

    human = np.zeros(100, np.int8)
    human[90:] = 1  # answered already: never drawn
    ai = np.ones(100, np.int8)
    ai[85:90] = 0  # no AI label: nothing for a control draw to check
    queue = np.arange(20, dtype=np.int64)
    batch = assemble_batch(queue, human_label=human, ai_label=ai, length=20, share=0.1, rng=np.random.default_rng(0))
    assert batch.order.shape == (20,) and batch.is_control.sum() == 2
    # With no answers yet the j-th draw sits at the first slot m with j + 0.5 <= 0.1 (m + 1): slots 4 and 14.
    assert np.flatnonzero(batch.is_control).tolist() == [4, 14]
    assert set(batch.fresh_control.tolist()) == set(batch.order[batch.is_control].tolist())
    assert len(set(batch.order.tolist())) == 20 and (human[batch.order] == 0).all()
    # The queue keeps its order in the other slots and loses only its tail (or pairs the control took).
    rest = batch.order[~batch.is_control]
    assert np.all(np.diff(rest) > 0) and set(rest.tolist()) <= set(range(20))
    # Control draws are uniform over every unlabeled pair with an AI label, queued ones included.
    counts = np.zeros(100)
    for seed in range(3000):
        b = assemble_batch(queue, human_label=human, ai_label=ai, length=20, share=0.1, rng=np.random.default_rng(seed))
        np.add.at(counts, b.order[b.is_control], 1)
    assert counts[85:].sum() == 0
    expected = 3000 * 2 / 85
    assert counts[:20].mean() == pytest.approx(expected, rel=0.1) and counts[20:85].mean() == pytest.approx(expected, rel=0.1)


def test_assemble_batch_known_answer_with_a_waiting_draw_and_answers_so_far():
    from rlthf_selector.selection import assemble_batch

    human, ai = np.zeros(10, np.int8), np.ones(10, np.int8)
    # share 0.5 of 4 slots: 2 control entries, the waiting draw 9 first, then one fresh draw; 3 answers so far, 1 of
    # them control (so one behind): the j-th entry goes to the first slot m with 1 + j + 0.5 <= 0.5 (3 + m + 1),
    # slots 0 and 1.
    batch = assemble_batch(np.array([0, 1, 2, 3, 4]), human_label=human, ai_label=ai, length=4, share=0.5,
                           waiting_control=np.array([9]), answered=3, answered_control=1, rng=np.random.default_rng(1))
    fresh = int(batch.fresh_control[0])
    assert batch.is_control.tolist() == [True, True, False, False]
    assert batch.order[0] == 9 and batch.order[1] == fresh and fresh != 9
    assert batch.order[[2, 3]].tolist() == [q for q in [0, 1, 2, 3, 4] if q != fresh][:2]


def test_assemble_batch_edges():
    from rlthf_selector.selection import assemble_batch, targeted_needed

    rng = np.random.default_rng(0)
    human, ai = np.zeros(10, np.int8), np.ones(10, np.int8)
    queue = np.array([3, 1, 4], dtype=np.int64)
    batch = assemble_batch(queue, human_label=human, ai_label=ai, length=3, share=0.0, rng=rng)
    assert batch.order.tolist() == [3, 1, 4] and not batch.is_control.any() and batch.fresh_control.size == 0
    batch = assemble_batch(queue, human_label=human, ai_label=ai, length=3, share=0.01, rng=rng)
    assert batch.is_control.sum() == 1  # at least one control draw in every batch
    assert assemble_batch(np.zeros(0, np.int64), human_label=human, ai_label=ai, length=5, share=0.5,
                          rng=rng).order.size == 0
    assert assemble_batch(queue, human_label=human, ai_label=ai, length=2, share=0.0, rng=rng).order.tolist() == [3, 1]
    labelled = human.copy()
    labelled[1] = -1
    with pytest.raises(ValueError, match="already has a human label"):
        assemble_batch(queue, human_label=labelled, ai_label=ai, length=3, share=0.1, rng=rng)
    with pytest.raises(ValueError, match="already has a human label"):
        assemble_batch(np.array([3]), human_label=labelled, ai_label=ai, length=3, share=0.1, rng=rng,
                       waiting_control=np.array([1]))
    with pytest.raises(ValueError, match="control share"):
        assemble_batch(queue, human_label=human, ai_label=ai, length=3, share=1.5, rng=rng)
    # Spare queue entries: the waiting draws, this batch's share rounded up, and one for the random rounding.
    assert targeted_needed(20, share=0.1, waiting=3) == 20 + 3 + 2 + 1
    assert targeted_needed(20, share=0.0, waiting=3) == 20


