"""One full RLTHF iteration (train + score + curve + select) on pairs with precomputed 384-d features.

Prints one JSON line: {"seconds_by_n": {...}, "peak_rss_mb": M, ...}. Each N is the median of 3 runs.
Target: under 10 s for 100,000 pairs on 2 cores, time growing no faster than linearly in N.

    python benchmarks/bench_iteration.py [--sizes 10000,100000,1000000] [--repeats 3]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import statistics
import time
import warnings

import numpy as np

from rlthf_selector.config import LoopConfig
from rlthf_selector.features import PrecomputedFeaturizer
from rlthf_selector.loop import select_step
from rlthf_selector.pairs import PreferencePairs
from rlthf_selector.reward_model import FeatureRewardModel


def make_pool(n: int, *, dim: int = 384, seed: int = 0) -> tuple[PreferencePairs, np.ndarray]:
    """n pairs with random unit-ish features, a hidden linear reward and a judge wrong 20% of the time."""
    rng = np.random.default_rng(seed)
    features = rng.standard_normal((n, 2, dim), dtype=np.float32)
    truth = rng.standard_normal(dim).astype(np.float32)
    gold = np.where(features[:, 0] @ truth > features[:, 1] @ truth, 1, -1).astype(np.int8)
    ai = np.where(rng.random(n) < 0.2, -gold, gold).astype(np.int8)
    ids = np.char.add("p", np.arange(n).astype(str)).astype(object)
    empty = np.full(n, "", dtype=object)
    pairs = PreferencePairs(ids=ids, prompt=empty, response_a=empty, response_b=empty, ai_label=ai, gold_label=gold)
    return pairs, features


def time_iteration(n: int, *, repeats: int, out_of_fold: int) -> tuple[float, list[float], float]:
    pairs, features = make_pool(n)
    featurizer = PrecomputedFeaturizer(pairs.ids, features)
    del features
    config = LoopConfig(out_of_fold=out_of_fold)
    times, accuracy = [], 0.0
    for repeat in range(repeats):
        model = FeatureRewardModel(featurizer)  # a fresh model: nothing memoised between runs
        started = time.perf_counter()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            step = select_step(pairs, model, iteration=0, budget=int(0.02 * n), loop_config=config)
        times.append(time.perf_counter() - started)
        accuracy = float((step.labels == pairs.gold_label).mean())
    return statistics.median(times), times, accuracy


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="10000,100000,1000000")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--out-of-fold", type=int, default=LoopConfig().out_of_fold,
                        help="folds for cross-fitted gaps (the loop's default)")
    args = parser.parse_args()
    seconds, runs, accuracy = {}, {}, {}
    for n in (int(s) for s in args.sizes.split(",")):
        seconds[str(n)], runs[str(n)], accuracy[str(n)] = time_iteration(n, repeats=args.repeats, out_of_fold=args.out_of_fold)
    sizes = sorted(int(k) for k in seconds)
    growth = {f"{a}->{b}": round((seconds[str(b)] / seconds[str(a)]) / (b / a), 3) for a, b in zip(sizes, sizes[1:])}
    print(json.dumps({
        "seconds_by_n": {k: round(v, 3) for k, v in seconds.items()},
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        "runs": {k: [round(t, 3) for t in v] for k, v in runs.items()},
        "time_per_pair_ratio": growth,  # (t_b / t_a) / (n_b / n_a): <= 1 means no worse than linear
        "pool_accuracy_after_step": accuracy,
        "out_of_fold": args.out_of_fold,
        "feature_dim": 384,
        "machine": f"{platform.machine()}, {os.cpu_count()} CPUs, Python {platform.python_version()}",
        "command": "python benchmarks/bench_iteration.py " + f"--sizes {args.sizes} --repeats {args.repeats}",
    }))


if __name__ == "__main__":
    main()
