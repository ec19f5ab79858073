"""TRL preference data (``prompt``/``chosen``/``rejected``): plain or conversational, explicit or implicit prompt
(:func:`load_trl`).

Where a source only says which response was chosen, the A/B order is randomised per pair with
``np.random.default_rng(seed)`` so a response's position never gives its label away.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np

from rlthf_selector.io.hh_rlhf import _common_prefix, split_hh_transcripts
from rlthf_selector.io.rows import (
    _LABELS_AS,
    LoadReport,
    _check_distinct,
    _check_messages,
    _check_on_error,
    _Columns,
    _content_parts_text,
    _file_stem,
    _finish,
    _handle,
    _iter_jsonl,
    _parse_id,
    _read_bytes,
)
from rlthf_selector.pairs import A_PREFERRED, B_PREFERRED, MESSAGE_FIELDS, UNKNOWN, PreferencePairs
from rlthf_selector.validation import PairValidationError, check_choice

__all__ = ["load_trl", "render_messages"]


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
