"""The AI annotator: prompt parsing, order fusion, majority, cache, and `prelabel` against a real local HTTP
server speaking the chat-completions protocol (tests/judge_server.py)."""

from __future__ import annotations

import json
import logging
import math
import random
import sys
import time
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

from judge_server import PairPolicy, ScriptedChatServer  # noqa: E402

from rlthf_selector.judge.base import JudgeFatalError  # noqa: E402
from rlthf_selector.judge.cache import JudgeCache, answer_key  # noqa: E402
from rlthf_selector.judge.cli import main as prelabel_main  # noqa: E402
from rlthf_selector.judge.merge import (  # noqa: E402
    LabelFileError,
    combine_judges,
    combine_orders,
    majority_vote,
    read_label_file,
)
from rlthf_selector.judge.openai_judge import OpenAIJudge, backoff_delay, parse_retry_after  # noqa: E402
from rlthf_selector.judge.prompts import (  # noqa: E402
    PromptTemplate,
    TemplateError,
    first_position_probability,
    load_template,
    parse_verdict,
)
from rlthf_selector.judge.runner import judge_pairs  # noqa: E402

KEY_ENV = "RLTHF_TEST_JUDGE_KEY"
KEY = "sk-test-DO-NOT-LEAK-7f3a9c1e"


def make_records(n: int, start: int = 0) -> list[dict]:
    """Pair k: the good response is A for even k, B for odd k (expected label 'a' / 'b')."""
    out = []
    for k in range(start, start + n):
        good, bad = f"good-{k}: a careful, correct answer.", f"bad-{k}: a careless answer."
        a, b = (good, bad) if k % 2 == 0 else (bad, good)
        out.append({"id": f"p{k}", "prompt": f"question-{k}: which is right?", "response_a": a, "response_b": b})
    return out


def expected(k: int) -> str:
    return "a" if k % 2 == 0 else "b"


def write_jsonl(path: Path, records: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
    return path


def read_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def cli_args(server: ScriptedChatServer, pairs: Path, out: Path, *extra: str, model: str = "judge-x") -> list[str]:
    return [
        "--pairs",
        str(pairs),
        "--out",
        str(out),
        "--model",
        model,
        "--base-url",
        server.url,
        "--api-key-env",
        KEY_ENV,
        "--timeout",
        "0.5",
        "--max-retries",
        "3",
        "--backoff-base",
        "0.01",
        "--backoff-max",
        "0.05",
        "--no-progress",
        *extra,
    ]


def order_of(req, records_by_k) -> str:
    """'ab' when the pair's response A was shown first."""
    rec = records_by_k[req.pair]
    return "ab" if rec["response_a"].startswith(req.first_shown) else "ba"


# ------------------------------------------------------------------------------------------ parsing


@pytest.mark.parametrize(
    "text, verdict",
    [
        ("A", "A"),
        ("B", "B"),
        (" b\n", "B"),
        ("A.", "A"),
        ("**B**", "B"),
        ("[[A]]", "A"),
        ("(B)", "B"),
        ("Response A", "A"),
        ("Answer: B", "B"),
        ("The better response is A.", "A"),
        ("<think>A looks long, B is right</think>\nB", "B"),
        ("I think both are fine.", None),
        ("A or B", None),
        ("", None),
        (None, None),
        ("It is a tie.", None),
        ("<think>hmm, A or", None),
        ("Answer: A. Actually the answer is B", None),
    ],
)
def test_parse_verdict(text, verdict):
    assert parse_verdict(text) == verdict


def test_first_position_probability_sums_letter_variants():
    logprobs = {
        "content": [
            {
                "token": " A",
                "logprob": math.log(0.6),
                "top_logprobs": [
                    {"token": " A", "logprob": math.log(0.6)},
                    {"token": "A", "logprob": math.log(0.1)},
                    {"token": " B", "logprob": math.log(0.2)},
                    {"token": "The", "logprob": math.log(0.1)},
                ],
            }
        ]
    }
    assert first_position_probability(logprobs, "A") == pytest.approx(0.7 / 0.9)
    assert first_position_probability(logprobs, "B") is None  # letter token disagrees with the verdict
    assert first_position_probability(None, "A") is None
    lead_in = {
        "content": [
            {"token": "Response", "logprob": -0.01, "top_logprobs": []},
            {"token": " B", "logprob": math.log(0.8), "top_logprobs": [{"token": " A", "logprob": math.log(0.2)}]},
        ]
    }
    assert first_position_probability(lead_in, "B") == pytest.approx(0.2)


def test_template_placeholders_and_files(tmp_path):
    t = PromptTemplate(user="Q: {prompt}\n1: {response_a}\n2: {response_b}", system="")
    msgs = t.messages("p", "x {response_b} y", "z")
    assert msgs == [{"role": "user", "content": "Q: p\n1: x {response_b} y\n2: z"}]  # no re-expansion
    assert "could not be read" in t.messages("p", "x", "z", strict=True)[-1]["content"]
    with pytest.raises(TemplateError, match="response_b"):
        PromptTemplate(user="{prompt} {response_a}")
    bad = tmp_path / "bad.txt"
    bad.write_text("{prompt} {response_a}")
    with pytest.raises(TemplateError, match="bad.txt"):
        load_template(bad)
    good = tmp_path / "good.txt"
    good.write_text("{prompt}|{response_a}|{response_b}")
    assert load_template(good, "none").system == ""
    assert load_template(good).sha256 != PromptTemplate().sha256


def test_retry_after_and_backoff():
    assert parse_retry_after("2.5") == 2.5
    assert parse_retry_after("-3") == 0.0
    assert parse_retry_after(None) is None and parse_retry_after("soon") is None
    assert parse_retry_after("Wed, 21 Oct 2015 07:28:10 GMT", now=1445412480.0) == pytest.approx(10.0)
    rng = random.Random(0)
    delays = [backoff_delay(k, base=0.5, cap=4.0, rng=rng) for k in range(8) for _ in range(50)]
    assert all(0 <= d <= 4.0 for d in delays)
    assert max(backoff_delay(0, base=0.5, cap=4.0, rng=rng) for _ in range(50)) <= 0.5


# ------------------------------------------------------------------------------------ fusion, majority


def test_combine_orders_known_answers():
    # pairs: consistent A; consistent B; position-biased; one order only; none; inconsistent with logprobs
    ab = np.array([1, -1, 1, 1, 0, 1], dtype=np.int8)
    ba = np.array([1, -1, -1, 0, 0, -1], dtype=np.int8)
    label, conf, consistent = combine_orders(ab, ba)
    assert label.tolist() == [1, -1, 1, 1, 0, 1]
    assert consistent.tolist() == [True, True, False, False, False, False]
    assert conf.tolist() == [1.0, 1.0, 0.25, 0.5, 0.0, 0.25]
    p_ab = np.array([0.9, 0.2, 0.9, 0.8, np.nan, 0.6])
    p_ba = np.array([0.7, 0.4, 0.1, np.nan, np.nan, 0.2])
    label, conf, consistent = combine_orders(ab, ba, p_ab, p_ba)
    assert label.tolist() == [1, -1, 1, 1, 0, -1]  # last: mean p_a 0.4 -> B, despite A shown first
    np.testing.assert_allclose(conf, [0.8, 0.7, 0.25, 0.4, 0.0, 0.3])
    # An inconsistent verdict never outranks a consistent one (temperature 0: p(label) >= 0.5 per order).
    rng = np.random.default_rng(0)
    p = rng.uniform(0.5, 1.0, size=(200, 2))
    c_consistent = combine_orders(np.ones(200), np.ones(200), p[:, 0], p[:, 1])[1]
    c_contra = combine_orders(np.ones(200), -np.ones(200), p[:, 0], 1 - p[:, 1])[1]
    assert c_contra.max() <= 0.5 <= c_consistent.min()


def test_majority_vote_known_answers():
    labels = np.array([[1, 1, -1], [1, -1, 0], [1, -1, 0], [0, 0, 0], [-1, -1, -1]], dtype=np.int8)
    conf = np.array([[1.0, 0.8, 0.6], [0.9, 0.6, 0.0], [0.5, 0.5, 0.0], [0, 0, 0], [1.0, 1.0, 1.0]])
    label, agree, disagree, tied = majority_vote(labels, conf)
    assert label.tolist() == [1, 1, 1, 0, -1]  # row 1: more confidence for A; row 2: full tie -> first judge
    assert tied.tolist() == [False, False, True, False, False]
    np.testing.assert_allclose(agree, [(1.0 + 0.8 + 0.4) / 3, (0.9 + 0.4) / 2, 0.5, 0.0, 1.0])
    np.testing.assert_allclose(disagree, [1 / 3, 0.5, 0.5, 0.0, 0.0])
    label, _, _, tied = majority_vote(np.array([[0, -1, 1]], dtype=np.int8), np.ones((1, 3)))
    assert label.tolist() == [-1] and tied.tolist() == [True]  # the first judge that voted


# ----------------------------------------------------------------------------------------------- cache


def test_answer_key_depends_on_everything_that_changes_the_answer():
    sig = {"model": "m", "template": "t"}
    base = answer_key(sig, "p", "x", "y", "ab")
    assert base == answer_key(dict(sig), "p", "x", "y", "ab")
    assert (
        len(
            {
                base,
                answer_key(sig, "p", "y", "x", "ba"),
                answer_key({**sig, "model": "n"}, "p", "x", "y", "ab"),
                answer_key({**sig, "template": "u"}, "p", "x", "y", "ab"),
                answer_key(sig, "p", "x", "y", "ba"),
                answer_key(sig, "px", "", "y", "ab"),
            }
        )
        == 6
    )


def test_cache_survives_a_torn_last_line(tmp_path, caplog):
    path = tmp_path / "c.jsonl"
    with JudgeCache(path) as cache:
        cache.put("k1", {"verdict": "A"})
        cache.put("k2", {"verdict": "B"})
    with open(path, "a") as fh:
        fh.write('{"key": "k3", "verd')  # killed mid-write
    with caplog.at_level(logging.WARNING):
        cache = JudgeCache(path)
    assert len(cache) == 2 and cache.n_corrupt == 1 and "k3" not in cache
    assert "line 3" in caplog.text
    cache.put("k3", {"verdict": "A"})
    cache.close()
    reread = JudgeCache(path)
    assert reread.get("k3")["verdict"] == "A" and reread.n_corrupt == 1 and len(reread) == 3
    reread.close()


# ------------------------------------------------------------------------------------- against a server


def test_both_orders_with_logprobs(tmp_path):
    records = make_records(6)
    with ScriptedChatServer(PairPolicy(p_letter=0.8)) as server:
        judge = OpenAIJudge("judge-x", base_url=server.url, timeout=2)
        labels, stats = judge_pairs(
            judge, *zip(*[(r["prompt"], r["response_a"], r["response_b"]) for r in records]), concurrency=4
        )
        reqs = server.requests
    assert len(reqs) == 12
    by_k = {k: r for k, r in enumerate(records)}
    seen = sorted((r.pair, order_of(r, by_k)) for r in reqs)
    assert seen == sorted((k, o) for k in range(6) for o in ("ab", "ba"))
    assert all(r.body["logprobs"] is True and r.body["top_logprobs"] == 5 for r in reqs)
    assert labels.label.tolist() == [1, -1, 1, -1, 1, -1]
    assert (labels.consistent == 1).all()
    np.testing.assert_allclose(labels.confidence, 0.8)
    assert stats.answers_requested == 12 and stats.requests == 12 and stats.prompt_tokens == 600


def test_retries_on_429_500_timeouts_and_garbage(tmp_path):
    policy = PairPolicy({0: "rate_limit", 1: "error_500", 2: "slow", 3: "garbage_body"}, retry_after=0.3, slow_s=1.0)
    records = make_records(5)
    with ScriptedChatServer(policy) as server:
        judge = OpenAIJudge(
            "judge-x", base_url=server.url, timeout=0.4, max_retries=3, backoff_base=0.01, backoff_max=0.02
        )
        started = time.monotonic()
        labels, stats = judge_pairs(
            judge,
            [r["prompt"] for r in records],
            [r["response_a"] for r in records],
            [r["response_b"] for r in records],
            concurrency=8,
        )
        elapsed = time.monotonic() - started
        attempts = {}
        for r in server.requests:
            attempts[(r.pair, r.first_shown)] = max(attempts.get((r.pair, r.first_shown), 0), r.attempt)
    assert labels.label.tolist() == [1, -1, 1, -1, 1]
    assert (labels.consistent == 1).all()
    for k in range(4):
        assert attempts[(k, "good")] == 2 and attempts[(k, "bad")] == 2, k
    assert attempts[(4, "good")] == 1
    assert stats.requests == 10 + 8
    assert elapsed >= 0.3  # Retry-After was waited out


def test_malformed_answers_are_reasked_strictly_then_unlabeled(tmp_path):
    records = make_records(3)
    pairs = write_jsonl(tmp_path / "pairs.jsonl", records)
    out = tmp_path / "out.jsonl"
    with ScriptedChatServer(PairPolicy({0: "malformed_once", 1: "malformed"})) as server:
        assert prelabel_main(cli_args(server, pairs, out)) == 0
        strict = [r for r in server.requests if r.strict]
        assert sorted((r.pair, r.first_shown) for r in strict) == [(0, "bad"), (0, "good"), (1, "bad"), (1, "good")]
        rows = read_jsonl(out)
        assert [r["ai_label"] for r in rows] == ["a", None, "a"]
        assert rows[1]["ai_unlabeled_reason"].startswith("malformed:")
        assert rows[0]["ai_unlabeled_reason"] is None and rows[0]["ai_consistent"] is True
        # The unreadable answers were paid for and are cached: a rerun asks nothing.
        n_before = len(server.requests)
        assert prelabel_main(cli_args(server, pairs, out)) == 0
        assert len(server.requests) == n_before
        assert read_jsonl(out)[1]["ai_unlabeled_reason"].startswith("malformed:")


def test_position_bias_is_kept_as_inconsistent_with_lower_confidence(tmp_path):
    records = make_records(4)
    pairs = write_jsonl(tmp_path / "pairs.jsonl", records)
    out = tmp_path / "out.jsonl"
    with ScriptedChatServer(PairPolicy({2: "position_bias", 3: "position_bias"})) as server:
        assert prelabel_main(cli_args(server, pairs, out, "--summary-json", str(tmp_path / "s.json"))) == 0
    rows = read_jsonl(out)
    assert [r["ai_consistent"] for r in rows] == [True, True, False, False]
    assert all(r["ai_label"] is not None for r in rows)  # kept, not dropped
    assert max(r["ai_confidence"] for r in rows[2:]) < min(r["ai_confidence"] for r in rows[:2])
    summary = json.loads((tmp_path / "s.json").read_text())
    assert summary["inconsistent"] == 2 and summary["labeled"] == 4 and summary["unlabeled"] == 0


def test_persistent_failures_are_listed_and_retried_on_the_next_run(tmp_path, capsys):
    records = make_records(3)
    pairs = write_jsonl(tmp_path / "pairs.jsonl", records)
    out = tmp_path / "out.jsonl"
    policy = PairPolicy({1: "always_500"})
    with ScriptedChatServer(policy) as server:
        assert prelabel_main(cli_args(server, pairs, out)) == 0
        rows = read_jsonl(out)
        assert rows[1]["ai_label"] is None and rows[1]["ai_unlabeled_reason"].startswith("request_failed: HTTP 500")
        assert "request_failed 1" in capsys.readouterr().out
        assert sum(r.pair == 1 for r in server.requests) == 2 * 4  # both orders, 1 + 3 retries
        policy.faults.clear()  # the server recovers: only pair 1 is asked again
        n_before = len(server.requests)
        assert prelabel_main(cli_args(server, pairs, out)) == 0
        assert {r.pair for r in server.requests[n_before:]} == {1}
    assert [r["ai_label"] for r in read_jsonl(out)] == ["a", "b", "a"]


def test_logprobs_refused_by_server_falls_back_to_agreement(tmp_path):
    def script(req):
        if "logprobs" in req.body:
            from judge_server import Reply

            return Reply(400, {"error": {"message": "logprobs is not supported by this model"}}), "400"
        return PairPolicy()(req)

    records = make_records(4)
    with ScriptedChatServer(script) as server:
        judge = OpenAIJudge("judge-x", base_url=server.url, timeout=2)
        labels, _ = judge_pairs(
            judge,
            [r["prompt"] for r in records],
            [r["response_a"] for r in records],
            [r["response_b"] for r in records],
            concurrency=1,
        )
    assert labels.label.tolist() == [1, -1, 1, -1]
    np.testing.assert_allclose(labels.confidence, 1.0)
    assert judge.logprobs is False


def test_bad_key_stops_the_run_without_showing_the_key(tmp_path, monkeypatch, capsys):
    from judge_server import Reply

    monkeypatch.setenv(KEY_ENV, KEY)
    pairs = write_jsonl(tmp_path / "pairs.jsonl", make_records(3))
    with ScriptedChatServer(
        lambda req: (Reply(401, {"error": {"message": f"invalid key {req.authorization}"}}), "401")
    ) as server:
        assert prelabel_main(cli_args(server, pairs, tmp_path / "out.jsonl")) == 2
        assert server.requests[0].authorization == f"Bearer {KEY}"
    err = capsys.readouterr().err
    assert "401" in err and KEY_ENV in err and KEY not in err
    assert not (tmp_path / "out.jsonl").exists()


def test_the_key_never_appears_in_logs_output_or_files(tmp_path, monkeypatch, capsys, caplog):
    monkeypatch.setenv(KEY_ENV, KEY)
    records = make_records(8)
    pairs = write_jsonl(tmp_path / "pairs.jsonl", records)
    out = tmp_path / "out.jsonl"
    policy = PairPolicy({0: "echo_key", 1: "echo_key", 2: "malformed", 3: "always_500"})
    with caplog.at_level(logging.DEBUG), ScriptedChatServer(policy) as server:
        assert prelabel_main(cli_args(server, pairs, out, "--log-level", "DEBUG", "--progress")) == 0
        auths = {r.authorization for r in server.requests}
    assert auths == {f"Bearer {KEY}"}  # the key was sent...
    captured = capsys.readouterr()
    texts = [
        captured.out,
        captured.err,
        caplog.text,
        out.read_text(),
        Path(str(out) + ".judge-cache.jsonl").read_text(),
    ]
    assert "HTTP 500" in caplog.text  # ...the echoing errors were logged...
    assert all(KEY not in t for t in texts)  # ...and the key appears nowhere
    assert "***" in caplog.text
    assert KEY not in repr(OpenAIJudge("m", base_url=server.url, api_key=KEY))


def test_unknown_model_404_is_fatal(tmp_path):
    from judge_server import Reply

    with ScriptedChatServer(lambda req: (Reply(404, {"error": {"message": "model not found"}}), "404")) as server:
        judge = OpenAIJudge("nope", base_url=server.url, timeout=2)
        with pytest.raises(JudgeFatalError, match="model 'nope'"):
            judge.judge_order("q", "x", "y")


def test_resume_after_an_interrupted_run_never_asks_a_cached_pair_again(tmp_path):
    from judge_server import Reply

    records = make_records(40)
    by_k = dict(enumerate(records))
    pairs = write_jsonl(tmp_path / "pairs.jsonl", records)
    out = tmp_path / "out.jsonl"
    healthy = PairPolicy()
    state = {"broken_after": 30}

    def script(req):  # the key is revoked after 30 answers: the run stops with a fatal error
        if state["broken_after"] is not None and len(server.answered_requests()) >= state["broken_after"]:
            return Reply(401, {"error": {"message": "key revoked"}}), "401"
        return healthy(req)

    with ScriptedChatServer(script) as server:
        assert prelabel_main(cli_args(server, pairs, out, "--concurrency", "4")) == 2
        assert not out.exists()
        cache = JudgeCache(Path(str(out) + ".judge-cache.jsonl"))
        cached = {(e["pair_id"], e["order"]) for e in cache._entries.values()}
        cache.close()
        assert 30 <= len(cached) < 80
        n_before = len(server.requests)
        state["broken_after"] = None
        assert prelabel_main(cli_args(server, pairs, out, "--concurrency", "4")) == 0
        resumed = [(f"p{r.pair}", order_of(r, by_k)) for r in server.requests[n_before:]]
    assert not set(resumed) & cached
    assert len(resumed) == len(set(resumed)) == 80 - len(cached)
    assert [r["ai_label"] for r in read_jsonl(out)] == [expected(k) for k in range(40)]


# ------------------------------------------------------------------------------------------ merging files


def test_labels_from_files_majority_and_disagreement(tmp_path, capsys):
    records = make_records(4)
    pairs = write_jsonl(tmp_path / "pairs.jsonl", records)
    write_jsonl(
        tmp_path / "gpt.jsonl",
        [
            {"id": "p0", "ai_label": "a"},
            {"id": "p1", "ai_label": "b"},
            {"id": "p2", "ai_label": "b"},
            {"id": "p3", "ai_label": None},
        ],
    )
    write_jsonl(
        tmp_path / "panda.jsonl",
        [
            {"id": "p0", "verdict": 1},
            {"id": "p1", "verdict": -1},
            {"id": "p2", "verdict": "a"},
            {"id": "p3", "verdict": "b"},
            {"id": "zzz", "verdict": "a"},
        ],
    )
    write_jsonl(
        tmp_path / "third.jsonl",
        [{"id": "p0", "verdict": "b"}, {"id": "p1", "verdict": "b"}, {"id": "p2", "verdict": "a"}],
    )
    out = tmp_path / "out.jsonl"
    assert (
        prelabel_main(["--pairs", str(pairs), "--out", str(out), "--ai-labels-from", str(tmp_path / "gpt.jsonl")]) == 0
    )
    # A file without the requested column is refused, naming the file, the line and the field.
    assert (
        prelabel_main(
            [
                "--pairs",
                str(pairs),
                "--out",
                str(tmp_path / "x.jsonl"),
                "--ai-labels-column",
                "verdict",
                "--ai-labels-from",
                str(out),
            ]
        )
        == 2
    )
    assert "out.jsonl:1: no 'verdict' field" in capsys.readouterr().err
    out2 = tmp_path / "out2.jsonl"
    assert (
        prelabel_main(
            [
                "--pairs",
                str(pairs),
                "--out",
                str(out2),
                "--ai-labels-column",
                "verdict",
                "--ai-labels-from",
                str(tmp_path / "panda.jsonl"),
                "--ai-labels-from",
                str(tmp_path / "third.jsonl"),
            ]
        )
        == 0
    )
    merged = tmp_path / "merged.jsonl"
    assert (
        prelabel_main(
            ["--pairs", str(pairs), "--out", str(merged), "--ai-labels-from", str(out), "--ai-labels-from", str(out2)]
        )
        == 0
    )
    rows = read_jsonl(merged)
    assert rows[0]["judge_names"] == "gpt|panda:verdict|third:verdict"
    assert [r["judge_labels"] for r in rows] == [["a", "a", "b"], ["b", "b", "b"], ["b", "a", "a"], [None, "b", None]]
    assert [r["ai_label"] for r in rows] == ["a", "b", "a", "b"]
    np.testing.assert_allclose([r["ai_disagreement"] for r in rows], [1 / 3, 0, 1 / 3, 0], atol=1e-6)
    assert [r["ai_consistent"] for r in rows] == [True] * 4  # no order information in label files: not inconsistent


def test_label_file_errors_name_file_and_line(tmp_path):
    ids = ["p0", "p1"]
    f = write_jsonl(tmp_path / "l.jsonl", [{"id": "p0", "ai_label": "a"}, {"id": "p1", "ai_label": "maybe"}])
    with pytest.raises(LabelFileError, match=r"l.jsonl:2: ai_label: label 'maybe'"):
        read_label_file(f, ids)
    f.write_text('{"id": "p0", "ai_label": "a"}\n{"id": "p0", "ai_label": "b"}\n')
    with pytest.raises(LabelFileError, match=r"l.jsonl:2: duplicate id 'p0'"):
        read_label_file(f, ids)
    f.write_text('{"id": "p0", "ai_label": "a"}\nnot json\n')
    with pytest.raises(LabelFileError, match=r"l.jsonl:2: not valid JSON"):
        read_label_file(f, ids)
    f.write_text('{"id": "p0", "ai_label": "a", "ai_confidence": 0.7, "ai_consistent": false}\n')
    (jl,) = read_label_file(f, ids)
    assert jl.label.tolist() == [1, 0] and jl.confidence.tolist() == [0.7, 0.0] and jl.consistent.tolist() == [0, -1]
    assert jl.reason[1].startswith("no_label:")
    ev = combine_judges([jl])
    assert ev.ai_consistent.tolist() == [False, False] and ev.ai_unlabeled_reason[1].startswith("no_label:")


def test_output_loads_back_as_pairs_with_evidence(tmp_path):
    from rlthf_selector.io import load_jsonl

    records = make_records(6)
    records[0]["meta"] = {"source": "kept as is"}
    pairs = write_jsonl(tmp_path / "pairs.jsonl", records)
    out = tmp_path / "out.jsonl"
    with ScriptedChatServer(PairPolicy({1: "position_bias", 2: "always_500"})) as server:
        assert prelabel_main(cli_args(server, pairs, out, "--model", "judge-y")) == 0
    rows = read_jsonl(out)
    assert rows[0]["meta"] == {"source": "kept as is"}
    loaded, _ = load_jsonl(out)
    # pair 1: both judges always say "A" -> a tie in each, settled by the A-first order: 'a', flagged inconsistent
    assert loaded.ai_label.tolist() == [1, 1, 0, -1, 1, -1]
    assert loaded.extra["ai_consistent"].tolist() == [True, False, False, True, True, True]
    assert loaded.extra["judge_labels"].shape == (6, 2)
    doubt = loaded.extra["judge_doubt"]
    # p(letter) = 0.9 in both orders -> confidence 0.9; contradicted orders -> 0.5 * 0.5; unlabeled -> doubt 1
    np.testing.assert_allclose(doubt, [0.1, 0.75, 1.0, 0.1, 0.1, 0.1], atol=1e-6)
    assert loaded.extra["ai_unlabeled_reason"][2].startswith("no_verdict:")


def test_usage_errors(tmp_path, capsys):
    pairs = write_jsonl(tmp_path / "pairs.jsonl", make_records(2))
    assert prelabel_main(["--pairs", str(pairs), "--out", str(tmp_path / "o.jsonl")]) == 2
    assert "nothing to label with" in capsys.readouterr().err
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"id": "x", "prompt": "p", "response_a": "a"}\n')
    assert prelabel_main(["--pairs", str(bad), "--out", str(tmp_path / "o.jsonl"), "--model", "m"]) == 2
    assert "bad.jsonl:1" in capsys.readouterr().err


# ------------------------------------------------------------------------------------------- real data

PANDALM = Path(__file__).resolve().parents[2] / "shared" / "data" / "pandalm"


@pytest.mark.skipif(not (PANDALM / "testset-v1.json").exists(), reason="shared PandaLM data not present")
@pytest.mark.filterwarnings("ignore::rlthf_selector.io.DataSkipWarning")  # ties are dropped, and counted
def test_two_real_judges_merged_flag_the_ai_mistakes(tmp_path):
    """GPT-3.5 and PandaLM-7B verdicts on PandaLM, merged as two label files: where they disagree the
    AI label (ties go to the first judge, GPT-3.5) is wrong far more often, and judge_doubt ranks errors."""
    from sklearn.metrics import roc_auc_score

    from rlthf_selector.io import load_jsonl, load_pandalm, write_jsonl as write_pairs

    pairs, _ = load_pandalm(PANDALM, judge="gpt-3.5", second_judge="pandalm-7b")
    gold = pairs.gold_label.copy()
    canonical = write_pairs(pairs.replace(ai_label=np.zeros(len(pairs), np.int8), extra={}), tmp_path / "pairs.jsonl")
    write_jsonl(tmp_path / "gpt-3.5.jsonl", [{"id": i, "ai_label": int(v)} for i, v in zip(pairs.ids, pairs.ai_label)])
    second = pairs.extra["second_judge_label"]
    write_jsonl(tmp_path / "pandalm-7b.jsonl", [{"id": i, "ai_label": int(v)} for i, v in zip(pairs.ids, second)])
    out = tmp_path / "merged.jsonl"
    assert (
        prelabel_main(
            [
                "--pairs",
                str(canonical),
                "--out",
                str(out),
                "--ai-labels-from",
                str(tmp_path / "gpt-3.5.jsonl"),
                "--ai-labels-from",
                str(tmp_path / "pandalm-7b.jsonl"),
            ]
        )
        == 0
    )
    merged, _ = load_jsonl(out)
    np.testing.assert_array_equal(merged.ai_label, pairs.ai_label)  # GPT-3.5 labels every pair; ties go to it
    wrong = merged.ai_label != gold
    contested = merged.extra["ai_disagreement"] > 0
    assert contested.sum() == ((second != 0) & (second != pairs.ai_label)).sum() > 100
    assert wrong[contested].mean() > 2 * wrong[~contested].mean()
    assert roc_auc_score(wrong, merged.extra["judge_doubt"]) > 0.6


def test_on_error_skip_labels_the_good_lines_and_counts_the_rest(tmp_path, caplog):
    good = make_records(3)
    pairs = tmp_path / "pairs.jsonl"
    pairs.write_text(
        json.dumps(good[0]) + "\nnot json\n" + json.dumps(good[1]) + "\n" + '{"id": "x"}\n' + json.dumps(good[2]) + "\n"
    )
    labels = write_jsonl(tmp_path / "labels.jsonl", [{"id": r["id"], "ai_label": "a"} for r in good])
    out = tmp_path / "out.jsonl"
    args = ["--pairs", str(pairs), "--out", str(out), "--ai-labels-from", str(labels)]
    assert prelabel_main(args) == 2  # default: the first bad line stops the run
    summary = tmp_path / "summary.json"
    with caplog.at_level(logging.WARNING), pytest.warns(UserWarning, match="skipped 2"):
        assert prelabel_main([*args, "--on-error", "skip", "--summary-json", str(summary)]) == 0
    assert [r["id"] for r in read_jsonl(out)] == ["p0", "p1", "p2"]
    assert "skipped 2" in caplog.text and f"{pairs}:2: invalid JSON" in caplog.text and f"{pairs}:4: " in caplog.text
    skipped = json.loads(summary.read_text())["input"]["skipped_at"]
    assert [s["where"] for s in skipped] == [f"{pairs}:2", f"{pairs}:4"]


def test_ctrl_c_exits_130_and_the_rerun_resumes(tmp_path):
    import os
    import signal
    import subprocess

    records = make_records(300)
    pairs = write_jsonl(tmp_path / "pairs.jsonl", records)
    out = tmp_path / "out.jsonl"
    with ScriptedChatServer(PairPolicy(latency=0.02)) as server:
        args = cli_args(server, pairs, out, "--concurrency", "4")
        server.answer_target = 40
        proc = subprocess.Popen(
            [sys.executable, "-m", "rlthf_selector.judge.cli", *args],
            env=dict(os.environ),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        try:
            assert server.answered.wait(60)
            proc.send_signal(signal.SIGINT)
            _, err = proc.communicate(timeout=30)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        assert proc.returncode == 130, err.decode()
        assert b"interrupted" in err and b"Rerun the same command" in err
        assert not out.exists()
        cached = len(Path(str(out) + ".judge-cache.jsonl").read_text().splitlines())
        answered_before = len(server.answered_requests())
        assert cached == answered_before  # every answer received, in flight at Ctrl-C too, was cached
        assert prelabel_main(args) == 0
        assert len(server.answered_requests()) - answered_before == 600 - cached
