"""Readers that turn preference data on disk into :class:`~rlthf_selector.pairs.PreferencePairs`.

Every loader returns ``(pairs, report)``. The :class:`LoadReport` counts what was read, loaded and
skipped (by reason); a loader never drops a record without counting it and issuing a
:class:`DataSkipWarning`. Bad records raise :class:`~rlthf_selector.validation.PairValidationError`
naming the file and line (or row), unless ``on_error="skip"``.

Supported sources
-----------------
- canonical JSONL (:func:`load_jsonl` / :func:`write_jsonl`),
- TRL preference data, plain or conversational, explicit or implicit prompt (:func:`load_trl`),
- Anthropic HH-RLHF transcripts (:func:`load_hh_rlhf`, :func:`load_hh_rlhf_hub`),
- the PandaLM human-annotated test set with its GPT-3.5 and PandaLM-7B verdicts (:func:`load_pandalm`).

Where a source only says which response was chosen (TRL, HH-RLHF), the A/B order is randomised per pair
with ``np.random.default_rng(seed)`` so a response's position never gives its label away.
"""

from __future__ import annotations

import gzip
import json
import math
import warnings
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Iterator, Mapping, Sequence

import numpy as np

from rlthf_selector.pairs import (
    A_PREFERRED,
    B_PREFERRED,
    MESSAGE_FIELDS,
    UNKNOWN,
    PreferencePairs,
    format_label,
    parse_label,
)
from rlthf_selector.validation import PairValidationError, check_choice, check_text

__all__ = [
    "CANONICAL_FIELDS",
    "DataSkipWarning",
    "LoadReport",
    "PANDALM_JUDGES",
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

CANONICAL_FIELDS = ("id", "prompt", "response_a", "response_b", "ai_label", "human_label", "gold_label")
_REQUIRED_FIELDS = ("id", "prompt", "response_a", "response_b")
_TEXT_FIELDS = ("prompt", "response_a", "response_b")
_LABEL_FIELDS = ("ai_label", "human_label", "gold_label")
_ON_ERROR = ("raise", "skip")
_LABELS_AS = (None, "human", "ai")

HH_ASSISTANT = "\n\nAssistant:"
HH_HUMAN = "\n\nHuman:"


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


# ----------------------------------------------------------------------------------------------------------------
# Shared machinery


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


# ----------------------------------------------------------------------------------------------------------------
# Canonical JSONL


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
        try:
            if isinstance(item, PairValidationError):
                raise item
            at = PairValidationError("", source=source, line=lineno)
            pair_id, texts, labels = _canonical_record(item, at)
            columns.check_new_id(pair_id, at)
            evidence = columns.evidence.prepare(item, at, skip=CANONICAL_FIELDS)
        except PairValidationError as err:
            _handle(err, on_error, report)
            continue
        columns.evidence.commit(len(columns), evidence)
        columns.add(pair_id, *texts, ai=labels[0], human=labels[1], gold=labels[2], where=f"line {lineno}")
    return _finish(columns, report)


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


def _parse_id(value: Any, at: PairValidationError) -> str:
    if isinstance(value, bool) or not isinstance(value, (str, int)) or not str(value).strip():
        raise PairValidationError(f"field 'id' must be a non-empty string or integer, got {value!r}",
                                  source=at.source, line=at.line, row=at.row, reason="bad id")
    return str(value)


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
# TRL preference data


def load_trl(
    path_or_records: str | Path | Sequence[Mapping[str, Any]] | Any,
    *,
    seed: int = 0,
    labels_as: str | None = None,
    on_error: str = "raise",
    name: str | None = None,
) -> tuple[PreferencePairs, LoadReport]:
    """Load TRL preference data (``prompt``/``chosen``/``rejected``).

    Accepted shapes, per row:

    - plain: ``prompt``, ``chosen`` and ``rejected`` are strings;
    - conversational: they are lists of ``{"role", "content"}`` messages. The prompt conversation is
      rendered as ``"user: ...\\n\\nassistant: ..."``; a chosen/rejected made of one message gives that
      message's content (several messages are rendered like the prompt);
    - implicit prompt (no ``prompt`` column): ``chosen`` and ``rejected`` are whole conversations (or
      whole transcripts); their shared prefix is the prompt. Strings are cut like HH-RLHF at the last shared
      ``"\\n\\nAssistant:"`` when there is one, else at the last whitespace of the shared prefix.

    The selector reads the rendered texts. A conversational row also keeps its messages, split into prompt and
    responses, in ``pairs.extra`` under :data:`~rlthf_selector.pairs.MESSAGE_FIELDS`, and
    :func:`rlthf_selector.export.write_trl` gives them back in TRL's conversational format.

    Parameters
    ----------
    path_or_records : str, Path, list of dict, or datasets.Dataset
        A ``.jsonl``/``.jsonl.gz``/``.json`` (an array of objects)/``.parquet`` file, records, or a
        Hugging Face ``Dataset`` (``datasets`` is imported only then).
    seed : int
        Seed of ``np.random.default_rng`` that decides, per row, whether chosen is A or B.
    labels_as : {None, "human", "ai"}
        Besides ``gold_label`` (always set from chosen/rejected), also put the label in ``human_label``
        (data labelled by people) or ``ai_label`` (data labelled by an AI judge). None: neither.
    on_error : {"raise", "skip"}
        As in :func:`load_jsonl`.
    name : str, optional
        Stem of generated ids (``f"{name}-{row}"``) when there is no ``id`` column. Default: the file stem,
        or ``"trl"`` for in-memory data.

    Returns
    -------
    pairs : PreferencePairs
        ``gold_label[i] = +1`` where chosen was put in A, ``-1`` where it was put in B.
    report : LoadReport
    """
    _check_on_error(on_error)
    check_choice(labels_as, _LABELS_AS, "labels_as")
    source, stem, items, notes = _trl_items(path_or_records)
    stem = name or stem
    report = LoadReport(source=source, notes=notes)
    columns = _Columns()
    swap = np.random.default_rng(seed).random(len(items)) < 0.5
    implicit = 0
    for row, (line, item) in enumerate(items):
        report.n_read += 1
        at = PairValidationError("", source=source, line=line, row=None if line is not None else row)
        try:
            if isinstance(item, PairValidationError):
                raise item
            if not isinstance(item, Mapping):
                raise PairValidationError(f"expected an object, got {type(item).__name__}", source=source,
                                          line=at.line, row=at.row, reason="not an object")
            prompt, chosen, rejected, was_implicit, conversation = _trl_row(item, at)
            pair_id = _parse_id(item["id"], at) if item.get("id") is not None else f"{stem}-{row}"
            columns.check_new_id(pair_id, at)
        except PairValidationError as err:
            _handle(err, on_error, report)
            continue
        implicit += was_implicit
        gold = B_PREFERRED if swap[row] else A_PREFERRED
        a, b = (rejected, chosen) if swap[row] else (chosen, rejected)
        if conversation is not None:
            prompt_messages, chosen_messages, rejected_messages = conversation
            a_messages, b_messages = ((rejected_messages, chosen_messages) if swap[row]
                                      else (chosen_messages, rejected_messages))
            columns.evidence.commit(len(columns), dict(zip(MESSAGE_FIELDS, (
                ("messages", prompt_messages), ("messages", a_messages), ("messages", b_messages)))))
        columns.add(pair_id, prompt, a, b, gold=gold, ai=gold if labels_as == "ai" else UNKNOWN,
                    human=gold if labels_as == "human" else UNKNOWN, where=at.where)
    if implicit:
        report.notes.append(f"{implicit} rows had no prompt column: prompt = shared prefix of chosen and rejected")
    return _finish(columns, report)


def _trl_items(obj: Any) -> tuple[str, str, list[tuple[int | None, Any]], list[str]]:
    """(source, id stem, [(line or None, record or error)], notes) for any accepted TRL input."""
    if isinstance(obj, (str, Path)):
        path = Path(obj)
        source, stem = str(path), _file_stem(path)
        if path.name.endswith(".parquet"):
            if not path.exists():
                raise FileNotFoundError(f"{path}: no such file")
            import pyarrow.parquet as pq

            return source, stem, [(None, r) for r in pq.read_table(path).to_pylist()], []
        raw = _read_bytes(path).removeprefix(b"\xef\xbb\xbf")  # a UTF-8 byte-order mark is not part of the JSON
        if not raw.strip():
            raise PairValidationError("file is empty", source=source, reason="empty file")
        if path.name.endswith((".json", ".json.gz")) and raw.lstrip().startswith(b"["):
            try:
                records = json.loads(raw.decode("utf-8"))
            except (UnicodeDecodeError, json.JSONDecodeError) as exc:
                raise PairValidationError(f"not a valid JSON array: {exc}", source=source, reason="invalid JSON") from None
            if not isinstance(records, list):
                raise PairValidationError("expected a JSON array of records", source=source, reason="not an object")
            return source, stem, [(None, r) for r in records], []
        # JSONL (`datasets` also writes .json files one object a line).
        scratch = LoadReport(source=source)
        items = list(_iter_jsonl(raw, source, scratch))
        return source, stem, items, scratch.notes
    if isinstance(obj, Sequence) and not isinstance(obj, (bytes, bytearray)):
        return "<records>", "trl", [(None, r) for r in obj], []
    try:
        import datasets
    except ImportError:  # pragma: no cover - datasets is an optional dependency
        datasets = None
    if datasets is not None and isinstance(obj, datasets.DatasetDict):
        raise TypeError(f"got a DatasetDict with splits {list(obj)}; pass one split, e.g. ds['train']")
    if datasets is not None and isinstance(obj, datasets.Dataset):
        return "<datasets.Dataset>", "trl", [(None, r) for r in obj.to_list()], []
    raise TypeError(f"load_trl expects a path, a list of dicts or a datasets.Dataset; got {type(obj).__name__}")


def _trl_row(record: Mapping[str, Any], at: PairValidationError) -> tuple[str, str, str, bool, tuple[list, list, list] | None]:
    """(prompt, chosen, rejected, implicit prompt?, conversation): the texts as the selector reads them, and, for a
    conversational row, the (prompt, chosen, rejected) message lists they were rendered from (None otherwise)."""
    for key in ("chosen", "rejected"):
        if key not in record or record[key] is None:
            raise PairValidationError(f"field {key!r} is missing", source=at.source, line=at.line, row=at.row,
                                      reason="missing field")
    chosen, rejected = record["chosen"], record["rejected"]
    for key, value in (("chosen", chosen), ("rejected", rejected)):
        if not isinstance(value, (str, list)):
            raise PairValidationError(f"field {key!r} must be a string or a list of messages, got {type(value).__name__}",
                                      source=at.source, line=at.line, row=at.row, reason="non-string text")
        if isinstance(value, list):
            _check_messages(value, key, at)
    if isinstance(chosen, str) != isinstance(rejected, str):
        raise PairValidationError("'chosen' and 'rejected' must both be strings or both be message lists",
                                  source=at.source, line=at.line, row=at.row, reason="non-string text")
    conversation = None
    if record.get("prompt") is not None:
        prompt = record["prompt"]
        if isinstance(prompt, list):
            _check_messages(prompt, "prompt", at)
            if prompt and isinstance(chosen, list):
                conversation = (prompt, chosen, rejected)
            prompt = render_messages(prompt)
        elif not isinstance(prompt, str):
            raise PairValidationError(f"field 'prompt' must be a string or a list of messages, got {type(prompt).__name__}",
                                      source=at.source, line=at.line, row=at.row, reason="non-string text")
        a, b = _response_text(chosen), _response_text(rejected)
        implicit = False
    else:
        prompt, a, b = _split_implicit(chosen, rejected, at)
        implicit = True
        if isinstance(chosen, list):
            k = _shared_messages(chosen, rejected)
            if k:
                conversation = (chosen[:k], chosen[k:], rejected[k:])
    _check_distinct(a, b, at, what="chosen and rejected")
    return prompt, a, b, implicit, conversation


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


def _message_content(msg: Mapping[str, Any]) -> str:
    content = msg["content"]
    return content if isinstance(content, str) else _content_parts_text(content) or ""


def render_messages(messages: Sequence[Mapping[str, Any]]) -> str:
    """Render a conversation as ``"role: content"`` blocks separated by blank lines."""
    return "\n\n".join(f"{m['role']}: {_message_content(m)}" for m in messages)


def _response_text(value: str | list) -> str:
    if isinstance(value, str):
        return value
    if len(value) == 1:
        return _message_content(value[0])
    return render_messages(value)


def _split_implicit(chosen: str | list, rejected: str | list, at: PairValidationError) -> tuple[str, str, str]:
    if isinstance(chosen, list):
        k = _shared_messages(chosen, rejected)
        if k == len(chosen) or k == len(rejected):
            raise PairValidationError("one conversation is a prefix of the other: no response to compare",
                                      source=at.source, line=at.line, row=at.row, reason="identical responses")
        return render_messages(chosen[:k]), _response_text(chosen[k:]), _response_text(rejected[k:])
    split = split_hh_transcripts(chosen, rejected)
    if split is not None:
        return split
    # No marker: cut at the last whitespace of the shared prefix, so no word is split between prompt and response.
    shared = _common_prefix(chosen, rejected)
    cut = max(shared.rfind(c) for c in (" ", "\n", "\t")) + 1
    return chosen[:cut].strip(), chosen[cut:].strip(), rejected[cut:].strip()


def _shared_messages(chosen: list, rejected: list) -> int:
    """How many leading messages two conversations share (their implicit prompt)."""
    k = 0
    while k < min(len(chosen), len(rejected)) and chosen[k] == rejected[k]:
        k += 1
    return k


def _common_prefix(a: str, b: str) -> str:
    n = 0
    limit = min(len(a), len(b))
    while n < limit and a[n] == b[n]:
        n += 1
    return a[:n]


# ----------------------------------------------------------------------------------------------------------------
# Anthropic HH-RLHF


def split_hh_transcripts(chosen: str, rejected: str) -> tuple[str, str, str] | None:
    """Split two HH-RLHF transcripts into (prompt, chosen response, rejected response).

    The prompt is the shared prefix up to and including the last ``"\\n\\nAssistant:"`` that lies inside
    the common prefix of both transcripts (leading whitespace removed); the rest of each transcript,
    stripped, is its response. Returns None when no such marker is shared.
    """
    n = len(_common_prefix(chosen, rejected))
    k = chosen.rfind(HH_ASSISTANT, 0, n)
    if k < 0:
        return None
    cut = k + len(HH_ASSISTANT)
    return chosen[:cut].lstrip(), chosen[cut:].strip(), rejected[cut:].strip()


def load_hh_rlhf(
    paths: str | Path | Sequence[str | Path],
    *,
    seed: int = 0,
    limit: int | None = None,
    labels_as: str | None = None,
    on_error: str = "raise",
) -> tuple[PreferencePairs, LoadReport]:
    """Load Anthropic HH-RLHF files (``.jsonl`` or ``.jsonl.gz``, ``{"chosen": ..., "rejected": ...}`` a line).

    The prompt and the two responses come from :func:`split_hh_transcripts`. Rows are skipped, counted by
    reason and warned about when the transcripts share no ``"\\n\\nAssistant:"`` prefix ("no shared prompt
    prefix"), when a response runs over several turns ("responses span several turns") or when the two
    responses are identical ("identical responses"). Empty responses are kept and counted in the notes.

    Parameters
    ----------
    paths : path or sequence of paths
        Files read in order; one random stream (``np.random.default_rng(seed)``) decides A/B per row.
    seed : int
        Seed for the A/B order.
    limit : int, optional
        Stop once this many pairs are loaded.
    labels_as : {None, "human", "ai"}
        Also copy the gold label (chosen) into ``human_label`` or ``ai_label``.
    on_error : {"raise", "skip"}
        What to do with malformed lines (invalid JSON, missing or non-string fields).

    Returns
    -------
    pairs : PreferencePairs
        Ids ``f"{file_stem}-{row}"`` (0-based row in the file); ``gold_label`` = +1 where chosen is A.
    report : LoadReport
    """
    path_list = [Path(paths)] if isinstance(paths, (str, Path)) else [Path(p) for p in paths]
    if not path_list:
        raise ValueError("no HH-RLHF files given")
    stems = _unique_stems(path_list)

    def files() -> Iterator[tuple[str, str, Iterator[tuple[int | None, Any]]]]:
        for path, stem in zip(path_list, stems):
            raw = _read_bytes(path)
            if not raw.strip():
                raise PairValidationError("file is empty", source=str(path), reason="empty file")
            yield str(path), stem, _iter_jsonl(raw, str(path), report)

    report = LoadReport(source=", ".join(str(p) for p in path_list))
    return _load_hh(files(), report, seed=seed, limit=limit, labels_as=labels_as, on_error=on_error)


def _load_hh(
    sources: Iterable[tuple[str, str, Iterable[tuple[int | None, Any]]]],
    report: LoadReport,
    *,
    seed: int,
    limit: int | None,
    labels_as: str | None,
    on_error: str,
) -> tuple[PreferencePairs, LoadReport]:
    """Shared core of the HH loaders: ``sources`` yields (source, id stem, [(line or None, record or error)])."""
    _check_on_error(on_error)
    check_choice(labels_as, _LABELS_AS, "labels_as")
    if limit is not None and limit < 1:
        raise ValueError(f"limit must be a positive number of pairs, got {limit}")
    columns = _Columns()
    rng = np.random.default_rng(seed)
    empty_responses = 0
    for source, stem, items in sources:
        for row, (lineno, item) in enumerate(items):
            if lineno is None:
                report.n_read += 1  # JSONL lines are counted by _iter_jsonl
            swap = rng.random() < 0.5  # drawn for every row, so a row's order does not depend on other rows
            at = PairValidationError("", source=source, line=lineno, row=row if lineno is None else None)
            try:
                if isinstance(item, PairValidationError):
                    raise item
                chosen, rejected = _require_text(item, "chosen", at), _require_text(item, "rejected", at)
            except PairValidationError as err:
                _handle(err, on_error, report)
                continue
            split = split_hh_transcripts(chosen, rejected)
            if split is None:
                report.skip("no shared prompt prefix", where=at.where)
                continue
            prompt, good, bad = split
            if HH_HUMAN in good or HH_HUMAN in bad:
                report.skip("responses span several turns", where=at.where)
                continue
            if good == bad:
                report.skip("identical responses", where=at.where)
                continue
            empty_responses += (good == "") + (bad == "")
            gold = B_PREFERRED if swap else A_PREFERRED
            a, b = (bad, good) if swap else (good, bad)
            columns.add(f"{stem}-{row}", prompt, a, b, gold=gold, ai=gold if labels_as == "ai" else UNKNOWN,
                        human=gold if labels_as == "human" else UNKNOWN, where=at.where)
            if limit is not None and len(columns) >= limit:
                break
        if limit is not None and len(columns) >= limit:
            report.notes.append(f"stopped at limit={limit} pairs")
            break
    if empty_responses:
        report.notes.append(f"{empty_responses} responses are empty (kept: an empty reply is a real, usually bad, answer)")
    return _finish(columns, report)


def _unique_stems(paths: list[Path]) -> list[str]:
    stems = [_file_stem(p) for p in paths]
    if len(set(stems)) == len(stems):
        return stems
    # e.g. harmless-base/test.jsonl.gz and helpful-base/test.jsonl.gz: qualify by the parent folder.
    stems = [f"{p.parent.name}-{s}" if p.parent.name else s for p, s in zip(paths, stems)]
    if len(set(stems)) != len(stems):
        dup = [s for s, c in Counter(stems).items() if c > 1]
        raise ValueError(f"HH-RLHF files would give clashing pair ids {dup}; pass each file once")
    return stems


def load_hh_rlhf_hub(
    split: str = "test",
    data_dir: str | None = None,
    *,
    seed: int = 0,
    limit: int | None = None,
    labels_as: str | None = None,
    on_error: str = "raise",
) -> tuple[PreferencePairs, LoadReport]:
    """Download HH-RLHF from the Hugging Face Hub (needs internet) and load it like :func:`load_hh_rlhf`.

    Calls ``datasets.load_dataset("Anthropic/hh-rlhf", data_dir=data_dir, split=split)``; ``data_dir`` is
    e.g. ``"harmless-base"``. Ids are ``f"{data_dir or 'hh-rlhf'}-{split}-{row}"``.
    """
    import datasets

    ds = datasets.load_dataset("Anthropic/hh-rlhf", data_dir=data_dir, split=split)
    source = f"hub:Anthropic/hh-rlhf/{data_dir or ''}[{split}]"
    stem = f"{data_dir or 'hh-rlhf'}-{split}"
    report = LoadReport(source=source)
    return _load_hh([(source, stem, ((None, r) for r in ds))], report, seed=seed, limit=limit,
                    labels_as=labels_as, on_error=on_error)


# ----------------------------------------------------------------------------------------------------------------
# PandaLM


#: judge name -> (file in the PandaLM directory, verdict field). Verdicts: 1 = response1, 2 = response2, 0 = tie.
PANDALM_JUDGES = {
    "gpt-3.5": ("gpt-3.5-turbo-testset-v1.json", "gpt_result"),  # strings "0"/"1"/"2", "Tie", "garbage"
    "pandalm-7b": ("pandalm-7b-testset-v1.json", "pandalm_result"),  # integers 0/1/2
}
PANDALM_TESTSET = "testset-v1.json"
_PANDALM_VOTE = {1: A_PREFERRED, 2: B_PREFERRED, 0: UNKNOWN}


def parse_pandalm_verdict(value: Any) -> int | None:
    """A PandaLM-style verdict (1/2/0, "1"/"2"/"0", "Tie") as +1 (response1), -1 (response2), 0 (tie);
    None when it is none of those (e.g. GPT-3.5's ``"garbage"``)."""
    if isinstance(value, bool):
        return None
    if isinstance(value, str):
        key = value.strip().lower()
        if key == "tie":
            return UNKNOWN
        value = int(key) if key in ("0", "1", "2") else None
    return _PANDALM_VOTE.get(value) if isinstance(value, int) else None


def load_pandalm(
    directory: str | Path,
    *,
    judge: str | None = "gpt-3.5",
    second_judge: str | None = None,
) -> tuple[PreferencePairs, LoadReport]:
    """Load the PandaLM human-annotated test set with a real AI judge's verdicts as ``ai_label``.

    Gold is the majority of the three human votes (``annotator1..3``: 1 = response1, 2 = response2,
    0 = tie); rows whose majority is a tie, or that have no majority, are dropped ("human tie/no majority").
    Response1 is A and response2 is B (the source order is already unrelated to the label). The prompt is
    the instruction, plus the input on the next line when it is not empty.

    Parameters
    ----------
    directory : str or Path
        Folder with ``testset-v1.json`` and the judge files named in :data:`PANDALM_JUDGES`.
    judge : {"gpt-3.5", "pandalm-7b", None}
        Whose verdict becomes ``ai_label`` (joined by ``idx``). Pairs where this judge said tie or gave an
        unparseable answer are dropped ("judge tie/unparseable"). None: no AI label, nothing dropped for it.
    second_judge : {"gpt-3.5", "pandalm-7b", None}
        The other judge's verdict goes into ``pairs.extra["second_judge_label"]`` (int8, 0 where it said tie
        or gave garbage), for agreement-based evidence.

    Returns
    -------
    pairs : PreferencePairs
        Ids ``f"pandalm-{idx}"``.
    report : LoadReport
        Notes give the judge's tie/garbage counts and its agreement with gold.
    """
    directory = Path(directory)
    check_choice(judge, (None, *PANDALM_JUDGES), "judge")
    check_choice(second_judge, (None, *PANDALM_JUDGES), "second_judge")
    if second_judge is not None and second_judge == judge:
        raise ValueError(f"second_judge must differ from judge (both {judge!r})")
    rows = _read_json_array(directory / PANDALM_TESTSET)
    verdicts = {name: _pandalm_verdicts(directory, name, len(rows)) for name in {judge, second_judge} - {None}}
    report = LoadReport(source=str(directory / PANDALM_TESTSET))
    columns = _Columns()
    coerced: list[str] = []
    raw_verdicts: Counter = Counter()
    second: list[int] = []
    for pos, row in enumerate(rows):
        report.n_read += 1
        at = PairValidationError("", source=report.source, row=pos)
        idx = row.get("idx") if isinstance(row, Mapping) else None
        if not isinstance(idx, int) or isinstance(idx, bool):
            raise PairValidationError(f"record has no integer 'idx' (got {idx!r})", source=at.source, row=pos, reason="bad id")
        gold = _pandalm_majority(row, at)
        if gold is None:
            report.skip("human tie/no majority", where=at.where)
            continue
        ai = UNKNOWN
        if judge is not None:
            raw, ai_or_none = _verdict_for(verdicts, judge, idx)
            if not ai_or_none:
                raw_verdicts[str(raw)] += 1
                report.skip("judge tie/unparseable", where=at.where)
                continue
            ai = ai_or_none
        texts = []
        for key in ("instruction", "input", "response1", "response2"):
            if key not in row:
                raise PairValidationError(f"field {key!r} is missing (idx {idx})", source=at.source, row=pos, reason="missing field")
            value = row[key]
            if not isinstance(value, str):
                coerced.append(f"idx {idx} {key}={value!r}")
                value = str(value)
            texts.append(value)
        instruction, inp, r1, r2 = texts
        try:
            _check_distinct(r1, r2, at, what=f"response1 and response2 (idx {idx})")
        except PairValidationError as err:
            report.skip(err.reason, example=str(err), where=err.where)
            continue
        prompt = instruction.strip() + ("\n" + inp.strip() if inp.strip() else "")
        pair_id = f"pandalm-{idx}"
        columns.check_new_id(pair_id, at)
        columns.add(pair_id, prompt, r1, r2, ai=ai, gold=gold, where=f"row {pos}")
        if second_judge is not None:
            second.append(_verdict_for(verdicts, second_judge, idx)[1] or UNKNOWN)
    if second_judge is not None:
        columns.evidence.kinds["second_judge_label"] = "label"
        columns.evidence.values["second_judge_label"] = dict(enumerate(second))
    if coerced:
        report.notes.append(f"{len(coerced)} non-string fields (JSON booleans in the source) read as str(value): "
                            + "; ".join(coerced))
    if judge is not None:
        if raw_verdicts:
            report.notes.append(f"{judge} verdicts dropped: " + ", ".join(f"{n} {v!r}" for v, n in raw_verdicts.most_common()))
        if columns.gold:
            agree = float(np.mean(np.asarray(columns.ai) == np.asarray(columns.gold)))
            report.notes.append(f"{judge} agrees with the human majority on {agree:.1%} of {len(columns)} pairs")
    if second_judge is not None:
        report.notes.append(f"extra['second_judge_label'] = {second_judge} verdicts "
                            f"({sum(1 for s in second if s == 0)} tie/unparseable stored as 0)")
    return _finish(columns, report)


def _read_json_array(path: Path) -> list:
    raw = _read_bytes(path)
    try:
        data = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise PairValidationError(f"not valid JSON: {exc}", source=str(path), reason="invalid JSON") from None
    if not isinstance(data, list):
        raise PairValidationError(f"expected a JSON array of records, got {type(data).__name__}", source=str(path),
                                  reason="not an object")
    if not data:
        raise PairValidationError("file holds no records", source=str(path), reason="empty file")
    return data


def _pandalm_verdicts(directory: Path, name: str, n_rows: int) -> dict[int, tuple[Any, int | None]]:
    """idx -> (raw verdict, parsed verdict or None) for one judge file."""
    filename, key = PANDALM_JUDGES[name]
    path = directory / filename
    out: dict[int, tuple[Any, int | None]] = {}
    for pos, rec in enumerate(_read_json_array(path)):
        if not isinstance(rec, Mapping) or "idx" not in rec or key not in rec:
            raise PairValidationError(f"record needs 'idx' and {key!r}", source=str(path), row=pos, reason="missing field")
        if rec["idx"] in out:
            raise PairValidationError(f"duplicate idx {rec['idx']!r}", source=str(path), row=pos, reason="duplicate id")
        out[rec["idx"]] = (rec[key], parse_pandalm_verdict(rec[key]))
    if len(out) != n_rows:
        raise PairValidationError(f"{len(out)} verdicts for {n_rows} test rows", source=str(path), reason="missing judge row")
    return out


def _verdict_for(verdicts: Mapping[str, Mapping[int, tuple[Any, int | None]]], judge: str, idx: int) -> tuple[Any, int | None]:
    try:
        return verdicts[judge][idx]
    except KeyError:
        raise PairValidationError(f"no {judge} verdict for idx {idx}", source=PANDALM_JUDGES[judge][0],
                                  reason="missing judge row") from None


def _pandalm_majority(row: Mapping[str, Any], at: PairValidationError) -> int | None:
    votes = []
    for key in ("annotator1", "annotator2", "annotator3"):
        vote = row.get(key)
        if isinstance(vote, bool) or vote not in (0, 1, 2):
            raise PairValidationError(f"{key} = {vote!r} (idx {row.get('idx')}): votes must be 0 (tie), 1 or 2",
                                      source=at.source, row=at.row, reason="bad label")
        votes.append(int(vote))
    value, count = Counter(votes).most_common(1)[0]
    return (_PANDALM_VOTE[value] or None) if count >= 2 else None
