"""Loaders: canonical JSONL, TRL, HH-RLHF and PandaLM, on small fixtures written to tmp_path."""

from __future__ import annotations

import gzip
import json
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest

from rlthf_selector.io import (
    DataSkipWarning,
    LoadReport,
    load_hh_rlhf,
    load_jsonl,
    load_pairs,
    load_pandalm,
    load_trl,
    split_hh_transcripts,
    write_jsonl,
)
from rlthf_selector.pairs import PreferencePairs
from rlthf_selector.validation import PairValidationError, check_label_vector, check_text


def _rec(i, **kw):
    base = {"id": f"p{i}", "prompt": f"question {i}", "response_a": f"answer A{i}", "response_b": f"answer B{i}",
            "ai_label": "a", "human_label": None}
    base.update(kw)
    return base


def _write_lines(path: Path, lines: list) -> Path:
    """Write JSONL; items that are bytes/str are written verbatim (to craft broken lines)."""
    out = b""
    for item in lines:
        if isinstance(item, bytes):
            out += item + b"\n"
        elif isinstance(item, str):
            out += item.encode("utf-8") + b"\n"
        else:
            out += json.dumps(item).encode("utf-8") + b"\n"
    path.write_bytes(out)
    return path


# ------------------------------------------------------------------------------------------------ validation


def test_check_text_and_label_vector_name_the_problem():
    assert check_text("x", where="f:1 prompt") == "x"
    with pytest.raises(ValueError, match=r"f:1 prompt must be a string, got int 3"):
        check_text(3, where="f:1 prompt")
    assert check_label_vector([1, -1, 0], 3, "ai").dtype == np.int8
    with pytest.raises(ValueError, match=r"ai\[1\] = 2"):
        check_label_vector([1, 2, 0], 3, "ai")
    with pytest.raises(ValueError, match=r"shape \(4,\)"):
        check_label_vector([1, -1, 0], 4, "ai")
    with pytest.raises(ValueError, match=r"gold\[2\] = 0"):
        check_label_vector([1, -1, 0], 3, "gold", allow_unknown=False)


def test_pair_validation_error_is_a_value_error_with_location():
    err = PairValidationError("field 'prompt' is missing", source="data.jsonl", line=7, reason="missing field")
    assert isinstance(err, ValueError)
    assert str(err) == "data.jsonl:7: field 'prompt' is missing"
    assert (err.line, err.reason) == (7, "missing field")
    assert str(PairValidationError("bad", source="<records>", row=3)) == "<records> row 3: bad"


# ------------------------------------------------------------------------------------------------ canonical JSONL


def test_load_jsonl_reads_labels_and_evidence(tmp_path):
    path = _write_lines(tmp_path / "pairs.jsonl", [
        _rec(0, ai_label="a", human_label="b", gold_label="b", ai_confidence=0.9, ai_consistent=True,
             judge_labels=["a", "b", "a"]),
        _rec(1, ai_label=-1, human_label=0, ai_confidence=0.55, ai_consistent=False, judge_labels=[-1]),
        _rec(2, ai_label=None, human_label=None, ai_consistent=True),
    ])
    pairs, report = load_jsonl(path)
    assert list(pairs.ids) == ["p0", "p1", "p2"]
    assert pairs.ai_label.tolist() == [1, -1, 0]
    assert pairs.human_label.tolist() == [-1, 0, 0]
    assert pairs.gold_label.tolist() == [-1, 0, 0]
    assert pairs.response_b[1] == "answer B1"
    np.testing.assert_allclose(pairs.extra["ai_confidence"], [0.9, 0.55, np.nan])
    assert pairs.extra["ai_consistent"].dtype == bool
    assert pairs.extra["ai_consistent"].tolist() == [True, False, True]
    assert pairs.extra["judge_labels"].tolist() == [[1, -1, 1], [-1, 0, 0], [0, 0, 0]]
    assert (report.n_read, report.n_loaded, report.skipped) == (3, 3, {})
    assert "read 3, loaded 3" in report.summary()


def test_load_jsonl_reads_multi_judge_evidence(tmp_path):
    # The per-pair shape written by the judge merge step: per-judge lists, NaN/unknown as null.
    row = _rec(0, ai_confidence=0.5, ai_consistent=False, ai_disagreement=0.5, ai_unlabeled_reason="",
               judge_doubt=0.5, judge_names="j1|j2", judge_labels=["a", None], judge_confidence=[0.9, None],
               judge_consistent=[1.0, None])
    pairs, _ = load_jsonl(_write_lines(tmp_path / "judged.jsonl", [row, _rec(1, judge_labels=["b", "b"],
                                                                              judge_confidence=[0.2, 0.4])]))
    assert pairs.extra["judge_labels"].tolist() == [[1, 0], [-1, -1]]
    np.testing.assert_allclose(pairs.extra["judge_confidence"], [[0.9, np.nan], [0.2, 0.4]])
    np.testing.assert_allclose(pairs.extra["judge_consistent"], [[1.0, np.nan], [np.nan, np.nan]])
    assert pairs.extra["judge_names"].tolist() == ["j1|j2", None]
    np.testing.assert_allclose(pairs.extra["judge_doubt"], [0.5, np.nan])


def test_write_jsonl_round_trips(tmp_path):
    pairs = PreferencePairs(
        ids=["x", "y", "z"], prompt=["p", "q", "r"], response_a=["a1", "a2", "a3 ünï"],
        response_b=["b1", "b2", "b3"], ai_label=[1, -1, 0], human_label=[0, 1, 0], gold_label=[1, 1, -1],
        extra={"ai_confidence": np.array([0.7, np.nan, 1.0]), "ai_consistent": np.array([True, False, True]),
               "judge_labels": np.array([[1, -1], [0, 0], [-1, -1]], dtype=np.int8),
               "second_judge_label": np.array([1, 0, -1], dtype=np.int8),
               "note": np.array(["n1", None, "n3"], dtype=object)},
    )
    for name in ("out.jsonl", "out.jsonl.gz"):
        back, report = load_jsonl(write_jsonl(pairs, tmp_path / name))
        assert report.n_loaded == 3
        for col in ("ids", "prompt", "response_a", "response_b"):
            assert getattr(back, col).tolist() == getattr(pairs, col).tolist()
        for col in ("ai_label", "human_label", "gold_label"):
            np.testing.assert_array_equal(getattr(back, col), getattr(pairs, col))
        assert set(back.extra) == set(pairs.extra)
        np.testing.assert_allclose(back.extra["ai_confidence"], [0.7, np.nan, 1.0])
        assert back.extra["ai_consistent"].tolist() == [True, False, True]
        np.testing.assert_array_equal(back.extra["judge_labels"], pairs.extra["judge_labels"])
        assert back.extra["second_judge_label"].dtype == np.int8
        np.testing.assert_array_equal(back.extra["second_judge_label"], [1, 0, -1])
        assert back.extra["note"].tolist() == ["n1", None, "n3"]
    first = json.loads((tmp_path / "out.jsonl").read_text().splitlines()[0])
    assert first["ai_label"] == "a" and first["human_label"] is None and first["judge_labels"] == ["a", "b"]


BAD_LINES = [
    # (second line, reason, message fragment)
    (json.dumps({k: v for k, v in _rec(1).items() if k != "prompt"}), "missing field", "field 'prompt' is missing"),
    (json.dumps(_rec(1, response_a=["not", "text"])), "non-string text", "field 'response_a' must be a string, got list"),
    (json.dumps(_rec(1, response_b="answer A1")), "identical responses", "response_a and response_b are identical"),
    (json.dumps(_rec(0, prompt="other")), "duplicate id", "duplicate id 'p0' (first at line 1)"),
    ('{"id": "p1", "prompt": ', "invalid JSON", "invalid JSON"),
    (b'{"id": "p1", "prompt": "caf\xe9"}', "non-UTF-8 bytes", "not valid UTF-8"),
    (json.dumps(_rec(1, ai_label="maybe")), "bad label", "field 'ai_label': label 'maybe'"),
    (json.dumps(_rec(1, human_label=2)), "bad label", "field 'human_label'"),
    ("[1, 2]", "not an object", "expected a JSON object, got list"),
    (json.dumps(_rec(1, id=None)), "bad id", "field 'id' must be a non-empty string"),
    (json.dumps(_rec(1, ai_confidence=1.5)), "bad evidence field", "ai_confidence' must be in [0, 1]"),
]


@pytest.mark.parametrize("bad_line, reason, fragment", BAD_LINES, ids=[r for _, r, _ in BAD_LINES])
def test_load_jsonl_errors_name_file_and_line(tmp_path, bad_line, reason, fragment):
    path = _write_lines(tmp_path / "bad.jsonl", [_rec(0), bad_line, _rec(2)])
    with pytest.raises(PairValidationError) as info:
        load_jsonl(path)
    err = info.value
    assert str(err).startswith(f"{path}:2: ")
    assert fragment in str(err)
    assert (err.line, err.reason, err.source) == (2, reason, str(path))


@pytest.mark.parametrize("bad_line, reason, fragment", BAD_LINES, ids=[r for _, r, _ in BAD_LINES])
def test_load_jsonl_skip_mode_counts_and_warns(tmp_path, bad_line, reason, fragment):
    path = _write_lines(tmp_path / "bad.jsonl", [_rec(0), bad_line, _rec(2)])
    with pytest.warns(DataSkipWarning, match=rf"skipped 1 of 3 records \(1 {reason}\)"):
        pairs, report = load_jsonl(path, on_error="skip")
    assert list(pairs.ids) == ["p0", "p2"]
    assert (report.n_read, report.n_loaded, report.skipped) == (3, 2, {reason: 1})
    assert any(f"{path}:2" in note for note in report.notes)
    assert report.skipped_at == [{"where": f"{path}:2", "reason": reason}]  # every skip, by line


def test_load_jsonl_skip_mode_counts_several_reasons(tmp_path):
    path = _write_lines(tmp_path / "mixed.jsonl", [
        _rec(0), "{oops", _rec(1, ai_label="x"), _rec(2), "", _rec(0), "{again", _rec(3),
    ])
    with pytest.warns(DataSkipWarning) as rec:
        pairs, report = load_jsonl(path, on_error="skip")
    assert report.skipped == {"invalid JSON": 2, "bad label": 1, "duplicate id": 1}
    assert (report.n_read, report.n_loaded) == (7, 3)
    assert report.n_read == report.n_loaded + report.n_skipped
    assert "1 blank line(s) ignored" in report.notes
    assert "skipped 4 of 7 records (2 invalid JSON" in str(rec[0].message)
    assert "skipped 4" in report.summary() and "2 invalid JSON" in report.summary()


def test_load_jsonl_empty_file_and_all_bad_always_raise(tmp_path):
    empty = tmp_path / "empty.jsonl"
    empty.write_text("\n  \n")
    for mode in ("raise", "skip"):
        with pytest.raises(PairValidationError, match=rf"{empty}: file is empty"):
            load_jsonl(empty, on_error=mode)
    all_bad = _write_lines(tmp_path / "allbad.jsonl", ["{", "[]"])
    with pytest.raises(PairValidationError, match=r"none of the 2 records could be loaded .*1 invalid JSON, 1 not an object"):
        load_jsonl(all_bad, on_error="skip")


def test_load_jsonl_rejects_unknown_on_error_and_missing_file(tmp_path):
    with pytest.raises(ValueError, match="on_error must be one of 'raise', 'skip'"):
        load_jsonl(tmp_path / "x.jsonl", on_error="ignore")
    with pytest.raises(FileNotFoundError, match="no such file"):
        load_jsonl(tmp_path / "missing.jsonl")


def test_load_jsonl_evidence_type_conflict_names_line(tmp_path):
    path = _write_lines(tmp_path / "ev.jsonl", [_rec(0, ai_consistent=True), _rec(1, ai_consistent="yes")])
    with pytest.raises(PairValidationError, match=r":2: field 'ai_consistent' is text here but bool"):
        load_jsonl(path)


def test_load_jsonl_bool_evidence_absent_on_some_rows_becomes_float_with_nan(tmp_path):
    path = _write_lines(tmp_path / "ev.jsonl", [_rec(0, ai_consistent=True), _rec(1), _rec(2, ai_consistent=False)])
    pairs, report = load_jsonl(path)
    np.testing.assert_array_equal(pairs.extra["ai_consistent"], [1.0, np.nan, 0.0])
    assert any("absent on 1 pairs" in n for n in report.notes)


# ------------------------------------------------------------------------------------------------ TRL


def _check_gold_matches_positions(pairs, chosen_texts):
    for i in range(len(pairs)):
        chosen = chosen_texts[i]
        expected = 1 if pairs.response_a[i] == chosen else -1
        assert pairs.response_a[i] == chosen or pairs.response_b[i] == chosen
        assert pairs.gold_label[i] == expected


def test_load_trl_plain_records():
    records = [{"prompt": f"Q{i}?", "chosen": f"good {i}", "rejected": f"bad {i}"} for i in range(40)]
    pairs, report = load_trl(records, seed=3)
    assert len(pairs) == 40 and report.n_read == 40 and report.source == "<records>"
    assert pairs.ids[5] == "trl-5" and pairs.prompt[5] == "Q5?"
    _check_gold_matches_positions(pairs, [r["chosen"] for r in records])
    assert (pairs.human_label == 0).all() and (pairs.ai_label == 0).all()
    assert 0 < (pairs.gold_label == 1).sum() < 40  # both orders occur
    human, _ = load_trl(records, seed=3, labels_as="human")
    np.testing.assert_array_equal(human.human_label, pairs.gold_label)
    ai, _ = load_trl(records, seed=3, labels_as="ai")
    np.testing.assert_array_equal(ai.ai_label, pairs.gold_label)


def test_load_trl_conversational_explicit_prompt():
    records = [{
        "id": "conv-1",
        "prompt": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Sky colour?"},
                   {"role": "assistant", "content": "Which sky?"}, {"role": "user", "content": "Earth's."}],
        "chosen": [{"role": "assistant", "content": "Blue."}],
        "rejected": [{"role": "assistant", "content": "Green."}],
    }]
    pairs, _ = load_trl(records, seed=0)
    assert pairs.ids[0] == "conv-1"
    assert pairs.prompt[0] == "system: Be brief.\n\nuser: Sky colour?\n\nassistant: Which sky?\n\nuser: Earth's."
    assert {pairs.response_a[0], pairs.response_b[0]} == {"Blue.", "Green."}
    _check_gold_matches_positions(pairs, ["Blue."])


def test_load_trl_keeps_each_conversation_beside_its_texts_in_a_and_b_order(trl_conversations):
    from rlthf_selector.pairs import MESSAGE_FIELDS

    records = trl_conversations(30)
    pairs, _ = load_trl(records, seed=4)
    assert set(MESSAGE_FIELDS) <= set(pairs.extra)
    assert 0 < (pairs.gold_label == 1).sum() < 30  # both orders occur
    for i, record in enumerate(records):
        a, b = (record["chosen"], record["rejected"]) if pairs.gold_label[i] > 0 else (record["rejected"], record["chosen"])
        assert pairs.extra["prompt_messages"][i] == record["prompt"]
        assert (pairs.extra["response_a_messages"][i], pairs.extra["response_b_messages"][i]) == (a, b)
        assert pairs.response_a[i] == a[0]["content"]  # the selector still reads the texts
    # An implicit prompt: the shared leading messages are the prompt's conversation.
    implicit = {"chosen": [{"role": "user", "content": "2+2?"}, {"role": "assistant", "content": "4"}],
                "rejected": [{"role": "user", "content": "2+2?"}, {"role": "assistant", "content": "5"}]}
    plain = {"prompt": "Q", "chosen": "yes", "rejected": "no"}
    mixed, _ = load_trl([implicit, plain], seed=0)
    assert mixed.extra["prompt_messages"][0] == [{"role": "user", "content": "2+2?"}]
    assert sorted(m[0]["content"] for m in (mixed.extra["response_a_messages"][0], mixed.extra["response_b_messages"][0])) == ["4", "5"]
    assert [mixed.extra[key][1] for key in MESSAGE_FIELDS] == [None, None, None]  # plain rows carry none


def test_conversations_survive_the_canonical_jsonl_and_bad_ones_are_named(tmp_path, trl_conversations):
    pairs, _ = load_trl(trl_conversations(5), seed=2)
    again, _ = load_jsonl(write_jsonl(pairs, tmp_path / "pairs.jsonl"))
    for key in ("prompt_messages", "response_a_messages", "response_b_messages"):
        assert again.extra[key].tolist() == pairs.extra[key].tolist()
    bad = _rec(0, response_a_messages=[{"role": "assistant"}])
    with pytest.raises(PairValidationError, match=r":1: response_a_messages\[0\] must be a \{'role': str"):
        load_jsonl(_write_lines(tmp_path / "bad.jsonl", [bad]))
    with pytest.raises(PairValidationError, match=r"prompt_messages must be a non-empty list"):
        load_jsonl(_write_lines(tmp_path / "empty.jsonl", [_rec(0, prompt_messages=[])]))


def test_load_pairs_tells_the_canonical_format_from_trls(tmp_path, trl_conversations):
    canonical = _write_lines(tmp_path / "pairs.jsonl", [_rec(i) for i in range(3)])
    pairs, _ = load_pairs(canonical)
    assert pairs.ids.tolist() == ["p0", "p1", "p2"] and (pairs.ai_label == 1).all()
    records = trl_conversations(4)
    trl = _write_lines(tmp_path / "prefs.jsonl", records)
    (tmp_path / "prefs.json").write_text(json.dumps(records))
    import pyarrow as pa
    import pyarrow.parquet as pq

    pq.write_table(pa.Table.from_pylist(records), tmp_path / "prefs.parquet")
    reference, _ = load_trl(trl, labels_as="ai")
    for path in (trl, tmp_path / "prefs.json", tmp_path / "prefs.parquet"):
        got, _ = load_pairs(path)
        np.testing.assert_array_equal(got.ai_label, reference.ai_label)  # chosen is the AI label by default
        assert got.response_a.tolist() == reference.response_a.tolist()
        assert got.extra["prompt_messages"].tolist() == reference.extra["prompt_messages"].tolist()
    # A byte-order mark before a JSON array (as some Windows tools write) is not part of the data.
    (tmp_path / "bom.json").write_bytes(b"\xef\xbb\xbf\n" + json.dumps(records).encode())
    assert load_pairs(tmp_path / "bom.json")[0].response_a.tolist() == reference.response_a.tolist()
    human, _ = load_pairs(trl, chosen_as="human")
    np.testing.assert_array_equal(human.human_label, reference.ai_label)
    assert (human.ai_label == 0).all()
    neither = _write_lines(tmp_path / "odd.jsonl", [{"question": "q", "answer": "a"}])
    with pytest.raises(PairValidationError, match=r"odd.jsonl:1: a record needs response_a and response_b .* or chosen "
                                                  r"and rejected .*found \['answer', 'question'\]"):
        load_pairs(neither)
    with pytest.raises(ValueError, match="chosen_as"):
        load_pairs(trl, chosen_as="judge")


def test_load_trl_implicit_prompt_conversational_and_plain():
    conv = {
        "chosen": [{"role": "user", "content": "2+2?"}, {"role": "assistant", "content": "4"}],
        "rejected": [{"role": "user", "content": "2+2?"}, {"role": "assistant", "content": "5"}],
    }
    hh_style = {"chosen": "\n\nHuman: hi\n\nAssistant: hello there", "rejected": "\n\nHuman: hi\n\nAssistant: go away"}
    words = {"chosen": "The capital of France is Paris", "rejected": "The capital of France is Pau"}
    pairs, report = load_trl([conv, hh_style, words], seed=1)
    assert pairs.prompt.tolist() == ["user: 2+2?", "Human: hi\n\nAssistant:", "The capital of France is"]
    _check_gold_matches_positions(pairs, ["4", "hello there", "Paris"])
    assert {pairs.response_a[2], pairs.response_b[2]} == {"Paris", "Pau"}
    assert any("3 rows had no prompt column" in n for n in report.notes)


def test_load_trl_files_jsonl_json_parquet_and_dataset(tmp_path):
    records = [{"prompt": f"Q{i}", "chosen": f"yes {i}", "rejected": f"no {i}"} for i in range(6)]
    _write_lines(tmp_path / "prefs.jsonl", records)
    (tmp_path / "prefs.json").write_text(json.dumps(records))
    import pyarrow as pa
    import pyarrow.parquet as pq

    pq.write_table(pa.Table.from_pylist(records), tmp_path / "prefs.parquet")
    import datasets

    loaded = [load_trl(tmp_path / name, seed=7) for name in ("prefs.jsonl", "prefs.json", "prefs.parquet")]
    loaded.append(load_trl(datasets.Dataset.from_list(records), seed=7))
    reference = loaded[0][0]
    assert reference.ids.tolist() == [f"prefs-{i}" for i in range(6)]
    for pairs, report in loaded:
        assert report.n_read == 6 and report.n_loaded == 6
        np.testing.assert_array_equal(pairs.gold_label, reference.gold_label)
        assert pairs.response_a.tolist() == reference.response_a.tolist()
    assert loaded[3][0].ids[0] == "trl-0"
    with pytest.raises(TypeError, match="DatasetDict"):
        load_trl(datasets.DatasetDict({"train": datasets.Dataset.from_list(records)}))


def test_load_trl_bad_rows_name_the_row(tmp_path):
    with pytest.raises(PairValidationError, match=r"<records> row 1: field 'rejected' is missing"):
        load_trl([{"prompt": "p", "chosen": "a", "rejected": "b"}, {"prompt": "p", "chosen": "a"}])
    with pytest.raises(PairValidationError, match=r"row 0: chosen\[0\] must be a \{'role': str"):
        load_trl([{"prompt": "p", "chosen": [{"content": "x"}], "rejected": [{"role": "assistant", "content": "y"}]}])
    with pytest.raises(PairValidationError, match=r"row 0: chosen and rejected are identical"):
        load_trl([{"prompt": "p", "chosen": "same", "rejected": "same "}])
    path = _write_lines(tmp_path / "t.jsonl", [{"prompt": "p", "chosen": "a", "rejected": "b"}, "{broken"])
    with pytest.raises(PairValidationError, match=rf"{path}:2: invalid JSON"):
        load_trl(path)
    with pytest.warns(DataSkipWarning, match="1 invalid JSON"):
        pairs, report = load_trl(path, on_error="skip")
    assert (report.n_read, report.n_loaded) == (2, 1)
    with pytest.raises(TypeError, match="load_trl expects"):
        load_trl(42)


def test_trl_ab_order_is_seeded_balanced_and_reproducible():
    records = [{"prompt": f"q{i}", "chosen": f"c{i}", "rejected": f"r{i}"} for i in range(4000)]
    first, _ = load_trl(records, seed=11)
    again, _ = load_trl(records, seed=11)
    other, _ = load_trl(records, seed=12)
    np.testing.assert_array_equal(first.gold_label, again.gold_label)
    assert (first.gold_label != other.gold_label).any()
    share_a = float((first.gold_label == 1).mean())
    assert 0.47 < share_a < 0.53  # 4000 fair coin flips: sd 0.008


# ------------------------------------------------------------------------------------------------ HH-RLHF

HH_PROMPT = "\n\nHuman: What's a good name for a cat?\n\nAssistant: Do you like short names?\n\nHuman: Yes."


def _hh_row(good: str, bad: str, prompt: str = HH_PROMPT) -> dict:
    return {"chosen": f"{prompt}\n\nAssistant: {good}", "rejected": f"{prompt}\n\nAssistant: {bad}"}


def test_split_hh_transcripts_two_turns():
    row = _hh_row("How about Tom?", "I don't like cats.")
    prompt, good, bad = split_hh_transcripts(row["chosen"], row["rejected"])
    assert prompt == "Human: What's a good name for a cat?\n\nAssistant: Do you like short names?\n\nHuman: Yes.\n\nAssistant:"
    assert (good, bad) == ("How about Tom?", "I don't like cats.")
    # Responses that start alike: the cut is still at the last shared marker, not inside the response.
    prompt2, good2, bad2 = split_hh_transcripts(*_hh_row("I think Tom.", "I think Rex.").values())
    assert prompt2 == prompt and (good2, bad2) == ("I think Tom.", "I think Rex.")
    assert split_hh_transcripts("\n\nHuman: a\n\nAssistant: b", "\n\nHuman: c\n\nAssistant: d") is None


def test_load_hh_rlhf_gz_skips_and_counts(tmp_path):
    rows = [
        _hh_row("Tom.", "No."),
        {"chosen": "\n\nHuman: a\n\nAssistant: b", "rejected": "\n\nHuman: z\n\nAssistant: b"},  # no shared prefix
        _hh_row("Same.", "Same."),
        _hh_row("Rex.", "Sure.\n\nHuman: thanks\n\nAssistant: bye"),  # response runs over several turns
        _hh_row("Felix.", ""),
    ]
    path = tmp_path / "harmless-test.jsonl.gz"
    with gzip.open(path, "wt", encoding="utf-8") as fh:
        fh.write("\n".join(json.dumps(r) for r in rows) + "\n")
    with pytest.warns(DataSkipWarning, match="skipped 3 of 5 records"):
        pairs, report = load_hh_rlhf(path, seed=0)
    assert report.skipped == {"no shared prompt prefix": 1, "identical responses": 1, "responses span several turns": 1}
    assert pairs.ids.tolist() == ["harmless-test-0", "harmless-test-4"]
    assert all(p.startswith("Human:") and p.endswith("Assistant:") for p in pairs.prompt)
    _check_gold_matches_positions(pairs, ["Tom.", "Felix."])
    assert any("1 responses are empty" in n for n in report.notes)


def test_load_hh_rlhf_seed_limit_and_several_files(tmp_path):
    rows = [_hh_row(f"good {i}", f"bad {i}") for i in range(3000)]
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    _write_lines(tmp_path / "a" / "test.jsonl", rows[:1500])
    _write_lines(tmp_path / "b" / "test.jsonl", rows[1500:])
    paths = [tmp_path / "a" / "test.jsonl", tmp_path / "b" / "test.jsonl"]
    pairs, report = load_hh_rlhf(paths, seed=5)
    assert len(pairs) == 3000 and report.skipped == {}
    assert pairs.ids[0] == "a-test-0" and pairs.ids[1500] == "b-test-0"  # clashing stems get the folder name
    assert 0.47 < float((pairs.gold_label == 1).mean()) < 0.53
    _check_gold_matches_positions(pairs, [f"good {i}" for i in range(3000)])
    again, _ = load_hh_rlhf(paths, seed=5)
    np.testing.assert_array_equal(again.gold_label, pairs.gold_label)
    limited, report = load_hh_rlhf(paths, seed=5, limit=10)
    assert len(limited) == 10 and report.n_read == 10
    np.testing.assert_array_equal(limited.gold_label, pairs.gold_label[:10])  # a row's order does not depend on limit


def test_load_hh_rlhf_malformed_line_raises_with_line(tmp_path):
    path = _write_lines(tmp_path / "h.jsonl", [_hh_row("x", "y"), {"chosen": "only"}])
    with pytest.raises(PairValidationError, match=rf"{path}:2: field 'rejected' is missing"):
        load_hh_rlhf(path)


def test_heavy_libraries_are_not_imported_with_the_loaders():
    code = ("import sys, rlthf_selector.io as L, rlthf_selector.simulated_judges; "
            "assert callable(L.load_hh_rlhf_hub); "
            "print(sorted(m for m in ('datasets', 'torch', 'transformers', 'pyarrow') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


# ------------------------------------------------------------------------------------------------ PandaLM


def _pandalm_dir(tmp_path: Path, rows: list[tuple], gpt: list, panda: list) -> Path:
    """rows: (instruction, input, response1, response2, votes)."""
    test = [{"idx": i, "instruction": ins, "input": inp, "response1": r1, "response2": r2,
             "annotator1": v[0], "annotator2": v[1], "annotator3": v[2]} for i, (ins, inp, r1, r2, v) in enumerate(rows)]
    (tmp_path / "testset-v1.json").write_text(json.dumps(test))
    (tmp_path / "gpt-3.5-turbo-testset-v1.json").write_text(
        json.dumps([{"idx": i, "gpt_result": g, "gpt_reason": ""} for i, g in enumerate(gpt)]))
    (tmp_path / "pandalm-7b-testset-v1.json").write_text(
        json.dumps([{"idx": i, "pandalm_result": p, "pandalm_reason": ""} for i, p in enumerate(panda)]))
    return tmp_path


def test_load_pandalm_majority_judges_and_second_judge(tmp_path):
    rows = [
        ("Rewrite.", "Some text.", "r1", "r2", (1, 1, 2)),  # gold A
        ("Name a fruit.", "", "apple", "car", (2, 2, 2)),  # gold B
        ("Tie row.", "", "x", "y", (0, 0, 1)),  # human tie -> dropped
        ("Split row.", "", "x", "y", (0, 1, 2)),  # no majority -> dropped
        ("Judge tie.", "", "x", "y", (1, 1, 1)),  # gpt says Tie -> dropped
        ("Judge garbage.", "", "x", "y", (2, 2, 1)),  # gpt garbage -> dropped
        ("Bool.", "", True, "no", (1, 1, 1)),  # non-string response coerced
    ]
    d = _pandalm_dir(tmp_path, rows, gpt=["1", "1", "1", "2", "Tie", "garbage", "2"], panda=[1, 2, 1, 1, 0, 2, 0])
    with pytest.warns(DataSkipWarning, match="skipped 4 of 7"):
        pairs, report = load_pandalm(d, judge="gpt-3.5", second_judge="pandalm-7b")
    assert pairs.ids.tolist() == ["pandalm-0", "pandalm-1", "pandalm-6"]
    assert pairs.prompt.tolist() == ["Rewrite.\nSome text.", "Name a fruit.", "Bool."]
    assert pairs.response_a[2] == "True"
    assert pairs.gold_label.tolist() == [1, -1, 1]
    assert pairs.ai_label.tolist() == [1, 1, -1]
    assert pairs.extra["second_judge_label"].tolist() == [1, -1, 0]
    assert report.skipped == {"human tie/no majority": 2, "judge tie/unparseable": 2}
    assert any("read as str(value)" in n and "idx 6 response1=True" in n for n in report.notes)
    assert any("agrees with the human majority on 33.3% of 3" in n for n in report.notes)

    with pytest.warns(DataSkipWarning, match=r"\(2 human tie/no majority, 2 judge tie/unparseable\)"):
        panda, report = load_pandalm(d, judge="pandalm-7b")
    assert panda.ids.tolist() == ["pandalm-0", "pandalm-1", "pandalm-5"]
    assert panda.ai_label.tolist() == [1, -1, -1]
    with pytest.warns(DataSkipWarning, match="skipped 2 of 7"):
        nojudge, report = load_pandalm(d, judge=None)
    assert len(nojudge) == 5 and (nojudge.ai_label == 0).all()
    assert report.skipped == {"human tie/no majority": 2}


def test_load_pandalm_bad_inputs(tmp_path):
    d = _pandalm_dir(tmp_path, [("i", "", "a", "b", (1, 1, 7))], gpt=["1"], panda=[1])
    with pytest.raises(PairValidationError, match=r"testset-v1.json row 0: annotator3 = 7"):
        load_pandalm(d)
    with pytest.raises(ValueError, match="judge must be one of"):
        load_pandalm(d, judge="gpt-4")
    with pytest.raises(ValueError, match="second_judge must differ"):
        load_pandalm(d, judge="gpt-3.5", second_judge="gpt-3.5")
    (d / "pandalm-7b-testset-v1.json").unlink()
    with pytest.raises(FileNotFoundError, match="pandalm-7b-testset-v1.json"):
        load_pandalm(d, judge="pandalm-7b")


def test_load_report_summary_and_skip_examples():
    report = LoadReport(source="s")
    report.n_read, report.n_loaded = 5, 3
    report.skip("invalid JSON", example="s:2: invalid JSON")
    report.skip("invalid JSON", example="s:4: invalid JSON")
    assert report.skipped == {"invalid JSON": 2} and report.n_skipped == 2
    assert report.notes == ["first skipped (invalid JSON): s:2: invalid JSON"]
    assert report.summary().startswith("s: read 5, loaded 3; skipped 2 (2 invalid JSON)")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        LoadReport(source="quiet")._warn_skips()  # nothing skipped: no warning
