"""``make label-studio-demo``: a real Label Studio with a prioritised RLTHF queue in one command.

Starts Label Studio 1.23.2 from ``.venv-ls`` on 127.0.0.1 (user and token created on the first start),
starts the backend (``rlthf serve``, waitress), loads the shipped PandaLM slice (GPT-3.5's real verdicts as the AI
labels, PandaLM-7B as the second judge; ``--synthetic``: a generated set with a biased AI judge), runs ``rlthf label-studio setup`` on it, prints the URL and login, and keeps both running until Ctrl-C, SIGTERM
(``docker stop``, systemd, ``kill``) or SIGHUP (a closed terminal), each of which stops both.
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from ml_backend import ls_server

REPO = ls_server.REPO_ROOT


def _port_or_free(port: int) -> int:
    import socket

    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return ls_server.free_port()
    return port


def _stop_like_ctrl_c(signum: int, frame: object) -> None:
    """SIGTERM and SIGHUP take the Ctrl-C path, so ``main``'s ``finally`` stops Label Studio and the backend: both run in
    sessions of their own (a Ctrl-C in the terminal must not kill them half-way), so nothing else would."""
    print(f"{signal.Signals(signum).name}: stopping Label Studio and the backend...", flush=True)
    raise KeyboardInterrupt


def export_command(url: str, token: str, project_id: int) -> str:
    """The ``rlthf export`` command for the demo's project, runnable as printed (the token set inline)."""
    script = Path(sys.executable).with_name("rlthf")
    program = str(script) if script.exists() else f"{sys.executable} -m rlthf_selector.cli"
    return f"LABEL_STUDIO_API_KEY={token} {program} export --url {url} --project {project_id} --out demo_export"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0], formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--ls-port", type=int, default=int(os.environ.get("LS_PORT", 8080)))
    parser.add_argument("--backend-port", type=int, default=int(os.environ.get("BACKEND_PORT", 9090)))
    parser.add_argument("--synthetic", action="store_true",
                        help="generated pairs with a biased AI judge instead of the shipped PandaLM slice")
    parser.add_argument("--pairs", type=int, default=500, help="generated demo pairs (with --synthetic)")
    parser.add_argument("--work-dir", default=str(REPO / ".cache" / "demo"), help="pairs file and model directory")
    parser.add_argument("--data-dir", default=str(ls_server.DEFAULT_DATA_DIR), help="Label Studio data (migrated once)")
    parser.add_argument("--exit-after-setup", action="store_true", help="stop everything once the queue is ready")
    args = parser.parse_args(argv)
    # SIGINT too: a demo started as a background job inherits it ignored.
    for stop_signal in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(stop_signal, _stop_like_ctrl_c)

    from rlthf_selector.io import write_jsonl
    from rlthf_selector.synthetic import make_synthetic_pairs

    from ml_backend.cli import setup_project
    from ml_backend.label_studio_client import LabelStudioClient

    work = Path(args.work_dir)
    work.mkdir(parents=True, exist_ok=True)
    user = os.environ.get("RLTHF_LS_USER", ls_server.DEFAULT_USER)
    password = os.environ.get("RLTHF_LS_PASSWORD", ls_server.DEFAULT_PASSWORD)
    token = os.environ.get("RLTHF_LS_TOKEN", ls_server.DEFAULT_TOKEN)
    print("starting Label Studio (the first start migrates its database: about a minute)...", flush=True)
    try:  # stopped while starting: start_label_studio has stopped it already
        ls = ls_server.start_label_studio(data_dir=args.data_dir, port=_port_or_free(args.ls_port), username=user,
                                          password=password, token=token)
    except KeyboardInterrupt:
        return 0
    backend_proc = None
    try:
        backend_port = _port_or_free(args.backend_port)
        env = dict(os.environ, LABEL_STUDIO_URL=ls.url, LABEL_STUDIO_API_KEY=token, MODEL_DIR=str(work / "model_dir"),
                   HF_HUB_OFFLINE="1", RLTHF_DEBOUNCE_S="2")
        backend_proc = subprocess.Popen(
            [sys.executable, "-m", "rlthf_selector.cli", "serve", "--host", "127.0.0.1", "--port", str(backend_port), "--production"],
            env=env, stdout=open(work / "backend.log", "wb"), stderr=subprocess.STDOUT, start_new_session=True,
        )
        backend_url = f"http://127.0.0.1:{backend_port}"
        ls_server.wait_healthy(backend_url, timeout=120, process=backend_proc, log_path=work / "backend.log")

        if args.synthetic:
            pairs, title = make_synthetic_pairs(args.pairs, seed=0), "RLTHF demo (generated pairs)"
        else:
            from rlthf_selector.demo_data import DEMO_SOURCE, load_demo_pairs

            pairs, title = load_demo_pairs()[0], "RLTHF demo (PandaLM)"
            print(f"{len(pairs)} pairs from the {DEMO_SOURCE}", flush=True)
        # Annotators answer for themselves: the gold labels stay out of Label Studio.
        pairs_file = write_jsonl(pairs.replace(gold_label=None), work / "pairs.jsonl")
        client = LabelStudioClient(ls.url, token)
        outcome = setup_project(client, pairs, backend_url=backend_url, title=title)
        pid = outcome["project_id"]
        if outcome["created"]:
            what = f"created project {pid}: {outcome['imported']} pairs imported from {pairs_file}"
        else:
            what = (f"reused project {pid} (from an earlier run): {outcome['imported']} new pairs imported, "
                    f"{outcome['already_there']} already there")
        print(f"{what}; waiting for the backend's training...", flush=True)
        deadline = time.monotonic() + 300
        version = ""
        while time.monotonic() < deadline:
            version = client.get_project(pid).get("model_version") or ""
            if version.startswith("rlthf-") and version != "rlthf-0":
                break
            time.sleep(1)
        print()
        print(f"  Label Studio : {ls.url}/projects/{pid}/data   (model version {version})")
        print(f"  login        : {user} / {password}")
        print(f"  API token    : {token}")
        print(f"  ML backend   : {backend_url}  (log {work / 'backend.log'})")
        print(f"  Live report  : {backend_url}/report/{pid}   (curve, AI mistakes found, estimates, budget)")
        print("  Click 'Label All Tasks': the human queue comes first, most valuable first; the tab")
        print("  'RLTHF: needs human' lists it. Each submitted annotation retrains the backend in the background.")
        print(f"  Export       : {export_command(ls.url, token, pid)}")
        print()
        if args.exit_after_setup:
            return 0
        print("Ctrl-C (or SIGTERM, SIGHUP) stops Label Studio and the backend.", flush=True)
        while ls.process.poll() is None and backend_proc.poll() is None:
            time.sleep(1)
        return 1
    except KeyboardInterrupt:
        return 0
    finally:
        for stop_signal in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):  # a second signal must not cut this short
            signal.signal(stop_signal, signal.SIG_IGN)
        if backend_proc is not None and backend_proc.poll() is None:
            os.killpg(backend_proc.pid, signal.SIGTERM)
            try:
                backend_proc.wait(20)
            except subprocess.TimeoutExpired:
                os.killpg(backend_proc.pid, signal.SIGKILL)
        ls.stop()


if __name__ == "__main__":
    sys.exit(main())
