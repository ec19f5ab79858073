"""One-change-at-a-time comparison of selector settings with `rlthf simulate`'s own machinery.

Every variant changes one or two settings of the current defaults (config.py) and runs the ``rlthf``
strategy on the same pool, seeds and budgets; the baselines run once. The table it writes is what
benchmarks/README.md quotes in "what we tried". Gold is used only by the simulated human and the scoring,
exactly as in ``rlthf simulate``.

Usage (from the repository root)::

    .venv/bin/python benchmarks/tune_selector.py --dataset pandalm --seeds 0,1,2,3,4,5,6,7,8 \
        --out benchmarks/results/tuning-pandalm
    .venv/bin/python benchmarks/tune_selector.py --dataset hh-rlhf --ai-labels uniform:0.25 --seeds 0,1,2 \
        --variants hh --out benchmarks/results/tuning-hh-uniform25
    .venv/bin/python benchmarks/tune_selector.py --dataset pandalm --signal-only --out benchmarks/results/tuning-pandalm
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import warnings
from dataclasses import replace
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from rlthf_selector.config import (  # noqa: E402
    BradleyTerryConfig,
    CurveConfig,
    FeaturizerConfig,
    LoopConfig,
    SelectionConfig,
)
from rlthf_selector.simulate import DEFAULT_BUDGETS, Simulation, load_simulation_data, machine_description, summarise  # noqa: E402

#: The settings RLTHF shipped with before this comparison (the paper's regions, gap-only priority).
PAPER = {"selection.evidence_weight": 0.0, "selection.band_first": True, "selection.flip_doubt": 2.0,
         "curve.reflection": "gap"}

#: name -> (what changes, overrides of the defaults)
VARIANTS = {
    "defaults": ("the chosen defaults", {}),
    "paper": ("the previous defaults: evidence weight 0, band first, no evidence flips, reflection 'gap'", PAPER),
    "no-evidence": ("evidence weight 0 (gap-only queue; evidence flips stay)", {"selection.evidence_weight": 0.0}),
    "ew-0.3": ("evidence weight 0.3", {"selection.evidence_weight": 0.3}),
    "ew-0.7": ("evidence weight 0.7", {"selection.evidence_weight": 0.7}),
    "ew-1.0": ("evidence weight 1.0 (doubt only)", {"selection.evidence_weight": 1.0}),
    "band-first": ("band first (knee..reflection before the rest)", {"selection.band_first": True}),
    "no-evidence-flips": ("flip_doubt 2 (no evidence flips)", {"selection.flip_doubt": 2.0}),
    "reflection-gap": ("reflection 'gap' (the paper's mirrored flip region)", {"curve.reflection": "gap"}),
    "reflection-index": ("reflection 'index'", {"curve.reflection": "index"}),
    "no-auto-flip": ("auto_flip off (no flips at all)", {"selection.auto_flip": False}),
    "knee-first": ("priority 'knee-first'", {"selection.priority": "knee-first"}),
    "margin-priority": ("priority 'margin'", {"selection.priority": "margin"}),
    "derivative": ("curve detector 'derivative'", {"curve.detector": "derivative"}),
    "iterations-1": ("1 iteration", {"loop.iterations": 1}),
    "iterations-5": ("5 iterations", {"loop.iterations": 5}),
    "alpha-1": ("alpha 1 (human labels not amplified)", {"loop.alpha": [1.0]}),
    "alpha-10": ("alpha 10", {"loop.alpha": [10.0]}),
    "beta-0": ("beta 0 (no back-off)", {"loop.beta": [0.0]}),
    "in-sample": ("in-sample gaps (out_of_fold 0)", {"loop.out_of_fold": 0}),
    "l2-0.3": ("linear head, l2 0.3", {"rm.l2": 0.3}),
    "l2-3": ("linear head, l2 3", {"rm.l2": 3.0}),
    "mlp-64": ("MLP head, 64 hidden, l2 0.1", {"rm.hidden": 64, "rm.l2": 0.1}),
    "minilm": ("MiniLM features", {"features.kind": "minilm"}),
    "hashing+minilm": ("hashing and MiniLM features concatenated", {"features.kind": "hashing+minilm"}),
}
SETS = {
    "pandalm": [name for name in VARIANTS if name != "mlp-64"],
    "hh": ["defaults", "paper", "reflection-gap", "knee-first", "l2-0.3"],
    "quick": ["defaults", "paper"],
}
BASELINES = ("ai-only", "random", "margin", "cleanlab")


def configs_with(overrides: dict) -> dict:
    configs = {"loop": LoopConfig(), "curve": CurveConfig(), "selection": SelectionConfig(),
               "rm": BradleyTerryConfig(), "features": FeaturizerConfig(progress=False)}
    for key, value in overrides.items():
        group, name = key.split(".")
        configs[group] = replace(configs[group], **{name: value})
    return configs


def run_variant(data, overrides: dict, strategies, budgets, seeds) -> dict:
    c = configs_with(overrides)
    sim = Simulation(data, featurizer_config=c["features"], rm_config=c["rm"], loop_config=c["loop"],
                     curve_config=c["curve"], selection_config=c["selection"])
    started = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        out = sim.run(strategies, budgets, seeds, log=lambda s: None)
    out["wall_seconds"] = round(time.perf_counter() - started, 1)
    return out


def rows_of(out: dict, strategy: str, budgets) -> dict:
    summary = {s["budget"]: s for s in summarise(out) if s["strategy"] == strategy}
    prec: dict[float, list] = {}
    for d in out["diagnostics"]:
        if d["strategy"] == strategy:
            prec.setdefault(d["budget"], []).append(d["queue_precision"])
    acc = [100 * summary[b]["label_accuracy_mean"] for b in budgets]
    return {
        "accuracy": acc, "mean": float(np.mean(acc)),
        "flips": [summary[b]["flips_mean"] for b in budgets],
        "flips_correct": [summary[b]["flips_correct_mean"] for b in budgets],
        "queue_precision": [float(np.mean(prec[b])) if b in prec else None for b in budgets],
        "rm_auc": float(np.mean([s["rm_mistake_auc"] for s in out["signal"]])),
        "fused_auc": (float(np.mean([s["fused_mistake_auc"] for s in out["signal"]]))
                      if all(s.get("fused_mistake_auc") is not None for s in out["signal"]) else None),
    }


def markdown(records: list, budgets, header: str) -> str:
    mid = budgets.index(0.06) if 0.06 in budgets else len(budgets) // 2
    lines = [header, "",
             "| variant | change from the defaults | mean pool acc % | " + " | ".join(f"{100 * b:.0f}%" for b in budgets)
             + f" | queue precision at {100 * budgets[mid]:.0f}% | flips right/made at {100 * budgets[mid]:.0f}% | RM AUC | fused AUC |",
             "| --- | --- | --- | " + " | ".join("---" for _ in budgets) + " | --- | --- | --- | --- |"]
    for r in records:
        q = r["queue_precision"][mid]
        fused = "—" if r["fused_auc"] is None else f"{r['fused_auc']:.3f}"
        lines.append(
            f"| {r['name']} | {r['change']} | {r['mean']:.2f} | " + " | ".join(f"{a:.1f}" for a in r["accuracy"])
            + f" | {'—' if q is None else f'{q:.2f}'} | {r['flips_correct'][mid]:.1f}/{r['flips'][mid]:.1f} | "
            f"{r['rm_auc']:.3f} | {fused} |")
    return "\n".join(lines)


#: Reward heads compared by their out-of-fold mistake ranking alone (no loop): name -> BradleyTerryConfig overrides.
HEADS = {"linear, l2 0.3": {"l2": 0.3}, "linear, l2 1 (default)": {}, "linear, l2 3": {"l2": 3.0},
         "MLP 64 hidden, l2 0.1": {"hidden": 64, "l2": 0.1, "threads": 2}}


def signal_tables(data, seeds, budget: float = 0.06) -> str:
    """How well each reward head ranks the AI's mistakes out of fold, and how the AI's error rate splits by
    second-judge agreement and the sign of the default RM's out-of-fold gap (what the evidence flips use)."""
    from rlthf_selector.evidence import judge_doubt
    from rlthf_selector.reward_model import out_of_fold_reward_gap
    from rlthf_selector.simulate import _chose_shorter_score, heldout_split, mistake_ranking_auc

    heads: dict[str, list] = {name: [] for name in [*HEADS, "length only (no training)"]}
    groups: dict[str, list] = {}
    for seed in seeds:
        pool_idx, _ = heldout_split(len(data.pairs), fraction=0.2, seed=seed)
        pool = data.pairs.subset(pool_idx)
        wrong = pool.ai_label != pool.gold_label
        k = int(round(budget * len(pool)))
        for name, overrides in [*HEADS.items(), ("length only (no training)", None)]:
            if overrides is None:
                oriented = _chose_shorter_score(pool)
            else:
                c = configs_with({f"rm.{key}": value for key, value in overrides.items()})
                sim = Simulation(data, featurizer_config=c["features"], rm_config=c["rm"], loop_config=c["loop"],
                                 curve_config=c["curve"], selection_config=c["selection"])
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    gap = out_of_fold_reward_gap(sim.reward_model(seed), pool, pool.ai_label, n_folds=5, seed=seed)
                oriented = gap * pool.ai_label
                if not overrides:
                    default_oriented = oriented
            heads[name].append((mistake_ranking_auc(oriented, wrong), wrong[np.argsort(oriented, kind="stable")[:k]].mean()))
        if "second_judge_label" in pool.extra:
            second = pool.extra["second_judge_label"]
            verdict = np.where(second == 0, "gives no verdict", np.where(second == pool.ai_label, "agrees", "disagrees"))
            for v in ("agrees", "disagrees", "gives no verdict"):
                for sign, mask in (("contradicts (gap < 0)", default_oriented < 0), ("agrees (gap >= 0)", default_oriented >= 0)):
                    m = (verdict == v) & mask
                    groups.setdefault(f"| second judge {v} | RM {sign} |", []).append((int(m.sum()), int(wrong[m].sum())))
            doubt = judge_doubt(pool)
            heads.setdefault("judge doubt alone", []).append(
                (mistake_ranking_auc(-doubt, wrong), wrong[np.argsort(-doubt, kind="stable")[:k]].mean()))
    lines = [f"Out-of-fold mistake ranking of each reward head (5 folds, AI labels only), mean over seeds {seeds}; "
             f"precision = share of AI mistakes among the {100 * budget:.0f}% lowest-gap pairs.", "",
             f"| ranking | mistake AUC | precision at {100 * budget:.0f}% |", "| --- | --- | --- |"]
    for name, values in heads.items():
        v = np.array(values, dtype=float)
        lines.append(f"| {name} | {v[:, 0].mean():.3f} | {v[:, 1].mean():.2f} |")
    if groups:
        lines += ["", "AI mistakes by second-judge agreement and the sign of the default RM's out-of-fold gap "
                      "(oriented to the AI label), mean pairs per seed:", "",
                  "| second judge | reward model | pairs | AI mistakes |", "| --- | --- | --- | --- |"]
        for key, values in groups.items():
            v = np.array(values, dtype=float)
            share = v[:, 1].sum() / max(v[:, 0].sum(), 1)
            lines.append(f"{key} {v[:, 0].mean():.1f} | {share:.2f} |")
    return "\n".join(lines)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--dataset", default="pandalm", choices=("pandalm", "hh-rlhf"))
    p.add_argument("--path", nargs="*", default=None)
    p.add_argument("--ai-labels", default=None)
    p.add_argument("--seeds", default="0,1,2,3,4,5,6,7,8")
    p.add_argument("--budgets", default=",".join(str(b) for b in DEFAULT_BUDGETS))
    p.add_argument("--variants", default="pandalm", help="a set name (pandalm, hh, quick) or comma-separated variant names")
    p.add_argument("--out", required=True, help="output stem: writes STEM.json and STEM.md")
    p.add_argument("--signal-only", action="store_true",
                   help="only the out-of-fold signal tables (reward heads, judge evidence), written to STEM-signal.md")
    args = p.parse_args(argv)
    seeds = [int(s) for s in args.seeds.split(",")]
    budgets = [float(b) for b in args.budgets.split(",")]
    names = SETS.get(args.variants) or args.variants.split(",")
    unknown = [n for n in names if n not in VARIANTS]
    if unknown:
        p.error(f"unknown variants {unknown}; known: {', '.join(VARIANTS)}")
    default_path = {"pandalm": [str(REPO.parent / "shared/data/pandalm")],
                    "hh-rlhf": [str(REPO.parent / "shared/data/hh-rlhf/harmless-base-test.jsonl.gz")]}[args.dataset]
    data = load_simulation_data(args.dataset, args.path or default_path, ai_labels=args.ai_labels,
                                seed=seeds[0])
    if args.signal_only:
        table = signal_tables(data, seeds)
        Path(f"{args.out}-signal.md").parent.mkdir(parents=True, exist_ok=True)
        Path(f"{args.out}-signal.md").write_text(
            f"Command: `{' '.join(sys.argv)}`\n\nData: {data.name}, {len(data.pairs)} pairs, AI labels {data.ai_labels}; "
            f"machine: {machine_description()}.\n\n{table}\n")
        print(table)
        return 0
    started = time.perf_counter()
    base = run_variant(data, {}, list(BASELINES), budgets, seeds)
    records = []
    for strategy in BASELINES:
        r = rows_of(base, strategy, budgets)
        records.append({"name": strategy, "change": "baseline", **r})
    for name in names:
        change, overrides = VARIANTS[name]
        out = run_variant(data, overrides, ["rlthf"], budgets, seeds)
        r = rows_of(out, "rlthf", budgets)
        records.append({"name": f"rlthf: {name}", "change": change, "overrides": overrides,
                        "wall_seconds": out["wall_seconds"], **r})
        print(f"{name:20s} mean {r['mean']:.2f}  " + " ".join(f"{a:.1f}" for a in r["accuracy"])
              + f"  ({out['wall_seconds']} s)", flush=True)
    header = (f"Data: {base['dataset']}, {base['n_pairs']} pairs, AI labels {base['ai_labels']}; seeds {seeds}; "
              f"machine: {machine_description()}; {time.perf_counter() - started:.0f} s in all. "
              "Pool label accuracy of the `rlthf` strategy (mean over seeds); queue precision = share of the "
              "human-asked pairs whose AI label was wrong; RM AUC = out-of-fold mistake-ranking AUC of the reward "
              "gap (AI labels only); fused AUC = the gap fused with the judge evidence as the queue fuses them.")
    stem = Path(args.out)
    stem.parent.mkdir(parents=True, exist_ok=True)
    Path(f"{stem}.json").write_text(json.dumps({"command": " ".join(sys.argv), "dataset": base["dataset"],
                                                     "ai_labels": base["ai_labels"], "seeds": seeds, "budgets": budgets,
                                                     "machine": machine_description(), "records": records}, indent=1) + "\n")
    table = markdown(records, budgets, header)
    Path(f"{stem}.md").write_text(f"Command: `{' '.join(sys.argv)}`\n\n{table}\n")
    print(table)
    return 0


if __name__ == "__main__":
    sys.exit(main())
