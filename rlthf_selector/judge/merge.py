"""From answers to AI labels: both orders of one judge, then the majority of several judges.

Everything here is numpy over arrays of shape ``(n,)`` or ``(n, J)`` with the label convention of
:mod:`rlthf_selector.pairs` (+1 = A preferred, -1 = B preferred, 0 = no label).

**One judge, two orders** (:func:`combine_orders`). Each order gives a verdict and, where the server returns
log-probabilities, ``p_a`` = the judge's probability that the pair's response A is better. Without
log-probabilities an order's ``p_a`` is its vote (1 or 0). The confidence of a label is the mean, over the
orders that answered, of the probability given to that label; a pair whose two orders disagree
(*inconsistent*), or that only one order could judge, gets **half** of that. At temperature 0 a consistent
verdict therefore scores at least 0.5 and a contradicted one at most 0.5: contradicted verdicts never outrank
consistent ones. An inconsistent pair keeps the label with the larger mean ``p_a`` (ties: the verdict with A
shown first).

**Several judges** (:func:`majority_vote`). The label most judges gave wins; a tie in votes goes to the side
with the larger summed confidence, and a tie in that too to the judge listed first (the first ``--model``,
then the first label file), so two judges that disagree still give a label, with ``ai_disagreement`` 0.5
flagging it. The pair's
confidence is the mean over voting judges of the probability each gives the majority label (its confidence if
it agrees, one minus it if not), and ``ai_disagreement`` is the share of voting judges against the majority.

The per-pair evidence written out (``ai_confidence``, ``ai_consistent``, ``ai_disagreement``,
``judge_labels``, ``judge_doubt`` = 1 - confidence) become signals of the mistake model
(:mod:`rlthf_selector.mistakes`), which learns from the human answers how much each marks the AI's mistakes; on
real data a contradicted or contested verdict is far more often wrong.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np

from rlthf_selector.pairs import format_label, parse_label

logger = logging.getLogger(__name__)

# Values of JudgeLabels.consistent
INCONSISTENT, CONSISTENT, CONSISTENCY_UNKNOWN = 0, 1, -1
JUDGE_NAME_SEPARATOR = "|"


def combine_orders(
    label_ab: np.ndarray,
    label_ba: np.ndarray,
    p_a_ab: np.ndarray | None = None,
    p_a_ba: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Fuse one judge's verdicts on the two orders of each pair.

    Parameters
    ----------
    label_ab : ndarray of int8, shape (n,)
        Verdict with response A shown first, in pair terms (+1 A, -1 B, 0 none).
    label_ba : ndarray of int8, shape (n,)
        Verdict with response B shown first, in pair terms.
    p_a_ab, p_a_ba : ndarray of float, shape (n,), optional
        P(response A is better) in each order from log-probabilities; NaN where unknown.

    Returns
    -------
    label : ndarray of int8, shape (n,)
    confidence : ndarray of float64, shape (n,)
        In [0, 1]; 0 where ``label`` is 0.
    consistent : ndarray of bool, shape (n,)
        Both orders answered and agree.
    """
    label_ab = np.asarray(label_ab, dtype=np.int8)
    label_ba = np.asarray(label_ba, dtype=np.int8)
    n = label_ab.shape[0]
    if label_ba.shape != (n,):
        raise ValueError(f"label_ba must have shape ({n},), got {label_ba.shape}")
    p_a_ab = np.full(n, np.nan) if p_a_ab is None else np.asarray(p_a_ab, dtype=np.float64)
    p_a_ba = np.full(n, np.nan) if p_a_ba is None else np.asarray(p_a_ba, dtype=np.float64)

    valid = np.stack([label_ab != 0, label_ba != 0], axis=1)  # (n, 2)
    votes = np.stack([label_ab, label_ba], axis=1)
    probs = np.stack([p_a_ab, p_a_ba], axis=1)
    # An order without log-probabilities counts as certain of its own vote.
    score_a = np.where(np.isnan(probs), (votes > 0).astype(np.float64), probs)
    score_a = np.where(valid, score_a, np.nan)
    n_valid = valid.sum(axis=1)
    with np.errstate(invalid="ignore"):
        mean_a = np.where(n_valid > 0, np.nansum(score_a, axis=1) / np.maximum(n_valid, 1), np.nan)

    consistent = (n_valid == 2) & (label_ab == label_ba)
    single = n_valid == 1
    first_vote = np.where(label_ab != 0, label_ab, label_ba)
    by_mean = np.sign(np.nan_to_num(mean_a, nan=0.5) - 0.5).astype(np.int8)
    label = np.where(consistent | single, first_vote, np.where(by_mean != 0, by_mean, first_vote))
    label = np.where(n_valid == 0, 0, label).astype(np.int8)

    p_label = np.where(label > 0, mean_a, 1.0 - mean_a)
    confidence = np.where(consistent, p_label, p_label / 2.0)
    confidence = np.where(label == 0, 0.0, np.clip(confidence, 0.0, 1.0))
    return label, confidence.astype(np.float64), consistent


def majority_vote(labels: np.ndarray, confidence: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Majority of J judges per pair.

    Parameters
    ----------
    labels : ndarray of int8, shape (n, J)
        Each judge's label (0 = that judge has none; it does not vote).
    confidence : ndarray of float, shape (n, J)
        Each judge's confidence in its own label, in [0, 1].

    Returns
    -------
    label : ndarray of int8, shape (n,)
        The majority label; ties in votes go to the larger summed confidence, then to the first judge
        (column) that voted. 0 only when no judge voted.
    agreement_confidence : ndarray of float64, shape (n,)
        Mean over voting judges of the probability each gives the majority label; 0 where unlabeled.
    disagreement : ndarray of float64, shape (n,)
        Share of voting judges against the majority (0 when nobody voted).
    tied : ndarray of bool, shape (n,)
        Votes and summed confidence were tied: the first voting judge decided.
    """
    labels = np.asarray(labels, dtype=np.int8)
    confidence = np.nan_to_num(np.asarray(confidence, dtype=np.float64), nan=0.0)
    if labels.ndim != 2 or confidence.shape != labels.shape:
        raise ValueError(
            f"labels and confidence must both have shape (n, J), got {labels.shape} and {confidence.shape}"
        )
    for_a, for_b = labels > 0, labels < 0
    n_voting = (for_a | for_b).sum(axis=1)
    vote_margin = for_a.sum(axis=1) - for_b.sum(axis=1)
    weight_margin = (confidence * for_a).sum(axis=1) - (confidence * for_b).sum(axis=1)
    label = np.sign(vote_margin)
    label = np.where(label == 0, np.sign(np.round(weight_margin, 12)), label).astype(np.int8)
    tied = (n_voting > 0) & (label == 0)
    first_vote = labels[np.arange(labels.shape[0]), np.argmax(labels != 0, axis=1)] if labels.shape[1] else label
    label = np.where(tied, first_vote, label).astype(np.int8)

    agrees = labels == label[:, None]
    voting = labels != 0
    towards = np.where(agrees, confidence, 1.0 - confidence)
    with np.errstate(invalid="ignore"):
        agreement_confidence = np.where(label != 0, (towards * voting).sum(axis=1) / np.maximum(n_voting, 1), 0.0)
        disagreement = np.where(label != 0, (voting & ~agrees).sum(axis=1) / np.maximum(n_voting, 1), 0.0)
    return label, agreement_confidence.astype(np.float64), disagreement.astype(np.float64), tied


# ------------------------------------------------------------------------------------- per-judge labels


@dataclass
class JudgeLabels:
    """One judge's labels over the n pairs of a run, in pair order.

    Attributes
    ----------
    name : str
        Key in ``judge_labels``.
    label : ndarray of int8, shape (n,)
    confidence : ndarray of float64, shape (n,)
        In [0, 1]; 0 where unlabeled.
    consistent : ndarray of int8, shape (n,)
        1 = both orders agree, 0 = they do not (or only one answered), -1 = unknown (labels from a file).
    reason : ndarray of object, shape (n,)
        Why ``label`` is 0 (``"category: detail"``), else None.
    """

    name: str
    label: np.ndarray
    confidence: np.ndarray
    consistent: np.ndarray
    reason: np.ndarray = field(default=None)  # type: ignore[assignment]

    def __post_init__(self) -> None:
        n = self.label.shape[0]
        if self.reason is None:
            self.reason = np.full(n, None, dtype=object)
        for name in ("confidence", "consistent", "reason"):
            if getattr(self, name).shape != (n,):
                raise ValueError(f"JudgeLabels {self.name!r}: {name} must have shape ({n},)")


@dataclass
class Evidence:
    """The AI label and the evidence behind it, per pair (arrays of shape (n,) unless stated).

    Attributes
    ----------
    ai_label : ndarray of int8
    ai_confidence, ai_disagreement : ndarray of float64
    ai_consistent : ndarray of bool
    ai_unlabeled_reason : ndarray of object (str or None)
    judge_names : list of str, length J
    judge_labels : ndarray of int8, shape (n, J)
    judge_confidence : ndarray of float64, shape (n, J)
        NaN where that judge gave no label.
    judge_consistent : ndarray of int8, shape (n, J)
        1 / 0 / -1 (unknown or no label).
    """

    ai_label: np.ndarray
    ai_confidence: np.ndarray
    ai_consistent: np.ndarray
    ai_disagreement: np.ndarray
    ai_unlabeled_reason: np.ndarray
    judge_names: list
    judge_labels: np.ndarray
    judge_confidence: np.ndarray
    judge_consistent: np.ndarray

    @property
    def judge_doubt(self) -> np.ndarray:
        """1 - confidence, shape (n,): a signal of the mistake model (``judge_unsure``)."""
        return 1.0 - self.ai_confidence

    def record(self, i: int) -> dict[str, Any]:
        """The output fields of pair ``i`` (JSON-ready).

        Per-judge fields are lists in the order of ``judge_names`` (joined with ``"|"``), the shape
        :func:`rlthf_selector.io.load_jsonl` reads into ``pairs.extra`` as (n, J) arrays.
        """
        conf = self.judge_confidence[i]
        cons = self.judge_consistent[i]
        return {
            "ai_label": format_label(int(self.ai_label[i])),
            "ai_confidence": round(float(self.ai_confidence[i]), 6),
            "ai_consistent": bool(self.ai_consistent[i]),
            "ai_disagreement": round(float(self.ai_disagreement[i]), 6),
            "ai_unlabeled_reason": self.ai_unlabeled_reason[i],
            "judge_doubt": round(float(self.judge_doubt[i]), 6),
            "judge_names": JUDGE_NAME_SEPARATOR.join(self.judge_names),
            "judge_labels": [format_label(int(v)) for v in self.judge_labels[i]],
            "judge_confidence": [None if np.isnan(c) else round(float(c), 6) for c in conf],
            "judge_consistent": [None if c == CONSISTENCY_UNKNOWN else float(c) for c in cons],
        }


def combine_judges(judges: Sequence[JudgeLabels]) -> Evidence:
    """Majority label and evidence over several judges' labels (see the module docstring).

    Raises
    ------
    ValueError
        When no judge is given, or the judges cover different numbers of pairs.
    """
    if not judges:
        raise ValueError("no judge labels to combine")
    n = judges[0].label.shape[0]
    if any(j.label.shape != (n,) for j in judges):
        raise ValueError("all judges must label the same pairs")
    labels = np.stack([j.label for j in judges], axis=1)
    conf = np.stack([j.confidence for j in judges], axis=1)
    consistent = np.stack([j.consistent for j in judges], axis=1)
    label, confidence, disagreement, _ = majority_vote(labels, conf)
    voting = labels != 0
    # Unknown consistency (labels merged from a file) is not evidence of inconsistency.
    ai_consistent = (label != 0) & ~(voting & (consistent == INCONSISTENT)).any(axis=1)

    judge_conf = np.where(voting, conf, np.nan)
    judge_cons = np.where(voting, consistent, CONSISTENCY_UNKNOWN).astype(np.int8)
    names = [j.name for j in judges]
    reasons = np.full(n, None, dtype=object)
    for i in np.flatnonzero(label == 0):
        if len(judges) == 1:
            reasons[i] = judges[0].reason[i] or "no_verdict: the judge gave no label"
        else:
            reasons[i] = "no_verdict: " + "; ".join(
                f"{nm}: {j.reason[i] or 'no label'}" for nm, j in zip(names, judges)
            )
    return Evidence(
        ai_label=label,
        ai_confidence=confidence,
        ai_consistent=ai_consistent,
        ai_disagreement=disagreement,
        ai_unlabeled_reason=reasons,
        judge_names=names,
        judge_labels=labels,
        judge_confidence=judge_conf,
        judge_consistent=judge_cons,
    )


def reason_category(reason: str | None) -> str | None:
    """``"malformed: ..."`` -> ``"malformed"``."""
    return None if reason is None else reason.split(":", 1)[0].strip()


# ----------------------------------------------------------------------------------- labels from files


class LabelFileError(ValueError):
    """A label file is unreadable or holds a bad value (the message names file, line and field)."""


def read_label_file(path: str | Path, ids: Sequence[str], *, column: str = "ai_label") -> list[JudgeLabels]:
    """Read labels a team already has, aligned to ``ids``.

    Parameters
    ----------
    path : str or Path
        JSONL with an ``id`` per line. When ``column`` is ``ai_label`` and a line carries ``judge_labels``
        (the output of ``rlthf prelabel``), each judge in it becomes its own judge, with its confidence and
        consistency where recorded, so merging several prelabel outputs keeps every verdict. Otherwise the
        column is one judge named after the file (``stem`` or ``stem:column``), with ``ai_confidence`` and
        ``ai_consistent`` used when the column is ``ai_label`` and they are present.
    ids : sequence of str, length n
        Pair ids of the run, in order.
    column : str
        Field holding the label: ``"a"``/``"b"``, +1/-1/0 or null.

    Returns
    -------
    list of JudgeLabels, each of length n. Pairs the file lacks get label 0 and a ``no_label`` reason.

    Raises
    ------
    LabelFileError
        Unreadable JSON, a missing ``id``, a duplicate id or a value that is not a label (file and line named).
    """
    path = Path(path)
    index = {str(pid): i for i, pid in enumerate(ids)}
    n = len(index)
    base = path.stem[:-6] if path.stem.endswith(".jsonl") else path.stem
    single_name = base if column == "ai_label" else f"{base}:{column}"
    columns: dict[str, dict[str, np.ndarray]] = {}

    def arrays(name: str) -> dict[str, np.ndarray]:
        if name not in columns:
            columns[name] = {
                "label": np.zeros(n, dtype=np.int8),
                "confidence": np.zeros(n, dtype=np.float64),
                "consistent": np.full(n, CONSISTENCY_UNKNOWN, dtype=np.int8),
                "reason": np.full(n, None, dtype=object),
                "seen": np.zeros(n, dtype=bool),
            }
        return columns[name]

    seen_ids: set[str] = set()
    unknown_ids = 0
    try:
        fh = open(path, encoding="utf-8")
    except OSError as exc:
        raise LabelFileError(f"cannot read label file {path}: {exc}") from None
    with fh:
        for lineno, line in enumerate(fh, 1):
            if not line.strip():
                continue
            where = f"{path}:{lineno}"
            try:
                record = json.loads(line)
            except ValueError as exc:
                raise LabelFileError(f"{where}: not valid JSON ({exc})") from None
            if not isinstance(record, dict) or "id" not in record:
                raise LabelFileError(f"{where}: no 'id' field")
            pid = str(record["id"])
            if pid in seen_ids:
                raise LabelFileError(f"{where}: duplicate id {pid!r}")
            seen_ids.add(pid)
            if pid not in index:
                unknown_ids += 1
                continue
            i = index[pid]
            per_judge = _per_judge(record, where) if column == "ai_label" else None
            if per_judge:
                for name, (value, conf, cons) in per_judge.items():
                    cols = arrays(name)
                    _fill(cols, i, value, conf, cons, f"{where}: judge_labels[{name!r}]")
            else:
                if column not in record:
                    raise LabelFileError(f"{where}: no {column!r} field")
                cols = arrays(single_name)
                conf = record.get("ai_confidence") if column == "ai_label" else None
                cons = record.get("ai_consistent") if column == "ai_label" else None
                _fill(cols, i, record[column], conf, cons, f"{where}: {column}")
                if cols["label"][i] == 0 and column == "ai_label" and record.get("ai_unlabeled_reason"):
                    cols["reason"][i] = str(record["ai_unlabeled_reason"])
    if unknown_ids:
        logger.warning("%s: %d labelled ids are not among the pairs and were ignored", path, unknown_ids)
    if not columns:
        raise LabelFileError(f"{path}: no labels for any of the {n} pairs")
    out = []
    for name, cols in columns.items():
        missing = ~cols["seen"]
        cols["reason"][missing] = f"no_label: {path.name} has no line for this id"
        empty = cols["seen"] & (cols["label"] == 0) & np.array([r is None for r in cols["reason"]])
        cols["reason"][empty] = f"no_label: {path.name} gives no label"
        if missing.any():
            logger.warning("%s: %d of %d pairs have no label from judge %r", path, int(missing.sum()), n, name)
        out.append(JudgeLabels(name, cols["label"], cols["confidence"], cols["consistent"], cols["reason"]))
    return out


def _per_judge(record: Mapping[str, Any], where: str) -> dict[str, tuple[Any, Any, Any]] | None:
    """Per-judge (label, confidence, consistent) of a prelabel output line: lists aligned with
    ``judge_names`` (what :meth:`Evidence.record` writes) or dicts keyed by judge name."""
    labels = record.get("judge_labels")
    if not labels:
        return None
    confs = record.get("judge_confidence")
    cons = record.get("judge_consistent")
    if isinstance(labels, dict):
        confs = confs if isinstance(confs, dict) else {}
        cons = cons if isinstance(cons, dict) else {}
        return {str(k): (v, confs.get(k), cons.get(k)) for k, v in labels.items()}
    if not isinstance(labels, list):
        raise LabelFileError(f"{where}: judge_labels must be a list or an object, got {type(labels).__name__}")
    names = str(record.get("judge_names") or "").split(JUDGE_NAME_SEPARATOR)
    if len(names) != len(labels) or not all(names):
        raise LabelFileError(
            f"{where}: judge_names {record.get('judge_names')!r} does not name the {len(labels)} judge_labels"
        )
    confs = confs if isinstance(confs, list) and len(confs) == len(labels) else [None] * len(labels)
    cons = cons if isinstance(cons, list) and len(cons) == len(labels) else [None] * len(labels)
    return {name: (labels[k], confs[k], cons[k]) for k, name in enumerate(names)}


def _fill(cols: dict[str, np.ndarray], i: int, value: Any, conf: Any, cons: Any, where: str) -> None:
    try:
        label = parse_label(value)
    except ValueError as exc:
        raise LabelFileError(f"{where}: {exc}") from None
    cols["seen"][i] = True
    cols["label"][i] = label
    if label == 0:
        return
    if conf is None:
        cols["confidence"][i] = 1.0
    else:
        try:
            c = float(conf)
        except (TypeError, ValueError):
            raise LabelFileError(f"{where}: confidence {conf!r} is not a number") from None
        if not 0.0 <= c <= 1.0:
            raise LabelFileError(f"{where}: confidence {c} is outside [0, 1]")
        cols["confidence"][i] = c
    if cons is not None:
        cols["consistent"][i] = CONSISTENT if bool(cons) else INCONSISTENT
