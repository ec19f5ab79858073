"""The background training worker: one thread per process, a per-project pending queue, debounced.

Webhooks only call :meth:`TrainingWorker.submit`, which records the project as pending and returns at
once. The thread trains a pending project when it has been quiet for ``debounce_s`` (or has waited
``max_wait_s`` under a continuous burst), one project at a time, so one process never trains a project
twice at once; the file lock in :class:`~ml_backend.state.StateStore` covers several processes.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass
from typing import Any, Callable

log = logging.getLogger(__name__)


@dataclass
class _Pending:
    first_at: float
    last_at: float
    force: bool
    not_before: float
    events: int = 1


class TrainingWorker:
    """Debounced background training.

    Parameters
    ----------
    train : callable (project_id: int, force: bool) -> dict
        Runs one training; returns a dict with ``status`` ("trained", "unchanged", "waiting", "busy").
        "busy" (another process holds the project's lock) and exceptions retry later with backoff.
    debounce_s : float
        Quiet time after the last event before training.
    max_wait_s : float
        Longest a pending project waits while events keep arriving.
    retry_s : float
        First wait after a failure or "busy"; doubles up to ``max_retry_s``.
    """

    def __init__(
        self,
        train: Callable[[int, bool], dict],
        *,
        debounce_s: float = 2.0,
        max_wait_s: float = 20.0,
        retry_s: float = 2.0,
        max_retry_s: float = 60.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._train = train
        self.debounce_s = float(debounce_s)
        self.max_wait_s = float(max_wait_s)
        self.retry_s = float(retry_s)
        self.max_retry_s = float(max_retry_s)
        self._clock = clock
        self._cond = threading.Condition()
        self._pending: dict[int, _Pending] = {}
        self._failures: dict[int, int] = {}
        self._running: int | None = None
        self._thread: threading.Thread | None = None
        self._stop = False
        self.trainings = 0
        self.errors = 0
        self.last_results: dict[int, dict] = {}

    # ------------------------------------------------------------------ producer side (request threads)
    def submit(self, project_id: int, *, force: bool = False, immediate: bool = False) -> None:
        """Mark a project pending (cheap; never blocks on a training)."""
        now = self._clock()
        with self._cond:
            p = self._pending.get(project_id)
            if p is None:
                start = now - self.debounce_s if immediate else now
                self._pending[project_id] = _Pending(first_at=start, last_at=start, force=force, not_before=now)
            else:
                p.last_at = now if not immediate else min(p.last_at, now - self.debounce_s)
                p.force = p.force or force
                p.events += 1
            self._cond.notify()

    # ------------------------------------------------------------------ consumer side
    def _due(self, now: float) -> tuple[int | None, float | None]:
        """The first due project and, if none is due, the seconds until the next one is."""
        best_wait: float | None = None
        for pid, p in self._pending.items():
            due_at = max(p.not_before, min(p.last_at + self.debounce_s, p.first_at + self.max_wait_s))
            if due_at <= now:
                return pid, None
            wait = due_at - now
            best_wait = wait if best_wait is None else min(best_wait, wait)
        return None, best_wait

    def run_due(self) -> list[int]:
        """Train every project that is due now, in this thread; the project ids trained."""
        done = []
        while True:
            with self._cond:
                pid, _ = self._due(self._clock())
                if pid is None:
                    return done
                job = self._pending.pop(pid)
                self._running = pid
            self._run_one(pid, job)
            done.append(pid)

    def _run_one(self, pid: int, job: _Pending) -> None:
        try:
            result = self._train(pid, job.force)
        except Exception as exc:  # keep serving the previous state; retry later
            self.errors += 1
            n = self._failures.get(pid, 0) + 1
            self._failures[pid] = n
            delay = min(self.retry_s * 2 ** (n - 1), self.max_retry_s)
            log.error("training of project %d failed (%s: %s); retry in %.0f s", pid, type(exc).__name__, exc, delay)
            self.last_results[pid] = {"status": "error", "error": f"{type(exc).__name__}: {exc}", "retry_in_s": delay}
            self._requeue(pid, job, delay)
        else:
            self.last_results[pid] = result
            if result.get("status") == "busy":
                self._requeue(pid, job, self.retry_s)
            else:
                self._failures.pop(pid, None)
                if result.get("status") == "trained":
                    self.trainings += 1
                if result.get("writeback_pending"):
                    self._requeue(pid, _Pending(job.first_at, job.last_at, False, 0.0), self.retry_s)
        finally:
            with self._cond:
                self._running = None
                self._cond.notify_all()

    def _requeue(self, pid: int, job: _Pending, delay: float) -> None:
        with self._cond:
            now = self._clock()
            p = self._pending.get(pid)
            if p is None:
                self._pending[pid] = _Pending(now - self.debounce_s, now - self.debounce_s, job.force, now + delay)
            else:  # new events arrived meanwhile: keep them, add the delay
                p.force = p.force or job.force
                p.not_before = max(p.not_before, now + delay)
            self._cond.notify()

    def _loop(self) -> None:
        while True:
            with self._cond:
                while not self._stop:
                    pid, wait = self._due(self._clock())
                    if pid is not None:
                        break
                    self._cond.wait(timeout=wait if wait is not None else 1.0)
                if self._stop:
                    return
            self.run_due()

    def start(self) -> None:
        if self._thread is not None and self._thread.is_alive():
            return
        self._stop = False
        self._thread = threading.Thread(target=self._loop, name="rlthf-training-worker", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 30.0) -> None:
        with self._cond:
            self._stop = True
            self._cond.notify_all()
        if self._thread is not None:
            self._thread.join(timeout)

    @property
    def alive(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def wait_idle(self, timeout: float = 30.0) -> bool:
        """Block until nothing is pending or running (True) or the timeout passes (False)."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while self._pending or self._running is not None:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._cond.wait(timeout=min(left, 0.2))
        return True

    def status(self) -> dict[str, Any]:
        with self._cond:
            return {
                "alive": self.alive,
                "running": self._running,
                "pending": sorted(self._pending),
                "trainings": self.trainings,
                "errors": self.errors,
            }
