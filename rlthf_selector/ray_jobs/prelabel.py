"""``rlthf prelabel --ray``: the judges as Ray Data jobs over record shards, writing what the single process writes."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

import numpy as np

from rlthf_selector.ray_jobs.shards import (
    run_shards,
    shard_name,
    write_input_shards,
    _FATAL,
    _has_failed_requests,
    _key,
    _labels_table,
    _read_shards,
    _read_table,
)
from rlthf_selector.ray_jobs.vllm_judge import judge_shards_vllm, VLLMJudgeConfig


@dataclass
class _JudgeShard:
    """One judge over one shard of records, both orders, with the shard's own answer cache."""

    records_dir: str
    make_judge: Callable[[], Any]
    cache_dir: str | None
    concurrency: int
    stage_dir: str

    def __call__(self, index: int) -> Any:
        from rlthf_selector.judge.base import JudgeFatalError
        from rlthf_selector.judge.cache import JudgeCache
        from rlthf_selector.judge.runner import judge_pairs

        table = _read_table(Path(self.records_dir) / shard_name(index))
        records = [json.loads(r) for r in table.column("record").to_pylist()]
        judge = self.make_judge()
        cache = None
        if self.cache_dir is not None:
            Path(self.cache_dir).mkdir(parents=True, exist_ok=True)
            cache = JudgeCache(Path(self.cache_dir) / f"shard-{index:05d}.jsonl")
        try:
            labels, stats = judge_pairs(
                judge, [r["prompt"] for r in records], [r["response_a"] for r in records],
                [r["response_b"] for r in records], ids=[str(r["id"]) for r in records], cache=cache,
                concurrency=self.concurrency,
            )
        except JudgeFatalError as exc:
            # Ray wraps a task's exception in its own; the driver reads the judge's words from here.
            (Path(self.stage_dir) / _FATAL).write_text(str(exc), encoding="utf-8")
            raise
        finally:
            if cache is not None:
                cache.close()
            judge.close()
        return _labels_table([str(r["id"]) for r in records], labels, stats)


def prelabel_ray(
    records: Sequence[Mapping[str, Any]],
    *,
    judge_factories: Sequence[Callable[[], Any]] = (),
    label_sets: Sequence[Any] = (),
    work_dir: str | Path,
    shard_size: int = 5000,
    use_cache: bool = True,
    concurrency: int = 16,
    shard_concurrency: int = 0,
    use_ray: bool = True,
    vllm: "VLLMJudgeConfig | None" = None,
    template: Any = None,
) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """:func:`rlthf_selector.judge.runner.prelabel` as Ray Data jobs: each judge over each shard in both orders.

    Parameters
    ----------
    records : sequence of dict, length n
    judge_factories : sequence of callables returning a PairJudge
        Picklable (e.g. ``functools.partial``): every Ray worker builds its own judge.
    label_sets : sequence of JudgeLabels, each of length n
        Labels merged from files, as in ``prelabel``.
    work_dir : path
    shard_size : int
    use_cache : bool
        Keep each shard's answers as they arrive, so a shard killed halfway asks only what is missing.
    concurrency : int
        Requests in flight per shard.
    shard_concurrency : int
        Shards in flight; 0 = Ray's choice.
    use_ray : bool
        False runs the same shards in this process (the reference the tests compare with).
    vllm : VLLMJudgeConfig, optional
        One more judge: a model served by vLLM engines on the cluster's GPUs through ``ray.data.llm``
        (:func:`judge_shards_vllm`), asked with ``template``.
    template : PromptTemplate, optional
        The vLLM judge's prompt (default: the built-in one).

    Returns
    -------
    out_records, summary
        As :func:`rlthf_selector.judge.runner.prelabel` returns them.
    """
    from rlthf_selector.judge.merge import JudgeLabels
    from rlthf_selector.judge.runner import JudgeRunStats, merge_judge_labels

    if not judge_factories and not label_sets and vllm is None:
        raise ValueError("nothing to label with: give at least one judge or one label file")
    started = time.perf_counter()
    work = Path(work_dir)
    records_dir = work / "records"
    n_shards = write_input_shards(records, records_dir, shard_size=shard_size, kind="records")
    all_labels: list[Any] = []
    run_stats: list[Any] = []
    import pyarrow.parquet as pq

    judges: list[tuple[Any, Any]] = [(make_judge, None) for make_judge in judge_factories]
    if vllm is not None:
        judges.append((None, vllm))
    for make_judge, vllm_config in judges:
        judge_started = time.perf_counter()
        if vllm_config is not None:
            from rlthf_selector.judge.prompts import PromptTemplate

            template = template or PromptTemplate()
            name, signature = vllm_config.model, vllm_config.signature(template)
            stage = work / f"judge-{_key(signature)}"
            computed = judge_shards_vllm(records, stage, shard_size=shard_size, config=vllm_config, template=template)
        else:
            probe = make_judge()
            name, signature = probe.name, probe.signature()
            probe.close()
            stage = work / f"judge-{_key(signature)}"
            task = _JudgeShard(str(records_dir), make_judge, str(stage / "cache") if use_cache else None,
                               int(concurrency), str(stage))
            fatal = stage / _FATAL
            fatal.unlink(missing_ok=True)
            try:
                computed = run_shards(task, stage, n_shards, use_ray=use_ray, concurrency=shard_concurrency,
                                      redo=_has_failed_requests)
            except Exception as exc:
                if fatal.exists():
                    from rlthf_selector.judge.base import JudgeFatalError

                    raise JudgeFatalError(fatal.read_text(encoding="utf-8")) from exc
                raise
        # What this run paid for: the statistics of the shards it wrote; shards kept from an earlier run count
        # as answers reused, as the single-process path counts its cache.
        stats = JudgeRunStats(judge=name, pairs=len(records))

        for i in range(n_shards):
            meta = pq.read_schema(stage / shard_name(i)).metadata or {}
            shard_stats = json.loads(meta.get(b"stats", b"{}"))
            if i not in set(computed):
                stats.answers_from_cache += 2 * int(shard_stats.get("pairs", 0))
                continue
            for field_name in ("answers_requested", "answers_from_cache", "requests", "prompt_tokens",
                               "completion_tokens"):
                setattr(stats, field_name, getattr(stats, field_name) + int(shard_stats.get(field_name, 0)))
        stats.seconds = time.perf_counter() - judge_started
        table = _read_shards(stage, n_shards)
        if table.column("id").to_pylist() != [str(r["id"]) for r in records]:
            raise RuntimeError(f"{stage}: shards do not hold the input's pairs in order; delete the folder and rerun")
        all_labels.append(JudgeLabels(
            name,
            np.asarray(table.column("label").to_numpy(), dtype=np.int8),
            np.asarray(table.column("confidence").to_numpy(), dtype=np.float64),
            np.asarray(table.column("consistent").to_numpy(), dtype=np.int8),
            np.asarray(table.column("reason").to_pylist(), dtype=object),
        ))
        run_stats.append(stats)
    all_labels.extend(label_sets)
    return merge_judge_labels(records, all_labels, run_stats, seconds=time.perf_counter() - started)
