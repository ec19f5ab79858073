"""The share of AI mistakes along the curve (library and CLI report) and the backend's live report page.

The page is checked here through Flask's test client against the in-memory Label Studio; its rendering in a real
browser is in ``tests/test_label_studio_browser.py``.
"""

from __future__ import annotations

import base64
import json
import re

import numpy as np
import pytest

from rlthf_selector.report import mistake_share_along_curve, mistake_share_markdown


# ---------------------------------------------------------------------- library
def test_mistake_share_sorts_by_gap_and_counts_only_known_pairs():
    rng = np.random.default_rng(0)
    gap = rng.permutation(np.linspace(-2, 2, 100))
    wrong = gap < -1.0  # every mistake sits in the curve's lowest quarter
    known = np.ones(100, dtype=bool)
    known[::2] = False
    stretches = mistake_share_along_curve(gap, wrong, known, bins=4)
    assert [(s["start"], s["stop"]) for s in stretches] == [(0, 25), (25, 50), (50, 75), (75, 100)]
    assert [s["known"] for s in stretches] == [sum(known[np.argsort(-gap)][a:b]) for a, b in
                                              ((0, 25), (25, 50), (50, 75), (75, 100))]
    assert [s["share"] for s in stretches[:3]] == [0.0, 0.0, 0.0]
    assert stretches[3]["share"] == 1.0 and stretches[3]["mistakes"] == stretches[3]["known"]
    assert stretches[3]["lower"] > 0.7 and stretches[0]["upper"] < 0.3
    none_known = mistake_share_along_curve(gap, wrong, np.zeros(100, dtype=bool), bins=2)
    assert [s["share"] for s in none_known] == [None, None] and none_known[0]["upper"] == 1.0
    table = mistake_share_markdown(stretches, source="gold")
    assert "| 75-99 | 25 |" in table and "(gold)" in table
    with pytest.raises(ValueError, match="wrong and known must have the shape"):
        mistake_share_along_curve(gap, wrong[:5], known)


def test_demo_report_shows_the_mistake_share_from_gold(tmp_path, capsys):
    from rlthf_selector.cli import main

    assert main(["demo", "--synthetic", "--out", str(tmp_path), "--n", "300", "--out-of-fold", "2"]) == 0
    report = (tmp_path / "report.md").read_text()
    section = report.split("## AI mistakes along the curve", 1)[1].split("##", 1)[0]
    assert "(gold)" in section
    rows = re.findall(r"^\| (\d+)-(\d+) \| (\d+) \| (\d+) \| (\d+) \|", section, flags=re.M)
    assert len(rows) == 10 and sum(int(r[2]) for r in rows) == 300 and all(r[2] == r[3] for r in rows)
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert sum(int(r[4]) for r in rows) == round((1 - summary["ai_accuracy"]) * 300)
    assert (tmp_path / "curve.png").stat().st_size > 10_000


# ---------------------------------------------------------------------- the backend's page
flask = pytest.importorskip("flask")

from label_config import load_label_config, parse_label_config  # noqa: E402
from rlthf_selector.config import BackendConfig  # noqa: E402
from rlthf_selector.synthetic import make_synthetic_pairs  # noqa: E402

from ml_backend.app import create_app  # noqa: E402

PAIRWISE = load_label_config("pairwise")
CONTROL = parse_label_config(PAIRWISE)
HOSTILE = '<script>alert("owned")</script><img src=x onerror=alert(1)>'
AUTH = {"Authorization": "Basic " + base64.b64encode(b"lead:report-pass").decode()}


@pytest.fixture
def page(tmp_path, fake_ls):
    """A 100-pair project whose every prompt holds a script tag, trained once, three queued pairs answered and
    retrained; the backend requires basic auth."""
    p = make_synthetic_pairs(100, seed=3)
    data = [{"prompt": f"{HOSTILE} {p.prompt[i]}", "response_a": f"{p.response_a[i]} </td></table>",
             "response_b": str(p.response_b[i]), "ai_label": "a" if p.ai_label[i] > 0 else "b"} for i in range(100)]
    pid = fake_ls.add_project(PAIRWISE, data)
    config = BackendConfig(model_dir=str(tmp_path / "models"), debounce_s=0.0, max_wait_s=0.0,
                           basic_auth_user="lead", basic_auth_pass="report-pass", label_studio_url="http://127.0.0.1:8080")
    app = create_app(config, client_factory=lambda entry: fake_ls, start_worker=False)
    client = app.test_client()
    assert client.post("/setup", json={"project": pid, "schema": PAIRWISE}, headers=AUTH).status_code == 200
    backend = app.extensions["rlthf"]
    backend.worker.run_due()
    state = backend.registry.get(pid).state
    head = [int(state.task_ids[i]) for i in np.argsort(state.priority)[:3]]
    for tid in head:  # the humans overturn the AI on all three
        ai = 1 if fake_ls.tasks[tid]["data"]["ai_label"] == "a" else -1
        fake_ls.annotate(tid, CONTROL.result(-ai))
    client.post("/webhook", json={"action": "START_TRAINING", "project": {"id": pid}}, headers=AUTH)
    backend.worker.run_due()
    return client, backend, pid


def test_report_page_shows_curve_mistake_share_estimates_model_budget_and_export(page):
    client, backend, pid = page
    r = client.get(f"/report/{pid}", headers=AUTH)
    assert r.status_code == 200 and r.mimetype == "text/html"
    html = r.get_data(as_text=True)
    state = backend.registry.get(pid).state
    summary = state.summary
    for heading in ("Budget", "Reward-gap curve and regions", "AI mistakes along the curve", "Live estimates",
                    "What the mistake model learned", "Head of the queue", "TRL export"):
        assert f">{heading}</h2>" in html
    assert html.count("<svg") == 2 and "<polyline" in html
    # Three answers, all overturning the AI: the stretches' table adds up to them.
    counts = re.findall(r"<tr><td>\d+-\d+</td><td>(\d+)</td><td>(\d+)</td>", html)
    assert len(counts) == 10 and sum(int(k) for k, _ in counts) == 3 and sum(int(m) for _, m in counts) == 3
    assert "<b>3</b> human answers so far" in html and f"of {len(state.task_ids)} tasks" in html
    assert f"model version <b>{state.model_version}</b>".lower() in html.lower()
    assert f"rlthf export --url http://127.0.0.1:8080 --project {pid} --out export/" in html
    explanation = summary["mistake_model"]["explanation"]
    assert explanation.replace("'", "&#x27;").replace('"', "&quot;") in html
    assert html.count("<tr><td>", html.index("What the mistake model learned")) > len(summary["mistake_model"]["weights"])
    for label in ("AI accuracy", "humans overturn the AI on queued pairs"):
        assert label in html
    reason = next(iter(summary["queue_reasons"].values()))
    assert reason in html


def test_report_page_escapes_task_text(page):
    client, backend, pid = page
    html = client.get(f"/report/{pid}", headers=AUTH).get_data(as_text=True)
    assert "&lt;script&gt;alert(&quot;owned&quot;)&lt;/script&gt;" in html
    assert "<script" not in html.lower() and "<img" not in html.lower() and "onerror=alert" not in html.replace(
        "&lt;img src=x onerror=alert(1)&gt;", "")
    assert "</td></table> " not in html and "&lt;/td&gt;&lt;/table&gt;" in html


def test_report_page_needs_auth_and_a_known_project(page):
    client, backend, pid = page
    assert client.get(f"/report/{pid}").status_code == 401
    r = client.get("/report/999", headers=AUTH)
    assert r.status_code == 404 and "not set up" in r.get_json()["error"]


def test_report_page_of_an_untrained_project_says_so(tmp_path, fake_ls):
    pid = fake_ls.add_project(PAIRWISE, [])
    config = BackendConfig(model_dir=str(tmp_path / "models"), debounce_s=0.0, max_wait_s=0.0)
    client = create_app(config, client_factory=lambda entry: fake_ls, start_worker=False).test_client()
    client.post("/setup", json={"project": pid, "schema": PAIRWISE})
    html = client.get(f"/report/{pid}").get_data(as_text=True)
    assert "No curve yet" in html and "No estimates yet" in html and "Not fitted yet" in html


def test_estimates_read_as_shares_differences_or_an_auc():
    from ml_backend.report_page import _estimate_cell

    est = {"value": 0.71, "lower": 0.52, "upper": 0.9}
    assert _estimate_cell(est) == "71% [52%, 90%]"
    assert _estimate_cell(est, share=False) == "0.71 [0.52, 0.90]"  # an AUC is not a share of pairs
    assert _estimate_cell({"value": -0.2, "lower": -0.62, "upper": 0.1}, signed=True) == "-0.20 [-0.62, +0.10]"
    assert _estimate_cell({"value": None}) == "—" and _estimate_cell(None) == "—"
