"""Local Ray against one process: featurising (hashing) and out-of-fold scoring of one selection step.

Both paths run :func:`rlthf_selector.loop.select_step`'s work on the same synthetic pairs: one process with
``select_step`` and a ``FeatureRewardModel``; local Ray with :func:`rlthf_selector.ray_jobs.select_step_ray` on a
fresh work folder each repeat (so no shard is reused). Reports the median seconds of each, the throughput ratio
(single-process seconds / Ray seconds: above 1 Ray is faster), Ray's start-up time apart, and whether the two
gave the same labels, queue and gaps. Prints one JSON line and writes it to benchmarks/results/bench_ray.json.

    python benchmarks/bench_ray.py [--pairs 100000] [--repeats 3] [--shard-size 10000] [--num-cpus 0]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shlex
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", type=int, default=100_000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--shard-size", type=int, default=10_000)
    parser.add_argument("--num-cpus", type=int, default=0, help="CPUs of the local Ray; 0 = all")
    parser.add_argument("--out", default=str(Path(__file__).resolve().parent / "results" / "bench_ray.json"))
    args = parser.parse_args()

    import ray

    from rlthf_selector.config import FeaturizerConfig, LoopConfig
    from rlthf_selector.features import make_featurizer
    from rlthf_selector.loop import select_step
    from rlthf_selector.ray_jobs import select_step_ray
    from rlthf_selector.reward_model import FeatureRewardModel
    from rlthf_selector.synthetic import make_synthetic_pairs

    pairs = make_synthetic_pairs(args.pairs, seed=0)
    loop = LoopConfig()
    budget = int(0.02 * args.pairs)
    config = FeaturizerConfig(progress=False)

    single_times, ref = [], None
    for _ in range(args.repeats):
        started = time.perf_counter()
        ref = select_step(pairs, FeatureRewardModel(make_featurizer(config)), iteration=0, budget=budget, loop_config=loop)
        single_times.append(time.perf_counter() - started)

    started = time.perf_counter()
    ray.init(num_cpus=args.num_cpus or None, include_dashboard=False, log_to_driver=False)
    ray_start = time.perf_counter() - started
    ray_cpus = int(ray.cluster_resources().get("CPU", 0))
    ray_times, same = [], True
    max_gap_diff = 0.0
    try:
        for _ in range(args.repeats):
            work = Path(tempfile.mkdtemp(prefix="rlthf-bench-ray-"))
            try:
                started = time.perf_counter()
                step = select_step_ray(pairs, iteration=0, budget=budget, loop_config=loop, featurizer_config=config,
                                       work_dir=work, shard_size=args.shard_size)
                ray_times.append(time.perf_counter() - started)
            finally:
                shutil.rmtree(work, ignore_errors=True)
            max_gap_diff = max(max_gap_diff, float(np.abs(step.reward_gap - ref.reward_gap).max()))
            same &= bool(np.array_equal(step.labels, ref.labels) and np.array_equal(step.human_queue, ref.human_queue))
    finally:
        ray.shutdown()

    single, through_ray = statistics.median(single_times), statistics.median(ray_times)
    result = {
        "pairs": args.pairs,
        "what": "one select_step: hashing features + 5-fold out-of-fold Bradley-Terry gaps + curve + selection",
        "single_process_seconds": round(single, 3),
        "ray_seconds": round(through_ray, 3),
        "throughput_ratio_ray_over_single": round(single / through_ray, 3),
        "ray_start_seconds": round(ray_start, 3),
        "runs": {"single_process": [round(t, 3) for t in single_times], "ray": [round(t, 3) for t in ray_times]},
        "same_labels_and_queue": same,
        "max_abs_gap_difference": max_gap_diff,
        "shard_size": args.shard_size,
        "ray_cpus": ray_cpus,
        "ray_version": ray.__version__,
        "machine": f"{platform.machine()}, {os.cpu_count()} CPUs, Python {platform.python_version()}",
        "command": "python benchmarks/bench_ray.py " + " ".join(shlex.quote(a) for a in sys.argv[1:]),
    }
    line = json.dumps(result)
    print(line)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(line + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
