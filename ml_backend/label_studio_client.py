"""Every call the project makes to Label Studio, in one place (label-studio-sdk 2.1.2).

The backend, the CLI and the tests talk to Label Studio only through :class:`LabelStudioClient`, which

- retries transport errors, 429 and 5xx with exponential backoff, and raises :class:`LabelStudioError`
  (or :class:`LabelStudioUnavailable` when Label Studio cannot be reached) with a message that never holds
  the API key;
- returns plain dicts shaped as Label Studio's JSON, so that a fake client in the tests is a small class;
- keeps track of whether Label Studio was reachable on the last call (``/health`` of the backend shows it).

Facts it relies on (measured, see docs/backend.md): ``PATCH /api/tasks/{id}`` replaces the whole data dict,
so :meth:`LabelStudioClient.update_task_data` must be given the merged dict; the labeling stream with
"Uncertainty sampling" serves the lowest prediction score among predictions of ``project.model_version``.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Any, Callable, Mapping, Sequence, TypeVar

log = logging.getLogger(__name__)

T = TypeVar("T")

SAMPLING_UNCERTAINTY = "Uncertainty sampling"


class LabelStudioError(RuntimeError):
    """A Label Studio API call failed. ``status_code`` is the HTTP status (None for transport errors)."""

    def __init__(self, message: str, *, status_code: int | None = None):
        super().__init__(message)
        self.status_code = status_code


class LabelStudioUnavailable(LabelStudioError):
    """Label Studio could not be reached (connection refused, timeout, 5xx) after all retries."""


def _to_dict(obj: Any) -> Any:
    """Plain JSON-like data from an SDK model (pydantic) or a list of them."""
    if obj is None or isinstance(obj, (str, int, float, bool)):
        return obj
    if isinstance(obj, Mapping):
        return {k: _to_dict(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_to_dict(v) for v in obj]
    for attr in ("model_dump", "dict"):
        fn = getattr(obj, attr, None)
        if callable(fn):
            try:
                return fn(mode="json", exclude_unset=True) if attr == "model_dump" else fn(exclude_unset=True)
            except TypeError:
                return fn()
    return obj


def _short(body: Any, limit: int = 300) -> str:
    text = body if isinstance(body, str) else repr(body)
    return text if len(text) <= limit else text[:limit] + "..."


def _error_text(body: Any) -> str:
    """What an error answer of Label Studio says, whole: its validation messages or ``detail`` (links as
    "text (url)"); other bodies cut at 2,000 characters."""
    import re

    if isinstance(body, Mapping):
        errors = body.get("validation_errors")
        messages: list[str] = []
        if isinstance(errors, Mapping):
            for field_name, value in errors.items():
                for message in value if isinstance(value, list) else [value]:
                    prefix = "" if field_name == "non_field_errors" else f"{field_name}: "
                    messages.append(prefix + str(message))
        elif body.get("detail"):
            messages.append(str(body["detail"]))
        if messages:
            text = " ".join(messages)
            if isinstance(errors, Mapping) and body.get("detail"):
                text = f"{body['detail']}: {text}"
            return re.sub(r'<a href="([^"]*)">([^<]*)</a>', r"\2 (\1)", text)
    return _short(body, 2000)


class LabelStudioClient:
    """A Label Studio server reached with an API token (legacy token or personal access token).

    Parameters
    ----------
    url : str
        Base URL, e.g. ``http://127.0.0.1:8080`` (in docker-compose: ``http://label-studio:8080``).
    api_key : str
        Legacy token (``Authorization: Token``) or personal access token (the SDK refreshes it).
    timeout : float
        Seconds per call.
    retries : int
        Extra tries after a transport error, 429 or 5xx; the wait doubles from ``backoff_s``.
    """

    def __init__(
        self,
        url: str,
        api_key: str,
        *,
        timeout: float = 30.0,
        retries: int = 4,
        backoff_s: float = 0.5,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if not url:
            raise ValueError("Label Studio URL is empty: set LABEL_STUDIO_URL or pass --url")
        if not api_key:
            raise ValueError("Label Studio API key is empty: set LABEL_STUDIO_API_KEY or pass --api-key")
        from label_studio_sdk import LabelStudio

        self.url = url.rstrip("/")
        self.retries = int(retries)
        self.backoff_s = float(backoff_s)
        self._sleep = sleep
        # Retries are ours (with backoff, and a record of reachability): the SDK's own are switched off.
        self._sdk = LabelStudio(base_url=self.url, api_key=api_key, timeout=timeout, max_retries=0)
        self._lock = threading.Lock()
        self.last_ok: float | None = None
        self.last_error: str | None = None
        self.last_error_at: float | None = None

    def __repr__(self) -> str:  # never shows the key
        return f"LabelStudioClient(url={self.url!r})"

    # ------------------------------------------------------------------ plumbing
    def _call(self, what: str, fn: Callable[[], T]) -> T:
        import httpx
        from label_studio_sdk.core.api_error import ApiError

        delay = self.backoff_s
        for attempt in range(self.retries + 1):
            try:
                out = fn()
            except ApiError as exc:
                status = exc.status_code or 0
                message = f"Label Studio {what} failed: HTTP {status}: {_error_text(exc.body)}"
                if status == 429 or status >= 500:
                    error: LabelStudioError = LabelStudioUnavailable(message, status_code=status)
                else:
                    self._mark_ok()  # it answered: it is reachable
                    raise LabelStudioError(message, status_code=status) from None
            except httpx.HTTPError as exc:
                error = LabelStudioUnavailable(f"Label Studio {what} failed: {type(exc).__name__}: {exc} ({self.url})")
            else:
                self._mark_ok()
                return out
            self._mark_error(str(error))
            if attempt < self.retries:
                log.warning("%s; retry %d/%d in %.1f s", error, attempt + 1, self.retries, delay)
                self._sleep(delay)
                delay *= 2
        raise error

    def _mark_ok(self) -> None:
        self.last_ok = time.time()
        self.last_error = None

    def _mark_error(self, message: str) -> None:
        self.last_error = message
        self.last_error_at = time.time()

    def _raw(self, method: str, path: str, *, params: Mapping[str, Any] | None = None, json: Any = None) -> Any:
        """One HTTP call through the SDK's authenticated client; the decoded JSON (None for an empty body)."""
        from label_studio_sdk.core.api_error import ApiError

        def go() -> Any:
            response = self._sdk._client_wrapper.httpx_client.request(
                path.lstrip("/"), method=method, params=dict(params or {}), json=json,
                request_options={"max_retries": 0},
            )
            if response.status_code >= 400:
                try:
                    body = response.json()
                except ValueError:
                    body = response.text
                raise ApiError(status_code=response.status_code, headers=dict(response.headers), body=body)
            if not response.content:
                return None
            return response.json()

        return self._call(f"{method} {path.split('?')[0]}", go)

    @property
    def reachable(self) -> bool | None:
        """True/False after the last call; None before any call."""
        if self.last_ok is None and self.last_error is None:
            return None
        return self.last_error is None

    # ------------------------------------------------------------------ server and projects
    def health(self) -> bool:
        """Whether ``/health`` answers (one try, no retries)."""
        try:
            import httpx

            ok = httpx.get(self.url + "/health", timeout=3).status_code == 200
        except Exception as exc:  # any transport problem means "not reachable"
            self._mark_error(f"Label Studio /health failed: {type(exc).__name__}")
            return False
        if ok:
            self._mark_ok()
        return ok

    def get_project(self, project_id: int) -> dict[str, Any]:
        return self._raw("GET", f"api/projects/{int(project_id)}")

    def list_projects(self) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        page = 1
        while True:
            body = self._raw("GET", "api/projects", params={"page": page, "page_size": 100})
            rows = body.get("results", []) if isinstance(body, dict) else body
            out.extend(rows)
            if not isinstance(body, dict) or not body.get("next"):
                return out
            page += 1

    def find_project(self, title: str) -> dict[str, Any] | None:
        """The first project with exactly this title, or None."""
        for project in self.list_projects():
            if project.get("title") == title:
                return project
        return None

    def create_project(
        self, title: str, label_config: str, *, description: str = "", show_predictions: bool = True
    ) -> dict[str, Any]:
        """Create a project. ``show_predictions`` is Label Studio's "Use predictions to prelabel tasks"
        (``show_collab_predictions``): off, the labeling stream opens every task with no answer selected."""
        return _to_dict(self._call("create project", lambda: self._sdk.projects.create(
            title=title, label_config=label_config, description=description, show_collab_predictions=show_predictions,
            request_options={"max_retries": 0})))

    def update_project(self, project_id: int, **fields: Any) -> dict[str, Any]:
        """PATCH project fields (``model_version``, ``sampling``, ...)."""
        return self._raw("PATCH", f"api/projects/{int(project_id)}", json=fields)

    def delete_project(self, project_id: int) -> None:
        self._raw("DELETE", f"api/projects/{int(project_id)}")

    def validate_label_config(self, project_id: int, label_config: str) -> None:
        """Raises :class:`LabelStudioError` when Label Studio rejects the config."""
        self._raw("POST", f"api/projects/{int(project_id)}/validate", json={"label_config": label_config})

    # ------------------------------------------------------------------ tasks, annotations, predictions
    def list_tasks(self, project_id: int, *, view: int | None = None, page_size: int = 500) -> list[dict[str, Any]]:
        """All tasks of a project (or of one of its Data Manager views, in its order) with their ``data``
        and ``annotations`` (all pages)."""
        out: list[dict[str, Any]] = []
        page = 1
        params: dict[str, Any] = {"project": int(project_id), "fields": "all", "page_size": page_size}
        if view is not None:
            params["view"] = int(view)
        while True:
            try:
                body = self._raw("GET", "api/tasks", params={**params, "page": page})
            except LabelStudioError as exc:
                if exc.status_code == 404 and page > 1:  # past the last page
                    return out
                raise
            rows = body.get("tasks", []) if isinstance(body, dict) else body
            out.extend(rows)
            total = body.get("total") if isinstance(body, dict) else None
            if not rows or len(rows) < page_size or (total is not None and len(out) >= total):
                return out
            page += 1

    def import_tasks(self, project_id: int, tasks: Sequence[Mapping[str, Any]]) -> list[int]:
        """Import tasks (each ``{"data": {...}, "predictions": [...]}``); their new ids in order."""
        body = self._raw(
            "POST", f"api/projects/{int(project_id)}/import", params={"return_task_ids": "true"}, json=list(tasks)
        )
        ids = body.get("task_ids") if isinstance(body, dict) else None
        if ids is None or len(ids) != len(tasks):
            raise LabelStudioError(f"import of {len(tasks)} tasks returned {0 if ids is None else len(ids)} task ids")
        return [int(i) for i in ids]

    def update_task_data(self, task_id: int, data: Mapping[str, Any]) -> None:
        """PATCH a task's data. Label Studio replaces the whole dict: pass the merged dict, never a part."""
        self._raw("PATCH", f"api/tasks/{int(task_id)}", json={"data": dict(data)})

    def import_predictions(self, project_id: int, predictions: Sequence[Mapping[str, Any]]) -> int:
        """Bulk-create predictions, each ``{"task", "result", "score", "model_version"}``; returns the count."""
        total = 0
        for start in range(0, len(predictions), 1000):
            chunk = [dict(p) for p in predictions[start : start + 1000]]
            body = self._raw("POST", f"api/projects/{int(project_id)}/import/predictions", json=chunk)
            total += int(body.get("created", len(chunk))) if isinstance(body, dict) else len(chunk)
        return total

    def delete_tasks(self, project_id: int, task_ids: Sequence[int]) -> int:
        """Delete these tasks of the project (their annotations and predictions with them); the count deleted."""
        body = self._raw(
            "POST", "api/dm/actions", params={"id": "delete_tasks", "project": int(project_id)},
            json={"selectedItems": {"all": False, "included": [int(t) for t in task_ids]}},
        )
        return int(body.get("processed_items", len(task_ids))) if isinstance(body, dict) else len(task_ids)

    def delete_unlabeled_task_predictions(self, project_id: int) -> int:
        """Delete every prediction of the project's tasks that have no submitted annotation; the count deleted.

        The Data Manager action ``delete_tasks_predictions`` over the tasks with ``total_annotations == 0``, chosen
        by Label Studio at the moment of the call. Predictions of annotated tasks are kept: an annotation's
        ``parent_prediction`` (the pre-annotation it started from) would be cleared with them.
        """
        body = self._raw(
            "POST", "api/dm/actions", params={"id": "delete_tasks_predictions", "project": int(project_id)},
            json={"filters": {"conjunction": "and", "items": [
                {"filter": "filter:tasks:total_annotations", "operator": "equal", "type": "Number", "value": 0}]},
                  "selectedItems": {"all": True, "excluded": []}},
        )
        return int(body.get("processed_items", 0)) if isinstance(body, dict) else 0

    def prediction_counts(self, project_id: int) -> dict[str, int]:
        """The number of predictions per model version in the project."""
        return {str(k): int(v) for k, v in (self._raw("GET", f"api/projects/{int(project_id)}/model-versions/") or {}).items()}

    def create_annotation(self, task_id: int, result: list[dict[str, Any]], *, was_cancelled: bool = False) -> dict[str, Any]:
        """Submit an annotation as the token's user would from the labeling stream."""
        return self._raw(
            "POST", f"api/tasks/{int(task_id)}/annotations",
            json={"result": result, "was_cancelled": was_cancelled, "task": int(task_id)},
        )

    def update_annotation(self, annotation_id: int, result: list[dict[str, Any]]) -> dict[str, Any]:
        return self._raw("PATCH", f"api/annotations/{int(annotation_id)}", json={"result": result})

    def delete_annotation(self, annotation_id: int) -> None:
        self._raw("DELETE", f"api/annotations/{int(annotation_id)}")

    def next_task(self, project_id: int, *, view: int | None = None) -> dict[str, Any] | None:
        """The task the labeling stream serves next to the token's user (None when none is left)."""
        try:
            return self._raw("GET", f"api/projects/{int(project_id)}/next", params={"view": view} if view else None)
        except LabelStudioError as exc:
            if exc.status_code == 404:
                return None
            raise

    def export_tasks(self, project_id: int, *, all_tasks: bool = True) -> list[dict[str, Any]]:
        """The JSON export: tasks with ``data``, ``annotations`` (skipped ones included) and ``predictions``."""
        return self._raw(
            "GET", f"api/projects/{int(project_id)}/export",
            params={"exportType": "JSON", "download_all_tasks": "true" if all_tasks else "false"},
        )

    # ------------------------------------------------------------------ views, ML backends, webhooks
    def list_views(self, project_id: int) -> list[dict[str, Any]]:
        return self._raw("GET", "api/dm/views", params={"project": int(project_id)})

    def ensure_view(self, project_id: int, title: str, data: Mapping[str, Any]) -> int:
        """Create the Data Manager view ``title`` or update the existing one; its id.

        An existing view whose data already holds ``data`` is left alone, so what a person changed beside it (column
        widths, say) stays.
        """
        payload = {"project": int(project_id), "data": {"title": title, **dict(data)}}
        for view in self.list_views(project_id):
            current = view.get("data") or {}
            if current.get("title") == title:
                if any(current.get(k) != v for k, v in payload["data"].items()):
                    self._raw("PATCH", f"api/dm/views/{int(view['id'])}", json=payload)
                return int(view["id"])
        return int(self._raw("POST", "api/dm/views", json=payload)["id"])

    def list_ml_backends(self, project_id: int) -> list[dict[str, Any]]:
        return self._raw("GET", "api/ml", params={"project": int(project_id)})

    def connect_ml_backend(
        self, project_id: int, url: str, *, title: str = "RLTHF", basic_auth_user: str = "", basic_auth_pass: str = ""
    ) -> dict[str, Any]:
        """Connect an ML backend (``POST /api/ml``), or return the one already connected at ``url``.

        Label Studio calls the backend's ``/setup`` and creates a webhook to ``<url>/webhook``.
        """
        for backend in self.list_ml_backends(project_id):
            if backend.get("url", "").rstrip("/") == url.rstrip("/"):
                return backend
        payload: dict[str, Any] = {"project": int(project_id), "url": url, "title": title, "is_interactive": False}
        if basic_auth_user:
            payload.update(auth_method="BASIC_AUTH", basic_auth_user=basic_auth_user, basic_auth_pass=basic_auth_pass)
        return self._raw("POST", "api/ml", json=payload)

    def train(self, ml_backend_id: int) -> None:
        """Ask Label Studio to send START_TRAINING (or /train) to the backend."""
        self._raw("POST", f"api/ml/{int(ml_backend_id)}/train", json={})

    def list_webhooks(self, project_id: int) -> list[dict[str, Any]]:
        return self._raw("GET", "api/webhooks", params={"project": int(project_id)})

    def ensure_webhook(self, project_id: int, url: str, *, headers: Mapping[str, str] | None = None) -> dict[str, Any]:
        """Make sure a webhook to ``url`` exists for all actions, carrying ``headers`` (e.g. basic auth)."""
        payload = {
            "project": int(project_id), "url": url, "send_payload": True, "send_for_all_actions": True,
            "headers": dict(headers or {}), "is_active": True,
        }
        for hook in self.list_webhooks(project_id):
            if hook.get("url", "").rstrip("/") == url.rstrip("/"):
                return self._raw("PATCH", f"api/webhooks/{int(hook['id'])}", json=payload)
        return self._raw("POST", "api/webhooks", json=payload)


def make_client_factory(url: str, api_key: str, **kw: Any) -> Callable[[], LabelStudioClient]:
    """A zero-argument factory creating one shared client lazily (the backend holds the factory)."""
    holder: list[LabelStudioClient] = []
    lock = threading.Lock()

    def factory() -> LabelStudioClient:
        with lock:
            if not holder:
                holder.append(LabelStudioClient(url, api_key, **kw))
            return holder[0]

    return factory
