"""``rlthf simulate``: RLTHF against its rivals on one data set, side by side, with a simulated human.

Every strategy sees the same pool, the same AI labels, the same featuriser and the same seeds.
The simulated human answers with gold. Per (strategy, budget, seed) it records the exported pool's
label accuracy against gold and the accuracy of a reward model trained on that export, measured on
a held-out split that no strategy ever saw (the paper's "preference accuracy").
"""

from __future__ import annotations

import argparse
import json
import platform
import shlex
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

from rlthf_selector import intervals
from rlthf_selector.config import (
    BradleyTerryConfig,
    CurveConfig,
    FeaturizerConfig,
    LoopConfig,
    SelectionConfig,
)
from rlthf_selector.pairs import PreferencePairs
from rlthf_selector.signals import chose_shorter
from rlthf_selector.simulate_strategies import (
    BUDGET_FREE,
    STRATEGIES,
    StrategyOutcome,
    evidence_auc,
    run_strategy,
)

DEFAULT_BUDGETS = (0.02, 0.04, 0.06, 0.08, 0.10)
RESULT_FIELDS = ("strategy", "budget", "seed", "human_labels", "label_accuracy", "rm_heldout_accuracy",
                 "flips", "flips_correct", "seconds")


@dataclass
class SimulationData:
    """A pool with gold and AI labels, plus how the AI labels came to be."""

    pairs: PreferencePairs
    name: str
    ai_labels: str
    notes: list[str] = field(default_factory=list)
    #: Every record the loader skipped, by place: ``{"where": "file:line", "reason": ...}``.
    skipped: list[dict[str, str]] = field(default_factory=list)


def load_simulation_data(dataset: str, paths: Sequence[str], *, ai_labels: str | None, seed: int = 0,
                         second_judge: str | None = None, on_error: str = "raise") -> SimulationData:
    """Load a named data set and attach AI labels (real, from the file, or simulated by a judge spec).

    Parameters
    ----------
    dataset : {'pandalm', 'hh-rlhf', 'jsonl', 'trl', 'synthetic'}
    paths : list of str
        A directory for pandalm, files for hh-rlhf, one file for jsonl and trl; ignored for synthetic. A trl file
        is human preference data in TRL's format (``chosen`` is the gold); its AI labels come from ``ai_labels``.
    ai_labels : str, optional
        pandalm: 'gpt-3.5' (default) or 'pandalm-7b'. Others: a simulated judge spec
        ('uniform:0.25', 'length-bias', ...) or None to use the file's own ``ai_label``.
    on_error : {'raise', 'skip'}
        Bad rows of hh-rlhf, jsonl and trl files: stop at the first, naming it, or skip them: counted by reason in
        the notes and each one listed by place in ``skipped`` (PandaLM's ties and unparseable verdicts, and HH-RLHF's
        identical responses, are always dropped, counted and listed the same way).
    """
    from rlthf_selector import io as loaders
    from rlthf_selector.simulated_judges import parse_judge_spec

    notes: list[str] = []
    skipped: list[dict[str, str]] = []
    if dataset == "pandalm":
        if len(paths) != 1:
            raise ValueError("--dataset pandalm takes one --path: the directory with testset-v1.json")
        judge = ai_labels or "gpt-3.5"
        if judge not in ("gpt-3.5", "pandalm-7b"):
            raise ValueError(f"--ai-labels {judge!r}: PandaLM carries real judges 'gpt-3.5' and 'pandalm-7b'")
        other = second_judge or ("pandalm-7b" if judge == "gpt-3.5" else "gpt-3.5")
        pairs, report = loaders.load_pandalm(paths[0], judge=judge, second_judge=other)
        notes.append(report.summary())
        skipped += report.skipped_at
        return SimulationData(pairs, "pandalm", f"real: {judge}", notes, skipped)
    if dataset == "hh-rlhf":
        if not paths:
            raise ValueError("--dataset hh-rlhf needs --path FILE [FILE ...]")
        pairs, report = loaders.load_hh_rlhf(list(paths), seed=seed, on_error=on_error)
        notes.append(report.summary())
        skipped += report.skipped_at
        name = "hh-rlhf:" + ",".join(Path(p).name.split(".")[0] for p in paths)
    elif dataset == "jsonl":
        if len(paths) != 1:
            raise ValueError("--dataset jsonl takes one --path FILE")
        pairs, report = loaders.load_jsonl(paths[0], on_error=on_error)
        notes.append(report.summary())
        skipped += report.skipped_at
        if (pairs.human_label == 0).any():
            raise ValueError(f"{paths[0]}: every pair needs a gold human_label for a simulation "
                             f"({int((pairs.human_label == 0).sum())} have none)")
        # The file's human labels are the gold the simulated human answers with.
        pairs = pairs.replace(gold_label=pairs.human_label, human_label=np.zeros(len(pairs), np.int8))
        name = f"jsonl:{Path(paths[0]).name}"
    elif dataset == "trl":
        if len(paths) != 1:
            raise ValueError("--dataset trl takes one --path FILE")
        pairs, report = loaders.load_trl(paths[0], seed=seed, on_error=on_error)  # gold_label: the human's chosen
        notes.append(report.summary())
        skipped += report.skipped_at
        name = f"trl:{Path(paths[0]).name}"
    elif dataset == "synthetic":
        from rlthf_selector.synthetic import make_synthetic_pairs

        pairs = make_synthetic_pairs(2000, seed=seed)
        name = "synthetic"
        if ai_labels is None:
            return SimulationData(pairs, name, "simulated: built-in biased judge", notes, skipped)
    else:
        raise ValueError(f"unknown --dataset {dataset!r}: use pandalm, hh-rlhf, jsonl, trl or synthetic")
    if ai_labels is None:
        if (pairs.ai_label == 0).all():
            raise ValueError(f"{name} has no AI labels: pass --ai-labels uniform:0.25 or length-bias")
        return SimulationData(pairs, name, "real: from the file", notes, skipped)
    judge_fn, description = parse_judge_spec(ai_labels)
    pairs = pairs.replace(ai_label=judge_fn(pairs, seed=seed))
    return SimulationData(pairs, name, description, notes, skipped)


def heldout_split(n: int, *, fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Positions of the pool and of the held-out split, both sorted."""
    rng = np.random.default_rng(10_000 + seed)
    perm = rng.permutation(n)
    k = int(round(fraction * n))
    return np.sort(perm[k:]), np.sort(perm[:k])


class Simulation:
    """Runs the strategies on one pool. Features are computed once and shared by every model."""

    def __init__(self, data: SimulationData, *, featurizer_config: FeaturizerConfig, rm_config: BradleyTerryConfig,
                 loop_config: LoopConfig, curve_config: CurveConfig, selection_config: SelectionConfig,
                 heldout_fraction: float = 0.2, cleanlab_folds: int = 5) -> None:
        from rlthf_selector.features import make_featurizer
        from rlthf_selector.feature_store import store_for
        from rlthf_selector.reward_model import FeatureRewardModel

        self.data = data
        self.featurizer = make_featurizer(featurizer_config)
        self.rm_config = rm_config
        self.loop_config = loop_config
        self.curve_config = curve_config
        self.selection_config = selection_config
        self.heldout_fraction = heldout_fraction
        self.cleanlab_folds = cleanlab_folds
        self._shared_model = FeatureRewardModel(self.featurizer, rm_config, store=store_for(self.featurizer, featurizer_config))

    def reward_model(self, seed: int):
        """A fresh reward model sharing the feature store (nothing is featurised twice)."""
        model = self._shared_model.clone()
        model.config = replace(self.rm_config, seed=seed)
        return model

    # --- strategies -------------------------------------------------------------------------
    def _oof_gap(self, pool: PreferencePairs, seed: int) -> np.ndarray:
        from rlthf_selector.out_of_fold import out_of_fold_reward_gap

        folds = max(self.loop_config.out_of_fold, 2)
        return out_of_fold_reward_gap(self.reward_model(seed), pool, pool.ai_label, n_folds=folds, seed=seed)

    def run_strategy(self, strategy: str, pool: PreferencePairs, *, budget: int, seed: int,
                     oof_gap: Callable[[], np.ndarray]) -> StrategyOutcome:
        """:func:`rlthf_selector.simulate_strategies.run_strategy` with this simulation's models and settings."""
        return run_strategy(strategy, pool, budget=budget, seed=seed, oof_gap=oof_gap, reward_model=self.reward_model,
                            loop_config=self.loop_config, curve_config=self.curve_config,
                            selection_config=self.selection_config)


    def heldout_accuracy(self, pool: PreferencePairs, labels: np.ndarray, heldout: PreferencePairs, seed: int) -> float:
        """Accuracy against gold, on the held-out split, of a reward model trained on ``labels``."""
        model = self.reward_model(seed)
        model.fit(pool, labels)
        gap = model.reward_gap(heldout)
        return float((np.where(gap >= 0, 1, -1) == heldout.gold_label).mean())

    def run(self, strategies: Sequence[str], budgets: Sequence[float], seeds: Sequence[int],
            *, log: Callable[[str], None] = print) -> dict[str, Any]:
        unknown = sorted(set(strategies) - set(STRATEGIES))
        if unknown:
            raise ValueError(f"unknown strategies {unknown}: choose from {', '.join(STRATEGIES)}")
        pairs = self.data.pairs
        if (pairs.gold_label == 0).any():
            raise ValueError(f"{int((pairs.gold_label == 0).sum())} pairs have no gold label: a simulation needs gold")
        started = time.perf_counter()
        log(f"featurising {len(pairs)} pairs with {self.featurizer.name} ...")
        self._shared_model.feature_rows(pairs)  # encode every text once, up front
        results: list[dict[str, Any]] = []
        diagnostics: list[dict[str, Any]] = []
        signal: list[dict[str, Any]] = []
        estimates: list[dict[str, Any]] = []
        for seed in seeds:
            pool_idx, heldout_idx = heldout_split(len(pairs), fraction=self.heldout_fraction, seed=seed)
            pool, heldout = pairs.subset(pool_idx), pairs.subset(heldout_idx)
            wrong = pool.ai_label != pool.gold_label
            cache: dict[str, np.ndarray] = {}

            def oof_gap() -> np.ndarray:
                if "gap" not in cache:
                    cache["gap"] = self._oof_gap(pool, seed)
                return cache["gap"]

            oriented = oof_gap() * pool.ai_label
            rm_auc = intervals.auc(-oriented, wrong)
            length_auc = intervals.auc(chose_shorter(pool), wrong)
            from rlthf_selector.report import mistake_share_along_curve

            signal.append({"seed": seed, "pool": len(pool), "heldout": len(heldout),
                           "ai_error": float(wrong.mean()), "rm_mistake_auc": rm_auc, "length_only_auc": length_auc,
                           **evidence_auc(pool, wrong),
                           # Where the AI's mistakes sit along the out-of-fold curve, from gold (the plot's 3rd panel).
                           "mistake_share_along_curve": mistake_share_along_curve(
                               oriented, wrong, np.ones(len(pool), dtype=bool))})
            log(f"seed {seed}: pool {len(pool)}, held-out {len(heldout)}, AI error {wrong.mean():.3f}, "
                f"RM mistake-ranking AUC {rm_auc:.3f} (length only {length_auc:.3f})")
            for strategy in strategies:
                if strategy == "evidence-only" and "judge_doubt_auc" in signal[-1] and signal[-1]["judge_doubt_auc"] is None:
                    log("  evidence-only   skipped: the pairs carry no judge evidence")
                    continue
                strategy_budgets = [0.0] if strategy in BUDGET_FREE else list(budgets)
                for fraction in strategy_budgets:
                    budget = int(round(fraction * len(pool)))
                    t0 = time.perf_counter()
                    outcome = self.run_strategy(strategy, pool, budget=budget, seed=seed, oof_gap=oof_gap)
                    label_acc = float((outcome.labels == pool.gold_label).mean())
                    rm_acc = self.heldout_accuracy(pool, outcome.labels, heldout, seed)
                    seconds = time.perf_counter() - t0
                    reported = list(budgets) if strategy in BUDGET_FREE else [fraction]
                    for b in reported:
                        results.append({"strategy": strategy, "budget": b, "seed": seed,
                                        "human_labels": outcome.human_labels, "label_accuracy": label_acc,
                                        "rm_heldout_accuracy": rm_acc, "flips": outcome.flips,
                                        "flips_correct": outcome.flips_correct, "seconds": round(seconds, 3)})
                    if outcome.estimates is not None:
                        estimates.append({"strategy": strategy, "budget": fraction, "seed": seed, **outcome.estimates})
                    if outcome.asked is not None and outcome.asked.size and strategy != "all-human":
                        diagnostics.append({"strategy": strategy, "budget": fraction, "seed": seed,
                                            "queue_precision": float(wrong[outcome.asked].mean())})
                    log(f"  {strategy:15s} budget {fraction:.2f}: pool accuracy {label_acc:.3f}, "
                        f"held-out RM {rm_acc:.3f}, humans {outcome.human_labels}, flips {outcome.flips}"
                        f" ({outcome.flips_correct} right), {seconds:.1f}s")
        return {
            "dataset": self.data.name,
            "n_pairs": len(pairs),
            "ai_label_accuracy": float((pairs.ai_label == pairs.gold_label).mean()),
            "ai_labels": self.data.ai_labels,
            "featurizer": self.featurizer.name,
            "results": results,
            "signal": signal,
            "diagnostics": diagnostics,
            "estimates": estimates,
            "notes": self.data.notes,
            "skipped": self.data.skipped,
            "machine": machine_description(),
            "seconds": round(time.perf_counter() - started, 1),
        }


def machine_description() -> str:
    import os

    return f"{platform.machine()}, {os.cpu_count()} CPUs, Python {platform.python_version()}, {platform.system()}"


def summarise(output: dict[str, Any]) -> list[dict[str, Any]]:
    """Mean and spread per (strategy, budget), with gap closed and return on investment against random."""
    rows: dict[tuple[str, float], list[dict[str, Any]]] = {}
    for r in output["results"]:
        rows.setdefault((r["strategy"], r["budget"]), []).append(r)
    by_seed = {(r["strategy"], r["budget"], r["seed"]): r for r in output["results"]}
    summary = []
    for (strategy, budget), group in rows.items():
        acc = np.array([g["label_accuracy"] for g in group])
        rm = np.array([g["rm_heldout_accuracy"] for g in group])
        closed, roi = [], []
        for g in group:
            ai = by_seed.get(("ai-only", budget, g["seed"]))
            full = by_seed.get(("all-human", budget, g["seed"]))
            rand = by_seed.get(("random", budget, g["seed"]))
            if ai and full and full["label_accuracy"] > ai["label_accuracy"]:
                closed.append((g["label_accuracy"] - ai["label_accuracy"]) / (full["label_accuracy"] - ai["label_accuracy"]))
            if ai and rand and rand["label_accuracy"] > ai["label_accuracy"]:
                roi.append((g["label_accuracy"] - ai["label_accuracy"]) / (rand["label_accuracy"] - ai["label_accuracy"]))
        summary.append({
            "strategy": strategy, "budget": budget, "seeds": len(group),
            "label_accuracy_mean": float(acc.mean()), "label_accuracy_std": float(acc.std()),
            "rm_heldout_accuracy_mean": float(rm.mean()), "rm_heldout_accuracy_std": float(rm.std()),
            "human_labels_mean": float(np.mean([g["human_labels"] for g in group])),
            "flips_mean": float(np.mean([g["flips"] for g in group])),
            "flips_correct_mean": float(np.mean([g["flips_correct"] for g in group])),
            "gap_closed_mean": float(np.mean(closed)) if closed else None,
            "roi_vs_random_mean": float(np.mean(roi)) if roi else None,
        })
    order = {s: i for i, s in enumerate(STRATEGIES)}
    summary.sort(key=lambda s: (s["budget"], order.get(s["strategy"], 99)))
    return summary


def markdown_table(output: dict[str, Any], summary: list[dict[str, Any]]) -> str:
    def pct(mean: float, std: float) -> str:
        return f"{100 * mean:.1f} ± {100 * std:.1f}"

    lines = [
        f"Data: {output['dataset']}, {output['n_pairs']} pairs; AI labels {output['ai_labels']} "
        f"(accuracy {100 * output['ai_label_accuracy']:.1f}%); features {output['featurizer']}; "
        f"seeds {sorted({r['seed'] for r in output['results']})}.",
        "",
        "| budget | strategy | pool label accuracy % | held-out RM accuracy % | humans | flips (right) | gap closed | ROI vs random |",
        "| --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for s in summary:
        closed = "—" if s["gap_closed_mean"] is None else f"{s['gap_closed_mean']:.2f}"
        roi = "—" if s["roi_vs_random_mean"] is None else f"{s['roi_vs_random_mean']:.2f}"
        lines.append(
            f"| {100 * s['budget']:.0f}% | {s['strategy']} | {pct(s['label_accuracy_mean'], s['label_accuracy_std'])} | "
            f"{pct(s['rm_heldout_accuracy_mean'], s['rm_heldout_accuracy_std'])} | {s['human_labels_mean']:.0f} | "
            f"{s['flips_mean']:.1f} ({s['flips_correct_mean']:.1f}) | {closed} | {roi} |"
        )
    sig = output.get("signal", [])
    if sig:
        aucs = [s["rm_mistake_auc"] for s in sig if s["rm_mistake_auc"] is not None]
        lens = [s["length_only_auc"] for s in sig if s["length_only_auc"] is not None]
        lines += ["", f"RM mistake-ranking AUC (out-of-fold, AI labels only): {np.mean(aucs):.3f}; "
                      f"length-only baseline: {np.mean(lens):.3f}."]
        doubt = [s["judge_doubt_auc"] for s in sig if s.get("judge_doubt_auc") is not None]
        if doubt:
            lines[-1] += f" Judge evidence alone: {np.mean(doubt):.3f}."
    prec: dict[tuple[str, float], list[float]] = {}
    for d in output.get("diagnostics", []):
        prec.setdefault((d["strategy"], d["budget"]), []).append(d["queue_precision"])
    if prec:
        lines += ["", "Queue precision (share of human-asked pairs where the AI was wrong; base rate = AI error):", "",
                  "| strategy | " + " | ".join(f"{100 * b:.0f}%" for b in sorted({b for _, b in prec})) + " |",
                  "| --- |" + " --- |" * len({b for _, b in prec})]
        for strategy in [s for s in STRATEGIES if any(k[0] == s for k in prec)]:
            cells = [f"{np.mean(prec[(strategy, b)]):.2f}" if (strategy, b) in prec else "—"
                     for b in sorted({b for _, b in prec})]
            lines.append(f"| {strategy} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def plot_accuracy(summary: list[dict[str, Any]], path: Path, *, title: str,
                  signal: Sequence[dict[str, Any]] = ()) -> Path:
    """Pool and held-out accuracy against the budget per strategy, and, given the runs' ``signal`` records, the
    share of AI mistakes along the reward model's out-of-fold curve (from gold; the first seed's pool)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from rlthf_selector.report import plot_mistake_share

    shares = [s["mistake_share_along_curve"] for s in signal if s.get("mistake_share_along_curve")]
    fig, axes = plt.subplots(1, 3 if shares else 2, figsize=(18 if shares else 12, 4.5), dpi=110)
    for key, ax, label in (("label_accuracy", axes[0], "pool label accuracy"),
                           ("rm_heldout_accuracy", axes[1], "held-out RM accuracy")):
        for strategy in STRATEGIES:
            rows = sorted((s for s in summary if s["strategy"] == strategy), key=lambda s: s["budget"])
            if not rows:
                continue
            x = [100 * s["budget"] for s in rows]
            y = [100 * s[f"{key}_mean"] for s in rows]
            err = [100 * s[f"{key}_std"] for s in rows]
            style = "--" if strategy in BUDGET_FREE else "-o"
            ax.errorbar(x, y, yerr=err, fmt=style, ms=4, capsize=2, label=strategy)
        ax.set_xlabel("human budget (% of pool)")
        ax.set_ylabel(f"{label} (%)")
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=8)
    if shares:
        plot_mistake_share(axes[2], shares[0], source="gold")
        axes[2].set_title(f"AI mistakes along the reward-gap curve (seed {signal[0]['seed']}'s pool)", fontsize=9)
        axes[2].grid(alpha=0.3)
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path


def write_outputs(output: dict[str, Any], *, json_path: Path, out_dir: Path, command: str) -> dict[str, Path]:
    """Write the JSON, the markdown table and the accuracy-vs-budget PNG."""
    out_dir.mkdir(parents=True, exist_ok=True)
    json_path.parent.mkdir(parents=True, exist_ok=True)
    output = {**output, "command": command}
    json_path.write_text(json.dumps(output, indent=1) + "\n", encoding="utf-8")
    summary = summarise(output)
    table = markdown_table(output, summary)
    stem = json_path.stem
    md = out_dir / f"{stem}.md"
    if output.get("estimates"):
        from rlthf_selector.report import estimates_markdown

        table += "\n\n" + estimates_markdown(output["estimates"])
    md.write_text(f"Command: `{command}`\n\nMachine: {output['machine']}; wall time {output['seconds']} s.\n\n"
                  f"{table}\n\n![accuracy vs budget]({stem}.png)\n", encoding="utf-8")
    png = plot_accuracy(summary, out_dir / f"{stem}.png", title=f"{output['dataset']} ({output['ai_labels']})",
                        signal=output.get("signal", []))
    return {"json": json_path, "markdown": md, "png": png}


#: The selector settings `rlthf simulate` also takes on the command line (all of them come from --config FILE;
#: --budgets and --seeds take the place of [loop] human_budget and seed).
SIMULATE_OPTIONS = ("loop.iterations", "loop.out_of_fold", "selection.method", "features.kind")


def add_simulate_parser(subparsers: argparse._SubParsersAction) -> None:
    from rlthf_selector.config import add_selector_arguments

    p = subparsers.add_parser("simulate", help="benchmark RLTHF against random, margin, cleanlab and more on real data",
                              formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--dataset", required=True, choices=("pandalm", "hh-rlhf", "jsonl", "trl", "synthetic"))
    p.add_argument("--path", nargs="*", default=[],
                   help="pandalm: directory; hh-rlhf: files; jsonl: file; trl: a human preference file in TRL's format "
                        "(prompt/chosen/rejected, .jsonl/.json/.parquet), with --ai-labels")
    p.add_argument("--ai-labels", default=None,
                   help="pandalm: gpt-3.5 | pandalm-7b; else a simulated judge: uniform:0.25 | length-bias[:k=v,...]; "
                        "default: the file's own ai_label")
    p.add_argument("--strategies", default=",".join(STRATEGIES), help="comma-separated strategies")
    p.add_argument("--budgets", default=",".join(str(b) for b in DEFAULT_BUDGETS),
                   help="comma-separated fractions of the pool (in place of [loop] human_budget)")
    p.add_argument("--seeds", default="0,1,2", help="comma-separated seeds (in place of [loop] seed)")
    p.add_argument("--heldout", type=float, default=0.2, help="share of pairs held out for the RM accuracy")
    p.add_argument("--json", default=None, help="output JSON path (default OUT/simulate.json)")
    p.add_argument("--out", default="simulate_out", help="folder for the markdown table and plot")
    p.add_argument("--on-error", choices=("raise", "skip"), default="raise",
                   help="bad input rows (e.g. two identical responses): stop at the first, naming its line ('raise'), or "
                        "skip them, each one reported by file:line and reason in the output and in the JSON's "
                        "'skipped' ('skip')")
    p.add_argument("--no-evidence", action="store_true",
                   help="drop every judge-evidence field (second judge, swap consistency, confidence, ...) before any "
                        "strategy sees it, so a data set can be run with and without the judge's own evidence")
    add_selector_arguments(p, options=SIMULATE_OPTIONS)
    p.set_defaults(func=run_simulate)


def _csv(text: str, cast: Callable[[str], Any]) -> list[Any]:
    return [cast(t.strip()) for t in text.split(",") if t.strip()]


def run_simulate(args: argparse.Namespace) -> int:
    from rlthf_selector.config import selector_configs

    configs = selector_configs(args)
    seeds = _csv(args.seeds, int)
    data = load_simulation_data(args.dataset, args.path, ai_labels=args.ai_labels, seed=seeds[0] if seeds else 0,
                                on_error=args.on_error)
    if args.no_evidence:
        from rlthf_selector.evidence import without_evidence

        data = replace(data, pairs=without_evidence(data.pairs), ai_labels=f"{data.ai_labels}, judge evidence dropped")
    for note in data.notes:
        print(note)
    sim = Simulation(data, featurizer_config=configs["featurizer_config"], rm_config=configs["rm_config"],
                     loop_config=configs["loop_config"], curve_config=configs["curve_config"],
                     selection_config=configs["selection_config"], heldout_fraction=args.heldout)
    output = sim.run(_csv(args.strategies, str), _csv(args.budgets, float), seeds)
    out_dir = Path(args.out)
    json_path = Path(args.json) if args.json else out_dir / "simulate.json"
    # The exact command line, as main() received it, so the run can be repeated from its outputs.
    command = "rlthf " + shlex.join(args.argv)
    paths = write_outputs(output, json_path=json_path, out_dir=out_dir, command=command)
    print()
    print(markdown_table(output, summarise(output)))
    if data.skipped:  # said again at the end, where it is seen: the input was not read whole
        print(f"\nskipped {len(data.skipped)} input records: listed by file:line with the loading notes above, "
              f"all of them under 'skipped' in {paths['json']}")
    print(f"\nwrote {paths['json']}, {paths['markdown']}, {paths['png']} in {output['seconds']} s")
    return 0
