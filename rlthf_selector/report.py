"""Human-readable output: the reward-gap curve as a PNG and the per-iteration table in markdown."""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Sequence

import numpy as np

from rlthf_selector.curve import CurveAnalysis
from rlthf_selector.loop import IterationRecord, LoopResult
from rlthf_selector.selection import Region

_REGION_COLOURS = {Region.TRUSTED: "#4c9a2a", Region.HELD: "#b0b0b0", Region.HUMAN: "#e0a030", Region.FLIP: "#c03030"}


def plot_curve(
    curve: CurveAnalysis,
    path: str | os.PathLike,
    *,
    region: np.ndarray | None = None,
    label_correct: np.ndarray | None = None,
    title: str = "Reward-gap curve",
) -> Path:
    """Write a PNG of the sorted reward gaps with elbow, knee, reflection and the regions shaded.

    Parameters
    ----------
    curve : CurveAnalysis
    path : path of the PNG
    region : ndarray of int8, shape (n,), optional
        Regions per pair (shaded along the curve).
    label_correct : ndarray of bool, shape (n,), optional
        Whether each pair's label is right (simulations): wrong ones are marked in red ticks.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    n = curve.n
    xs = np.arange(n)
    fig, ax = plt.subplots(figsize=(9, 4.8), dpi=110)
    if region is not None and n:
        by_rank = np.asarray(region)[curve.order]
        for r, colour in _REGION_COLOURS.items():
            where = np.flatnonzero(by_rank == r)
            if where.size:
                ax.axvspan(where.min(), where.max() + 1, color=colour, alpha=0.12, lw=0,
                           label=f"{r.label} ({where.size})")
    ax.plot(xs, curve.sorted_gap, color="#1f4e79", lw=1.2, label="reward gap (sorted)")
    if label_correct is not None and n:
        wrong = np.flatnonzero(~np.asarray(label_correct, dtype=bool)[curve.order])
        ax.plot(wrong, curve.sorted_gap[wrong], "|", color="#c03030", ms=6, alpha=0.5,
                label=f"label wrong ({wrong.size})")
    for index, name, colour in ((curve.elbow_index, "elbow", "#2a7a2a"), (curve.knee_index, "knee", "#b07000"),
                                (curve.reflection_index, "reflection", "#a02020")):
        if 0 <= index < n:
            ax.axvline(index, color=colour, ls="--", lw=1)
            ax.annotate(f"{name}\n{index}", (index, curve.sorted_gap[index]), textcoords="offset points",
                        xytext=(4, 8), fontsize=8, color=colour)
    ax.axhline(0, color="black", lw=0.6)
    ax.set_xlabel("pairs, sorted by reward gap (descending)")
    ax.set_ylabel("reward gap in the label's orientation")
    ax.set_title(title)
    ax.legend(loc="lower left", fontsize=8)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path


def _pct(value: float | None) -> str:
    return "—" if value is None else f"{100 * value:.1f}%"


def iteration_table(records: Sequence[IterationRecord], *, ai_accuracy: float | None = None) -> str:
    """A markdown table with one row per iteration (the last row is the final labeling)."""
    lines = [
        "| iteration | α | β | humans asked (control) | humans total | flips (right) | trusted | held | human band | "
        "flip region | AI accuracy, live | queue − control, live | pool accuracy | seconds |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    if ai_accuracy is not None:
        lines.append(f"| AI judge only | | | 0 | 0 | 0 | | | | | | | {_pct(ai_accuracy)} | |")
    last = len(records) - 1
    for i, r in enumerate(records):
        name = "final" if i == last else str(r.iteration + 1)
        flips = f"{r.flips}" + (f" ({r.flips_correct})" if r.flips_correct is not None else "")
        asked = f"{r.human_asked} ({r.control_asked})" if r.human_asked else "0"
        live_ai = _interval_pct(r.estimates.get("ai_accuracy"))
        live_gain = _interval_signed(r.estimates.get("queue_minus_control"))
        lines.append(
            f"| {name} | {r.alpha:g} | {r.beta:g} | {asked} | {r.human_total} | {flips} | "
            f"{r.regions['trusted']} | {r.regions['held']} | {r.regions['human']} | {r.regions['flip']} | "
            f"{live_ai} | {live_gain} | {_pct(r.pool_accuracy)} | {r.seconds:.2f} |"
        )
    return "\n".join(lines)


def _interval_pct(est: dict | None) -> str:
    """``81% [74, 87]`` from an estimate's dict; — when there is none."""
    if not est or est.get("value") is None:
        return "—"
    return f"{100 * est['value']:.0f}% [{100 * est['lower']:.0f}, {100 * est['upper']:.0f}]"


def _interval_signed(est: dict | None) -> str:
    if not est or est.get("value") is None:
        return "—"
    return f"{est['value']:+.2f} [{est['lower']:+.2f}, {est['upper']:+.2f}]"


def _reflection_text(curve: CurveAnalysis) -> str:
    """The reflection point in words; with no geometric flip region (``CurveConfig.reflection = 'none'``, or a
    reflection past the last pair) it says so instead of printing a threshold of -inf."""
    if curve.reflection_index >= curve.n or not np.isfinite(curve.reflection_gap):
        return "no reflection point (no geometric flips)"
    return f"reflection {curve.reflection_index} (gap {curve.reflection_gap:.3f})"


def write_report(
    result: LoopResult,
    out_dir: str | os.PathLike,
    *,
    title: str = "RLTHF run",
    ai_accuracy: float | None = None,
    extra_lines: Sequence[str] = (),
) -> Path:
    """Write ``report.md`` and ``curve.png`` for a finished loop into ``out_dir``."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    gold = result.pairs.gold_label
    correct = (result.labels == gold) if (gold != 0).all() else None
    plot_curve(result.final_step.curve, out / "curve.png", region=result.final_step.region,
               label_correct=correct, title=f"{title}: final reward-gap curve")
    curve = result.final_step.curve
    lines = [f"# {title}", "", *extra_lines, "", "## Iterations", "",
             iteration_table(result.records, ai_accuracy=ai_accuracy), "",
             "## Final curve", "", "![curve](curve.png)", "",
             f"- detector: {curve.detector}; elbow {curve.elbow_index} (gap {curve.elbow_gap:.3f}), "
             f"knee {curve.knee_index} (gap {curve.knee_gap:.3f}), " + _reflection_text(curve)]
    lines += [f"- warning: {w}" for w in curve.warnings]
    lines += ["", "## Live estimates", ""]
    if result.estimates:
        lines += ["From the human answers to the control draws (pairs drawn uniformly at random, "
                  "`LoopConfig.control_share` of each batch) beside those to the queue; the AI's accuracy, the queue's "
                  "precision and the mistake model's ranking are measured, not assumed.", "",
                  live_estimates_markdown(result.estimates, warnings=result.warnings)]
    else:
        lines += ["No control draws were answered (`LoopConfig.control_share` is 0 or no human was asked), so "
                  "nothing checks whether the queue finds the AI's mistakes better than chance."]
    mistakes = result.final_step.mistakes
    if mistakes is not None:
        lines += ["", "## What the mistake model learned", "", mistakes.model.explain(), "",
                  mistake_weights_markdown(mistakes.model.weights())]
    path = out / "report.md"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


# ----------------------------------------------------------------------------------------------
# Live estimates (rlthf_selector.estimates) and the mistake model (rlthf_selector.mistakes)
# ----------------------------------------------------------------------------------------------
_ESTIMATE_NAMES = {
    "ai_accuracy": "AI accuracy",
    "control_overturn": "humans overturn the AI: control",
    "queue_precision": "humans overturn the AI: targeted queue",
    "queue_minus_control": "queue minus control",
    "mistake_auc": "mistake model's ranking AUC (control draws)",
    "pool_accuracy": "exported pool accuracy",
}


def _interval(est: dict) -> str:
    if est.get("value") is None:
        return "—"
    if est.get("lower") is None:
        return f"{est['value']:.3f}"
    return f"{est['value']:.3f} [{est['lower']:.3f}, {est['upper']:.3f}]"


def live_estimates_markdown(estimates: dict, *, warnings: Sequence[str] = (), truth: dict | None = None) -> str:
    """One run's live estimates as a markdown table, then the plain-words warnings.

    Parameters
    ----------
    estimates : dict of str to Estimate or dict
        From :func:`rlthf_selector.estimates.live_estimates` (``Estimate`` objects or their dicts).
    warnings : list of str
        E.g. :attr:`rlthf_selector.loop.LoopResult.warnings`.
    truth : dict of str to float, optional
        True values (simulations), shown beside the estimates.
    """
    rows = {k: (v.to_dict() if hasattr(v, "to_dict") else v) for k, v in estimates.items()}
    conf = next((r["confidence"] for r in rows.values() if r.get("confidence")), 0.9)
    head = f"| estimate | value [{100 * conf:.0f}% interval] | human answers | method |" + (" truth |" if truth else "")
    lines = [head, "| --- | --- | --- | --- |" + (" --- |" if truth else "")]
    names = [k for k in _ESTIMATE_NAMES if k in rows] + sorted(k for k in rows if k not in _ESTIMATE_NAMES)
    for name in names:
        r = rows[name]
        label = _ESTIMATE_NAMES.get(name, name.replace("precision:", "overturn rate, arm "))
        cell = f"| {label} | {_interval(r)} | {r.get('n', 0)} | {r.get('method', '')} |"
        if truth:
            t = truth.get(name)
            cell += " — |" if t is None else f" {t:.3f} |"
        lines.append(cell)
    for w in warnings:
        lines += ["", f"**Warning:** {w}"]
    return "\n".join(lines)


def mistake_weights_markdown(weights: Sequence[dict]) -> str:
    """The mistake model's weights (:meth:`rlthf_selector.mistakes.MistakeModel.weights`) as a markdown table."""
    lines = ["| signal | weight (log-odds per s.d.) [90% interval] | prior |", "| --- | --- | --- |"]
    for w in weights:
        description = w["description"].replace("|", "\\|")  # |gap| must not end the cell
        lines.append(f"| {description} | {w['weight']:+.2f} [{w['lower']:+.2f}, {w['upper']:+.2f}] | "
                     f"{w['prior']:+.2f} |")
    return "\n".join(lines)


def estimates_markdown(records: Sequence[dict]) -> str:
    """The ``estimates`` records of ``rlthf simulate`` (one per strategy, budget and seed): each live estimate beside
    the truth, how often the truth fell inside the interval, the flips' precision, and the warnings in plain words."""
    if not records:
        return ""
    conf = next((e["confidence"] for r in records for e in r["estimates"].values() if e.get("confidence")), 0.9)
    records = [r for r in records if r.get("estimates")]
    if not records:
        return ""
    key = ("ai_accuracy", "queue_precision", "control_overturn", "mistake_auc", "pool_accuracy")
    lines = [f"Live estimates [{100 * conf:.0f}% interval] beside the truth (from gold), for the strategies whose batches "
             f"carry control draws:", "",
             "| strategy | budget | seed | AI accuracy (truth) | queue / control overturn | mistake AUC | "
             "pool accuracy (truth) | mistake model AUC on unlabelled pairs (best single signal) |",
             "| --- | --- | --- | --- | --- | --- | --- | --- |"]
    strategies = list(dict.fromkeys(r["strategy"] for r in records))
    covered: dict[str, dict[str, list[bool]]] = {s: {k: [] for k in key} for s in strategies}
    for r in records:
        e = r["estimates"]
        for k in key:
            if k in e and e[k].get("covered") is not None:
                covered[r["strategy"]][k].append(bool(e[k]["covered"]))

        def with_truth(k: str) -> str:
            if k not in e:
                return "—"
            t = e[k].get("truth")
            return _interval(e[k]) + ("" if t is None else f" ({t:.3f})")

        q, c = e.get("queue_precision", {}), e.get("control_overturn", {})
        qc = f"{_fmt(q.get('value'))} / {_fmt(c.get('value'))}"
        mm = r.get("mistake_model")
        learned = "—"
        if mm and mm.get("auc") is not None and mm.get("best_signal"):
            learned = f"{mm['auc']:.3f} ({mm['best_signal']} {mm['signal_auc'][mm['best_signal']]:.3f})"
        lines.append(f"| {r['strategy']} | {100 * r['budget']:.0f}% | {r['seed']} | {with_truth('ai_accuracy')} | {qc} | "
                     f"{with_truth('mistake_auc')} | {with_truth('pool_accuracy')} | {learned} |")
    for strategy in strategies:
        lines += ["", f"Truth inside the interval, `{strategy}`: " + "; ".join(
            f"{_ESTIMATE_NAMES[k]} {sum(v)}/{len(v)}" for k, v in covered[strategy].items() if v) + "."]
    seen: dict[tuple[str, str], int] = {}
    for r in records:
        for w in r.get("warnings", []):
            gist = min((w.split(sep)[0] for sep in (". ", ": ", "; ")), key=len).rstrip(".")
            gist = re.sub(r"\s*\([^)]*\)", "", gist)  # counts in brackets differ from run to run
            seen[r["strategy"], gist] = seen.get((r["strategy"], gist), 0) + 1
    runs = {s: sum(r["strategy"] == s for r in records) for s in strategies}
    for (strategy, gist), count in seen.items():
        lines += ["", f"**Warning** (`{strategy}`, {count} of {runs[strategy]} runs): {gist}."]
    return "\n".join(lines)


def _fmt(x: float | None) -> str:
    return "—" if x is None else f"{x:.3f}"
