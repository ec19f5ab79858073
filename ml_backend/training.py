"""One retrain of one project: read Label Studio, run a selection step, build the new state, write back.

Pure functions here (tasks in, arrays out) are what the tests pin down; the worker
(:mod:`ml_backend.worker`) decides when they run and holds the locks.
"""

from __future__ import annotations

import hashlib
import logging
import math
import time
from dataclasses import dataclass
from typing import Any, Mapping, Sequence

import numpy as np

from label_config import PreferenceControl, parse_label_config
from rlthf_selector.estimates import (
    CONTROL_DRAW,
    NOT_DRAWN,
    QUEUE_DRAW,
)
from rlthf_selector.label_studio_tasks import TaskTable, build_task_table
from rlthf_selector.pairs import LabelSource
from rlthf_selector.selection import assemble_batch, targeted_needed

from ml_backend.state import DRAW_RECORDS, ProjectState, blank_draw_records

log = logging.getLogger(__name__)

VIEW_TITLE = "RLTHF: needs human"
VIEW_ALL = "RLTHF: all tasks"
VIEW_FLIPPED = "RLTHF: flipped by RLTHF"
VIEW_TRUSTED = "RLTHF: trusted (sample)"
REGION_FIELD = "rlthf_region"
PRIORITY_FIELD = "rlthf_priority"
REASON_FIELD = "rlthf_reason"
AI_CHOICE_FIELD = "rlthf_ai_choice"
LABEL_FIELD = "rlthf_label"
AUDIT_FIELD = "rlthf_audit"
#: Every task data field the backend writes; a write-back replaces them all and keeps every other field.
RLTHF_FIELDS = (REGION_FIELD, PRIORITY_FIELD, REASON_FIELD, AI_CHOICE_FIELD, LABEL_FIELD, AUDIT_FIELD)
AUDIT_FLIPPED = "flipped"
AUDIT_TRUSTED = "trusted sample"
#: What a control draw shows wherever a region is shown: it was drawn at random, whatever its region.
RANDOM_CHECK = "random check"
TRUSTED_SAMPLE_SIZE = 25


def fingerprint(table: TaskTable, control: PreferenceControl, *, task_ids: np.ndarray | None = None) -> str:
    """Changes when the tasks, their AI labels, their human labels or the judge's evidence change.

    Independent of the order of the rows. ``task_ids`` (shape (n,)) replaces the table's: a pool pair imported into
    Label Studio after the training that chose it is hashed under its new id, as the next training reads it.
    """
    ids = table.task_ids if task_ids is None else np.asarray(task_ids, dtype=np.int64)
    order = np.argsort(ids, kind="stable")
    h = hashlib.sha256()
    h.update(f"{control.kind}:{control.from_name}".encode())
    h.update(ids[order].tobytes())
    h.update(table.pairs.ai_label[order].tobytes())
    h.update(table.pairs.human_label[order].tobytes())
    for key in sorted(table.pairs.extra):
        h.update(key.encode())
        h.update(np.ascontiguousarray(np.asarray(table.pairs.extra[key])[order]).tobytes())
    return h.hexdigest()


def queue_scores(human_queue: np.ndarray, human_label: np.ndarray, gain: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Queue ranks and Label Studio prediction scores (lower = label first).

    Parameters
    ----------
    human_queue : ndarray of int64, shape (k,)
        Pair positions to ask, most valuable first (the served queue).
    human_label : ndarray, shape (n,)
    gain : ndarray of float, shape (n,)
        The chance a human answer changes each pair's label (:attr:`rlthf_selector.selection.Selection.gain`), in
        [0, 1].

    Returns
    -------
    queue_rank : ndarray of float64, shape (n,)
        0, 1, ... along the queue; ``inf`` elsewhere.
    score : ndarray of float64, shape (n,)
        In [0, 0.5) along the queue (by rank), in (0.5, 1) for other unlabelled pairs (higher gain first), 1.0 for
        human-labelled pairs. So "Uncertainty sampling" serves the queue first, in order, then the next most useful.
    """
    n = human_label.shape[0]
    k = human_queue.shape[0]
    rank = np.full(n, np.inf)
    rank[human_queue] = np.arange(k, dtype=np.float64)
    score = np.ones(n, dtype=np.float64)
    if k:
        score[human_queue] = 0.5 * np.arange(k) / k
    rest = ~np.isfinite(rank) & (human_label == 0)
    if rest.any():
        score[rest] = 0.5 + 1e-6 + 0.49 * (1.0 - np.clip(np.asarray(gain, dtype=np.float64)[rest], 0.0, 1.0))
    return rank, score


# ---------------------------------------------------------------------- draw records
def carried_positions(previous_ids: np.ndarray, task_ids: np.ndarray) -> np.ndarray:
    """Each task's position in ``previous_ids``, or -1 for a task not there. Shape (n,) int64."""
    previous_ids = np.asarray(previous_ids, dtype=np.int64)
    task_ids = np.asarray(task_ids, dtype=np.int64)
    if previous_ids.shape[0] == 0:
        return np.full(task_ids.shape[0], -1, dtype=np.int64)
    order = np.argsort(previous_ids, kind="stable")
    at = np.minimum(np.searchsorted(previous_ids, task_ids, sorter=order), previous_ids.shape[0] - 1)
    pos = order[at]
    return np.where(previous_ids[pos] == task_ids, pos, -1).astype(np.int64)


def carry_draw_records(previous: ProjectState, task_ids: np.ndarray, human_label: np.ndarray) -> dict[str, np.ndarray]:
    """The draw records for the current tasks: carried over by task id, with the human labels that arrived since the
    previous training stamped with the iteration that was serving (``label_round``) and how it served the pair
    (``answered_in``: 0 when the pair was not in the served queue, i.e. labelled outside it).

    Returns
    -------
    dict of str to ndarray, shape (n,) each
        The arrays named in :data:`DRAW_RECORDS` (see :class:`~ml_backend.state.ProjectState`).
    """
    n = task_ids.shape[0]
    records = blank_draw_records(n)
    served_as = np.full(n, NOT_DRAWN, dtype=np.int8)
    pos = carried_positions(previous.task_ids, task_ids)
    known = pos >= 0
    if known.any():
        for name in DRAW_RECORDS:
            records[name][known] = getattr(previous, name)[pos[known]]
        was_served = previous.queue_rank[pos[known]] >= 0
        served_as[known] = np.where(was_served, previous.drawn_by[pos[known]], NOT_DRAWN)
    labelled = np.asarray(human_label) != 0
    arrived = labelled & (records["label_round"] < 0)
    records["label_round"][arrived] = previous.iteration
    records["answered_in"][arrived] = served_as[arrived]
    # A label deleted in Label Studio: the pair is unlabeled again; its draw record stays.
    records["label_round"][~labelled] = -1
    records["answered_in"][~labelled] = NOT_DRAWN
    return records


def counted_draws(drawn_by: np.ndarray, answered_in: np.ndarray) -> np.ndarray:
    """The group each pair's answer counts in: its draw's when the answer came while that draw was being served,
    else ``NOT_DRAWN`` (see :class:`~ml_backend.state.ProjectState`). Shape (n,)."""
    return np.where(answered_in == drawn_by, drawn_by, NOT_DRAWN)


def state_estimates(state: ProjectState, *, confidence: float) -> tuple[dict[str, dict[str, Any]], list[str]]:
    """The live estimates of a state (:func:`rlthf_selector.estimates.live_estimates`) and their plain-words warnings.

    The estimates are about the AI's labels, so they cover the tasks with an AI label. An answer counts in its draw's
    group only when it came while that draw was being served (``answered_in``); every human label counts exactly in
    the totals. Flipped pairs are passed as unverified flips.

    Returns
    -------
    estimates : dict of str to dict
        Each :class:`~rlthf_selector.intervals.Estimate` as ``to_dict()``; empty for a state without tasks with an AI
        label, and when the records are inconsistent (the warning then says why; training goes on).
    warnings : list of str
    """
    from rlthf_selector.estimates import estimate_warnings, live_estimates

    scope = np.flatnonzero(state.ai_label != 0)
    if scope.shape[0] == 0:
        return {}, []
    human = state.human_label[scope]
    counted = counted_draws(state.drawn_by[scope], state.answered_in[scope])
    flipped = (state.label_source[scope] == LabelSource.FLIPPED) & (human == 0)
    try:
        estimates = live_estimates(
            ai_label=state.ai_label[scope], human_label=human, drawn_by=counted, draw_round=state.draw_round[scope],
            label_round=state.label_round[scope], frame=state.draw_frame[scope],
            mistake_score=state.draw_score[scope], n_flipped=int(flipped.sum()), confidence=confidence,
        )
    except ValueError as exc:
        # Diagnostics must not stop a project from training and serving: say what is wrong instead.
        log.warning("project %d: live estimates not computed: %s", state.project_id, exc)
        return {}, [f"Live estimates could not be computed: {exc}"]
    return {name: est.to_dict() for name, est in estimates.items()}, estimate_warnings(estimates)


@dataclass
class TrainOutcome:
    status: str  # "trained" | "unchanged" | "waiting"
    state: ProjectState
    table: TaskTable | None = None
    message: str = ""


def make_reward_model(featurizer: str):
    """A fresh Bradley-Terry reward model on the configured features (hashing by default)."""
    from rlthf_selector.config import BradleyTerryConfig, FeaturizerConfig
    from rlthf_selector.features import make_featurizer
    from rlthf_selector.reward_model import FeatureRewardModel

    return FeatureRewardModel(make_featurizer(FeaturizerConfig(kind=featurizer, progress=False)), BradleyTerryConfig())


def train_state(
    previous: ProjectState,
    tasks: Sequence[Mapping[str, Any]],
    *,
    label_config: str,
    reward_model: Any,
    budget: float,
    model_version_prefix: str,
    force: bool = False,
    loop_config: Any = None,
    curve_config: Any = None,
    selection_config: Any = None,
    control_share: float = 0.1,
    confidence: float = 0.9,
) -> TrainOutcome:
    """One selection step on the project's current tasks and labels, with control draws in the served queue.

    Parameters
    ----------
    previous : ProjectState
        The state that serves now (its regions seed the step's training set).
    tasks : list of dict
        Label Studio tasks with ``id``, ``data`` and ``annotations``.
    budget : float
        Cap on the human queue: a fraction of the tasks (< 1) or a count.
    force : bool
        Train even when the tasks and labels equal those of the last training (START_TRAINING).
    control_share : float
        Share of the served queue's slots given to control draws, uniform over the unlabeled pairs with an AI label
        (:func:`rlthf_selector.selection.assemble_batch`); 0 = none.
    confidence : float
        Of the live estimates' intervals, stored in ``summary["estimates"]``.

    Returns
    -------
    TrainOutcome
        ``status`` "unchanged" (nothing new, previous state kept), "waiting" (too few labels to train a
        reward model; the message says why) or "trained" (a new state, iteration + 1).
    """
    from rlthf_selector.config import SelectionConfig
    from rlthf_selector.loop import select_step
    from rlthf_selector.selection import Region

    if not 0.0 <= control_share <= 1.0:
        raise ValueError(f"control share must be in [0, 1] (RLTHF_CONTROL_SHARE), got {control_share}")
    control = parse_label_config(label_config)
    table = build_task_table(tasks, control)
    fp = fingerprint(table, control)
    if fp == previous.fingerprint and not force and previous.trained:
        return TrainOutcome("unchanged", previous, table)
    n = len(table.pairs)
    if n == 0:
        return TrainOutcome("waiting", previous, table, "the project has no tasks that fit the config")
    prev_region = None
    if previous.trained:
        # Tasks new since the last training count as trusted.
        pos = carried_positions(previous.task_ids, table.task_ids)
        prev_region = np.where(pos >= 0, previous.region[pos], int(Region.TRUSTED)).astype(np.int8)
    cap = max(int(round(budget * n)) if budget < 1 else int(budget), 1)
    human = table.pairs.human_label
    ai = table.pairs.ai_label
    records = carry_draw_records(previous, table.task_ids, human)
    waiting = np.flatnonzero((records["drawn_by"] == CONTROL_DRAW) & (human == 0))
    # Oldest draw first, then task id: an order that knows nothing of the pairs' content.
    waiting = waiting[np.lexsort((table.task_ids[waiting], records["draw_round"][waiting]))]
    started = time.perf_counter()
    try:
        step = select_step(
            table.pairs, reward_model, iteration=previous.iteration,
            budget=targeted_needed(cap, share=control_share, waiting=waiting.shape[0]),
            loop_config=loop_config, curve_config=curve_config,
            selection_config=selection_config or SelectionConfig(),
            previous_region=prev_region,
        )
    except ValueError as exc:
        # Too few or one-sided labels: keep serving the prelabels and say why.
        return TrainOutcome("waiting", previous, table, str(exc))
    seconds = time.perf_counter() - started
    iteration = previous.iteration + 1
    drawable = (human == 0) & (ai != 0)
    answered = records["answered_in"] != NOT_DRAWN
    counted = counted_draws(records["drawn_by"], records["answered_in"])
    served = assemble_batch(
        step.human_queue, human_label=human, ai_label=ai, length=cap, waiting_control=waiting, share=control_share,
        answered=int(answered.sum()), answered_control=int((records["answered_in"] == CONTROL_DRAW).sum()),
        rng=np.random.default_rng([previous.project_id, iteration]),
    )
    # The mistake model's P(AI label wrong) when drawn: the score the live estimates' AUC ranks by.
    mistake_score = (np.nan_to_num(step.mistakes.prob, nan=0.5) if step.mistakes is not None
                     else -step.reward_gap * ai)
    served_targeted = served.order[~served.is_control]
    fresh_targeted = served_targeted[records["drawn_by"][served_targeted] == NOT_DRAWN]
    for drawn, code in ((fresh_targeted, QUEUE_DRAW), (served.fresh_control, CONTROL_DRAW)):
        records["drawn_by"][drawn] = code
        records["draw_round"][drawn] = iteration
        records["draw_frame"][drawn] = int(drawable.sum())
        records["draw_score"][drawn] = mistake_score[drawn]
    rank, score = queue_scores(served.order, human, step.gain)
    queue_rank = np.where(np.isfinite(rank), rank, -1).astype(np.int64)
    version = f"{model_version_prefix}{iteration}"
    rm_state = None
    if hasattr(reward_model, "state_dict"):
        try:
            rm_state = reward_model.state_dict()
        except Exception as exc:  # a model that cannot be saved still serves from memory
            log.warning("reward model state not saved: %s", exc)
    summary = step.summary()
    summary["band_unlabelled"] = int(((step.region == Region.HUMAN) & (human == 0)).sum())
    summary["queue_length"] = int(served.order.shape[0])
    summary["evidence_fields"] = sorted(table.pairs.extra)  # the judge's evidence this training read
    if step.mistakes is not None:
        summary["mistake_model"] = step.mistakes.model.to_dict(confidence=confidence)
    # Why each served pair is asked, in words, by task id: a control draw is a random check whatever it holds.
    said = (step.mistakes.model.reasons(step.mistakes.design.matrix[served.order]) if step.mistakes is not None
            else [""] * served.order.shape[0])
    summary["queue_reasons"] = {
        str(int(table.task_ids[i])): (RANDOM_CHECK if control else (reason or "the queue's next most useful pair"))
        for i, control, reason in zip(served.order, served.is_control, said)
    }
    summary["draws"] = {
        "control_share": control_share,
        "queue_served": int((~served.is_control).sum()), "control_served": int(served.is_control.sum()),
        "control_fresh": int(served.fresh_control.shape[0]),
        "queue_answered": int(((counted == QUEUE_DRAW) & (human != 0)).sum()),
        "control_answered": int(((counted == CONTROL_DRAW) & (human != 0)).sum()),
        "human_labels_outside_draws": int(((counted == NOT_DRAWN) & (human != 0)).sum()),
    }
    state = ProjectState(
        project_id=previous.project_id, label_config=label_config, iteration=iteration, model_version=version,
        trained_at=time.time(), training_seconds=seconds, fingerprint=fp, summary=summary,
        warnings=list(table.warnings) + list(step.curve.warnings),
        versions=(list(previous.versions) + [version])[-50:],
        task_ids=table.task_ids, pair_ids=table.pair_ids, ai_label=table.pairs.ai_label, human_label=human,
        labels=step.labels, label_source=step.label_source, region=step.region, reward_gap=step.reward_gap,
        oriented_gap=step.oriented_gap, priority=rank, score=score, queue_rank=queue_rank,
        reward_model_state=rm_state, **records,
    )
    # Computed here, in the background training, so /metrics only reads them.
    state.summary["estimates"], state.summary["estimate_warnings"] = state_estimates(state, confidence=confidence)
    state.summary["estimate_confidence"] = confidence
    return TrainOutcome("trained", state, table)


# ---------------------------------------------------------------------- a large project's next batch
def import_batch(client: Any, outcome: TrainOutcome, *, label_config: str, chunk: int = 1000) -> tuple[ProjectState, list[dict[str, Any]]]:
    """Import into Label Studio the pairs of a trained state's served batch that it does not hold (stand-in ids of the
    pool, :mod:`ml_backend.pool`); the state under their new task ids, and the imported tasks.

    Only data is imported: the write-back gives the new tasks their prediction. A failure part-way leaves the state
    unsaved; the next training finds the tasks already imported by their ``pair_id`` and imports only the rest.

    Returns
    -------
    state : ProjectState
        ``outcome.state`` with the imported pairs' task ids, fingerprint and queue reasons under their new ids.
    imported : list of dict
        ``{"id", "data", "annotations": []}`` of each imported task.
    """
    from dataclasses import replace

    from ml_backend.pool import batch_to_import

    state, table = outcome.state, outcome.table
    at = batch_to_import(state.task_ids, state.queue_rank)
    if at.shape[0] == 0:
        return state, []
    data = [{k: v for k, v in table.data[i].items() if k not in RLTHF_FIELDS} for i in at]
    new_ids: list[int] = []
    for start in range(0, len(data), chunk):
        new_ids.extend(client.import_tasks(state.project_id, [{"data": d} for d in data[start : start + chunk]]))
    task_ids = state.task_ids.copy()
    task_ids[at] = new_ids
    renamed = {str(int(old)): str(new) for old, new in zip(state.task_ids[at], new_ids)}
    summary = dict(state.summary)
    summary["queue_reasons"] = {renamed.get(k, k): v for k, v in summary.get("queue_reasons", {}).items()}
    log.info("project %d: %d pool pairs of the batch of %s imported into Label Studio", state.project_id, len(new_ids),
             state.model_version)
    new_state = replace(state, task_ids=task_ids, summary=summary,
                        fingerprint=fingerprint(table, parse_label_config(label_config), task_ids=task_ids))
    return new_state, [{"id": t, "data": d, "annotations": []} for t, d in zip(new_ids, data)]


# ---------------------------------------------------------------------- write-back
def region_name(region: int, human_label: int) -> str:
    from rlthf_selector.selection import Region

    return Region(int(region)).label


def shown_region(state: ProjectState, i: int) -> str:
    """The region a person is shown for the task at position ``i``: "random check" for a control draw still being
    served (it was drawn at random, whatever its region says), else the region's name."""
    from rlthf_selector.estimates import CONTROL_DRAW

    served = state.queue_rank.shape[0] > i and state.queue_rank[i] >= 0
    if served and state.drawn_by.shape[0] > i and state.drawn_by[i] == CONTROL_DRAW:
        return RANDOM_CHECK
    return region_name(state.region[i], state.human_label[i])


def _choice_letter(label: int) -> str:
    return {1: "A", -1: "B"}.get(int(label), "none")


def trusted_sample(state: ProjectState, size: int = TRUSTED_SAMPLE_SIZE) -> np.ndarray:
    """Positions of a sample of the trusted pairs (AI label kept, no human label, not queued) for a person to audit.

    The sample is picked by a hash of the task id, not at random per retrain: a pair stays in it while it stays
    trusted, so a retrain rewrites (one PATCH each) only the tasks that enter or leave it.

    Returns
    -------
    ndarray of int64, shape (min(size, trusted),)
    """
    from rlthf_selector.selection import Region

    # Negative ids are pool pairs Label Studio does not hold (ml_backend.pool): nothing to audit there.
    trusted = np.flatnonzero((state.region == int(Region.TRUSTED)) & (state.label_source == int(LabelSource.AI))
                             & (state.human_label == 0) & ~np.isfinite(state.priority) & (state.task_ids > 0))
    with np.errstate(over="ignore"):
        key = state.task_ids[trusted].astype(np.uint64) * np.uint64(0x9E3779B97F4A7C15)
    return trusted[np.argsort(key, kind="stable")[:size]]


def all_task_fields(state: ProjectState, *, all_regions: bool = False) -> list[dict[str, Any]]:
    """The ``rlthf_*`` data fields of every task, in ``state.task_ids`` order.

    - Queued tasks: ``rlthf_priority`` (their rank, a number), ``rlthf_region`` ("random check" for a control draw),
      ``rlthf_reason`` (why the pair is asked, in words: ``summary["queue_reasons"]``) and ``rlthf_ai_choice``.
    - Pairs RLTHF flipped (no human label): ``rlthf_audit`` "flipped", their region, the AI's choice and the label
      now exported (``rlthf_label``), for the "flipped by RLTHF" view.
    - A fixed sample of the trusted pairs (:func:`trusted_sample`): ``rlthf_audit`` "trusted sample", region, AI
      choice, for the "trusted (sample)" view.
    - Other tasks: nothing (no priority key: Label Studio's number filters on a data field match a JSON null), or
      with ``all_regions`` their region (each changed task costs one PATCH of ~0.1-0.2 s, so it is off by default).
    """
    reasons = (state.summary or {}).get("queue_reasons", {})
    sampled = np.zeros(state.task_ids.shape[0], dtype=bool)
    sampled[trusted_sample(state)] = True
    out: list[dict[str, Any]] = []
    for i, tid in enumerate(state.task_ids):
        rank = state.priority[i]
        queued = math.isfinite(rank)
        flipped = state.label_source[i] == int(LabelSource.FLIPPED) and state.human_label[i] == 0
        fields: dict[str, Any] = {}
        if queued or flipped or sampled[i] or all_regions:
            fields[REGION_FIELD] = shown_region(state, i)
        if queued:
            fields[PRIORITY_FIELD] = int(rank)
            fields[REASON_FIELD] = reasons.get(str(int(tid)), "")
        if flipped or sampled[i]:
            fields[AUDIT_FIELD] = AUDIT_FLIPPED if flipped else AUDIT_TRUSTED
        if flipped:
            fields[LABEL_FIELD] = _choice_letter(state.labels[i])
        if queued or flipped or sampled[i]:
            fields[AI_CHOICE_FIELD] = _choice_letter(state.ai_label[i])
        out.append(fields)
    return out


def merged_task_data(current: Mapping[str, Any], fields: Mapping[str, Any]) -> dict[str, Any] | None:
    """``current`` with the ``rlthf_*`` fields replaced by ``fields``; None when nothing changes."""
    merged = {k: v for k, v in current.items() if k not in RLTHF_FIELDS}
    merged.update(fields)
    return None if merged == dict(current) else merged


def prediction_for(state: ProjectState, i: int, control: PreferenceControl, *, blind: bool = False) -> dict[str, Any]:
    """One prediction in Label Studio's shape for the task at position ``i``; with ``blind``, no result (only the score
    that orders the queue), so Label Studio has no answer to pre-select."""
    return {
        "result": [] if blind else control.result(int(state.labels[i])),
        "score": float(state.score[i]),
        "model_version": state.model_version,
    }


# Label Studio 1.23.2's own Data Manager columns (label_studio/data_manager/functions.py:get_all_columns).
_BUILTIN_COLUMNS = (
    "id", "inner_id", "completed_at", "total_annotations", "cancelled_annotations", "total_predictions", "annotators",
    "annotations_results", "annotations_ids", "predictions_score", "predictions_model_versions", "predictions_results",
    "file_upload", "storage_filename", "created_at", "updated_at", "updated_by", "avg_lead_time", "draft_exists",
)


def _column(name: str) -> str:
    """A Data Manager column id: ``tasks:<built-in>`` or ``tasks:data.<field>``."""
    return f"tasks:{name}" if name in _BUILTIN_COLUMNS else f"tasks:data.{name}"


def _columns(shown: Sequence[str], data_keys: Sequence[str], *, hide_in_labeling: Sequence[str] = ()) -> dict[str, Any]:
    """``hiddenColumns`` that show only ``shown``: every other built-in column and data field is hidden.

    ``hide_in_labeling`` are also hidden beside an open task (the AI's choice: the labeling screen stays blind).
    """
    every = [_column(c) for c in _BUILTIN_COLUMNS] + [f"tasks:data.{k}" for k in sorted(set(data_keys))]
    keep = {_column(c) for c in shown}
    explore = [c for c in every if c not in keep]
    labeling = explore + [_column(c) for c in hide_in_labeling if _column(c) not in explore]
    return {"explore": explore, "labeling": labeling}


def view_definitions(data_keys: Sequence[str] = ()) -> dict[str, dict[str, Any]]:
    """The Data Manager tabs the backend keeps, by title, each with only the columns that matter for it.

    Parameters
    ----------
    data_keys : list of str
        Every data field the project's tasks hold (their columns are hidden unless a tab shows them).

    Returns
    -------
    dict of str to dict
        "RLTHF: all tasks" (every task), "RLTHF: needs human" (the unlabelled queue by priority), "RLTHF: flipped by
        RLTHF" (pairs whose exported label is the flipped AI label) and "RLTHF: trusted (sample)" (a fixed sample of
        the pairs whose AI label is kept unchecked).
    """
    keys = set(data_keys) | set(RLTHF_FIELDS)
    texts = ("prompt", "response_a", "response_b")
    number = {_column(PRIORITY_FIELD): "Number"}
    audit = lambda value: {"conjunction": "and", "items": [  # noqa: E731
        {"filter": f"filter:tasks:data.{AUDIT_FIELD}", "operator": "equal", "type": "String", "value": value}]}
    return {
        VIEW_ALL: {
            "ordering": ["tasks:id"], "columnsDisplayType": number,
            "hiddenColumns": _columns(("id", "total_annotations", "annotators", *texts, "ai_label", PRIORITY_FIELD,
                                       REGION_FIELD, REASON_FIELD), keys, hide_in_labeling=("ai_label",)),
        },
        VIEW_TITLE: {
            "filters": {
                "conjunction": "and",
                "items": [
                    {"filter": f"filter:tasks:data.{PRIORITY_FIELD}", "operator": "greater_or_equal", "type": "Number",
                     "value": 0},
                    {"filter": "filter:tasks:total_annotations", "operator": "equal", "type": "Number", "value": 0},
                ],
            },
            "ordering": [f"tasks:data.{PRIORITY_FIELD}"], "columnsDisplayType": number,
            "hiddenColumns": _columns((PRIORITY_FIELD, *texts, AI_CHOICE_FIELD, REASON_FIELD, REGION_FIELD), keys,
                                      hide_in_labeling=(AI_CHOICE_FIELD,)),
        },
        VIEW_FLIPPED: {
            "filters": audit(AUDIT_FLIPPED), "ordering": ["tasks:id"],
            "hiddenColumns": _columns(("id", *texts, AI_CHOICE_FIELD, LABEL_FIELD, REGION_FIELD), keys),
        },
        VIEW_TRUSTED: {
            "filters": audit(AUDIT_TRUSTED), "ordering": ["tasks:id"],
            "hiddenColumns": _columns(("id", *texts, AI_CHOICE_FIELD, REGION_FIELD), keys),
        },
    }


def write_back(
    client: Any, state: ProjectState, data_by_task: Mapping[int, Mapping[str, Any]], *, all_regions: bool = False,
    threads: int = 4, show_prelabels: bool = False,
) -> dict[str, int]:
    """Push a trained state to Label Studio. Never touches annotations.

    1. the predictions of every task without a submitted annotation are replaced, in bulk, by one under the new model
       version: older versions' predictions would otherwise pile up, one more per task at every retrain. Annotated
       tasks keep the prediction they had (an annotation's ``parent_prediction`` would be cleared with it) and get no
       new one: their label is the human's;
    2. ``project.model_version`` and sampling "Uncertainty sampling";
    3. the ``rlthf_*`` fields (:func:`all_task_fields`: priority, region, reason, the AI's choice, audit marks)
       merged into each task's data where they changed (Label Studio replaces the whole data dict on PATCH, so the
       merged dict is sent; every other field is kept);
    4. the Data Manager tabs of :func:`view_definitions` ("RLTHF: all tasks", "RLTHF: needs human", "RLTHF: flipped
       by RLTHF", "RLTHF: trusted (sample)").

    Parameters
    ----------
    show_prelabels : bool
        Give the queued tasks' predictions their label. False (``BackendConfig.show_prelabels``): they carry only
        their score, so a human asked about a pair does not see the AI's answer pre-selected.

    Returns
    -------
    dict
        Counts: predictions, predictions_removed, tasks_patched.
    """
    from ml_backend.label_studio_client import SAMPLING_UNCERTAINTY

    started = time.perf_counter()
    control = parse_label_config(state.label_config)
    queued = np.isfinite(np.asarray(state.priority, dtype=np.float64))
    predictions = [
        {"task": int(t), **prediction_for(state, i, control, blind=bool(queued[i]) and not show_prelabels)}
        for i, t in enumerate(state.task_ids) if state.labels[i] != 0 and state.human_label[i] == 0 and t > 0
    ]  # t < 0: a pool pair Label Studio does not hold (ml_backend.pool)
    # Delete first: Label Studio's bulk delete takes every prediction of the tasks it selects, the new ones too.
    removed = client.delete_unlabeled_task_predictions(state.project_id)
    n_pred = client.import_predictions(state.project_id, predictions) if predictions else 0
    client.update_project(state.project_id, model_version=state.model_version, sampling=SAMPLING_UNCERTAINTY)
    patches = []
    data_keys: set[str] = set()
    for i, (t, fields) in enumerate(zip(state.task_ids, all_task_fields(state, all_regions=all_regions))):
        current = data_by_task.get(int(t))
        if current is not None:
            data_keys.update(current)
            merged = merged_task_data(current, fields)
            if merged is not None:
                patches.append((int(t), merged))
    if patches:
        from concurrent.futures import ThreadPoolExecutor

        with ThreadPoolExecutor(max_workers=max(1, threads)) as pool:
            list(pool.map(lambda p: client.update_task_data(*p), patches))
    patched = len(patches)
    for title, definition in view_definitions(sorted(data_keys)).items():
        client.ensure_view(state.project_id, title, definition)
    log.info("write-back of %s to project %d: %d predictions (%d older removed), %d tasks patched, in %.2f s",
             state.model_version, state.project_id, n_pred, removed, patched, time.perf_counter() - started)
    return {"predictions": int(n_pred), "predictions_removed": int(removed), "tasks_patched": patched}


def label_source_name(value: int) -> str:
    return LabelSource(int(value)).label
