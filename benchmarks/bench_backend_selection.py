"""Selection quality of the ML backend itself: simulated annotators answer the queue Label Studio would serve.

``rlthf simulate`` measures the library's loop. Label Studio users get the backend, which retrains after every few
answers and serves its queue with control draws mixed in. Its accuracy is measured here against the same data.
The backend runs its real code path: Flask test client, ``/setup``, ``START_TRAINING`` webhooks and the worker,
against an in-memory Label Studio. After each retrain a simulated annotator answers the head of the served queue
(``--answers-per-retrain`` at a time) with the gold label, until the budget is spent. The exported labels (human >
flipped > AI > reward model, ``state.labels``) are then scored against gold over the pool.

Each seed holds out 20% of the pairs, as ``rlthf simulate`` does, so the pool and its AI accuracy match that
benchmark's rows. Strategies: ``ai-only``, ``random`` (the budget on uniformly drawn pairs) and ``backend`` (its
mistake model refitted on every answer at each retrain). The task data is what
``rlthf label-studio setup`` imports, the judge's evidence included (``--no-evidence`` leaves it out). Prints a
markdown table and writes one JSON file.

    .venv/bin/python benchmarks/bench_backend_selection.py --dataset hh-rlhf \\
        --path ../shared/data/hh-rlhf/harmless-base-test.jsonl.gz --ai-labels length-bias --json OUT.json
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def run_backend(pool, *, budget: int, answers_per_retrain: int, control_share: float, queue_budget: float,
                evidence: bool = True) -> dict:
    """Serve, answer the served head with gold, retrain; repeat until ``budget`` answers. Returns the outcome."""
    from label_config import load_label_config, parse_label_config
    from rlthf_selector.config import BackendConfig
    from rlthf_selector.pairs import LabelSource

    from ml_backend.app import create_app
    from rlthf_selector.label_studio_tasks import task_records
    from ml_backend.memory_client import InMemoryLabelStudio

    config_xml = load_label_config("pairwise")
    control = parse_label_config(config_xml)
    fake = InMemoryLabelStudio()
    # The task data `rlthf label-studio setup` imports: texts, AI label, pair id and the judge's evidence.
    if not evidence:
        from rlthf_selector.evidence import without_evidence

        pool = without_evidence(pool)
    pid = fake.add_project(config_xml, [t["data"] for t in task_records(pool, control=control, model_version="rlthf-0")])
    gold = dict(zip(fake.task_ids(pid), pool.gold_label.tolist()))  # task ids follow the pool's order
    with tempfile.TemporaryDirectory() as model_dir:
        config = BackendConfig(model_dir=model_dir, debounce_s=0.0, max_wait_s=0.0, control_share=control_share,
                               queue_budget=queue_budget, writeback=False)
        app = create_app(config, client_factory=lambda entry: fake, start_worker=False)
        client = app.test_client()
        backend = app.extensions["rlthf"]
        reply = client.post("/setup", json={"project": f"{pid}.1700000000", "schema": config_xml,
                                            "hostname": "http://ls", "access_token": "tok"})
        if reply.status_code != 200:
            raise RuntimeError(f"/setup failed: {reply.get_json()}")
        backend.worker.run_due()
        answered, retrains = 0, 0
        started = time.perf_counter()
        while answered < budget:
            state = backend.registry.get(pid).state
            served = np.flatnonzero(state.queue_rank >= 0)
            served = served[np.argsort(state.queue_rank[served])]
            served = served[state.human_label[served] == 0][: min(answers_per_retrain, budget - answered)]
            if served.size == 0:
                break
            for i in served:
                tid = int(state.task_ids[i])
                fake.annotate(tid, control.result(gold[tid]))
            answered += int(served.size)
            client.post("/webhook", json={"action": "START_TRAINING", "project": {"id": pid}})
            backend.worker.run_due()
            retrains += 1
        state = backend.registry.get(pid).state
        seconds = time.perf_counter() - started
    order = np.argsort(state.task_ids)  # back to the pool's order
    labels = state.labels[order]
    flipped = (state.label_source == LabelSource.FLIPPED)[order]
    return {"labels": labels, "human_labels": int((state.human_label != 0).sum()), "retrains": retrains,
            "flips": int(flipped.sum()), "flips_correct": int((labels[flipped] == pool.gold_label[flipped]).sum()),
            "mistake_model": state.summary.get("mistake_model", {}).get("explanation"),
            "estimate_warnings": state.summary.get("estimate_warnings", []), "seconds": round(seconds, 2)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", default="pandalm", choices=("pandalm", "hh-rlhf", "synthetic"))
    parser.add_argument("--path", nargs="*", default=["../shared/data/pandalm"])
    parser.add_argument("--ai-labels", default=None)
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--budgets", default="0.06,0.1", help="human labels as fractions of the pool")
    parser.add_argument("--answers-per-retrain", type=int, default=10)
    parser.add_argument("--control-share", type=float, default=0.1)
    parser.add_argument("--queue-budget", type=float, default=0.1, help="RLTHF_QUEUE_BUDGET")
    parser.add_argument("--no-evidence", action="store_true",
                        help="leave the judge's evidence (e.g. PandaLM's second judge) out of the task data")
    parser.add_argument("--json", default=None, help="write the results here")
    args = parser.parse_args(argv)

    from rlthf_selector.simulate import heldout_split, load_simulation_data, machine_description

    seeds = [int(s) for s in args.seeds.split(",")]
    budgets = [float(b) for b in args.budgets.split(",")]
    data = load_simulation_data(args.dataset, args.path, ai_labels=args.ai_labels, seed=seeds[0])
    started = time.perf_counter()
    rows = []
    for seed in seeds:
        pool_idx, _ = heldout_split(len(data.pairs), fraction=0.2, seed=seed)
        pool = data.pairs.subset(pool_idx)
        ai_acc = float((pool.ai_label == pool.gold_label).mean())
        rows.append({"strategy": "ai-only", "seed": seed, "budget": 0.0, "label_accuracy": ai_acc})
        for fraction in budgets:
            budget = int(round(fraction * len(pool)))
            pick = np.random.default_rng(seed).choice(len(pool), size=budget, replace=False)
            labels = pool.ai_label.copy()
            labels[pick] = pool.gold_label[pick]
            rows.append({"strategy": "random", "seed": seed, "budget": fraction,
                         "label_accuracy": float((labels == pool.gold_label).mean())})
            out = run_backend(pool, budget=budget, answers_per_retrain=args.answers_per_retrain,
                              control_share=args.control_share, queue_budget=args.queue_budget,
                              evidence=not args.no_evidence)
            acc = float((out.pop("labels") == pool.gold_label).mean())
            rows.append({"strategy": "backend", "seed": seed, "budget": fraction, "label_accuracy": acc, **out})
            print(f"seed {seed} budget {fraction:.0%} backend: pool accuracy {acc:.4f}, {out['human_labels']} "
                  f"human labels, {out['retrains']} retrains, flips {out['flips']} ({out['flips_correct']} right), "
                  f"{out['seconds']} s", flush=True)
    strategies = ["ai-only", "random", "backend"]
    lines = ["| strategy | " + " | ".join(f"{b:.0%}" for b in budgets) + " |",
             "| --- |" + " --- |" * len(budgets)]
    for name in strategies:
        cells = []
        for b in budgets:
            acc = [r["label_accuracy"] for r in rows if r["strategy"] == name and r["budget"] in (b, 0.0)]
            cells.append(f"{100 * np.mean(acc):.2f}")
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    table = "\n".join(lines)
    output = {
        "command": "python benchmarks/bench_backend_selection.py " + " ".join(argv if argv is not None else sys.argv[1:]),
        "machine": machine_description(),
        "dataset": data.name, "ai_labels": data.ai_labels, "seeds": seeds, "budgets": budgets,
        "answers_per_retrain": args.answers_per_retrain, "control_share": args.control_share,
        "queue_budget": args.queue_budget, "evidence_in_task_data": not args.no_evidence, "results": rows,
        "table": table,
        "seconds": round(time.perf_counter() - started, 1),
    }
    print(f"\n{data.name}, AI labels {data.ai_labels}; pool label accuracy, mean over seeds {seeds}\n")
    print(table)
    if args.json:
        Path(args.json).write_text(json.dumps(output, indent=1) + "\n", encoding="utf-8")
        print(f"\nwrote {args.json} in {output['seconds']} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
