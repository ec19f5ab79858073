"""The strategies ``rlthf simulate`` compares, and what it measures of them against gold.

Each strategy turns a pool with AI labels into final labels, asking a simulated human (gold) about at most a budget
of pairs: RLTHF itself through :class:`rlthf_selector.loop.RLTHF`, and its rivals (random, margin, cleanlab, ...).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any, Callable

import numpy as np

from rlthf_selector.config import CurveConfig, LoopConfig, SelectionConfig
from rlthf_selector.intervals import auc, calibration_bands
from rlthf_selector.pairs import LabelSource, PreferencePairs
from rlthf_selector.signals import chose_shorter

STRATEGIES = ("ai-only", "rlthf", "rlthf-one-shot", "rlthf-paper", "random", "margin", "cleanlab", "evidence-only",
              "length", "self-improve", "all-human")
#: Strategies that spend no human labels: run once per seed, reported at every budget.
BUDGET_FREE = ("ai-only", "self-improve", "all-human")
#: Bands of the mistake model's P(AI label wrong) whose mean is set beside gold (:func:`mistake_model_report`).
CALIBRATION_EDGES = (0.0, 0.25, 0.5, 0.75, 1.0)


@dataclass
class StrategyOutcome:
    """One strategy's final labels (int8, shape (n,)), the human answers it spent and the flips it made."""

    labels: np.ndarray
    human_labels: int
    flips: int = 0
    flips_correct: int = 0
    asked: np.ndarray | None = None
    estimates: dict[str, Any] | None = None  # strategies with control draws: live estimates beside the truth


def _ask(pool: PreferencePairs, asked: np.ndarray) -> StrategyOutcome:
    labels = pool.ai_label.copy()
    labels[asked] = pool.gold_label[asked]
    return StrategyOutcome(labels, int(asked.shape[0]), asked=asked)


def run_strategy(strategy: str, pool: PreferencePairs, *, budget: int, seed: int, oof_gap: Callable[[], np.ndarray],
                 reward_model: Callable[[int], Any], loop_config: LoopConfig, curve_config: CurveConfig,
                 selection_config: SelectionConfig) -> StrategyOutcome:
    """Run one strategy on ``pool`` with ``budget`` human answers (gold) and return its labels.

    Parameters
    ----------
    strategy : str
        One of :data:`STRATEGIES`.
    pool : PreferencePairs, length n
        With AI and gold labels.
    oof_gap : callable
        Returns the pool's out-of-fold reward gaps, float64 of shape (n,) (computed once, shared by the rivals).
    reward_model : callable
        ``seed -> `` a fresh reward model.
    """
    from rlthf_selector.loop import RLTHF, GoldAnnotator

    n = len(pool)
    if strategy == "ai-only":
        return StrategyOutcome(pool.ai_label.copy(), 0)
    if strategy == "all-human":
        return StrategyOutcome(pool.gold_label.copy(), n)
    if strategy == "random":
        return _ask(pool, np.random.default_rng(seed).choice(n, size=budget, replace=False))
    if strategy == "margin":
        return _ask(pool, np.argsort(np.abs(oof_gap()), kind="stable")[:budget])
    if strategy == "cleanlab":
        from cleanlab.filter import find_label_issues

        gap = oof_gap()
        prob_a = 1.0 / (1.0 + np.exp(-gap))
        pred_probs = np.column_stack([1.0 - prob_a, prob_a])  # class 0 = B, class 1 = A
        given = (pool.ai_label > 0).astype(int)
        issues = find_label_issues(given, pred_probs, return_indices_ranked_by="self_confidence")
        # Spend the whole budget: after the flagged issues, the least self-confident labels.
        self_confidence = pred_probs[np.arange(n), given]
        rest = np.setdiff1d(np.argsort(self_confidence, kind="stable"), issues, assume_unique=True)
        rest = rest[np.argsort(self_confidence[rest], kind="stable")]
        return _ask(pool, np.concatenate([issues, rest])[:budget].astype(np.int64))
    if strategy == "evidence-only":
        from rlthf_selector.evidence import judge_doubt

        doubt = judge_doubt(pool)
        if doubt is None:
            raise ValueError("evidence-only needs judge evidence in the pairs (e.g. a second judge's labels)")
        # Most doubted first; ties (coarse evidence) in random order so the pool's order decides nothing.
        tiebreak = np.random.default_rng(seed).random(n)
        return _ask(pool, np.lexsort((tiebreak, -doubt))[:budget].astype(np.int64))
    if strategy == "length":
        # The AI chose the shorter response, the most lopsided first (docs: signal measurements).
        return _ask(pool, np.argsort(-chose_shorter(pool), kind="stable")[:budget].astype(np.int64))
    if strategy in ("rlthf", "rlthf-one-shot", "rlthf-paper", "self-improve"):
        loop_config = replace(
            loop_config, seed=seed, human_budget=float(budget) if budget else 0.0,
            iterations=1 if strategy == "rlthf-one-shot" else loop_config.iterations,
        )
        if strategy == "rlthf-paper":
            selection_config = replace(selection_config, method="paper")
        loop = RLTHF(reward_model(seed), loop_config=loop_config, curve_config=curve_config,
                     selection_config=selection_config)
        result = loop.run(pool, GoldAnnotator())
        flips = result.label_source == LabelSource.FLIPPED
        estimates = None
        if result.estimates:
            estimates = {"estimates": loop_estimates_with_truth(result, pool), "warnings": result.warnings}
        if result.final_step.mistakes is not None:
            estimates = {"estimates": {}, "warnings": [], **(estimates or {}),
                         "mistake_model": mistake_model_report(result, pool)}
        return StrategyOutcome(result.labels, result.human_labels, int(flips.sum()),
                               int((result.labels[flips] == pool.gold_label[flips]).sum()),
                               asked=np.flatnonzero(result.pairs.human_label != 0), estimates=estimates)
    raise ValueError(f"unknown strategy {strategy!r}: choose from {', '.join(STRATEGIES)}")


def evidence_auc(pool: PreferencePairs, wrong: np.ndarray) -> dict[str, Any]:
    """Mistake-ranking AUC of the judge's own doubt alone (None without evidence), so a gain can be traced to the RM
    or to the judge evidence."""
    from rlthf_selector.evidence import judge_doubt

    doubt = judge_doubt(pool)
    return {"judge_doubt_auc": None if doubt is None else auc(doubt, wrong)}


def loop_estimates_with_truth(result: Any, pool: PreferencePairs) -> dict[str, Any]:
    """The RLTHF loop's live estimates beside their true values from gold, over the shard it iterated on.

    The mistake model's ranking changes with every answer, so its AUC has no single true value here (None). See
    :func:`beside_truth`.
    """
    from rlthf_selector.estimates import QUEUE_DRAW

    shard = result.shard
    gold = pool.gold_label[shard]
    ai = pool.ai_label[shard]
    has_ai = ai != 0
    wrong = (ai != gold) & has_ai
    queued = (result.draws.drawn_by[shard] == QUEUE_DRAW) & (result.pairs.human_label[shard] != 0) & has_ai
    truths: dict[str, float | None] = {
        "ai_accuracy": float((~wrong[has_ai]).mean()),
        "control_overturn": float(wrong[has_ai].mean()),
        "queue_precision": float(wrong[queued].mean()) if queued.any() else None,
        "mistake_auc": None,
        "pool_accuracy": float((result.labels[shard][has_ai] == gold[has_ai]).mean()),
    }
    if truths["queue_precision"] is not None:
        truths["queue_minus_control"] = truths["queue_precision"] - truths["control_overturn"]
    return beside_truth(result.estimates, truths)


def mistake_model_report(result: Any, pool: PreferencePairs) -> dict[str, Any]:
    """What the final mistake model learned, and how well it and each single signal rank the AI's mistakes among
    the pairs no human labelled (gold decides what a mistake is).

    Returns
    -------
    dict
        ``model`` (:meth:`~rlthf_selector.mistakes.MistakeModel.to_dict`), ``auc`` (the model's), ``signal_auc``
        (each signal's, missing values ranked as the signal's mean), ``best_signal``, ``unlabeled`` and
        ``mistakes`` (the pairs scored and the AI mistakes among them), and ``calibration``: per band of
        :data:`CALIBRATION_EDGES`, the pairs, their mean P(AI label wrong) and the share that gold says is wrong.
    """
    final = result.final_step
    scope = (result.pairs.human_label == 0) & (pool.ai_label != 0)
    wrong = (pool.ai_label != pool.gold_label)[scope]
    signal_auc = {}
    for sig in final.signals:
        v = sig.values[scope]
        known = ~np.isnan(v)
        if known.sum() < 2:
            continue
        v = np.where(known, v, v[known].mean())
        signal_auc[sig.name] = auc(v, wrong)
    # The margin rival's ranking (-|gap|) is a single signal too, though the model has no column of its own for it.
    signal_auc["rm_unsure"] = auc(-np.abs(final.reward_gap[scope]), wrong)
    ranked = {k: v for k, v in signal_auc.items() if v is not None}
    best = max(ranked, key=ranked.get) if ranked else None
    prob = final.mistakes.prob[scope]
    count, mean_prob, rate = calibration_bands(prob, wrong, edges=CALIBRATION_EDGES)
    return {"model": final.mistakes.model.to_dict(), "auc": auc(prob, wrong),
            "signal_auc": signal_auc, "best_signal": best, "unlabeled": int(scope.sum()), "mistakes": int(wrong.sum()),
            "calibration": {"edges": list(CALIBRATION_EDGES), "pairs": count.tolist(),
                            "mean_prob": _nan_to_none(mean_prob), "mistake_rate": _nan_to_none(rate)}}


def _nan_to_none(values: np.ndarray) -> list[float | None]:
    return [None if np.isnan(v) else float(v) for v in values]


def beside_truth(estimates: dict[str, Any], truths: dict[str, float | None]) -> dict[str, Any]:
    """Each estimate as a dict with its true value and whether its interval holds it.

    Returns
    -------
    dict of str to dict
        ``{name: {"value", "lower", "upper", "n", "confidence", "method", "truth", "covered"}}``; ``truth`` and
        ``covered`` are None where no true value is known.
    """
    out = {}
    for name, est in estimates.items():
        truth = truths.get(name)
        out[name] = {**est.to_dict(), "truth": truth, "covered": est.contains(truth)}
    return out
