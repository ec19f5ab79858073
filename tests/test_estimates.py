"""Known answers for the interval, AUC and control-total estimators (rlthf_selector.intervals)."""

import math

import numpy as np
import pytest

from rlthf_selector.intervals import (
    Estimate,
    auc,
    auc_estimate,
    calibration_bands,
    clopper_pearson_interval,
    combine_totals,
    control_total_estimate,
    effective_size,
    hanley_mcneil_interval,
    newcombe_difference,
    proportion_estimate,
    two_sided_z,
    wilson_interval,
)


def test_normal_quantiles():
    assert two_sided_z(0.9) == pytest.approx(1.644854, abs=1e-6)
    assert two_sided_z(0.95) == pytest.approx(1.959964, abs=1e-6)
    with pytest.raises(ValueError, match="confidence"):
        two_sided_z(1.0)


def test_wilson_known_values():
    # Newcombe (1998), Table I: 81/263 -> 0.2553-0.3662 (95%); 8/10 -> 0.4902-0.9433.
    assert wilson_interval(8, 10, confidence=0.95) == pytest.approx((0.4902, 0.9433), abs=1e-4)
    assert wilson_interval(81, 263, confidence=0.95) == pytest.approx((0.2553, 0.3662), abs=1e-4)
    lo, hi = wilson_interval(0, 10, confidence=0.95)
    assert lo == pytest.approx(0.0, abs=1e-12) and hi == pytest.approx(0.2775, abs=1e-4)
    assert wilson_interval(0, 0) == (0.0, 1.0)


def test_clopper_pearson_known_values():
    assert clopper_pearson_interval(8, 10, confidence=0.95) == pytest.approx((0.4439, 0.9748), abs=1e-4)
    assert clopper_pearson_interval(0, 10, confidence=0.95) == pytest.approx((0.0, 0.3085), abs=1e-4)
    assert clopper_pearson_interval(10, 10, confidence=0.95) == pytest.approx((0.6915, 1.0), abs=1e-4)
    # One-sided 95% bound of 0/n is 1 - 0.05^(1/n) (the "rule of three" in exact form).
    assert clopper_pearson_interval(0, 20, confidence=0.9)[1] == pytest.approx(1 - 0.05 ** (1 / 20), abs=1e-9)
    # Exact intervals contain the Wilson ones' centre and are wider.
    w, c = wilson_interval(30, 70), clopper_pearson_interval(30, 70)
    assert c[0] < w[0] < w[1] < c[1]


@pytest.mark.parametrize("k,n", [(-1, 5), (6, 5), (1, -1), (float("nan"), 3)])
def test_bad_counts_raise(k, n):
    with pytest.raises(ValueError, match="successes"):
        wilson_interval(k, n)


def test_proportion_estimate_and_contains():
    est = proportion_estimate(3, 4, confidence=0.9, method="clopper-pearson")
    assert est.value == 0.75 and est.n == 4 and est.contains(0.75) and not est.contains(0.05)
    empty = proportion_estimate(0, 0)
    assert empty.value is None and empty.contains(0.5) is None
    with pytest.raises(ValueError, match="unknown interval method"):
        proportion_estimate(1, 2, method="agresti")


def test_newcombe_known_example():
    # Newcombe (1998), method 10, example (e): 56/70 - 48/80 = 0.2000, 95% interval 0.0524 to 0.3339.
    est = newcombe_difference(56, 70, 48, 80, confidence=0.95)
    assert est.value == pytest.approx(0.2)
    assert (est.lower, est.upper) == pytest.approx((0.0524, 0.3339), abs=1e-4)
    assert newcombe_difference(1, 2, 0, 0).value is None


def test_auc_matches_sklearn_with_ties():
    from sklearn.metrics import roc_auc_score

    rng = np.random.default_rng(0)
    score = rng.integers(0, 6, size=300).astype(float)  # many ties
    positive = rng.random(300) < 0.3 + 0.08 * score
    assert auc(score, positive) == pytest.approx(roc_auc_score(positive, score), abs=1e-12)


def test_auc_known_cases():
    assert auc([1, 2, 3, 4], [False, False, True, True]) == 1.0
    assert auc([4, 3, 2, 1], [False, False, True, True]) == 0.0
    assert auc([1, 1, 1, 1], [False, True, False, True]) == 0.5
    assert auc([1, 2], [True, True]) is None


def test_weighted_auc_equals_replicated_sample():
    rng = np.random.default_rng(1)
    score = rng.normal(size=50)
    positive = rng.random(50) < 0.4
    weight = rng.integers(1, 5, size=50)
    replicated = auc(np.repeat(score, weight), np.repeat(positive, weight))
    assert auc(score, positive, sample_weight=weight) == pytest.approx(replicated, abs=1e-12)


def test_calibration_bands_known_answer():
    prob = [0.1, 0.2, 0.6, 0.8, 1.0, np.nan]
    happened = [False, True, True, False, True, True]
    count, mean_prob, rate = calibration_bands(prob, happened, edges=(0.0, 0.5, 1.0))
    assert count.tolist() == [2, 3]  # the NaN is left out; 1.0 falls in the last band
    np.testing.assert_allclose(mean_prob, [0.15, 0.8])
    np.testing.assert_allclose(rate, [0.5, 2 / 3])
    count, mean_prob, rate = calibration_bands([0.3, 0.4], [True, False], edges=(0.0, 0.25, 0.5, 1.0))
    assert count.tolist() == [0, 2, 0]
    assert np.isnan(mean_prob[0]) and np.isnan(rate[2]) and rate[1] == 0.5


@pytest.mark.parametrize("prob, edges, message", [
    ([0.2, 1.2], (0.0, 1.0), "within the edges"),
    ([0.2], (0.0, 0.5, 0.5, 1.0), "increasing"),
    ([0.2, 0.3], (0.0, 1.0, 2.0), "one length"),  # two probabilities, one outcome below
])
def test_calibration_bands_name_bad_input(prob, edges, message):
    positive = [True] if message == "one length" else [True] * len(prob)
    with pytest.raises(ValueError, match=message):
        calibration_bands(prob, positive, edges=edges)


def test_hanley_mcneil_null_variance():
    # At AUC 0.5 the Hanley-McNeil variance is the Mann-Whitney null variance (n1 + n2 + 1) / (12 n1 n2).
    n1, n2 = 30, 70
    lo, hi = hanley_mcneil_interval(0.5, n1, n2, confidence=0.9)
    se = math.sqrt((n1 + n2 + 1) / (12 * n1 * n2))
    assert (lo, hi) == pytest.approx((0.5 - 1.644854 * se, 0.5 + 1.644854 * se), abs=1e-6)
    assert hanley_mcneil_interval(0.99, 5, 5)[1] == 1.0  # clipped
    with pytest.raises(ValueError, match="positive"):
        hanley_mcneil_interval(0.5, 0, 3)


def test_auc_estimate_intervals():
    rng = np.random.default_rng(2)
    positive = rng.random(400) < 0.3
    score = rng.normal(size=400) + 1.0 * positive  # true AUC = Phi(1 / sqrt 2) = 0.760
    hm = auc_estimate(score, positive, method="hanley-mcneil")
    boot = auc_estimate(score, positive, method="bootstrap", n_boot=300, seed=0)
    for est in (hm, boot):
        assert est.lower < 0.760 < est.upper and est.upper - est.lower < 0.15
    # A few heavily weighted items: the effective size is small, so the interval is wide.
    w = np.ones(400)
    w[:4] = 1000.0
    assert effective_size(w) < 10
    wide = auc_estimate(score, positive, sample_weight=w)
    assert wide.upper - wide.lower > hm.upper - hm.lower
    assert auc_estimate(score, np.zeros(400, bool)).value is None


def test_control_total_reduces_to_scaled_binomial_interval():
    y = np.array([1, 1, 0, 1, 0, 1, 1, 1, 0, 1])
    est = control_total_estimate(y, np.full(10, 200), np.full(10, 50.0), confidence=0.9, method="clopper-pearson")
    lo, hi = clopper_pearson_interval(7, 10, confidence=0.9)
    assert est.value == pytest.approx(200 * 0.7 + 50)
    assert (est.lower, est.upper) == pytest.approx((200 * lo + 50, 200 * hi + 50))
    assert control_total_estimate([], [], []).value is None
    with pytest.raises(ValueError, match="0 or 1"):
        control_total_estimate([2], [5], [0])


def test_control_total_is_unbiased_when_a_queue_removes_mistakes():
    """A finite pool; each batch draws controls uniformly from the unlabeled pairs, then a queue removes the most
    error-rich pairs. The per-draw estimator frame * y + known stays unbiased for the pool's total of correct labels,
    and its 90% interval covers the truth about 90% of the time or more."""
    rng = np.random.default_rng(3)
    n, batches, controls, queue = 600, 4, 6, 20
    errors, naive_errors, covered = [], [], []
    for _ in range(600):
        risk = rng.random(n)
        correct = rng.random(n) > risk * 0.6  # riskier pairs are more often wrong
        unlabeled = np.ones(n, bool)
        label_batch = np.full(n, 99)
        ys, frames, batch_of = [], [], []
        for t in range(batches):
            idx = np.flatnonzero(unlabeled)
            pick = rng.choice(idx, size=controls, replace=False)
            for i in pick:
                ys.append(correct[i]); frames.append(idx.size); batch_of.append(t)
            unlabeled[pick] = False
            label_batch[pick] = t
            rest = np.flatnonzero(unlabeled)
            q = rest[np.argsort(-risk[rest])[:queue]]  # the targeted queue takes the riskiest
            unlabeled[q] = False
            label_batch[q] = t
        offsets = [float((correct & (label_batch < t)).sum()) for t in batch_of]
        est = control_total_estimate(np.array(ys, float), frames, offsets, confidence=0.9)
        errors.append(est.value - correct.sum())
        naive_errors.append(n * np.mean(ys) - correct.sum())  # as if every control were uniform over the pool
        covered.append(est.contains(float(correct.sum())))
    se = np.std(errors) / np.sqrt(len(errors))
    assert abs(np.mean(errors)) < 3 * se
    assert np.mean(naive_errors) > 3 * se  # the naive estimate is biased upward: the queue took mistakes out
    assert np.mean(covered) >= 0.85


def test_combine_totals_mover():
    a = Estimate(10.0, 8.0, 13.0, 5, 0.9, "x")
    single = combine_totals([(a, 1.0)], constant=2.0, scale=0.1, bounds=(0.0, 100.0))
    assert (single.value, single.lower, single.upper) == pytest.approx((1.2, 1.0, 1.5))
    # A negative coefficient swaps the part's sides.
    neg = combine_totals([(a, -2.0)], constant=30.0, scale=0.05)
    assert (neg.value, neg.lower, neg.upper) == pytest.approx((0.5, 0.2, 0.7))  # 30 - 2 * [13, 8]
    b = Estimate(4.0, 3.0, 5.0, 5, 0.9, "x")
    both = combine_totals([(a, 1.0), (b, 1.0)], scale=0.05)
    assert both.lower == pytest.approx(0.05 * (14 - math.sqrt(2 ** 2 + 1)))
    assert both.upper == pytest.approx(0.05 * (14 + math.sqrt(3 ** 2 + 1)))
    assert combine_totals([(Estimate.empty(confidence=0.9, method="x"), 1.0)]).value is None
