"""The ``rlthf`` command line. Options come from the config dataclasses (:mod:`rlthf_selector.config`)."""

from __future__ import annotations

import argparse
import json
import shlex
import sys
import time
from pathlib import Path
from typing import Sequence

from rlthf_selector.config import add_selector_arguments, config_markdown, config_toml, selector_configs

#: The selector settings `rlthf demo` also takes on the command line (all of them come from --config FILE).
DEMO_OPTIONS = ("loop.iterations", "loop.human_budget", "loop.out_of_fold", "loop.seed", "selection.method",
                "features.kind")


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
    command = "rlthf " + shlex.join(args.argv)  # as main() received it, --config and all
    out = Path(args.out)
    if args.synthetic:
        pairs = make_synthetic_pairs(args.n, seed=args.data_seed)
        source = "generated pairs"
        judge = "biased: errs on hard topics and close calls, swayed by length"
        gold = "the generator's gold labels"
    else:
        from rlthf_selector.demo_data import DEMO_SOURCE, load_demo_pairs

        pairs, notes = load_demo_pairs()
        source = f"pairs from the {DEMO_SOURCE}"
        judge = "GPT-3.5's real verdicts, PandaLM-7B as the second judge; humans answer with the annotators' majority"
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
    print(config_toml() if args.toml else config_markdown())
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="rlthf", description="Targeted human feedback for preference labeling (RLTHF).")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    demo = sub.add_parser("demo", help="run RLTHF on the shipped PandaLM slice (or generated pairs) with a simulated human",
                          formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    demo.add_argument("--out", default="demo_out", help="output folder for the report, curve PNG and TRL export")
    demo.add_argument("--synthetic", action="store_true",
                      help="generated pairs with a simulated biased judge instead of the shipped PandaLM slice")
    demo.add_argument("--n", type=int, default=2000, help="number of generated pairs (with --synthetic)")
    demo.add_argument("--data-seed", type=int, default=0, help="seed of the generated data (with --synthetic)")
    add_selector_arguments(demo, options=DEMO_OPTIONS)
    demo.set_defaults(func=run_demo)

    docs = sub.add_parser("config-docs", help="print every selector setting as markdown tables (docs/config.md), "
                                              "or as a --config TOML file with every default")
    docs.add_argument("--toml", action="store_true",
                      help="print a TOML config file instead: every setting at its default, with its help as a comment")
    docs.set_defaults(func=run_config_docs)

    for register in _plugins():
        register(sub)
    return parser


#: The entry point group through which installed packages add sub-commands (pyproject.toml).
COMMAND_GROUP = "rlthf.commands"


def _plugins():
    """Sub-command groups that live beside their code: simulate and prelabel in the library, and those installed
    packages register in the :data:`COMMAND_GROUP` entry point group (the backend's serve, label-studio, export).

    A registered group that cannot be loaded is named on stderr and left out; the other commands still work.
    """
    from importlib.metadata import entry_points

    from rlthf_selector.judge.cli import add_prelabel_parser
    from rlthf_selector.simulate import add_simulate_parser

    found = [add_simulate_parser, add_prelabel_parser]
    for entry in sorted(entry_points(group=COMMAND_GROUP), key=lambda e: e.name):
        try:
            found.append(entry.load())
        except Exception as exc:  # a broken add-on must not take the library's own commands down with it
            print(f"rlthf: the {entry.name!r} commands ({entry.value}) are left out: {type(exc).__name__}: {exc}",
                  file=sys.stderr)
    return found


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
