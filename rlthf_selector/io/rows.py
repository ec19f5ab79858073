"""What every format shares: the load report, reading JSONL lines, the checks on one record, and the columns that
records are collected into before they become :class:`~rlthf_selector.pairs.PreferencePairs`.

A loader never drops a record without counting it in its :class:`LoadReport` and issuing a :class:`DataSkipWarning`.
Bad records raise :class:`~rlthf_selector.validation.PairValidationError` naming the file and line (or row), unless
``on_error="skip"``.

The names with a leading underscore are for the format modules of this package only, not for users.
"""

from __future__ import annotations

import gzip
import json
import math
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Iterator, Mapping

import numpy as np

from rlthf_selector.pairs import MESSAGE_FIELDS, PreferencePairs, parse_label
from rlthf_selector.validation import PairValidationError, check_choice, check_text

__all__ = ["DataSkipWarning", "LoadReport", "messages_problem"]

_ON_ERROR = ("raise", "skip")
_LABELS_AS = (None, "human", "ai")


class DataSkipWarning(UserWarning):
    """Records were skipped while loading; the message gives the counts by reason."""


@dataclass
class LoadReport:
    """What a loader read, loaded and skipped.

    Attributes
    ----------
    source : str
        The file(s) or object read.
    n_read : int
        Records read (non-blank lines, array entries, dataset rows).
    n_loaded : int
        Pairs returned. ``n_read == n_loaded + sum(skipped.values())``.
    skipped : dict of str to int
        Skipped records by reason (e.g. ``"invalid JSON"``, ``"human tie/no majority"``).
    skipped_at : list of dict
        Every skipped record that has a place, in reading order: ``{"where": "file:line" or "file row i",
        "reason": ...}``, so a skip can be found in the file.
    notes : list of str
        Anything else worth knowing (coerced values, blank lines, judge agreement, first error of each
        skipped kind).
    """

    source: str
    n_read: int = 0
    n_loaded: int = 0
    skipped: dict[str, int] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    skipped_at: list[dict[str, str]] = field(default_factory=list)

    @property
    def n_skipped(self) -> int:
        return int(sum(self.skipped.values()))

    def skip(self, reason: str, count: int = 1, *, example: str | None = None, where: str | None = None) -> None:
        """Count ``count`` skipped records under ``reason``; the first ``example`` of each reason becomes a note and
        ``where`` (the record's file:line or row) goes into :attr:`skipped_at`."""
        if reason not in self.skipped and example:
            self.notes.append(f"first skipped ({reason}): {example}")
        self.skipped[reason] = self.skipped.get(reason, 0) + count
        if where:
            self.skipped_at.append({"where": where, "reason": reason})

    def skipped_lines(self, limit: int | None = None) -> list[str]:
        """``"file:line: reason"`` for each skipped record with a place (the first ``limit``, then how many more)."""
        lines = [f"{s['where']}: {s['reason']}" for s in self.skipped_at]
        if limit is not None and len(lines) > limit:
            lines = lines[:limit] + [f"... and {len(lines) - limit} more skipped records"]
        return lines

    def to_dict(self) -> dict[str, Any]:
        """What was read, loaded and skipped, every skip by place (for a command's JSON output)."""
        return {"source": self.source, "read": self.n_read, "loaded": self.n_loaded, "skipped": dict(self.skipped),
                "skipped_at": list(self.skipped_at), "notes": list(self.notes)}

    def summary(self, *, max_places: int = 20) -> str:
        """One line: ``"SOURCE: read R, loaded L; skipped S (k1 reason1, ...)"`` followed by the notes and the first
        ``max_places`` skipped records by place."""
        text = f"{self.source}: read {self.n_read}, loaded {self.n_loaded}"
        if self.skipped:
            reasons = ", ".join(f"{n} {reason}" for reason, n in sorted(self.skipped.items(), key=lambda kv: -kv[1]))
            text += f"; skipped {self.n_skipped} ({reasons})"
        if self.notes:
            text += "\n" + "\n".join(f"  - {note}" for note in self.notes)
        if self.skipped_at:
            text += "\n  skipped:\n" + "\n".join(f"    {line}" for line in self.skipped_lines(max_places))
        return text

    def _warn_skips(self) -> None:
        if self.skipped:
            reasons = ", ".join(f"{n} {reason}" for reason, n in sorted(self.skipped.items(), key=lambda kv: -kv[1]))
            # stacklevel 4: the user's call of the public loader (-> _finish -> here).
            warnings.warn(f"{self.source}: skipped {self.n_skipped} of {self.n_read} records ({reasons})", DataSkipWarning, stacklevel=4)


class _Columns:
    """Accumulates pair rows and per-pair evidence, then builds a PreferencePairs."""

    def __init__(self) -> None:
        self.ids: list[str] = []
        self.prompt: list[str] = []
        self.response_a: list[str] = []
        self.response_b: list[str] = []
        self.ai: list[int] = []
        self.human: list[int] = []
        self.gold: list[int] = []
        self.first_seen: dict[str, str] = {}
        self.evidence = _EvidenceColumns()

    def __len__(self) -> int:
        return len(self.ids)

    def check_new_id(self, pair_id: str, err: PairValidationError) -> None:
        """Raise a 'duplicate id' error (located like ``err``) when ``pair_id`` was loaded already."""
        if pair_id in self.first_seen:
            raise PairValidationError(
                f"duplicate id {pair_id!r} (first at {self.first_seen[pair_id]})",
                source=err.source, line=err.line, row=err.row, reason="duplicate id",
            )

    def add(self, pair_id: str, prompt: str, a: str, b: str, *, ai: int = 0, human: int = 0, gold: int = 0,
            where: str = "") -> None:
        self.first_seen[pair_id] = where
        self.ids.append(pair_id)
        self.prompt.append(prompt)
        self.response_a.append(a)
        self.response_b.append(b)
        self.ai.append(ai)
        self.human.append(human)
        self.gold.append(gold)

    def build(self, report: LoadReport) -> PreferencePairs:
        n = len(self)
        return PreferencePairs(
            ids=self.ids, prompt=self.prompt, response_a=self.response_a, response_b=self.response_b,
            ai_label=np.asarray(self.ai, dtype=np.int8).reshape(n),
            human_label=np.asarray(self.human, dtype=np.int8).reshape(n),
            gold_label=np.asarray(self.gold, dtype=np.int8).reshape(n),
            extra=self.evidence.columns(n, report),
        )


class _EvidenceColumns:
    """Optional per-pair evidence fields (anything beside the canonical fields), typed by column.

    Kinds: ``label`` (names ending ``_label``: +1/-1/0 or "a"/"b"/null -> int8, 0 if absent),
    ``labels`` (names ending ``_labels``: lists of labels -> int8 (n, k), padded with 0),
    ``numbers`` (other lists of numbers -> float64 (n, k), NaN-padded), ``number`` (-> float64, NaN if
    absent), ``bool`` (-> bool, or float64 1/0/NaN when absent on some rows), ``text`` (-> object, None
    if absent), ``messages`` (the conversation fields of :data:`~rlthf_selector.pairs.MESSAGE_FIELDS`: lists of
    ``{"role", "content"}`` messages -> object, None if absent) and ``ignored`` (JSON objects: not loaded, noted).
    """

    def __init__(self) -> None:
        self.kinds: dict[str, str] = {}
        self.values: dict[str, dict[int, Any]] = {}

    @staticmethod
    def _kind_and_value(key: str, value: Any) -> tuple[str, Any]:
        if key in MESSAGE_FIELDS:
            problem = messages_problem(value, key)
            if problem:
                raise ValueError(problem)
            return "messages", value
        if key.endswith("_labels"):
            if not isinstance(value, list):
                raise ValueError(f"field {key!r} must be a list of labels, got {type(value).__name__}")
            return "labels", [parse_label(v) for v in value]
        if key.endswith("_label"):
            return "label", parse_label(value)
        if isinstance(value, bool):
            return "bool", value
        if isinstance(value, (int, float)):
            return "number", float(value)
        if isinstance(value, str):
            return "text", value
        if isinstance(value, list):
            if not all(isinstance(v, (int, float)) and not isinstance(v, bool) or v is None for v in value):
                raise ValueError(f"field {key!r}: lists must hold numbers (or be named '*_labels' and hold labels)")
            return "numbers", [math.nan if v is None else float(v) for v in value]
        if isinstance(value, dict):
            return "ignored", None
        raise ValueError(f"field {key!r} has unsupported type {type(value).__name__}")

    def prepare(self, record: Mapping[str, Any], err_at: PairValidationError, *, skip: Iterable[str]) -> dict[str, tuple[str, Any]]:
        """Type-check the evidence fields of one record; raise 'bad evidence field' errors located like ``err_at``."""
        skip = set(skip)
        out: dict[str, tuple[str, Any]] = {}
        for key, value in record.items():
            if key in skip or value is None:
                continue
            try:
                kind, parsed = self._kind_and_value(key, value)
                if key == "ai_confidence" and kind == "number" and not 0.0 <= parsed <= 1.0:
                    raise ValueError(f"field 'ai_confidence' must be in [0, 1], got {parsed}")
                known = self.kinds.get(key)
                if known is not None and known != kind:
                    raise ValueError(f"field {key!r} is {kind} here but {known} on earlier records")
            except ValueError as exc:
                raise PairValidationError(str(exc), source=err_at.source, line=err_at.line, row=err_at.row,
                                          reason="bad evidence field") from None
            out[key] = (kind, parsed)
        return out

    def commit(self, row: int, prepared: Mapping[str, tuple[str, Any]]) -> None:
        for key, (kind, value) in prepared.items():
            self.kinds.setdefault(key, kind)
            self.values.setdefault(key, {})[row] = value

    def columns(self, n: int, report: LoadReport) -> dict[str, np.ndarray]:
        out: dict[str, np.ndarray] = {}
        for key, kind in self.kinds.items():
            vals = self.values[key]
            if kind == "ignored":
                report.notes.append(f"field {key!r} holds JSON objects: not loaded")
                continue
            if kind == "label":
                col = np.zeros(n, dtype=np.int8)
            elif kind in ("labels", "numbers"):
                width = max((len(v) for v in vals.values()), default=0)
                col = np.zeros((n, width), dtype=np.int8) if kind == "labels" else np.full((n, width), np.nan)
                for i, v in vals.items():
                    col[i, : len(v)] = v
                out[key] = col
                continue
            elif kind == "number":
                col = np.full(n, np.nan)
            elif kind == "bool":
                if len(vals) == n:
                    col = np.zeros(n, dtype=bool)
                else:
                    col = np.full(n, np.nan)
                    report.notes.append(f"field {key!r} is absent on {n - len(vals)} pairs: stored as 1.0/0.0 with NaN there")
            else:
                col = np.full(n, None, dtype=object)
            for i, v in vals.items():
                col[i] = v
            out[key] = col
        return out


def _check_on_error(on_error: str) -> None:
    check_choice(on_error, _ON_ERROR, "on_error")


def _handle(err: PairValidationError, on_error: str, report: LoadReport) -> None:
    if on_error == "raise":
        raise err
    report.skip(err.reason, example=str(err), where=err.where)


def _read_bytes(path: Path) -> bytes:
    if not path.exists():
        raise FileNotFoundError(f"{path}: no such file")
    if path.suffix == ".gz":
        with gzip.open(path, "rb") as fh:
            return fh.read()
    return path.read_bytes()


def _file_stem(path: Path) -> str:
    name = path.name
    for suffix in (".gz", ".jsonl", ".json", ".parquet"):
        if name.endswith(suffix):
            name = name[: -len(suffix)]
    return name


def _iter_jsonl(raw: bytes, source: str, report: LoadReport) -> Iterator[tuple[int, Any]]:
    """Yield ``(line_number, record_or_error)`` for each non-blank line; blank lines are counted in the notes.

    Errors (:class:`PairValidationError`) are yielded, not raised, so the caller decides to raise or skip.
    """
    if raw.startswith(b"\xef\xbb\xbf"):
        raw = raw[3:]
    lines = raw.split(b"\n")
    if lines and not lines[-1].strip():
        lines.pop()  # the piece after the final newline
    blank = 0
    for lineno, line in enumerate(lines, 1):
        if not line.strip():
            blank += 1
            continue
        report.n_read += 1
        try:
            text = line.decode("utf-8")
        except UnicodeDecodeError as exc:
            yield lineno, PairValidationError(
                f"not valid UTF-8 (byte {line[exc.start:exc.start + 1]!r} at column {exc.start + 1})",
                source=source, line=lineno, reason="non-UTF-8 bytes",
            )
            continue
        try:
            record = json.loads(text)
        except json.JSONDecodeError as exc:
            yield lineno, PairValidationError(f"invalid JSON: {exc.msg} at column {exc.colno}", source=source,
                                              line=lineno, reason="invalid JSON")
            continue
        if not isinstance(record, dict):
            yield lineno, PairValidationError(f"expected a JSON object, got {type(record).__name__}", source=source,
                                              line=lineno, reason="not an object")
            continue
        yield lineno, record
    if blank:
        report.notes.append(f"{blank} blank line(s) ignored")


def _require_text(record: Mapping[str, Any], key: str, at: PairValidationError) -> str:
    if key not in record:
        raise PairValidationError(f"field {key!r} is missing", source=at.source, line=at.line, row=at.row,
                                  reason="missing field")
    try:
        return check_text(record[key], where=f"field {key!r}")
    except ValueError as exc:
        raise PairValidationError(str(exc), source=at.source, line=at.line, row=at.row, reason="non-string text") from None


def _check_distinct(a: str, b: str, at: PairValidationError, what: str = "response_a and response_b") -> None:
    # Responses that differ only in surrounding whitespace carry no preference either.
    if a.strip() == b.strip():
        raise PairValidationError(f"{what} are identical", source=at.source, line=at.line, row=at.row,
                                  reason="identical responses")


def _finish(columns: _Columns, report: LoadReport) -> tuple[PreferencePairs, LoadReport]:
    if report.n_read == 0:
        raise PairValidationError("no records to load (the source is empty)", source=report.source, reason="empty file")
    if len(columns) == 0:
        raise PairValidationError(
            f"none of the {report.n_read} records could be loaded ({report.summary()})",
            source=report.source, reason="no valid records",
        )
    pairs = columns.build(report)
    report.n_loaded = len(pairs)
    report._warn_skips()
    return pairs, report


def _parse_id(value: Any, at: PairValidationError) -> str:
    if isinstance(value, bool) or not isinstance(value, (str, int)) or not str(value).strip():
        raise PairValidationError(f"field 'id' must be a non-empty string or integer, got {value!r}",
                                  source=at.source, line=at.line, row=at.row, reason="bad id")
    return str(value)


def messages_problem(messages: Any, key: str, *, allow_empty: bool = False) -> str | None:
    """What is wrong with ``messages`` as a conversation (a list of ``{"role", "content"}`` dicts), or None."""
    if not isinstance(messages, list) or not (messages or allow_empty):
        return f"{key} must be a non-empty list of {{'role': str, 'content': str}} messages, got {messages!r:.80}"
    for j, msg in enumerate(messages):
        ok = isinstance(msg, Mapping) and isinstance(msg.get("role"), str) and (
            isinstance(msg.get("content"), str) or _content_parts_text(msg.get("content")) is not None
        )
        if not ok:
            return f"{key}[{j}] must be a {{'role': str, 'content': str}} message, got {msg!r:.80}"
    return None


def _check_messages(messages: list, key: str, at: PairValidationError) -> None:
    problem = messages_problem(messages, key, allow_empty=True)
    if problem:
        raise PairValidationError(problem, source=at.source, line=at.line, row=at.row, reason="bad message")


def _content_parts_text(content: Any) -> str | None:
    # Multimodal message content: [{"type": "text", "text": "..."}, ...]; only text parts are kept.
    if isinstance(content, list) and all(isinstance(p, Mapping) for p in content):
        texts = [p.get("text") for p in content if p.get("type", "text") == "text"]
        if all(isinstance(t, str) for t in texts):
            return "".join(texts)
    return None
