"""Ray Data jobs: prelabel, featurising and out-of-fold scoring over Parquet shards in a work folder.

The pairs are cut into shards of ``shard_size`` pairs, in input order. Every job maps one shard to one output
shard with the same per-shard function the single-process path runs on all pairs at once, writes it through a
temporary file and renames it into place; a shard file exists only when it is complete. A killed job therefore
resumes from the shards already written: it recomputes none of them and loses none. Results are read back in
shard order, so the pairs come back in input order, and the folds of out-of-fold scoring are drawn by
:func:`rlthf_selector.out_of_fold.fold_assignment` over the whole pool, as the single-process path draws them:
on the same input and seed both paths give the same labels, gaps and queue.

Work folder layout (shared storage, e.g. NFS, when the workers are on several machines)::

    records/   shard-00000.parquet ...   prelabel's input: id + the record as JSON, and manifest.json
    pairs/     shard-00000.parquet ...   featurising's input: id, prompt, response_a, response_b
    judge-<key>/shard-*.parquet          one judge's labels in both orders (+ cache/, its answers so far)
    features-<key>/shard-*.parquet       (n, 2, d) features, one row per pair
    gaps-<key>/fold-<k>.npz, shard-*.parquet   fitted fold heads, then each pair's out-of-fold gap

``<key>`` hashes everything that decides the output (the judge's signature, the featuriser's settings, the labels,
weights, folds and head settings), so a changed setting writes a new folder and never reuses a stale shard.
``ray`` is imported only inside this module's functions.
"""

from rlthf_selector.ray_jobs.shards import (
    LOCAL,
    RayConfig,
    ray_session,
    resolve_address,
    run_shards,
    shard_bounds,
    write_input_shards,
)
from rlthf_selector.ray_jobs.vllm_judge import VLLMJudgeConfig, judge_shards_vllm
from rlthf_selector.ray_jobs.prelabel import prelabel_ray
from rlthf_selector.ray_jobs.scoring import featurize_ray, load_features, out_of_fold_gap_ray, select_step_ray

__all__ = [
    "LOCAL",
    "RayConfig",
    "VLLMJudgeConfig",
    "featurize_ray",
    "judge_shards_vllm",
    "load_features",
    "out_of_fold_gap_ray",
    "prelabel_ray",
    "ray_session",
    "resolve_address",
    "run_shards",
    "select_step_ray",
    "shard_bounds",
    "write_input_shards",
]
