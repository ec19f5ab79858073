"""The human queue skips pairs that are flipped automatically; evidence-gated flips need both signals."""

import warnings

import numpy as np

from rlthf_selector.config import CurveConfig, SelectionConfig
from rlthf_selector.curve import analyze_curve
from rlthf_selector.selection import Region, select_pairs


def _reversed_s_gaps(n):
    x = np.linspace(-1, 1, n)
    return -np.sinh(4 * x) / 4 + 0.5


def _select(gap, **kw):
    doubt = kw.pop("judge_doubt", None)
    budget = kw.pop("budget", 10)
    reflection = kw.pop("reflection", "gap")  # the paper's mirrored flip region
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        curve = analyze_curve(gap, config=CurveConfig(reflection=reflection))
    return select_pairs(gap, curve, human_label=np.zeros(gap.shape[0], np.int8), budget=budget, back_off=0.2,
                        config=SelectionConfig(**kw), judge_doubt=doubt)


def test_flip_region_is_queued_last():
    gap = _reversed_s_gaps(300)
    sel = _select(gap, priority="lowest-gap", band_first=False, budget=300)
    flipped = np.flatnonzero(sel.flip_mask)
    assert flipped.size > 0 and (sel.region[flipped] == Region.FLIP).all()
    # The most contradicted pairs are flipped, so the queue starts with the lowest gap that is not flipped...
    assert not sel.flip_mask[sel.human_queue[:-flipped.size]].any()
    assert gap[sel.human_queue[0]] == gap[~sel.flip_mask].min()
    # ...and the flipped pairs only fill a budget nothing else is left for.
    assert set(sel.human_queue[-flipped.size:].tolist()) == set(flipped.tolist())
    # The same with the band first: band, then the rest of the pool, then the flipped pairs.
    banded = _select(gap, priority="lowest-gap", band_first=True, budget=300)
    assert set(banded.human_queue[-flipped.size:].tolist()) == set(flipped.tolist())
    in_band = np.flatnonzero(banded.region[banded.human_queue] == Region.HUMAN)
    assert in_band.size and in_band.max() == in_band.size - 1
    # Without auto-flip they are ordinary candidates and come first under 'lowest-gap'.
    no_flip = _select(gap, priority="lowest-gap", band_first=False, auto_flip=False, budget=3)
    assert no_flip.human_queue.tolist() == np.argsort(gap)[:3].tolist()


def test_evidence_flips_need_a_contradicting_gap_and_enough_doubt():
    n = 300
    gap = _reversed_s_gaps(n)
    doubt = np.zeros(n)
    negative = np.flatnonzero((gap < 0) & (gap > gap.min() / 2))[:5]  # contradicted, outside the flip region
    positive = np.flatnonzero(gap > 0.3)[:5]  # trusted
    doubt[negative] = 1.0
    doubt[positive] = 1.0
    half = np.flatnonzero((gap < 0) & (doubt == 0))[:3]
    doubt[half] = 0.5
    base = _select(gap, judge_doubt=doubt, flip_doubt=2.0)  # curve flips only
    gated = _select(gap, judge_doubt=doubt, flip_doubt=1.0)
    assert not base.flip_mask[negative].any()
    assert gated.flip_mask[negative].all()  # the reward model contradicts and the judge doubts
    assert not gated.flip_mask[positive].any()  # the judge doubts but the reward model agrees
    assert not gated.flip_mask[half].any()  # doubt below the threshold
    assert (gated.flip_mask & ~base.flip_mask).sum() == negative.size
    assert not np.isin(gated.human_queue, negative).any()  # flipped pairs are not asked while others remain
    lower = _select(gap, judge_doubt=doubt, flip_doubt=0.5)
    assert lower.flip_mask[half].all()
    # No flips at all without auto_flip, and no evidence flips without evidence.
    assert not _select(gap, judge_doubt=doubt, flip_doubt=1.0, auto_flip=False).flip_mask.any()
    np.testing.assert_array_equal(_select(gap, flip_doubt=1.0).flip_mask, base.flip_mask)


def test_reflection_none_keeps_elbow_and_knee_and_flips_nothing_by_position():
    gap = _reversed_s_gaps(300)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a deliberate 'none' is not worth a warning
        none = analyze_curve(gap, config=CurveConfig(reflection="none"))
    mirrored = analyze_curve(gap, config=CurveConfig(reflection="gap"))
    assert (none.elbow_index, none.knee_index) == (mirrored.elbow_index, mirrored.knee_index)
    assert mirrored.reflection_index < 300 and none.reflection_index == 300
    sel = select_pairs(gap, none, human_label=np.zeros(300, np.int8), budget=5, back_off=0.2, config=SelectionConfig())
    assert not sel.flip_mask.any()
    assert (sel.region[mirrored.order[mirrored.reflection_index:]] == Region.HUMAN).all()  # the band runs to the end
    assert sel.human_queue.tolist() == np.argsort(gap)[:5].tolist()
    # Evidence flips still apply.
    doubt = (gap < 0).astype(float)
    sel = select_pairs(gap, none, human_label=np.zeros(300, np.int8), budget=5, back_off=0.2,
                       config=SelectionConfig(flip_doubt=1.0), judge_doubt=doubt)
    assert sel.flip_mask.sum() == (gap < 0).sum()
