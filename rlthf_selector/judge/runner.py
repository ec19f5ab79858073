"""Run judges over many pairs: both orders, bounded concurrency, the cache, progress and a summary.

:func:`judge_pairs` asks one judge about every pair in both orders and returns its :class:`JudgeLabels`;
:func:`prelabel` runs several judges, merges labels from files and returns output records with the AI label
and its evidence (see :mod:`rlthf_selector.judge.merge`) plus a summary.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections import Counter
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import asdict, dataclass
from typing import Any, Iterable, Mapping, Sequence

import numpy as np

from rlthf_selector.judge.base import JudgeFatalError, OrderVerdict, PairJudge
from rlthf_selector.judge.cache import JudgeCache, answer_key
from rlthf_selector.judge.merge import (
    CONSISTENT,
    INCONSISTENT,
    JUDGE_NAME_SEPARATOR,
    Evidence,
    JudgeLabels,
    combine_judges,
    combine_orders,
    reason_category,
)

logger = logging.getLogger(__name__)

ORDERS = ("ab", "ba")
# A verdict in display terms, mapped to the pair's own labels (+1 = response A) for each order.
_TO_PAIR = {"ab": {"A": 1, "B": -1}, "ba": {"A": -1, "B": 1}}


@dataclass
class JudgeRunStats:
    """What one judge's pass cost. Tokens come from the servers' ``usage`` fields."""

    judge: str
    pairs: int = 0
    answers_requested: int = 0
    answers_from_cache: int = 0
    requests: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    seconds: float = 0.0

    @property
    def pairs_per_second(self) -> float:
        return self.pairs / self.seconds if self.seconds > 0 else math.inf


def judge_pairs(
    judge: PairJudge,
    prompts: Sequence[str],
    responses_a: Sequence[str],
    responses_b: Sequence[str],
    *,
    ids: Sequence[str] | None = None,
    cache: JudgeCache | None = None,
    concurrency: int = 16,
    progress: bool = False,
) -> tuple[JudgeLabels, JudgeRunStats]:
    """Ask ``judge`` about every pair, once with A shown first and once with B shown first.

    Parameters
    ----------
    judge : PairJudge
    prompts, responses_a, responses_b : sequences of str, length n
    ids : sequence of str, length n, optional
        Stored in the cache beside each answer, for people reading it.
    cache : JudgeCache, optional
        Answers found there are reused; new ones are appended as they arrive.
    concurrency : int
        Most requests in flight at once (capped by ``judge.max_concurrency``).
    progress : bool
        Show a tqdm bar on stderr, counting pairs with both orders answered.

    Returns
    -------
    labels : JudgeLabels, length n
    stats : JudgeRunStats

    Raises
    ------
    JudgeFatalError
        When the judge cannot go on (bad key, unknown model). Answers received so far stay cached.
    """
    n = len(prompts)
    if len(responses_a) != n or len(responses_b) != n:
        raise ValueError("prompts, responses_a and responses_b must have the same length")
    ids = [str(i) for i in range(n)] if ids is None else [str(i) for i in ids]
    signature = judge.signature()
    stats = JudgeRunStats(judge=judge.name, pairs=n)
    answers: dict[tuple[int, str], OrderVerdict] = {}
    todo: list[tuple[int, str, str]] = []
    for i in range(n):
        for order in ORDERS:
            first, second = (responses_a[i], responses_b[i]) if order == "ab" else (responses_b[i], responses_a[i])
            key = answer_key(signature, prompts[i], first, second, order)
            cached = cache.get(key) if cache is not None else None
            if cached is not None:
                try:
                    answers[(i, order)] = OrderVerdict.from_cache(cached)
                    stats.answers_from_cache += 1
                    continue
                except (ValueError, TypeError) as exc:
                    logger.warning("cache entry for pair %s (%s) unreadable (%s); asking again", ids[i], order, exc)
            todo.append((i, order, key))

    stats_lock = threading.Lock()

    def ask(i: int, order: str, key: str) -> OrderVerdict:
        first, second = (responses_a[i], responses_b[i]) if order == "ab" else (responses_b[i], responses_a[i])
        verdict = judge.judge_order(prompts[i], first, second)
        # Cached here, in the worker, so an answer is recorded the moment it is paid for.
        if cache is not None and verdict.cacheable:
            cache.put(key, {"judge": judge.name, "pair_id": ids[i], "order": order, **verdict.to_cache()})
        with stats_lock:
            stats.answers_requested += 1
            stats.requests += verdict.attempts
            stats.prompt_tokens += int(verdict.usage.get("prompt_tokens", 0))
            stats.completion_tokens += int(verdict.usage.get("completion_tokens", 0))
        return verdict

    started = time.perf_counter()
    orders_done = np.zeros(n, dtype=np.int8)
    for i, _ in answers:
        orders_done[i] += 1
    bar = _progress_bar(n, judge.name, enabled=progress)
    bar.update(int((orders_done == 2).sum()))
    workers = max(1, min(int(concurrency), judge.max_concurrency, len(todo) or 1))
    executor = ThreadPoolExecutor(max_workers=workers, thread_name_prefix=f"judge-{judge.name}")
    pending: dict[Future, tuple[int, str]] = {}
    queue = iter(todo)
    exhausted = False
    try:
        while True:
            # A bounded window of submitted work keeps memory flat for millions of pairs.
            while not exhausted and len(pending) < 2 * workers:
                item = next(queue, None)
                if item is None:
                    exhausted = True
                    break
                pending[executor.submit(ask, *item)] = item[:2]
            if not pending:
                break
            done, _ = wait(pending, return_when=FIRST_COMPLETED)
            for future in done:
                i, order = pending.pop(future)
                answers[(i, order)] = future.result()  # re-raises JudgeFatalError
                orders_done[i] += 1
                if orders_done[i] == 2:
                    bar.update(1)
    except JudgeFatalError:
        # Requests already sent finish (and are cached) before the error goes up: nothing paid is lost.
        executor.shutdown(wait=True, cancel_futures=True)
        raise
    except BaseException:
        # Ctrl-C: return at once; requests in flight still land in the cache as their threads finish.
        executor.shutdown(wait=False, cancel_futures=True)
        raise
    finally:
        bar.close()
    executor.shutdown(wait=True)
    stats.seconds = time.perf_counter() - started
    return judge_labels_from_answers(judge.name, answers, n), stats


def judge_labels_from_answers(name: str, answers: Mapping[tuple[int, str], OrderVerdict], n: int) -> JudgeLabels:
    """One judge's labels from its answers ``{(pair position, "ab"/"ba"): OrderVerdict}`` over n pairs."""
    labels = {o: np.zeros(n, dtype=np.int8) for o in ORDERS}
    p_a = {o: np.full(n, np.nan) for o in ORDERS}
    for (i, order), v in answers.items():
        if v.verdict is not None:
            labels[order][i] = _TO_PAIR[order][v.verdict]
            if v.p_first is not None:
                p_a[order][i] = v.p_first if order == "ab" else 1.0 - v.p_first
    label, confidence, consistent = combine_orders(labels["ab"], labels["ba"], p_a["ab"], p_a["ba"])
    reasons = np.full(n, None, dtype=object)
    for i in range(n):
        ab, ba = answers[(i, "ab")], answers[(i, "ba")]
        failed = [v for v in (ab, ba) if not v.cacheable]
        if failed:
            # Half an answer is not a label: the rerun asks only the missing order (the other is cached).
            label[i], confidence[i] = 0, 0.0
            reasons[i] = f"{failed[0].reason}; rerun the same command to retry"
        elif label[i] == 0:
            reasons[i] = ab.reason or ba.reason or "no_verdict: neither order gave a verdict"
    return JudgeLabels(
        name,
        label,
        confidence,
        np.where(consistent, CONSISTENT, INCONSISTENT).astype(np.int8),
        reasons,
    )


def _progress_bar(total: int, desc: str, *, enabled: bool) -> Any:
    if not enabled:
        return _NoBar()
    from tqdm.auto import tqdm

    return tqdm(total=total, desc=desc, unit="pair", dynamic_ncols=True)


class _NoBar:
    def update(self, k: int = 1) -> None:
        pass

    def close(self) -> None:
        pass


# ------------------------------------------------------------------------------------------ prelabel


def prelabel(
    records: Sequence[Mapping[str, Any]],
    *,
    judges: Sequence[PairJudge] = (),
    label_sets: Sequence[JudgeLabels] = (),
    cache: JudgeCache | None = None,
    concurrency: int = 16,
    progress: bool = False,
) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """AI labels for canonical pair records from live judges and labels read from files.

    Parameters
    ----------
    records : sequence of dict, length n
        Canonical pairs: ``id``, ``prompt``, ``response_a``, ``response_b`` and any other fields.
    judges : sequence of PairJudge
        Run one after the other, each over every pair in both orders.
    label_sets : sequence of JudgeLabels, each of length n
        Labels merged from files (:func:`rlthf_selector.judge.merge.read_label_file`).
    cache, concurrency, progress
        As in :func:`judge_pairs`.

    Returns
    -------
    out_records : list of dict, length n
        Each input record with ``ai_label`` and the evidence fields set (other fields kept as they were).
    summary : dict
        Counts, reasons, tokens and speed; see :func:`format_summary`.
    """
    if not judges and not label_sets:
        raise ValueError("nothing to label with: give at least one judge or one label file")
    ids = [str(r["id"]) for r in records]
    prompts = [r["prompt"] for r in records]
    resp_a = [r["response_a"] for r in records]
    resp_b = [r["response_b"] for r in records]
    started = time.perf_counter()
    all_labels: list[JudgeLabels] = []
    run_stats: list[JudgeRunStats] = []
    for judge in judges:
        labels, stats = judge_pairs(
            judge, prompts, resp_a, resp_b, ids=ids, cache=cache, concurrency=concurrency, progress=progress
        )
        all_labels.append(labels)
        run_stats.append(stats)
    all_labels.extend(label_sets)
    return merge_judge_labels(records, all_labels, run_stats, seconds=time.perf_counter() - started)


def merge_judge_labels(
    records: Sequence[Mapping[str, Any]],
    judge_labels: list[JudgeLabels],
    run_stats: Sequence[JudgeRunStats],
    *,
    seconds: float,
) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """Output records and summary from every judge's labels over ``records`` (the tail of :func:`prelabel`,
    shared with the Ray path, :mod:`rlthf_selector.ray_jobs`, so both write the same evidence).

    Parameters
    ----------
    records : sequence of dict, length n
    judge_labels : list of JudgeLabels, each of length n
        Live judges first, then label files; renamed in place where two share a name.
    run_stats : sequence of JudgeRunStats
    seconds : float
        Wall time of the run, for the summary.
    """
    ids = [str(r["id"]) for r in records]
    all_labels = judge_labels
    _dedupe_names(all_labels)
    evidence = combine_judges(all_labels)

    replaced = sum(1 for r in records if r.get("ai_label") not in (None, ""))
    if replaced:
        logger.warning(
            "%d input pairs already had an ai_label; it is replaced (pass the input file to --ai-labels-from "
            "to keep it as one more judge)",
            replaced,
        )
    out = []
    for i, record in enumerate(records):
        row = dict(record)
        row.update(evidence.record(i))
        out.append(row)
    summary = summarize(evidence, all_labels, run_stats, ids=ids, seconds=seconds)
    return out, summary


def _dedupe_names(labels: list[JudgeLabels]) -> None:
    seen: Counter[str] = Counter()
    for jl in labels:
        if JUDGE_NAME_SEPARATOR in jl.name:
            jl.name = jl.name.replace(JUDGE_NAME_SEPARATOR, "/")
        seen[jl.name] += 1
        if seen[jl.name] > 1:
            new = f"{jl.name}#{seen[jl.name]}"
            logger.warning("two judges are named %r; the later one is called %r", jl.name, new)
            jl.name = new


def summarize(
    evidence: Evidence,
    judges: Sequence[JudgeLabels],
    run_stats: Sequence[JudgeRunStats],
    *,
    ids: Sequence[str],
    seconds: float,
) -> dict[str, Any]:
    """JSON-ready summary of a prelabel run (see :func:`format_summary`)."""
    labeled = evidence.ai_label != 0
    reasons = Counter(reason_category(r) for r in evidence.ai_unlabeled_reason if r is not None)
    per_judge: dict[str, Any] = {}
    for jl in judges:
        judge_reasons = Counter(reason_category(r) for r in jl.reason if r is not None)
        per_judge[jl.name] = {
            "labeled": int((jl.label != 0).sum()),
            "inconsistent": int(((jl.label != 0) & (jl.consistent == INCONSISTENT)).sum()),
            "unlabeled_by_reason": dict(judge_reasons),
        }
    for st in run_stats:
        entry = per_judge.setdefault(st.judge, {})
        entry.update({k: v for k, v in asdict(st).items() if k not in ("judge",)})
        entry["pairs_per_second"] = round(st.pairs_per_second, 3) if math.isfinite(st.pairs_per_second) else None
    prompt_tokens = sum(st.prompt_tokens for st in run_stats)
    completion_tokens = sum(st.completion_tokens for st in run_stats)
    n = len(ids)
    return {
        "pairs": n,
        "labeled": int(labeled.sum()),
        "inconsistent": int((labeled & ~evidence.ai_consistent).sum()),
        "contested": int((labeled & (evidence.ai_disagreement > 0)).sum()),
        "unlabeled": int((~labeled).sum()),
        "unlabeled_by_reason": dict(reasons),
        "unlabeled_ids": [ids[i] for i in np.flatnonzero(~labeled)],
        "tokens": {
            "prompt": prompt_tokens,
            "completion": completion_tokens,
            "total": prompt_tokens + completion_tokens,
        },
        "answers_requested": sum(st.answers_requested for st in run_stats),
        "answers_from_cache": sum(st.answers_from_cache for st in run_stats),
        "requests": sum(st.requests for st in run_stats),
        "seconds": round(seconds, 3),
        "pairs_per_second": round(n / seconds, 3) if seconds > 0 else None,
        "judges": per_judge,
    }


def format_summary(summary: Mapping[str, Any]) -> str:
    """The end-of-run report printed by ``rlthf prelabel``."""
    pps = summary.get("pairs_per_second")
    lines = [
        f"prelabel: {summary['pairs']} pairs in {summary['seconds']:.1f} s" + (f" ({pps:.1f} pairs/s)" if pps else ""),
        f"  labeled {summary['labeled']} (inconsistent across orders {summary['inconsistent']}, "
        f"contested by judges {summary['contested']}); unlabeled {summary['unlabeled']}"
        + (
            ": " + ", ".join(f"{k} {v}" for k, v in sorted(summary["unlabeled_by_reason"].items()))
            if summary["unlabeled"]
            else ""
        ),
    ]
    tok = summary["tokens"]
    lines.append(
        f"  tokens used: {tok['total']:,} ({tok['prompt']:,} prompt + {tok['completion']:,} completion); "
        f"answers requested {summary['answers_requested']:,} in {summary['requests']:,} requests, "
        f"reused from cache {summary['answers_from_cache']:,}"
    )
    for name, js in summary["judges"].items():
        extra = ""
        if "answers_requested" in js:
            extra = f", {js['prompt_tokens'] + js['completion_tokens']:,} tokens, {js['seconds']:.1f} s"
        lines.append(
            f"  judge {name}: labeled {js['labeled']}, inconsistent {js['inconsistent']}"
            + (f", unlabeled {sum(js['unlabeled_by_reason'].values())}" if js["unlabeled_by_reason"] else "")
            + extra
        )
    unl = summary.get("unlabeled_ids") or []
    if unl:
        shown = ", ".join(unl[:10]) + (f" and {len(unl) - 10} more" if len(unl) > 10 else "")
        lines.append(f"  unlabeled ids (reason in ai_unlabeled_reason): {shown}")
    return "\n".join(lines)


def iter_unlabeled(records: Iterable[Mapping[str, Any]]) -> Iterable[tuple[str, str]]:
    """(id, reason) of every output record without an AI label."""
    for r in records:
        if r.get("ai_label") is None:
            yield str(r["id"]), str(r.get("ai_unlabeled_reason"))
