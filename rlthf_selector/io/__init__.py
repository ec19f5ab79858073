"""Readers that turn preference data on disk into :class:`~rlthf_selector.pairs.PreferencePairs`, one module a format.

Every loader returns ``(pairs, report)``. The :class:`LoadReport` counts what was read, loaded and
skipped (by reason); a loader never drops a record without counting it and issuing a
:class:`DataSkipWarning`. Bad records raise :class:`~rlthf_selector.validation.PairValidationError`
naming the file and line (or row), unless ``on_error="skip"``.

Supported sources
-----------------
- canonical JSONL (:func:`load_jsonl` / :func:`write_jsonl`, in ``io/jsonl.py``; :func:`iter_jsonl_chunks` streams a
  large file in chunks, ``io/chunks.py``),
- TRL preference data, plain or conversational, explicit or implicit prompt (:func:`load_trl`, ``io/trl.py``),
- Anthropic HH-RLHF transcripts (:func:`load_hh_rlhf`, :func:`load_hh_rlhf_hub`, ``io/hh_rlhf.py``),
- the PandaLM human-annotated test set with its GPT-3.5 and PandaLM-7B verdicts (:func:`load_pandalm`,
  ``io/pandalm.py``).

:func:`load_pairs` tells the canonical JSONL from TRL data. What the formats share (the report, the record checks,
the columns records are collected into) is in ``io/rows.py``.
"""

from __future__ import annotations

import gzip
import json
from pathlib import Path
from typing import Mapping

from rlthf_selector.io.chunks import iter_jsonl_chunks
from rlthf_selector.io.hh_rlhf import load_hh_rlhf, load_hh_rlhf_hub, split_hh_transcripts
from rlthf_selector.io.jsonl import CANONICAL_FIELDS, load_jsonl, write_jsonl
from rlthf_selector.io.pandalm import PANDALM_JUDGES, load_pandalm, parse_pandalm_verdict
from rlthf_selector.io.rows import DataSkipWarning, LoadReport, messages_problem
from rlthf_selector.io.trl import load_trl, render_messages
from rlthf_selector.pairs import PreferencePairs
from rlthf_selector.validation import PairValidationError, check_choice

__all__ = [
    "CANONICAL_FIELDS",
    "DataSkipWarning",
    "LoadReport",
    "PANDALM_JUDGES",
    "iter_jsonl_chunks",
    "load_hh_rlhf",
    "load_hh_rlhf_hub",
    "load_jsonl",
    "load_pairs",
    "load_pandalm",
    "load_trl",
    "messages_problem",
    "parse_pandalm_verdict",
    "render_messages",
    "split_hh_transcripts",
    "write_jsonl",
]


def load_pairs(path: str | Path, *, on_error: str = "raise", chosen_as: str = "ai") -> tuple[PreferencePairs, LoadReport]:
    """Load pairs from a file in the canonical JSONL format or in TRL's, told apart by their fields.

    A ``.parquet`` file or a JSON array is TRL data. In a JSONL file, the first record decides: ``response_a`` and
    ``response_b`` make it canonical (:func:`load_jsonl`), ``chosen`` and ``rejected`` make it TRL (:func:`load_trl`,
    conversations kept).

    Parameters
    ----------
    path : str or Path
    on_error : {"raise", "skip"}
        As in :func:`load_jsonl`.
    chosen_as : {"ai", "human"}
        For TRL data: whose preference ``chosen`` records. ``"ai"`` (a judge's labels, for humans to check) puts it
        in ``ai_label``; ``"human"`` in ``human_label``.

    Raises
    ------
    PairValidationError
        The first record has neither shape's fields (both are named), or as the loader raises.
    """
    check_choice(chosen_as, ("ai", "human"), "chosen_as")
    path = Path(path)
    if path.name.endswith(".parquet"):
        return load_trl(path, labels_as=chosen_as, on_error=on_error)
    if not path.exists():
        raise FileNotFoundError(f"{path}: no such file")
    # Only the file's start is read here (the loader reads it whole once): a JSON array, or the first object line.
    with (gzip.open(path, "rb") if path.suffix == ".gz" else open(path, "rb")) as fh:
        first = True
        for lineno, line in enumerate(fh, 1):
            text = line.removeprefix(b"\xef\xbb\xbf").strip() if first else line.strip()
            if not text:
                continue
            if first and text.startswith(b"["):
                return load_trl(path, labels_as=chosen_as, on_error=on_error)
            first = False
            try:
                item = json.loads(text)
            except ValueError:
                continue  # a bad line: the loader reports it
            if not isinstance(item, Mapping):
                continue
            if "response_a" in item or "response_b" in item:
                return load_jsonl(path, on_error=on_error)
            if "chosen" in item or "rejected" in item:
                return load_trl(path, labels_as=chosen_as, on_error=on_error)
            raise PairValidationError(
                "a record needs response_a and response_b (the canonical format: id, prompt, response_a, response_b) "
                f"or chosen and rejected (TRL's: prompt, chosen, rejected); found {sorted(item)[:8]}",
                source=str(path), line=lineno, reason="unknown format")
    return load_jsonl(path, on_error=on_error)  # no readable record: load_jsonl names what is wrong
