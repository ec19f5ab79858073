"""Where `rlthf` stands against its rivals, printed from the JSON files `rlthf simulate` wrote.

For each run: per budget, `rlthf`'s pool accuracy beside the best rival's (mean of seeds), the margin, the flips
and how many were right, and, at each budget, the mistake model's AUC on the pairs no human labelled beside the
best single signal's on the same pairs, and how often the unlabelled pairs it rates more likely wrong than right
(P >= 0.5, where flips are made) are wrong by gold. Nothing is typed in by hand: every figure is read from the files.

    .venv/bin/python benchmarks/standing.py benchmarks/results/pandalm-gpt35.json [...] [--rivals random,margin,...]
"""

from __future__ import annotations

import argparse
import json
from collections import defaultdict
from pathlib import Path

import numpy as np

from rlthf_selector.report import pool_calibration

DEFAULT_RIVALS = ("random", "margin", "cleanlab", "evidence-only", "length")


def standing(output: dict, *, rivals: tuple[str, ...] = DEFAULT_RIVALS, strategy: str = "rlthf") -> list[dict]:
    """One row per budget: the strategy's mean pool accuracy, the best rival's, flips, and the mistake AUCs."""
    acc: dict[tuple[str, float], list[float]] = defaultdict(list)
    flips: dict[float, list[tuple[int, int]]] = defaultdict(list)
    for r in output["results"]:
        acc[r["strategy"], r["budget"]].append(r["label_accuracy"])
        if r["strategy"] == strategy:
            flips[r["budget"]].append((r["flips"], r["flips_correct"]))
    learned: dict[float, list[tuple[float, float, str]]] = defaultdict(list)
    calibrations: dict[float, list[dict]] = defaultdict(list)
    for e in output.get("estimates", []):
        mm = e.get("mistake_model")
        if e["strategy"] == strategy and mm and mm.get("auc") is not None and mm.get("best_signal"):
            learned[e["budget"]].append((mm["auc"], mm["signal_auc"][mm["best_signal"]], mm["best_signal"]))
        if e["strategy"] == strategy and mm and mm.get("calibration"):
            calibrations[e["budget"]].append(mm["calibration"])
    rows = []
    for budget in sorted(b for s, b in acc if s == strategy):
        mine = float(np.mean(acc[strategy, budget]))
        present = [(float(np.mean(acc[r, budget])), r) for r in rivals if (r, budget) in acc]
        best, best_name = max(present) if present else (None, None)
        n_flips = sum(f for f, _ in flips[budget])
        n_right = sum(c for _, c in flips[budget])
        aucs = learned.get(budget, [])
        rows.append({
            "budget": budget, "rlthf": mine, "best_rival": best, "best_rival_name": best_name,
            "margin": None if best is None else mine - best,
            "flips": n_flips, "flips_right": n_right, "flip_precision": n_right / n_flips if n_flips else None,
            "mistake_auc": float(np.mean([a for a, _, _ in aucs])) if aucs else None,
            "best_signal_auc": float(np.mean([b for _, b, _ in aucs])) if aucs else None,
            "best_signals": sorted({name for _, _, name in aucs}),
            **likely_mistakes(pool_calibration(calibrations.get(budget, []))),
        })
    return rows


def likely_mistakes(band: dict | None) -> dict:
    """From pooled calibration bands: the unlabelled pairs the model rates more likely wrong than right (P >= 0.5,
    where flips are made), their mean P and the share gold says is wrong (None without bands)."""
    if band is None:
        return {"likely_pairs": None, "likely_mean_prob": None, "likely_wrong": None}
    upper = [i for i, lo in enumerate(band["edges"][:-1]) if lo >= 0.5]
    n = sum(band["pairs"][i] for i in upper)
    if not n:
        return {"likely_pairs": 0, "likely_mean_prob": None, "likely_wrong": None}
    return {"likely_pairs": n,
            "likely_mean_prob": sum(band["mean_prob"][i] * band["pairs"][i] for i in upper if band["pairs"][i]) / n,
            "likely_wrong": sum(band["mistake_rate"][i] * band["pairs"][i] for i in upper if band["pairs"][i]) / n}


def markdown(name: str, rows: list[dict]) -> str:
    lines = [f"**{name}**", "",
             "| budget | rlthf % | best rival % | margin (points) | flips, right | mistake AUC (model / best single signal) "
             "| P(wrong) >= 0.5: mean P / gold wrong (pairs) |",
             "| --- | --- | --- | --- | --- | --- | --- |"]
    for r in rows:
        rival = "—" if r["best_rival"] is None else f"{100 * r['best_rival']:.1f} ({r['best_rival_name']})"
        margin = "—" if r["margin"] is None else f"{100 * r['margin']:+.1f}"
        flips = f"{r['flips']}, {r['flips_right']}" + (f" ({100 * r['flip_precision']:.0f}%)" if r["flips"] else "")
        auc = "—" if r["mistake_auc"] is None else (
            f"{r['mistake_auc']:.3f} / {r['best_signal_auc']:.3f} ({', '.join(r['best_signals'])})")
        likely = "—" if r["likely_mean_prob"] is None else (
            f"{r['likely_mean_prob']:.2f} / {r['likely_wrong']:.2f} ({r['likely_pairs']})")
        lines.append(f"| {100 * r['budget']:.0f}% | {100 * r['rlthf']:.1f} | {rival} | {margin} | {flips} | {auc} "
                     f"| {likely} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("json", nargs="+", help="files written by rlthf simulate --json")
    parser.add_argument("--rivals", default=",".join(DEFAULT_RIVALS), help="comma-separated strategies to compare with")
    args = parser.parse_args(argv)
    rivals = tuple(s for s in args.rivals.split(",") if s)
    for path in args.json:
        output = json.loads(Path(path).read_text(encoding="utf-8"))
        name = f"{output['dataset']} ({output['ai_labels']}), seeds {sorted({r['seed'] for r in output['results']})}"
        print(markdown(name, standing(output, rivals=rivals)))
        print()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
