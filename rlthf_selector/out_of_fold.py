"""Cross-fitted (out-of-fold) reward gaps: each labelled pair is scored by a model that never trained on it.

In-sample gaps of a model fitted to the AI labels agree with those labels, mistakes included; out-of-fold gaps
do not, which is what lets the curve and the mistake model find the AI's mistakes. Unlabelled pairs get the
mean over the fold models.
"""

from __future__ import annotations

from typing import Any, Callable

import numpy as np

from rlthf_selector.config import BradleyTerryConfig
from rlthf_selector.pairs import PreferencePairs
from rlthf_selector.reward_model import BradleyTerryHead, FeatureRewardModel, RewardModel, check_features

__all__ = ["fold_assignment", "out_of_fold_gap_features", "out_of_fold_reward_gap"]


def fold_assignment(labels: np.ndarray, n_folds: int, *, seed: int = 0) -> np.ndarray:
    """Random, balanced fold of each labelled pair; -1 for unlabelled (0) pairs. Shape (n,) int64."""
    labels = np.asarray(labels)
    labelled = np.flatnonzero(labels != 0)
    if len(labelled) < n_folds:
        raise ValueError(f"{len(labelled)} labelled pairs cannot be split into {n_folds} folds")
    folds = np.full(labels.shape[0], -1, dtype=np.int64)
    folds[np.random.default_rng(seed).permutation(labelled)] = np.arange(len(labelled)) % n_folds
    return folds


def _cross_fit(
    labels: np.ndarray, n_folds: int, seed: int, fit_and_score: Callable[[np.ndarray, np.ndarray], np.ndarray]
) -> np.ndarray:
    """Cross-fitted gaps. ``fit_and_score(train_idx, score_idx)`` trains on ``train_idx`` and returns the gaps
    of ``score_idx``. Unlabelled pairs get the mean over the fold models (none trained on them)."""
    labels = np.asarray(labels)
    n = labels.shape[0]
    unlabelled = np.flatnonzero(labels == 0)
    if n_folds <= 1:  # in-sample
        labelled = np.flatnonzero(labels != 0)
        if len(labelled) == 0:
            raise ValueError("no labelled pairs to train on")
        return np.asarray(fit_and_score(labelled, np.arange(n)), dtype=np.float64)
    folds = fold_assignment(labels, n_folds, seed=seed)
    gaps = np.zeros(n, dtype=np.float64)
    for k in range(n_folds):
        held = np.flatnonzero(folds == k)
        train = np.flatnonzero((folds != k) & (folds >= 0))
        scored = np.asarray(fit_and_score(train, np.concatenate([held, unlabelled])), dtype=np.float64)
        gaps[held] = scored[: len(held)]
        gaps[unlabelled] += scored[len(held):] / n_folds
    return gaps


def _weights_or_ones(sample_weight: Any, n: int) -> np.ndarray:
    if sample_weight is None:
        return np.ones(n, dtype=np.float64)
    w = np.asarray(sample_weight, dtype=np.float64)
    if w.shape != (n,):
        raise ValueError(f"sample_weight must have shape ({n},), got {w.shape}")
    return w


def out_of_fold_reward_gap(
    model: RewardModel,
    pairs: PreferencePairs,
    labels: np.ndarray,
    *,
    sample_weight: np.ndarray | None = None,
    n_folds: int = 5,
    seed: int = 0,
) -> np.ndarray:
    """Cross-fitted reward gaps: each labelled pair is scored by a clone of ``model`` trained on the other folds.

    Parameters
    ----------
    model : RewardModel
        Only cloned; it is not fitted itself.
    pairs : PreferencePairs
        n pairs.
    labels : ndarray, shape (n,)
        +1 / -1 train; 0 = unlabelled: never trained on, scored by the mean of the fold models.
    sample_weight : ndarray, shape (n,), optional
    n_folds : int
        0 or 1 = in-sample (one model on all labelled pairs scores every pair).
    seed : int
        Seeds the fold assignment.

    Returns
    -------
    ndarray of float64, shape (n,)
    """
    labels = np.asarray(labels)
    if labels.shape != (len(pairs),):
        raise ValueError(f"labels must have shape ({len(pairs)},), got {labels.shape}")
    if isinstance(model, FeatureRewardModel):
        # Featurise the pool once and cross-fit on arrays: no per-fold subsetting of texts.
        return out_of_fold_gap_features(model.config, model.feature_rows(pairs), labels,
                                        sample_weight=sample_weight, n_folds=n_folds, seed=seed)
    w = _weights_or_ones(sample_weight, len(pairs))

    def fit_and_score(train: np.ndarray, score: np.ndarray) -> np.ndarray:
        fold_model = model.clone().fit(pairs.subset(train), labels[train], sample_weight=w[train])
        return fold_model.reward_gap(pairs.subset(score))

    return _cross_fit(labels, n_folds, seed, fit_and_score)


def out_of_fold_gap_features(
    head_config: BradleyTerryConfig | None,
    features: np.ndarray,
    labels: np.ndarray,
    *,
    sample_weight: np.ndarray | None = None,
    n_folds: int = 5,
    seed: int = 0,
) -> np.ndarray:
    """The array-level twin of :func:`out_of_fold_reward_gap` for a :class:`BradleyTerryHead`.

    Parameters
    ----------
    head_config : BradleyTerryConfig or None
    features : ndarray or FeatureRows, shape (n, 2, d)
        Folds are index views of it: no fold copies the features.
    labels : ndarray, shape (n,)
        +1 / -1 / 0 as in :func:`out_of_fold_reward_gap`.

    Returns
    -------
    ndarray of float64, shape (n,)
    """
    x = check_features(features)
    labels = np.asarray(labels)
    if labels.shape != (x.shape[0],):
        raise ValueError(f"labels must have shape ({x.shape[0]},), got {labels.shape}")
    w = _weights_or_ones(sample_weight, x.shape[0])

    def fit_and_score(train: np.ndarray, score: np.ndarray) -> np.ndarray:
        head = BradleyTerryHead(head_config).fit(x.take(train), labels[train], sample_weight=w[train])
        return head.reward_gap(x.take(score))

    return _cross_fit(labels, n_folds, seed, fit_and_score)
