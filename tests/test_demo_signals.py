"""``make label-studio-demo`` stops Label Studio and the backend on SIGTERM and SIGHUP, as it does on Ctrl-C.

The demo runs for real (``python -m ml_backend.demo``: Label Studio 1.23.2 from ``.venv-ls`` on a copy of the
test session's migrated data directory, the backend with waitress, 60 generated pairs). Every process it started is
noted while it runs; after the signal none of them may be left.
"""

from __future__ import annotations

import os
import signal
import socket
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from ml_backend.ls_server import REPO_ROOT, free_port, wait_until

pytestmark = [pytest.mark.label_studio, pytest.mark.slow]


def _descendants(root: int) -> set[int]:
    """Every process below ``root``, from /proc's parent links."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:  # gone meanwhile
                continue
            ppid = int(stat.rsplit(")", 1)[1].split()[1])
            children.setdefault(ppid, []).append(int(entry.name))
    found, todo = set(), [root]
    while todo:
        for child in children.get(todo.pop(), []):
            found.add(child)
            todo.append(child)
    return found


def _running(pid: int) -> bool:
    """Alive and not a zombie."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def _answers(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(1)
        return s.connect_ex(("127.0.0.1", port)) == 0


@pytest.fixture
def ls_data_copy(tmp_path, label_studio):
    """A copy of the session's migrated Label Studio database (sqlite's backup: consistent while it runs)."""
    source = Path(os.environ.get("RLTHF_LS_DATA_DIR", REPO_ROOT / ".cache" / "ls-data")) / "label_studio.sqlite3"
    if not source.exists():
        pytest.skip(f"no migrated Label Studio database at {source} to copy")
    target = tmp_path / "ls-data"
    target.mkdir()
    with sqlite3.connect(source) as src, sqlite3.connect(target / "label_studio.sqlite3") as dst:
        src.backup(dst)
    return target


@pytest.mark.parametrize("stop_signal, data, n_pairs", [
    (signal.SIGTERM, [], 307),  # the default: the shipped PandaLM slice
    (signal.SIGHUP, ["--synthetic", "--pairs", "60"], 60),
], ids=["SIGTERM, PandaLM slice", "SIGHUP, generated pairs"])
def test_the_label_studio_demo_leaves_no_process_running(tmp_path, ls_data_copy, stop_signal, data, n_pairs):
    ls_port, backend_port = free_port(), free_port()
    log_path = tmp_path / "demo.log"
    env = {k: v for k, v in os.environ.items() if not k.startswith("RLTHF_LS_")}
    with open(log_path, "wb") as log:
        demo = subprocess.Popen(
            [sys.executable, "-m", "ml_backend.demo", "--ls-port", str(ls_port), "--backend-port", str(backend_port),
             *data, "--work-dir", str(tmp_path / "work"), "--data-dir", str(ls_data_copy)],
            cwd=REPO_ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
        )
    started: set[int] = set()
    try:
        wait_until(lambda: "stops Label Studio and the backend" in log_path.read_text() or demo.poll() is not None,
                   timeout=300, what="the demo to be ready", interval=0.5)
        assert demo.poll() is None, log_path.read_text()
        started = _descendants(demo.pid)
        assert _answers(ls_port) and _answers(backend_port)
        assert len(started) >= 2  # Label Studio and the backend, and whatever they started
        # The export command it printed runs as printed, in a shell without the demo's environment.
        (export_line,) = [line for line in log_path.read_text().splitlines() if line.strip().startswith("Export")]
        command = export_line.split(":", 1)[1].strip()
        assert "$" not in command
        run = subprocess.run(command, shell=True, cwd=tmp_path, capture_output=True, text=True, timeout=120,
                             env={"PATH": "/usr/bin:/bin", "HOME": str(tmp_path)})
        assert run.returncode == 0, run.stderr
        assert (tmp_path / "demo_export" / "preferences.jsonl").read_text().count("\n") == n_pairs
        if not data:  # the PandaLM slice: the second judge's verdicts travel in the task data, the gold does not
            from ml_backend.label_studio_client import LabelStudioClient
            from ml_backend.ls_server import DEFAULT_TOKEN

            client = LabelStudioClient(f"http://127.0.0.1:{ls_port}", DEFAULT_TOKEN, retries=1)
            (project,) = [p for p in client.list_projects() if p["title"] == "RLTHF demo (PandaLM)"]
            tasks = client.list_tasks(project["id"])
            assert len(tasks) == 307 and all(t["data"]["pair_id"].startswith("pandalm-") for t in tasks)
            assert sum("second_judge_label" in t["data"] for t in tasks) >= 250
            assert not any("gold" in key for t in tasks for key in t["data"])
        demo.send_signal(stop_signal)
        assert demo.wait(90) == 0, log_path.read_text()
        deadline = time.monotonic() + 10
        while any(_running(p) for p in started) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert [p for p in started if _running(p)] == []
        assert not _answers(ls_port) and not _answers(backend_port)
        assert f"{signal.Signals(stop_signal).name}: stopping Label Studio and the backend" in log_path.read_text()
    finally:  # on a failure, leave nothing of this test behind either
        _kill_tree(demo, started)


def test_ls_server_stops_label_studio_on_sigterm(tmp_path, ls_data_copy):
    """``python -m ml_backend.ls_server`` (how a Label Studio is kept running by hand) leaves no orphan either."""
    port = free_port()
    log_path = tmp_path / "ls.log"
    env = {k: v for k, v in os.environ.items() if not k.startswith("RLTHF_LS_")}
    with open(log_path, "wb") as log:
        proc = subprocess.Popen([sys.executable, "-m", "ml_backend.ls_server", "--port", str(port),
                                 "--data-dir", str(ls_data_copy)], cwd=REPO_ROOT, env=env, stdout=log,
                                stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    started: set[int] = set()
    try:
        wait_until(lambda: "SIGHUP stops it" in log_path.read_text() or proc.poll() is not None, timeout=300,
                   what="Label Studio to be ready", interval=0.5)
        assert proc.poll() is None, log_path.read_text()
        started = _descendants(proc.pid)
        assert started and _answers(port)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(60) == 0, log_path.read_text()
        assert [p for p in started if _running(p)] == [] and not _answers(port)
    finally:
        _kill_tree(proc, started)


def _kill_tree(proc: subprocess.Popen, started: set[int]) -> None:
    """Kill ``proc`` if it still runs and every process in ``started`` (and ``proc``'s children) still alive."""
    if proc.poll() is None:
        started |= _descendants(proc.pid)
        proc.kill()
        proc.wait(10)
    for pid in started:
        if _running(pid):
            os.kill(pid, signal.SIGKILL)
