"""Regions, the human queue and label resolution: pure numpy, arrays in and arrays out.

Every pair gets exactly one region from its place on the curve (:mod:`rlthf_selector.curve`):

============  =====================================================================
``TRUSTED``   left of the knee minus the back-off: the AI label is used for training
``HELD``      the back-off band just left of the knee: not trained on, AI label kept
``HUMAN``     between the knee and the reflection point: the human queue is drawn here
``FLIP``      beyond the reflection point: the AI label is flipped automatically
============  =====================================================================

A human label always wins over every AI, flipped or RM label, and a pair with a human label is
never queued again. Pairs that are flipped automatically are queued last: a human answer there can only
catch a wrong flip, while elsewhere it catches an AI mistake. With judge evidence
(:mod:`rlthf_selector.evidence`) and ``SelectionConfig.flip_doubt`` <= 1, a pair is also flipped where the
reward model contradicts its AI label (gap < 0) and the judge doubts it at least that much.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum
from typing import Mapping, NamedTuple

import numpy as np

from rlthf_selector.config import SelectionConfig
from rlthf_selector.curve import CurveAnalysis
from rlthf_selector.pairs import LabelSource


class Region(IntEnum):
    """A pair's place on the reward curve. Stored as int8 in ``region`` arrays."""

    TRUSTED = 0
    HUMAN = 1
    FLIP = 2
    HELD = 3

    @property
    def label(self) -> str:
        return self.name.lower()


@dataclass
class Selection:
    """The outcome of :func:`select_pairs`.

    Attributes
    ----------
    region : ndarray of int8, shape (n,)
        :class:`Region` of each pair.
    human_queue : ndarray of int64, shape (k,)
        Pair positions to ask humans, most valuable first; k <= budget; no human-labelled pair.
    priority : ndarray of float64, shape (n,)
        Position of each pair in the queue ordering over all unlabeled pairs (0 = ask first);
        ``inf`` for human-labelled pairs. Backends use it as the labeling-order score.
    flip_mask : ndarray of bool, shape (n,)
        Pairs whose AI label is flipped (FLIP region, or contradicted and doubted as set by
        ``SelectionConfig.flip_doubt``; never a human-labelled pair; none when flipping is off).
    """

    region: np.ndarray
    human_queue: np.ndarray
    priority: np.ndarray
    flip_mask: np.ndarray


def assign_regions(curve: CurveAnalysis, *, back_off: float) -> np.ndarray:
    """Region of every pair from the curve's points.

    Parameters
    ----------
    curve : CurveAnalysis
        Of N pairs.
    back_off : float
        beta in [0, 1): the share of the pairs left of the knee, nearest the knee, that is held back.

    Returns
    -------
    ndarray of int8, shape (n,)
    """
    if not 0.0 <= back_off < 1.0:
        raise ValueError(f"back_off must be in [0, 1), got {back_off}")
    n = curve.n
    held_start = int(np.floor(curve.knee_index * (1.0 - back_off)))
    by_rank = np.full(n, Region.TRUSTED, dtype=np.int8)
    by_rank[held_start : curve.knee_index] = Region.HELD
    by_rank[curve.knee_index : curve.reflection_index] = Region.HUMAN
    by_rank[curve.reflection_index :] = Region.FLIP
    region = np.empty(n, dtype=np.int8)
    region[curve.order] = by_rank
    return region


def priority_key(
    oriented_gap: np.ndarray,
    *,
    strategy: str,
    knee_gap: float = 0.0,
    judge_doubt: np.ndarray | None = None,
    evidence_weight: float = 0.0,
) -> np.ndarray:
    """A sort key per pair: lower = more valuable to ask a human.

    Parameters
    ----------
    oriented_gap : ndarray, shape (n,)
        Reward gap in the orientation of the current label.
    strategy : {'lowest-gap', 'knee-first', 'margin'}
    knee_gap : float
        Gap at the knee (used by 'knee-first').
    judge_doubt : ndarray, shape (n,), optional
        The AI judge's own doubt in [0, 1] (disagreement between judges, position inconsistency,
        low confidence). Fused with the gap's rank when ``evidence_weight`` > 0.
    evidence_weight : float
        0 = gap only; 1 = doubt only.

    Returns
    -------
    ndarray of float64, shape (n,)
    """
    gap = np.asarray(oriented_gap, dtype=np.float64)
    if strategy == "lowest-gap":
        key = gap
    elif strategy == "knee-first":
        key = np.abs(gap - knee_gap)
    elif strategy == "margin":
        key = np.abs(gap)
    else:
        raise ValueError(f"unknown priority strategy {strategy!r}: use 'lowest-gap', 'knee-first' or 'margin'")
    if judge_doubt is None or evidence_weight <= 0:
        return key
    # Fuse on ranks so the two signals' scales never matter. Tied values share their mean rank: evidence is
    # often coarse (a second judge agrees or not), and an arbitrary order among ties would outweigh the gap.
    from scipy.stats import rankdata

    n = gap.shape[0]
    gap_rank = (rankdata(key) - 1.0) / max(n - 1, 1)
    doubt = np.asarray(judge_doubt, dtype=np.float64)
    if doubt.shape != gap.shape:
        raise ValueError(f"judge_doubt has shape {doubt.shape}, the gaps {gap.shape}")
    doubt_rank = (rankdata(-doubt) - 1.0) / max(n - 1, 1)
    return (1.0 - evidence_weight) * gap_rank + evidence_weight * doubt_rank


def select_pairs(
    oriented_gap: np.ndarray,
    curve: CurveAnalysis,
    *,
    human_label: np.ndarray,
    budget: int,
    back_off: float,
    config: SelectionConfig | None = None,
    judge_doubt: np.ndarray | None = None,
) -> Selection:
    """Regions, the budget-capped human queue and the flips.

    Parameters
    ----------
    oriented_gap : ndarray of float, shape (n,)
        The gaps the curve was built from.
    curve : CurveAnalysis
    human_label : ndarray of int8, shape (n,)
        Nonzero where a human already answered; those pairs are never queued or flipped.
    budget : int
        Cap on the queue length (>= 0).
    back_off : float
        beta, see :func:`assign_regions`.
    config : SelectionConfig, optional
    judge_doubt : ndarray of float, shape (n,), optional

    Returns
    -------
    Selection
    """
    config = config or SelectionConfig()
    gap = np.asarray(oriented_gap, dtype=np.float64)
    human = np.asarray(human_label)
    if gap.shape != human.shape or gap.shape[0] != curve.n:
        raise ValueError(f"oriented_gap {gap.shape}, human_label {human.shape} and curve (n={curve.n}) disagree")
    if budget < 0:
        raise ValueError(f"budget must be >= 0, got {budget}")
    region = assign_regions(curve, back_off=back_off)
    labelled = human != 0
    key = priority_key(gap, strategy=config.priority, knee_gap=curve.knee_gap,
                       judge_doubt=judge_doubt, evidence_weight=config.evidence_weight)

    # Band pairs first in key order; when the band is shorter than the budget, the rest of the
    # unlabeled pool follows in the same order, so the budget is spent where the signal points.
    # Pairs about to be flipped come last: a human answer there only catches a wrong flip.
    tier = (region != Region.HUMAN).astype(np.int8) if config.band_first else np.zeros(gap.shape[0], np.int8)
    flip_mask = np.zeros(gap.shape[0], bool)
    if config.auto_flip:
        flip_mask = region == Region.FLIP
        if judge_doubt is not None and config.flip_doubt <= 1.0:
            flip_mask |= evidence_flip_candidates(gap, judge_doubt, flip_doubt=config.flip_doubt)
        flip_mask &= ~labelled
        tier[flip_mask] = 2
    ranking = np.lexsort((key, tier))
    ranking = ranking[~labelled[ranking]]
    priority = np.full(gap.shape[0], np.inf)
    priority[ranking] = np.arange(ranking.shape[0], dtype=np.float64)
    if not config.fill_budget:
        ranking = ranking[region[ranking] == Region.HUMAN]
    human_queue = ranking[:budget].astype(np.int64)
    return Selection(region=region, human_queue=human_queue, priority=priority, flip_mask=flip_mask)


def evidence_flip_candidates(oriented_gap: np.ndarray, judge_doubt: np.ndarray, *, flip_doubt: float) -> np.ndarray:
    """The pairs RLTHF flips on evidence: two signals that the AI is wrong, the reward model contradicting its label
    (oriented gap < 0) and the judge doubting it at least ``flip_doubt``.

    Parameters
    ----------
    oriented_gap, judge_doubt : ndarray of float, shape (n,)

    Returns
    -------
    ndarray of bool, shape (n,)
    """
    return (np.asarray(oriented_gap) < 0) & (np.asarray(judge_doubt, dtype=np.float64) >= flip_doubt)


def control_slot_count(k: int, share: float, rng: np.random.Generator, *, at_least_one: bool = True) -> int:
    """How many of ``k`` slots go to control draws: ``share * k`` rounded at random (so short batches keep the
    share on average), at least one when ``at_least_one``, ``share`` > 0 and ``k`` > 0, at most ``k``.

    Raises
    ------
    ValueError
        ``share`` outside [0, 1].
    """
    if not 0.0 <= share <= 1.0:
        raise ValueError(f"control share must be in [0, 1], got {share}")
    expected = share * k
    whole = int(np.floor(expected))
    slots = whole + int(rng.random() < expected - whole)
    if at_least_one and share > 0 and k > 0:
        slots = max(slots, 1)
    return min(slots, k)


def adaptive_control_share(
    queue_overturned: int,
    queue_answered: int,
    control_overturned: int,
    control_answered: int,
    *,
    floor: float,
) -> float:
    """The share of the next batch to draw uniformly at random: the probability, given the answers so far, that a
    random pair holds an AI mistake more often than a queued one, and never less than ``floor``.

    Each group's overturn rate has a Beta(1 + overturned, 1 + kept) posterior; the share is P(control rate > queue
    rate) under them (Thompson sampling's probability matching over two arms, the queue and the control), computed
    exactly by :func:`beta_exceedance`. While the queue finds mistakes clearly more often than random draws it gets
    every slot but the floor's; where the answers show it finds them less often (a reward model that learned the
    judge's bias), the budget moves to random draws, which no learned bias can turn against the mistakes. Until
    both groups have an answer there is nothing to compare, and the share is the floor (the method's own queue is
    trusted first).

    Parameters
    ----------
    queue_overturned, queue_answered : int
        Answered queue draws, and how many of them the human overturned (said the AI label was wrong).
    control_overturned, control_answered : int
        The same for control draws.
    floor : float
        In [0, 1]: the configured control share, kept for the live estimates.

    Returns
    -------
    float
        In [floor, 1].

    Raises
    ------
    ValueError
        ``floor`` outside [0, 1], or counts that are negative or larger than their totals.
    """
    _check_share_inputs(floor, {"queue": (queue_overturned, queue_answered),
                                "control": (control_overturned, control_answered)})
    if queue_answered == 0 or control_answered == 0:
        return float(floor)
    control = (1 + control_overturned, 1 + control_answered - control_overturned)
    queue = (1 + queue_overturned, 1 + queue_answered - queue_overturned)
    # The closed form sums over the first parameter of the variable it asks about: take the one with fewer terms.
    if control[0] <= queue[0]:
        p = beta_exceedance(control, queue)
    else:
        p = 1.0 - beta_exceedance(queue, control)
    return float(min(1.0, max(floor, p)))


def ranking_shares(
    queue: tuple[int, int],
    reversed_queue: tuple[int, int],
    control: tuple[int, int],
    *,
    floor: float,
    rng: np.random.Generator,
    prior_strength: float = 2.0,
    draws: int = 8192,
) -> dict[str, float]:
    """Shares of the next batch for three sources of pairs: the queue (the reward model's ranking of the AI's likely
    mistakes), the same ranking reversed (the pairs the model agrees with most), and random (control) draws.

    Each share is the probability, given the answers so far, that its source finds AI mistakes most often
    (probability matching over three arms, by Monte Carlo). The control keeps at least ``floor``. Where a reward
    model has learned the judge's bias, its lowest gaps hold the AI's *right* labels and its highest gaps the
    systematic mistakes it copied, so the reversed ranking is the one that finds them. Until the queue and the
    control both have an answer, the queue takes every slot but the floor's, as in :func:`adaptive_control_share`.

    The queue and the control have Beta(1 + overturned, 1 + kept) posteriors. The reversed ranking's prior has
    ``prior_strength`` pseudo-answers centred on the mirror image of the queue's rate about the control's, clipped
    to [0.02, 0.98]: a queue that finds mistakes less often than random draws suggests that its reverse finds them
    more often, and one that finds them more often suggests the reverse is not worth a label. Its own answers take
    over after a few.

    Parameters
    ----------
    queue, reversed_queue, control : tuple of int
        (overturned, answered): answered draws of each source, and how many the human overturned.
    floor : float
        In [0, 1]: the least share for the control (kept for the live estimates).
    rng : numpy Generator
        For the Monte Carlo draws (seed it for a reproducible share).
    prior_strength : float
        Pseudo-answers of the reversed ranking's prior, > 0.
    draws : int
        Monte Carlo draws per arm.

    Returns
    -------
    dict of str to float
        ``queue``, ``reversed``, ``control``: shares in [0, 1] summing to 1; ``control`` >= ``floor``.

    Raises
    ------
    ValueError
        ``floor`` outside [0, 1], a prior strength <= 0, or counts that are negative or larger than their totals.
    """
    _check_share_inputs(floor, {"queue": queue, "reversed queue": reversed_queue, "control": control})
    if not prior_strength > 0:
        raise ValueError(f"prior_strength must be > 0, got {prior_strength}")
    if queue[1] == 0 or control[1] == 0:
        return {"queue": 1.0 - floor, "reversed": 0.0, "control": float(floor)}
    queue_mean = (1 + queue[0]) / (2 + queue[1])
    control_mean = (1 + control[0]) / (2 + control[1])
    mirror = min(0.98, max(0.02, 2 * control_mean - queue_mean))
    a = np.array([1 + queue[0], prior_strength * mirror + reversed_queue[0], 1 + control[0]], dtype=np.float64)
    b = np.array([1 + queue[1] - queue[0], prior_strength * (1 - mirror) + reversed_queue[1] - reversed_queue[0],
                  1 + control[1] - control[0]], dtype=np.float64)
    best = np.argmax(rng.beta(a, b, size=(int(draws), 3)), axis=1)
    p_queue, p_reversed, p_control = (float(x) for x in np.bincount(best, minlength=3) / float(draws))
    share_control = max(float(floor), float(p_control))
    targeted = p_queue + p_reversed
    share_reversed = (1.0 - share_control) * (p_reversed / targeted if targeted > 0 else 0.0)
    return {"queue": 1.0 - share_control - share_reversed, "reversed": share_reversed, "control": share_control}


def _check_share_inputs(floor: float, counts: Mapping[str, tuple[int, int]]) -> None:
    """Raise ``ValueError`` for a control share outside [0, 1] or an (overturned, answered) count that is negative
    or larger than its total, naming the source."""
    if not 0.0 <= floor <= 1.0:
        raise ValueError(f"control share must be in [0, 1], got {floor}")
    for name, (k, n) in counts.items():
        if not 0 <= k <= n:
            raise ValueError(f"{name}: {k} overturned of {n} answered is not a count within its total")


class BatchShares(NamedTuple):
    """The shares of the next batch (:func:`batch_shares`): the control's and the reversed ranking's of the whole
    batch; the queue takes the rest."""

    control: float
    reversed: float

    @property
    def reversed_of_targeted(self) -> float:
        """The reversed ranking's share of the targeted (non-control) slots: the ``share`` of
        :func:`interleave_reversed`."""
        return self.reversed / (1.0 - self.control) if self.control < 1.0 else 0.0


def batch_shares(
    counts: Mapping[str, tuple[int, int]],
    *,
    floor: float,
    adapt: bool,
    reversed_ranking: bool,
    rng: np.random.Generator,
) -> BatchShares:
    """The control's and the reversed ranking's shares of the next batch; the queue takes the rest.

    With ``reversed_ranking`` (and control draws to compare with), :func:`ranking_shares` over the three sources;
    else, with ``adapt``, :func:`adaptive_control_share` over the queue and the control; else ``floor`` alone.
    Without ``adapt`` the control keeps ``floor`` and the targeted slots are shared as :func:`ranking_shares` says.

    Parameters
    ----------
    counts : mapping of str to (overturned, answered)
        ``queue``, ``reversed``, ``control`` (:func:`rlthf_selector.estimates.answer_counts`).
    floor : float
        The configured control share, in [0, 1].
    adapt, reversed_ranking : bool
        ``LoopConfig.adapt_control_share`` and ``LoopConfig.reversed_ranking`` (or the backend's).
    rng : numpy Generator
        For :func:`ranking_shares`' Monte Carlo draws.

    Returns
    -------
    BatchShares
        ``(control, reversed)``: shares of the whole batch, summing to at most 1.
    """
    if reversed_ranking and floor > 0:
        shares = ranking_shares(counts["queue"], counts["reversed"], counts["control"], floor=floor, rng=rng)
        control = shares["control"] if adapt else float(floor)
        targeted = shares["queue"] + shares["reversed"]
        return BatchShares(control, (1.0 - control) * (shares["reversed"] / targeted if targeted > 0 else 0.0))
    if adapt and floor > 0:
        return BatchShares(adaptive_control_share(*counts["queue"], *counts["control"], floor=floor), 0.0)
    return BatchShares(float(floor), 0.0)


def interleave_reversed(
    human_queue: np.ndarray,
    oriented_gap: np.ndarray,
    *,
    drawable: np.ndarray,
    share: float,
    length: int,
) -> tuple[np.ndarray, np.ndarray]:
    """Targeted pairs from two rankings: the queue, and the drawable pairs outside it whose AI label the reward model
    agrees with most (highest oriented gap first), at ``share`` of the slots (:func:`ranking_shares`).

    Slot ``t`` goes to the reversed ranking when ``round((t + 1) * share)`` steps up, so any stretch of slots holds
    about ``share`` of them; a ranking that runs out leaves its slots to the other.

    Parameters
    ----------
    human_queue : ndarray of int64, shape (q,)
        Pair positions, most valuable first.
    oriented_gap : ndarray of float, shape (n,)
        The reward gap in the AI label's orientation.
    drawable : ndarray of bool, shape (n,)
        Pairs the reversed ranking may serve (unlabeled, with an AI label).
    share : float
        In [0, 1]: the reversed ranking's share of the slots; 0 serves the queue alone.
    length : int
        Most slots to fill.

    Returns
    -------
    order : ndarray of int64, shape (k,)
        The queue's first ``length`` at share 0; else ``k = min(length, q + reversed pairs)``.
    from_reversed : ndarray of bool, shape (k,)
    """
    queue = np.asarray(human_queue, dtype=np.int64)
    if share <= 0:
        order = queue[: max(int(length), 0)]
        return order, np.zeros(order.shape[0], dtype=bool)
    gap = np.asarray(oriented_gap, dtype=np.float64)
    candidates = np.flatnonzero(np.asarray(drawable, dtype=bool))
    candidates = candidates[~np.isin(candidates, queue)]
    reversed_queue = candidates[np.argsort(-gap[candidates], kind="stable")][: max(int(length), 0)]
    k = int(min(length, queue.shape[0] + reversed_queue.shape[0]))
    t = np.arange(k)
    wants = np.floor((t + 1) * share + 0.5) > np.floor(t * share + 0.5)
    # As many reversed slots as the share asks, within what each ranking holds.
    n_reversed = int(min(reversed_queue.shape[0], max(k - queue.shape[0], int(wants.sum()))))
    from_reversed = wants.copy()
    if from_reversed.sum() > n_reversed:
        from_reversed[np.flatnonzero(from_reversed)[n_reversed:]] = False
    elif from_reversed.sum() < n_reversed:
        from_reversed[np.flatnonzero(~from_reversed)[-(n_reversed - int(from_reversed.sum())):]] = True
    order = np.empty(k, dtype=np.int64)
    order[from_reversed] = reversed_queue[:n_reversed]
    order[~from_reversed] = queue[: k - n_reversed]
    return order, from_reversed


def beta_exceedance(x: tuple[int, int], y: tuple[int, int]) -> float:
    """P(X > Y) for independent X ~ Beta(*x), Y ~ Beta(*y), exactly, for a whole number ``x[0]``.

    The closed form (a sum of ``x[0]`` terms, e.g. Evan Miller, "Formulas for Bayesian A/B testing", 2015):
    P(X > Y) = sum over i < a_x of B(a_y + i, b_y + b_x) / ((b_x + i) B(1 + i, b_x) B(a_y, b_y)), in log space so
    that counts in the hundreds of thousands neither overflow nor take long.
    """
    from scipy.special import betaln

    (a_x, b_x), (a_y, b_y) = x, y
    i = np.arange(int(a_x), dtype=np.float64)
    log_terms = betaln(a_y + i, b_y + b_x) - np.log(b_x + i) - betaln(1.0 + i, b_x) - betaln(a_y, b_y)
    return float(np.clip(np.exp(log_terms).sum(), 0.0, 1.0))


def mix_control_draws(
    human_queue: np.ndarray,
    *,
    unlabeled: np.ndarray,
    share: float,
    rng: np.random.Generator,
) -> tuple[np.ndarray, np.ndarray]:
    """Give a share of the queue's slots to control draws: pairs drawn uniformly from every unlabeled pair.

    The control draws are what make the queue checkable: humans' answers on them estimate, without bias, the AI's
    accuracy and how much better than random the queue finds its mistakes (:func:`rlthf_selector.estimates.live_estimates`).
    They are drawn first, from all unlabeled pairs (the queue's included, so the frame is every unlabeled pair); the
    queue then fills the other slots in its order, skipping pairs the control took. Control draws are spread evenly
    through the batch, so whoever answers in order answers them at the same pace as the queue.

    Parameters
    ----------
    human_queue : ndarray of int64, shape (k,)
        Pair positions to ask, most valuable first.
    unlabeled : ndarray of bool, shape (n,)
        Pairs that may be drawn (no human label).
    share : float
        In [0, 1]. The number of control slots is ``share * k`` rounded at random (so small batches keep the share
        on average), and at least one when ``share`` > 0 and the queue is not empty.
    rng : numpy Generator

    Returns
    -------
    batch : ndarray of int64, shape (k',)
        The pairs to ask, in order (k' = k unless fewer unlabeled pairs remain).
    is_control : ndarray of bool, shape (k',)
        True where the pair is a control draw.
    """
    queue = np.asarray(human_queue, dtype=np.int64)
    unlabeled = np.asarray(unlabeled, dtype=bool)
    if queue.size and not unlabeled[queue].all():
        raise ValueError("the human queue holds a pair that already has a human label")
    k = int(queue.shape[0])
    frame = np.flatnonzero(unlabeled)
    n_control = min(control_slot_count(k, share, rng), frame.shape[0])
    control = rng.choice(frame, size=n_control, replace=False) if n_control else np.zeros(0, np.int64)
    rest = queue[~np.isin(queue, control)][: k - n_control]
    size = n_control + rest.shape[0]
    is_control = np.zeros(size, dtype=bool)
    if n_control:
        # Evenly spread: the j-th control draw sits at the middle of the j-th of n_control equal stretches.
        is_control[np.floor((np.arange(n_control) + 0.5) * size / n_control).astype(np.int64)] = True
    batch = np.empty(size, dtype=np.int64)
    batch[is_control] = control
    batch[~is_control] = rest
    return batch, is_control


def resolve_labels(
    ai_label: np.ndarray,
    human_label: np.ndarray,
    *,
    flip_mask: np.ndarray | None = None,
    rm_label: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Each pair's current label and its source: human > flipped AI > AI > RM.

    Parameters
    ----------
    ai_label, human_label : ndarray of int8, shape (n,)
    flip_mask : ndarray of bool, shape (n,), optional
        AI labels to flip (ignored where a human answered or there is no AI label).
    rm_label : ndarray of int8, shape (n,), optional
        The reward model's own verdict, used only where neither a human nor the AI labelled.

    Returns
    -------
    labels : ndarray of int8, shape (n,)
    label_source : ndarray of int8, shape (n,)
        :class:`~rlthf_selector.pairs.LabelSource` values.
    """
    ai = np.asarray(ai_label, dtype=np.int8)
    human = np.asarray(human_label, dtype=np.int8)
    n = ai.shape[0]
    labels = np.zeros(n, dtype=np.int8)
    source = np.full(n, LabelSource.NONE, dtype=np.int8)
    if rm_label is not None:
        rm = np.asarray(rm_label, dtype=np.int8)
        labels[rm != 0] = rm[rm != 0]
        source[rm != 0] = LabelSource.RM
    has_ai = ai != 0
    labels[has_ai] = ai[has_ai]
    source[has_ai] = LabelSource.AI
    if flip_mask is not None:
        flip = np.asarray(flip_mask, dtype=bool) & has_ai
        labels[flip] = -ai[flip]
        source[flip] = LabelSource.FLIPPED
    has_human = human != 0
    labels[has_human] = human[has_human]
    source[has_human] = LabelSource.HUMAN
    return labels, source
