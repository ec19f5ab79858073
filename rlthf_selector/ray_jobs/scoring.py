"""Featurising and out-of-fold scoring as Ray Data jobs, and one selection step on their gaps."""

from __future__ import annotations

import json
import os
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from rlthf_selector.config import BradleyTerryConfig, CurveConfig, FeaturizerConfig, LoopConfig, SelectionConfig
from rlthf_selector.ray_jobs.shards import run_shards, shard_name, write_input_shards, _key, _read_shards, _read_table


_FEATURIZERS: dict[str, Any] = {}  # per worker process: an encoder is loaded once, not once per shard


def _featurizer(config: FeaturizerConfig) -> Any:
    from rlthf_selector.features import make_featurizer

    key = json.dumps(asdict(config), sort_keys=True)
    if key not in _FEATURIZERS:
        _FEATURIZERS[key] = make_featurizer(config)
    return _FEATURIZERS[key]


def _shard_pairs(pairs_dir: str, index: int) -> Any:
    from rlthf_selector.pairs import PreferencePairs

    t = _read_table(Path(pairs_dir) / shard_name(index))
    return PreferencePairs(ids=t.column("id").to_pylist(), prompt=t.column("prompt").to_pylist(),
                           response_a=t.column("response_a").to_pylist(), response_b=t.column("response_b").to_pylist())


@dataclass
class _FeatureShard:
    """The featuriser's ``transform`` over one shard of pairs; one row of 2*d float32 per pair."""

    pairs_dir: str
    config: FeaturizerConfig

    def __call__(self, index: int) -> Any:
        import pyarrow as pa

        pairs = _shard_pairs(self.pairs_dir, index)
        x = np.ascontiguousarray(_featurizer(self.config).transform(pairs), dtype=np.float32)
        width = x.shape[1] * x.shape[2]
        column = pa.FixedSizeListArray.from_arrays(pa.array(x.reshape(-1)), width)
        return pa.table({"id": pairs.ids.tolist(), "features": column}).replace_schema_metadata(
            {"shape": json.dumps([int(x.shape[1]), int(x.shape[2])])})


def _features_of(table: Any) -> np.ndarray:
    shape = json.loads(table.schema.metadata[b"shape"])
    column = table.column("features").combine_chunks()
    return np.asarray(column.values.to_numpy(zero_copy_only=False), dtype=np.float32).reshape(-1, *shape)


def featurize_ray(
    pairs: Any,
    *,
    config: FeaturizerConfig,
    work_dir: str | Path,
    shard_size: int = 5000,
    shard_concurrency: int = 0,
    use_ray: bool = True,
) -> tuple[Path, int]:
    """Featurise every pair as a Ray Data job; returns the features' folder and its number of shards.

    ``config.progress`` is turned off in the workers (many bars on one terminal help no one).
    Read the features back with :func:`load_features`.
    """
    from dataclasses import replace

    work = Path(work_dir)
    n_shards = write_input_shards(pairs, work / "pairs", shard_size=shard_size, kind="pairs")
    config = replace(config, progress=False)
    stage = work / f"features-{_key(asdict(config))}"
    run_shards(_FeatureShard(str(work / "pairs"), config), stage, n_shards, use_ray=use_ray,
               concurrency=shard_concurrency)
    return stage, n_shards


def load_features(stage: str | Path, n_shards: int) -> np.ndarray:
    """The features a :func:`featurize_ray` job wrote, in pair order. Shape (n, 2, d) float32."""
    return _features_of(_read_shards(Path(stage), n_shards))


_HEADS: dict[str, list[Any]] = {}


def _fold_heads(stage: str, n_models: int) -> list[Any]:
    from rlthf_selector.reward_model import BradleyTerryHead, load_state

    if stage not in _HEADS:
        _HEADS[stage] = [BradleyTerryHead().load_state_dict(load_state(Path(stage) / f"fold-{k}.npz"))
                         for k in range(n_models)]
    return _HEADS[stage]


def _blas_threads() -> int:
    from threadpoolctl import threadpool_info

    return max([int(i["num_threads"]) for i in threadpool_info() if i.get("user_api") == "blas"] or [1])


def _fit_fold(features_dir: str, n_shards: int, stage: str, k: int, head_config: BradleyTerryConfig) -> int:
    """Fit fold ``k``'s head on the labelled pairs of the other folds; saved as ``fold-k.npz``."""
    from rlthf_selector.reward_model import BradleyTerryHead, save_state

    data = np.load(Path(stage) / "folds.npz")
    folds, labels, weights = data["folds"], data["labels"], data["weights"]
    train = np.flatnonzero((folds != k) & (folds >= 0)) if folds.max() >= 0 and k >= 0 else np.flatnonzero(labels != 0)
    x = load_features(features_dir, n_shards)
    head = BradleyTerryHead(head_config).fit(x[train], labels[train], sample_weight=weights[train])
    save_state(head.state_dict(), Path(stage) / f"fold-{max(k, 0)}.npz")
    return k


@dataclass
class _GapShard:
    """Each pair's out-of-fold gap over one shard: its fold's head where labelled, the fold heads' mean if not."""

    features_dir: str
    stage: str
    n_folds: int

    def __call__(self, index: int) -> Any:
        import pyarrow as pa

        table = _read_table(Path(self.features_dir) / shard_name(index))
        x = _features_of(table)
        with np.load(Path(self.stage) / "folds.npz") as saved:
            folds, shard_size = saved["folds"], int(saved["shard_size"])
        start = index * shard_size
        fold = folds[start:start + x.shape[0]]
        if self.n_folds <= 1:
            gap = _fold_heads(self.stage, 1)[0].reward_gap(x)
        else:
            heads = _fold_heads(self.stage, self.n_folds)
            gap = np.zeros(x.shape[0], dtype=np.float64)
            unlabelled = np.flatnonzero(fold < 0)
            for k, head in enumerate(heads):
                held = np.flatnonzero(fold == k)
                # The same rows in the same order as the single-process cross-fit scores them: held, then unlabelled.
                scored = head.reward_gap(x[np.concatenate([held, unlabelled])])
                gap[held] = scored[: len(held)]
                gap[unlabelled] += scored[len(held):] / self.n_folds
        return pa.table({"id": table.column("id"), "gap": gap})


def out_of_fold_gap_ray(
    features_dir: str | Path,
    n_shards: int,
    labels: np.ndarray,
    *,
    sample_weight: np.ndarray | None = None,
    head_config: BradleyTerryConfig | None = None,
    n_folds: int = 5,
    seed: int = 0,
    shard_size: int,
    work_dir: str | Path,
    shard_concurrency: int = 0,
    use_ray: bool = True,
) -> np.ndarray:
    """:func:`rlthf_selector.out_of_fold.out_of_fold_gap_features` as Ray jobs: the fold heads are fitted as
    Ray tasks in parallel, then every shard is scored as a Ray Data job.

    Parameters
    ----------
    features_dir, n_shards
        From :func:`featurize_ray`.
    labels : ndarray of int, shape (n,)
        +1 / -1 train; 0 = unlabelled.
    sample_weight : ndarray of float, shape (n,), optional
    head_config : BradleyTerryConfig, optional
    n_folds, seed
        As in ``out_of_fold_gap_features`` (the same folds, by the same :func:`fold_assignment`).
    shard_size : int
        The shard size the features were written with.

    Returns
    -------
    ndarray of float64, shape (n,)
    """
    from rlthf_selector.out_of_fold import _weights_or_ones, fold_assignment

    labels = np.asarray(labels, dtype=np.int8)
    n = labels.shape[0]
    weights = _weights_or_ones(sample_weight, n)
    head_config = head_config or BradleyTerryConfig()
    if n_folds > 1:
        folds = fold_assignment(labels, n_folds, seed=seed)
    else:
        if not (labels != 0).any():
            raise ValueError("no labelled pairs to train on")
        folds = np.full(n, -1, dtype=np.int64)
    n_models = max(int(n_folds), 1)
    stage = Path(work_dir) / f"gaps-{_key(Path(features_dir).name, labels, weights, asdict(head_config), n_models, seed)}"
    stage.mkdir(parents=True, exist_ok=True)
    if not (stage / "folds.npz").exists():
        tmp = stage / ".folds.tmp.npz"
        np.savez(tmp, folds=folds, labels=labels, weights=weights, shard_size=np.int64(shard_size))
        os.replace(tmp, stage / "folds.npz")
    fold_ids = [k for k in (range(n_models) if n_folds > 1 else [-1]) if not (stage / f"fold-{max(k, 0)}.npz").exists()]
    if fold_ids and use_ray:
        import ray

        # L-BFGS sums over pairs with BLAS; a different thread count sums in another order and the fit moves by
        # ~1e-5. Ray gives a task one thread by default: the fits get the thread count this process has instead.
        threads = str(_blas_threads())
        env = {name: threads for name in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")}
        fit = ray.remote(num_cpus=1, runtime_env={"env_vars": env})(_fit_fold)
        ray.get([fit.remote(str(features_dir), n_shards, str(stage), k, head_config) for k in fold_ids])
    else:
        for k in fold_ids:
            _fit_fold(str(features_dir), n_shards, str(stage), k, head_config)
    run_shards(_GapShard(str(features_dir), str(stage), int(n_folds)), stage, n_shards, use_ray=use_ray,
               concurrency=shard_concurrency)
    gap = np.asarray(_read_shards(stage, n_shards).column("gap").to_numpy(), dtype=np.float64)
    if gap.shape != (n,):
        raise RuntimeError(f"{stage}: the gap shards hold {gap.shape[0]} pairs, expected {n}")
    return gap


def select_step_ray(
    pairs: Any,
    *,
    iteration: int,
    budget: int,
    work_dir: str | Path,
    featurizer_config: FeaturizerConfig | None = None,
    head_config: BradleyTerryConfig | None = None,
    loop_config: LoopConfig | None = None,
    curve_config: CurveConfig | None = None,
    selection_config: SelectionConfig | None = None,
    previous_region: np.ndarray | None = None,
    remaining: int | None = None,
    shard_size: int = 5000,
    shard_concurrency: int = 0,
    use_ray: bool = True,
) -> Any:
    """:func:`rlthf_selector.loop.select_step` for a :class:`~rlthf_selector.reward_model.FeatureRewardModel`
    with its featurising and out-of-fold scoring as Ray jobs; the same StepResult on the same input and seed.

    The full-pool reward model that ``select_step`` also fits (for the caller to keep) is not fitted here: the
    step's labels and queue come from the out-of-fold gaps alone.
    """
    from rlthf_selector.loop import step_from_gaps, training_set

    started = time.perf_counter()
    loop_config = loop_config or LoopConfig()
    train_label, train_weight = training_set(pairs.ai_label, pairs.human_label, alpha=loop_config.alpha_at(iteration),
                                             previous_region=previous_region)
    trained = np.flatnonzero(train_label != 0)
    if trained.shape[0] < 2 or np.unique(train_label[trained]).shape[0] < 2:
        raise ValueError(f"cannot train a reward model on {trained.shape[0]} labelled pairs with one preferred side")
    features_dir, n_shards = featurize_ray(pairs, config=featurizer_config or FeaturizerConfig(), work_dir=work_dir,
                                           shard_size=shard_size, shard_concurrency=shard_concurrency, use_ray=use_ray)
    gap = out_of_fold_gap_ray(features_dir, n_shards, train_label, sample_weight=train_weight, head_config=head_config,
                              n_folds=loop_config.out_of_fold, seed=loop_config.seed + iteration, shard_size=shard_size,
                              work_dir=work_dir, shard_concurrency=shard_concurrency, use_ray=use_ray)
    step = step_from_gaps(pairs, gap, train_weight, iteration=iteration, budget=budget, loop_config=loop_config,
                          curve_config=curve_config, selection_config=selection_config, remaining=remaining)
    step.seconds = time.perf_counter() - started
    return step
