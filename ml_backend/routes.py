"""The backend's HTTP routes, one small function each, speaking Label Studio's ML-backend protocol.

Routes: ``GET /health`` (open), ``POST /setup``, ``POST /predict``, ``POST /webhook``, ``POST /train``,
``GET /versions``, ``GET /metrics``, ``GET /report/<project_id>`` (an HTML page for people), ``GET /openapi.json``, and a
large project's pool: ``POST /pool/<project_id>``, ``GET /pool/<project_id>``, ``GET /pool/<project_id>/pairs``.
Every route but ``/health`` requires basic auth when ``BASIC_AUTH_USER`` is set. Each handler reads what it shares
with the others from ``current_app.extensions["rlthf"]`` (:class:`~ml_backend.app.Backend`). Requests never train:
``/webhook`` records the project as pending and returns; the process's
:class:`~ml_backend.worker.TrainingWorker` trains in the background.

Bad input gets a 4xx JSON ``{"error": "..."}`` naming the problem; nothing is stored then. Unexpected errors get a
500 with no stack trace (it goes to the log).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import logging
import math
import time
from typing import TYPE_CHECKING, Any, Mapping

from flask import Blueprint, Response, current_app, jsonify, request
from werkzeug.exceptions import HTTPException, RequestEntityTooLarge

from label_config import LabelConfigError, PreferenceControl, task_data_problems
from rlthf_selector.pairs import LabelSource, parse_label

from ml_backend.registry import ProjectEntry, UnknownProject
from ml_backend.training import shown_region

if TYPE_CHECKING:
    from ml_backend.app import Backend

log = logging.getLogger(__name__)

MODEL_CLASS = "RLTHFSelector"
ANNOTATION_EVENTS = ("ANNOTATION_CREATED", "ANNOTATION_UPDATED", "ANNOTATIONS_DELETED")
TRAIN_EVENTS = ("START_TRAINING",)
TASK_EVENTS = ("TASKS_CREATED", "TASKS_DELETED")
HANDLED_EVENTS = ANNOTATION_EVENTS + TRAIN_EVENTS + TASK_EVENTS

routes = Blueprint("rlthf", __name__)


class RequestError(Exception):
    """A client error: answered with ``status`` and ``{"error": message}``."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status
        self.message = message


def backend() -> Backend:
    """The :class:`~ml_backend.app.Backend` of the app serving this request."""
    return current_app.extensions["rlthf"]


def parse_project_id(value: Any, *, where: str = "project") -> int:
    """Label Studio sends a project as an int, ``"<id>.<timestamp>"`` or an object with ``id``."""
    if isinstance(value, Mapping):
        value = value.get("id")
    if isinstance(value, bool):
        value = None
    if isinstance(value, int) and value > 0:
        return value
    if isinstance(value, str):
        head = value.split(".", 1)[0].strip()
        if head.isdigit() and int(head) > 0:
            return int(head)
    raise RequestError(400, f"{where} must be a project id (int, '<id>.<timestamp>' or {{\"id\": ...}}), got {value!r}")


def body_json(*, required: bool = True) -> Any:
    """The request's JSON object; :class:`RequestError` names what is wrong with a body that is not one."""
    raw = request.get_data(cache=True)
    if not raw:
        if required:
            raise RequestError(400, "request body is empty: expected a JSON object")
        return {}
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise RequestError(400, f"request body is not UTF-8: invalid byte 0x{raw[exc.start]:02x} at position {exc.start}") from None
    try:
        body = json.loads(text)
    except json.JSONDecodeError as exc:
        raise RequestError(400, f"request body is not valid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}") from None
    if not isinstance(body, dict):
        raise RequestError(400, f"request body must be a JSON object, got {type(body).__name__}")
    return body


# ---------------------------------------------------------------------- errors and auth
def error(status: int, message: str) -> Response:
    """A JSON error answer, counted in ``/metrics``."""
    counts = backend().client_errors
    counts[str(status)] = counts.get(str(status), 0) + 1
    response = jsonify({"error": message, "status": status})
    response.status_code = status
    if status == 401:
        response.headers["WWW-Authenticate"] = 'Basic realm="rlthf-ml-backend"'
    return response


@routes.app_errorhandler(RequestError)
def request_error(exc: RequestError) -> Response:
    return error(exc.status, exc.message)


@routes.app_errorhandler(UnknownProject)
def unknown_project(exc: UnknownProject) -> Response:
    return error(404, str(exc))


@routes.app_errorhandler(LabelConfigError)
def bad_label_config(exc: LabelConfigError) -> Response:
    return error(422, f"label config not usable: {exc}")


@routes.app_errorhandler(RequestEntityTooLarge)
def too_large(exc: RequestEntityTooLarge) -> Response:
    return error(413, f"request body larger than the limit of {backend().config.max_body_mb:g} MB (RLTHF_MAX_BODY_MB)")


@routes.app_errorhandler(HTTPException)
def http_error(exc: HTTPException) -> Response:
    return error(exc.code or 500, exc.description or exc.name)


@routes.app_errorhandler(Exception)
def unexpected(exc: Exception) -> Response:
    log.exception("unexpected error on %s %s", request.method, request.path)
    return error(500, f"internal error ({type(exc).__name__}); see the backend log")


@routes.before_app_request
def authenticate() -> Response | None:
    """Count the request; ask for basic auth on every route but ``/health`` when a user is configured."""
    shared = backend()
    config = shared.config
    shared.requests[request.path] = shared.requests.get(request.path, 0) + 1
    if request.path == "/health" or not config.basic_auth_user:
        return None
    if _credentials_ok(request.headers.get("Authorization", ""), config.basic_auth_user, config.basic_auth_pass):
        return None
    return error(401, "authentication required: send basic auth with BASIC_AUTH_USER/BASIC_AUTH_PASS")


# ---------------------------------------------------------------------- routes
@routes.get("/health")
def health() -> Response:
    shared = backend()
    return jsonify(
        status="UP", model_class=MODEL_CLASS, label_studio=shared.registry.label_studio_status(),
        worker={"alive": shared.worker.alive}, projects=len(shared.registry.project_ids()),
    )


@routes.post("/setup")
def setup() -> Response:
    shared = backend()
    body = body_json()
    pid = parse_project_id(body.get("project"))
    schema = body.get("schema", body.get("label_config"))
    if not isinstance(schema, str) or not schema.strip():
        raise RequestError(400, "setup needs 'schema': the project's labeling config XML")
    hostname = body.get("hostname") if isinstance(body.get("hostname"), str) else ""
    token = body.get("access_token") if isinstance(body.get("access_token"), str) else ""
    entry, created = shared.registry.setup(pid, schema, hostname=hostname, access_token=token)
    if (created or not entry.state.trained) and shared.can_train(entry):
        shared.worker.submit(pid, immediate=True)
    return jsonify(model_version=entry.state.model_version)


@routes.post("/predict")
def predict() -> Response:
    shared = backend()
    body = body_json()
    tasks, pid, label_config = _predict_request(body)
    entry = shared.registry.get(pid)
    if entry is None:
        if not label_config:
            raise UnknownProject(f"project {pid} is not set up on this backend: call /setup first")
        entry, _ = shared.registry.setup(pid, label_config)
        if shared.can_train(entry):
            shared.worker.submit(pid, immediate=True)
    control = shared.control(label_config or entry.state.label_config)
    state = entry.state
    entry.counters["predict_tasks"] += len(tasks)
    results = [_prediction(state, control, task, show_prelabels=shared.config.show_prelabels) for task in tasks]
    return jsonify(results=results, model_version=state.model_version)


@routes.post("/webhook")
def webhook() -> Response:
    shared = backend()
    started = time.perf_counter()
    body = body_json()
    action = body.get("action")
    if not isinstance(action, str) or not action:
        raise RequestError(400, "webhook body needs 'action' (e.g. ANNOTATION_CREATED)")
    if action not in HANDLED_EVENTS:
        log.info("webhook %s: ignored", action)
        return jsonify(status="ignored", action=action)
    if "project" not in body:
        raise RequestError(400, f"{action} webhook needs 'project'")
    pid = parse_project_id(body.get("project"))
    key = _event_key(action, pid, body)
    entry = _webhook_entry(shared, pid, body.get("project"))
    entry.counters["webhooks"] += 1
    if key is not None and not shared.seen.add(key):
        entry.counters["duplicates"] += 1
        log.info("webhook %s for project %d: duplicate, in %.1f ms", action, pid, 1000 * (time.perf_counter() - started))
        return jsonify(status="duplicate", action=action, project=pid)
    force = action in TRAIN_EVENTS
    shared.worker.submit(pid, force=force, immediate=force)
    log.info("webhook %s for project %d: retrain queued, in %.1f ms", action, pid, 1000 * (time.perf_counter() - started))
    return jsonify(status="queued", action=action, project=pid)


@routes.post("/train")
def train() -> Response:
    # Label Studio without the START_TRAINING webhook flag posts here; same effect.
    shared = backend()
    pid = parse_project_id(body_json().get("project"))
    entry = shared.registry.require(pid)
    shared.worker.submit(pid, force=True, immediate=True)
    return jsonify(status="queued", project=pid, model_version=entry.state.model_version)


@routes.get("/versions")
def versions() -> Response:
    registry = backend().registry
    raw = request.args.get("project")
    if raw is None:
        raw = body_json(required=False).get("project")
    if raw is not None:
        entry = registry.require(parse_project_id(raw))
        return jsonify(versions=_versions_of(entry), model_version=entry.state.model_version)
    out = set()
    for pid in registry.project_ids():
        entry = registry.get(pid)
        if entry:
            out.update(_versions_of(entry))
    return jsonify(versions=sorted(out))


@routes.get("/metrics")
def metrics() -> Response:
    shared = backend()
    projects = {}
    for pid in shared.registry.project_ids():
        entry = shared.registry.get(pid)
        if entry is not None:
            projects[str(pid)] = _project_metrics(entry, shared)
    return jsonify(
        uptime_s=round(time.time() - shared.started, 1), model_class=MODEL_CLASS,
        label_studio=shared.registry.label_studio_status(), worker=shared.worker.status(),
        requests=dict(shared.requests), client_errors=dict(shared.client_errors), projects=projects,
    )


@routes.get("/report/<int:project_id>")
def report(project_id: int) -> Response:
    return Response(_report_html(backend(), project_id), mimetype="text/html")


@routes.post("/pool/<int:project_id>")
def pool_upload(project_id: int) -> Response:
    """A chunk of a large project's pool (``{"pairs": [task data, ...]}``); pairs already there are left as they are."""
    from ml_backend.pool import add_to_pool, check_pool_records

    try:
        records = check_pool_records(body_json().get("pairs"))
    except ValueError as exc:
        raise RequestError(400, str(exc)) from None
    shared = backend()
    counts = add_to_pool(shared.store.project_dir(project_id), records, known_ids=shared.pool_ids)
    log.info("pool of project %d: %d pairs added, %d already there, %d in all", project_id, counts["added"],
             counts["already_there"], counts["pairs"])
    return jsonify(project=project_id, **counts)


@routes.get("/pool/<int:project_id>")
def pool_status(project_id: int) -> Response:
    """The pool's size and the training that last chose a batch from it (404 for a project without a pool)."""
    shared = backend()
    entry, pool = _pool_of(shared, project_id)
    state = entry.state if entry is not None else None
    in_ls = int((state.task_ids > 0).sum()) if state is not None and state.trained else 0
    return jsonify(project=project_id, pairs=len(pool), iteration=state.iteration if state is not None else 0,
                   model_version=state.model_version if state is not None else None, in_label_studio=in_ls)


@routes.get("/pool/<int:project_id>/pairs")
def pool_pairs(project_id: int) -> Response:
    """Every pool pair with the label the last training gave it (``"a"``/``"b"``, or null before one), for
    ``rlthf export`` to merge with Label Studio's human answers."""
    from rlthf_selector.pairs import format_label

    shared = backend()
    entry, pool = _pool_of(shared, project_id)
    state = entry.state if entry is not None else None
    label_of: dict[str, int] = {}
    if state is not None and state.trained:
        label_of = dict(zip((str(p) for p in state.pair_ids), (int(v) for v in state.labels)))
    pairs = [{"data": r, "label": format_label(label_of[r["pair_id"]]) if label_of.get(r["pair_id"]) else None}
             for r in pool]
    return jsonify(project=project_id, model_version=state.model_version if state is not None else None, pairs=pairs)


@routes.get("/openapi.json")
def openapi() -> Response:
    from ml_backend.openapi import openapi_spec

    return jsonify(openapi_spec())


# ---------------------------------------------------------------------- helpers
def _pool_of(shared: Backend, project_id: int) -> tuple[ProjectEntry | None, list]:
    """The project's entry (None before /setup) and pool; 404 for a project without a pool."""
    from ml_backend.pool import has_pool, read_pool

    pdir = shared.store.project_dir(project_id)
    if not has_pool(pdir):
        raise RequestError(404, f"project {project_id} has no pool on this backend (it holds all its pairs in Label Studio)")
    entry = shared.registry.get(project_id)
    return entry, (shared.registry.pool_of(entry) if entry is not None else read_pool(pdir))


def _predict_request(body: Mapping[str, Any]) -> tuple[list, int, str | None]:
    """The tasks, project id and label config of a ``/predict`` body, every task checked against the pairwise config.

    Raises
    ------
    RequestError
        Naming up to five problems.
    """
    tasks = body.get("tasks")
    if not isinstance(tasks, list):
        raise RequestError(400, "predict needs 'tasks': a list of Label Studio tasks")
    if "project" in body:
        pid = parse_project_id(body["project"])
    elif tasks and isinstance(tasks[0], dict) and "project" in tasks[0]:
        pid = parse_project_id(tasks[0]["project"], where="tasks[0].project")
    else:
        raise RequestError(400, "predict needs 'project' (or tasks carrying 'project')")
    label_config = body.get("label_config")
    if label_config is not None and not isinstance(label_config, str):
        raise RequestError(400, "label_config must be the labeling config XML string")
    problems = []
    for i, task in enumerate(tasks):
        if not isinstance(task, dict):
            problems.append(f"tasks[{i}] must be an object")
            continue
        tid = task.get("id")
        if isinstance(tid, bool) or not isinstance(tid, int):
            problems.append(f"tasks[{i}].id must be an integer, got {tid!r}")
        problems += [f"tasks[{i}].{p}" for p in task_data_problems(task.get("data"))]
        if len(problems) >= 5:
            break
    if problems:
        raise RequestError(422, "tasks do not match the pairwise config: " + "; ".join(problems[:5]))
    return tasks, pid, label_config


def _webhook_entry(shared: Backend, pid: int, project: Any) -> ProjectEntry:
    """The project a webhook is about, set up from the label config the webhook carries when it is new here."""
    entry = shared.registry.get(pid)
    if entry is not None:
        return entry
    label_config = project.get("label_config") if isinstance(project, dict) else None
    if not isinstance(label_config, str) or not label_config:
        raise UnknownProject(f"project {pid} is not set up on this backend: connect the backend in Label Studio first")
    return shared.registry.setup(pid, label_config)[0]


def _credentials_ok(header: str, user: str, password: str) -> bool:
    scheme, _, value = header.partition(" ")
    if scheme.lower() != "basic" or not value:
        return False
    try:
        decoded = base64.b64decode(value.strip(), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        return False
    got_user, sep, got_pass = decoded.partition(":")
    ok_user = hmac.compare_digest(got_user.encode(), user.encode())
    ok_pass = hmac.compare_digest(got_pass.encode(), password.encode())
    return bool(sep) and ok_user and ok_pass


def _event_key(action: str, pid: int, body: Mapping[str, Any]) -> str | None:
    """Identity of an annotation event, so a redelivered webhook is recognised (None = never dedupe)."""
    if action == "ANNOTATIONS_DELETED":
        anns = body.get("annotations")
        if not isinstance(anns, list):
            raise RequestError(400, "ANNOTATIONS_DELETED webhook needs 'annotations': a list of {id}")
        ids = sorted(str(a.get("id")) for a in anns if isinstance(a, dict))
        return f"{pid}:{action}:{','.join(ids)}"
    if action in ("ANNOTATION_CREATED", "ANNOTATION_UPDATED"):
        ann = body.get("annotation")
        if not isinstance(ann, dict) or "id" not in ann:
            raise RequestError(400, f"{action} webhook needs 'annotation' with an 'id'")
        digest = hashlib.sha256(json.dumps(ann.get("result"), sort_keys=True, default=str).encode()).hexdigest()[:16]
        return f"{pid}:{action}:{ann.get('id')}:{ann.get('updated_at')}:{ann.get('was_cancelled')}:{digest}"
    return None


def _prediction(state: Any, control: PreferenceControl, task: Mapping[str, Any], *,
                show_prelabels: bool = False) -> dict[str, Any]:
    """A task's prediction for ``/predict``. A queued task's carries no answer unless ``show_prelabels``, as the
    write-back's do: Label Studio asks ``/predict`` for tasks without a prediction, and a queued pair must still open
    with nothing pre-selected."""
    pos = state.position(task["id"]) if state.trained else None
    if pos is None:
        # Not trained yet, or a task imported after the last training: the AI prelabel.
        ai = parse_label(task["data"].get("ai_label"))
        return {
            "result": control.result(ai), "score": 0.5 if ai else 1.0, "model_version": state.model_version,
            "rlthf": {"region": "unscored", "label_source": LabelSource.AI.label if ai else LabelSource.NONE.label,
                      "reward_gap": None, "priority": None},
        }
    priority = state.priority[pos]
    blind = math.isfinite(priority) and not show_prelabels
    return {
        "result": [] if blind else control.result(int(state.labels[pos])),
        "score": float(state.score[pos]),
        "model_version": state.model_version,
        "rlthf": {
            "region": shown_region(state, pos),
            "label_source": LabelSource(int(state.label_source[pos])).label,
            "reward_gap": float(state.reward_gap[pos]),
            "priority": int(priority) if math.isfinite(priority) else None,
        },
    }


def _report_html(shared: Backend, project_id: int) -> str:
    """The report page of one project (:func:`ml_backend.report_page.render_report`); 404 for an unknown project."""
    from ml_backend.report_page import render_report

    entry = shared.registry.require(project_id)
    config = shared.config
    return render_report(entry.state, status=entry.status, texts=entry.report_texts, queue_budget=config.queue_budget,
                         confidence=config.estimate_confidence, label_studio_url=config.label_studio_url)


def _versions_of(entry: ProjectEntry) -> list[str]:
    versions = list(entry.state.versions)
    if entry.state.model_version and entry.state.model_version not in versions:
        versions.append(entry.state.model_version)
    return versions


def _project_metrics(entry: ProjectEntry, shared: Backend) -> dict[str, Any]:
    state = entry.state
    summary = state.summary or {}
    if "estimates" in summary:  # computed by the background training
        estimates, estimate_warnings = summary["estimates"], summary.get("estimate_warnings", [])
    elif state.trained:  # a state saved before live estimates: cheap to compute from its arrays
        from ml_backend.training import state_estimates

        estimates, estimate_warnings = state_estimates(state, confidence=shared.config.estimate_confidence)
    else:
        estimates, estimate_warnings = {}, []
    return {
        "iteration": state.iteration,
        "model_version": state.model_version,
        "status": entry.status,
        **({"message": entry.message} if entry.message else {}),
        "tasks": int(len(state.task_ids)),
        "human_labels": int((state.human_label != 0).sum()) if len(state.human_label) else 0,
        "regions": summary.get("regions", {}),
        "label_sources": summary.get("label_sources", {}),
        "band_unlabelled": summary.get("band_unlabelled"),
        "evidence_fields": summary.get("evidence_fields", []),
        "mistake_model": summary.get("mistake_model", {}),
        "draws": summary.get("draws", {}),
        "estimates": estimates,
        "estimate_warnings": estimate_warnings,
        "training_seconds": round(state.training_seconds, 3),
        "trained_at": state.trained_at or None,
        "warnings": len(state.warnings),
        "last_training": shared.worker.last_results.get(entry.project_id),
        **entry.counters,
    }
