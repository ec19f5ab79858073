"""The PandaLM human-annotated test set with its GPT-3.5 and PandaLM-7B verdicts (:func:`load_pandalm`)."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Any, Mapping

import numpy as np

from rlthf_selector.io.rows import LoadReport, _check_distinct, _Columns, _finish, _read_bytes
from rlthf_selector.pairs import A_PREFERRED, B_PREFERRED, UNKNOWN, PreferencePairs
from rlthf_selector.validation import PairValidationError, check_choice

__all__ = ["PANDALM_JUDGES", "load_pandalm", "parse_pandalm_verdict"]


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
