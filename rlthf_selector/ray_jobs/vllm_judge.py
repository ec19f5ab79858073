"""A judge served by vLLM engines through ``ray.data.llm``: the same prompt, both orders and evidence fields."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping, Sequence


from rlthf_selector.config import _f
from rlthf_selector.ray_jobs.shards import shard_bounds, shard_name, _has_failed_requests, _labels_table, _write_table


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
