"""``rlthf prelabel``: AI preference labels for a canonical JSONL file.

Wired into the ``rlthf`` console script through :func:`add_prelabel_parser`; also runnable on its own as
``python -m rlthf_selector.judge.cli --pairs FILE --out FILE ...``.

Exit status: 0 done (unlabeled pairs, if any, are listed in the summary and carry ``ai_unlabeled_reason``),
2 bad input or a judge that cannot go on (bad key, unknown model; answers so far stay cached),
130 interrupted (rerun the same command to resume from the cache).
"""

from __future__ import annotations

import argparse
import gzip
import json
import logging
import os
import sys
from pathlib import Path
from typing import Any, Sequence
from urllib.parse import urlparse

from rlthf_selector.config import JudgeConfig, add_config_arguments, config_from_args

logger = logging.getLogger("rlthf_selector.judge")

DESCRIPTION = """\
Label every pair with an AI judge: any OpenAI-compatible chat-completions server (--model, repeatable),
a local Hugging Face causal LM (--local-model DIR), and/or labels you already have (--ai-labels-from FILE).
Each pair is judged in both orders; the majority of judges becomes ai_label, and the evidence
(ai_confidence, ai_consistent, ai_disagreement, judge_labels, judge_doubt, ai_unlabeled_reason) is written
beside it. Interrupted runs resume from the answer cache without paying twice."""


def add_prelabel_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the ``prelabel`` options to ``parser``."""
    io = parser.add_argument_group("input and output")
    io.add_argument("--pairs", help="canonical JSONL (.jsonl or .jsonl.gz): id, prompt, response_a, response_b, ...")
    io.add_argument("--out", help="output JSONL: the input records with ai_label and the judge evidence")
    io.add_argument(
        "--on-error",
        choices=("raise", "skip"),
        default="raise",
        help="bad input lines: stop at the first ('raise') or skip and count them ('skip')",
    )
    io.add_argument("--summary-json", metavar="FILE", help="also write the end-of-run summary as JSON here")
    judges = parser.add_argument_group("judges")
    judges.add_argument(
        "--model",
        action="append",
        default=[],
        metavar="NAME",
        help="model served at --base-url; repeat for several judges",
    )
    judges.add_argument(
        "--local-model",
        action="append",
        default=[],
        metavar="DIR",
        help="local Hugging Face causal LM directory scored by log p('A') vs log p('B'); repeatable",
    )
    judges.add_argument(
        "--ai-labels-from",
        action="append",
        default=[],
        metavar="FILE",
        help="merge labels you already have (JSONL with 'id'); repeatable; each file is a judge "
        "(or several, for an earlier prelabel output)",
    )
    judges.add_argument(
        "--ai-labels-column",
        default="ai_label",
        metavar="NAME",
        help="field holding the label in --ai-labels-from files ('a'/'b', +1/-1/0 or null)",
    )
    run = parser.add_argument_group("run")
    run.add_argument("--no-cache", action="store_true", help="do not read or write the answer cache")
    run.add_argument(
        "--progress",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="progress bar (default: when stderr is a terminal)",
    )
    run.add_argument("--show-prompt", action="store_true", help="print the judging prompt (after --template) and exit")
    run.add_argument("--log-level", default="INFO", choices=("DEBUG", "INFO", "WARNING", "ERROR"))
    run.add_argument(
        "--ray",
        nargs="?",
        const="local",
        default=None,
        metavar="ADDRESS",
        help="judge as Ray Data jobs over Parquet shards (resumable shard by shard): alone, a Ray on this machine "
        "(or the cluster RAY_ADDRESS names); with an address, that cluster. Needs pip install 'rlthf[ray]'",
    )
    add_config_arguments(parser, JudgeConfig)
    from rlthf_selector.ray_jobs import RayConfig, VLLMJudgeConfig

    add_config_arguments(parser, RayConfig, prefix="ray_")
    add_config_arguments(parser, VLLMJudgeConfig, prefix="vllm_")


def add_prelabel_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Register ``prelabel`` on an ``argparse`` sub-parser collection; sets ``func=run_prelabel``."""
    parser = subparsers.add_parser(
        "prelabel",
        help="AI-label pairs with an OpenAI-compatible model, a local model or existing labels",
        description=DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_prelabel_arguments(parser)
    parser.set_defaults(func=run_prelabel)
    return parser


def run_prelabel(args: argparse.Namespace) -> int:
    """Run ``rlthf prelabel`` with parsed arguments; returns the exit status."""
    from rlthf_selector.judge.base import JudgeFatalError
    from rlthf_selector.judge.cache import JudgeCache
    from rlthf_selector.judge.merge import LabelFileError, read_label_file
    from rlthf_selector.judge.prompts import TemplateError, load_template
    from rlthf_selector.judge.runner import format_summary, prelabel

    _configure_logging(args.log_level)
    config: JudgeConfig = config_from_args(JudgeConfig, args)
    try:
        template = load_template(config.template or None, config.system_prompt or None)
    except TemplateError as exc:
        return _fail(str(exc))
    if args.show_prompt:
        for message in template.messages("{prompt}", "{response_a}", "{response_b}"):
            print(f"--- {message['role']} ---\n{message['content']}")
        return 0
    if not args.pairs or not args.out:
        return _fail("--pairs and --out are required")
    if not (args.model or args.local_model or args.ai_labels_from or args.vllm_model):
        return _fail("nothing to label with: give --model, --local-model, --vllm-model or --ai-labels-from")
    if args.vllm_model and args.ray is None:
        return _fail("--vllm-model runs vLLM engines through Ray: add --ray (this machine) or --ray ADDRESS")
    if config.concurrency < 1:
        return _fail(f"--concurrency must be at least 1, got {config.concurrency}")

    try:
        records, load_report = read_pairs(args.pairs, on_error=args.on_error)
    except (OSError, ValueError) as exc:
        return _fail(str(exc))
    ids = [str(r["id"]) for r in records]

    label_sets = []
    try:
        for path in args.ai_labels_from:
            label_sets.extend(read_label_file(path, ids, column=args.ai_labels_column))
    except LabelFileError as exc:
        return _fail(str(exc))

    judges: list[Any] = []
    cache = None
    try:
        if args.model and args.ray is None:
            judges.extend(_api_judges(args.model, config, template))
        for model_dir in args.local_model if args.ray is None else ():
            from rlthf_selector.judge.local_judge import LocalJudge

            judges.append(
                LocalJudge(model_dir, template=template, device=config.device, max_length=config.local_max_length)
            )
        if judges and not args.no_cache:
            cache_path = Path(config.cache) if config.cache else Path(str(args.out) + ".judge-cache.jsonl")
            cache = JudgeCache(cache_path)
            if cache.n_loaded:
                logger.info("resuming: %d answers already in %s", cache.n_loaded, cache_path)
        progress = sys.stderr.isatty() if args.progress is None else args.progress
        if args.ray is not None:
            out_records, summary = _prelabel_ray(args, config, template, records, label_sets)
        else:
            out_records, summary = prelabel(
                records,
                judges=judges,
                label_sets=label_sets,
                cache=cache,
                concurrency=config.concurrency,
                progress=progress,
            )
    except JudgeFatalError as exc:
        return _fail(f"{exc}\nAnswers received so far are cached; fix the problem and rerun the same command.")
    except KeyboardInterrupt:
        print(
            "\nrlthf prelabel: interrupted; answers received so far are cached. Rerun the same command to resume.",
            file=sys.stderr,
        )
        return 130
    except (OSError, ValueError, RayJobFailed) as exc:
        return _fail(str(exc))
    finally:
        if cache is not None:
            cache.close()
        for judge in judges:
            judge.close()

    write_records(out_records, args.out)
    print(format_summary(summary))
    print(f"wrote {len(out_records)} pairs to {args.out}")
    if load_report.n_skipped:  # said again at the end, where it is seen: the input was not read whole
        where = f"; all of them under 'input' in {args.summary_json}" if args.summary_json else ""
        print(f"skipped {load_report.n_skipped} input records: listed by line in the warning above{where}")
    if args.summary_json:
        summary = {**summary, "input": load_report.to_dict()}
        Path(args.summary_json).write_text(json.dumps(summary, indent=2) + "\n", encoding="utf-8")
    return 0


def _prelabel_ray(
    args: argparse.Namespace, config: JudgeConfig, template: Any, records: list[dict[str, Any]], label_sets: list[Any]
) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """The judges as Ray Data jobs (:func:`rlthf_selector.ray_jobs.prelabel_ray`): every worker builds its own."""
    import functools

    from rlthf_selector.judge.base import JudgeFatalError
    from rlthf_selector.ray_jobs import RayConfig, VLLMJudgeConfig, prelabel_ray, ray_session

    ray_config: RayConfig = config_from_args(RayConfig, args, prefix="ray_")
    vllm_config: VLLMJudgeConfig = config_from_args(VLLMJudgeConfig, args, prefix="vllm_")
    factories: list[Any] = [functools.partial(_one_api_judge, model, config, template) for model in args.model]
    factories += [functools.partial(_one_local_judge, model_dir, config, template) for model_dir in args.local_model]
    work_dir = ray_config.work_dir or str(args.out) + ".ray-work"
    try:
        with ray_session(args.ray, num_cpus=ray_config.num_cpus):
            return prelabel_ray(
                records, judge_factories=factories, label_sets=label_sets, work_dir=work_dir,
                shard_size=ray_config.shard_size, use_cache=not args.no_cache, concurrency=config.concurrency,
                shard_concurrency=ray_config.shard_concurrency,
                vllm=vllm_config if vllm_config.model else None, template=template,
            )
    except (JudgeFatalError, OSError, ValueError, KeyboardInterrupt):
        raise
    except Exception as exc:
        logger.error("the Ray job stopped: %s", exc)
        raise RayJobFailed(f"the Ray job failed ({type(exc).__name__}); the shards written under {work_dir} are kept: "
                           "rerun the same command to resume") from exc


class RayJobFailed(RuntimeError):
    """A Ray prelabel job stopped on an error no judge raised (a lost node, a full disk): its shards are kept."""


def _one_api_judge(model: str, config: JudgeConfig, template: Any) -> Any:
    return _api_judges([model], config, template)[0]


def _one_local_judge(model_dir: str, config: JudgeConfig, template: Any) -> Any:
    from rlthf_selector.judge.local_judge import LocalJudge

    return LocalJudge(model_dir, template=template, device=config.device, max_length=config.local_max_length)


def _api_judges(models: Sequence[str], config: JudgeConfig, template: Any) -> list[Any]:
    from rlthf_selector.judge.openai_judge import OpenAIJudge

    api_key = os.environ.get(config.api_key_env) or None
    if api_key is None:
        host = urlparse(config.base_url).hostname or ""
        level = logging.INFO if host in ("localhost", "127.0.0.1", "::1") else logging.WARNING
        logger.log(level, "environment variable %s is not set: requests go without an API key", config.api_key_env)
    return [
        OpenAIJudge(
            model,
            base_url=config.base_url,
            api_key=api_key,
            template=template,
            timeout=config.timeout,
            max_retries=config.max_retries,
            backoff_base=config.backoff_base,
            backoff_max=config.backoff_max,
            temperature=config.temperature,
            max_tokens=config.max_tokens,
            logprobs=config.logprobs,
            top_logprobs=config.top_logprobs,
            api_key_env=config.api_key_env,
        )
        for model in models
    ]


def read_pairs(path: str | Path, *, on_error: str = "raise") -> tuple[list[dict[str, Any]], Any]:
    """The records of a canonical JSONL file, validated by :func:`rlthf_selector.io.load_jsonl`, and its
    :class:`~rlthf_selector.io.LoadReport`.

    Every field of a record is kept as written (load_jsonl's typed view would drop nested objects), in
    the order load_jsonl loaded them; lines it skipped (``on_error="skip"``) are not returned: they are counted
    and listed by line in the report, and logged as a warning.
    """
    from rlthf_selector.io import load_jsonl

    pairs, report = load_jsonl(path, on_error=on_error)
    if report.n_skipped:
        logger.warning("%s", report.summary())
    raw: dict[str, dict[str, Any]] = {}
    opener = gzip.open if str(path).endswith(".gz") else open
    with opener(path, "rt", encoding="utf-8") as fh:
        for line in fh:
            try:
                record = json.loads(line)
            except ValueError:
                continue  # load_jsonl already reported (or refused) it
            if isinstance(record, dict) and "id" in record:
                raw.setdefault(str(record["id"]), record)
    return [raw[str(pid)] for pid in pairs.ids], report


def write_records(records: Sequence[dict[str, Any]], path: str | Path) -> Path:
    """Write JSONL (gzipped if ``path`` ends in ``.gz``) through a temporary file, so a crash mid-write never
    leaves a truncated output behind."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    data = "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records).encode("utf-8")
    try:
        with gzip.open(tmp, "wb") if path.suffix == ".gz" else open(tmp, "wb") as fh:
            fh.write(data)
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()
    return path


def _fail(message: str) -> int:
    print(f"rlthf prelabel: error: {message}", file=sys.stderr)
    return 2


def _configure_logging(level: str) -> None:
    # Only when the caller has not configured logging (a CLI run); libraries and tests keep theirs.
    if not logging.getLogger().handlers:
        logging.basicConfig(format="%(levelname)s %(name)s: %(message)s", stream=sys.stderr)
    logging.getLogger("rlthf_selector").setLevel(getattr(logging, level))


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m rlthf_selector.judge.cli",
        description=DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_prelabel_arguments(parser)
    return run_prelabel(parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
