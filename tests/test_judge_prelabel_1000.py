"""The issue's "done when": `prelabel` labels 1,000 pairs with 16 concurrent requests against the local
server, survives injected failures with every pair either labeled or listed with its reason, and resumes
after a killed run without asking again for any answer it had already received. About 5 s."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

from judge_server import PairPolicy, ScriptedChatServer  # noqa: E402

from rlthf_selector.judge.cli import main as prelabel_main  # noqa: E402

N = 1000
KEY_ENV = "RLTHF_TEST_JUDGE_KEY"
KEY = "sk-test-1000-pairs-never-print-me"
FAULTS = {  # pair k with k % 100 == residue
    3: "rate_limit",
    5: "error_500",
    7: "slow",
    11: "garbage_body",
    13: "malformed_once",
    17: "malformed",
    19: "position_bias",
    23: "always_500",
    29: "no_logprobs",
    31: "echo_key",
}


def records() -> list[dict]:
    out = []
    for k in range(N):
        good, bad = f"good-{k}: the careful answer.", f"bad-{k}: the careless answer."
        a, b = (good, bad) if k % 2 == 0 else (bad, good)
        out.append({"id": f"p{k}", "prompt": f"question-{k}", "response_a": a, "response_b": b, "source": "test"})
    return out


def order_of(req, recs) -> str:
    return "ab" if recs[req.pair]["response_a"].startswith(req.first_shown) else "ba"


def cached_orders(path: Path) -> set[tuple[str, str]]:
    out = set()
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            entry = json.loads(line)
        except ValueError:
            continue  # the line the kill cut short: not an answer the next run may skip
        out.add((entry["pair_id"], entry["order"]))
    return out


def test_prelabel_1000_pairs_16_concurrent_with_failures_and_a_killed_run(tmp_path, capsys, monkeypatch):
    recs = records()
    pairs = tmp_path / "pairs.jsonl"
    pairs.write_text("".join(json.dumps(r) + "\n" for r in recs), encoding="utf-8")
    out = tmp_path / "labeled.jsonl"
    cache = tmp_path / "answers.cache.jsonl"
    # The client's timeout (2 s) must sit well above an ordinary reply even on a loaded machine, or a slow "ok"
    # is retried and counted twice; the scripted slow replies (3 s) stay beyond it.
    policy = PairPolicy(fault_every=FAULTS, modulus=100, retry_after=0.05, slow_s=3.0, latency=0.01)
    monkeypatch.setenv(KEY_ENV, KEY)

    with ScriptedChatServer(policy, lifetime=180) as server:
        args = [
            "--pairs",
            str(pairs),
            "--out",
            str(out),
            "--model",
            "judge-x",
            "--base-url",
            server.url,
            "--api-key-env",
            KEY_ENV,
            "--concurrency",
            "16",
            "--timeout",
            "2.0",
            "--max-retries",
            "3",
            "--backoff-base",
            "0.01",
            "--backoff-max",
            "0.05",
            "--cache",
            str(cache),
            "--no-progress",
        ]
        # Run 1, in a subprocess killed without warning once the server has answered 700 requests.
        server.answer_target = 700
        env = {**os.environ, KEY_ENV: KEY, "PYTHONUNBUFFERED": "1"}
        proc = subprocess.Popen(
            [sys.executable, "-m", "rlthf_selector.judge.cli", *args],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        try:
            assert server.answered.wait(60), "the first run never got going"
            proc.send_signal(signal.SIGKILL)
            stdout, stderr = proc.communicate(timeout=30)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        assert proc.returncode == -signal.SIGKILL, "run 1 finished before it could be killed"
        assert not out.exists()
        assert KEY not in (stdout + stderr).decode("utf-8", "replace")
        time.sleep(0.3)  # let the server finish reading requests the dead client had already sent
        before = cached_orders(cache)
        assert 600 <= len(before) < 2 * N
        n_before = len(server.requests)

        # Run 2: resumes and finishes.
        started = time.perf_counter()
        assert prelabel_main(args) == 0
        seconds = time.perf_counter() - started
        run2 = server.requests[n_before:]
        n_after_run2 = len(server.requests)
        report = capsys.readouterr()

        # Run 3: everything finished is cached; only the never-answered pairs are asked again.
        assert prelabel_main(args) == 0
        run3 = server.requests[n_after_run2:]
        max_in_flight = server.max_in_flight

    # No answer received by run 1 was asked for again.
    asked_again = {(f"p{r.pair}", order_of(r, recs)) for r in run2} & before
    assert not asked_again, sorted(asked_again)[:5]
    # Run 2 asked every other (pair, order) exactly once, apart from retries of the scripted faults.
    answered2 = Counter((r.pair, order_of(r, recs)) for r in run2 if r.reply == "ok")
    assert all(c == 1 for c in answered2.values())
    assert {r.pair % 100 for r in run3} == {23}

    rows = [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]
    assert [r["id"] for r in rows] == [r["id"] for r in recs] and all(r["source"] == "test" for r in rows)
    reasons = Counter((r["ai_unlabeled_reason"] or "").split(":")[0] for r in rows if r["ai_label"] is None)
    assert reasons == {"malformed": 10, "request_failed": 10}
    for k, row in enumerate(rows):
        fault = FAULTS.get(k % 100)
        if fault == "malformed":
            assert row["ai_label"] is None and row["ai_unlabeled_reason"].startswith("malformed:")
        elif fault == "always_500":
            assert row["ai_label"] is None and "HTTP 500" in row["ai_unlabeled_reason"]
        elif fault == "position_bias":
            assert row["ai_label"] == "a" and row["ai_consistent"] is False and row["ai_confidence"] <= 0.5
        else:
            assert row["ai_label"] == ("a" if k % 2 == 0 else "b"), (k, fault, row)
            assert row["ai_consistent"] is True
            assert row["ai_confidence"] == pytest.approx(1.0 if fault == "no_logprobs" else 0.9)
    assert 8 <= max_in_flight <= 16  # the bound holds, and is used
    assert "labeled 980" in report.out and "malformed 10, request_failed 10" in report.out
    assert KEY not in report.out + report.err + out.read_text() + cache.read_text()
    print(
        f"run 2: {N - len(before) // 2} pairs left, {seconds:.1f} s, max in flight {max_in_flight}", file=sys.__stderr__
    )
