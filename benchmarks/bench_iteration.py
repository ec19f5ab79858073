"""One full RLTHF iteration (featurise + train + out-of-fold score + curve + select) per pool size, with its peak memory.

Each size runs in a fresh child process, so one size's peak cannot mask another's; the child reports its own
``ru_maxrss``. Features go through an on-disk feature store (rlthf_selector/feature_store.py) in a fresh
temporary directory per repeat. Two feature sources, named by ``--featurizer``:

- ``hashing`` (default): the hashing featuriser (d = 515) on generated texts; featurising is part of the timed
  iteration, as it is on a first iteration over new pairs.
- ``precomputed``: random 384-d features written to the store before the clock starts, as a user's own
  embeddings would be; the iteration reads them from the store.

Prints one JSON line (and writes it to ``--json`` when given): seconds and peak RSS by size, the time ratio of
consecutive sizes, the machine and the command.

    python benchmarks/bench_iteration.py [--sizes 100000,1000000] [--repeats 3] [--featurizer hashing|precomputed]
        [--store-dtype float32|float16] [--json benchmarks/results/bench_iteration.json]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import time
import warnings

import numpy as np

from rlthf_selector.config import FeaturizerConfig, LoopConfig
from rlthf_selector.feature_store import CHUNK_PAIRS, FeatureStore
from rlthf_selector.features import Featurizer, HashingFeaturizer
from rlthf_selector.loop import select_step
from rlthf_selector.pairs import PreferencePairs
from rlthf_selector.reward_model import FeatureRewardModel

PRECOMPUTED_DIM = 384
_VOCABULARY = 5000


def _peak_rss_mb() -> float:
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)  # Linux: KiB


def make_text_pool(n: int, *, seed: int = 0) -> PreferencePairs:
    """n pairs of generated texts: responses of 8-40 words from a 5,000-word vocabulary under 200 prompts, gold from a
    hidden reward per word, a judge wrong on 20% of pairs. The 200 prompt strings are shared, not repeated."""
    rng = np.random.default_rng(seed)
    vocabulary = np.array([f"w{i}" for i in range(_VOCABULARY)], dtype=object)
    word_reward = rng.standard_normal(_VOCABULARY)
    prompts = np.array([f"question {i} about topic {i % 17}?" for i in range(200)], dtype=object)
    responses, rewards = [], []
    for _ in range(2):
        lengths = rng.integers(8, 41, size=n)
        words = rng.integers(0, _VOCABULARY, size=int(lengths.sum()))
        ends = np.cumsum(lengths)
        responses.append([" ".join(vocabulary[words[e - k : e]]) for e, k in zip(ends, lengths)])
        rewards.append(np.add.reduceat(word_reward[words], ends - lengths) / np.sqrt(lengths))
    gold = np.where(rewards[0] >= rewards[1], 1, -1).astype(np.int8)
    ai = np.where(rng.random(n) < 0.2, -gold, gold).astype(np.int8)
    return PreferencePairs(ids=np.char.add("p", np.arange(n).astype(str)).astype(object),
                           prompt=prompts[rng.integers(0, 200, size=n)], response_a=responses[0],
                           response_b=responses[1], ai_label=ai, gold_label=gold)


class StoredFeatures(Featurizer):
    """Features that are all in the store already: featurising anything else is an error."""

    def __init__(self, dim: int) -> None:
        self._dim = dim
        self.name = f"precomputed-{dim}"

    @property
    def dim(self) -> int:
        return self._dim

    def transform(self, pairs: PreferencePairs) -> np.ndarray:
        raise KeyError(f"{len(pairs)} pairs have no precomputed features in the store (first: {pairs.ids[0]!r})")


def make_precomputed_pool(n: int, store: FeatureStore, *, seed: int = 0) -> PreferencePairs:
    """n pairs with empty texts and random 384-d features written to ``store`` chunk by chunk, a hidden linear
    reward, and a judge wrong 20% of the time."""
    rng = np.random.default_rng(seed)
    truth = rng.standard_normal(PRECOMPUTED_DIM).astype(np.float32)
    empty = np.full(n, "", dtype=object)
    pairs = PreferencePairs(ids=np.char.add("p", np.arange(n).astype(str)).astype(object), prompt=empty,
                            response_a=empty, response_b=empty)
    gold = np.empty(n, dtype=np.int8)
    keys = store.keys(pairs)
    for start in range(0, n, CHUNK_PAIRS):
        stop = min(start + CHUNK_PAIRS, n)
        block = rng.standard_normal((stop - start, 2, PRECOMPUTED_DIM), dtype=np.float32)
        gold[start:stop] = np.where(block[:, 0] @ truth > block[:, 1] @ truth, 1, -1)
        store.put(keys[start:stop], block)
    ai = np.where(rng.random(n) < 0.2, -gold, gold).astype(np.int8)
    return pairs.replace(ai_label=ai, gold_label=gold)


def run_size(n: int, *, repeats: int, out_of_fold: int, featurizer_kind: str, store_dtype: str) -> dict:
    """Time ``repeats`` iterations on one pool of n pairs in this process; return times, accuracy and peak RSS."""
    config = LoopConfig(out_of_fold=out_of_fold)
    times, accuracy, pool_rss = [], 0.0, 0.0
    with tempfile.TemporaryDirectory(prefix="bench-iteration-") as root:
        if featurizer_kind == "precomputed":
            featurizer: Featurizer = StoredFeatures(PRECOMPUTED_DIM)
            store = FeatureStore(root, featurizer.name, dtype=store_dtype)
            pairs = make_precomputed_pool(n, store)
        else:
            featurizer = HashingFeaturizer(FeaturizerConfig())
            pairs = make_text_pool(n)
        pool_rss = _peak_rss_mb()
        for repeat in range(repeats):
            if featurizer_kind == "hashing":  # a fresh store: every repeat featurises from the texts
                store = FeatureStore(os.path.join(root, f"repeat-{repeat}"), featurizer.name, dtype=store_dtype)
            model = FeatureRewardModel(featurizer, store=store)  # a fresh model: no fitted state carried over
            started = time.perf_counter()
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", RuntimeWarning)
                step = select_step(pairs, model, iteration=0, budget=int(0.02 * n), loop_config=config)
            times.append(time.perf_counter() - started)
            accuracy = float((step.labels == pairs.gold_label).mean())
            del model, step
    return {"seconds": statistics.median(times), "runs": times, "accuracy": accuracy,
            "feature_dim": featurizer.dim, "peak_rss_mb": _peak_rss_mb(), "rss_after_pool_mb": pool_rss}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="100000,1000000")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--featurizer", choices=("hashing", "precomputed"), default="hashing",
                        help="hashing: the default featuriser on generated texts; precomputed: 384-d features from the store")
    parser.add_argument("--store-dtype", choices=("float32", "float16"), default="float32",
                        help="how the feature store keeps rows (float32 is exact; float16 halves disk and page cache)")
    parser.add_argument("--out-of-fold", type=int, default=LoopConfig().out_of_fold,
                        help="folds for cross-fitted gaps (the loop's default)")
    parser.add_argument("--json", default=None, help="also write the JSON line to this file")
    parser.add_argument("--child", type=int, default=None, help=argparse.SUPPRESS)  # one size, in this process
    args = parser.parse_args()
    options = dict(repeats=args.repeats, out_of_fold=args.out_of_fold, featurizer_kind=args.featurizer,
                   store_dtype=args.store_dtype)
    if args.child is not None:
        print(json.dumps(run_size(args.child, **options)))
        return
    by_size = {}
    for n in (int(s) for s in args.sizes.split(",")):
        child = [sys.executable, __file__, "--child", str(n), "--repeats", str(args.repeats), "--featurizer",
                 args.featurizer, "--store-dtype", args.store_dtype, "--out-of-fold", str(args.out_of_fold)]
        done = subprocess.run(child, check=True, capture_output=True, text=True)
        by_size[str(n)] = json.loads(done.stdout.strip().splitlines()[-1])
    sizes = sorted(int(k) for k in by_size)
    seconds = {k: v["seconds"] for k, v in by_size.items()}
    result = {
        "seconds_by_n": {k: round(v, 3) for k, v in seconds.items()},
        "peak_rss_mb_by_n": {k: v["peak_rss_mb"] for k, v in by_size.items()},
        "rss_after_pool_mb_by_n": {k: v["rss_after_pool_mb"] for k, v in by_size.items()},
        "time_ratio": {f"{a}->{b}": round(seconds[str(b)] / seconds[str(a)], 2) for a, b in zip(sizes, sizes[1:])},
        # (t_b / t_a) / (n_b / n_a): <= 1 means no worse than linear
        "time_per_pair_ratio": {f"{a}->{b}": round((seconds[str(b)] / seconds[str(a)]) / (b / a), 3)
                                for a, b in zip(sizes, sizes[1:])},
        "runs": {k: [round(t, 3) for t in v["runs"]] for k, v in by_size.items()},
        "pool_accuracy_after_step": {k: v["accuracy"] for k, v in by_size.items()},
        "featurizer": args.featurizer,
        "feature_dim": by_size[str(sizes[0])]["feature_dim"],
        "store_dtype": args.store_dtype,
        "out_of_fold": args.out_of_fold,
        "machine": f"{platform.machine()}, {os.cpu_count()} CPUs, Python {platform.python_version()}",
        "command": "python benchmarks/bench_iteration.py " + " ".join(sys.argv[1:]),
    }
    line = json.dumps(result)
    print(line)
    if args.json:
        with open(args.json, "w", encoding="utf-8") as fh:
            fh.write(line + "\n")


if __name__ == "__main__":
    main()
