"""A team's day in a real browser: Chromium (Debian's ``chromium``) driven by Playwright against a real Label Studio
1.23.2 and the backend, both on 127.0.0.1.

The test logs in, opens the "RLTHF: needs human" tab, labels three tasks by clicking (the response, then Submit; no
API call makes an annotation), and checks what issue 16 asks a team to see:

- every queued task's labeling screen opens with no response selected;
- the tab lists prompt, AI choice, priority (a number column) and the reason each pair is asked;
- after the clicks the backend has retrained, and ``rlthf export`` lists the three labels as human labels given blind;
- the backend's report page renders in Chromium with the curve and the live estimates, and every prompt, each holding
  a ``<script>``, shows as text there (the script never runs).

Screenshots go to the test's tmp directory (``queue-view.png``, ``labeling-<k>.png``, ``report.png``).

Chromium: ``/usr/bin/chromium`` (Playwright's own browser download needs the internet). Where it is missing the test
installs Debian's ``chromium`` with apt-get when it runs as root, and otherwise skips saying how to install it.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
import uuid
from pathlib import Path

import numpy as np
import pytest

from ml_backend.ls_server import wait_until
from conftest import setup_through_cli  # noqa: E402

pytestmark = [pytest.mark.label_studio, pytest.mark.slow]

N_PAIRS = 60
USER, PASSWORD = "rlthf-lead", "browser-basic-pass"
SCRIPT = "<script>window.__rlthfOwned = 1</script>"
SELECTED = "box-shadow"  # Label Studio 1.23.2 marks the chosen <Pairwise> side with a box shadow


def _chromium() -> str:
    """The path of Debian's Chromium, installed with apt-get when missing and this runs as root; else a skip."""
    found = shutil.which("chromium") or ("/usr/bin/chromium" if Path("/usr/bin/chromium").exists() else None)
    if found:
        return found
    if hasattr(os, "geteuid") and os.geteuid() == 0 and shutil.which("apt-get"):
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        done = subprocess.run(["apt-get", "install", "-y", "--no-install-recommends", "chromium"], env=env,
                              capture_output=True, text=True, timeout=900)
        if done.returncode != 0:  # a stale package list: refresh once
            subprocess.run(["apt-get", "update"], env=env, capture_output=True, timeout=600)
            done = subprocess.run(["apt-get", "install", "-y", "--no-install-recommends", "chromium"], env=env,
                                  capture_output=True, text=True, timeout=900)
        found = shutil.which("chromium")
        if found:
            return found
        pytest.skip(f"Chromium is missing and `apt-get install chromium` failed: {done.stderr.strip()[-300:]}")
    pytest.skip("Chromium is missing and this is not root: install Debian's `chromium` "
                "(sudo apt-get install chromium) to run the browser test")


@pytest.fixture(scope="module")
def browser():
    """A headless Chromium under Playwright."""
    sync_api = pytest.importorskip("playwright.sync_api", reason="Playwright is missing: pip install -e '.[test]'")
    path = _chromium()
    with sync_api.sync_playwright() as pw:
        chromium = pw.chromium.launch(executable_path=path, args=["--no-sandbox"])
        try:
            yield chromium
        finally:
            chromium.close()


@pytest.fixture
def backend(tmp_path, label_studio, monkeypatch):
    """The ML backend on 127.0.0.1 in a thread, talking to the real Label Studio."""
    from conftest import serve_backend

    monkeypatch.setenv("BASIC_AUTH_PASS", PASSWORD)
    # A debounce longer than the gap between two clicks: the retrain comes after the third, so the three tasks are
    # all served from the queue the test read at rlthf-1.
    with serve_backend(tmp_path / "models", label_studio, user=USER, password=PASSWORD, debounce_s=8.0,
                       max_wait_s=60.0) as served:
        yield served


def _log_in(page, label_studio: dict) -> None:
    from ml_backend import ls_server

    page.goto(f"{label_studio['url']}/user/login")
    page.fill("input[name=email]", os.environ.get("RLTHF_LS_USER", ls_server.DEFAULT_USER))
    page.fill("input[name=password]", os.environ.get("RLTHF_LS_PASSWORD", ls_server.DEFAULT_PASSWORD))
    page.click("button[type=submit]")
    page.wait_for_load_state("networkidle", timeout=60_000)
    assert "/user/login" not in page.url, f"login failed: {page.inner_text('body')[:300]}"


def test_a_team_labels_three_tasks_by_clicking_and_reads_the_report(tmp_path, label_studio, backend, browser, capsys):
    from rlthf_selector.cli import main as rlthf_main
    from rlthf_selector.io import write_jsonl
    from rlthf_selector.synthetic import make_synthetic_pairs

    from ml_backend.label_studio_client import LabelStudioClient

    started = time.perf_counter()
    client = LabelStudioClient(label_studio["url"], label_studio["token"], retries=1)
    pairs = make_synthetic_pairs(N_PAIRS, seed=16)
    prompts = np.array([f"{SCRIPT} {p}" for p in pairs.prompt], dtype=object)
    pairs_file = write_jsonl(pairs.replace(gold_label=None, prompt=prompts), tmp_path / "pairs.jsonl")
    title = f"rlthf-browser-{uuid.uuid4().hex[:8]}"
    pid = setup_through_cli(label_studio, pairs_file, backend["url"], title=title, capsys=capsys, user=USER)["project_id"]
    worker = backend["backend"].worker
    try:
        project = client.get_project(pid)
        assert f"{backend['url']}/report/{pid}" in project["description"]  # the project links to its report
        wait_until(lambda: client.get_project(pid).get("model_version") == "rlthf-1" and worker.wait_idle(0.1),
                   timeout=120, what="the first training's write-back (model version rlthf-1)")
        state = backend["backend"].registry.get(pid).state
        reasons = state.summary["queue_reasons"]
        queued = {int(t["id"]): t["data"] for t in client.list_tasks(pid) if "rlthf_priority" in t["data"]}
        assert len(queued) == len(reasons) >= 4
        views = {v["data"]["title"]: v["id"] for v in client.list_views(pid)}
        assert {"RLTHF: all tasks", "RLTHF: needs human", "RLTHF: flipped by RLTHF", "RLTHF: trusted (sample)"} <= set(views)

        page = browser.new_page(viewport={"width": 1500, "height": 950})
        _log_in(page, label_studio)

        # -- the queue tab: prompt, AI choice, priority (a number column) and the reason, in priority order
        page.goto(f"{label_studio['url']}/projects/{pid}/data?tab={views['RLTHF: needs human']}")
        head = sorted(queued.items(), key=lambda kv: kv[1]["rlthf_priority"])[0]
        page.get_by_text(head[1]["rlthf_reason"]).first.wait_for(timeout=60_000)
        headers = [" ".join(h.split()) for h in page.locator("button").all_inner_texts()]
        for column in ("prompt str", "response_a str", "response_b str", "rlthf_ai_choice str", "rlthf_priority num",
                       "rlthf_reason str"):
            assert column in headers, headers
        for absent in ("Annotations", "Predictions", "annotations_results", "ai_label str", "pair_id str"):
            assert not any(h.startswith(absent) for h in headers), absent
        body = page.inner_text("body")
        assert SCRIPT in body  # Label Studio shows the prompt as text too
        for data in queued.values():
            assert data["rlthf_reason"] in body
        page.screenshot(path=str(tmp_path / "queue-view.png"))

        # -- label three tasks by clicking: each opens with nothing selected
        page.get_by_text("Label All Tasks").first.click()
        answered_prompts = []
        for k in range(3):
            responses = page.locator("div.cursor-pointer:has(.lsf-richtext__container)")
            responses.nth(1).wait_for(timeout=60_000)
            prompt = " ".join(page.locator(".lsf-richtext__line").first.inner_text().split())
            assert prompt not in answered_prompts, "the stream served an answered task again"
            styles = [responses.nth(j).get_attribute("style") or "" for j in range(2)]
            assert not any(SELECTED in s for s in styles), f"task {k + 1} opened with a response selected: {styles}"
            responses.nth(0).click()  # Response A
            wait_until(lambda: SELECTED in (responses.nth(0).get_attribute("style") or ""), timeout=10,
                       what="the click to select Response A")
            page.screenshot(path=str(tmp_path / f"labeling-{k + 1}.png"))
            page.get_by_test_id("bottombar-submit-button").click()
            answered_prompts.append(prompt)
            if k < 2:  # the next task replaces this one
                wait_until(lambda: " ".join(page.locator(".lsf-richtext__line").first.inner_text().split()) != prompt,
                           timeout=30, what="the next task after Submit")
        clicked_at = time.perf_counter()

        # -- the webhooks retrain the backend; the three clicks are its human labels
        def three_labels() -> bool:
            entry = backend["backend"].registry.get(pid)
            return entry is not None and int((entry.state.human_label != 0).sum()) == 3 and worker.wait_idle(0.1)

        wait_until(three_labels, timeout=90, what="a retrain that sees the three clicked labels")
        retrain_s = time.perf_counter() - clicked_at
        state = backend["backend"].registry.get(pid).state
        assert state.iteration >= 2
        labelled = [int(t) for t, h in zip(state.task_ids, state.human_label) if h != 0]
        assert set(labelled) <= set(queued)  # the stream served the queue
        prompts_by_task = {t: " ".join(queued[t]["prompt"].split()) for t in labelled}
        assert sorted(prompts_by_task.values()) == sorted(answered_prompts)

        out = tmp_path / "export"
        assert rlthf_main(["export", "--url", label_studio["url"], "--api-key", label_studio["token"],
                           "--project", str(pid), "--out", str(out)]) == 0
        summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
        assert summary["label_sources"]["human"] == 3
        assert summary["human_labels"]["blind"] == 3 and summary["human_labels"]["saw_prelabel"] == 0
        human_rows = [json.loads(line) for line in (out / "human_labels.jsonl").read_text().splitlines()]
        assert sorted(r["task_id"] for r in human_rows) == sorted(labelled)
        assert all(r["label"] == "a" and r["blind"] for r in human_rows)
        rows = {r["id"]: r for r in map(json.loads, (out / "preferences.jsonl").read_text().splitlines())}
        for t in labelled:
            row = rows[queued[t]["pair_id"]]
            assert row["label_source"] == "human" and row["chosen"] == queued[t]["response_a"]

        # -- the report page in Chromium: curve, mistake share, live estimates, the prompts as text
        report_url = f"{backend['url']}/report/{pid}"
        anonymous = browser.new_context()
        assert anonymous.request.get(report_url).status == 401  # the same basic auth as every route but /health
        anonymous.close()
        lead = browser.new_context(http_credentials={"username": USER, "password": PASSWORD},
                                   viewport={"width": 1000, "height": 1400})
        report = lead.new_page()
        response = report.goto(report_url)
        assert response.status == 200
        assert report.locator("svg.curve polyline").count() == 1 and report.locator("svg.curve").is_visible()
        assert report.locator("svg.mistake-share").is_visible()
        text = report.inner_text("body")
        for heading in ("Reward-gap curve and regions", "AI mistakes along the curve", "Live estimates",
                        "What the mistake model learned", "Budget", "TRL export"):
            assert heading in text
        assert "3 human answers so far" in text
        estimates = report.locator("h2#estimates + table")
        assert estimates.is_visible() and "AI accuracy" in estimates.inner_text()
        assert text.count(SCRIPT) >= 4  # every queued prompt shows its <script> as text ...
        assert report.evaluate("window.__rlthfOwned === undefined")  # ... and none of them ran
        assert report.locator("script").count() == 0
        report.screenshot(path=str(tmp_path / "report.png"), full_page=True)
        lead.close()
        page.close()
        print(f"\nbrowser test: {time.perf_counter() - started:.1f} s in all, retrain after the clicks {retrain_s:.1f} s; "
              f"screenshots in {tmp_path}")
    finally:
        client.delete_project(pid)
