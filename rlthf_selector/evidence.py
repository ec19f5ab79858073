"""The AI judge's own doubt about each label, from whatever evidence the pairs carry.

The reward gap is one signal that an AI label is wrong; the judge that produced the label often carries
others. :func:`judge_doubt` turns each kind of evidence found in ``pairs.extra`` into a per-pair component
in [0, 1] (1 = the evidence says the AI label is doubtful) and averages the components a pair has:

==========================  =====================================================================  ===========
column in ``pairs.extra``   component                                                              name
==========================  =====================================================================  ===========
``second_judge_label``      1 where a second judge prefers the other response, 0.5 where it        ``second``
                            gave no verdict (tie or unparseable), 0 where it agrees
``ai_consistent``           1 where the judge's verdict changed when A and B were swapped, else 0  ``swap``
``judge_doubt``             the prelabeller's own summary (1 - confidence), clipped to [0, 1]      ``explicit``
``ai_confidence``           1 - confidence; skipped where ``judge_doubt`` is present (it is        ``confidence``
                            the same number: ``rlthf prelabel`` writes judge_doubt = 1 - confidence)
``ai_disagreement``         2 x the share of judges voting against the majority (0.5 -> 1)         ``disagreement``
==========================  =====================================================================  ===========

Each component is a signal of its own in the mistake model (:mod:`rlthf_selector.mistakes`), which learns from the
human answers how much each one marks the AI's mistakes. :func:`judge_doubt` averages them into one number (the
``evidence-only`` rival of ``rlthf simulate``): missing values (NaN, or a pair without an AI label) contribute
nothing for that pair, and a pair with no component at all gets the mean doubt of the pairs that have some.

Measured on PandaLM (docs/signal-measurements.md): where GPT-3.5 and PandaLM-7B disagree, GPT-3.5 is wrong
37% of the time; where they agree, 12%.
"""

from __future__ import annotations

from typing import Any, Mapping, Sequence

import numpy as np

from rlthf_selector.pairs import PreferencePairs, format_label, parse_label

#: Names of the components, in the order :func:`doubt_components` returns them.
COMPONENTS = ("second", "swap", "explicit", "confidence", "disagreement")
#: The ``pairs.extra`` columns the components are read from: what a pair's record (a JSONL line, a Label Studio
#: task's data) must carry for the judge's evidence to reach the selector.
EVIDENCE_FIELDS = ("second_judge_label", "ai_consistent", "judge_doubt", "ai_confidence", "ai_disagreement")
_IN_UNIT_RANGE = ("judge_doubt", "ai_confidence", "ai_disagreement")


def _column(extra: Mapping[str, np.ndarray], key: str, n: int) -> np.ndarray | None:
    if key not in extra:
        return None
    col = np.asarray(extra[key])
    if col.shape != (n,):
        raise ValueError(f"pairs.extra[{key!r}] must have shape ({n},) to be used as judge evidence, got {col.shape}")
    return col


def _as_float(col: np.ndarray, key: str) -> np.ndarray:
    try:
        return col.astype(np.float64)
    except (TypeError, ValueError):
        raise ValueError(f"pairs.extra[{key!r}] must hold numbers to be used as judge evidence") from None


def doubt_components(pairs: PreferencePairs) -> dict[str, np.ndarray]:
    """Each available kind of evidence as a doubt in [0, 1] per pair (NaN where unknown).

    Parameters
    ----------
    pairs : PreferencePairs
        n pairs; evidence is read from ``pairs.extra`` (see the module docstring).

    Returns
    -------
    dict of str to ndarray of float64, shape (n,)
        Keys from :data:`COMPONENTS`, only those whose column is present. NaN where the pair has no AI
        label or the column has no value.

    Raises
    ------
    ValueError
        When an evidence column has the wrong shape or type, or a value outside its range
        (confidence, doubt or disagreement outside [0, 1]; a second-judge label other than +1/-1/0).
    """
    n = len(pairs)
    extra = pairs.extra
    ai = np.asarray(pairs.ai_label)
    no_ai = ai == 0
    out: dict[str, np.ndarray] = {}

    second = _column(extra, "second_judge_label", n)
    if second is not None:
        s = _as_float(second, "second_judge_label")
        if not np.isin(s, (-1.0, 0.0, 1.0)).all():
            i = int(np.flatnonzero(~np.isin(s, (-1.0, 0.0, 1.0)))[0])
            raise ValueError(f"pairs.extra['second_judge_label'][{i}] = {second[i]!r}: expected +1, -1 or 0")
        # Disagreeing judge = 1, no verdict (tie/garbage) = 0.5, agreeing = 0.
        out["second"] = np.where(s == 0, 0.5, (s != ai).astype(np.float64))

    consistent = _column(extra, "ai_consistent", n)
    if consistent is not None:
        c = _as_float(consistent, "ai_consistent")  # bool, or 1/0/NaN when absent on some rows
        out["swap"] = np.where(np.isnan(c), np.nan, (c == 0).astype(np.float64))

    explicit = _column(extra, "judge_doubt", n)
    confidence = _column(extra, "ai_confidence", n)
    for key, col, name, flip in (("judge_doubt", explicit, "explicit", False),
                                 ("ai_confidence", confidence, "confidence", True)):
        if col is None:
            continue
        v = _as_float(col, key)
        bad = ~np.isnan(v) & ((v < 0) | (v > 1))
        if bad.any():
            i = int(np.flatnonzero(bad)[0])
            raise ValueError(f"pairs.extra[{key!r}][{i}] = {v[i]!r}: must be in [0, 1]")
        out[name] = 1.0 - v if flip else v
    if "explicit" in out and "confidence" in out:
        # judge_doubt is 1 - ai_confidence where prelabel wrote both: count that evidence once.
        out["confidence"] = np.where(np.isnan(out["explicit"]), out["confidence"], np.nan)

    disagreement = _column(extra, "ai_disagreement", n)
    if disagreement is not None:
        v = _as_float(disagreement, "ai_disagreement")
        bad = ~np.isnan(v) & ((v < 0) | (v > 1))
        if bad.any():
            i = int(np.flatnonzero(bad)[0])
            raise ValueError(f"pairs.extra['ai_disagreement'][{i}] = {v[i]!r}: must be in [0, 1]")
        # Against the majority, at most half the judges can vote: 0.5 is the most contested.
        out["disagreement"] = np.minimum(2.0 * v, 1.0)

    for name in out:
        out[name] = np.where(no_ai, np.nan, out[name])
    return {name: out[name] for name in COMPONENTS if name in out}


def judge_doubt(pairs: PreferencePairs, *, weights: Mapping[str, float] | None = None) -> np.ndarray | None:
    """The AI judge's doubt about each pair's AI label, in [0, 1], or None when the pairs carry no evidence.

    Parameters
    ----------
    pairs : PreferencePairs
        n pairs with evidence in ``pairs.extra`` (see the module docstring for the columns read).
    weights : mapping of str to float, optional
        Weight of each component by name (:data:`COMPONENTS`); default 1 each. A weight of 0 ignores it.

    Returns
    -------
    ndarray of float64, shape (n,), or None
        The weighted mean of the components each pair has. Pairs with none get the mean over the pairs
        that have some. None when no component is present for any pair.

    Raises
    ------
    ValueError
        Bad evidence columns (see :func:`doubt_components`), or an unknown or negative weight.
    """
    weights = dict(weights or {})
    unknown = sorted(set(weights) - set(COMPONENTS))
    if unknown:
        raise ValueError(f"unknown judge-evidence components {unknown}: choose from {', '.join(COMPONENTS)}")
    if any(w < 0 for w in weights.values()):
        raise ValueError(f"judge-evidence weights must be >= 0, got {weights}")
    components = doubt_components(pairs)
    n = len(pairs)
    total = np.zeros(n)
    mass = np.zeros(n)
    for name, value in components.items():
        w = float(weights.get(name, 1.0))
        known = ~np.isnan(value)
        total[known] += w * value[known]
        mass[known] += w
    has = mass > 0
    if not has.any():
        return None
    doubt = np.empty(n)
    doubt[has] = total[has] / mass[has]
    doubt[~has] = doubt[has].mean()
    return np.clip(doubt, 0.0, 1.0)


def without_evidence(pairs: PreferencePairs) -> PreferencePairs:
    """The same pairs with every :data:`EVIDENCE_FIELDS` column dropped from ``pairs.extra``."""
    return pairs.replace(extra={k: v for k, v in pairs.extra.items() if k not in EVIDENCE_FIELDS})


def evidence_record(pairs: PreferencePairs, i: int) -> dict[str, Any]:
    """The judge-evidence fields of pair ``i`` as JSON values, for a record or a Label Studio task's data.

    ``second_judge_label`` as ``"a"``/``"b"``, ``ai_consistent`` as a bool, the others as numbers; fields the pair
    has no value for are left out. :func:`evidence_from_records` reads them back.
    """
    out: dict[str, Any] = {}
    for key in EVIDENCE_FIELDS:
        if key not in pairs.extra:
            continue
        value = pairs.extra[key][i]
        if key == "second_judge_label":
            label = format_label(int(value))
            if label is not None:
                out[key] = label
        elif not (isinstance(value, (float, np.floating)) and np.isnan(value)):
            out[key] = bool(value) if key == "ai_consistent" else float(value)
    return out


def evidence_from_records(records: Sequence[Mapping[str, Any]]) -> tuple[dict[str, np.ndarray], list[tuple[int, str]]]:
    """The judge-evidence columns for ``pairs.extra`` from one dict per pair (e.g. Label Studio task data).

    Only :data:`EVIDENCE_FIELDS` are read; other fields are not evidence and are ignored.

    Parameters
    ----------
    records : sequence of mapping, length n

    Returns
    -------
    extra : dict of str to ndarray, shape (n,)
        A column for each field that at least one record carries: ``second_judge_label`` as int8 (+1, -1, 0 where
        absent or a tie), ``ai_consistent`` as float64 1.0/0.0, the others as float64; NaN where absent.
    problems : list of (int, str)
        The record's position and what is wrong, for each value that could not be used (wrong type, outside
        [0, 1]). Such a value is left out (as if absent) rather than stopping the whole pool from training.
    """
    n = len(records)
    extra: dict[str, np.ndarray] = {}
    problems: list[tuple[int, str]] = []
    for key in EVIDENCE_FIELDS:
        present = [i for i, r in enumerate(records) if r.get(key) is not None]
        if not present:
            continue
        col = np.zeros(n, dtype=np.int8) if key == "second_judge_label" else np.full(n, np.nan)
        for i in present:
            value = records[i][key]
            try:
                if key == "second_judge_label":
                    col[i] = parse_label(value)
                    continue
                if key == "ai_consistent":
                    if not isinstance(value, bool):
                        raise ValueError(f"{value!r} is not true or false")
                    col[i] = float(value)
                    continue
                if isinstance(value, bool) or not isinstance(value, (int, float)):
                    raise ValueError(f"{value!r} is not a number")
                if key in _IN_UNIT_RANGE and not 0.0 <= float(value) <= 1.0:
                    raise ValueError(f"{value!r} is outside [0, 1]")
                col[i] = float(value)
            except ValueError as exc:
                problems.append((i, f"{key} left out: {exc}"))
        extra[key] = col
    return extra, sorted(problems, key=lambda p: p[0])


__all__ = ["COMPONENTS", "EVIDENCE_FIELDS", "doubt_components", "evidence_from_records", "evidence_record", "judge_doubt", "without_evidence"]
