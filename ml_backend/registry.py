"""Projects known to this backend process: their state in memory, their reward model, their trainings.

A project's state is loaded from the model directory once and kept in memory; a request reads it
without touching the disk except for one ``stat`` that notices a newer version saved by another
process. Training replaces the state object whole (readers never see a half-updated one).
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Callable

from label_config import parse_label_config
from rlthf_selector.config import BackendConfig

from ml_backend.label_studio_client import LabelStudioClient, LabelStudioError
from ml_backend.pool import pool_path, read_pool, stand_in_tasks
from ml_backend.report_page import texts_for_report
from ml_backend.state import ProjectState, StateStore
from ml_backend.training import import_batch, make_reward_model, train_state, write_back

log = logging.getLogger(__name__)


class UnknownProject(LookupError):
    """A project this backend has not been set up for."""


@dataclass
class ProjectEntry:
    project_id: int
    state: ProjectState
    stamp: Any = None
    reward_model: Any = field(default=None, repr=False)
    status: str = "ready"
    message: str = ""
    # Credentials Label Studio passed to /setup (kept in memory only, never written or shown).
    hostname: str = field(default="", repr=False)
    access_token: str = field(default="", repr=False)
    counters: dict = field(default_factory=lambda: {"predict_tasks": 0, "webhooks": 0, "duplicates": 0, "trainings": 0})
    # Prompt and responses of the tasks the report page lists, from the last training (memory only).
    report_texts: dict = field(default_factory=dict, repr=False)
    # The pool of a large project (ml_backend.pool) and the file's (mtime, size) when read.
    pool: list = field(default_factory=list, repr=False)
    pool_stamp: Any = None


ClientFactory = Callable[[ProjectEntry], Any]


class ProjectRegistry:
    """The projects of one backend process.

    Parameters
    ----------
    config : BackendConfig
    store : StateStore
    client_factory : callable (ProjectEntry) -> client, optional
        Returns the Label Studio client for a project. Default: one client from ``LABEL_STUDIO_URL`` and
        ``LABEL_STUDIO_API_KEY``, else from the hostname and token Label Studio sent to ``/setup``.
    """

    def __init__(self, config: BackendConfig, store: StateStore, *, client_factory: ClientFactory | None = None) -> None:
        self.config = config
        self.store = store
        self._entries: dict[int, ProjectEntry] = {}
        self._lock = threading.Lock()
        self._clients: dict[tuple[str, str], LabelStudioClient] = {}
        self._client_factory = client_factory or self._default_client
        self._seen_clients: dict[int, Any] = {}

    # ------------------------------------------------------------------ lookup
    def get(self, project_id: int) -> ProjectEntry | None:
        """The project's entry (loaded from disk on first use, reloaded when another process saved)."""
        entry = self._entries.get(project_id)
        stamp = self.store.stamp(project_id)
        if entry is not None and (stamp is None or stamp == entry.stamp):
            return entry
        with self._lock:
            entry = self._entries.get(project_id)
            if entry is not None and (stamp is None or stamp == entry.stamp):
                return entry
            if stamp is None:
                return None
            state = self.store.load(project_id, with_reward_model=False)
            if state is None:
                return entry
            if entry is None:
                entry = ProjectEntry(project_id, state, stamp)
                self._entries[project_id] = entry
            else:
                entry.state, entry.stamp, entry.reward_model = state, stamp, None
            return entry

    def require(self, project_id: int) -> ProjectEntry:
        entry = self.get(project_id)
        if entry is None:
            raise UnknownProject(
                f"project {project_id} is not set up on this backend: connect the backend to it in Label Studio "
                "(project settings > Model) or POST /setup"
            )
        return entry

    def project_ids(self) -> list[int]:
        return sorted(set(self._entries) | set(self.store.project_ids()))

    # ------------------------------------------------------------------ setup
    def setup(self, project_id: int, label_config: str, *, hostname: str = "", access_token: str = "") -> tuple[ProjectEntry, bool]:
        """Register a project (or update its config); returns the entry and whether it is new.

        Raises
        ------
        label_config.LabelConfigError
            When the config holds no pairwise preference control (nothing is stored then).
        """
        parse_label_config(label_config)
        entry = self.get(project_id)
        created = entry is None
        if entry is None:
            state = ProjectState(project_id=project_id, label_config=label_config,
                                 model_version=f"{self.config.model_version_prefix}0")
            self.store.save(state)
            with self._lock:
                entry = self._entries.get(project_id) or ProjectEntry(project_id, state, self.store.stamp(project_id))
                self._entries[project_id] = entry
        elif entry.state.label_config != label_config:
            # The config changed in Label Studio: serve with the new one from now on.
            state = entry.state
            new = ProjectState(**{**state.scalars(), "label_config": label_config}, **state.arrays())
            self.store.save(new)
            entry.state, entry.stamp = new, self.store.stamp(project_id)
        if hostname:
            entry.hostname = hostname
        if access_token:
            entry.access_token = access_token
        return entry, created

    # ------------------------------------------------------------------ Label Studio
    def _default_client(self, entry: ProjectEntry) -> LabelStudioClient:
        url, key = self.config.label_studio_url, self.config.label_studio_api_key
        if not (url and key):
            url, key = entry.hostname, entry.access_token
        if not (url and key):
            raise LabelStudioError(
                "no Label Studio credentials: set LABEL_STUDIO_URL and LABEL_STUDIO_API_KEY for the backend"
            )
        with self._lock:
            client = self._clients.get((url, key))
            if client is None:
                client = LabelStudioClient(url, key, timeout=self.config.ls_timeout_s, retries=self.config.ls_retries)
                self._clients[(url, key)] = client
            return client

    def client_for(self, entry: ProjectEntry) -> Any:
        client = self._client_factory(entry)
        self._seen_clients[id(client)] = client
        return client

    def label_studio_status(self) -> dict[str, Any]:
        """Reachability as seen by the last call of each client (no new call)."""
        configured = bool(self.config.label_studio_url and self.config.label_studio_api_key)
        clients = list(self._seen_clients.values())
        if not clients:
            return {"configured": configured, "state": "unknown" if configured else "unconfigured"}
        errors = [c.last_error for c in clients if getattr(c, "last_error", None)]
        return {
            "configured": configured,
            "state": "unreachable" if errors else "reachable",
            **({"last_error": errors[0]} if errors else {}),
        }

    # ------------------------------------------------------------------ pool (large projects)
    def pool_of(self, entry: ProjectEntry) -> list[dict[str, Any]]:
        """The project's pool (:mod:`ml_backend.pool`), read again only when the file changed; empty without one."""
        path = pool_path(self.store.project_dir(entry.project_id))
        try:
            st = path.stat()
        except FileNotFoundError:
            return []
        stamp = (st.st_mtime_ns, st.st_size)
        if entry.pool_stamp != stamp:
            entry.pool, entry.pool_stamp = read_pool(path.parent), stamp
        return entry.pool

    # ------------------------------------------------------------------ training (worker thread)
    def train(self, project_id: int, force: bool = False) -> dict[str, Any]:
        """One training of a project under its file lock; called by the worker only."""
        entry = self.require(project_id)
        with self.store.training_lock(project_id) as got:
            if not got:
                return {"status": "busy"}
            entry = self.get(project_id) or entry  # another process may have saved a newer version
            client = self.client_for(entry)
            project = client.get_project(project_id)
            label_config = project.get("label_config") or entry.state.label_config
            tasks = client.list_tasks(project_id)
            pool = self.pool_of(entry)
            # A large project's pool pairs that Label Studio does not hold train under stand-in ids (ml_backend.pool).
            training_tasks = list(tasks) + stand_in_tasks(pool, tasks) if pool else tasks
            done = self.store.writeback_done(project_id)
            previous = entry.state
            if entry.reward_model is None:
                entry.reward_model = make_reward_model(self.config.featurizer)
            entry.status = "training"
            started = time.perf_counter()
            try:
                outcome = train_state(
                    previous, training_tasks, label_config=label_config, reward_model=entry.reward_model,
                    budget=self.config.queue_budget, model_version_prefix=self.config.model_version_prefix, force=force,
                    control_share=self.config.control_share,
                    confidence=self.config.estimate_confidence,
                )
            except BaseException:
                entry.reward_model = None  # possibly half-fitted: start afresh next time
                entry.status = "error"
                raise
            result: dict[str, Any] = {"status": outcome.status, "seconds": round(time.perf_counter() - started, 3)}
            if outcome.status == "trained" and pool:
                outcome.state, imported = import_batch(client, outcome, label_config=label_config)
                tasks = list(tasks) + imported
                result["imported"] = len(imported)
            if outcome.status == "trained":
                self.store.save(outcome.state)
                entry.state, entry.stamp = outcome.state, self.store.stamp(project_id)
                entry.counters["trainings"] += 1
            entry.status, entry.message = ("waiting", outcome.message) if outcome.status == "waiting" else ("ready", "")
            state = entry.state
            entry.report_texts = texts_for_report(state, tasks)
            result.update(model_version=state.model_version, iteration=state.iteration)
            if outcome.message:
                result["message"] = outcome.message
            if self.config.writeback and state.trained and state.model_version not in done:
                data_by_task = {int(t["id"]): t.get("data") or {} for t in tasks}
                try:
                    result["writeback"] = write_back(client, state, data_by_task, all_regions=self.config.write_regions,
                                                    show_prelabels=self.config.show_prelabels)
                except LabelStudioError as exc:
                    log.error("write-back of %s to project %d failed: %s", state.model_version, project_id, exc)
                    result["writeback_pending"] = True
                    result["writeback_error"] = str(exc)
                else:
                    self.store.mark_writeback_done(project_id, state.model_version)
            return result
