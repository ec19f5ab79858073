"""Render benchmarks/README.md, and the project README's standing table, from benchmarks/results/.

No figure is ever typed by hand.

Every table is computed from the JSON files the tools wrote (`rlthf simulate --json`, `bench_iteration.py`,
`bench_backend_selection.py`, and any other `bench*.json`). The words around them live here; history lives in git.

    .venv/bin/python benchmarks/render_readme.py            # rewrite both
    .venv/bin/python benchmarks/render_readme.py --check    # exit 1 if a file is not what the results give
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import defaultdict
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from standing import DEFAULT_RIVALS, markdown as standing_markdown, standing  # noqa: E402

RESULTS = HERE / "results"
README = HERE / "README.md"
PROJECT_README = HERE.parent / "README.md"
STANDING_START, STANDING_END = "<!-- standing:start -->", "<!-- standing:end -->"
BUDGETS_SHOWN = (0.02, 0.04, 0.06, 0.08, 0.10)

# The simulate runs, in the order the README shows them: file stem -> (title, short name, what the data and judge are).
SIMULATE_RUNS = {
    "pandalm-gpt35": ("PandaLM, real GPT-3.5 labels, PandaLM-7B as the second judge", "PandaLM, GPT-3.5 + a second judge",
                      "Gold is the majority of three human votes (ties dropped); PandaLM-7B's verdict is the second "
                      "judge, one of the mistake model's signals."),
    "pandalm-gpt35-no-evidence": ("PandaLM, real GPT-3.5 labels, no judge evidence (`--no-evidence`)", "PandaLM, GPT-3.5 alone",
                                  "The same pairs with every judge-evidence field dropped before any strategy sees it. The AI's "
                                  "verdicts stay, and with them the signal of its other verdicts on the same prompt."),
    "pandalm-7b": ("PandaLM, real PandaLM-7B labels, GPT-3.5 as the second judge (`--ai-labels pandalm-7b`)", "PandaLM, PandaLM-7B + a second judge",
                   "The weaker judge labels; GPT-3.5's verdict is the second judge."),
    "hh-harmless-uniform25": ("HH-RLHF harmless-base, uniform 25% noise", "HH-RLHF harmless, 25% random errors",
                              "A simulated judge that flips a quarter of the gold labels at random: no signal but the "
                              "reward model's."),
    "hh-harmless-length-bias": ("HH-RLHF harmless-base, length-biased judge", "HH-RLHF harmless, length-biased judge",
                                "A simulated judge that prefers the longer response; the reward model learns its bias."),
}

# What the mistake-model issue asks (its targets, not measurements), checked against the files.
TOLERANCE = 0.003
PANDALM_AT_6 = 0.855
PANDALM_7B_BEFORE = {0.02: 0.828, 0.06: 0.845, 0.10: 0.864}

# How the defaults were chosen: each variant is a code change, rerun at its commit; the figures are in this
# file's history at HISTORY_COMMIT, or in the message of the commit given in the last column.
CHOICES = [
    ("signals", "the reward gap, its weak agreement (-max(gap, 0)), the length cue, each judge-evidence field", "cleanlab's self-confidence, the curve region as columns; \\|gap\\| for the weak agreement", "0710554, 2fab107"),
    ("other verdicts on the prompt", "net wins from the prompt's other pairs, each judged by its human answer or else the AI; prior weight 0.8", "the AI's verdicts only; prior weight 0.5 or 0.3", "60c5368"),
    ("prior width", "every width on a grid, weighted by its Laplace evidence", "one fixed width; the single best width", "57bbb53, 3f2a676"),
    ("queue order", "the chance an answer changes the final label, counting the flips to come", "P(wrong); min(P, 1 - P)", "8d6ad8f, c43d660, 3d3be7e"),
    ("flips to come", "k answers to come add k times the pool's mean Fisher information to the posterior precision", "the covariance shrunk by n / (n + k)", "3080ddb"),
    ("flip confidence", "one-sided 90%", "80%, 85%", "c43d660, 08a1012"),
    ("flip bound", "above one half under the evidence-weighted mixture and under the tightest prior width", "under every prior width; under the mixture only", "c32f493, 6d85887"),
]
HISTORY_COMMIT = "8d95fdf"


def _load(path: Path) -> dict:
    return json.loads(path.read_text(encoding="utf-8"))


def _pct(x: float | None, digits: int = 1) -> str:
    return "—" if x is None else f"{100 * x:.{digits}f}"


def _seeds(output: dict) -> list[int]:
    return sorted({r["seed"] for r in output["results"]})


def run_table(output: dict) -> str:
    """Strategies down, budgets across: mean pool label accuracy % ± s.d. over seeds, and rlthf's flips."""
    acc: dict[tuple[str, float], list[float]] = defaultdict(list)
    flips: dict[tuple[str, float], list[tuple[int, int]]] = defaultdict(list)
    strategies: list[str] = []
    for r in output["results"]:
        if r["strategy"] not in strategies:
            strategies.append(r["strategy"])
        acc[r["strategy"], r["budget"]].append(r["label_accuracy"])
        flips[r["strategy"], r["budget"]].append((r["flips"], r["flips_correct"]))
    budgets = sorted({b for _, b in acc})
    lines = ["| strategy | " + " | ".join(f"{100 * b:.0f}%" for b in budgets) + " |",
             "| --- |" + " --- |" * len(budgets)]
    for s in strategies:
        cells = []
        for b in budgets:
            values = acc.get((s, b))
            if not values:
                cells.append("—")
                continue
            cell = f"{100 * np.mean(values):.1f} ± {100 * np.std(values):.1f}"
            made = sum(f for f, _ in flips[s, b])
            if made:
                cell += f" (flips {sum(c for _, c in flips[s, b])}/{made} right)"
            cells.append(cell)
        lines.append(f"| `{s}` | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def criteria(outputs: dict[str, dict]) -> str:
    """The mistake-model issue's bar, each line checked against the runs that hold it."""
    rows = []

    def at(stem: str) -> dict[float, dict] | None:
        if stem not in outputs:
            return None
        rivals = DEFAULT_RIVALS if not stem.startswith("hh-") else ("random", "margin", "cleanlab")
        return {round(r["budget"], 4): r for r in standing(outputs[stem], rivals=rivals)}

    def margins(stem: str, budgets: tuple[float, ...]) -> tuple[str, bool] | None:
        table = at(stem)
        if table is None or any(b not in table or table[b]["margin"] is None for b in budgets):
            return None
        got = [table[b]["margin"] for b in budgets]
        return " / ".join(f"{100 * m:+.1f}" for m in got) + " points", all(m >= -TOLERANCE for m in got)

    def row(setting: str, criterion: str, result: tuple[str, bool] | None) -> None:
        if result is not None:
            rows.append(f"| {setting} | {criterion} | {result[0]} | {'yes' if result[1] else 'no'} |")

    row("PandaLM / GPT-3.5", "ahead of random, margin, cleanlab, evidence-only, length at 2-10%",
        margins("pandalm-gpt35", BUDGETS_SHOWN))
    table = at("pandalm-gpt35")
    if table and 0.06 in table:
        got = table[0.06]["rlthf"]
        row("PandaLM / GPT-3.5", f"at least {_pct(PANDALM_AT_6)}% at 6%", (f"{_pct(got)}%", got >= PANDALM_AT_6 - TOLERANCE))
    table = at("pandalm-7b")
    if table and all(b in table for b in PANDALM_7B_BEFORE):
        got = [table[b]["rlthf"] for b in PANDALM_7B_BEFORE]
        row("PandaLM / PandaLM-7B", "no worse than " + " / ".join(_pct(v) for v in PANDALM_7B_BEFORE.values()) + "% at 2/6/10%",
            (" / ".join(_pct(v) for v in got) + "%",
             all(g >= v - TOLERANCE for g, v in zip(got, PANDALM_7B_BEFORE.values()))))
    row("PandaLM / GPT-3.5, `--no-evidence`", "at least the best of random, margin, cleanlab, length at 2/6/10%",
        margins("pandalm-gpt35-no-evidence", (0.02, 0.06, 0.10)))
    for stem, name in (("hh-harmless-uniform25", "HH harmless, uniform 25%"), ("hh-harmless-length-bias", "HH harmless, length-bias")):
        row(name, "at least the best of random, margin, cleanlab at 2/6/10%", margins(stem, (0.02, 0.06, 0.10)))
    auc_parts, auc_ok, flip_parts, flip_ok = [], True, [], True
    for stem in SIMULATE_RUNS:
        table = at(stem)
        if table is None:
            continue
        six = table.get(0.06)
        if six and six["mistake_auc"] is not None:
            auc_parts.append(f"{stem} {six['mistake_auc']:.3f} vs {six['best_signal_auc']:.3f}")
            auc_ok &= six["mistake_auc"] >= six["best_signal_auc"]
        made = sum(r["flips"] for r in table.values())
        right = sum(r["flips_right"] for r in table.values())
        worst = min((r["flip_precision"] for r in table.values() if r["flips"]), default=None)
        flip_parts.append(f"{stem} {right}/{made}" + ("" if worst is None else f" (worst budget {_pct(worst, 0)}%)"))
        flip_ok &= worst is None or worst >= 0.6
    if auc_parts:
        row("every setting", "the model's mistake AUC on unlabelled pairs at 6% at least the best single signal's",
            ("; ".join(auc_parts), auc_ok))
    if flip_parts:
        row("every setting", "at least 60% of flips right at every budget", ("; ".join(flip_parts), flip_ok))
    return "\n".join(["| setting | criterion | measured | met? |", "| --- | --- | --- | --- |", *rows])


def simulate_section(stem: str, output: dict) -> list[str]:
    title, _, about = SIMULATE_RUNS.get(stem, (stem, stem, ""))
    files = [f"[`{stem}.json`](results/{stem}.json)"]
    files += [f"[`{stem}{ext}`](results/{stem}{ext})" for ext in (".md", ".png") if (RESULTS / f"{stem}{ext}").exists()]
    lines = [f'<a id="{stem}"></a>', "", f"### {title}", "",
             f"{about} {output['n_pairs']} pairs, AI labels {output['ai_labels']} "
             f"({_pct(output['ai_label_accuracy'])}% right), features {output['featurizer']}, seeds {_seeds(output)}; "
             f"{output['seconds']} s on {output['machine']}. Files: {', '.join(files)}.".strip(), "",
             f"`{output['command']}`", "", run_table(output), ""]
    if (RESULTS / f"{stem}.png").exists():
        lines += [f"![{stem}](results/{stem}.png)", ""]
    return lines


def scale_section(path: Path, output: dict) -> list[str]:
    lines = [f"### `{path.name}`", ""]
    if "command" in output:
        lines += [f"`{output['command']}`" + (f" on {output['machine']}" if "machine" in output else ""), ""]
    if "seconds_by_n" in output and "peak_rss_mb_by_n" in output:  # bench_iteration.py: one row a pool size
        ratio = output.get("time_ratio", {})
        lines += [f"One iteration, {output.get('featurizer', '?')} features (d = {output.get('feature_dim', '?')}), "
                  f"median of the runs; each size in a fresh process:", "",
                  "| pairs | seconds | peak RSS MB | time against the size before |", "| --- | --- | --- | --- |"]
        sizes = sorted(output["seconds_by_n"], key=int)
        for before, n in zip([None, *sizes], sizes):
            step = ratio.get(f"{before}->{n}") if before else None
            lines.append(f"| {int(n):,} | {output['seconds_by_n'][n]} | {output['peak_rss_mb_by_n'].get(n, '—')} | "
                         f"{'—' if step is None else f'{step}x'} |")
        return lines + [""]
    body = {k: v for k, v in output.items() if k not in ("command", "machine")}
    lines += ["```json", json.dumps(body, indent=None, sort_keys=True), "```", ""]
    return lines


def backend_section(path: Path, output: dict) -> list[str]:
    dropped = "" if output.get("evidence_in_task_data", True) else ", judge evidence dropped (`--no-evidence`)"
    return [f"**{output['dataset']} ({output['ai_labels']}){dropped}** "
            f"({output['seconds']} s on {output['machine']}; [`{path.name}`](results/{path.name}))", "",
            f"`{output['command']}`", "", output["table"], ""]


def render(results: Path = RESULTS) -> str:
    simulate = {p.stem: _load(p) for p in sorted(results.glob("*.json")) if not p.stem.startswith(("bench", "backend-"))}
    ordered = [s for s in SIMULATE_RUNS if s in simulate] + sorted(s for s in simulate if s not in SIMULATE_RUNS)
    lines = [
        "# Benchmarks",
        "",
        "<!-- Rendered by `benchmarks/render_readme.py` from `benchmarks/results/`; edit the script, not this file. -->",
        "",
        "`rlthf simulate` runs RLTHF and its rivals side by side on real preference data with a simulated human who",
        "answers with gold. Every figure below is computed from the JSON files the tools wrote into `results/`;",
        "rerun a command, then `benchmarks/render_readme.py`, and this page follows. The reward model trains on AI labels",
        "and, inside the loop, human answers only; gold is read only by the simulated human and the scoring. 20% of",
        "each data set is held out for the reward model's accuracy, so the pool is the other 80%.",
        "",
        "| strategy | what it asks |",
        "| --- | --- |",
        "| `rlthf` | the mistake model's queue, with its flips and control draws (3 iterations) |",
        "| `rlthf-one-shot` | the same in one iteration |",
        "| `rlthf-paper` | the paper's procedure (`--selection-method paper`): the knee-to-reflection band, lowest gap first; flips beyond the reflection |",
        "| `random`, `margin`, `cleanlab` | uniform draws; the smallest \\|gap\\|; cleanlab's label issues, least self-confident first |",
        "| `evidence-only`, `length` | the judge's own doubt alone; the pairs where the AI chose the shorter response |",
        "| `ai-only`, `self-improve`, `all-human` | no human; the loop with no human; every pair asked |",
        "",
        "## Where we stand",
        "",
        f"`rlthf`'s pool label accuracy beside the best rival's (mean of seeds; rivals {', '.join(DEFAULT_RIVALS)}; on "
        "HH-RLHF, where no judge evidence exists, the same list), its flips summed over seeds, and the mistake model's",
        "AUC on the pairs no human labelled beside the best single signal's on the same pairs (`benchmarks/standing.py`).",
        "The last column is the model's calibration where it counts: the unlabelled pairs it rates more likely wrong than",
        "right (P(wrong) >= 0.5, the only pairs it may flip), their mean P(wrong) and the share gold says is wrong,",
        "seeds pooled. Each run's `.md` file has every band.",
        "",
    ]
    for stem in ordered:
        output = simulate[stem]
        name = f"{SIMULATE_RUNS.get(stem, (stem,))[0]}, seeds {_seeds(output)}"
        lines += [standing_markdown(name, standing(output)), ""]
    lines += ["Against the bar of the mistake-model issue (0.3 points of tolerance for seed noise):", "",
              criteria(simulate), "",
              "## How the defaults were chosen", "",
              "Each variant is a code change measured with `rlthf simulate --strategies rlthf --budgets 0.02,0.06,0.1` "
              "on the five settings below;",
              f"rerun it at the commit named. The figures are in git: `git show {HISTORY_COMMIT}:benchmarks/README.md`, "
              "section \"How selection was chosen\", and for later rows in the commit messages.", "",
              "| choice | default | tried instead | commits |", "| --- | --- | --- | --- |",
              *[f"| {a} | {b} | {c} | `{d}` |" for a, b, c, d in CHOICES], "",
              "## Runs", ""]
    for stem in ordered:
        lines += simulate_section(stem, simulate[stem])
    scale = sorted(p for p in results.glob("bench*.json"))
    if scale:
        lines += ["## Scale", ""]
        for path in scale:
            lines += scale_section(path, _load(path))
    backend = sorted(results.glob("backend-*.json"))
    if backend:
        lines += ["## The backend's own selection (`bench_backend_selection.py`)", "",
                  "The backend's code path (Flask test client, `/setup`, `START_TRAINING` webhooks, the worker) against "
                  "an in-memory Label Studio; a simulated annotator answers the next 10 served pairs after each "
                  "retrain. Pool label accuracy %, mean of seeds. Latency and load: [RELIABILITY.md](RELIABILITY.md).", ""]
        for path in backend:
            lines += backend_section(path, _load(path))
    return "\n".join(lines).rstrip("\n") + "\n"


def project_standing(results: Path = RESULTS, *, budgets: tuple[float, ...] = (0.02, 0.06, 0.10)) -> str:
    """The project README's one table: per setting, the AI alone, `rlthf` and the best rival at a few budgets."""
    head = " / ".join(f"{100 * b:.0f}" for b in budgets)
    lines = [STANDING_START,
             f"| data and judge | AI alone % | `rlthf` % at {head}% human | best rival % at {head}% |",
             "| --- | --- | --- | --- |"]
    for stem in SIMULATE_RUNS:
        path = results / f"{stem}.json"
        if not path.exists():
            continue
        output = _load(path)
        rows = {round(r["budget"], 4): r for r in standing(output)}
        ai = [r["label_accuracy"] for r in output["results"] if r["strategy"] == "ai-only"]
        if not ai or any(b not in rows for b in budgets):
            continue
        mine = " / ".join(_pct(rows[b]["rlthf"]) for b in budgets)
        best = " / ".join(f"{_pct(rows[b]['best_rival'])} ({rows[b]['best_rival_name']})" for b in budgets)
        lines.append(f"| [{SIMULATE_RUNS[stem][1]}](benchmarks/README.md#{stem}) | {_pct(float(np.mean(ai)))} | {mine} | {best} |")
    lines.append(STANDING_END)
    return "\n".join(lines)


def with_project_standing(readme: str, table: str) -> str:
    """README.md with the text between the standing markers replaced by ``table``."""
    start, end = readme.find(STANDING_START), readme.find(STANDING_END)
    if start < 0 or end < start:
        raise ValueError(f"{PROJECT_README} lacks the markers {STANDING_START} ... {STANDING_END}")
    return readme[:start] + table + readme[end + len(STANDING_END):]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="compare instead of writing; exit 1 if different")
    args = parser.parse_args(argv)
    outputs = {README: render(), PROJECT_README: with_project_standing(
        PROJECT_README.read_text(encoding="utf-8"), project_standing())}
    stale = [path for path, text in outputs.items() if not path.exists() or path.read_text(encoding="utf-8") != text]
    if args.check:
        for path in stale:
            print(f"{path} is not what {RESULTS} gives: run benchmarks/render_readme.py", file=sys.stderr)
        return 1 if stale else 0
    for path in stale:
        path.write_text(outputs[path], encoding="utf-8")
        print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
