"""Human-readable output: the reward-gap curve as a PNG and the per-iteration table in markdown."""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any, Sequence

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
    mistake_share: Sequence[dict] | None = None,
    mistake_source: str = "gold",
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
    mistake_share : list of dict, optional
        :func:`mistake_share_along_curve`: drawn in a second panel under the curve, on the same x-axis.
    mistake_source : str
        Where the mistakes are known from, for the legend ("gold", "human answers").
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    n = curve.n
    xs = np.arange(n)
    if mistake_share is None:
        fig, ax = plt.subplots(figsize=(9, 4.8), dpi=110)
    else:
        fig, (ax, share_ax) = plt.subplots(2, 1, figsize=(9, 7.2), dpi=110, sharex=True,
                                           gridspec_kw={"height_ratios": [2, 1]})
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
    if mistake_share is not None:
        plot_mistake_share(share_ax, mistake_share, source=mistake_source)
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
    stretches, source = run_mistake_share(result)
    plot_curve(result.final_step.curve, out / "curve.png", region=result.final_step.region,
               label_correct=correct, title=f"{title}: final reward-gap curve", mistake_share=stretches,
               mistake_source=source)
    curve = result.final_step.curve
    lines = [f"# {title}", "", *extra_lines, "", "## Iterations", "",
             iteration_table(result.records, ai_accuracy=ai_accuracy), "",
             "## Final curve", "", "![curve](curve.png)", "",
             f"- detector: {curve.detector}; elbow {curve.elbow_index} (gap {curve.elbow_gap:.3f}), "
             f"knee {curve.knee_index} (gap {curve.knee_gap:.3f}), " + _reflection_text(curve)]
    lines += [f"- warning: {w}" for w in curve.warnings]
    lines += ["", "## AI mistakes along the curve", "", mistake_share_markdown(stretches, source=source)]
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
    lines += calibration_markdown(records)
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


def pool_calibration(calibrations: Sequence[dict]) -> dict[str, Any] | None:
    """Sum the ``calibration`` bands of several runs (``rlthf simulate``'s mistake-model reports, one set of edges):
    the pairs per band, their mean P(AI label wrong) and the share gold says is wrong, None for an empty band.
    None when no run has bands."""
    calibrations = [c for c in calibrations if c and c.get("pairs")]
    if not calibrations:
        return None
    edges = calibrations[0]["edges"]
    if any(c["edges"] != edges for c in calibrations):
        raise ValueError("calibration bands with different edges cannot be pooled")
    pairs = np.sum([c["pairs"] for c in calibrations], axis=0)
    prob = np.sum([[0.0 if m is None else m * n for m, n in zip(c["mean_prob"], c["pairs"])] for c in calibrations], 0)
    wrong = np.sum([[0.0 if r is None else r * n for r, n in zip(c["mistake_rate"], c["pairs"])] for c in calibrations],
                   axis=0)
    return {"edges": list(edges), "pairs": [int(n) for n in pairs],
            "mean_prob": [float(p / n) if n else None for p, n in zip(prob, pairs)],
            "mistake_rate": [float(w / n) if n else None for w, n in zip(wrong, pairs)]}


def calibration_markdown(records: Sequence[dict]) -> list[str]:
    """The mistake model's P(AI label wrong) on the pairs no human labelled beside gold, per strategy and budget,
    pooled over seeds (the ``calibration`` of each record's ``mistake_model``); no lines without any."""
    pooled: dict[tuple[str, float], list[dict]] = {}
    for r in records:
        calibration = (r.get("mistake_model") or {}).get("calibration")
        if calibration:
            pooled.setdefault((r["strategy"], r["budget"]), []).append(calibration)
    if not pooled:
        return []
    edges = next(iter(pooled.values()))[0]["edges"]
    bands = [f"{lo:g}-{hi:g}" for lo, hi in zip(edges[:-1], edges[1:])]
    lines = ["", "The mistake model's P(AI label wrong) on the pairs no human labelled, beside gold, seeds pooled "
             "(mean P / share wrong, pairs), by band of P:", "",
             "| strategy | budget | " + " | ".join(bands) + " |", "| --- | --- |" + " --- |" * len(bands)]
    for (strategy, budget), calibrations in pooled.items():
        band = pool_calibration(calibrations)
        cells = [f"{_fmt(m)} / {_fmt(w)}, {n}" if n else "—"
                 for m, w, n in zip(band["mean_prob"], band["mistake_rate"], band["pairs"])]
        lines.append(f"| {strategy} | {100 * budget:.0f}% | " + " | ".join(cells) + " |")
    return lines


def _fmt(x: float | None) -> str:
    return "—" if x is None else f"{x:.3f}"


# ----------------------------------------------------------------------------------------------
# The share of AI mistakes along the curve
# ----------------------------------------------------------------------------------------------
def mistake_share_along_curve(
    oriented_gap: np.ndarray,
    wrong: np.ndarray,
    known: np.ndarray,
    *,
    bins: int = 10,
    confidence: float = 0.9,
) -> list[dict]:
    """The share of AI mistakes in each stretch of the reward-gap curve, with Wilson intervals.

    The pairs are sorted by their oriented reward gap, descending (the curve's x-axis, as ``analyze_curve`` sorts), and cut
    into ``bins`` stretches of equal size. In each, the share of the pairs whose AI label is ``wrong`` among those
    where it is ``known``. If the method works, the share climbs toward the curve's tail.

    Parameters
    ----------
    oriented_gap : ndarray of float, shape (n,)
        The gap in each pair's current label's orientation (:attr:`rlthf_selector.loop.StepResult.oriented_gap`).
    wrong : ndarray of bool, shape (n,)
        The AI label is wrong (read only where ``known``).
    known : ndarray of bool, shape (n,)
        Whether it is known: from gold in a simulation (every pair), from a human answer in Label Studio (the
        answered pairs only, which the queue chose, so a stretch's share describes its answered pairs, not every
        pair in it).
    bins : int
    confidence : float
        Two-sided coverage of the intervals.

    Returns
    -------
    list of dict
        One per stretch, along the curve: ``start``, ``stop`` (curve positions, ``stop`` exclusive), ``pairs``,
        ``known``, ``mistakes``, ``share`` (None without a known pair), ``lower``, ``upper``.
    """
    from rlthf_selector.intervals import wilson_interval

    gap = np.asarray(oriented_gap, dtype=np.float64)
    wrong = np.asarray(wrong, dtype=bool)
    known = np.asarray(known, dtype=bool)
    n = gap.shape[0]
    if wrong.shape != (n,) or known.shape != (n,):
        raise ValueError(f"wrong and known must have the shape of oriented_gap ({n},), got {wrong.shape} and {known.shape}")
    if bins < 1:
        raise ValueError(f"bins must be at least 1, got {bins}")
    order = np.argsort(-np.nan_to_num(gap, nan=-np.inf), kind="stable")
    edges = np.unique(np.linspace(0, n, min(bins, max(n, 1)) + 1).round().astype(np.int64))
    out = []
    for start, stop in zip(edges[:-1], edges[1:]):
        where = order[start:stop]
        k = int(known[where].sum())
        m = int((wrong[where] & known[where]).sum())
        lower, upper = wilson_interval(m, k, confidence=confidence)  # few answers a stretch: not the normal interval
        out.append({"start": int(start), "stop": int(stop), "pairs": int(stop - start), "known": k, "mistakes": m,
                    "share": (m / k) if k else None, "lower": lower, "upper": upper})
    return out


def mistake_share_markdown(stretches: Sequence[dict], *, source: str, confidence: float = 0.9) -> str:
    """:func:`mistake_share_along_curve` as a markdown table, headed by where the answers come from (``source``)."""
    lines = [f"Share of AI mistakes along the curve ({source}), pairs sorted by reward gap, highest first; "
             f"{100 * confidence:.0f}% Wilson intervals.", "",
             "| curve positions | pairs | known | AI mistakes | share [interval] |", "| --- | --- | --- | --- | --- |"]
    for s in stretches:
        share = "—" if s["share"] is None else f"{100 * s['share']:.0f}% [{100 * s['lower']:.0f}, {100 * s['upper']:.0f}]"
        lines.append(f"| {s['start']}-{s['stop'] - 1} | {s['pairs']} | {s['known']} | {s['mistakes']} | {share} |")
    return "\n".join(lines)


def plot_mistake_share(ax, stretches: Sequence[dict], *, source: str) -> None:
    """Draw :func:`mistake_share_along_curve` on a matplotlib axis: each stretch's share with its interval."""
    have = [s for s in stretches if s["share"] is not None]
    centre = [(s["start"] + s["stop"]) / 2 for s in have]
    share = np.asarray([s["share"] for s in have])
    lower = share - np.asarray([s["lower"] for s in have])
    upper = np.asarray([s["upper"] for s in have]) - share
    if have:
        ax.errorbar(centre, 100 * share, yerr=[100 * lower, 100 * upper], fmt="o-", color="#c03030", ms=4, capsize=3,
                    lw=1, label=f"AI mistakes ({source})")
        ax.legend(loc="upper left", fontsize=8)
    ax.set_ylim(0, 100)
    ax.set_ylabel("AI mistakes, %")
    ax.set_xlabel("pairs, sorted by reward gap (descending)")


def run_mistake_share(result: LoopResult, *, bins: int = 10) -> tuple[list[dict], str]:
    """The share of AI mistakes along a finished loop's final curve, and where it is known from: gold where every pair
    has one (simulations, the demo), else the human answers.

    Returns
    -------
    stretches : list of dict
        :func:`mistake_share_along_curve` over the final step's oriented gaps.
    source : str
        "gold" or "human answers".
    """
    pairs = result.pairs
    ai = np.asarray(pairs.ai_label)
    gold = np.asarray(pairs.gold_label)
    if (gold != 0).all():
        truth, source = gold, "gold"
    else:
        truth, source = np.asarray(pairs.human_label), "human answers"
    known = (truth != 0) & (ai != 0)
    return mistake_share_along_curve(result.final_step.oriented_gap, ai != truth, known, bins=bins), source
