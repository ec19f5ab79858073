"""A small `rlthf simulate` end to end on generated data: the JSON's schema and the instrument's sanity."""

import json
import warnings

import numpy as np
import pytest

from rlthf_selector.cli import main
from rlthf_selector.io import write_jsonl
from rlthf_selector.simulate import RESULT_FIELDS, summarise
from rlthf_selector.intervals import auc
from rlthf_selector.synthetic import make_synthetic_pairs


@pytest.fixture(scope="module")
def simulated(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("sim")
    pairs = make_synthetic_pairs(400, seed=5)
    # Canonical JSONL whose human_label is the gold the simulated human answers with.
    write_jsonl(pairs.replace(human_label=pairs.gold_label, gold_label=np.zeros(len(pairs), np.int8)), tmp / "pairs.jsonl")
    out = tmp / "out"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        rc = main(["simulate", "--dataset", "jsonl", "--path", str(tmp / "pairs.jsonl"),
                   "--strategies", "ai-only,all-human,random,margin,cleanlab,rlthf,rlthf-one-shot,self-improve",
                   "--budgets", "0.04,0.1", "--seeds", "0,1", "--out", str(out), "--json", str(out / "sim.json"),
                   "--iterations", "2", "--out-of-fold", "3"])
    assert rc == 0
    return pairs, out, json.loads((out / "sim.json").read_text())


def test_json_schema(simulated):
    pairs, out, data = simulated
    for key in ("dataset", "n_pairs", "ai_label_accuracy", "ai_labels", "featurizer", "results"):
        assert key in data
    assert data["n_pairs"] == 400
    assert data["ai_labels"] == "real: from the file"
    # The exact command is recorded, so the run can be repeated from its outputs.
    assert data["command"].startswith("rlthf simulate --dataset jsonl --path ")
    assert "--budgets 0.04,0.1 --seeds 0,1" in data["command"]
    for record in data["results"]:
        assert set(record) == set(RESULT_FIELDS)
    # One record per (strategy, budget, seed).
    keys = {(r["strategy"], r["budget"], r["seed"]) for r in data["results"]}
    assert len(keys) == len(data["results"]) == 8 * 2 * 2
    assert (out / "sim.md").read_text().count("| ") > 10
    assert (out / "sim.png").read_bytes()[:4] == b"\x89PNG"


def test_instrument_sanity(simulated):
    pairs, out, data = simulated
    by = {(r["strategy"], r["budget"], r["seed"]): r for r in data["results"]}
    for seed in (0, 1):
        for budget in (0.04, 0.1):
            assert by[("all-human", budget, seed)]["label_accuracy"] == 1.0
            ai_only = by[("ai-only", budget, seed)]
            assert ai_only["human_labels"] == 0 and ai_only["flips"] == 0
            # The pool is the data less the held-out split: its AI accuracy is near the whole set's.
            assert abs(ai_only["label_accuracy"] - data["ai_label_accuracy"]) < 0.05
            for strategy in ("random", "margin", "cleanlab", "rlthf", "rlthf-one-shot"):
                r = by[(strategy, budget, seed)]
                assert r["human_labels"] == round(budget * 320)
                # Human answers are gold: spending them can never make the pool worse than the AI,
                # except through flips, which are counted.
                assert r["label_accuracy"] >= ai_only["label_accuracy"] - r["flips"] / 320
            assert by[("self-improve", budget, seed)]["human_labels"] == 0
    summary = summarise(data)
    assert {s["strategy"] for s in summary} >= {"ai-only", "all-human", "random", "rlthf"}
    random_rows = [s for s in summary if s["strategy"] == "random" and s["roi_vs_random_mean"] is not None]
    assert all(s["roi_vs_random_mean"] == pytest.approx(1.0) for s in random_rows)


def test_the_mistake_model_is_set_beside_gold_band_by_band(simulated):
    pairs, out, data = simulated
    reports = [e["mistake_model"] for e in data["estimates"] if e["strategy"] == "rlthf"]
    assert len(reports) == 2 * 2
    for report in reports:
        band = report["calibration"]
        assert band["edges"] == [0.0, 0.25, 0.5, 0.75, 1.0]
        assert sum(band["pairs"]) == report["unlabeled"]  # every unlabelled pair with an AI label, once
        mistakes = sum(r * n for r, n in zip(band["mistake_rate"], band["pairs"]) if n)
        assert round(mistakes) == report["mistakes"]
        for lo, hi, p, n in zip(band["edges"], band["edges"][1:], band["mean_prob"], band["pairs"]):
            assert (p is None) == (n == 0) and (p is None or lo <= p <= hi)
    text = (out / "sim.md").read_text()
    assert "The mistake model's P(AI label wrong) on the pairs no human labelled, beside gold" in text
    assert "| rlthf | 4% |" in text


def test_ai_only_matches_the_ai_accuracy_on_the_pool(simulated):
    pairs, out, data = simulated
    from rlthf_selector.simulate import heldout_split

    pool, _ = heldout_split(len(pairs), fraction=0.2, seed=0)
    expected = float((pairs.ai_label[pool] == pairs.gold_label[pool]).mean())
    record = next(r for r in data["results"] if r["strategy"] == "ai-only" and r["seed"] == 0)
    assert record["label_accuracy"] == pytest.approx(expected)


def test_mistake_ranking_auc_known_answers():  # simulate ranks mistakes by intervals.auc of the negated gap
    wrong = np.array([True, True, False, False])
    assert auc(-np.array([-2.0, -1.0, 1.0, 2.0]), wrong) == 1.0
    assert auc(-np.array([2.0, 1.0, -1.0, -2.0]), wrong) == 0.0
    assert auc(np.zeros(4), wrong) == 0.5
    assert auc(np.zeros(4), np.zeros(4, bool)) is None


def test_unknown_strategy_is_named(tmp_path):
    pairs = make_synthetic_pairs(60, seed=1)
    write_jsonl(pairs.replace(human_label=pairs.gold_label, gold_label=np.zeros(60, np.int8)), tmp_path / "p.jsonl")
    rc = main(["simulate", "--dataset", "jsonl", "--path", str(tmp_path / "p.jsonl"), "--strategies", "oracle",
               "--out", str(tmp_path)])
    assert rc == 2


def test_trl_human_preference_data_is_simulated_with_a_judge(tmp_path):
    from rlthf_selector.simulate import load_simulation_data

    pairs = make_synthetic_pairs(120, seed=2)
    chosen = np.where(pairs.gold_label > 0, pairs.response_a, pairs.response_b)
    rejected = np.where(pairs.gold_label > 0, pairs.response_b, pairs.response_a)
    path = tmp_path / "prefs.jsonl"
    path.write_text("".join(json.dumps({"prompt": p, "chosen": c, "rejected": r}) + "\n"
                            for p, c, r in zip(pairs.prompt, chosen, rejected)))
    data = load_simulation_data("trl", [str(path)], ai_labels="uniform:0.25", seed=0)
    assert data.name == "trl:prefs.jsonl" and len(data.pairs) == 120
    # Gold is the human's chosen response, in whichever of A/B it was put.
    gold_chosen = np.where(data.pairs.gold_label > 0, data.pairs.response_a, data.pairs.response_b)
    assert gold_chosen.tolist() == chosen.tolist()
    assert (data.pairs.human_label == 0).all() and 0.6 < (data.pairs.ai_label == data.pairs.gold_label).mean() < 0.9
    with pytest.raises(ValueError, match="has no AI labels: pass --ai-labels"):
        load_simulation_data("trl", [str(path)], ai_labels=None)
    out = tmp_path / "out"
    rc = main(["simulate", "--dataset", "trl", "--path", str(path), "--ai-labels", "uniform:0.25",
               "--strategies", "ai-only,random,rlthf", "--budgets", "0.1", "--seeds", "0", "--out", str(out),
               "--iterations", "1", "--out-of-fold", "0"])
    assert rc == 0 and json.loads((out / "simulate.json").read_text())["dataset"].startswith("trl:")


def _pool_with_a_second_judge(n=300, seed=5):
    pairs = make_synthetic_pairs(n, seed=seed)
    # A second judge that is right on 90% of pairs: its disagreement marks most of the AI's mistakes.
    flip = np.random.default_rng(seed).random(n) < 0.1
    second = np.where(flip, -pairs.gold_label, pairs.gold_label).astype(np.int8)
    return pairs.replace(extra={"second_judge_label": second})


def test_the_rivals_evidence_only_and_length_ask_what_they_say():
    from rlthf_selector.config import BradleyTerryConfig, CurveConfig, FeaturizerConfig, LoopConfig, SelectionConfig
    from rlthf_selector.evidence import judge_doubt
    from rlthf_selector.signals import chose_shorter
    from rlthf_selector.simulate import Simulation, SimulationData

    pool = _pool_with_a_second_judge()
    sim = Simulation(SimulationData(pool, "synthetic", "test"), featurizer_config=FeaturizerConfig(n_features=64),
                     rm_config=BradleyTerryConfig(), loop_config=LoopConfig(out_of_fold=3), curve_config=CurveConfig(),
                     selection_config=SelectionConfig())
    never = lambda: pytest.fail("these rivals read no reward model")  # noqa: E731
    evidence = sim.run_strategy("evidence-only", pool, budget=30, seed=0, oof_gap=never)
    doubt = judge_doubt(pool)
    # The 30 asked are all among the most doubted: the second judge disagrees with each of them.
    assert evidence.human_labels == 30 and (doubt[evidence.asked] == doubt.max()).all()
    length = sim.run_strategy("length", pool, budget=30, seed=0, oof_gap=never)
    shorter = chose_shorter(pool)  # > 0 where the AI chose the shorter response
    assert shorter[length.asked].min() >= np.sort(shorter)[-30]  # the most lopsided first
    for outcome in (evidence, length):
        right = outcome.labels == pool.gold_label
        assert right[outcome.asked].all() and outcome.flips == 0


def test_no_evidence_drops_the_judges_evidence_before_any_strategy_sees_it(tmp_path):
    from rlthf_selector.io import write_jsonl

    pool = _pool_with_a_second_judge(200)
    path = tmp_path / "p.jsonl"
    write_jsonl(pool.replace(human_label=pool.gold_label, gold_label=np.zeros(len(pool), np.int8)), path)
    runs = {}
    for flag in ([], ["--no-evidence"]):
        out = tmp_path / ("without" if flag else "with")
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            rc = main(["simulate", "--dataset", "jsonl", "--path", str(path), "--strategies",
                       "ai-only,rlthf,rlthf-paper,evidence-only,length", "--budgets", "0.1", "--seeds", "0",
                       "--out", str(out), "--json", str(out / "sim.json"), "--iterations", "2", "--out-of-fold", "3",
                       *flag])
        assert rc == 0
        runs[bool(flag)] = json.loads((out / "sim.json").read_text())
    with_evidence, without = runs[False], runs[True]
    assert without["ai_labels"].endswith("judge evidence dropped")
    assert with_evidence["signal"][0]["judge_doubt_auc"] is not None and without["signal"][0]["judge_doubt_auc"] is None
    # evidence-only has nothing to rank by without the evidence: it is skipped, not run as random.
    assert {r["strategy"] for r in without["results"]} == {"ai-only", "rlthf", "rlthf-paper", "length"}
    # The mistake model reads the second judge only where it is given, and says what it learned.
    def signals(run):
        record = next(e for e in run["estimates"] if e["strategy"] == "rlthf")["mistake_model"]
        assert record["model"]["explanation"].startswith("From ")
        return set(record["signal_auc"])
    assert "second_judge_disagrees" in signals(with_evidence) and "second_judge_disagrees" not in signals(without)
    # The paper's procedure learns nothing: no mistake model in its record.
    assert not any(e["strategy"] == "rlthf-paper" and "mistake_model" in e for e in with_evidence["estimates"])


def test_on_error_skip_runs_past_an_identical_pair_and_a_malformed_line_and_reports_both_by_line(tmp_path, capsys):
    pairs = make_synthetic_pairs(200, seed=5)
    pairs.response_b[7] = pairs.response_a[7]  # one bad row: nothing to choose between (line 8)
    path = tmp_path / "p.jsonl"
    write_jsonl(pairs.replace(human_label=pairs.gold_label, gold_label=np.zeros(len(pairs), np.int8)), path)
    lines = path.read_text().splitlines(keepends=True)
    path.write_text("".join(lines[:20] + ['{"id": "broken", "prompt": \n'] + lines[20:]))  # line 21: not JSON
    run = ["simulate", "--dataset", "jsonl", "--path", str(path), "--strategies", "ai-only,random", "--budgets", "0.1",
           "--seeds", "0", "--out", str(tmp_path / "out"), "--json", str(tmp_path / "out" / "sim.json")]
    assert main(run) == 2  # the default stops at the first bad row and names it
    assert "p.jsonl:8: response_a and response_b are identical" in capsys.readouterr().err
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert main(run + ["--on-error", "skip"]) == 0
    out = capsys.readouterr().out
    assert f"{path}:8: identical responses" in out and f"{path}:21: invalid JSON" in out
    assert "skipped 2 input records" in out  # said again at the end of the run
    data = json.loads((tmp_path / "out" / "sim.json").read_text())
    assert data["n_pairs"] == 199
    assert data["skipped"] == [{"where": f"{path}:8", "reason": "identical responses"},
                               {"where": f"{path}:21", "reason": "invalid JSON"}]
    notes = "\n".join(data["notes"])
    assert "skipped 2" in notes and "p.jsonl:8: response_a and response_b are identical" in notes


def test_pooling_calibration_bands_with_different_edges_is_refused():
    from rlthf_selector.report import pool_calibration

    assert pool_calibration([]) is None
    one = {"edges": [0.0, 1.0], "pairs": [2], "mean_prob": [0.5], "mistake_rate": [0.5]}
    assert pool_calibration([one, one])["pairs"] == [4]
    with pytest.raises(ValueError, match="different edges"):
        pool_calibration([one, dict(one, edges=[0.0, 0.5], pairs=[2])])
