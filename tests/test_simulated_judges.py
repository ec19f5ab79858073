"""Simulated judges: error rates, the length bias, seeding and spec parsing."""

from __future__ import annotations

import numpy as np
import pytest

from rlthf_selector.pairs import PreferencePairs
from rlthf_selector.simulated_judges import (
    SimulatedJudge,
    length_bias_judge,
    parse_judge_spec,
    response_lengths,
    uniform_noise_judge,
)

N = 20_000


@pytest.fixture(scope="module")
def gold():
    return np.where(np.random.default_rng(123).random(N) < 0.5, 1, -1).astype(np.int8)


@pytest.mark.parametrize("rate", [0.1, 0.25, 0.4])
def test_uniform_noise_error_rate(gold, rate):
    labels = uniform_noise_judge(gold, error_rate=rate, seed=1)
    assert labels.dtype == np.int8 and labels.shape == (N,)
    assert set(np.unique(labels)) <= {-1, 1}
    # binomial sd at p=0.4, n=20k is 0.0035; 0.015 is > 4 sd
    assert abs(float((labels != gold).mean()) - rate) < 0.015


def test_uniform_noise_is_seeded_and_extremes_are_exact(gold):
    np.testing.assert_array_equal(uniform_noise_judge(gold, seed=4), uniform_noise_judge(gold, seed=4))
    assert (uniform_noise_judge(gold, seed=4) != uniform_noise_judge(gold, seed=5)).any()
    np.testing.assert_array_equal(uniform_noise_judge(gold, error_rate=0.0), gold)
    np.testing.assert_array_equal(uniform_noise_judge(gold, error_rate=1.0), -gold)


def test_uniform_noise_rejects_bad_input():
    with pytest.raises(ValueError, match=r"gold\[1\] = 0"):
        uniform_noise_judge([1, 0, -1])
    with pytest.raises(ValueError, match="error_rate must be in"):
        uniform_noise_judge([1, -1], error_rate=1.5)


def _lengths(n, seed=0):
    """Half the pairs clearly unequal (ratio 2-3, random side), half nearly equal (ratio < 1.2)."""
    rng = np.random.default_rng(seed)
    base = rng.integers(50, 500, size=n)
    factor = np.where(np.arange(n) % 2 == 0, rng.uniform(2, 3, size=n), rng.uniform(1.0, 1.2, size=n))
    other = np.round(base * factor).astype(int)
    a_longer = rng.random(n) < 0.5
    return np.stack([np.where(a_longer, other, base), np.where(a_longer, base, other)], axis=1)


def test_length_bias_judge_behaviour(gold):
    lengths = _lengths(N)
    labels = length_bias_judge(lengths, gold, seed=2)
    assert labels.dtype == np.int8 and labels.shape == (N,)
    unequal = np.arange(N) % 2 == 0
    longer = np.where(lengths[:, 0] > lengths[:, 1], 1, -1)
    # Where one is > 1.3x the other, it picks the longer one w.p. 0.8, whatever gold says.
    assert abs(float((labels[unequal] == longer[unequal]).mean()) - 0.8) < 0.02
    for g in (1, -1):
        sel = unequal & (gold == g)
        assert abs(float((labels[sel] == longer[sel]).mean()) - 0.8) < 0.025
    # Elsewhere it is right w.p. 0.85.
    assert abs(float((labels[~unequal] == gold[~unequal]).mean()) - 0.85) < 0.02
    # Gold is independent of length here, so the overall error is 0.5 * 0.5 + 0.5 * 0.15.
    assert abs(float((labels != gold).mean()) - 0.325) < 0.02


def test_length_bias_threshold_is_strict_and_parameters_bite():
    gold = np.array([1, 1, -1, -1], dtype=np.int8)
    lengths = np.array([[13, 10], [10, 13], [14, 10], [10, 14]])  # exactly 1.3x is not "more than"
    always_longer = length_bias_judge(lengths, gold, p_longer=1.0, p_correct=1.0)
    assert always_longer.tolist() == [1, 1, 1, -1]
    never_longer = length_bias_judge(lengths, gold, p_longer=0.0, p_correct=0.0)
    assert never_longer.tolist() == [-1, -1, -1, 1]
    wide = length_bias_judge(lengths, gold, ratio=2.0, p_longer=1.0, p_correct=1.0)
    np.testing.assert_array_equal(wide, gold)  # nothing is 2x as long: all fair picks


def test_length_bias_accepts_pairs_and_checks_input():
    pairs = PreferencePairs(ids=["a", "b"], prompt=["p", "p"], response_a=["x" * 100, "short"],
                            response_b=["y" * 10, "also short"], gold_label=[-1, 1])
    np.testing.assert_array_equal(response_lengths(pairs), [[100, 10], [5, 10]])
    np.testing.assert_array_equal(length_bias_judge(pairs, pairs.gold_label, seed=3),
                                  length_bias_judge([[100, 10], [5, 10]], pairs.gold_label, seed=3))
    with pytest.raises(ValueError, match=r"shape \(n, 2\)"):
        length_bias_judge(np.zeros(3), [1, 1, 1])
    with pytest.raises(ValueError, match="ratio must be >= 1"):
        length_bias_judge([[1, 2]], [1], ratio=0.9)
    with pytest.raises(ValueError, match="p_longer must be in"):
        length_bias_judge([[1, 2]], [1], p_longer=-0.1)


def test_parse_judge_spec_variants():
    judge, description = parse_judge_spec("uniform:0.25")
    assert judge == SimulatedJudge("uniform", {"error_rate": 0.25})
    assert description == judge.describe() == "simulated: uniform 25% flips"
    assert parse_judge_spec("uniform") == parse_judge_spec("uniform:error_rate=0.25")
    assert parse_judge_spec("uniform:0.1")[1] == "simulated: uniform 10% flips"
    lb, lb_description = parse_judge_spec("length-bias")
    assert lb == parse_judge_spec("length-bias:ratio=1.3,p_longer=0.8,p_correct=0.85")[0]
    assert parse_judge_spec("length-bias:p_longer=0.9")[0].params == {"ratio": 1.3, "p_longer": 0.9, "p_correct": 0.85}
    assert lb_description.startswith("simulated: length-biased")
    assert "0.8" in lb_description and "1.3x" in lb_description and lb.description == lb_description


@pytest.mark.parametrize("spec, fragment", [
    ("gpt-judge", "known: 'uniform'"),
    ("uniform:abc", "error_rate must be a number"),
    ("uniform:1.2", "error_rate must be in"),
    ("length-bias:slope=2", "unknown parameter 'slope'"),
    ("length-bias:0.5", "key=value"),
    ("length-bias:ratio=0.5", "ratio must be >= 1"),
])
def test_parse_judge_spec_errors(spec, fragment):
    with pytest.raises(ValueError, match=fragment):
        parse_judge_spec(spec)


def test_parsed_judge_labels_pairs_and_needs_gold(gold):
    n = 2000
    pairs = PreferencePairs(ids=[str(i) for i in range(n)], prompt=["p"] * n, response_a=["a"] * n,
                            response_b=["bb"] * n, gold_label=gold[:n])
    judge, _ = parse_judge_spec("uniform:0.3")
    np.testing.assert_array_equal(judge(pairs, seed=9), uniform_noise_judge(gold[:n], error_rate=0.3, seed=9))
    no_gold = pairs.replace(gold_label=np.zeros(n, dtype=np.int8))
    with pytest.raises(ValueError, match="needs gold labels; 2000 of 2000"):
        judge(no_gold, seed=0)
