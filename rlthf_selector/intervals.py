"""The statistics under the live, human-checked estimates: proportion intervals, AUC with intervals, and totals
from uniform control draws with the targeted queue's selection accounted for.

Everything here is numpy (plus ``scipy.special`` for the Clopper-Pearson beta quantiles; scipy comes with
scikit-learn) and knows nothing about pairs or models, so each function can be checked against known answers.

Conventions: ``confidence`` is the two-sided coverage of an interval (0.9 = a 90% interval, i.e. a 95% lower
bound); intervals are closed ``(lower, upper)`` tuples of floats.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from statistics import NormalDist
from typing import Any, Sequence

import numpy as np

PROPORTION_METHODS = ("wilson", "clopper-pearson")


@dataclass
class Estimate:
    """A live estimate with its interval.

    Attributes
    ----------
    value : float or None
        The point estimate; None when there is nothing to estimate from (e.g. no control draws yet).
    lower, upper : float or None
        The interval at ``confidence``.
    n : int
        How many human answers it rests on.
    confidence : float
    method : str
        How the interval was made (``wilson``, ``clopper-pearson``, ``hanley-mcneil``, ``bootstrap``, ...).
    """

    value: float | None
    lower: float | None
    upper: float | None
    n: int
    confidence: float
    method: str

    @classmethod
    def empty(cls, *, confidence: float, method: str, n: int = 0) -> "Estimate":
        return cls(None, None, None, n, confidence, method)

    def contains(self, x: float | None) -> bool | None:
        """Whether ``x`` lies in the interval; None when either is unknown."""
        if x is None or self.lower is None or self.upper is None:
            return None
        return bool(self.lower - 1e-12 <= x <= self.upper + 1e-12)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def check_confidence(confidence: float) -> float:
    """``confidence`` as a float in (0, 1); ValueError otherwise."""
    confidence = float(confidence)
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence must be in (0, 1), got {confidence}")
    return confidence


def two_sided_z(confidence: float) -> float:
    """The standard normal quantile z with P(|Z| <= z) = ``confidence`` (0.9 -> 1.6449, 0.95 -> 1.9600)."""
    confidence = check_confidence(confidence)
    return NormalDist().inv_cdf(0.5 + confidence / 2.0)


def _check_counts(successes: float, trials: float) -> tuple[float, float]:
    k, n = float(successes), float(trials)
    if not (math.isfinite(k) and math.isfinite(n)) or n < 0 or k < 0 or k > n:
        raise ValueError(f"need 0 <= successes <= trials, got successes={successes}, trials={trials}")
    return k, n


def wilson_interval(successes: float, trials: float, *, confidence: float = 0.9) -> tuple[float, float]:
    """Wilson score interval for a binomial proportion.

    ``successes`` may be fractional (a weighted count); ``trials`` = 0 gives the uninformative ``(0, 1)``.

    Returns
    -------
    (lower, upper) : tuple of float in [0, 1]
    """
    k, n = _check_counts(successes, trials)
    if n == 0:
        return 0.0, 1.0
    z = two_sided_z(confidence)
    p = k / n
    denom = 1.0 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(max(p * (1 - p) / n + z * z / (4 * n * n), 0.0)) / denom
    return max(0.0, centre - half), min(1.0, centre + half)


def clopper_pearson_interval(successes: float, trials: float, *, confidence: float = 0.9) -> tuple[float, float]:
    """Exact (Clopper-Pearson) interval: beta quantiles, conservative (coverage >= ``confidence``).

    ``trials`` = 0 gives ``(0, 1)``. Fractional counts are accepted (the beta quantiles are continuous).
    """
    from scipy.special import betaincinv

    k, n = _check_counts(successes, trials)
    if n == 0:
        return 0.0, 1.0
    tail = (1.0 - check_confidence(confidence)) / 2.0
    lower = 0.0 if k <= 0 else float(betaincinv(k, n - k + 1, tail))
    upper = 1.0 if k >= n else float(betaincinv(k + 1, n - k, 1.0 - tail))
    return lower, upper


def proportion_interval(successes: float, trials: float, *, confidence: float = 0.9, method: str = "wilson") -> tuple[float, float]:
    """Dispatch to :func:`wilson_interval` or :func:`clopper_pearson_interval`."""
    if method == "wilson":
        return wilson_interval(successes, trials, confidence=confidence)
    if method == "clopper-pearson":
        return clopper_pearson_interval(successes, trials, confidence=confidence)
    raise ValueError(f"unknown interval method {method!r}: use one of {PROPORTION_METHODS}")


def proportion_estimate(successes: float, trials: float, *, confidence: float = 0.9, method: str = "wilson") -> Estimate:
    """The share ``successes / trials`` with its interval (``value`` None when ``trials`` = 0)."""
    k, n = _check_counts(successes, trials)
    if n == 0:
        return Estimate.empty(confidence=confidence, method=method)
    lo, hi = proportion_interval(k, n, confidence=confidence, method=method)
    return Estimate(k / n, lo, hi, int(round(n)), confidence, method)


def newcombe_difference(k1: float, n1: float, k2: float, n2: float, *, confidence: float = 0.9) -> Estimate:
    """p1 - p2 with Newcombe's hybrid score interval (method 10: Wilson intervals of each proportion combined).

    Returns an empty :class:`Estimate` when either sample is empty.
    """
    k1, n1 = _check_counts(k1, n1)
    k2, n2 = _check_counts(k2, n2)
    method = "newcombe"
    if n1 == 0 or n2 == 0:
        return Estimate.empty(confidence=confidence, method=method, n=int(n1 + n2))
    p1, p2 = k1 / n1, k2 / n2
    l1, u1 = wilson_interval(k1, n1, confidence=confidence)
    l2, u2 = wilson_interval(k2, n2, confidence=confidence)
    d = p1 - p2
    lower = d - math.sqrt((p1 - l1) ** 2 + (u2 - p2) ** 2)
    upper = d + math.sqrt((u1 - p1) ** 2 + (p2 - l2) ** 2)
    return Estimate(d, max(-1.0, lower), min(1.0, upper), int(n1 + n2), confidence, method)


# ----------------------------------------------------------------------------------------------
# AUC
# ----------------------------------------------------------------------------------------------
def _check_score_positive(score: Any, positive: Any, sample_weight: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    s = np.asarray(score, dtype=np.float64)
    y = np.asarray(positive, dtype=bool)
    if s.ndim != 1 or y.shape != s.shape:
        raise ValueError(f"score and positive must be 1-D of one length, got {s.shape} and {y.shape}")
    if not np.isfinite(s).all():
        raise ValueError("score contains NaN or infinite values")
    if sample_weight is None:
        w = np.ones_like(s)
    else:
        w = np.asarray(sample_weight, dtype=np.float64)
        if w.shape != s.shape or not np.isfinite(w).all() or (w < 0).any():
            raise ValueError(f"sample_weight must be finite, non-negative and of shape {s.shape}")
    return s, y, w


def auc(score: Any, positive: Any, *, sample_weight: Any = None) -> float | None:
    """ROC-AUC of ``score`` for ``positive``: P(score of a positive > score of a negative), ties count 1/2.

    Parameters
    ----------
    score : array-like of float, shape (n,)
    positive : array-like of bool, shape (n,)
    sample_weight : array-like of float, shape (n,), optional
        Each item stands for ``w`` items (inverse inclusion probabilities for a weighted sample).

    Returns
    -------
    float or None
        None when either class has no (weighted) members.
    """
    s, y, w = _check_score_positive(score, positive, sample_weight)
    w_pos, w_neg = w[y].sum(), w[~y].sum()
    if w_pos <= 0 or w_neg <= 0:
        return None
    values, inverse = np.unique(s, return_inverse=True)
    pos_at = np.bincount(inverse, weights=w * y, minlength=values.shape[0])
    neg_at = np.bincount(inverse, weights=w * ~y, minlength=values.shape[0])
    neg_below = np.cumsum(neg_at) - neg_at
    return float((pos_at * (neg_below + 0.5 * neg_at)).sum() / (w_pos * w_neg))


def calibration_bands(prob: Any, positive: Any, *, edges: Sequence[float] = (0.0, 0.25, 0.5, 0.75, 1.0)
                      ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """How predicted probabilities compare with what happened, band by band (a reliability table).

    Parameters
    ----------
    prob : array-like of float, shape (n,)
        Predicted probabilities in [0, 1]; NaN entries are left out.
    positive : array-like of bool, shape (n,)
        What happened.
    edges : sequence of float, length b + 1
        Increasing band edges; band i holds ``edges[i] <= prob < edges[i + 1]``, the last band its upper edge too.

    Returns
    -------
    count : ndarray of int64, shape (b,)
    mean_prob, rate : ndarray of float64, shape (b,)
        The band's mean prediction and its share of positives; NaN for an empty band.
    """
    p = np.asarray(prob, dtype=np.float64)
    y = np.asarray(positive, dtype=bool)
    e = np.asarray(edges, dtype=np.float64)
    if p.shape != y.shape or p.ndim != 1:
        raise ValueError(f"prob {p.shape} and positive {y.shape} must be 1-d of one length")
    if e.ndim != 1 or e.shape[0] < 2 or np.any(np.diff(e) <= 0):
        raise ValueError(f"edges must be increasing with at least two entries, got {list(e)}")
    known = ~np.isnan(p)
    if np.any((p[known] < e[0]) | (p[known] > e[-1])):
        raise ValueError(f"prob must lie within the edges [{e[0]}, {e[-1]}]")
    band = np.clip(np.searchsorted(e, p[known], side="right") - 1, 0, e.shape[0] - 2)
    count = np.bincount(band, minlength=e.shape[0] - 1).astype(np.int64)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean_prob = np.bincount(band, weights=p[known], minlength=e.shape[0] - 1) / count
        rate = np.bincount(band, weights=y[known].astype(np.float64), minlength=e.shape[0] - 1) / count
    return count, mean_prob, rate


def effective_size(weights: Any) -> float:
    """Kish's effective sample size ``(sum w)^2 / sum w^2`` (the count itself when all weights are equal)."""
    w = np.asarray(weights, dtype=np.float64)
    sq = float((w * w).sum())
    return 0.0 if sq == 0 else float(w.sum() ** 2 / sq)


def hanley_mcneil_interval(auc_value: float, n_positive: float, n_negative: float, *, confidence: float = 0.9) -> tuple[float, float]:
    """Normal interval for an AUC with the Hanley-McNeil (1982) standard error, clipped to [0, 1].

    At AUC = 0.5 the variance is ``(n_pos + n_neg + 1) / (12 n_pos n_neg)``, the Mann-Whitney null variance.
    """
    if n_positive < 1 or n_negative < 1:
        raise ValueError(f"need at least one positive and one negative, got {n_positive} and {n_negative}")
    a = float(auc_value)
    if not 0.0 <= a <= 1.0:
        raise ValueError(f"auc must be in [0, 1], got {auc_value}")
    value = a
    # At an observed AUC of exactly 0 or 1 the formula's variance vanishes: keep half a pair's worth away.
    edge = 0.5 / (n_positive * n_negative)
    a = min(max(a, edge), 1.0 - edge)
    q1 = a / (2.0 - a)
    q2 = 2.0 * a * a / (1.0 + a)
    var = (a * (1 - a) + (n_positive - 1) * (q1 - a * a) + (n_negative - 1) * (q2 - a * a)) / (n_positive * n_negative)
    half = two_sided_z(confidence) * math.sqrt(max(var, 0.0))
    return max(0.0, value - half), min(1.0, value + half)


def auc_estimate(
    score: Any,
    positive: Any,
    *,
    sample_weight: Any = None,
    confidence: float = 0.9,
    method: str = "hanley-mcneil",
    n_boot: int = 1000,
    seed: int = 0,
    min_class: float = 5.0,
) -> Estimate:
    """AUC with an interval: ``hanley-mcneil`` or a percentile ``bootstrap`` over items.

    With ``sample_weight``, Hanley-McNeil counts each class by its Kish effective size (so a few heavily weighted
    items give a wide interval), and the bootstrap resamples items with their weights. With fewer than
    ``min_class`` (effective) items in either class no interval is trustworthy, so the interval is the
    uninformative (0, 1). Returns an empty estimate when either class is empty.
    """
    s, y, w = _check_score_positive(score, positive, sample_weight)
    n = int(s.shape[0])
    value = auc(s, y, sample_weight=w)
    if value is None:
        return Estimate.empty(confidence=confidence, method=method, n=n)
    if method == "hanley-mcneil":
        # With weights, each class counts as its Kish effective size (sum w)^2 / sum w^2.
        n_pos, n_neg = effective_size(w[y]), effective_size(w[~y])
        if min(n_pos, n_neg) < min_class:
            return Estimate(value, 0.0, 1.0, n, confidence, method)
        lo, hi = hanley_mcneil_interval(value, n_pos, n_neg, confidence=confidence)
        return Estimate(value, lo, hi, n, confidence, method)
    if method == "bootstrap":
        if min(effective_size(w[y]), effective_size(w[~y])) < min_class:
            return Estimate(value, 0.0, 1.0, n, confidence, method)
        rng = np.random.default_rng(seed)
        draws = []
        for _ in range(int(n_boot)):
            idx = rng.integers(0, n, size=n)
            a = auc(s[idx], y[idx], sample_weight=w[idx])
            if a is not None:
                draws.append(a)
        if len(draws) < max(10, n_boot // 2):
            return Estimate(value, None, None, n, confidence, method)
        tail = (1.0 - check_confidence(confidence)) / 2.0
        lo, hi = np.quantile(draws, [tail, 1.0 - tail])
        return Estimate(value, float(lo), float(hi), n, confidence, method)
    raise ValueError(f"unknown AUC interval method {method!r}: use 'hanley-mcneil' or 'bootstrap'")


# ----------------------------------------------------------------------------------------------
# Totals from control draws
# ----------------------------------------------------------------------------------------------
def control_total_estimate(
    outcome: Any,
    frame_size: Any,
    offset: Any,
    *,
    confidence: float = 0.9,
    method: str = "clopper-pearson",
) -> Estimate:
    """Estimate a total T from control draws, each uniform over the set of pairs unlabeled at its time.

    Draw ``j`` was uniform over a frame of ``frame_size[j]`` pairs and gave ``outcome[j]`` in {0, 1}. Each
    ``frame_size[j] * outcome[j] + offset[j]`` is an unbiased estimate of T (given everything before the draw),
    where ``offset[j]`` holds the exactly known part: e.g. for the number of correct AI labels in the pool,
    the correct ones among pairs labelled before the draw's batch; for those left unlabeled at the end, minus
    the correct ones among pairs labelled at or after it. The estimate is their mean.

    The interval maps a binomial interval (``method``) of the frame-weighted share
    ``sum(frame * outcome) / sum(frame)`` through the same linear map, so it keeps the binomial's coverage when
    the frames barely change between batches (they shrink by at most the human budget).

    Parameters
    ----------
    outcome : array-like of {0, 1}, shape (m,)
    frame_size : array-like of float, shape (m,), > 0
    offset : array-like of float, shape (m,)

    Returns
    -------
    Estimate
        Of the total T (not a share); empty when m = 0.
    """
    y = np.asarray(outcome, dtype=np.float64)
    u = np.asarray(frame_size, dtype=np.float64)
    c = np.asarray(offset, dtype=np.float64)
    if not (y.shape == u.shape == c.shape) or y.ndim != 1:
        raise ValueError(f"outcome, frame_size and offset must be 1-D of one length, got {y.shape}, {u.shape}, {c.shape}")
    if y.size and (~np.isin(y, (0.0, 1.0))).any():
        raise ValueError("outcome must be 0 or 1")
    if (u <= 0).any():
        raise ValueError("frame_size must be positive")
    m = int(y.shape[0])
    if m == 0:
        return Estimate.empty(confidence=confidence, method=method)
    u_mean, c_mean = float(u.mean()), float(c.mean())
    share = float((u * y).sum() / u.sum())
    lo, hi = proportion_interval(share * m, m, confidence=confidence, method=method)
    return Estimate(u_mean * share + c_mean, u_mean * lo + c_mean, u_mean * hi + c_mean, m, confidence, method)


def combine_totals(parts: Sequence[tuple[Estimate, float]], *, constant: float = 0.0, scale: float = 1.0,
                   bounds: tuple[float, float] = (0.0, 1.0), method: str = "mover") -> Estimate:
    """``scale * (constant + sum(coef * part))`` with an interval by MOVER (Zou & Donner 2008).

    Each independent part's own (possibly asymmetric) interval is recovered as a variance on each side: the lower
    limit is ``value - sqrt(sum d_i^2)`` with ``d_i`` the distance from part ``i``'s value to the limit that lowers
    the sum (its lower limit when ``coef > 0``, its upper limit when ``coef < 0``); likewise the upper limit. With one
    part it reproduces that part's interval. Returns an empty estimate when a part is empty; the result is clipped
    to ``bounds``.
    """
    if not parts:
        value = scale * constant
        return Estimate(value, value, value, 0, 1.0, method)
    confidence = parts[0][0].confidence
    value, down, up, n = constant, 0.0, 0.0, 0
    for est, coef in parts:
        if est.value is None or est.lower is None or est.upper is None:
            return Estimate.empty(confidence=confidence, method=method, n=n)
        value += coef * est.value
        below, above = coef * (est.value - est.lower), coef * (est.upper - est.value)
        if coef < 0:
            below, above = -above, -below
        down += below * below
        up += above * above
        n += est.n
    lo_b, hi_b = bounds
    lower, upper = scale * (value - math.sqrt(down)), scale * (value + math.sqrt(up))
    if scale < 0:
        lower, upper = upper, lower
    point = min(hi_b, max(lo_b, scale * value))
    return Estimate(point, max(lo_b, lower), min(hi_b, upper), n, confidence, method)


__all__ = [
    "Estimate",
    "PROPORTION_METHODS",
    "auc",
    "auc_estimate",
    "calibration_bands",
    "check_confidence",
    "clopper_pearson_interval",
    "combine_totals",
    "control_total_estimate",
    "effective_size",
    "hanley_mcneil_interval",
    "newcombe_difference",
    "proportion_estimate",
    "proportion_interval",
    "two_sided_z",
    "wilson_interval",
]
