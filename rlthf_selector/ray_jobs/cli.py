"""``python -m rlthf_selector.ray_jobs``: one selection step with featurising and scoring on Ray."""

from __future__ import annotations

import contextlib
import json
from pathlib import Path
from typing import Sequence

import numpy as np

from rlthf_selector.ray_jobs.scoring import select_step_ray
from rlthf_selector.ray_jobs.shards import LOCAL, ray_session, RayConfig


def main(argv: Sequence[str] | None = None) -> int:
    """One selection step over a labelled pool with featurising and out-of-fold scoring as Ray Data jobs.

    ``python -m rlthf_selector.ray_jobs --pairs labeled.jsonl --out step.jsonl --ray [ADDRESS]`` writes one line per
    pair: ``id``, ``reward_gap`` (out-of-fold), ``label`` and ``label_source`` (human > flipped > AI > RM) and
    ``queue_rank`` (0 = ask first; null = not queued), in input order, and prints the step's summary. Without
    ``--ray`` the same shards are computed in this process. A rerun resumes from the work folder's shards.
    """
    import argparse

    from rlthf_selector.config import add_config_arguments, add_selector_arguments, config_from_args, selector_configs
    from rlthf_selector.io import load_jsonl
    from rlthf_selector.pairs import LabelSource, format_label

    parser = argparse.ArgumentParser(prog="python -m rlthf_selector.ray_jobs", description=main.__doc__.splitlines()[0])
    parser.add_argument("--pairs", required=True, help="canonical JSONL with ai_label (and any human_label)")
    parser.add_argument("--out", required=True, help="JSONL: id, reward_gap, label, label_source, queue_rank")
    parser.add_argument("--budget", type=int, default=200, help="most pairs in the human queue")
    parser.add_argument("--iteration", type=int, default=0, help="0-based iteration: picks alpha, beta and the fold seed")
    parser.add_argument("--ray", nargs="?", const=LOCAL, default=None, metavar="ADDRESS",
                        help="run on Ray: alone, a Ray on this machine (or RAY_ADDRESS); with an address, that cluster")
    add_config_arguments(parser, RayConfig, prefix="ray_")
    add_selector_arguments(parser, options=("loop.out_of_fold", "selection.method", "features.kind"))
    args = parser.parse_args(argv)
    ray_config: RayConfig = config_from_args(RayConfig, args, prefix="ray_")
    configs = selector_configs(args)
    try:
        pairs, _ = load_jsonl(args.pairs)
    except (OSError, ValueError) as exc:
        parser.error(str(exc))
    work_dir = ray_config.work_dir or str(args.out) + ".ray-work"
    session = ray_session(args.ray, num_cpus=ray_config.num_cpus) if args.ray is not None else contextlib.nullcontext()
    with session:
        step = select_step_ray(
            pairs, iteration=args.iteration, budget=args.budget, work_dir=work_dir,
            featurizer_config=configs["featurizer_config"], head_config=configs["rm_config"],
            loop_config=configs["loop_config"], curve_config=configs["curve_config"],
            selection_config=configs["selection_config"], shard_size=ray_config.shard_size,
            shard_concurrency=ray_config.shard_concurrency, use_ray=args.ray is not None,
        )
    rank = np.full(len(pairs), -1, dtype=np.int64)
    rank[step.human_queue] = np.arange(len(step.human_queue))
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    with open(args.out, "w", encoding="utf-8") as fh:
        for i in range(len(pairs)):
            fh.write(json.dumps({
                "id": str(pairs.ids[i]), "reward_gap": float(step.reward_gap[i]), "label": format_label(step.labels[i]),
                "label_source": LabelSource(int(step.label_source[i])).label,
                "queue_rank": int(rank[i]) if rank[i] >= 0 else None,
            }) + "\n")
    print(json.dumps(step.summary()["label_sources"] | {"queue_length": int(len(step.human_queue)),
                                                       "seconds": round(step.seconds, 3)}))
    return 0
