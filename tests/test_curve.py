"""Known-answer tests of the curve analysis on constructed curves."""

import warnings

import numpy as np
import pytest

from rlthf_selector.config import CurveConfig
from rlthf_selector.curve import analyze_curve, moving_average


def reversed_s(n: int, *, head: int, tail: int, seed: int = 0) -> np.ndarray:
    """A constructed curve: a steep head of ``head`` points falling from 10 to 2, a flat middle
    from 2 to -1, and a steep tail of ``tail`` points falling from -1 to -10 (shuffled)."""
    middle = n - head - tail
    curve = np.concatenate([np.linspace(10, 2, head, endpoint=False), np.linspace(2, -1, middle, endpoint=False),
                            np.linspace(-1, -10, tail)])
    return np.random.default_rng(seed).permutation(curve)


@pytest.mark.parametrize("detector", ["kneed", "derivative"])
def test_elbow_and_knee_on_a_piecewise_linear_curve(detector):
    gap = reversed_s(2000, head=200, tail=300)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        curve = analyze_curve(gap, config=CurveConfig(detector=detector, smoothing=0.01))
    # The slope changes at index 200 (head -> plateau) and 1700 (plateau -> tail).
    assert abs(curve.elbow_index - 200) <= 40
    assert abs(curve.knee_index - 1700) <= 40
    assert np.all(np.diff(curve.sorted_gap) <= 0)
    np.testing.assert_array_equal(gap[curve.order], curve.sorted_gap)


def test_reflection_mirrors_the_elbow_gap():
    gap = reversed_s(2000, head=200, tail=300)
    curve = analyze_curve(gap, config=CurveConfig(reflection="gap", smoothing=0.01))
    assert curve.reflection_gap == pytest.approx(-curve.elbow_gap)
    # Every pair beyond the reflection point has a gap at or below it, every pair before it above.
    assert np.all(curve.sorted_gap[curve.reflection_index:] <= curve.reflection_gap)
    assert np.all(curve.sorted_gap[:curve.reflection_index] > curve.reflection_gap)
    assert curve.knee_index <= curve.reflection_index <= curve.n


def test_reflection_by_index_mirrors_the_position():
    gap = reversed_s(1000, head=100, tail=100)
    curve = analyze_curve(gap, config=CurveConfig(reflection="index", smoothing=0.01))
    assert curve.reflection_index == max(curve.n - 1 - curve.elbow_index, curve.knee_index)


def test_all_positive_gaps_flip_nothing():
    gap = np.abs(reversed_s(1000, head=100, tail=100)) + 0.5
    with pytest.warns(RuntimeWarning, match="nothing is flipped"):
        curve = analyze_curve(gap, config=CurveConfig(reflection="gap"))
    assert curve.reflection_index == curve.n


def test_flat_curve_falls_back_with_warnings():
    with pytest.warns(RuntimeWarning):
        curve = analyze_curve(np.ones(500))
    assert curve.warnings
    assert curve.elbow_index == 0
    assert curve.reflection_index == 500  # nothing flipped on a curve that says nothing


@pytest.mark.parametrize("n", [0, 1, 2, 5, 19])
def test_tiny_n_makes_every_pair_human_eligible(n):
    with pytest.warns(RuntimeWarning, match="curve not analysed"):
        curve = analyze_curve(np.linspace(1, -1, n))
    assert curve.knee_index == 0 and curve.reflection_index == n


def test_non_finite_gap_is_named():
    with pytest.raises(ValueError, match=r"reward_gap\[3\]"):
        analyze_curve(np.array([1.0, 2.0, 0.0, np.nan]))


def test_intermediate_arrays_are_exposed_and_consistent():
    curve = analyze_curve(reversed_s(5000, head=500, tail=500))
    assert curve.x.shape == curve.smoothed_gap.shape == curve.derivative.shape
    assert curve.x.shape[0] <= 1000
    assert np.all(curve.derivative <= 1e-9)  # the sorted curve never rises
    d = curve.to_dict()
    assert d["human_band_fraction"] == pytest.approx((curve.reflection_index - curve.knee_index) / 5000)


def test_detection_is_stable_under_resampling():
    rng = np.random.default_rng(1)
    correct = rng.random(20000) < 0.8
    gap = np.where(correct, rng.normal(2, 1.5, 20000), rng.normal(-1, 1.5, 20000))
    knees = []
    for seed in range(5):
        sub = np.random.default_rng(seed).choice(gap, 5000, replace=False)
        knees.append(analyze_curve(sub).knee_index / 5000)
    # Knee position (as a fraction of N) moves by less than a tenth of the curve across resamples.
    assert np.ptp(knees) < 0.1


def test_moving_average_known_answer():
    np.testing.assert_allclose(moving_average(np.array([0.0, 3, 6, 9, 12]), window=3), [1.5, 3, 6, 9, 10.5])
