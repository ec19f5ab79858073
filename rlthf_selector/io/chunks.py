"""Preference pairs streamed from a canonical JSONL file in chunks, so a large file is never parsed whole.

Each line is checked exactly as :func:`rlthf_selector.io.jsonl.load_jsonl` checks it (the same functions do it);
duplicate ids are caught across chunks too. Only the ids seen so far are kept between chunks.
"""

from __future__ import annotations

import gzip
from pathlib import Path
from typing import Iterator

from rlthf_selector.feature_store import CHUNK_PAIRS
from rlthf_selector.io.jsonl import _add_record
from rlthf_selector.io.rows import LoadReport, _Columns, _check_on_error, _iter_jsonl
from rlthf_selector.pairs import PreferencePairs
from rlthf_selector.validation import PairValidationError


def iter_jsonl_chunks(path: str | Path, *, chunk_pairs: int = CHUNK_PAIRS,
                      on_error: str = "raise") -> Iterator[tuple[PreferencePairs, LoadReport]]:
    """Yield the pairs of a canonical JSONL file (optionally gzipped) in chunks of up to ``chunk_pairs``.

    Parameters
    ----------
    path : str or Path
    chunk_pairs : int
        Pairs per chunk (the last may hold fewer).
    on_error : {"raise", "skip"}
        As in :func:`~rlthf_selector.io.jsonl.load_jsonl`; errors name the file's line.

    Yields
    ------
    pairs : PreferencePairs
        One chunk. ``pairs.extra`` holds the evidence columns found in that chunk.
    report : LoadReport
        The lines read for that chunk and what was skipped among them.

    Raises
    ------
    PairValidationError
        A bad line (``on_error="raise"``), a duplicate id anywhere in the file, or a file without any valid record.
    """
    _check_on_error(on_error)
    if chunk_pairs < 1:
        raise ValueError(f"chunk_pairs must be >= 1, got {chunk_pairs}")
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{path}: no such file")
    source = str(path)
    first_seen: dict[str, str] = {}  # ids of every chunk so far: duplicates across chunks are caught too

    def fresh() -> tuple[_Columns, LoadReport]:
        columns = _Columns()
        columns.first_seen = first_seen
        return columns, LoadReport(source=source)

    columns, report = fresh()
    loaded = 0
    with (gzip.open(path, "rb") if path.suffix == ".gz" else open(path, "rb")) as fh:
        for lineno, line in enumerate(fh, 1):
            if not line.strip():
                continue  # blank lines carry nothing (the whole-file loader only counts them in a note)
            for _, item in _iter_jsonl(line, source, report):  # one line through the loader's own decoding
                if isinstance(item, PairValidationError):  # decoded alone, the line calls itself line 1
                    item = PairValidationError(item.message, source=source, line=lineno, reason=item.reason)
                _add_record(columns, item, source=source, lineno=lineno, on_error=on_error, report=report)
            if len(columns) == chunk_pairs:
                pairs = columns.build(report)
                report.n_loaded = len(pairs)
                loaded += len(pairs)
                yield pairs, report
                columns, report = fresh()
    if len(columns):
        pairs = columns.build(report)
        report.n_loaded = len(pairs)
        loaded += len(pairs)
        yield pairs, report
    if loaded == 0:
        raise PairValidationError("no valid records to load", source=source, reason="no valid records")


__all__ = ["iter_jsonl_chunks"]
