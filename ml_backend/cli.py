"""``rlthf serve``, ``rlthf label-studio setup`` and ``rlthf export``: the backend's command line.

:func:`add_backend_parsers` adds the three sub-commands to the ``rlthf`` parser; pyproject.toml registers it in
the ``rlthf.commands`` entry point group, where :mod:`rlthf_selector.cli` finds it. Secrets (API key, basic-auth password) are read from the environment by
default so that they do not show in the process list.
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import sys
from dataclasses import fields
from pathlib import Path
from typing import Any, Mapping, Sequence

DEFAULT_TITLE = "RLTHF preference pairs"


def add_backend_parsers(subparsers: Any) -> None:
    """Add ``serve``, ``label-studio`` (with ``setup``) and ``export`` to an argparse sub-parser group."""
    from label_config import CONFIG_NAMES

    serve = subparsers.add_parser(
        "serve", help="run the Label Studio ML backend", formatter_class=argparse.ArgumentDefaultsHelpFormatter,
        description="Run the ML backend. Label Studio credentials and basic auth come from the environment "
                    "(LABEL_STUDIO_URL, LABEL_STUDIO_API_KEY, BASIC_AUTH_USER, BASIC_AUTH_PASS; see docs/backend.md).",
    )
    serve.add_argument("--host", default="127.0.0.1", help="address to bind")
    serve.add_argument("--port", type=int, default=9090, help="port to bind")
    # SUPPRESS: the defaults come from the environment, which the help names (argparse would add "default: None").
    serve.add_argument("--model-dir", default=argparse.SUPPRESS, help="state directory (default: $MODEL_DIR or ./model_dir)")
    serve.add_argument("--label-studio-url", default=argparse.SUPPRESS,
                       help="Label Studio URL (default: $LABEL_STUDIO_URL)")
    serve.add_argument("--development", dest="production", action="store_false", default=argparse.SUPPRESS,
                       help="serve with Flask's development server instead of waitress (single process, for debugging)")
    # Accepted for the commands written before waitress became the default (Dockerfile, scripts): a no-op now.
    serve.add_argument("--production", dest="production", action="store_true", default=argparse.SUPPRESS, help=argparse.SUPPRESS)
    serve.add_argument("--threads", type=int, default=8, help="waitress worker threads")
    serve.set_defaults(func=run_serve)

    ls = subparsers.add_parser("label-studio", help="set up a Label Studio project for RLTHF")
    ls_sub = ls.add_subparsers(dest="ls_command", required=True, metavar="ACTION")
    setup = ls_sub.add_parser(
        "setup", help="create (or reuse) a project, import pairs with AI prelabels, connect the backend",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    _add_ls_arguments(setup)
    setup.add_argument("--pairs", required=True,
                       help="pairs in the canonical JSONL format (ai_label 'a'/'b' optional) or TRL preference data "
                            "(.jsonl, .json or .parquet; 'chosen' is taken as the AI label, conversations are kept)")
    setup.add_argument("--on-error", choices=("raise", "skip"), default="raise",
                       help="bad input rows: stop at the first, naming its line ('raise'), or skip them, counted by "
                            "reason with the first of each named ('skip')")
    setup.add_argument("--backend-url", required=True, help="the ML backend's URL as Label Studio reaches it")
    setup.add_argument("--title", default=DEFAULT_TITLE, help="project title (an existing project with it is reused)")
    setup.add_argument("--label-config", choices=CONFIG_NAMES, default="pairwise",
                       help="labeling config variant ('chat' shows each prompt's messages as a dialogue)")
    setup.add_argument("--basic-auth-user", default=os.environ.get("BASIC_AUTH_USER", ""),
                       help="the backend's basic-auth user (default: $BASIC_AUTH_USER); the password is $BASIC_AUTH_PASS")
    setup.add_argument("--show-prelabels", action="store_true", default=None,
                       help="turn Label Studio's 'Use predictions to prelabel tasks' on in a project it creates "
                            "(default: $RLTHF_SHOW_PRELABELS, else off: annotators judge blind; see docs/backend.md)")
    setup.add_argument("--no-backend-check", dest="backend_check", action="store_false",
                       help="do not ask the backend's /health from here before creating anything (for a --backend-url "
                            "only Label Studio can reach, such as a docker-compose service name)")
    setup.add_argument("--json", action="store_true", help="print the outcome as one JSON object")
    setup.set_defaults(func=run_label_studio_setup)

    export = subparsers.add_parser(
        "export", help="write the TRL data set of a Label Studio project (human labels + the backend's labels)",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    _add_ls_arguments(export)
    export.add_argument("--project", type=int, required=True, help="Label Studio project id")
    export.add_argument("--out", required=True, help="output folder")
    export.add_argument("--format", choices=("jsonl", "parquet"), default="jsonl", help="file format")
    export.add_argument("--backend-url", default=os.environ.get("RLTHF_BACKEND_URL", ""),
                        help="the ML backend, for a large project's pool (default: $RLTHF_BACKEND_URL, else the backend "
                             "connected to the project in Label Studio)")
    export.add_argument("--basic-auth-user", default=os.environ.get("BASIC_AUTH_USER", ""),
                        help="the backend's basic-auth user (default: $BASIC_AUTH_USER); the password is $BASIC_AUTH_PASS")
    export.set_defaults(func=run_export)


def _env_flag(name: str) -> bool:
    """A yes/no environment variable read as :class:`~rlthf_selector.config.BackendConfig` reads its fields
    (a ValueError names a value that is neither)."""
    from rlthf_selector.config import BackendConfig

    by_env = {f.metadata.get("env"): f.name for f in fields(BackendConfig)}
    return bool(getattr(BackendConfig.from_env({name: os.environ.get(name, "")}), by_env[name]))


def _add_ls_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--url", default=os.environ.get("LABEL_STUDIO_URL", ""), help="Label Studio URL (default: $LABEL_STUDIO_URL)")
    parser.add_argument("--api-key", default=os.environ.get("LABEL_STUDIO_API_KEY", ""),
                        help="Label Studio API token (default: $LABEL_STUDIO_API_KEY)")


# ---------------------------------------------------------------------- serve
def run_serve(args: argparse.Namespace) -> int:
    import logging

    from rlthf_selector.config import BackendConfig

    from ml_backend.app import create_app

    logging.basicConfig(level=os.environ.get("LOG_LEVEL", "INFO"), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("httpx").setLevel(logging.WARNING)  # one line per Label Studio call is noise
    overrides: dict[str, Any] = {}
    for name in ("model_dir", "label_studio_url"):
        if getattr(args, name, None):
            overrides[name] = getattr(args, name)
    config = BackendConfig.from_env(**overrides)
    app = create_app(config)
    auth = "basic auth on" if config.basic_auth_user else "no auth (set BASIC_AUTH_USER/BASIC_AUTH_PASS)"
    print(f"rlthf ML backend on http://{args.host}:{args.port} (model dir {Path(config.model_dir).resolve()}, {auth})", flush=True)
    if getattr(args, "production", True):  # waitress unless --development
        from waitress import serve

        serve(app, host=args.host, port=args.port, threads=args.threads, ident="rlthf-ml-backend")
    else:
        print("Flask's development server (--development): not for a team's daily use", flush=True)
        app.run(host=args.host, port=args.port, threaded=True, use_reloader=False)
    return 0


# ---------------------------------------------------------------------- label-studio setup
PROJECT_DESCRIPTION = (
    "RLTHF: AI prelabels, automatic flips and a prioritised human queue (the tab 'RLTHF: needs human'). "
    "Each submitted annotation reaches the RLTHF backend through this project's webhook, which retrains it in the "
    "background and re-orders the queue, so 'Start model training on annotation submission' (Settings > Model) stays "
    "off. The tasks in the queue show no pre-selected answer: annotators judge blind."
)


def project_description(backend_url: str, project_id: int) -> str:
    """:data:`PROJECT_DESCRIPTION` with the link to the project's live report page on the backend."""
    return (f"{PROJECT_DESCRIPTION} Live report (curve, AI mistakes found, estimates, budget): "
            f"{backend_url.rstrip('/')}/report/{int(project_id)} (the backend's login).")


class SetupError(RuntimeError):
    """``rlthf label-studio setup`` could not finish; what it had created is rolled back (the message says so)."""


def check_backend(backend_url: str, *, basic_auth_user: str = "", basic_auth_pass: str = "", timeout: float = 5.0) -> None:
    """Make sure the ML backend answers ``/health`` at ``backend_url`` before anything is created in Label Studio.

    Raises
    ------
    SetupError
        Naming the URL and what went wrong (no answer, or an answer that is not an RLTHF backend's).
    """
    import httpx

    url = backend_url.rstrip("/") + "/health"
    auth = (basic_auth_user, basic_auth_pass) if basic_auth_user else None
    try:
        response = httpx.get(url, timeout=timeout, auth=auth)
    except httpx.HTTPError as exc:
        raise SetupError(f"the ML backend at {backend_url} does not answer ({type(exc).__name__}: {exc}); start it "
                         f"(rlthf serve) or correct --backend-url (pass --no-backend-check when only Label Studio "
                         f"can reach it). Nothing was created in Label Studio.") from None
    body = None
    try:
        body = response.json()
    except ValueError:
        pass
    if response.status_code != 200 or not isinstance(body, dict) or body.get("status") != "UP":
        raise SetupError(f"{url} answered HTTP {response.status_code} {response.text[:200]!r}, not an ML backend's "
                         f"health; check --backend-url. Nothing was created in Label Studio.")


def setup_project(
    client: Any,
    pairs: Any,
    *,
    backend_url: str,
    title: str = DEFAULT_TITLE,
    config: str = "pairwise",
    basic_auth_user: str = "",
    basic_auth_pass: str = "",
    model_version: str = "rlthf-0",
    show_prelabels: bool = False,
    backend_check: bool = True,
    pool_threshold: int | None = None,
    backend_http: Any = None,
) -> dict[str, Any]:
    """Create or reuse a project, import the pairs not yet in it (or, above ``pool_threshold``, send them to the
    backend's pool), connect the backend.

    Nothing is created before the pairs fit the config and the backend answers (``backend_check``). When a later
    step fails, what this call created is removed again (the project it created, or the tasks it imported into a
    reused one) and :class:`SetupError` says what failed and what was rolled back.

    Parameters
    ----------
    show_prelabels : bool
        For a project it creates: Label Studio's "Use predictions to prelabel tasks". Off (the default), the
        labeling stream opens every task with nothing selected; the backend's own switch is
        ``BackendConfig.show_prelabels``.
    backend_check : bool
        Ask the backend's ``/health`` from here first (off where only Label Studio can reach the backend's URL).
    pool_threshold : int, optional
        Most pairs imported into Label Studio (default ``BackendConfig.pool_threshold``, ``$RLTHF_POOL_THRESHOLD``).
        With more, every pair goes to the backend's pool (``POST /pool/<id>``, idempotent by pair id) and nothing is
        imported here: the backend's first training, which connecting it starts, imports the first human batch with
        its control draws, and each retrain the next (:mod:`ml_backend.pool`).
    backend_http : httpx.Client, optional
        How the pool reaches the backend (default: a client for ``backend_url`` with the basic-auth credentials).

    Returns
    -------
    dict
        ``project_id``, ``created``, ``imported``, ``already_there``, ``ml_backend_id``, and ``pool`` (None, or the
        pool's ``added``, ``already_there`` and ``pairs``).
    """
    from rlthf_selector.config import BackendConfig

    from label_config import load_label_config, parse_label_config
    from rlthf_selector.label_studio_tasks import check_dialogues, task_records

    from ml_backend.label_studio_client import LabelStudioError

    project = client.find_project(title)
    created = project is None
    if created and "prompt_messages" in parse_label_config(load_label_config(config)).data_fields:
        check_dialogues(pairs)  # before an empty project is left behind
    if backend_check:
        check_backend(backend_url, basic_auth_user=basic_auth_user, basic_auth_pass=basic_auth_pass)
    if created:
        project = client.create_project(title, load_label_config(config), description=PROJECT_DESCRIPTION,
                                        show_predictions=show_prelabels)
    pid = int(project["id"])
    imported_ids: list[int] = []
    try:
        # The link to the report needs the project id, so it is written once the project exists.
        client.update_project(pid, description=project_description(backend_url, pid))
        control = parse_label_config(project.get("label_config") or client.get_project(pid)["label_config"])
        existing = set()
        if not created:
            existing = {str((t.get("data") or {}).get("pair_id")) for t in client.list_tasks(pid)}
        all_tasks = task_records(pairs, control=control, model_version=model_version)
        records = [t for t in all_tasks if t["data"]["pair_id"] not in existing]
        pool = None
        if pool_threshold is None:
            pool_threshold = BackendConfig.from_env().pool_threshold
        if len(pairs) > pool_threshold:
            if backend_http is None:
                import httpx

                backend_http = httpx.Client(base_url=backend_url, timeout=120.0,
                                            auth=(basic_auth_user, basic_auth_pass) if basic_auth_user else None)
            pool = send_pool(backend_http, pid, [t["data"] for t in all_tasks], backend_url=backend_url)
            records = []  # Label Studio gets the batches from the backend's trainings
        for start in range(0, len(records), 1000):
            imported_ids.extend(client.import_tasks(pid, records[start : start + 1000]))
        backend = client.connect_ml_backend(pid, backend_url, title="RLTHF", basic_auth_user=basic_auth_user,
                                            basic_auth_pass=basic_auth_pass)
        if basic_auth_user:
            # The webhook Label Studio created with the connection carries no credentials: add them.
            token = base64.b64encode(f"{basic_auth_user}:{basic_auth_pass}".encode()).decode()
            client.ensure_webhook(pid, backend_url.rstrip("/") + "/webhook", headers={"Authorization": f"Basic {token}"})
    except (LabelStudioError, ValueError, SetupError) as exc:
        raise SetupError(f"{exc}; {_roll_back(client, pid, created=created, imported=imported_ids)}") from exc
    return {
        "project_id": pid, "created": created, "imported": len(imported_ids),
        "already_there": pool["already_there"] if pool else len(pairs) - len(records), "ml_backend_id": backend.get("id"),
        "pool": pool,
    }


def send_pool(http: Any, project_id: int, data: Sequence[dict[str, Any]], *, backend_url: str,
              chunk: int = 2000) -> dict[str, int]:
    """Send task data dicts to the backend's pool of a project in chunks (``POST /pool/<id>``; a rerun adds only the
    pairs the pool lacks).

    Returns
    -------
    dict
        ``added``, ``already_there``, ``pairs`` (the pool's size after the last chunk).

    Raises
    ------
    SetupError
        The backend cannot be reached or refuses a chunk (its message included).
    """
    import httpx

    counts = {"added": 0, "already_there": 0, "pairs": 0}
    for start in range(0, max(len(data), 1), chunk):
        try:
            response = http.post(f"/pool/{int(project_id)}", json={"pairs": list(data[start : start + chunk])})
        except httpx.HTTPError as exc:
            raise SetupError(f"the pairs go to the backend's pool, but the backend at {backend_url} does not answer "
                             f"({type(exc).__name__}: {exc}); --backend-url must be reachable from here") from None
        if response.status_code != 200:
            raise SetupError(f"the backend at {backend_url} refused pairs {start}-{start + chunk - 1} of the pool: "
                             f"HTTP {response.status_code} {response.text[:300]}")
        body = response.json()
        counts["added"] += int(body["added"])
        counts["already_there"] += int(body["already_there"])
        counts["pairs"] = int(body["pairs"])
    return counts


def wait_for_first_batch(http: Any, project_id: int, *, timeout_s: float = 300.0, every_s: float = 2.0) -> dict[str, Any] | None:
    """The backend's pool status (``GET /pool/<id>``) once its first training chose a batch, or None after
    ``timeout_s``."""
    import time

    import httpx

    deadline = time.monotonic() + timeout_s
    while True:
        try:
            response = http.get(f"/pool/{int(project_id)}")
            if response.status_code == 200 and response.json().get("iteration", 0) >= 1:
                return response.json()
        except httpx.HTTPError:
            pass  # the backend may be busy training: ask again
        if time.monotonic() >= deadline:
            return None
        time.sleep(every_s)


def _roll_back(client: Any, project_id: int, *, created: bool, imported: Sequence[int]) -> str:
    """Remove what a failed setup created; a sentence saying what was removed (or what could not be)."""
    from ml_backend.label_studio_client import LabelStudioError

    try:
        if created:
            client.delete_project(project_id)
            return f"project {project_id}, created by this run, was deleted again"
        if imported:
            client.delete_tasks(project_id, imported)
            return f"the {len(imported)} tasks this run imported into project {project_id} were deleted again"
    except LabelStudioError as exc:
        return f"rolling back failed too ({exc}): delete project {project_id} or its new tasks by hand"
    return f"project {project_id} is as it was"


def run_label_studio_setup(args: argparse.Namespace) -> int:
    from rlthf_selector.io import load_pairs

    from ml_backend.label_studio_client import LabelStudioClient, LabelStudioError

    pairs, report = load_pairs(args.pairs, on_error=args.on_error)
    if report.n_skipped:
        print(report.summary(), file=sys.stderr)  # never silent: what was left out, and why
    import httpx

    client = LabelStudioClient(args.url, args.api_key)
    password = os.environ.get("BASIC_AUTH_PASS", "")
    backend_http = httpx.Client(base_url=args.backend_url, timeout=120.0,
                                auth=(args.basic_auth_user, password) if args.basic_auth_user else None)
    try:
        outcome = setup_project(
            client, pairs, backend_url=args.backend_url, title=args.title, config=args.label_config,
            basic_auth_user=args.basic_auth_user, basic_auth_pass=password,
            show_prelabels=_env_flag("RLTHF_SHOW_PRELABELS") if args.show_prelabels is None else args.show_prelabels,
            backend_check=args.backend_check, backend_http=backend_http,
        )
    except (LabelStudioError, SetupError) as exc:
        print(f"rlthf label-studio setup: error: {exc}", file=sys.stderr)
        return 1
    url = client.url
    outcome["data_manager_url"] = f"{url}/projects/{outcome['project_id']}/data"
    if outcome["pool"]:
        # The backend's first training imports the first batch: wait for it, so Label Studio holds it on return.
        if not args.json:
            print(f"{outcome['pool']['pairs']} pairs in the backend's pool ({outcome['pool']['added']} new); waiting "
                  f"for its first training to import the first human batch into Label Studio", flush=True)
        outcome["first_batch"] = wait_for_first_batch(backend_http, outcome["project_id"])
    if args.json:
        print(json.dumps({**outcome, "input": report.to_dict()}))
        return 0
    pid = outcome["project_id"]
    if outcome["created"]:
        what = f"created project {pid}: {outcome['imported']} pairs imported"
    else:
        what = f"reused project {pid} (title {args.title!r}): {outcome['imported']} new pairs imported"
    if outcome["pool"]:
        batch = outcome.get("first_batch")
        what = (f"{'created' if outcome['created'] else 'reused'} project {pid}: "
                + (f"the first batch of {batch['in_label_studio']} pairs imported from the backend's pool of "
                   f"{batch['pairs']}" if batch else
                   "the backend's first training has not imported the first batch yet (it will when it ends)"))
    if outcome["already_there"]:
        what += f", {outcome['already_there']} already there"
    print(f"{what}; ML backend {args.backend_url} connected (id {outcome['ml_backend_id']})")
    print(f"open {outcome['data_manager_url']} and click 'Label All Tasks': annotators get the human queue first, most valuable first")
    print("the tab 'RLTHF: needs human' lists that queue after the backend's first training (seconds)")
    return 0


# ---------------------------------------------------------------------- export
def export_project(client: Any, project_id: int, out_dir: str | os.PathLike, *, fmt: str = "jsonl",
                   pool: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """Write ``out_dir/preferences.<fmt>`` (TRL: prompt, chosen, rejected, label_source, id), ``human_labels.jsonl``
    (one record per human label: whether it was given blind, the order shown) and a summary.

    Parameters
    ----------
    pool : dict, optional
        A large project's pool from its backend (``GET /pool/<id>/pairs``: ``pairs``, each ``{"data", "label"}``).
        Each pool pair Label Studio does not hold joins the tasks with the backend's label as its prediction, so every
        pool pair comes out once and :func:`~rlthf_selector.label_studio_tasks.task_labels` decides every label the
        same way: a human answer in Label Studio first, then a flip, the AI label, the reward model's.
    """
    from label_config import parse_label_config
    from rlthf_selector.export import write_trl
    from rlthf_selector.label_studio_tasks import task_labels
    from rlthf_selector.pairs import LabelSource, has_conversation, parse_label

    from ml_backend.pool import stand_in_tasks

    project = client.get_project(project_id)
    model_version = project.get("model_version") or ""
    # The task list holds whole predictions (the JSON export gives only their ids).
    tasks = client.list_tasks(project_id)
    in_label_studio = len(tasks)
    if pool is not None:
        control = parse_label_config(project["label_config"])
        records = [p["data"] for p in pool["pairs"]]
        label_of = {str(p["data"]["pair_id"]): parse_label(p.get("label")) for p in pool["pairs"]}
        for task in stand_in_tasks(records, tasks):
            label = label_of[str(task["data"]["pair_id"])]
            if label:
                task["predictions"] = [{"result": control.result(label), "model_version": model_version}]
            tasks.append(task)
    got = task_labels(tasks, label_config=project["label_config"], model_version=model_version)
    out = Path(out_dir)
    path = write_trl(got.pairs, got.labels, got.label_source, out / f"preferences.{fmt}")
    with_conversation = int(has_conversation(got.pairs).sum())
    conversational = 0 < with_conversation == len(got.pairs)
    if 0 < with_conversation < len(got.pairs):
        got.warnings.append(f"{with_conversation} of {len(got.pairs)} pairs carry a conversation and the rest "
                            f"plain text: all are written as text (TRL takes one format per data set)")
    human_path = out / "human_labels.jsonl"
    tmp = human_path.with_name(human_path.name + ".tmp")
    tmp.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in got.human_labels), encoding="utf-8")
    os.replace(tmp, human_path)
    blind = sum(r["blind"] for r in got.human_labels)
    summary = {
        "project_id": int(project_id), "model_version": project.get("model_version") or None, "path": str(path),
        "human_labels": {"path": str(human_path), "blind": blind, "saw_prelabel": len(got.human_labels) - blind},
        "rows": int(len(got.pairs)), "format": "conversational" if conversational else "text",
        "label_sources": {s.label: int((got.label_source == s).sum()) for s in LabelSource if (got.label_source == s).any()},
        "skipped_tasks": dict(got.skipped), "warnings": got.warnings,
        "pool": None if pool is None else {"pairs": len(pool["pairs"]), "in_label_studio": in_label_studio},
    }
    (out / "export_summary.json").write_text(json.dumps(summary, indent=1) + "\n", encoding="utf-8")
    return summary


def fetch_pool(client: Any, project_id: int, *, backend_url: str = "", basic_auth_user: str = "",
               basic_auth_pass: str = "", http: Any = None) -> dict[str, Any] | None:
    """A large project's pool from its backend (``GET /pool/<id>/pairs``), or None for a project without one.

    The backend is ``backend_url``, else the one connected to the project in Label Studio. A backend that does not
    answer, or answers an error other than 404 (no pool), stops the export when its URL was given; the connected one
    (perhaps a docker service name, or asking for a login not given) is named on stderr and the export goes on with
    Label Studio's tasks alone, as for a project without a pool.

    Raises
    ------
    SetupError
        The backend given by ``backend_url`` does not answer, or answers with an error other than 404.
    """
    import httpx

    url = backend_url
    if not url:
        connected = [b.get("url") for b in client.list_ml_backends(project_id) if b.get("url")]
        if not connected:
            return None
        url = connected[0]
    if http is None:
        http = httpx.Client(base_url=url, timeout=300.0,
                            auth=(basic_auth_user, basic_auth_pass) if basic_auth_user else None)
    problem = ""
    try:
        response = http.get(f"/pool/{int(project_id)}/pairs")
    except httpx.HTTPError as exc:
        problem = f"does not answer ({type(exc).__name__}: {exc})"
    else:
        if response.status_code == 404:
            return None
        if response.status_code == 200:
            return response.json()
        problem = f"answered HTTP {response.status_code} for the pool: {response.text[:300]}"
    if backend_url:
        raise SetupError(f"the backend at {url} {problem}; a large project's pairs are in its pool")
    print(f"rlthf export: the project's backend {url} {problem}, so a pool of pairs it may hold is not exported; "
          f"pass --backend-url with an address that reaches it (and --basic-auth-user with $BASIC_AUTH_PASS when it "
          f"asks for a login)", file=sys.stderr)
    return None


def run_export(args: argparse.Namespace) -> int:
    from ml_backend.label_studio_client import LabelStudioClient, LabelStudioError

    client = LabelStudioClient(args.url, args.api_key)
    try:
        pool = fetch_pool(client, args.project, backend_url=args.backend_url, basic_auth_user=args.basic_auth_user,
                          basic_auth_pass=os.environ.get("BASIC_AUTH_PASS", ""))
        summary = export_project(client, args.project, args.out, fmt=args.format, pool=pool)
    except (LabelStudioError, SetupError) as exc:
        print(f"rlthf export: error: {exc}", file=sys.stderr)
        return 1
    print(json.dumps(summary))
    if summary["skipped_tasks"]:
        print(f"rlthf export: left out {sum(summary['skipped_tasks'].values())} tasks: {summary['skipped_tasks']}", file=sys.stderr)
    return 0
