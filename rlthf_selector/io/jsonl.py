"""The canonical JSONL format: one pair a line with ``id``, ``prompt``, ``response_a``, ``response_b``, the three
labels and any per-pair evidence (:func:`load_jsonl`, :func:`write_jsonl`)."""

from __future__ import annotations

import gzip
import json
import math
from pathlib import Path
from typing import Any, Mapping

import numpy as np

from rlthf_selector.io.rows import (
    LoadReport,
    _check_distinct,
    _check_on_error,
    _Columns,
    _finish,
    _handle,
    _iter_jsonl,
    _parse_id,
    _read_bytes,
    _require_text,
)
from rlthf_selector.pairs import PreferencePairs, format_label, parse_label
from rlthf_selector.validation import PairValidationError

__all__ = ["CANONICAL_FIELDS", "load_jsonl", "write_jsonl"]

CANONICAL_FIELDS = ("id", "prompt", "response_a", "response_b", "ai_label", "human_label", "gold_label")
_REQUIRED_FIELDS = ("id", "prompt", "response_a", "response_b")
_TEXT_FIELDS = ("prompt", "response_a", "response_b")
_LABEL_FIELDS = ("ai_label", "human_label", "gold_label")


def load_jsonl(path: str | Path, *, on_error: str = "raise") -> tuple[PreferencePairs, LoadReport]:
    """Load the canonical JSONL format (optionally gzipped).

    One JSON object a line::

        {"id": "p1", "prompt": "...", "response_a": "...", "response_b": "...",
         "ai_label": "a", "human_label": null, "gold_label": "b", "ai_confidence": 0.9}

    ``id``, ``prompt``, ``response_a`` and ``response_b`` are required; ``ai_label``, ``human_label`` and
    ``gold_label`` are optional labels (``"a"``/``"b"``/null or +1/-1/0). Any other field is per-pair
    evidence stored in ``pairs.extra``: numbers (e.g. ``ai_confidence``, in [0, 1]) as float64 with NaN
    where absent; booleans (e.g. ``ai_consistent``) as bool; names ending ``_label`` as one int8 label;
    names ending ``_labels`` (e.g. ``judge_labels``) as an int8 array of shape (n, k) padded with 0;
    ``prompt_messages``, ``response_a_messages`` and ``response_b_messages`` (the conversations the texts were
    rendered from, as :func:`load_trl` keeps them) as lists of ``{"role", "content"}`` messages.

    Parameters
    ----------
    path : str or Path
        A ``.jsonl`` or ``.jsonl.gz`` file.
    on_error : {"raise", "skip"}
        ``"raise"``: the first bad line raises :class:`PairValidationError` naming file and line.
        ``"skip"``: bad lines are counted by reason in the report and warned about.
        An empty file, or one where no line is valid, always raises.

    Returns
    -------
    pairs : PreferencePairs
    report : LoadReport
    """
    _check_on_error(on_error)
    path = Path(path)
    source = str(path)
    raw = _read_bytes(path)
    report = LoadReport(source=source)
    if not raw.strip():
        raise PairValidationError("file is empty", source=source, reason="empty file")
    columns = _Columns()
    for lineno, item in _iter_jsonl(raw, source, report):
        _add_record(columns, item, source=source, lineno=lineno, on_error=on_error, report=report)
    return _finish(columns, report)


def _add_record(columns: _Columns, item: Any, *, source: str, lineno: int, on_error: str, report: LoadReport) -> None:
    """Check one decoded line (or the error that decoding it raised) and add it to ``columns``, or count it skipped.
    Shared by :func:`load_jsonl` and the chunked reader (:mod:`rlthf_selector.io.chunks`)."""
    try:
        if isinstance(item, PairValidationError):
            raise item
        at = PairValidationError("", source=source, line=lineno)
        pair_id, texts, labels = _canonical_record(item, at)
        columns.check_new_id(pair_id, at)
        evidence = columns.evidence.prepare(item, at, skip=CANONICAL_FIELDS)
    except PairValidationError as err:
        _handle(err, on_error, report)
        return
    columns.evidence.commit(len(columns), evidence)
    columns.add(pair_id, *texts, ai=labels[0], human=labels[1], gold=labels[2], where=f"line {lineno}")


def _canonical_record(record: Mapping[str, Any], at: PairValidationError) -> tuple[str, tuple[str, str, str], tuple[int, int, int]]:
    for key in _REQUIRED_FIELDS:
        if key not in record:
            raise PairValidationError(f"field {key!r} is missing", source=at.source, line=at.line, row=at.row,
                                      reason="missing field")
    pair_id = _parse_id(record["id"], at)
    prompt, a, b = (_require_text(record, key, at) for key in _TEXT_FIELDS)
    _check_distinct(a, b, at)
    labels = []
    for key in _LABEL_FIELDS:
        try:
            labels.append(parse_label(record.get(key)))
        except ValueError as exc:
            raise PairValidationError(f"field {key!r}: {exc}", source=at.source, line=at.line, row=at.row,
                                      reason="bad label") from None
    return pair_id, (prompt, a, b), (labels[0], labels[1], labels[2])


def write_jsonl(pairs: PreferencePairs, path: str | Path) -> Path:
    """Write ``pairs`` in the canonical JSONL shape read by :func:`load_jsonl` (gzipped if ``path`` ends ``.gz``).

    Labels are written as ``"a"``/``"b"``/null, ``gold_label`` only where known; ``pairs.extra`` columns are
    written as extra fields (NaN and None omitted), so ``load_jsonl(write_jsonl(p, f))`` gives back ``p``.

    Returns
    -------
    Path
        ``path``.
    """
    path = Path(path)
    for key, col in pairs.extra.items():
        if key in CANONICAL_FIELDS:
            raise ValueError(f"extra[{key!r}] clashes with a canonical field name")
        if col.ndim > 2:
            raise ValueError(f"extra[{key!r}] has shape {col.shape}; only 1-D and 2-D columns can be written")
    lines = []
    for i, record in enumerate(pairs.to_records()):
        for key, col in pairs.extra.items():
            value = _json_value(key, col[i])
            if value is not None:
                record[key] = value
        lines.append(json.dumps(record, ensure_ascii=False))
    data = ("\n".join(lines) + "\n").encode("utf-8")
    if path.suffix == ".gz":
        with gzip.open(path, "wb") as fh:
            fh.write(data)
    else:
        path.write_bytes(data)
    return path


def _json_value(key: str, value: Any) -> Any:
    if isinstance(value, np.ndarray):
        if key.endswith("_labels"):
            return [format_label(v) for v in value]
        return [None if _is_nan(v) else v.item() for v in value]
    if key.endswith("_label"):
        return format_label(int(value))
    if isinstance(value, np.generic):
        value = value.item()
    if _is_nan(value):
        return None
    return value


def _is_nan(value: Any) -> bool:
    return isinstance(value, (float, np.floating)) and math.isnan(value)


# ----------------------------------------------------------------------------------------------------------------
