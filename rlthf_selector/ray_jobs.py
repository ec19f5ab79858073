"""Ray Data jobs: prelabel, featurising and out-of-fold scoring over Parquet shards in a work folder.

The pairs are cut into shards of ``shard_size`` pairs, in input order. Every job maps one shard to one output
shard with the same per-shard function the single-process path runs on all pairs at once, writes it through a
temporary file and renames it into place; a shard file exists only when it is complete. A killed job therefore
resumes from the shards already written: it recomputes none of them and loses none. Results are read back in
shard order, so the pairs come back in input order, and the folds of out-of-fold scoring are drawn by
:func:`rlthf_selector.reward_model.fold_assignment` over the whole pool, as the single-process path draws them:
on the same input and seed both paths give the same labels, gaps and queue.

Work folder layout (shared storage, e.g. NFS, when the workers are on several machines)::

    records/   shard-00000.parquet ...   prelabel's input: id + the record as JSON, and manifest.json
    pairs/     shard-00000.parquet ...   featurising's input: id, prompt, response_a, response_b
    judge-<key>/shard-*.parquet          one judge's labels in both orders (+ cache/, its answers so far)
    features-<key>/shard-*.parquet       (n, 2, d) features, one row per pair
    gaps-<key>/fold-<k>.npz, shard-*.parquet   fitted fold heads, then each pair's out-of-fold gap

``<key>`` hashes everything that decides the output (the judge's signature, the featuriser's settings, the labels,
weights, folds and head settings), so a changed setting writes a new folder and never reuses a stale shard.
``ray`` is imported only inside this module's functions.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Callable, Iterator, Mapping, Sequence

import numpy as np

from rlthf_selector.config import BradleyTerryConfig, CurveConfig, FeaturizerConfig, LoopConfig, SelectionConfig, _f

logger = logging.getLogger(__name__)

#: ``--ray`` with no address: ``RAY_ADDRESS`` when set, else a Ray started on this machine.
LOCAL = "local"
_MANIFEST = "manifest.json"
_FATAL = "fatal.txt"  # a judge's JudgeFatalError message, left by the worker that met it


@dataclass
class RayConfig:
    """Prelabel, featurising and scoring as Ray Data jobs over Parquet shards (rlthf_selector.ray_jobs).

    Where Ray runs is the ``--ray [ADDRESS]`` option."""

    work_dir: str = _f(
        "",
        "Folder of the Parquet shards; a rerun resumes from the shards already there. On a cluster it must be "
        "storage every node sees. Empty = OUT.ray-work beside the output.",
    )
    shard_size: int = _f(5000, "Pairs per shard: the unit of work, and the most a killed job loses.")
    num_cpus: int = _f(0, "CPUs of a Ray started here; 0 = all of this machine's.")
    shard_concurrency: int = _f(0, "Most shards in flight at once; 0 = as many as Ray has CPUs for.")


def resolve_address(address: str | None) -> str | None:
    """The address ``ray.init`` gets: None = start a local Ray; otherwise a cluster address.

    ``"local"`` or empty means ``RAY_ADDRESS`` when it is set, else a local Ray.
    """
    if address in (None, "", LOCAL):
        return os.environ.get("RAY_ADDRESS") or None
    return address


@contextlib.contextmanager
def ray_session(address: str | None = LOCAL, *, num_cpus: int = 0) -> Iterator[None]:
    """Connect to Ray for the duration of the block; shut it down after only if this call started it.

    A Ray the caller already initialised (a test's ``ray.init(num_cpus=2)``, a notebook) is used as it is.
    """
    try:
        import ray
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise RuntimeError("--ray needs Ray: pip install 'rlthf[ray]'") from exc
    if ray.is_initialized():
        yield
        return
    target = resolve_address(address)
    kwargs: dict[str, Any] = {"include_dashboard": False, "log_to_driver": False}
    if target is None and num_cpus:
        kwargs["num_cpus"] = int(num_cpus)
    ray.init(address=target, **kwargs)
    try:
        yield
    finally:
        ray.shutdown()


# ------------------------------------------------------------------------------------------ shards
def shard_name(index: int) -> str:
    return f"shard-{index:05d}.parquet"


def shard_bounds(n: int, shard_size: int) -> list[tuple[int, int]]:
    """``[start, stop)`` of each shard of ``n`` pairs, in order."""
    if shard_size < 1:
        raise ValueError(f"shard_size must be at least 1, got {shard_size}")
    return [(s, min(s + shard_size, n)) for s in range(0, n, shard_size)]


def _write_table(table: Any, path: Path) -> None:
    """Write a Parquet file through a temporary name: the final name exists only for a complete file."""
    import pyarrow.parquet as pq

    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        pq.write_table(table, tmp)
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


def _read_table(path: Path) -> Any:
    import pyarrow.parquet as pq

    return pq.read_table(path)


def _key(*parts: Any) -> str:
    h = hashlib.sha256()
    for part in parts:
        h.update(part.tobytes() if isinstance(part, np.ndarray) else json.dumps(part, sort_keys=True, default=str).encode())
        h.update(b"\0")
    return h.hexdigest()[:16]


def write_input_shards(rows: Sequence[Mapping[str, Any]] | Any, folder: str | Path, *, shard_size: int, kind: str) -> int:
    """Cut the input into Parquet shards under ``folder`` once; returns the number of shards.

    Parameters
    ----------
    rows : sequence of dict (``kind="records"``) or PreferencePairs (``kind="pairs"``), length n
    folder : path
    shard_size : int
    kind : "records" or "pairs"
        ``records``: id + each raw record as JSON (what prelabel's judges read); ``pairs``: the texts the
        featuriser reads.

    Raises
    ------
    ValueError
        When ``folder`` already holds shards of a different input or shard size (its ``manifest.json`` says
        which): a new input needs a new work folder.
    """
    import pyarrow as pa

    folder = Path(folder)
    if kind == "records":
        ids = [str(r["id"]) for r in rows]
        payload = [json.dumps(r, ensure_ascii=False, sort_keys=True) for r in rows]
        columns = {"record": payload}
    elif kind == "pairs":
        ids = [str(i) for i in rows.ids]
        columns = {"prompt": rows.prompt.tolist(), "response_a": rows.response_a.tolist(),
                   "response_b": rows.response_b.tolist()}
    else:
        raise ValueError(f"kind must be 'records' or 'pairs', got {kind!r}")
    n = len(ids)
    h = hashlib.sha256()
    for i in range(n):
        h.update(ids[i].encode())
        for values in columns.values():
            h.update(b"\0" + values[i].encode())
        h.update(b"\n")
    manifest = {"kind": kind, "n": n, "shard_size": int(shard_size), "fingerprint": h.hexdigest()}
    bounds = shard_bounds(n, shard_size)
    manifest_path = folder / _MANIFEST
    if manifest_path.exists():
        found = json.loads(manifest_path.read_text(encoding="utf-8"))
        if found != manifest:
            raise ValueError(
                f"work folder {folder.parent} holds shards of another input (its {kind} manifest says n={found.get('n')}, "
                f"shard_size={found.get('shard_size')}, fingerprint {str(found.get('fingerprint'))[:12]}; this input: "
                f"n={n}, shard_size={shard_size}, fingerprint {manifest['fingerprint'][:12]}): give a new work folder"
            )
        if all((folder / shard_name(i)).exists() for i in range(len(bounds))):
            return len(bounds)
    folder.mkdir(parents=True, exist_ok=True)
    manifest_path.write_text(json.dumps(manifest) + "\n", encoding="utf-8")
    for i, (start, stop) in enumerate(bounds):
        path = folder / shard_name(i)
        if not path.exists():
            table = pa.table({"id": ids[start:stop], **{k: v[start:stop] for k, v in columns.items()}})
            _write_table(table, path)
    return len(bounds)


@dataclass
class _ShardTask:
    """A picklable Ray Data map function: compute one shard with ``compute`` and write it under ``out_dir``."""

    compute: Callable[[int], Any]
    out_dir: str

    def __call__(self, row: dict[str, Any]) -> dict[str, Any]:
        index = int(row["shard"])
        started = time.perf_counter()
        table = self.compute(index)
        _write_table(table, Path(self.out_dir) / shard_name(index))
        return {"shard": index, "rows": table.num_rows, "seconds": time.perf_counter() - started}


def run_shards(
    compute: Callable[[int], Any],
    out_dir: str | Path,
    n_shards: int,
    *,
    use_ray: bool,
    concurrency: int = 0,
    redo: Callable[[Path], bool] | None = None,
) -> list[int]:
    """Compute every shard whose output file is missing; returns the indices computed, ascending.

    Parameters
    ----------
    compute : callable, shard index -> pyarrow.Table
        Picklable (it travels to Ray workers).
    out_dir : path
    n_shards : int
    use_ray : bool
        True: one Ray Data map task per shard (Ray must be initialised, see :func:`ray_session`);
        False: the shards one after another in this process.
    concurrency : int
        Most shards in flight; 0 = Ray's choice.
    redo : callable, path -> bool, optional
        Whether a written shard must be computed again (prelabel: pairs whose requests failed, retried as
        the single-process path retries them on a rerun).
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    todo = []
    for i in range(n_shards):
        path = out_dir / shard_name(i)
        if not path.exists() or (redo is not None and redo(path)):
            todo.append(i)
    if not todo:
        return []
    task = _ShardTask(compute, str(out_dir))
    if not use_ray:
        for i in todo:
            task({"shard": i})
        return todo
    import ray

    ray.data.DataContext.get_current().enable_progress_bars = logger.isEnabledFor(logging.DEBUG)
    ds = ray.data.from_items([{"shard": i} for i in todo], override_num_blocks=len(todo))
    map_kwargs: dict[str, Any] = {"num_cpus": 1}
    if concurrency:
        map_kwargs["concurrency"] = int(concurrency)
    done = sorted(int(r["shard"]) for r in ds.map(task, **map_kwargs).take_all())
    logger.info("%s: wrote %d shards", out_dir.name, len(done))
    return done


def _read_shards(out_dir: Path, n_shards: int) -> Any:
    import pyarrow as pa

    return pa.concat_tables([_read_table(out_dir / shard_name(i)) for i in range(n_shards)])


# ------------------------------------------------------------------------------------------ prelabel
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


def _labels_table(ids: list[str], labels: Any, stats: Any) -> Any:
    """One judge's labels over one shard as a Parquet table, its run statistics in the schema metadata."""
    import pyarrow as pa

    out = pa.table({
        "id": ids,
        "label": labels.label.astype(np.int8),
        "confidence": labels.confidence.astype(np.float64),
        "consistent": labels.consistent.astype(np.int8),
        "reason": [None if r is None else str(r) for r in labels.reason],
    })
    return out.replace_schema_metadata({"stats": json.dumps(asdict(stats))})


def _has_failed_requests(path: Path) -> bool:
    from rlthf_selector.judge.merge import reason_category

    reasons = _read_table(path).column("reason").to_pylist()
    return any(r is not None and reason_category(r) == "request_failed" for r in reasons)


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


# ------------------------------------------------------------------------------------------ vLLM judge
@dataclass
class VLLMJudgeConfig:
    """A vLLM judge on a Ray cluster's GPUs through ray.data.llm (rlthf prelabel --ray --vllm-model M).

    The same prompt, both orders, the same evidence fields as the API judges."""

    model: str = _f("", "Model source for vLLM (a Hugging Face name, or a directory every GPU node sees); empty = none.")
    engine_replicas: int = _f(1, "vLLM engines at once (ray.data.llm's concurrency), each on tensor_parallel GPUs.")
    tensor_parallel: int = _f(1, "GPUs per engine (vLLM's tensor_parallel_size).")
    batch_size: int = _f(64, "Generations per engine batch.")
    max_model_len: int = _f(8192, "Context the engine reserves memory for; a longer pair fails alone (request_failed).")
    max_tokens: int = _f(16, "Completion budget per answer; raise it for models that reason before answering.")
    top_logprobs: int = _f(5, "Log-probability alternatives per token, for the confidence (0 = none: agreement only).")

    def signature(self, template: Any) -> dict[str, Any]:
        """What decides the answers (the cache key of its shards)."""
        return {"kind": "vllm", "model": self.model, "template": template.sha256, "temperature": 0.0,
                "max_tokens": self.max_tokens}


def _openai_logprobs(tokens: Sequence[int], logprobs: Sequence[Mapping[Any, Any]] | None) -> dict[str, Any] | None:
    """vLLM's per-token ``{token_id: {logprob, rank, decoded_token}}`` in the chat-completions shape
    :func:`rlthf_selector.judge.prompts.first_position_probability` reads."""
    if not logprobs:
        return None
    content = []
    for token, alternatives in zip(tokens, logprobs):
        alts = {str(k): v for k, v in dict(alternatives or {}).items()}
        top = [{"token": str(v.get("decoded_token") or ""), "logprob": float(v["logprob"])} for v in alts.values()]
        chosen = alts.get(str(token)) or {}
        content.append({"token": str(chosen.get("decoded_token") or ""), "logprob": chosen.get("logprob"),
                        "top_logprobs": top})
    return {"content": content}


def _vllm_verdict(row: dict[str, Any]) -> dict[str, Any]:
    """ray.data.llm postprocess: the generated answer as the verdict fields an OrderVerdict carries."""
    from rlthf_selector.judge.prompts import first_position_probability, parse_verdict

    text = row.get("generated_text") or ""
    verdict = parse_verdict(text)
    p_first = first_position_probability(
        _openai_logprobs(list(row.get("generated_tokens") or []), row.get("logprobs")), verdict)
    return {"shard": row["shard"], "pos": row["pos"], "order": row["order"], "verdict": verdict, "p_first": p_first,
            "raw": text[:300], "prompt_tokens": int(row.get("num_input_tokens") or 0),
            "completion_tokens": int(row.get("num_generated_tokens") or 0), "error": ""}


def judge_shards_vllm(records: Sequence[Mapping[str, Any]], stage: Path, *, shard_size: int,
                      config: VLLMJudgeConfig, template: Any) -> list[int]:
    """Judge every pair of the shards missing under ``stage`` in both orders with vLLM through ``ray.data.llm``.

    One Ray Data pipeline runs over all missing shards (the engines start once); a shard is written the moment
    its last answer arrives, so a killed run keeps every finished shard. Answers that name neither letter are
    unlabelled as ``malformed`` (no stricter re-ask, unlike the API judges); engine errors are ``request_failed``
    and their shard is judged again on a rerun.

    Returns
    -------
    list of int
        The shards written.
    """
    try:
        import ray
        from ray.data.llm import build_processor, vLLMEngineProcessorConfig
    except ImportError as exc:  # pragma: no cover - GPU clusters only
        raise RuntimeError("the vLLM judge needs Ray with its LLM extra and vLLM: pip install 'ray[data,llm]' vllm") from exc
    from rlthf_selector.judge.base import OrderVerdict
    from rlthf_selector.judge.runner import ORDERS, JudgeRunStats, judge_labels_from_answers

    stage.mkdir(parents=True, exist_ok=True)
    bounds = shard_bounds(len(records), shard_size)
    todo = [i for i in range(len(bounds))
            if not (stage / shard_name(i)).exists() or _has_failed_requests(stage / shard_name(i))]
    if not todo:
        return []
    rows = []
    for shard in todo:
        start, stop = bounds[shard]
        for pos, r in enumerate(records[start:stop]):
            for order in ORDERS:
                first, second = (r["response_a"], r["response_b"]) if order == "ab" else (r["response_b"], r["response_a"])
                rows.append({"shard": shard, "pos": pos, "order": order,
                             "messages": template.messages(r["prompt"], first, second)})
    sampling = {"temperature": 0.0, "max_tokens": config.max_tokens}
    if config.top_logprobs:
        sampling["logprobs"] = config.top_logprobs
    processor = build_processor(
        vLLMEngineProcessorConfig(
            model_source=config.model,
            engine_kwargs={"tensor_parallel_size": config.tensor_parallel, "max_model_len": config.max_model_len},
            concurrency=config.engine_replicas,
            batch_size=config.batch_size,
            should_continue_on_error=True,
        ),
        preprocess=lambda row: {**row, "sampling_params": sampling},
        postprocess=_vllm_verdict,
    )
    answers: dict[int, dict[tuple[int, str], OrderVerdict]] = {i: {} for i in todo}
    stats = {i: JudgeRunStats(judge=config.model, pairs=bounds[i][1] - bounds[i][0]) for i in todo}
    written = []
    for row in processor(ray.data.from_items(rows)).iter_rows():
        shard, pos, order = int(row["shard"]), int(row["pos"]), str(row["order"])
        error = row.get("__inference_error__") or row.get("error") or ""
        if error:
            verdict = OrderVerdict(None, reason=f"request_failed: vLLM: {str(error)[:200]}", cacheable=False)
        else:
            verdict = OrderVerdict(
                row["verdict"], p_first=row["p_first"], raw=row["raw"],
                reason=None if row["verdict"] else f"malformed: answer names neither A nor B: {row['raw'][:80]!r}",
                usage={"prompt_tokens": int(row["prompt_tokens"]), "completion_tokens": int(row["completion_tokens"])},
            )
        answers[shard][(pos, order)] = verdict
        st = stats[shard]
        st.answers_requested += 1
        st.requests += 1
        st.prompt_tokens += int(verdict.usage.get("prompt_tokens", 0))
        st.completion_tokens += int(verdict.usage.get("completion_tokens", 0))
        if len(answers[shard]) == 2 * st.pairs:
            start, stop = bounds[shard]
            labels = judge_labels_from_answers(config.model, answers.pop(shard), st.pairs)
            _write_table(_labels_table([str(r["id"]) for r in records[start:stop]], labels, st),
                         stage / shard_name(shard))
            written.append(shard)
    return sorted(written)


# ------------------------------------------------------------------------------------------ features
_FEATURIZERS: dict[str, Any] = {}  # per worker process: an encoder is loaded once, not once per shard


def _featurizer(config: FeaturizerConfig) -> Any:
    from rlthf_selector.features import make_featurizer

    key = json.dumps(asdict(config), sort_keys=True)
    if key not in _FEATURIZERS:
        _FEATURIZERS[key] = make_featurizer(config)
    return _FEATURIZERS[key]


def _shard_pairs(pairs_dir: str, index: int) -> Any:
    from rlthf_selector.pairs import PreferencePairs

    t = _read_table(Path(pairs_dir) / shard_name(index))
    return PreferencePairs(ids=t.column("id").to_pylist(), prompt=t.column("prompt").to_pylist(),
                           response_a=t.column("response_a").to_pylist(), response_b=t.column("response_b").to_pylist())


@dataclass
class _FeatureShard:
    """The featuriser's ``transform`` over one shard of pairs; one row of 2*d float32 per pair."""

    pairs_dir: str
    config: FeaturizerConfig

    def __call__(self, index: int) -> Any:
        import pyarrow as pa

        pairs = _shard_pairs(self.pairs_dir, index)
        x = np.ascontiguousarray(_featurizer(self.config).transform(pairs), dtype=np.float32)
        width = x.shape[1] * x.shape[2]
        column = pa.FixedSizeListArray.from_arrays(pa.array(x.reshape(-1)), width)
        return pa.table({"id": pairs.ids.tolist(), "features": column}).replace_schema_metadata(
            {"shape": json.dumps([int(x.shape[1]), int(x.shape[2])])})


def _features_of(table: Any) -> np.ndarray:
    shape = json.loads(table.schema.metadata[b"shape"])
    column = table.column("features").combine_chunks()
    return np.asarray(column.values.to_numpy(zero_copy_only=False), dtype=np.float32).reshape(-1, *shape)


def featurize_ray(
    pairs: Any,
    *,
    config: FeaturizerConfig,
    work_dir: str | Path,
    shard_size: int = 5000,
    shard_concurrency: int = 0,
    use_ray: bool = True,
) -> tuple[Path, int]:
    """Featurise every pair as a Ray Data job; returns the features' folder and its number of shards.

    ``config.progress`` is turned off in the workers (many bars on one terminal help no one).
    Read the features back with :func:`load_features`.
    """
    from dataclasses import replace

    work = Path(work_dir)
    n_shards = write_input_shards(pairs, work / "pairs", shard_size=shard_size, kind="pairs")
    config = replace(config, progress=False)
    stage = work / f"features-{_key(asdict(config))}"
    run_shards(_FeatureShard(str(work / "pairs"), config), stage, n_shards, use_ray=use_ray,
               concurrency=shard_concurrency)
    return stage, n_shards


def load_features(stage: str | Path, n_shards: int) -> np.ndarray:
    """The features a :func:`featurize_ray` job wrote, in pair order. Shape (n, 2, d) float32."""
    return _features_of(_read_shards(Path(stage), n_shards))


# ------------------------------------------------------------------------------------------ scoring
_HEADS: dict[str, list[Any]] = {}


def _fold_heads(stage: str, n_models: int) -> list[Any]:
    from rlthf_selector.reward_model import BradleyTerryHead, load_state

    if stage not in _HEADS:
        _HEADS[stage] = [BradleyTerryHead().load_state_dict(load_state(Path(stage) / f"fold-{k}.npz"))
                         for k in range(n_models)]
    return _HEADS[stage]


def _blas_threads() -> int:
    from threadpoolctl import threadpool_info

    return max([int(i["num_threads"]) for i in threadpool_info() if i.get("user_api") == "blas"] or [1])


def _fit_fold(features_dir: str, n_shards: int, stage: str, k: int, head_config: BradleyTerryConfig) -> int:
    """Fit fold ``k``'s head on the labelled pairs of the other folds; saved as ``fold-k.npz``."""
    from rlthf_selector.reward_model import BradleyTerryHead, save_state

    data = np.load(Path(stage) / "folds.npz")
    folds, labels, weights = data["folds"], data["labels"], data["weights"]
    train = np.flatnonzero((folds != k) & (folds >= 0)) if folds.max() >= 0 and k >= 0 else np.flatnonzero(labels != 0)
    x = load_features(features_dir, n_shards)
    head = BradleyTerryHead(head_config).fit(x[train], labels[train], sample_weight=weights[train])
    save_state(head.state_dict(), Path(stage) / f"fold-{max(k, 0)}.npz")
    return k


@dataclass
class _GapShard:
    """Each pair's out-of-fold gap over one shard: its fold's head where labelled, the fold heads' mean if not."""

    features_dir: str
    stage: str
    n_folds: int

    def __call__(self, index: int) -> Any:
        import pyarrow as pa

        table = _read_table(Path(self.features_dir) / shard_name(index))
        x = _features_of(table)
        with np.load(Path(self.stage) / "folds.npz") as saved:
            folds, shard_size = saved["folds"], int(saved["shard_size"])
        start = index * shard_size
        fold = folds[start:start + x.shape[0]]
        if self.n_folds <= 1:
            gap = _fold_heads(self.stage, 1)[0].reward_gap(x)
        else:
            heads = _fold_heads(self.stage, self.n_folds)
            gap = np.zeros(x.shape[0], dtype=np.float64)
            unlabelled = np.flatnonzero(fold < 0)
            for k, head in enumerate(heads):
                held = np.flatnonzero(fold == k)
                # The same rows in the same order as the single-process cross-fit scores them: held, then unlabelled.
                scored = head.reward_gap(x[np.concatenate([held, unlabelled])])
                gap[held] = scored[: len(held)]
                gap[unlabelled] += scored[len(held):] / self.n_folds
        return pa.table({"id": table.column("id"), "gap": gap})


def out_of_fold_gap_ray(
    features_dir: str | Path,
    n_shards: int,
    labels: np.ndarray,
    *,
    sample_weight: np.ndarray | None = None,
    head_config: BradleyTerryConfig | None = None,
    n_folds: int = 5,
    seed: int = 0,
    shard_size: int,
    work_dir: str | Path,
    shard_concurrency: int = 0,
    use_ray: bool = True,
) -> np.ndarray:
    """:func:`rlthf_selector.reward_model.out_of_fold_gap_features` as Ray jobs: the fold heads are fitted as
    Ray tasks in parallel, then every shard is scored as a Ray Data job.

    Parameters
    ----------
    features_dir, n_shards
        From :func:`featurize_ray`.
    labels : ndarray of int, shape (n,)
        +1 / -1 train; 0 = unlabelled.
    sample_weight : ndarray of float, shape (n,), optional
    head_config : BradleyTerryConfig, optional
    n_folds, seed
        As in ``out_of_fold_gap_features`` (the same folds, by the same :func:`fold_assignment`).
    shard_size : int
        The shard size the features were written with.

    Returns
    -------
    ndarray of float64, shape (n,)
    """
    from rlthf_selector.reward_model import _weights_or_ones, fold_assignment

    labels = np.asarray(labels, dtype=np.int8)
    n = labels.shape[0]
    weights = _weights_or_ones(sample_weight, n)
    head_config = head_config or BradleyTerryConfig()
    if n_folds > 1:
        folds = fold_assignment(labels, n_folds, seed=seed)
    else:
        if not (labels != 0).any():
            raise ValueError("no labelled pairs to train on")
        folds = np.full(n, -1, dtype=np.int64)
    n_models = max(int(n_folds), 1)
    stage = Path(work_dir) / f"gaps-{_key(Path(features_dir).name, labels, weights, asdict(head_config), n_models, seed)}"
    stage.mkdir(parents=True, exist_ok=True)
    if not (stage / "folds.npz").exists():
        tmp = stage / ".folds.tmp.npz"
        np.savez(tmp, folds=folds, labels=labels, weights=weights, shard_size=np.int64(shard_size))
        os.replace(tmp, stage / "folds.npz")
    fold_ids = [k for k in (range(n_models) if n_folds > 1 else [-1]) if not (stage / f"fold-{max(k, 0)}.npz").exists()]
    if fold_ids and use_ray:
        import ray

        # L-BFGS sums over pairs with BLAS; a different thread count sums in another order and the fit moves by
        # ~1e-5. Ray gives a task one thread by default: the fits get the thread count this process has instead.
        threads = str(_blas_threads())
        env = {name: threads for name in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")}
        fit = ray.remote(num_cpus=1, runtime_env={"env_vars": env})(_fit_fold)
        ray.get([fit.remote(str(features_dir), n_shards, str(stage), k, head_config) for k in fold_ids])
    else:
        for k in fold_ids:
            _fit_fold(str(features_dir), n_shards, str(stage), k, head_config)
    run_shards(_GapShard(str(features_dir), str(stage), int(n_folds)), stage, n_shards, use_ray=use_ray,
               concurrency=shard_concurrency)
    gap = np.asarray(_read_shards(stage, n_shards).column("gap").to_numpy(), dtype=np.float64)
    if gap.shape != (n,):
        raise RuntimeError(f"{stage}: the gap shards hold {gap.shape[0]} pairs, expected {n}")
    return gap


def select_step_ray(
    pairs: Any,
    *,
    iteration: int,
    budget: int,
    work_dir: str | Path,
    featurizer_config: FeaturizerConfig | None = None,
    head_config: BradleyTerryConfig | None = None,
    loop_config: LoopConfig | None = None,
    curve_config: CurveConfig | None = None,
    selection_config: SelectionConfig | None = None,
    previous_region: np.ndarray | None = None,
    remaining: int | None = None,
    shard_size: int = 5000,
    shard_concurrency: int = 0,
    use_ray: bool = True,
) -> Any:
    """:func:`rlthf_selector.loop.select_step` for a :class:`~rlthf_selector.reward_model.FeatureRewardModel`
    with its featurising and out-of-fold scoring as Ray jobs; the same StepResult on the same input and seed.

    The full-pool reward model that ``select_step`` also fits (for the caller to keep) is not fitted here: the
    step's labels and queue come from the out-of-fold gaps alone.
    """
    from rlthf_selector.loop import step_from_gaps, training_set

    started = time.perf_counter()
    loop_config = loop_config or LoopConfig()
    train_label, train_weight = training_set(pairs.ai_label, pairs.human_label, alpha=loop_config.alpha_at(iteration),
                                             previous_region=previous_region)
    trained = np.flatnonzero(train_label != 0)
    if trained.shape[0] < 2 or np.unique(train_label[trained]).shape[0] < 2:
        raise ValueError(f"cannot train a reward model on {trained.shape[0]} labelled pairs with one preferred side")
    features_dir, n_shards = featurize_ray(pairs, config=featurizer_config or FeaturizerConfig(), work_dir=work_dir,
                                           shard_size=shard_size, shard_concurrency=shard_concurrency, use_ray=use_ray)
    gap = out_of_fold_gap_ray(features_dir, n_shards, train_label, sample_weight=train_weight, head_config=head_config,
                              n_folds=loop_config.out_of_fold, seed=loop_config.seed + iteration, shard_size=shard_size,
                              work_dir=work_dir, shard_concurrency=shard_concurrency, use_ray=use_ray)
    step = step_from_gaps(pairs, gap, train_weight, iteration=iteration, budget=budget, loop_config=loop_config,
                          curve_config=curve_config, selection_config=selection_config, remaining=remaining)
    step.seconds = time.perf_counter() - started
    return step


# ------------------------------------------------------------------------------------------ command line
def main(argv: Sequence[str] | None = None) -> int:
    """One selection step over a labelled pool with featurising and out-of-fold scoring as Ray Data jobs.

    ``python -m rlthf_selector.ray_jobs --pairs labeled.jsonl --out step.jsonl --ray [ADDRESS]`` writes one line per
    pair: ``id``, ``reward_gap`` (out-of-fold), ``label`` and ``label_source`` (human > flipped > AI > RM) and
    ``queue_rank`` (0 = ask first; null = not queued), in input order, and prints the step's summary. Without
    ``--ray`` the same shards are computed in this process. A rerun resumes from the work folder's shards.
    """
    import argparse

    from rlthf_selector.config import add_config_arguments, add_selector_arguments, config_from_args, selector_configs
    from rlthf_selector.loaders import load_jsonl
    from rlthf_selector.pairs import LabelSource, format_label

    parser = argparse.ArgumentParser(prog="python -m rlthf_selector.ray_jobs", description=main.__doc__.splitlines()[0])
    parser.add_argument("--pairs", required=True, help="canonical JSONL with ai_label (and any human_label)")
    parser.add_argument("--out", required=True, help="JSONL: id, reward_gap, label, label_source, queue_rank")
    parser.add_argument("--budget", type=int, default=200, help="most pairs in the human queue")
    parser.add_argument("--iteration", type=int, default=0, help="0-based iteration: picks alpha, beta and the fold seed")
    parser.add_argument("--ray", nargs="?", const=LOCAL, default=None, metavar="ADDRESS",
                        help="run on Ray: alone, a Ray on this machine (or RAY_ADDRESS); with an address, that cluster")
    add_config_arguments(parser, RayConfig, prefix="ray_")
    add_selector_arguments(parser)
    args = parser.parse_args(argv)
    ray_config: RayConfig = config_from_args(RayConfig, args, prefix="ray_")
    configs = selector_configs(args)
    try:
        pairs, _ = load_jsonl(args.pairs)
    except (OSError, ValueError) as exc:
        parser.error(str(exc))
    work_dir = ray_config.work_dir or str(args.out) + ".ray-work"
    session = ray_session(args.ray, num_cpus=ray_config.num_cpus) if args.ray is not None else contextlib.nullcontext()
    with session:
        step = select_step_ray(
            pairs, iteration=args.iteration, budget=args.budget, work_dir=work_dir,
            featurizer_config=configs["featurizer_config"], head_config=configs["rm_config"],
            loop_config=configs["loop_config"], curve_config=configs["curve_config"],
            selection_config=configs["selection_config"], shard_size=ray_config.shard_size,
            shard_concurrency=ray_config.shard_concurrency, use_ray=args.ray is not None,
        )
    rank = np.full(len(pairs), -1, dtype=np.int64)
    rank[step.human_queue] = np.arange(len(step.human_queue))
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    with open(args.out, "w", encoding="utf-8") as fh:
        for i in range(len(pairs)):
            fh.write(json.dumps({
                "id": str(pairs.ids[i]), "reward_gap": float(step.reward_gap[i]), "label": format_label(step.labels[i]),
                "label_source": LabelSource(int(step.label_source[i])).label,
                "queue_rank": int(rank[i]) if rank[i] >= 0 else None,
            }) + "\n")
    print(json.dumps(step.summary()["label_sources"] | {"queue_length": int(len(step.human_queue)),
                                                       "seconds": round(step.seconds, 3)}))
    return 0


__all__ = [
    "LOCAL",
    "RayConfig",
    "VLLMJudgeConfig",
    "featurize_ray",
    "judge_shards_vllm",
    "load_features",
    "out_of_fold_gap_ray",
    "prelabel_ray",
    "ray_session",
    "resolve_address",
    "run_shards",
    "select_step_ray",
    "shard_bounds",
    "write_input_shards",
]


if __name__ == "__main__":
    import sys

    sys.exit(main())
