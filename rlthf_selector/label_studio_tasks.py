"""Preference pairs as Label Studio tasks and back, and the label each pair ends with: pure data, no HTTP.

``rlthf label-studio setup`` writes pairs as tasks with :func:`task_records`. The backend's retrain reads a project's
tasks back with :func:`build_task_table`; ``rlthf export`` reads them with
:func:`task_labels`, which builds on the same table and settles every pair's label with
:func:`rlthf_selector.selection.resolve_labels` (human > flipped AI > AI > the reward model's). A task is a dict as
Label Studio lists it: ``id``, ``data`` (``prompt``, ``response_a``, ``response_b``, optional ``ai_label``,
``pair_id``, the judge's evidence and a conversation's messages), ``annotations`` and ``predictions``.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Mapping, Sequence

import numpy as np

from label_config import PreferenceControl, ResultError, parse_label_config, task_data_problems
from rlthf_selector.evidence import evidence_from_records, evidence_record
from rlthf_selector.pairs import MESSAGE_FIELDS, PreferencePairs, format_label, parse_label
from rlthf_selector.selection import resolve_labels

#: Warnings kept per call (one task per line); the rest are counted in one last line.
MAX_WARNINGS = 20


def warn(warnings: list[str], message: str) -> None:
    """Append ``message`` unless :data:`MAX_WARNINGS` are there already (then one line says more were left out)."""
    if len(warnings) < MAX_WARNINGS:
        warnings.append(message)
    elif len(warnings) == MAX_WARNINGS:
        warnings.append("(more warnings left out)")


def annotation_is_usable(annotation: Mapping[str, Any]) -> bool:
    """A submitted, not skipped annotation (skipped ones carry ``was_cancelled``)."""
    return not annotation.get("was_cancelled") and bool(annotation.get("result"))


def human_label_of(task: Mapping[str, Any], control: PreferenceControl, warnings: list[str]) -> int:
    """The human preference of a task from its annotations: +1, -1 or 0 (none usable).

    Skipped (``was_cancelled``) and empty annotations are excluded, and so is one whose result holds no preference
    (named in ``warnings``). With several annotations a ground-truth one wins, then the majority, then the most
    recent (``updated_at``, then the highest id).
    """
    votes: list[tuple[bool, str, int, int]] = []
    for ann in task.get("annotations") or []:
        if not isinstance(ann, Mapping) or not annotation_is_usable(ann):
            continue
        try:
            label = control.label_of(ann["result"])
        except ResultError as exc:
            warn(warnings, f"task {task.get('id')}: annotation {ann.get('id')} ignored: {exc}")
            continue
        if label:
            votes.append((bool(ann.get("ground_truth")), str(ann.get("updated_at") or ""), int(ann.get("id") or 0), label))
    if not votes:
        return 0
    truth = [v for v in votes if v[0]]
    if truth:
        return max(truth, key=lambda v: (v[1], v[2]))[3]
    total = sum(v[3] for v in votes)
    if total:
        return 1 if total > 0 else -1
    return max(votes, key=lambda v: (v[1], v[2]))[3]


def saw_prelabel(annotation: Mapping[str, Any], predictions: Sequence[Mapping[str, Any]]) -> bool:
    """Whether Label Studio records that an annotation began from a pre-annotation holding an answer.

    Label Studio keeps two traces: ``parent_prediction``, the prediction the annotation was created from (it opens
    the task with that prediction's result pre-selected), and an ``origin`` of ``prediction`` or
    ``prediction-changed`` on result items taken over from one. A parent prediction without a result (the backend's
    blind predictions for queued tasks) pre-selected nothing, so it does not count.
    """
    if any(isinstance(item, Mapping) and str(item.get("origin", "")).startswith("prediction")
           for item in annotation.get("result") or []):
        return True
    parent = annotation.get("parent_prediction")
    if parent is None:
        return False
    for prediction in predictions:
        if prediction.get("id") == parent:
            return bool(prediction.get("result"))
    # Label Studio clears parent_prediction when it deletes the prediction, so an id it still holds is there;
    # a task listing without it cannot tell what was shown: count it as seen rather than claim a blind label.
    return True


def order_shown(control: PreferenceControl) -> list[str]:
    """The responses in the order the labeling screen shows them (``"a"``, ``"b"``), from the config's data fields."""
    shown = [f for f in control.data_fields if f in ("response_a", "response_b")]
    order = [f[-1] for f in dict.fromkeys(shown)]
    return order if len(order) == 2 else ["a", "b"]


def task_records(pairs: PreferencePairs, *, control: PreferenceControl, model_version: str) -> list[dict[str, Any]]:
    """Label Studio tasks for pairs, the way back of :func:`build_task_table`: data fields (with the judge's evidence,
    which the backend's queue and flips read, and a conversational pair's messages, which ``rlthf export`` writes
    back) plus the AI label as a prediction (when present).

    Raises
    ------
    ValueError
        The config shows ``$prompt_messages`` and a pair has no dialogue (:func:`check_dialogues`).
    """
    if "prompt_messages" in control.data_fields:
        check_dialogues(pairs)
    tasks = []
    for i in range(len(pairs)):
        data = {
            "prompt": str(pairs.prompt[i]), "response_a": str(pairs.response_a[i]), "response_b": str(pairs.response_b[i]),
            "pair_id": str(pairs.ids[i]), **evidence_record(pairs, i),
        }
        data.update({key: pairs.extra[key][i] for key in MESSAGE_FIELDS
                     if key in pairs.extra and pairs.extra[key][i] is not None})
        ai = int(pairs.ai_label[i])
        task: dict[str, Any] = {"data": data}
        if ai:
            data["ai_label"] = format_label(ai)
            task["predictions"] = [{"result": control.result(ai), "score": 0.5, "model_version": model_version}]
        tasks.append(task)
    return tasks


def check_dialogues(pairs: PreferencePairs) -> None:
    """A config that shows ``$prompt_messages`` (``chat``) needs every pair's prompt as messages with text contents.

    Raises
    ------
    ValueError
        Naming the first pair without them.
    """
    column = pairs.extra.get("prompt_messages")
    for i in range(len(pairs)):
        messages = None if column is None else column[i]
        if not messages or not all(isinstance(m.get("content"), str) for m in messages):
            raise ValueError(
                f"the label config shows each prompt as a dialogue ($prompt_messages), but pair {pairs.ids[i]!r} "
                + ("has no prompt messages" if not messages else "has a message whose content is not text")
                + "; import conversational pairs (TRL's format, or prompt_messages in the JSONL) or use --label-config pairwise")


@dataclass
class TaskTable:
    """The usable tasks of a project as columns, in task id order.

    Attributes
    ----------
    pairs : PreferencePairs
        ids are the task ids as strings; ``ai_label`` from ``data.ai_label``; ``human_label`` from the
        annotations (:func:`human_label_of`); ``extra`` holds the judge's evidence found in the task data
        (:data:`rlthf_selector.evidence.EVIDENCE_FIELDS`), which the queue and the evidence flips read.
    task_ids : ndarray of int64, shape (n,)
    pair_ids : ndarray of object, shape (n,)
        ``data.pair_id`` where given, else the task id.
    data : list of dict, length n
        Each task's data dict as Label Studio holds it (to merge into on write-back).
    annotations, predictions : list of list of dict, length n each
        Each task's annotations and predictions as listed (empty where the listing had none).
    warnings : list of str
        Tasks left out (data not matching the config), annotations that hold no preference, unusable evidence.
    n_skipped_tasks : int
        Tasks left out because their data does not match the config.
    """

    pairs: PreferencePairs
    task_ids: np.ndarray
    pair_ids: np.ndarray
    data: list
    annotations: list = field(default_factory=list)
    predictions: list = field(default_factory=list)
    warnings: list = field(default_factory=list)
    n_skipped_tasks: int = 0


def build_task_table(tasks: Sequence[Mapping[str, Any]], control: PreferenceControl) -> TaskTable:
    """Columns from Label Studio tasks (``id``, ``data``, ``annotations``, optional ``predictions``).

    Tasks whose data does not fit the config are left out, counted in ``n_skipped_tasks`` and named in
    ``warnings``.
    """
    warnings: list[str] = []
    rows = []
    skipped = 0
    for task in sorted(tasks, key=lambda t: int(t["id"])):
        data = task.get("data")
        problems = task_data_problems(data)
        if problems:
            skipped += 1
            warn(warnings, f"task {task.get('id')} left out: {'; '.join(problems)}")
            continue
        rows.append((int(task["id"]), data, parse_label(data.get("ai_label")), human_label_of(task, control, warnings),
                     list(task.get("annotations") or []), list(task.get("predictions") or [])))
    task_ids = np.asarray([r[0] for r in rows], dtype=np.int64)
    extra, problems = evidence_from_records([r[1] for r in rows])
    for i, problem in problems:
        warn(warnings, f"task {task_ids[i]}: {problem}")
    pairs = PreferencePairs(
        ids=[str(t) for t in task_ids],
        prompt=[r[1]["prompt"] for r in rows],
        response_a=[r[1]["response_a"] for r in rows],
        response_b=[r[1]["response_b"] for r in rows],
        ai_label=[r[2] for r in rows],
        human_label=[r[3] for r in rows],
        extra=extra,
    )
    pair_ids = np.empty(len(rows), dtype=object)
    pair_ids[:] = [str(r[1].get("pair_id", r[0])) for r in rows]
    return TaskTable(pairs, task_ids, pair_ids, [dict(r[1]) for r in rows], [r[4] for r in rows],
                     [r[5] for r in rows], warnings, skipped)


def prediction_labels(table: TaskTable, control: PreferenceControl, *, model_version: str) -> np.ndarray:
    """Each task's label in its latest prediction under ``model_version`` (the backend's current one), else 0.

    Returns
    -------
    ndarray of int8, shape (n,)
        +1, -1, or 0 where there is no such prediction or its result holds no preference (a blind prediction of a
        queued task).
    """
    out = np.zeros(len(table.pairs), dtype=np.int8)
    for i, predictions in enumerate(table.predictions):
        current = [p for p in predictions if isinstance(p, Mapping) and p.get("model_version") == model_version]
        for prediction in current[-1:]:
            try:
                out[i] = control.label_of(prediction.get("result"))
            except ResultError:
                out[i] = 0
    return out


def conversation_columns(data: Sequence[Mapping[str, Any]], ids: Sequence[str],
                         warnings: list[str]) -> dict[str, np.ndarray]:
    """The conversations (:data:`~rlthf_selector.pairs.MESSAGE_FIELDS`) the task data carries, for ``pairs.extra``.

    A malformed one is left out (None) and counted in one line of ``warnings`` that names the first.

    Returns
    -------
    dict of str to ndarray of object, shape (n,)
        A column for each field some task carries; None where a task has none.
    """
    from rlthf_selector.io import messages_problem

    extra, malformed = {}, []
    for key in MESSAGE_FIELDS:
        if not any(key in d for d in data):
            continue
        column = np.full(len(data), None, dtype=object)
        for j, d in enumerate(data):
            if d.get(key) is None:
                continue
            problem = messages_problem(d[key], f"data.{key}")
            if problem:
                malformed.append(f"pair {ids[j]}: {problem}")
            else:
                column[j] = d[key]
        extra[key] = column
    if malformed:  # one line, however many tasks: the first says what is wrong
        warnings.append(f"{len(malformed)} malformed conversation fields left out (first: {malformed[0]})")
    return extra


@dataclass
class TaskLabels:
    """The outcome of :func:`task_labels`: the labelled pairs of a project, as ``rlthf export`` writes them.

    Attributes
    ----------
    pairs : PreferencePairs
        ids are the pair ids; ``extra`` holds the judge's evidence and the conversations the task data carries.
    labels : ndarray of int8, shape (n,)
    label_source : ndarray of int8, shape (n,)
        :class:`~rlthf_selector.pairs.LabelSource` values.
    human_labels : list of dict
        One record per human label: ``id`` (pair), ``task_id``, ``label`` ("a"/"b"), ``blind`` (no annotation behind
        it began from a pre-annotation holding an answer: :func:`saw_prelabel`), ``annotation_ids``,
        ``order_shown``.
    skipped : Counter
        Tasks left out, by reason.
    warnings : list of str
    """

    pairs: PreferencePairs
    labels: np.ndarray
    label_source: np.ndarray
    human_labels: list
    skipped: Counter
    warnings: list


def task_labels(tasks: Sequence[Mapping[str, Any]], *, label_config: str, model_version: str) -> TaskLabels:
    """Pairs and their final labels from a project's tasks.

    The label precedence is :func:`~rlthf_selector.selection.resolve_labels`'s: a task's human answer
    (:func:`human_label_of`: skipped annotations excluded, ground truth > majority > latest), else the backend's
    latest prediction under ``model_version`` read as a flip where it contradicts the AI label, as the AI label where
    it agrees and as the reward model's label where there is no AI label, else the AI prelabel. Tasks with none of
    these, and tasks whose data does not fit the config, are left out and counted in ``skipped``.
    """
    control = parse_label_config(label_config)
    table = build_task_table(tasks, control)
    ai, human = table.pairs.ai_label, table.pairs.human_label
    machine = prediction_labels(table, control, model_version=model_version)
    labels, source = resolve_labels(ai, human, flip_mask=(machine != 0) & (ai != 0) & (machine != ai),
                                    rm_label=np.where(ai == 0, machine, 0))
    keep = np.flatnonzero(labels != 0)
    skipped: Counter = Counter()
    if table.n_skipped_tasks:
        skipped["data does not match the config"] = table.n_skipped_tasks
    if len(keep) < len(labels):
        skipped["no label (no annotation, prediction or AI label)"] = len(labels) - len(keep)
    warnings = list(table.warnings)
    pair_ids = [str(p) for p in table.pair_ids[keep]]
    data = [table.data[i] for i in keep]
    pairs = table.pairs.subset(keep)
    pairs = pairs.replace(ids=pair_ids, extra={**pairs.extra, **conversation_columns(data, pair_ids, warnings)})
    shown = order_shown(control)
    human_records = []
    for i in np.flatnonzero(human != 0):
        behind = [a for a in table.annotations[i] if isinstance(a, Mapping) and annotation_is_usable(a)]
        human_records.append({
            "id": str(table.pair_ids[i]), "task_id": int(table.task_ids[i]), "label": format_label(int(human[i])),
            "blind": not any(saw_prelabel(a, table.predictions[i]) for a in behind),
            "annotation_ids": [a.get("id") for a in behind], "order_shown": shown,
        })
    return TaskLabels(pairs=pairs, labels=labels[keep], label_source=source[keep], human_labels=human_records,
                      skipped=skipped, warnings=warnings)
