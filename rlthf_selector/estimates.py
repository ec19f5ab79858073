"""Statistics for live, human-checked estimates: proportion intervals, AUC with intervals, and totals from
uniform control draws with the targeted queue's selection accounted for.

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


def _check_confidence(confidence: float) -> float:
    confidence = float(confidence)
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence must be in (0, 1), got {confidence}")
    return confidence


def two_sided_z(confidence: float) -> float:
    """The standard normal quantile z with P(|Z| <= z) = ``confidence`` (0.9 -> 1.6449, 0.95 -> 1.9600)."""
    confidence = _check_confidence(confidence)
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
    tail = (1.0 - _check_confidence(confidence)) / 2.0
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
        tail = (1.0 - _check_confidence(confidence)) / 2.0
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


# ----------------------------------------------------------------------------------------------
# Plain-words warnings from live estimates
# ----------------------------------------------------------------------------------------------
def chance_warning(mistake_auc: Estimate | None) -> str | None:
    """A plain-words warning when the mistake model's ranking is not shown to beat chance (AUC interval reaches 0.5).

    Three cases: the interval lies below 0.5 (the ranking is inverted), it holds 0.5 (no better than chance as far
    as the answers tell), or it is the uninformative (0, 1) because too few random answers are in (cannot tell yet).
    None when the lower bound is above 0.5 or there is no estimate.
    """
    if mistake_auc is None or mistake_auc.value is None or mistake_auc.lower is None or mistake_auc.upper is None:
        return None
    if mistake_auc.lower > 0.5:
        return None
    if mistake_auc.lower <= 0.0 and mistake_auc.upper >= 1.0:
        return (f"Too few random human answers yet ({mistake_auc.n}) to tell whether the mistake model's ranking finds "
                f"the AI's mistakes better than chance; until they show it does, its queue is an unchecked prior.")
    pct = f"{100 * mistake_auc.confidence:.0f}%"
    if mistake_auc.upper < 0.5:
        verdict = ("below chance: the pairs it ranks first are less often wrong than random ones, the opposite of what "
                   "RLTHF assumes")
    else:
        verdict = "no better than chance, as far as the human answers so far can tell"
    return (f"The mistake model's ranking is {verdict}. Its mistake-ranking AUC on {mistake_auc.n} randomly drawn "
            f"human answers is {mistake_auc.value:.2f} ({pct} interval {mistake_auc.lower:.2f} to "
            f"{mistake_auc.upper:.2f}; 0.5 is a coin toss). It refits on every answer, so more answers can turn it "
            f"round; until they do, the queue is worth little more than random labeling.")


def estimate_warnings(estimates: dict[str, Estimate]) -> list[str]:
    """Plain-words warnings from live estimates: the mistake model's ranking not shown to beat chance
    (:func:`chance_warning`), and a targeted queue not credibly better than the control draws.

    Parameters
    ----------
    estimates : dict of str to Estimate
        With ``mistake_auc``, ``queue_minus_control``, ``queue_precision`` and ``control_overturn`` where known
        (:func:`rlthf_selector.estimates.live_estimates`).

    Returns
    -------
    list of str
    """
    warnings = [w for w in (chance_warning(estimates.get("mistake_auc")),) if w]
    q = estimates.get("queue_minus_control")
    if q is not None and q.lower is not None and q.lower <= 0:
        warnings.append(
            f"The targeted queue is not credibly better than random draws: humans overturned the AI on "
            f"{_pct(estimates['queue_precision'].value)} of queued pairs and "
            f"{_pct(estimates['control_overturn'].value)} of control pairs (difference {q.value:+.2f}, "
            f"{100 * q.confidence:.0f}% interval {q.lower:+.2f} to {q.upper:+.2f})")
    return warnings


def _pct(x: float | None) -> str:
    return "—" if x is None else f"{100 * x:.0f}%"


# ----------------------------------------------------------------------------------------------
# Live estimates from a pool's draw records
# ----------------------------------------------------------------------------------------------
#: Codes of ``drawn_by`` in :func:`live_estimates`: not drawn (or answered outside any draw), drawn by the targeted
#: queue, drawn uniformly at random as a control.
NOT_DRAWN, QUEUE_DRAW, CONTROL_DRAW = 0, 1, 2


def live_estimates(
    *,
    ai_label: Any,
    human_label: Any,
    drawn_by: Any,
    draw_round: Any,
    label_round: Any,
    frame: Any,
    mistake_score: Any,
    n_flipped: int = 0,
    confidence: float = 0.9,
    method: str = "clopper-pearson",
) -> dict[str, Estimate]:
    """Live estimates, with intervals, of how good the AI labels, the targeted queue and the reward model's ranking
    are, from the human answers to a pool's queue and control draws.

    Humans label in rounds. At the start of round ``r`` a batch is drawn: targeted pairs (the queue) and control
    pairs, each drawn uniformly at random from the pairs unlabeled then (its *frame*). Answers given during round
    ``r`` are known from round ``r + 1`` on. Only answers to draws count in their group; a pair a human labelled
    of their own accord counts in neither (pass ``NOT_DRAWN``), but its label is counted exactly where the totals
    need it.

    Parameters
    ----------
    ai_label : array-like of int, shape (n,)
        +1 (A) or -1 (B) on every pair: the estimates are about the AI's labels.
    human_label : array-like of int, shape (n,)
        +1, -1, or 0 where no human has answered. Human labels are taken as right.
    drawn_by : array-like of int, shape (n,)
        The group a pair's human answer counts in: :data:`NOT_DRAWN`, :data:`QUEUE_DRAW` or :data:`CONTROL_DRAW`.
        Read only where ``human_label`` is nonzero (an unanswered draw says nothing).
    draw_round : array-like of int, shape (n,)
        The round the pair was drawn in; read where it was drawn and answered.
    label_round : array-like of int, shape (n,)
        The round during which the human answered; read where ``human_label`` is nonzero. A draw's answer must
        come in its own round or later.
    frame : array-like of int, shape (n,)
        How many pairs were unlabeled when the pair was drawn (the control draw's frame size); read for answered
        control draws, where it must be at least 1.
    mistake_score : array-like of float, shape (n,)
        The reward model's mistake score when the pair was drawn (higher = the AI label more likely wrong, e.g. minus
        the reward gap in the AI label's orientation); read for answered control draws, where it must be finite.
    n_flipped : int
        Unlabeled pairs whose exported label is the AI's flipped. No answer checks them here, so they are treated as
        unknown (see ``pool_accuracy`` below).
    confidence : float
        Two-sided coverage of every interval.
    method : str
        Interval of the proportions and of the control totals: ``clopper-pearson`` or ``wilson``.
    Returns
    -------
    dict of str to Estimate
        ``ai_accuracy``
            The share of the pool whose AI label is right: each answered control draw estimates the number right
            among the pairs unlabeled at its draw, the pairs labelled before it are counted exactly
            (:func:`control_total_estimate`); ``n`` = answered control draws.
        ``control_overturn``
            How often humans overturn the AI on control draws (the AI's error rate on unlabeled pairs).
        ``queue_precision``
            How often humans overturn the AI on queue draws.
        ``queue_minus_control``
            ``queue_precision - control_overturn`` (:func:`newcombe_difference`): above 0 when the queue finds the
            AI's mistakes better than random draws.
        ``mistake_auc``
            The AUC of ``mistake_score`` for "the human overturned the AI" on the answered control draws (Hanley-McNeil
            interval; the uninformative (0, 1) while either class has fewer than 5 answers).
        ``pool_accuracy``
            The expected share of right labels in the exported pool: human labels right, the AI labels of the
            unlabeled pairs right as the control draws say (those labelled since a draw taken out exactly). Each
            flipped pair is right exactly when its AI label was wrong, which no answer here measured: the value takes
            their AI labels to be right as often as the other unlabeled pairs', the lower limit takes every flip to be
            wrong and the upper limit every flip to be right.

    Raises
    ------
    ValueError
        Arrays of different shapes, a pair without an AI label, codes outside the ones above, an answer given before
        its draw, an answered control draw without a frame or a finite score, or ``n_flipped`` out of range.
    """
    from rlthf_selector.validation import check_label_vector, check_number_vector, raise_if_any

    ai_arr = np.asarray(ai_label)
    if ai_arr.ndim != 1 or ai_arr.shape[0] == 0:
        raise ValueError(f"ai_label must be a non-empty 1-D array, got shape {ai_arr.shape}")
    n = int(ai_arr.shape[0])
    ai = check_label_vector(ai_arr, n, "ai_label", allow_unknown=False)
    human = check_label_vector(human_label, n, "human_label")
    group = check_number_vector(drawn_by, n, "drawn_by", np.int64)
    raise_if_any(~np.isin(group, (NOT_DRAWN, QUEUE_DRAW, CONTROL_DRAW)),
               f"drawn_by must be {NOT_DRAWN} (not drawn), {QUEUE_DRAW} (queue) or {CONTROL_DRAW} (control)")
    drawn_in = check_number_vector(draw_round, n, "draw_round", np.int64)
    answered_in = check_number_vector(label_round, n, "label_round", np.int64)
    frame_size = check_number_vector(frame, n, "frame", np.int64)
    score = check_number_vector(mistake_score, n, "mistake_score", np.float64)
    confidence = _check_confidence(confidence)
    if method not in PROPORTION_METHODS:
        raise ValueError(f"unknown interval method {method!r}: use one of {PROPORTION_METHODS}")

    labelled = human != 0
    answered = labelled & (group != NOT_DRAWN)
    control = answered & (group == CONTROL_DRAW)
    queue = answered & (group == QUEUE_DRAW)
    raise_if_any(answered & (answered_in < drawn_in), "an answer came before its draw (label_round < draw_round)")
    raise_if_any(control & (frame_size < 1), "an answered control draw has frame < 1 (unlabeled pairs at its draw)")
    raise_if_any(control & ~np.isfinite(score), "an answered control draw has no finite mistake_score")
    n_unlabeled = int((~labelled).sum())
    if not 0 <= int(n_flipped) <= n_unlabeled or int(n_flipped) != n_flipped:
        raise ValueError(f"n_flipped must be a whole number of unlabeled pairs, 0 to {n_unlabeled}, got {n_flipped}")
    n_flipped = int(n_flipped)

    overturn = labelled & (human != ai)
    agree = labelled & (human == ai)
    # Right AI labels among pairs labelled before each control draw (label_round < draw_round): counted exactly.
    agree_rounds = np.sort(answered_in[agree])
    control_rounds = drawn_in[control]
    agree_before = np.searchsorted(agree_rounds, control_rounds, side="left").astype(np.float64)
    outcome = agree[control].astype(np.float64)
    frames = frame_size[control].astype(np.float64)

    right_in_pool = control_total_estimate(outcome, frames, agree_before, confidence=confidence, method=method)
    out: dict[str, Estimate] = {"ai_accuracy": _share_of(right_in_pool, n)}
    k_control, n_control = int(overturn[control].sum()), int(control.sum())
    k_queue, n_queue = int(overturn[queue].sum()), int(queue.sum())
    out["control_overturn"] = proportion_estimate(k_control, n_control, confidence=confidence, method=method)
    out["queue_precision"] = proportion_estimate(k_queue, n_queue, confidence=confidence, method=method)
    out["queue_minus_control"] = newcombe_difference(k_queue, n_queue, k_control, n_control, confidence=confidence)
    out["mistake_auc"] = auc_estimate(score[control], overturn[control], confidence=confidence, method="hanley-mcneil")

    # Right AI labels among the pairs still unlabeled: each draw's frame total, less those labelled since it.
    agree_since = float(agree_rounds.shape[0]) - agree_before
    right_unlabeled = control_total_estimate(outcome, frames, -agree_since, confidence=confidence, method=method)
    out["pool_accuracy"] = _pool_share(right_unlabeled, n_labelled=int(labelled.sum()), n_unlabeled=n_unlabeled,
                                       n_flipped=n_flipped, n=n)
    return out


def _share_of(total: Estimate, n: int) -> Estimate:
    """A total over ``n`` pairs as a share, clipped to [0, 1] (the frames differ a little between draws)."""
    if total.value is None:
        return total
    clip = lambda x: min(1.0, max(0.0, x / n))  # noqa: E731
    return Estimate(clip(total.value), clip(total.lower), clip(total.upper), total.n, total.confidence, total.method)


def _pool_share(right_unlabeled: Estimate, *, n_labelled: int, n_unlabeled: int, n_flipped: int, n: int) -> Estimate:
    """The exported pool's share of right labels from the right AI labels among the unlabeled pairs (a total).

    With ``S`` the right AI labels among the ``f`` flipped pairs, the pool holds ``H + T + f - 2 S`` right labels.
    ``S`` is unmeasured: the value takes ``S = f T / U``; the limits take ``S`` at its extremes (every flip wrong:
    ``S = min(f, T)``; every flip right: ``S = 0``), so they hold whatever the flips did.
    """
    est = right_unlabeled
    if est.value is None:
        if n_unlabeled == 0:  # every pair has a human label: nothing left to estimate
            return Estimate(1.0, 1.0, 1.0, 0, est.confidence, est.method)
        return est
    f = float(n_flipped)
    right = min(max(est.value, 0.0), float(n_unlabeled))
    value = n_labelled + right + f - 2.0 * f * right / n_unlabeled
    lower = n_labelled + max(est.lower - f, 0.0)
    upper = n_labelled + est.upper + f
    method = est.method + (f", {n_flipped} flips unverified" if n_flipped else "")
    clip = lambda x: min(1.0, max(0.0, x / n))  # noqa: E731
    return Estimate(clip(value), clip(lower), clip(upper), est.n, est.confidence, method)


__all__ = [
    "CONTROL_DRAW",
    "Estimate",
    "NOT_DRAWN",
    "PROPORTION_METHODS",
    "QUEUE_DRAW",
    "auc",
    "auc_estimate",
    "chance_warning",
    "clopper_pearson_interval",
    "combine_totals",
    "control_total_estimate",
    "effective_size",
    "estimate_warnings",
    "hanley_mcneil_interval",
    "live_estimates",
    "newcombe_difference",
    "proportion_estimate",
    "proportion_interval",
    "two_sided_z",
    "wilson_interval",
]
