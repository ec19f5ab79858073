"""The ``rlthf`` command line. Options come from the config dataclasses (:mod:`rlthf_selector.config`)."""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Sequence

from rlthf_selector.config import SELECTOR_CONFIGS, add_selector_arguments, config_markdown, selector_configs


def run_demo(args: argparse.Namespace) -> int:
    """The main job on shipped data: a PandaLM slice with GPT-3.5 as the AI judge and the human majority answering
    (``--synthetic``: generated pairs, a biased AI judge, a simulated human)."""
    from rlthf_selector.export import write_trl
    from rlthf_selector.feature_store import store_for
    from rlthf_selector.features import make_featurizer
    from rlthf_selector.loop import RLTHF, GoldAnnotator, IterationRecord
    from rlthf_selector.report import iteration_table, write_report
    from rlthf_selector.reward_model import FeatureRewardModel
    from rlthf_selector.synthetic import make_synthetic_pairs

    started = time.perf_counter()
    configs = selector_configs(args)
    out = Path(args.out)
    if args.synthetic:
        pairs = make_synthetic_pairs(args.n, seed=args.data_seed)
        source = "generated pairs"
        judge = "biased: errs on hard topics and close calls, swayed by length"
        command = f"rlthf demo --synthetic --out {args.out} --n {args.n} --data-seed {args.data_seed}"
        gold = "the generator's gold labels"
    else:
        from rlthf_selector.demo_data import DEMO_SOURCE, load_demo_pairs

        pairs, notes = load_demo_pairs()
        source = f"pairs from the {DEMO_SOURCE}"
        judge = "GPT-3.5's real verdicts, PandaLM-7B as the second judge; humans answer with the annotators' majority"
        command = f"rlthf demo --out {args.out}"
        gold = "the human annotators' majority"
        print(f"rlthf demo: loading the shipped PandaLM slice: {notes[0]}")
    ai_accuracy = float((pairs.ai_label == pairs.gold_label).mean())
    print(f"rlthf demo: {len(pairs)} {source}; AI judge accuracy {100 * ai_accuracy:.1f}% ({judge})")
    featurizer = make_featurizer(configs["featurizer_config"])
    reward_model = FeatureRewardModel(featurizer, configs["rm_config"],
                                      store=store_for(featurizer, configs["featurizer_config"]))

    def show(record: IterationRecord) -> None:
        acc = "—" if record.pool_accuracy is None else f"{100 * record.pool_accuracy:.1f}%"
        print(f"  iteration {record.iteration + 1}: humans asked {record.human_asked}, flips {record.flips}, "
              f"pool accuracy against gold {acc} ({record.seconds:.1f}s)", flush=True)

    loop = RLTHF(reward_model, loop_config=configs["loop_config"], curve_config=configs["curve_config"],
                 selection_config=configs["selection_config"], on_iteration=show)
    result = loop.run(pairs, GoldAnnotator())
    final_accuracy = float((result.labels == pairs.gold_label).mean())
    export_path = write_trl(result.pairs, result.labels, result.label_source, out / "trl_preferences.jsonl")
    report_path = write_report(
        result, out, title="rlthf demo", ai_accuracy=ai_accuracy,
        extra_lines=[f"Data: {len(pairs)} {source}", f"Command: `{command}`",
                     f"Human labels: {result.human_labels} of {len(pairs)} "
                     f"({100 * result.human_labels / len(pairs):.1f}%)"],
    )
    summary = {
        "pairs": len(pairs), "ai_accuracy": round(ai_accuracy, 4), "final_accuracy": round(final_accuracy, 4),
        "human_labels": result.human_labels, "seconds": round(time.perf_counter() - started, 1),
        "live_estimates": {name: est.to_dict() for name, est in result.estimates.items()},
        "warnings": result.warnings,
    }
    (out / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    print()
    print(iteration_table(result.records, ai_accuracy=ai_accuracy))
    print()
    print(f"pool label accuracy, measured against {gold}: AI judge {100 * ai_accuracy:.1f}% -> "
          f"RLTHF {100 * final_accuracy:.1f}% with {result.human_labels} human labels "
          f"({100 * result.human_labels / len(pairs):.1f}%)")
    live = result.estimates.get("pool_accuracy")
    if live is not None and live.value is not None:  # what a team without gold labels would see
        print(f"pool label accuracy, estimated from the human answers alone (no gold): {100 * live.value:.0f}% "
              f"[{100 * live.lower:.0f}, {100 * live.upper:.0f}] ({100 * live.confidence:.0f}% interval, "
              f"{live.n} random checks)")
    for warning in result.warnings:
        print(f"warning: {warning}")
    print(f"wrote {report_path}, {out / 'curve.png'}, {export_path} ({summary['seconds']}s)")
    return 0


def run_config_docs(args: argparse.Namespace) -> int:
    print(config_markdown(SELECTOR_CONFIGS))
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="rlthf", description="Targeted human feedback for preference labeling (RLTHF).")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    demo = sub.add_parser("demo", help="run RLTHF on a generated preference set with a simulated human",
                          formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    demo.add_argument("--out", default="demo_out", help="output folder for the report, curve PNG and TRL export")
    demo.add_argument("--synthetic", action="store_true",
                      help="generated pairs with a simulated biased judge instead of the shipped PandaLM slice")
    demo.add_argument("--n", type=int, default=2000, help="number of generated pairs (with --synthetic)")
    demo.add_argument("--data-seed", type=int, default=0, help="seed of the generated data (with --synthetic)")
    add_selector_arguments(demo)
    demo.set_defaults(func=run_demo)

    docs = sub.add_parser("config-docs", help="print every selector option as markdown tables")
    docs.set_defaults(func=run_config_docs)

    for register in _plugins():
        register(sub)
    return parser


def _plugins():
    """Sub-command groups that live beside their code (simulate, prelabel, serve, label-studio, export)."""
    from ml_backend.cli import add_backend_parsers
    from rlthf_selector.judge.cli import add_prelabel_parser
    from rlthf_selector.simulate import add_simulate_parser

    return (add_simulate_parser, add_prelabel_parser, add_backend_parsers)


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    argv = list(sys.argv[1:] if argv is None else argv)
    args = parser.parse_args(argv)
    args.argv = argv  # commands that record how they were run (simulate) read it
    try:
        return int(args.func(args) or 0)
    except (ValueError, FileNotFoundError, KeyError) as exc:
        print(f"rlthf {args.command}: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
