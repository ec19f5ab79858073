"""Live, human-checked estimates of how good the AI labels, the targeted queue and the mistake ranking are, from the
human answers to a pool's queue and control draws (:func:`live_estimates`), and the plain-words warnings they give
(:func:`estimate_warnings`). The statistics underneath are in :mod:`rlthf_selector.intervals`.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from rlthf_selector.intervals import (
    PROPORTION_METHODS,
    Estimate,
    auc_estimate,
    check_confidence,
    control_total_estimate,
    newcombe_difference,
    proportion_estimate,
)


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
            (:func:`~rlthf_selector.intervals.control_total_estimate`); ``n`` = answered control draws.
        ``control_overturn``
            How often humans overturn the AI on control draws (the AI's error rate on unlabeled pairs).
        ``queue_precision``
            How often humans overturn the AI on queue draws.
        ``queue_minus_control``
            ``queue_precision - control_overturn`` (:func:`~rlthf_selector.intervals.newcombe_difference`): above 0
            when the queue finds the AI's mistakes better than random draws.
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
    confidence = check_confidence(confidence)
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
    "NOT_DRAWN",
    "QUEUE_DRAW",
    "chance_warning",
    "estimate_warnings",
    "live_estimates",
]
