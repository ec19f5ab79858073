"""Pairs streamed from JSONL in chunks: the same pairs and the same checks as the whole-file loader."""

from __future__ import annotations

import gzip

import numpy as np
import pytest

from rlthf_selector.io.chunks import iter_jsonl_chunks
from rlthf_selector.io import load_jsonl, write_jsonl
from rlthf_selector.synthetic import make_synthetic_pairs
from rlthf_selector.validation import PairValidationError


def test_chunks_hold_the_whole_file_loaders_pairs(tmp_path):
    path = write_jsonl(make_synthetic_pairs(250, seed=1), tmp_path / "pairs.jsonl")
    whole, _ = load_jsonl(path)
    chunks = list(iter_jsonl_chunks(path, chunk_pairs=100))
    assert [len(p) for p, _ in chunks] == [100, 100, 50]
    assert [r.n_loaded for _, r in chunks] == [100, 100, 50]
    for field in ("ids", "prompt", "response_a", "response_b", "ai_label", "gold_label", "human_label"):
        np.testing.assert_array_equal(np.concatenate([getattr(p, field) for p, _ in chunks]), getattr(whole, field))
    gz = tmp_path / "pairs.jsonl.gz"
    gz.write_bytes(gzip.compress(path.read_bytes()))
    assert [len(p) for p, _ in iter_jsonl_chunks(gz, chunk_pairs=200)] == [200, 50]


def test_a_bad_line_is_named_by_its_line_in_the_file(tmp_path):
    path = write_jsonl(make_synthetic_pairs(30, seed=2), tmp_path / "pairs.jsonl")
    lines = path.read_text().splitlines()
    lines[24] = "{not json"
    lines[26] = lines[3]  # a duplicate id, in another chunk than its first
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(PairValidationError, match=r"pairs.jsonl:25: invalid JSON"):
        list(iter_jsonl_chunks(path, chunk_pairs=10))
    chunks = list(iter_jsonl_chunks(path, chunk_pairs=10, on_error="skip"))
    assert sum(len(p) for p, _ in chunks) == 28
    skipped = {}
    for _, report in chunks:
        for reason, count in report.skipped.items():
            skipped[reason] = skipped.get(reason, 0) + count
    assert skipped == {"invalid JSON": 1, "duplicate id": 1}


def test_a_file_without_valid_records_raises(tmp_path):
    path = tmp_path / "bad.jsonl"
    path.write_text("\n[1]\n")
    with pytest.raises(PairValidationError, match="no valid records"):
        list(iter_jsonl_chunks(path, on_error="skip"))
    with pytest.raises(ValueError, match="chunk_pairs"):
        list(iter_jsonl_chunks(path, chunk_pairs=0))
