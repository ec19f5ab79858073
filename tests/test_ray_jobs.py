"""The Ray Data path (rlthf_selector/ray_jobs/) against the single-process path: the same labels, evidence,
gaps and queue; a job that fails midway resumes from the shards it wrote, recomputing none of them.

One local Ray (``ray.init(num_cpus=2)``) serves the module and is shut down after; without Ray installed
(``pip install 'rlthf[ray]'``) the module is skipped."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest

ray = pytest.importorskip("ray")

sys.path.insert(0, str(Path(__file__).resolve().parent))

from judge_server import PairPolicy, ScriptedChatServer  # noqa: E402

from rlthf_selector.config import FeaturizerConfig, LoopConfig  # noqa: E402
from rlthf_selector.features import make_featurizer  # noqa: E402
from rlthf_selector.judge.cli import main as prelabel_main  # noqa: E402
from rlthf_selector.io import load_jsonl  # noqa: E402
from rlthf_selector.loop import select_step  # noqa: E402
from rlthf_selector.ray_jobs import (  # noqa: E402
    featurize_ray,
    load_features,
    run_shards,
    select_step_ray,
    write_input_shards,
)
from rlthf_selector.ray_jobs.scoring import _FeatureShard  # noqa: E402
from rlthf_selector.ray_jobs.shards import shard_name  # noqa: E402
from rlthf_selector.reward_model import FeatureRewardModel  # noqa: E402
from rlthf_selector.synthetic import make_synthetic_pairs  # noqa: E402

# Pair k % 100 == r misbehaves: a judge that always picks the first shown, answers that name no letter,
# a server that keeps failing, answers without log-probabilities.
FAULTS = {3: "position_bias", 19: "position_bias", 7: "malformed", 23: "always_500", 11: "no_logprobs"}


@pytest.fixture(scope="module")
def local_ray():
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield
    ray.shutdown()


def make_records(n: int) -> list[dict]:
    """Pair k: the good response is A for even k; the prompt repeats a topic so features differ between pairs."""
    topics = ["tax", "soup", "rust", "tides", "chess", "bees", "loans", "knots"]
    out = []
    for k in range(n):
        t = topics[k % len(topics)]
        good = f"good-{k}: a careful answer about {t}, with the steps and a check of the result."
        bad = f"bad-{k}: {t}? no idea." if k % 5 else f"bad-{k}: a long but wrong answer about {t} that goes on and on."
        a, b = (good, bad) if k % 2 == 0 else (bad, good)
        out.append({"id": f"p{k}", "prompt": f"question-{k}: explain {t}", "response_a": a, "response_b": b,
                    "meta": {"topic": t}})
    return out


def prelabel_args(server: ScriptedChatServer, pairs: Path, out: Path, *extra: str) -> list[str]:
    return ["--pairs", str(pairs), "--out", str(out), "--model", "judge-x", "--base-url", server.url,
            "--timeout", "5", "--max-retries", "1", "--backoff-base", "0.01", "--backoff-max", "0.02",
            "--no-progress", "--log-level", "WARNING", *extra]


def read_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def prelabel_both_ways(tmp_path: Path, n: int, shard_size: int) -> tuple[Path, Path]:
    pairs = tmp_path / "pairs.jsonl"
    pairs.write_text("".join(json.dumps(r) + "\n" for r in make_records(n)), encoding="utf-8")
    single, through_ray = tmp_path / "single.jsonl", tmp_path / "ray.jsonl"
    with ScriptedChatServer(PairPolicy(fault_every=FAULTS, modulus=100), lifetime=600) as server:
        assert prelabel_main(prelabel_args(server, pairs, single)) == 0
        asked_single = len(server.requests)
        assert prelabel_main(prelabel_args(server, pairs, through_ray, "--ray", "--ray-shard-size",
                                           str(shard_size))) == 0
        # Both paths ask the same questions (with the same retries): the Ray path is no cheaper and no dearer.
        assert len(server.requests) == 2 * asked_single
    return single, through_ray


def assert_same_step(pairs, work_dir: Path, shard_size: int) -> None:
    loop = LoopConfig(out_of_fold=5, seed=3)
    ref = select_step(pairs, FeatureRewardModel(make_featurizer(FeaturizerConfig())), iteration=0, budget=300,
                      loop_config=loop)
    step = select_step_ray(pairs, iteration=0, budget=300, loop_config=loop, work_dir=work_dir, shard_size=shard_size)
    np.testing.assert_allclose(step.reward_gap, ref.reward_gap, rtol=0, atol=1e-6)
    np.testing.assert_array_equal(step.labels, ref.labels)
    np.testing.assert_array_equal(step.label_source, ref.label_source)
    np.testing.assert_array_equal(step.human_queue, ref.human_queue)
    np.testing.assert_array_equal(step.flip_mask, ref.flip_mask)
    assert len(ref.human_queue) > 0


@pytest.mark.slow
def test_prelabel_featurise_and_score_20k_pairs_through_ray_match_the_single_process_path(tmp_path, local_ray):
    single, through_ray = prelabel_both_ways(tmp_path, 20_000, shard_size=2500)
    assert read_jsonl(through_ray) == read_jsonl(single)  # labels and every evidence field, in input order
    pairs, _ = load_jsonl(through_ray)
    assert_same_step(pairs, tmp_path / "work", shard_size=2500)


def test_prelabel_through_ray_matches_and_retries_failed_requests_on_rerun(tmp_path, local_ray):
    single, through_ray = prelabel_both_ways(tmp_path, 600, shard_size=100)
    records = read_jsonl(through_ray)
    assert records == read_jsonl(single)
    failed = [r for r in records if (r.get("ai_unlabeled_reason") or "").startswith("request_failed")]
    assert failed and all(r["ai_label"] is None for r in failed)
    assert all(r["meta"]["topic"] for r in records)  # fields the judge does not read ride along untouched
    # A rerun asks again only for the failed answers (the rest come from each shard's cache), as the
    # single-process path does; the shards without failures are not recomputed at all.
    work = Path(str(through_ray) + ".ray-work")
    judge_dir = next(work.glob("judge-*"))
    stamps = {p.name: p.stat().st_mtime_ns for p in judge_dir.glob("shard-*.parquet")}
    with ScriptedChatServer(PairPolicy(), lifetime=120) as server:  # the server works again
        assert prelabel_main(prelabel_args(server, tmp_path / "pairs.jsonl", through_ray, "--ray",
                                           "--ray-shard-size", "100", "--summary-json",
                                           str(tmp_path / "summary.json"))) == 0
        asked = {(req.pair, req.first_shown) for req in server.requests}
    failed_k = {int(r["id"][1:]) for r in failed}
    assert {k for k, _ in asked} == failed_k
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["answers_requested"] == 2 * len(failed_k)  # the summary counts what this run paid for
    assert summary["answers_requested"] + summary["answers_from_cache"] == 2 * 600
    after = read_jsonl(through_ray)
    assert all(after[k]["ai_label"] is not None for k in failed_k)
    rewritten = {p.name for p in judge_dir.glob("shard-*.parquet") if p.stat().st_mtime_ns != stamps[p.name]}
    assert rewritten == {shard_name(k // 100) for k in failed_k}


def test_a_key_the_server_refuses_stops_the_ray_job_with_the_judges_message(tmp_path, local_ray, capsys):
    from judge_server import Reply

    pairs = tmp_path / "pairs.jsonl"
    pairs.write_text("".join(json.dumps(r) + "\n" for r in make_records(50)), encoding="utf-8")
    refuse = lambda req: (Reply(401, {"error": {"message": "invalid key"}}), "401")  # noqa: E731
    with ScriptedChatServer(refuse, lifetime=120) as server:
        assert prelabel_main(prelabel_args(server, pairs, tmp_path / "out.jsonl", "--ray", "--ray-shard-size", "25")) == 2
    err = capsys.readouterr().err
    assert "401" in err and "rerun the same command" in err
    assert not (tmp_path / "out.jsonl").exists()


def test_a_job_killed_midway_resumes_from_its_shards_without_recomputing_them(tmp_path, local_ray):
    pairs = make_synthetic_pairs(4000, seed=2)
    work = tmp_path / "work"
    config = FeaturizerConfig(progress=False)
    n_shards = write_input_shards(pairs, work / "pairs", shard_size=500, kind="pairs")
    stage = work / "features-test"
    inner = _FeatureShard(str(work / "pairs"), config)
    crash_at = 5

    def crashing(index: int):  # a worker that dies on one shard, as a preempted node would
        if index == crash_at:
            raise RuntimeError(f"worker lost on shard {index}")
        return inner(index)

    with pytest.raises(Exception, match="worker lost on shard 5"):
        run_shards(crashing, stage, n_shards, use_ray=True)
    written = {p.name: (p.stat().st_ino, p.stat().st_mtime_ns) for p in stage.glob("shard-*.parquet")}
    assert shard_name(crash_at) not in written and 0 < len(written) < n_shards
    assert not list(stage.glob(".*tmp*"))  # no half-written shard left under a final name or beside it

    computed = run_shards(inner, stage, n_shards, use_ray=True)
    assert computed == sorted(i for i in range(n_shards) if shard_name(i) not in written)
    for name, stamp in written.items():  # nothing already written was recomputed
        p = stage / name
        assert (p.stat().st_ino, p.stat().st_mtime_ns) == stamp
    assert run_shards(inner, stage, n_shards, use_ray=True) == []  # and a third run has nothing to do
    # Nothing lost: every pair's features, in order, as the featuriser gives them in one process.
    np.testing.assert_array_equal(load_features(stage, n_shards), make_featurizer(config).transform(pairs))


def test_a_temporary_file_left_by_a_killed_writer_is_swept_and_its_shard_computed(tmp_path):
    pairs = make_synthetic_pairs(300, seed=3)
    work = tmp_path / "work"
    n_shards = write_input_shards(pairs, work / "pairs", shard_size=100, kind="pairs")
    stage = work / "features-test"
    stage.mkdir()
    stale = stage / f".{shard_name(1)}.tmp-99999"  # a worker SIGKILLed mid-write never reaches its cleanup
    stale.write_bytes(b"half a parquet file")
    inner = _FeatureShard(str(work / "pairs"), FeaturizerConfig(progress=False))
    assert run_shards(inner, stage, n_shards, use_ray=False) == [0, 1, 2]
    assert not stale.exists() and not list(stage.glob(".*tmp*"))


def test_scoring_through_ray_matches_on_synthetic_pairs(tmp_path, local_ray):
    pairs = make_synthetic_pairs(3000, seed=4)
    assert_same_step(pairs, tmp_path / "work", shard_size=700)


def test_a_work_folder_refuses_another_input(tmp_path):
    pairs = make_synthetic_pairs(300, seed=0)
    featurize_ray(pairs, config=FeaturizerConfig(), work_dir=tmp_path, shard_size=100, use_ray=False)
    other = make_synthetic_pairs(300, seed=1)
    with pytest.raises(ValueError, match="holds shards of another input"):
        featurize_ray(other, config=FeaturizerConfig(), work_dir=tmp_path, shard_size=100, use_ray=False)


# ------------------------------------------------------------------------------------------ the vLLM judge
def test_vllm_answers_carry_the_verdict_and_confidence_an_api_judge_would(tmp_path):
    import math

    from rlthf_selector.judge.prompts import first_position_probability
    from rlthf_selector.ray_jobs.vllm_judge import _vllm_verdict

    # A row as ray.data.llm's vLLM stage hands it on: token ids with vLLM's per-token alternatives.
    row = {"shard": 0, "pos": 3, "order": "ba", "generated_text": "B", "generated_tokens": [33],
           "logprobs": [{33: {"logprob": math.log(0.8), "rank": 1, "decoded_token": "B"},
                         32: {"logprob": math.log(0.2), "rank": 2, "decoded_token": "A"}}],
           "num_input_tokens": 120, "num_generated_tokens": 1}
    out = _vllm_verdict(row)
    api_logprobs = {"content": [{"token": "B", "logprob": math.log(0.8),
                                 "top_logprobs": [{"token": "B", "logprob": math.log(0.8)},
                                                  {"token": "A", "logprob": math.log(0.2)}]}]}
    assert out["verdict"] == "B" and out["p_first"] == pytest.approx(first_position_probability(api_logprobs, "B"))
    assert out["p_first"] == pytest.approx(0.2)
    assert (out["shard"], out["pos"], out["order"], out["prompt_tokens"]) == (0, 3, "ba", 120)
    # Keys that came back as strings (through Arrow) read the same; no log-probabilities: no confidence.
    row["logprobs"] = [{str(k): v for k, v in row["logprobs"][0].items()}]
    assert _vllm_verdict(row)["p_first"] == pytest.approx(0.2)
    assert _vllm_verdict({**row, "logprobs": None})["p_first"] is None
    assert _vllm_verdict({**row, "generated_text": "Both are fine."})["verdict"] is None


def test_vllm_model_without_ray_is_refused(tmp_path, capsys):
    pairs = tmp_path / "pairs.jsonl"
    pairs.write_text("".join(json.dumps(r) + "\n" for r in make_records(4)), encoding="utf-8")
    assert prelabel_main(["--pairs", str(pairs), "--out", str(tmp_path / "o.jsonl"), "--vllm-model", "m"]) == 2
    assert "--vllm-model runs vLLM engines through Ray" in capsys.readouterr().err


def _vllm_gpu_model() -> str | None:
    import importlib.util
    import os

    if importlib.util.find_spec("vllm") is None:
        return None
    import torch

    return os.environ.get("RLTHF_VLLM_TEST_MODEL") if torch.cuda.is_available() else None


@pytest.mark.skipif(_vllm_gpu_model() is None,
                    reason="needs vllm, a CUDA GPU and RLTHF_VLLM_TEST_MODEL (a small chat model every node can load)")
def test_vllm_judge_labels_every_pair_in_both_orders_on_a_gpu(tmp_path, local_ray):
    from rlthf_selector.ray_jobs import VLLMJudgeConfig, prelabel_ray

    records = make_records(40)
    config = VLLMJudgeConfig(model=_vllm_gpu_model(), max_model_len=2048)
    out, summary = prelabel_ray(records, vllm=config, work_dir=tmp_path / "work", shard_size=16)
    assert [r["id"] for r in out] == [r["id"] for r in records]
    assert out[0]["judge_names"] == [config.model]
    assert all(r["ai_label"] in ("a", "b") or r["ai_unlabeled_reason"] for r in out)
    assert summary["answers_requested"] == 2 * len(records)
    again, summary = prelabel_ray(records, vllm=config, work_dir=tmp_path / "work", shard_size=16)
    assert again == out and summary["answers_requested"] == 0  # every shard was written: nothing is asked twice


def test_the_score_command_writes_the_single_process_step(tmp_path, local_ray):
    from rlthf_selector.ray_jobs.cli import main as score_main

    pairs = make_synthetic_pairs(1500, seed=5)
    path = tmp_path / "pairs.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in pairs.to_records()), encoding="utf-8")
    out = tmp_path / "step.jsonl"
    assert score_main(["--pairs", str(path), "--out", str(out), "--ray", "--ray-shard-size", "400", "--budget", "50"]) == 0
    rows = read_jsonl(out)
    pairs, _ = load_jsonl(path)
    ref = select_step(pairs, FeatureRewardModel(make_featurizer(FeaturizerConfig())), iteration=0, budget=50)
    assert [r["id"] for r in rows] == list(pairs.ids)
    np.testing.assert_allclose([r["reward_gap"] for r in rows], ref.reward_gap, rtol=0, atol=1e-6)
    queued = sorted((r["queue_rank"], i) for i, r in enumerate(rows) if r["queue_rank"] is not None)
    assert [i for _, i in queued] == ref.human_queue.tolist()
    assert [r["label"] for r in rows] == [{1: "a", -1: "b"}[int(v)] for v in ref.labels]
