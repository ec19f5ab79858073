"""The iterative RLTHF procedure: train -> score -> curve -> select -> ask humans -> retrain.

:func:`select_step` is one stateless step (the Label Studio backend calls it after each batch of
annotations); :class:`RLTHF` runs the whole loop with an :class:`Annotator`.
"""

from __future__ import annotations

import math
import time
from abc import ABC, abstractmethod
from dataclasses import asdict, dataclass, field, replace
from typing import Any, Callable, NamedTuple

import numpy as np

from rlthf_selector.config import CurveConfig, LoopConfig, SelectionConfig
from rlthf_selector.curve import CurveAnalysis, analyze_curve
from rlthf_selector.mistakes import MistakeEstimate, estimate_mistakes
from rlthf_selector.pairs import LabelSource, PreferencePairs
from rlthf_selector.selection import (
    Region,
    Selection,
    assemble_batch,
    assign_regions,
    paper_selection,
    resolve_labels,
    select_pairs,
)
from rlthf_selector.signals import Signal, SignalContext, compute_signals


class Annotator(ABC):
    """Whoever answers the human queue."""

    @abstractmethod
    def annotate(self, pairs: PreferencePairs, index: np.ndarray) -> np.ndarray:
        """Labels for ``pairs`` at positions ``index`` (shape (k,)): +1 (A), -1 (B) or 0 (skipped)."""


class GoldAnnotator(Annotator):
    """A simulated human who answers with the gold label."""

    def annotate(self, pairs: PreferencePairs, index: np.ndarray) -> np.ndarray:
        answers = pairs.gold_label[index]
        if (answers == 0).any():
            missing = pairs.ids[index][answers == 0][:3].tolist()
            raise ValueError(f"GoldAnnotator: no gold label for pairs {missing}")
        return answers.copy()


@dataclass
class StepResult:
    """One step's scores, curve and selection. Arrays have shape (n,) unless stated.

    Attributes
    ----------
    reward_gap : float64, r(A) - r(B), out-of-fold when ``LoopConfig.out_of_fold`` > 1.
    oriented_gap : float64, the gap in the orientation of each pair's current (pre-flip) label.
    curve : CurveAnalysis
    region : int8 :class:`~rlthf_selector.selection.Region`
    human_queue : int64, shape (k,), pair positions to ask, most valuable first.
    priority : float64, queue rank (0 = first), inf for human-labelled pairs.
    flip_mask : bool
    labels : int8, resolved label (human > flipped > AI > RM).
    label_source : int8 :class:`~rlthf_selector.pairs.LabelSource`
    train_weight : float64, each pair's weight in this step's training (0 = not trained on).
    signals : list of :class:`~rlthf_selector.signals.Signal` the mistake model reads (empty for ``paper``).
    mistakes : :class:`~rlthf_selector.mistakes.MistakeEstimate`, P(AI label wrong) per pair and the fitted model;
        None for ``paper``.
    gain : float64, the chance a human answer changes the pair's label (the queue's order).
    """

    iteration: int
    alpha: float
    beta: float
    reward_gap: np.ndarray
    oriented_gap: np.ndarray
    curve: CurveAnalysis
    region: np.ndarray
    human_queue: np.ndarray
    priority: np.ndarray
    flip_mask: np.ndarray
    labels: np.ndarray
    label_source: np.ndarray
    train_weight: np.ndarray
    signals: list[Signal] = field(default_factory=list)
    mistakes: MistakeEstimate | None = None
    gain: np.ndarray | None = None
    seconds: float = 0.0

    def replan(self, pairs: PreferencePairs, *, budget: int, remaining: int | None = None,
               selection_config: SelectionConfig | None = None) -> None:
        """Refit the mistake model on the human answers now in ``pairs`` and redo the queue, the flips and the labels
        (the reward model, its gaps, the curve and the regions stay this step's). ``remaining``: see :func:`plan`."""
        apply_selection(self, plan(pairs, self.oriented_gap, self.region, signals=self.signals, budget=budget,
                                   remaining=remaining, selection_config=selection_config), pairs)

    def summary(self) -> dict[str, Any]:
        """Counts by region and source, the curve's points and warnings (JSON-able)."""
        return {
            "iteration": self.iteration,
            "alpha": self.alpha,
            "beta": self.beta,
            "n": int(self.region.shape[0]),
            "regions": {r.label: int((self.region == r).sum()) for r in Region},
            "label_sources": {s.label: int((self.label_source == s).sum()) for s in LabelSource},
            "queue_length": int(self.human_queue.shape[0]),
            "trained_on": int((self.train_weight > 0).sum()),
            "curve": self.curve.to_dict(),
            "seconds": round(self.seconds, 3),
        }


def training_set(
    ai_label: np.ndarray,
    human_label: np.ndarray,
    *,
    alpha: float,
    previous_region: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Training labels and weights: human labels weighted ``alpha``; AI labels weight 1 where the
    previous step put the pair in the trusted region (everywhere on the first step).

    Returns
    -------
    labels : ndarray of int8, shape (n,), 0 = not trained on
    weights : ndarray of float64, shape (n,)
    """
    ai = np.asarray(ai_label, dtype=np.int8)
    human = np.asarray(human_label, dtype=np.int8)
    use_ai = ai != 0
    if previous_region is not None:
        use_ai &= np.asarray(previous_region) == Region.TRUSTED
    labels = np.where(human != 0, human, np.where(use_ai, ai, 0)).astype(np.int8)
    weights = np.where(human != 0, float(alpha), np.where(use_ai, 1.0, 0.0))
    return labels, weights


def select_step(
    pairs: PreferencePairs,
    reward_model: Any,
    *,
    iteration: int,
    budget: int,
    loop_config: LoopConfig | None = None,
    curve_config: CurveConfig | None = None,
    selection_config: SelectionConfig | None = None,
    previous_region: np.ndarray | None = None,
    remaining: int | None = None,
) -> StepResult:
    """Train the reward model on the current labels, score every pair, analyse the curve, select.

    Parameters
    ----------
    pairs : PreferencePairs
        With ``ai_label`` and ``human_label`` (nonzero where a human answered).
    reward_model : RewardModel
        Fitted in place on this step's training set (see :func:`training_set`).
    iteration : int
        0-based; picks alpha and beta from ``loop_config``.
    budget : int
        Cap on the human queue.
    previous_region : ndarray of int8, shape (n,), optional
        The previous step's regions; only its trusted AI labels are trained on.
    remaining : int, optional
        Human answers the whole budget still holds (default ``budget``; see :func:`plan`).

    Returns
    -------
    StepResult
    """
    from rlthf_selector.out_of_fold import out_of_fold_reward_gap

    started = time.perf_counter()
    loop_config = loop_config or LoopConfig()
    selection_config = selection_config or SelectionConfig()
    alpha, beta = loop_config.alpha_at(iteration), loop_config.beta_at(iteration)
    train_label, train_weight = training_set(
        pairs.ai_label, pairs.human_label, alpha=alpha, previous_region=previous_region
    )
    trained = np.flatnonzero(train_label != 0)
    if trained.shape[0] < 2 or np.unique(train_label[trained]).shape[0] < 2:
        raise ValueError(
            f"cannot train a reward model on {trained.shape[0]} labelled pairs with one preferred side: "
            "need AI or human labels preferring A on some pairs and B on others"
        )
    reward_model.fit(pairs.subset(trained), train_label[trained], sample_weight=train_weight[trained])
    if loop_config.out_of_fold > 1:
        # Gaps from models that never saw the pair: in-sample gaps of a model fitted to the AI
        # labels agree with those labels, mistakes included (see docs: signal measurements).
        reward_gap = out_of_fold_reward_gap(
            reward_model, pairs, train_label, sample_weight=train_weight,
            n_folds=loop_config.out_of_fold, seed=loop_config.seed + iteration,
        )
    else:
        reward_gap = reward_model.reward_gap(pairs)
    step = step_from_gaps(pairs, reward_gap, train_weight, iteration=iteration, budget=budget, loop_config=loop_config,
                          curve_config=curve_config, selection_config=selection_config, remaining=remaining)
    step.seconds = time.perf_counter() - started
    return step


def step_from_gaps(
    pairs: PreferencePairs,
    reward_gap: np.ndarray,
    train_weight: np.ndarray,
    *,
    iteration: int,
    budget: int,
    loop_config: LoopConfig | None = None,
    curve_config: CurveConfig | None = None,
    selection_config: SelectionConfig | None = None,
    remaining: int | None = None,
) -> StepResult:
    """The part of :func:`select_step` after the reward model: curve, regions, signals, queue, flips, labels.

    Shared with the Ray path (:mod:`rlthf_selector.ray_jobs`), which computes the same gaps as sharded jobs.

    Parameters
    ----------
    pairs : PreferencePairs
    reward_gap : ndarray of float, shape (n,)
        r(A) - r(B) per pair (out-of-fold where the step asks for it).
    train_weight : ndarray of float64, shape (n,)
        From :func:`training_set`; recorded in the step.
    iteration, budget, loop_config, curve_config, selection_config, remaining
        As in :func:`select_step`.
    """
    loop_config = loop_config or LoopConfig()
    selection_config = selection_config or SelectionConfig()
    alpha, beta = loop_config.alpha_at(iteration), loop_config.beta_at(iteration)
    reward_gap = np.asarray(reward_gap, dtype=np.float64)
    if reward_gap.shape != (len(pairs),):
        raise ValueError(f"reward_gap must have shape ({len(pairs)},), got {reward_gap.shape}")

    rm_label = np.where(reward_gap >= 0, 1, -1).astype(np.int8)
    current = np.where(pairs.human_label != 0, pairs.human_label, pairs.ai_label)
    current = np.where(current != 0, current, rm_label)
    oriented_gap = reward_gap * current
    paper = selection_config.method == "paper"
    if paper:
        curve_config = replace(curve_config or CurveConfig(), reflection="gap")  # the paper's geometric flips
    curve = analyze_curve(oriented_gap, config=curve_config)
    region = assign_regions(curve, back_off=beta)
    signals: list[Signal] = []
    if not paper:
        signals = compute_signals(SignalContext(pairs, reward_gap * pairs.ai_label, region))
    step = StepResult(
        iteration=iteration, alpha=alpha, beta=beta, reward_gap=reward_gap, oriented_gap=oriented_gap,
        curve=curve, region=region, human_queue=np.zeros(0, np.int64), priority=np.full(len(pairs), np.inf),
        flip_mask=np.zeros(len(pairs), bool), labels=np.zeros(len(pairs), np.int8),
        label_source=np.zeros(len(pairs), np.int8), train_weight=train_weight, signals=signals,
    )
    apply_selection(step, plan(pairs, oriented_gap, region, signals=signals, budget=budget, remaining=remaining,
                               selection_config=selection_config), pairs)
    return step


def plan(pairs: PreferencePairs, oriented_gap: np.ndarray, region: np.ndarray, *, signals: list[Signal], budget: int,
         remaining: int | None = None,
         selection_config: SelectionConfig | None = None) -> tuple[Selection, MistakeEstimate | None]:
    """Who is asked and what is flipped, by the configured method, from the human answers in ``pairs`` now.

    ``remaining`` is how many human answers the budget still holds (default ``budget``): the queue leaves to the
    flips the pairs the model will likely be sure of once they are in (:func:`~rlthf_selector.selection.select_pairs`).
    """
    selection_config = selection_config or SelectionConfig()
    if selection_config.method == "paper":
        return paper_selection(oriented_gap, region, human_label=pairs.human_label, budget=budget), None
    remaining = budget if remaining is None else remaining
    mistakes = estimate_mistakes(signals, pairs, more_answers=max(int(remaining), 0), config=selection_config)
    return select_pairs(mistakes.prob, mistakes.lower, region=region, human_label=pairs.human_label,
                        budget=budget, lower_ahead=mistakes.lower_ahead), mistakes


def apply_selection(step: StepResult, planned: tuple[Selection, MistakeEstimate | None], pairs: PreferencePairs) -> None:
    """Write a :func:`plan` into ``step`` and resolve its labels (human > flipped > AI > RM)."""
    selection, mistakes = planned
    step.human_queue, step.priority, step.flip_mask = selection.human_queue, selection.priority, selection.flip_mask
    step.gain, step.mistakes = selection.gain, mistakes
    step.labels, step.label_source = resolve_labels(
        pairs.ai_label, pairs.human_label, flip_mask=selection.flip_mask,
        rm_label=np.where(step.reward_gap >= 0, 1, -1).astype(np.int8),
    )


def label_accuracy(labels: np.ndarray, gold: np.ndarray, mask: np.ndarray | None = None) -> float | None:
    """Share of pairs (with known gold, within ``mask``) whose label equals gold; None if there are none."""
    known = gold != 0
    if mask is not None:
        known &= mask
    if not known.any():
        return None
    return float((labels[known] == gold[known]).mean())


@dataclass
class IterationRecord:
    """What one iteration did; accuracies only where gold is known (simulations), else None."""

    iteration: int
    alpha: float
    beta: float
    human_asked: int
    human_answered: int
    human_total: int
    flips: int
    flips_correct: int | None
    regions: dict[str, int]
    label_sources: dict[str, int]
    pool_accuracy: float | None
    region_accuracy: dict[str, float | None]
    elbow_index: int
    knee_index: int
    reflection_index: int
    seconds: float
    curve_warnings: list[str] = field(default_factory=list)
    control_asked: int = 0
    estimates: dict[str, dict[str, Any]] = field(default_factory=dict)
    mistake_model: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class DrawLog:
    """Which pairs the loop drew for humans, how, and when: the records behind the live estimates.

    Arrays have shape (n,) over the pool. A pair keeps its first draw. Rounds are the loop's human batches, one or
    more per iteration (:func:`part_sizes`); human labels given before the loop are from round -1 and count in no
    draw group. ``mistake_score`` is the mistake model's P(AI label wrong) when the pair was drawn.
    """

    def __init__(self, pairs: PreferencePairs) -> None:
        from rlthf_selector.estimates import NOT_DRAWN

        n = len(pairs)
        self.ai_label = pairs.ai_label
        self.drawn_by = np.full(n, NOT_DRAWN, dtype=np.int64)
        self.draw_round = np.zeros(n, dtype=np.int64)
        self.label_round = np.full(n, -1, dtype=np.int64)
        self.frame = np.zeros(n, dtype=np.int64)
        self.mistake_score = np.zeros(n, dtype=np.float64)

    def record(self, positions: np.ndarray, is_control: np.ndarray, *, round_: int, frame: int,
               mistake_score: np.ndarray) -> None:
        """Record the draws of one batch (pool positions, before the answers)."""
        from rlthf_selector.estimates import CONTROL_DRAW, NOT_DRAWN, QUEUE_DRAW

        first = self.drawn_by[positions] == NOT_DRAWN
        at = positions[first]
        self.drawn_by[at] = np.where(is_control[first], CONTROL_DRAW, QUEUE_DRAW)
        self.draw_round[at] = round_
        self.frame[at] = frame
        self.mistake_score[at] = mistake_score[first]

    def estimates(self, human_label: np.ndarray, *, positions: np.ndarray | None = None, n_flipped: int = 0,
                  confidence: float = 0.9) -> dict[str, Any]:
        """:func:`~rlthf_selector.estimates.live_estimates` over ``positions`` (default: the pool) among pairs with
        an AI label (the estimates are about the AI's labels). Empty when no control draw has been answered."""
        from rlthf_selector.estimates import CONTROL_DRAW, live_estimates

        idx = np.arange(self.ai_label.shape[0]) if positions is None else np.asarray(positions)
        idx = idx[self.ai_label[idx] != 0]
        if not ((self.drawn_by[idx] == CONTROL_DRAW) & (human_label[idx] != 0)).any():
            return {}
        return live_estimates(
            ai_label=self.ai_label[idx], human_label=human_label[idx], drawn_by=self.drawn_by[idx],
            draw_round=self.draw_round[idx], label_round=self.label_round[idx], frame=self.frame[idx],
            mistake_score=self.mistake_score[idx], n_flipped=n_flipped, confidence=confidence,
        )


def part_sizes(batch: int, answers_per_check: int) -> list[int]:
    """Sizes of the parts an iteration's batch of ``batch`` pairs is asked in: as many parts of at least
    ``answers_per_check`` pairs as fit, as equal as can be (one part when ``answers_per_check`` is 0).

    Raises
    ------
    ValueError
        A negative ``batch`` or ``answers_per_check``.
    """
    if batch < 0 or answers_per_check < 0:
        raise ValueError(f"batch and LoopConfig.answers_per_check must be >= 0, got {batch} and {answers_per_check}")
    k = max(1, batch // answers_per_check) if answers_per_check else 1
    return [batch // k + (1 if i < batch % k else 0) for i in range(k)]


def _record(step: StepResult, pairs: PreferencePairs, *, asked: int, answered: int) -> IterationRecord:
    gold = pairs.gold_label
    flips = step.label_source == LabelSource.FLIPPED
    flips_correct = None
    if (gold[flips] != 0).all():
        flips_correct = int((step.labels[flips] == gold[flips]).sum())
    return IterationRecord(
        iteration=step.iteration, alpha=step.alpha, beta=step.beta, human_asked=asked,
        human_answered=answered, human_total=int((pairs.human_label != 0).sum()),
        flips=int(flips.sum()), flips_correct=flips_correct,
        regions=step.summary()["regions"], label_sources=step.summary()["label_sources"],
        pool_accuracy=label_accuracy(step.labels, gold),
        region_accuracy={r.label: label_accuracy(step.labels, gold, step.region == r) for r in Region},
        elbow_index=step.curve.elbow_index, knee_index=step.curve.knee_index,
        reflection_index=step.curve.reflection_index, seconds=round(step.seconds, 3),
        curve_warnings=list(step.curve.warnings),
        mistake_model=step.mistakes.model.to_dict() if step.mistakes is not None else {},
    )


@dataclass
class LoopResult:
    """The loop's outcome on the whole pool.

    Attributes
    ----------
    pairs : PreferencePairs
        The pool with every human answer in ``human_label``.
    labels, label_source : ndarray of int8, shape (n,)
        Final labels and where each came from.
    final_step : StepResult
        The final reward model's step over the whole pool (its curve, regions, gaps).
    records : list of IterationRecord
        One per iteration, then one for the final labeling (``human_asked`` = 0).
    shard : ndarray of int64
        Pool positions the loop iterated on.
    reward_model : RewardModel
        The final reward model (trained on the curated shard labels).
    estimates : dict of str to Estimate
        Live estimates from the control draws (:func:`~rlthf_selector.estimates.live_estimates`) over the shard
        the loop iterated on (the whole pool by default); empty without control draws.
    warnings : list of str
        Plain-words warnings from the estimates (:func:`~rlthf_selector.estimates.estimate_warnings`).
    draws : DrawLog
        How and when each pair was drawn for humans.
    """

    pairs: PreferencePairs
    labels: np.ndarray
    label_source: np.ndarray
    final_step: StepResult
    records: list[IterationRecord]
    shard: np.ndarray
    reward_model: Any
    estimates: dict[str, Any] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)
    draws: DrawLog | None = None

    @property
    def human_labels(self) -> int:
        return int((self.pairs.human_label != 0).sum())


ProgressCallback = Callable[[IterationRecord], None]


class AskedPart(NamedTuple):
    """One part of an iteration's human batch (:func:`part_sizes`): shard positions asked, in order, which were
    control draws, and how many got an answer."""

    queue: np.ndarray
    is_control: np.ndarray
    answered: int


class RLTHF:
    """The RLTHF loop.

    Parameters
    ----------
    reward_model : RewardModel
        Refitted at every step.
    loop_config, curve_config, selection_config : optional
    on_iteration : callable, optional
        Called with each :class:`IterationRecord` as it is made (progress display).
    """

    def __init__(
        self,
        reward_model: Any,
        *,
        loop_config: LoopConfig | None = None,
        curve_config: CurveConfig | None = None,
        selection_config: SelectionConfig | None = None,
        on_iteration: ProgressCallback | None = None,
    ) -> None:
        self.reward_model = reward_model
        self.loop_config = loop_config or LoopConfig()
        self.curve_config = curve_config or CurveConfig()
        self.selection_config = selection_config or SelectionConfig()
        self.on_iteration = on_iteration

    def _step(self, pairs: PreferencePairs, **kw: Any) -> StepResult:
        return select_step(
            pairs, self.reward_model, loop_config=self.loop_config, curve_config=self.curve_config,
            selection_config=self.selection_config, **kw,
        )

    def _ask_part(self, step: StepResult, shard_pairs: PreferencePairs, shard: np.ndarray, size: int,
                  annotator: Annotator, *, human_label: np.ndarray, draws: DrawLog, round_: int,
                  rng: np.random.Generator, control_share: float, remaining: int, refit: bool) -> AskedPart:
        """Ask one part of an iteration's batch: a round of its own, drawn from the pairs unlabeled now, after the
        mistake model has been refitted on every answer before it (``refit``; the iteration's first part is asked
        from the step's own plan, fitted on the same answers). Writes the answers into ``human_label`` (pool
        positions) and ``shard_pairs.human_label``. ``remaining``: answers the whole budget still holds."""
        if refit:
            step.replan(shard_pairs, budget=size, remaining=remaining, selection_config=self.selection_config)
        unlabeled = shard_pairs.human_label == 0
        targeted = step.human_queue[unlabeled[step.human_queue]][:size]
        batch = assemble_batch(targeted, human_label=shard_pairs.human_label, ai_label=shard_pairs.ai_label,
                               length=size, share=control_share, rng=rng)
        queue, is_control = batch.order, batch.is_control
        score = (step.mistakes.prob if step.mistakes is not None else -step.reward_gap * shard_pairs.ai_label)
        draws.record(shard[queue], is_control, round_=round_,
                     frame=int((unlabeled & (shard_pairs.ai_label != 0)).sum()),
                     mistake_score=np.nan_to_num(score[queue], nan=0.5))
        answers = (np.asarray(annotator.annotate(shard_pairs, queue), dtype=np.int8) if queue.size
                   else np.zeros(0, np.int8))
        if answers.shape != queue.shape:
            raise ValueError(f"annotator returned {answers.shape[0]} answers for {queue.shape[0]} pairs")
        targets = shard[queue]
        # Never overwrite a human label: the queue excludes labelled pairs, this makes it certain.
        fresh = (human_label[targets] == 0) & (answers != 0)
        human_label[targets[fresh]] = answers[fresh]
        draws.label_round[targets[fresh]] = round_
        shard_pairs.human_label[queue[fresh]] = answers[fresh]
        return AskedPart(queue, is_control, int(fresh.sum()))

    def run(self, pairs: PreferencePairs, annotator: Annotator) -> LoopResult:
        """Iterate on a shard, ask ``annotator`` within the budget, then label the whole pool."""
        cfg = self.loop_config
        n = len(pairs)
        rng = np.random.default_rng(cfg.seed)
        if cfg.shard_fraction >= 1.0:
            shard = np.arange(n)
        else:
            shard = np.sort(rng.choice(n, size=max(1, int(round(cfg.shard_fraction * n))), replace=False))
        human_label = pairs.human_label.copy()
        total_budget = min(cfg.budget_count(n), shard.shape[0])
        spent = 0
        records: list[IterationRecord] = []
        # The paper's procedure asks its band alone: no control draws.
        control_share = 0.0 if self.selection_config.method == "paper" else cfg.control_share
        draws = DrawLog(pairs)
        previous_region = None
        round_ = 0  # the human batches so far: one or more per iteration (LoopConfig.answers_per_check)
        for t in range(cfg.iterations):
            shard_pairs = pairs.subset(shard).replace(human_label=human_label[shard])
            budget = math.ceil(max(total_budget - spent, 0) / (cfg.iterations - t))
            step = self._step(shard_pairs, iteration=t, budget=budget, previous_region=previous_region,
                              remaining=total_budget - spent)
            parts = []
            for k, size in enumerate(part_sizes(step.human_queue.shape[0], cfg.answers_per_check)):
                parts.append(self._ask_part(step, shard_pairs, shard, size, annotator, human_label=human_label,
                                            draws=draws, round_=round_, rng=rng, control_share=control_share,
                                            remaining=total_budget - spent, refit=k > 0))
                spent += int(parts[-1].queue.shape[0])
                round_ += 1
            # The iteration's labels from every answer it got (the flips too: the model refits on the last part).
            step.replan(shard_pairs, budget=0, selection_config=self.selection_config)
            record = _record(step, shard_pairs, asked=sum(int(p.queue.shape[0]) for p in parts),
                             answered=sum(p.answered for p in parts))
            record.control_asked = sum(int(p.is_control.sum()) for p in parts)
            record.estimates = {k: e.to_dict() for k, e in draws.estimates(human_label, positions=shard).items()}
            records.append(record)
            if self.on_iteration:
                self.on_iteration(record)
            previous_region = step.region

        # The final reward model, trained on the shard's curated labels, labels the whole pool.
        full = pairs.replace(human_label=human_label)
        full_previous = None
        if previous_region is not None:
            full_previous = np.full(n, Region.HELD, dtype=np.int8)  # outside the shard: not trained on
            full_previous[shard] = previous_region
        final = self._step(full, iteration=cfg.iterations, budget=0, previous_region=full_previous)
        record = _record(final, full, asked=0, answered=0)
        flipped = final.label_source[shard] == LabelSource.FLIPPED
        estimates = draws.estimates(human_label, positions=shard, n_flipped=int(flipped.sum()))
        record.estimates = {k: e.to_dict() for k, e in estimates.items()}
        records.append(record)
        if self.on_iteration:
            self.on_iteration(record)
        from rlthf_selector.estimates import estimate_warnings

        warnings = estimate_warnings(estimates) if estimates else []
        return LoopResult(
            pairs=full, labels=final.labels, label_source=final.label_source, final_step=final,
            records=records, shard=shard, reward_model=self.reward_model, estimates=estimates,
            warnings=warnings, draws=draws,
        )
