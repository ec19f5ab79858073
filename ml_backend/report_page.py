"""The live report page a team lead reads: ``GET /report/<project_id>``, plain HTML with inline SVG, no JavaScript.

It shows what ``/metrics`` holds for one project in a form a person reads: the reward-gap curve with its regions,
the share of AI mistakes along it from the human answers (Wilson intervals), the live estimates, what the mistake
model learned, the budget used and left, the head of the queue with the reason each pair is asked, and how to get
the TRL export. Prompts and responses come from the annotators' data and are untrusted: every text is escaped with
:func:`html.escape` before it reaches the page, so a prompt holding ``<script>`` shows as text.
"""

from __future__ import annotations

import time
from html import escape
from typing import Any, Mapping, Sequence

import numpy as np

from rlthf_selector.pairs import LabelSource
from rlthf_selector.report import mistake_share_along_curve
from rlthf_selector.selection import Region

from ml_backend.state import ProjectState

#: Queued or flipped tasks whose texts the backend keeps in memory for the page (prompt, response A, response B).
TEXTS_KEPT = 200
QUEUE_ROWS = 20
_REGION_COLOURS = {Region.TRUSTED: "#4c9a2a", Region.HELD: "#b0b0b0", Region.HUMAN: "#e0a030", Region.FLIP: "#c03030"}
_ESTIMATES = (
    ("ai_accuracy", "AI accuracy (share of AI labels that are right)"),
    ("pool_accuracy", "accuracy of the labels exported now"),
    ("control_overturn", "humans overturn the AI on random checks"),
    ("queue_precision", "humans overturn the AI on queued pairs"),
    ("queue_minus_control", "queue minus random checks"),
    ("mistake_auc", "mistake model's ranking AUC (random checks)"),
)


def texts_for_report(state: ProjectState, tasks: Sequence[Mapping[str, Any]], *, limit: int = TEXTS_KEPT) -> dict[int, tuple]:
    """The prompt and responses of the tasks the page lists (queued first, by priority, then flipped), by task id.

    Kept in memory by the registry after each training, so the page needs no call to Label Studio.
    """
    if not state.trained:
        return {}
    queued = np.flatnonzero(np.isfinite(state.priority))
    queued = queued[np.argsort(state.priority[queued], kind="stable")]
    flipped = np.flatnonzero((state.label_source == int(LabelSource.FLIPPED)) & (state.human_label == 0))
    wanted = {int(state.task_ids[i]) for i in np.concatenate([queued, flipped])[:limit]}
    out = {}
    for task in tasks:
        tid = task.get("id")
        data = task.get("data")
        if tid in wanted and isinstance(data, Mapping):
            out[int(tid)] = tuple(str(data.get(k, ""))[:2000] for k in ("prompt", "response_a", "response_b"))
    return out


def _short(text: str, limit: int) -> str:
    """``text`` cut to ``limit`` characters, then escaped."""
    text = " ".join(str(text).split())
    return escape(text if len(text) <= limit else text[: limit - 1] + "…")


def _pct(value: float | None, digits: int = 0) -> str:
    return "—" if value is None else f"{100 * value:.{digits}f}%"


def _estimate_cell(est: Mapping[str, Any] | None, *, signed: bool = False, share: bool = True) -> str:
    """``67% [14%, 98%]`` for a share, ``+0.08 [-0.36, +0.38]`` with ``signed``, ``0.71 [0.52, 0.90]`` for an AUC."""
    if not est or est.get("value") is None:
        return "—"
    if not share and est.get("lower") is not None:
        return f"{est['value']:.2f} [{est['lower']:.2f}, {est['upper']:.2f}]"
    if signed:
        return f"{est['value']:+.2f} [{est['lower']:+.2f}, {est['upper']:+.2f}]"
    if est.get("lower") is None:
        return f"{est['value']:.3f}"
    return f"{_pct(est['value'])} [{_pct(est['lower'])}, {_pct(est['upper'])}]"


def curve_svg(state: ProjectState, *, width: int = 860, height: int = 280) -> str:
    """The reward-gap curve (oriented gaps, highest first) over a strip coloured by region, with the human answers
    marked under it (red: the human overturned the AI; grey: agreed). Inline SVG; numbers only, no text from tasks."""
    gap = np.nan_to_num(np.asarray(state.oriented_gap, dtype=np.float64))
    n = gap.shape[0]
    if n == 0:
        return "<p>No curve yet: the project has not been trained.</p>"
    order = np.argsort(-gap, kind="stable")
    sorted_gap = gap[order]
    left, right, top, bottom = 50, 10, 10, 40
    plot_w, plot_h = width - left - right, height - top - bottom
    lo, hi = float(min(sorted_gap.min(), 0.0)), float(max(sorted_gap.max(), 0.0))
    hi = hi if hi > lo else lo + 1.0

    def x_of(i: float) -> float:
        return left + plot_w * i / max(n - 1, 1)

    def y_of(g: float) -> float:
        return top + plot_h * (hi - g) / (hi - lo)

    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" role="img" '
             f'aria-label="reward-gap curve" class="curve">']
    # Region strip: one block per bucket of pairs, coloured by the region most of them are in.
    buckets = np.array_split(np.arange(n), min(n, 300))
    region = np.asarray(state.region)[order]
    for b in buckets:
        if b.size:
            r = Region(int(np.bincount(region[b], minlength=4).argmax()))
            x0, x1 = max(x_of(b[0] - 0.5), left), min(x_of(b[-1] + 0.5), left + plot_w)
            parts.append(f'<rect x="{x0:.1f}" y="{top}" width="{max(x1 - x0, 0.5):.1f}" height="{plot_h}" '
                         f'fill="{_REGION_COLOURS[r]}" fill-opacity="0.15"/>')
    parts.append(f'<line x1="{left}" x2="{left + plot_w}" y1="{y_of(0):.1f}" y2="{y_of(0):.1f}" stroke="#000" '
                 f'stroke-width="0.6"/>')
    step = max(1, n // 800)
    idx = np.unique(np.concatenate([np.arange(0, n, step), [n - 1]]))
    points = " ".join(f"{x_of(i):.1f},{y_of(sorted_gap[i]):.1f}" for i in idx)
    parts.append(f'<polyline points="{points}" fill="none" stroke="#1f4e79" stroke-width="1.5"/>')
    human = np.asarray(state.human_label)[order]
    ai = np.asarray(state.ai_label)[order]
    for i in np.flatnonzero(human != 0):
        colour = "#c03030" if ai[i] != 0 and human[i] != ai[i] else "#808080"
        parts.append(f'<line x1="{x_of(i):.1f}" x2="{x_of(i):.1f}" y1="{top + plot_h + 2}" y2="{top + plot_h + 12}" '
                     f'stroke="{colour}" stroke-width="1.5"/>')
    for g in (lo, 0.0, hi):
        parts.append(f'<text x="{left - 6}" y="{y_of(g) + 4:.1f}" font-size="11" text-anchor="end">{g:.2f}</text>')
    parts.append(f'<text x="{left + plot_w / 2:.0f}" y="{height - 6}" font-size="12" text-anchor="middle">'
                 f'{n} pairs, sorted by reward gap in their label\'s orientation (highest first); ticks below: human '
                 f'answers (red = the AI was wrong)</text>')
    parts.append("</svg>")
    return "".join(parts)


def mistake_share_svg(stretches: Sequence[Mapping[str, Any]], n: int, *, width: int = 860, height: int = 200) -> str:
    """Each stretch's share of AI mistakes (a dot) with its interval (a bar), on the curve's x-axis. Inline SVG."""
    left, right, top, bottom = 50, 10, 10, 30
    plot_w, plot_h = width - left - right, height - top - bottom
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" role="img" '
             f'aria-label="share of AI mistakes along the curve" class="mistake-share">',
             f'<rect x="{left}" y="{top}" width="{plot_w}" height="{plot_h}" fill="none" stroke="#ccc"/>']
    for share in (0.0, 0.5, 1.0):
        y = top + plot_h * (1 - share)
        parts.append(f'<text x="{left - 6}" y="{y + 4:.1f}" font-size="11" text-anchor="end">{100 * share:.0f}%</text>')
    for s in stretches:
        x = left + plot_w * ((s["start"] + s["stop"]) / 2) / max(n, 1)
        if s["share"] is None:
            continue
        y_lo, y_hi, y = (top + plot_h * (1 - s[k]) for k in ("lower", "upper", "share"))
        parts.append(f'<line x1="{x:.1f}" x2="{x:.1f}" y1="{y_lo:.1f}" y2="{y_hi:.1f}" stroke="#c03030"/>')
        parts.append(f'<circle cx="{x:.1f}" cy="{y:.1f}" r="4" fill="#c03030"><title>pairs {s["start"]}-{s["stop"] - 1}: '
                     f'{s["mistakes"]} of {s["known"]} answered</title></circle>')
    parts.append(f'<text x="{left + plot_w / 2:.0f}" y="{height - 8}" font-size="12" text-anchor="middle">'
                 f'share of AI mistakes among the answered pairs, per stretch of the curve</text></svg>')
    return "".join(parts)


def render_report(
    state: ProjectState,
    *,
    status: str,
    texts: Mapping[int, tuple],
    queue_budget: float,
    confidence: float = 0.9,
    label_studio_url: str = "",
) -> str:
    """The whole report page of one project, as an HTML string.

    Parameters
    ----------
    state : ProjectState
    status : str
        The project's training status (ready, training, waiting, error).
    texts : dict of int to (prompt, response_a, response_b)
        :func:`texts_for_report` of the last training; untrusted, escaped here.
    queue_budget : float
        ``BackendConfig.queue_budget``: the cap on each retrain's queue.
    confidence : float
        Of the intervals of the mistake share.
    label_studio_url : str
        For the export command (left as a placeholder when empty).
    """
    pid = state.project_id
    summary = state.summary or {}
    n = int(len(state.task_ids))
    answered = int((state.human_label != 0).sum()) if n else 0
    queue = np.flatnonzero(np.isfinite(state.priority)) if n else np.zeros(0, dtype=np.int64)
    queue = queue[np.argsort(state.priority[queue], kind="stable")]
    known = (state.human_label != 0) & (state.ai_label != 0)
    stretches = (mistake_share_along_curve(state.oriented_gap, state.human_label != state.ai_label, known,
                                           confidence=confidence) if n else [])
    trained = (time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(state.trained_at)) if state.trained_at else "never")
    cap = int(round(queue_budget * n)) if queue_budget < 1 else int(queue_budget)
    flipped = int(((state.label_source == int(LabelSource.FLIPPED)) & (state.human_label == 0)).sum()) if n else 0
    e = escape
    html = [
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">",
        '<meta http-equiv="refresh" content="30">',
        f"<title>RLTHF report: project {pid}</title>",
        "<style>body{font-family:system-ui,sans-serif;max-width:900px;margin:1em auto;color:#222}"
        "table{border-collapse:collapse;margin:.5em 0}td,th{border:1px solid #ccc;padding:3px 6px;text-align:left;"
        "vertical-align:top;font-size:13px}.warn{color:#a04000}code,pre{background:#f4f4f4;padding:2px 4px}"
        ".legend span{display:inline-block;width:12px;height:12px;margin:0 4px 0 12px}</style></head><body>",
        f"<h1>RLTHF report: project {pid}</h1>",
        f"<p>Model version <b>{e(state.model_version or '-')}</b> (retrain {state.iteration}), status "
        f"<b>{e(status)}</b>, last trained {e(trained)}. The page reloads every 30 s.</p>",
        '<h2 id="budget">Budget</h2>',
        f"<p><b>{answered}</b> human answers so far, {_pct(answered / n if n else None, 1)} of {n} tasks. "
        f"<b>{len(queue)}</b> pairs wait in the queue now (each retrain serves at most {cap}, "
        f"<code>RLTHF_QUEUE_BUDGET</code> = {queue_budget:g}); {n - answered} tasks have no human answer. "
        f"{flipped} pairs are exported with the AI label flipped.</p>",
        '<h2 id="curve">Reward-gap curve and regions</h2>',
        '<p class="legend">' + "".join(f'<span style="background:{c};opacity:.4"></span>{e(r.label)} '
                                       f'({int((state.region == int(r)).sum()) if n else 0})'
                                       for r, c in _REGION_COLOURS.items()) + "</p>",
        curve_svg(state),
        '<h2 id="mistakes">AI mistakes along the curve</h2>',
        "<p>From the human answers: in each tenth of the curve, the share of answered pairs where the human overturned "
        f"the AI, with {100 * confidence:.0f}% Wilson intervals. The queue chose most of these pairs, so a stretch's "
        "share describes its answered pairs; the random checks are what speak for the whole pool (live estimates "
        "below). If the method works, the share climbs toward the right.</p>",
        mistake_share_svg(stretches, n) if n else "",
        _stretch_table(stretches),
        '<h2 id="estimates">Live estimates</h2>',
        _estimates_table(summary.get("estimates") or {}),
        *[f'<p class="warn">Warning: {e(w)}</p>' for w in summary.get("estimate_warnings") or []],
        '<h2 id="learned">What the mistake model learned</h2>',
        _mistake_model_html(summary.get("mistake_model") or {}),
        '<h2 id="queue">Head of the queue</h2>',
        _queue_table(state, queue[:QUEUE_ROWS], texts, summary.get("queue_reasons") or {}),
        '<h2 id="export">TRL export</h2>',
        "<p>When the budget is spent, write the data set (human labels first, then flips, then the AI's labels):</p>",
        f"<pre>LABEL_STUDIO_API_KEY=&lt;token&gt; rlthf export --url {e(label_studio_url or '<Label Studio URL>')} "
        f"--project {pid} --out export/</pre>",
        "<p><code>export/preferences.jsonl</code> is the TRL data set (prompt, chosen, rejected, label_source); "
        "<code>export/human_labels.jsonl</code> records each human label and whether it was given blind. "
        "The raw numbers behind this page: <code>GET /metrics</code>.</p>",
        "</body></html>",
    ]
    return "\n".join(html)


def _stretch_table(stretches: Sequence[Mapping[str, Any]]) -> str:
    def share(s: Mapping[str, Any]) -> str:
        return "—" if s["share"] is None else f"{_pct(s['share'])} [{_pct(s['lower'])}, {_pct(s['upper'])}]"

    rows = "".join(f"<tr><td>{s['start']}-{s['stop'] - 1}</td><td>{s['known']}</td><td>{s['mistakes']}</td>"
                   f"<td>{share(s)}</td></tr>" for s in stretches)
    return ("<table><tr><th>curve positions</th><th>human answers</th><th>AI overturned</th><th>share [interval]</th></tr>"
            f"{rows}</table>")


def _estimates_table(estimates: Mapping[str, Mapping[str, Any]]) -> str:
    if not estimates:
        return "<p>No estimates yet: they start with the first answered random check.</p>"
    rows = "".join(
        f"<tr><td>{escape(label)}</td>"
        f"<td>{_estimate_cell(estimates.get(key), signed=key == 'queue_minus_control', share=key != 'mistake_auc')}</td>"
        f"<td>{int((estimates.get(key) or {}).get('n') or 0)}</td></tr>"
        for key, label in _ESTIMATES if key in estimates)
    conf = next((v.get("confidence") for v in estimates.values() if v.get("confidence")), 0.9)
    return (f"<table><tr><th>estimate</th><th>value [{100 * conf:.0f}% interval]</th><th>human answers</th></tr>"
            f"{rows}</table>")


def _mistake_model_html(model: Mapping[str, Any]) -> str:
    if not model:
        return "<p>Not fitted yet.</p>"
    rows = "".join(
        f"<tr><td>{escape(str(w.get('description', w.get('signal', ''))))}</td><td>{w['weight']:+.2f} "
        f"[{w['lower']:+.2f}, {w['upper']:+.2f}]</td><td>{w['prior']:+.2f}</td></tr>" for w in model.get("weights", []))
    return (f"<p>{escape(str(model.get('explanation', '')))}</p>"
            f"<p>{int(model.get('answers', 0))} answers, {int(model.get('mistakes', 0))} of them AI mistakes.</p>"
            "<table><tr><th>signal</th><th>weight (log-odds per s.d.) [interval]</th><th>prior</th></tr>"
            f"{rows}</table>")


def _queue_table(state: ProjectState, head: np.ndarray, texts: Mapping[int, tuple], reasons: Mapping[str, str]) -> str:
    if head.size == 0:
        return "<p>The queue is empty.</p>"
    rows = []
    for i in head:
        tid = int(state.task_ids[i])
        prompt, a, b = texts.get(tid, ("(text shown after the next retrain)", "", ""))
        choice = {1: "A", -1: "B"}.get(int(state.ai_label[i]), "none")
        rows.append(f"<tr><td>{int(state.priority[i])}</td><td>{tid}</td><td>{_short(prompt, 160)}</td>"
                    f"<td>{_short(a, 100)}</td><td>{_short(b, 100)}</td><td>{choice}</td>"
                    f"<td>{escape(str(reasons.get(str(tid), '')))}</td></tr>")
    return ("<table><tr><th>priority</th><th>task</th><th>prompt</th><th>response A</th><th>response B</th>"
            f"<th>AI's choice</th><th>why asked</th></tr>{''.join(rows)}</table>")
