"""Regions, the human queue and label resolution: pure numpy, arrays in and arrays out.

Every pair gets exactly one region from its place on the curve (:mod:`rlthf_selector.curve`):

============  =====================================================================
``TRUSTED``   left of the knee minus the back-off: the AI label is used for training
``HELD``      the back-off band just left of the knee: not trained on, AI label kept
``HUMAN``     between the knee and the reflection point: the human queue is drawn here
``FLIP``      beyond the reflection point: the AI label is flipped automatically
============  =====================================================================

In the default ``learned`` method the regions feed the reward model's training set (trusted, held) and the
mistake model's signals (:mod:`rlthf_selector.mistakes`); who is asked and what is flipped follow the mistake
model's P(AI label wrong) (:func:`select_pairs`). The ``paper`` method asks the band and flips the FLIP region
(:func:`paper_selection`). Either way a human label always wins over every AI, flipped or RM label, and a pair with
a human label is never queued or flipped.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from enum import IntEnum

import numpy as np

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
        Pairs whose AI label is flipped (never a human-labelled pair).
    gain : ndarray of float64, shape (n,)
        The chance that a human answer changes the pair's label (0 for human-labelled pairs).
    """

    region: np.ndarray
    human_queue: np.ndarray
    priority: np.ndarray
    flip_mask: np.ndarray
    gain: np.ndarray


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


def select_pairs(
    prob_wrong: np.ndarray,
    lower_wrong: np.ndarray,
    *,
    region: np.ndarray,
    human_label: np.ndarray,
    budget: int,
    lower_ahead: np.ndarray | None = None,
) -> Selection:
    """The human queue and the flips from the mistake model (:mod:`rlthf_selector.mistakes`).

    An unlabeled pair is flipped where the lower confidence bound on P(AI label wrong) is above 0.5. A human answer
    is worth the chance that it changes the pair's final label: 1 - P(wrong) for a pair the model will flip by the
    end of the budget (``lower_ahead`` above 0.5), P(wrong) for the others, one half for a pair with no AI label (the
    reward model's own guess). The queue asks the highest expected gain first: while few answers are to come, the
    likeliest mistakes, which nothing else will fix; with many to come, the pairs the model can least decide, not
    those it will flip anyway.

    Parameters
    ----------
    prob_wrong, lower_wrong : ndarray of float, shape (n,)
        P(AI label wrong) and its lower confidence bound; NaN where a pair has no AI label.
    lower_ahead : ndarray of float, shape (n,), optional
        The bound expected at the end of the budget (:class:`~rlthf_selector.mistakes.MistakeEstimate`); default
        ``lower_wrong`` (no answer to come).
    region : ndarray of int8, shape (n,)
        :func:`assign_regions` (carried into the result).
    human_label : ndarray of int8, shape (n,)
        Nonzero where a human already answered; those pairs are never queued or flipped.
    budget : int
        Cap on the queue length (>= 0).

    Returns
    -------
    Selection
    """
    prob = np.asarray(prob_wrong, dtype=np.float64)
    lower = np.asarray(lower_wrong, dtype=np.float64)
    human = np.asarray(human_label)
    if not prob.shape == lower.shape == human.shape == np.asarray(region).shape:
        raise ValueError(f"prob_wrong {prob.shape}, lower_wrong {lower.shape}, human_label {human.shape} and region "
                         f"{np.asarray(region).shape} must have one entry per pair")
    if budget < 0:
        raise ValueError(f"budget must be >= 0, got {budget}")
    unlabeled = human == 0
    flip_mask = unlabeled & (np.nan_to_num(lower, nan=0.0) > 0.5)
    ahead = lower if lower_ahead is None else np.asarray(lower_ahead, dtype=np.float64)
    if ahead.shape != prob.shape:
        raise ValueError(f"lower_ahead {ahead.shape} must have one entry per pair, like prob_wrong {prob.shape}")
    flipped_by_then = unlabeled & (np.nan_to_num(ahead, nan=0.0) > 0.5)
    gain = np.where(np.isnan(prob), 0.5, np.where(flipped_by_then, 1.0 - prob, prob))
    ranking = np.flatnonzero(unlabeled)
    ranking = ranking[np.argsort(-gain[ranking], kind="stable")]
    priority = np.full(prob.shape[0], np.inf)
    priority[ranking] = np.arange(ranking.shape[0], dtype=np.float64)
    return Selection(region=np.asarray(region, dtype=np.int8), human_queue=ranking[:budget].astype(np.int64),
                     priority=priority, flip_mask=flip_mask, gain=np.where(unlabeled, gain, 0.0))


def paper_selection(oriented_gap: np.ndarray, region: np.ndarray, *, human_label: np.ndarray, budget: int) -> Selection:
    """The paper's procedure: ask the knee-to-reflection band, most contradicted (lowest gap) first, and flip every
    unlabeled pair beyond the reflection point. Nothing else is asked, whatever the budget.

    Parameters
    ----------
    oriented_gap : ndarray of float, shape (n,)
        The gaps the curve was built from.
    region : ndarray of int8, shape (n,)
    human_label : ndarray of int8, shape (n,)
    budget : int
        Cap on the queue length (>= 0).

    Returns
    -------
    Selection
        ``gain`` is 1 along the band's queue order, 0 elsewhere.
    """
    gap = np.asarray(oriented_gap, dtype=np.float64)
    region = np.asarray(region, dtype=np.int8)
    human = np.asarray(human_label)
    if not gap.shape == region.shape == human.shape:
        raise ValueError(f"oriented_gap {gap.shape}, region {region.shape} and human_label {human.shape} disagree")
    if budget < 0:
        raise ValueError(f"budget must be >= 0, got {budget}")
    unlabeled = human == 0
    band = np.flatnonzero(unlabeled & (region == Region.HUMAN))
    ranking = band[np.argsort(gap[band], kind="stable")]
    priority = np.full(gap.shape[0], np.inf)
    priority[ranking] = np.arange(ranking.shape[0], dtype=np.float64)
    gain = np.zeros(gap.shape[0])
    gain[ranking] = 1.0
    return Selection(region=region, human_queue=ranking[:budget].astype(np.int64), priority=priority,
                     flip_mask=unlabeled & (region == Region.FLIP), gain=gain)


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


def targeted_needed(length: int, *, share: float, waiting: int = 0) -> int:
    """How many targeted pairs to rank for a batch of ``length`` slots: the control draws (``waiting`` earlier ones
    still unanswered plus this batch's share) may take pairs of the queue, and spare entries fill their places so
    the batch keeps its length (:func:`assemble_batch`)."""
    if share <= 0:
        return int(length)
    return int(length) + int(waiting) + math.ceil(share * length) + 1


@dataclass
class Batch:
    """A human batch: targeted pairs with control draws placed among them (:func:`assemble_batch`).

    Attributes
    ----------
    order : ndarray of int64, shape (k,)
        Pair positions, asked first to last.
    is_control : ndarray of bool, shape (k,)
        Which entries are control draws.
    fresh_control : ndarray of int64, shape (m,)
        The control draws made for this batch (the other control entries were drawn earlier and still wait).
    """

    order: np.ndarray
    is_control: np.ndarray
    fresh_control: np.ndarray


def assemble_batch(
    human_queue: np.ndarray,
    *,
    human_label: np.ndarray,
    ai_label: np.ndarray,
    length: int,
    share: float,
    rng: np.random.Generator,
    waiting_control: np.ndarray | None = None,
    answered: int = 0,
    answered_control: int = 0,
) -> Batch:
    """The batch humans are asked: a share of its slots goes to control draws, placed so annotators reach them at
    that pace; the targeted pairs fill the other slots in queue order.

    The control draws are what make the queue checkable: humans' answers on them estimate, without bias, the AI's
    accuracy and how much better than random the queue finds its mistakes (:func:`rlthf_selector.estimates.live_estimates`).
    Control entries are the earlier control draws still unanswered (oldest first: an unanswered control draw keeps
    its place until a human answers it, whatever its content), then fresh draws, uniform over every unlabeled pair
    with an AI label, the targeted queue's included (so each draw's frame is every such pair). The targeted pairs
    fill the other slots in queue order, skipping the control's.

    A backend retrains after every few answers, so a fixed spot in each new batch might never reach the head. The
    ``j``-th control entry is placed at the first slot ``m`` where the answered draws so far plus the slots up to
    ``m`` would hold the configured share of control: ``answered_control + j + 0.5 <= share * (answered + m + 1)``.
    Where positions depend only on counts, which control pairs get answered does not depend on what they hold.

    Parameters
    ----------
    human_queue : ndarray of int64, shape (q,)
        Targeted pairs, most valuable first; may run past ``length`` (the spare entries replace pairs the control
        took, see :func:`targeted_needed`).
    human_label, ai_label : ndarray of int8, shape (n,)
        A fresh control draw takes a pair with an AI label and no human label.
    length : int
        Slots in the batch.
    share : float
        In [0, 1]. The control slots are ``share * min(length, q)`` rounded at random (:func:`control_slot_count`),
        at least one when ``share`` > 0 and the batch is not empty.
    rng : numpy Generator
    waiting_control : ndarray of int64, shape (w,), optional
        Earlier control draws still unanswered, oldest first. They are never asked as targeted pairs.
    answered, answered_control : int
        Human answers to draws so far (queue and control together), and to control draws.

    Returns
    -------
    Batch

    Raises
    ------
    ValueError
        A queued or waiting pair that already has a human label (a human is never asked twice), or ``share``
        outside [0, 1].
    """
    queue = np.asarray(human_queue, dtype=np.int64)
    human = np.asarray(human_label)
    waiting = np.zeros(0, np.int64) if waiting_control is None else np.asarray(waiting_control, dtype=np.int64)
    if (human[queue] != 0).any() or (human[waiting] != 0).any():
        raise ValueError("the human queue holds a pair that already has a human label")
    k = int(min(length, queue.shape[0]))
    slots = control_slot_count(k, share, rng)
    control = waiting[:slots]
    fresh = np.zeros(0, dtype=np.int64)
    if control.shape[0] < slots:
        candidates = np.flatnonzero((human == 0) & (np.asarray(ai_label) != 0))
        candidates = candidates[~np.isin(candidates, waiting)]
        fresh = rng.choice(candidates, size=min(slots - control.shape[0], candidates.shape[0]), replace=False)
        control = np.concatenate([control, fresh.astype(np.int64)])
    targeted = queue[~np.isin(queue, control) & ~np.isin(queue, waiting)][: k - control.shape[0]]
    total = targeted.shape[0] + control.shape[0]
    is_control = np.zeros(total, dtype=bool)
    c = control.shape[0]
    if c:
        j = np.arange(c)
        first_fit = np.ceil((answered_control + j + 0.5) / share - answered - 1 - 1e-9).astype(np.int64)
        # Strictly increasing slots (a backlog of control puts several in a row), and the last c slots at the latest.
        slot = np.maximum.accumulate(np.maximum(first_fit, 0) - j) + j
        slot = np.minimum(slot, total - c + j)
        is_control[slot] = True
    order = np.empty(total, dtype=np.int64)
    order[is_control] = control
    order[~is_control] = targeted
    return Batch(order=order, is_control=is_control, fresh_control=fresh.astype(np.int64))


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
