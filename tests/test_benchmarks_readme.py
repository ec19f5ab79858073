"""benchmarks/README.md is rendered from benchmarks/results/ and nothing else: it must regenerate byte-identically."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"


def _render_module():
    spec = importlib.util.spec_from_file_location("render_readme", BENCHMARKS / "render_readme.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_readme_regenerates_byte_identically_from_results():
    render = _render_module()
    text = render.render()
    assert (BENCHMARKS / "README.md").read_text(encoding="utf-8") == text, (
        "benchmarks/README.md differs from what benchmarks/results/ gives: run benchmarks/render_readme.py")
    assert text.count("\n") <= 300


def test_project_readme_standing_table_is_rendered_and_short():
    render = _render_module()
    readme = render.PROJECT_README.read_text(encoding="utf-8")
    assert render.with_project_standing(readme, render.project_standing()) == readme, (
        "README.md's standing table differs from what benchmarks/results/ gives: run benchmarks/render_readme.py")
    assert readme.count("\n") <= 150


def _simulate_output(rlthf: list[float], rival: list[float], *, flips=(4, 3)) -> dict:
    results = []
    for seed, (mine, theirs) in enumerate(zip(rlthf, rival)):
        results.append({"strategy": "rlthf", "budget": 0.06, "seed": seed, "label_accuracy": mine,
                        "flips": flips[0], "flips_correct": flips[1]})
        results.append({"strategy": "random", "budget": 0.06, "seed": seed, "label_accuracy": theirs,
                        "flips": 0, "flips_correct": 0})
    return {"results": results, "estimates": []}


def test_run_table_known_answer():
    render = _render_module()
    table = render.run_table(_simulate_output([0.80, 0.90], [0.70, 0.70]))
    lines = table.splitlines()
    assert lines[0] == "| strategy | 6% |"
    assert lines[2] == "| `rlthf` | 85.0 ± 5.0 (flips 6/8 right) |"
    assert lines[3] == "| `random` | 70.0 ± 0.0 |"


@pytest.mark.parametrize("mine, verdict", [([0.80, 0.80], "yes"), ([0.798, 0.798], "yes"), ([0.796, 0.796], "no"), ([0.79, 0.79], "no")])
def test_criteria_apply_the_tolerance(mine, verdict):
    render = _render_module()
    outputs = {"pandalm-gpt35-no-evidence": _simulate_output(mine, [0.80, 0.80])}
    # The criterion needs 2/6/10%: copy the 6% rows to the other budgets.
    rows = outputs["pandalm-gpt35-no-evidence"]["results"]
    rows += [dict(r, budget=b) for r in list(rows) for b in (0.02, 0.10)]
    text = render.criteria(outputs)
    line = next(l for l in text.splitlines() if l.startswith("| PandaLM / GPT-3.5, `--no-evidence`"))
    assert line.endswith(f"| {verdict} |"), line


def test_standing_pools_the_calibration_of_the_likely_mistakes():
    render = _render_module()
    output = _simulate_output([0.80, 0.90], [0.70, 0.70])
    bands = [{"edges": [0.0, 0.5, 0.75, 1.0], "pairs": [90, 8, 2], "mean_prob": [0.1, 0.6, 0.9],
              "mistake_rate": [0.1, 0.5, 1.0]},
             {"edges": [0.0, 0.5, 0.75, 1.0], "pairs": [95, 0, 5], "mean_prob": [0.1, None, 0.8],
              "mistake_rate": [0.2, None, 0.6]}]
    output["estimates"] = [{"strategy": "rlthf", "budget": 0.06, "seed": s, "mistake_model": {"calibration": b}}
                           for s, b in enumerate(bands)]
    (row,) = render.standing(output)
    # P >= 0.5: 8 + 2 + 0 + 5 pairs; mean P (4.8 + 1.8 + 4.0) / 15; wrong (4 + 2 + 3) / 15.
    assert row["likely_pairs"] == 15
    assert row["likely_mean_prob"] == pytest.approx(10.6 / 15)
    assert row["likely_wrong"] == pytest.approx(9 / 15)
    assert render.standing_markdown("x", [row]).splitlines()[-1].endswith("| 0.71 / 0.60 (15) |")


def test_unknown_result_files_are_shown_not_dropped(tmp_path):
    render = _render_module()
    (tmp_path / "bench_new.json").write_text(json.dumps({"command": "python x.py", "machine": "m", "ratio": 1.5}))
    text = render.render(tmp_path)
    assert "`bench_new.json`" in text and '"ratio": 1.5' in text


def test_readme_library_example_runs(tmp_path, monkeypatch):
    """The README's library snippet runs as written, on generated pairs with gold."""
    from rlthf_selector.io import write_jsonl
    from rlthf_selector.synthetic import make_synthetic_pairs

    readme = (BENCHMARKS.parent / "README.md").read_text(encoding="utf-8")
    code = readme.split("## The library", 1)[1].split("```python\n", 1)[1].split("```", 1)[0]
    write_jsonl(make_synthetic_pairs(300, seed=0), tmp_path / "pairs.jsonl")
    monkeypatch.chdir(tmp_path)
    namespace: dict = {}
    exec(compile(code, "README.md", "exec"), namespace)
    assert (tmp_path / "preferences.jsonl").exists()
    assert len(namespace["result"].labels) == 300
