"""The backend's Flask app: :class:`Backend` holds what the routes share (config, project registry, training
worker, counters) and :func:`create_app` puts one in ``app.extensions["rlthf"]`` beside the routes of
:mod:`ml_backend.routes`. Nothing lives at module level: two apps in one process (the tests make many) share nothing.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import OrderedDict
from functools import lru_cache
from typing import Callable

from label_config import parse_label_config
from rlthf_selector.config import BackendConfig

from ml_backend.registry import ProjectEntry, ProjectRegistry
from ml_backend.state import StateStore
from ml_backend.worker import TrainingWorker

log = logging.getLogger(__name__)


class _Seen:
    """A bounded set of recent webhook keys (duplicates are acknowledged without a second enqueue)."""

    def __init__(self, size: int = 20000):
        self._keys: OrderedDict[str, None] = OrderedDict()
        self._size = size
        self._lock = threading.Lock()

    def add(self, key: str) -> bool:
        """True when ``key`` is new."""
        with self._lock:
            if key in self._keys:
                self._keys.move_to_end(key)
                return False
            self._keys[key] = None
            if len(self._keys) > self._size:
                self._keys.popitem(last=False)
            return True


class Backend:
    """What the routes share: config, registry, worker, counters. ``app.extensions["rlthf"]``."""

    def __init__(self, config: BackendConfig, *, client_factory: Callable | None = None, start_worker: bool = True):
        self.config = config
        self.store = StateStore(config.model_dir, keep=config.keep_versions)
        self.registry = ProjectRegistry(config, self.store, client_factory=client_factory)
        self.worker = TrainingWorker(self._logged_train, debounce_s=config.debounce_s, max_wait_s=config.max_wait_s)
        self.seen = _Seen()
        self.started = time.time()
        self.requests: dict[str, int] = {}
        self.client_errors: dict[str, int] = {}
        # Each large project's pool pair ids, so a chunked upload reads the pool once (ml_backend.pool.add_to_pool).
        self.pool_ids: dict = {}
        #: The parsed label config of an XML string (``/predict`` parses the same few configs again and again).
        self.control = lru_cache(maxsize=64)(parse_label_config)
        self._has_credentials = client_factory is not None or bool(config.label_studio_url and config.label_studio_api_key)
        if start_worker:
            self.worker.start()
        # Catch up after a restart: annotations made while the backend was down, and a write-back that
        # had not finished, are picked up by one retrain per project (skipped when nothing changed).
        for pid in self.store.project_ids():
            entry = self.registry.get(pid)
            if entry is not None and self.can_train(entry):
                self.worker.submit(pid, immediate=True)

    def _logged_train(self, project_id: int, force: bool) -> dict:
        """:meth:`ProjectRegistry.train`, logged at INFO with its outcome and duration (failures: the worker logs them)."""
        started = time.perf_counter()
        result = self.registry.train(project_id, force)
        log.info("retrain of project %d%s: %s, model version %s, in %.2f s%s", project_id, " (forced)" if force else "",
                 result.get("status"), result.get("model_version", "-"), time.perf_counter() - started,
                 f"; write-back pending: {result['writeback_error']}" if result.get("writeback_pending") else "")
        return result

    def can_train(self, entry: ProjectEntry) -> bool:
        return self._has_credentials or bool(entry.hostname and entry.access_token)


def create_app(
    config: BackendConfig | None = None, *, client_factory: Callable | None = None, start_worker: bool = True
):
    """The Flask app of the backend: one :class:`Backend` in ``app.extensions["rlthf"]`` and the routes of
    :mod:`ml_backend.routes`.

    Parameters
    ----------
    config : BackendConfig, optional
        Default: :meth:`BackendConfig.from_env` (``MODEL_DIR``, ``LABEL_STUDIO_URL``, ...).
    client_factory : callable (ProjectEntry) -> Label Studio client, optional
        Tests inject a fake here; default: :class:`~ml_backend.label_studio_client.LabelStudioClient`.
    start_worker : bool
        Start the background training thread (tests may drive ``worker.run_due()`` themselves).
    """
    from flask import Flask

    from ml_backend.routes import routes

    config = config or BackendConfig.from_env()
    app = Flask("ml_backend")
    app.config["MAX_CONTENT_LENGTH"] = int(config.max_body_mb * 1024 * 1024)
    app.json.sort_keys = False
    app.extensions["rlthf"] = Backend(config, client_factory=client_factory, start_worker=start_worker)
    app.register_blueprint(routes)
    return app
