"""Make the README's two screenshots: the "RLTHF: needs human" tab and the backend's report page.

Runs what ``make label-studio-demo`` runs (Label Studio 1.23.2 from ``.venv-ls``, the backend, the shipped PandaLM
slice), answers 30 queued pairs with the human majority through the API so the report has answers to show, and
photographs both pages in headless Chromium (Playwright, ``/usr/bin/chromium``). Everything binds to 127.0.0.1 and
stops at the end.

    .venv/bin/python docs/make_screenshots.py        # writes docs/queue-view.png and docs/report-page.png
"""

from __future__ import annotations

import os
import sys
import tempfile
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

ANSWERS = 30
USER, PASSWORD = "lead", "screenshot-pass"


def main() -> int:
    """Start the servers, set the demo project up, answer, photograph, stop; 0 on success."""
    from playwright.sync_api import sync_playwright
    from werkzeug.serving import make_server

    from label_config import parse_label_config
    from rlthf_selector.config import BackendConfig
    from rlthf_selector.demo_data import load_demo_pairs

    from ml_backend import ls_server
    from ml_backend.app import create_app
    from ml_backend.cli import setup_project
    from ml_backend.label_studio_client import LabelStudioClient

    work = Path(tempfile.mkdtemp(prefix="rlthf-screenshots-"))
    ls = ls_server.start_label_studio(data_dir=REPO / ".cache" / "ls-data", username=ls_server.DEFAULT_USER,
                                      password=ls_server.DEFAULT_PASSWORD, token=ls_server.DEFAULT_TOKEN, timeout=420)
    server = None
    try:
        config = BackendConfig(model_dir=str(work / "models"), label_studio_url=ls.url, label_studio_api_key=ls.token,
                               basic_auth_user=USER, basic_auth_pass=PASSWORD, debounce_s=1.0, max_wait_s=5.0)
        app = create_app(config)
        port = ls_server.free_port()
        server = make_server("127.0.0.1", port, app, threaded=True)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        backend_url = f"http://127.0.0.1:{port}"
        worker = app.extensions["rlthf"].worker
        pairs = load_demo_pairs()[0]
        gold = dict(zip(pairs.ids.tolist(), pairs.gold_label.tolist()))
        client = LabelStudioClient(ls.url, ls.token)
        pid = setup_project(client, pairs.replace(gold_label=None), backend_url=backend_url,
                            title=f"RLTHF demo (PandaLM) {time.strftime('%H%M%S')}", basic_auth_user=USER,
                            basic_auth_pass=PASSWORD)["project_id"]
        ls_server.wait_until(lambda: client.get_project(pid).get("model_version") not in ("", "rlthf-0")
                             and worker.wait_idle(0.1), timeout=120, what="the first training")
        control = parse_label_config(client.get_project(pid)["label_config"])
        for _ in range(ANSWERS):  # the human majority answers the head of the stream, as an annotator would
            task = client.next_task(pid)
            client.create_annotation(task["id"], control.result(gold[task["data"]["pair_id"]]))
        time.sleep(2)
        ls_server.wait_until(lambda: worker.wait_idle(0.1) and int(
            (app.extensions["rlthf"].registry.get(pid).state.human_label != 0).sum()) == ANSWERS,
            timeout=120, what="the retrain after the answers")
        ls_server.wait_until(lambda: worker.wait_idle(1.0), timeout=60, what="the write-back")
        views = {v["data"]["title"]: v["id"] for v in client.list_views(pid)}
        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path="/usr/bin/chromium", args=["--no-sandbox"])
            page = browser.new_page(viewport={"width": 1500, "height": 760})
            page.goto(f"{ls.url}/user/login")
            page.fill("input[name=email]", ls_server.DEFAULT_USER)
            page.fill("input[name=password]", ls_server.DEFAULT_PASSWORD)
            page.click("button[type=submit]")
            page.wait_for_load_state("networkidle")
            page.goto(f"{ls.url}/projects/{pid}/data?tab={views['RLTHF: needs human']}")
            page.get_by_text("rlthf_reason").first.wait_for(timeout=60_000)
            page.wait_for_timeout(1500)
            page.screenshot(path=str(REPO / "docs" / "queue-view.png"))
            lead = browser.new_context(http_credentials={"username": USER, "password": PASSWORD},
                                       viewport={"width": 960, "height": 2000})
            report = lead.new_page()
            report.goto(f"{backend_url}/report/{pid}")
            # The top of the page: budget, curve, mistake share, estimates, what the model learned.
            report.screenshot(path=str(REPO / "docs" / "report-page.png"))
            browser.close()
        client.delete_project(pid)
    finally:
        if server is not None:
            server.shutdown()
        ls.stop()
    print("wrote docs/queue-view.png and docs/report-page.png")
    return 0


if __name__ == "__main__":
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    raise SystemExit(main())
