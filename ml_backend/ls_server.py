"""Start and stop a headless Label Studio 1.23.2 from its own venv (``.venv-ls``), on 127.0.0.1.

Used by the end-to-end tests (``tests/conftest.py``) and ``make label-studio-demo``. The data directory is
migrated once (about a minute on two cores) and reused afterwards (a restart takes seconds). The user and
its legacy API token are created from environment variables on the first start only; later starts on the
same data directory reuse them, so keep the token with the data directory.

Command line::

    python -m ml_backend.ls_server --data-dir .cache/ls-data --port 8080   # runs until Ctrl-C, SIGTERM or SIGHUP
"""

from __future__ import annotations

import argparse
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
DEFAULT_VENV = REPO_ROOT / ".venv-ls"
DEFAULT_DATA_DIR = REPO_ROOT / ".cache" / "ls-data"
DEFAULT_USER = "rlthf@example.com"
DEFAULT_PASSWORD = "rlthf-password-1"
DEFAULT_TOKEN = "rlthf0123456789abcdef0123456789abcdef0123"

# Variables Label Studio reads with or without its LABEL_STUDIO_/HEARTEX_ prefixes: a stray USERNAME,
# HOST or PORT in the caller's environment would leak into it, so they are removed.
_LEAKY_ENV = ("USERNAME", "PASSWORD", "HOST", "PORT", "DEBUG", "DATA_DIR", "USER_TOKEN", "HOSTNAME")


class LabelStudioStartError(RuntimeError):
    """Label Studio could not be started (missing venv, early exit or no /health in time)."""


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def label_studio_executable(venv: Path | str = DEFAULT_VENV) -> Path:
    """The ``label-studio`` script of the venv; raises :class:`LabelStudioStartError` naming what is missing."""
    exe = Path(venv) / "bin" / "label-studio"
    if not exe.exists():
        raise LabelStudioStartError(
            f"{exe} not found: install Label Studio into its own venv first (make .venv-ls/.installed)"
        )
    return exe


@dataclass
class LabelStudioServer:
    """A running Label Studio process.

    Attributes
    ----------
    url : str
        ``http://127.0.0.1:<port>``.
    token : str
        Legacy API token of ``username`` (``Authorization: Token <token>``).
    """

    url: str
    token: str
    username: str
    password: str
    data_dir: Path
    process: subprocess.Popen = field(repr=False)
    log_path: Path = field(default=None)  # type: ignore[assignment]
    started_in_s: float = 0.0

    def stop(self, timeout: float = 20.0) -> None:
        """Stop the process (SIGTERM to its process group, then SIGKILL)."""
        if self.process.poll() is not None:
            return
        try:
            os.killpg(self.process.pid, signal.SIGTERM)
        except ProcessLookupError:
            return
        try:
            self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(10)

    def __enter__(self) -> "LabelStudioServer":
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def label_studio_env(
    data_dir: Path, *, username: str, password: str, token: str, base: dict | None = None
) -> dict[str, str]:
    """The environment that starts Label Studio headless, with SSRF protection off for 127.0.0.1 backends."""
    env = dict(os.environ if base is None else base)
    for key in _LEAKY_ENV:
        env.pop(key, None)
    env.update(
        LABEL_STUDIO_BASE_DATA_DIR=str(data_dir),
        LABEL_STUDIO_USERNAME=username,
        LABEL_STUDIO_PASSWORD=password,
        LABEL_STUDIO_USER_TOKEN=token,
        LABEL_STUDIO_ENABLE_LEGACY_API_TOKEN="true",
        SSRF_PROTECTION_ENABLED="false",
        ML_BLOCK_LOCAL_IP="false",
        LATEST_VERSION_CHECK="false",
        SENTRY_DSN="",
        FRONTEND_SENTRY_DSN="",
        COLLECT_ANALYTICS="false",
        LABEL_STUDIO_DISABLE_SIGNUP_WITHOUT_LINK="false",
        PYTHONUNBUFFERED="1",
    )
    return env


def wait_until(predicate, *, timeout: float, what: str, interval: float = 0.1):
    """Call ``predicate`` every ``interval`` seconds until it returns something truthy, and return that.

    Raises
    ------
    TimeoutError
        After ``timeout`` seconds, naming ``what`` was awaited.
    """
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise TimeoutError(f"timed out after {timeout:.0f} s waiting for {what}")


def wait_healthy(url: str, *, timeout: float, process: subprocess.Popen | None = None, log_path: Path | None = None) -> None:
    """Poll ``url/health`` until it answers 200; raise :class:`LabelStudioStartError` on timeout or exit."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            tail = log_path.read_text(errors="replace")[-3000:] if log_path and log_path.exists() else ""
            raise LabelStudioStartError(f"Label Studio exited with code {process.returncode}:\n{tail}")
        try:
            with urllib.request.urlopen(url.rstrip("/") + "/health", timeout=2) as resp:
                if resp.status == 200:
                    return
        except (urllib.error.URLError, OSError):
            pass
        time.sleep(0.5)
    raise LabelStudioStartError(f"Label Studio did not answer {url}/health within {timeout:.0f} s (log: {log_path})")


def start_label_studio(
    *,
    data_dir: Path | str = DEFAULT_DATA_DIR,
    port: int | None = None,
    venv: Path | str = DEFAULT_VENV,
    username: str = DEFAULT_USER,
    password: str = DEFAULT_PASSWORD,
    token: str = DEFAULT_TOKEN,
    timeout: float = 300.0,
    log_path: Path | str | None = None,
) -> LabelStudioServer:
    """Start Label Studio on 127.0.0.1 and wait for its /health.

    Parameters
    ----------
    data_dir : path
        SQLite database and media. Migrated on the first start, reused afterwards.
    port : int, optional
        Default: a free port.
    timeout : float
        Seconds to wait for /health (the first migration takes about a minute on two cores).

    Returns
    -------
    LabelStudioServer
        Stop it with ``.stop()`` or use it as a context manager.
    """
    exe = label_studio_executable(venv)
    data_dir = Path(data_dir).resolve()
    data_dir.mkdir(parents=True, exist_ok=True)
    port = port or free_port()
    log_path = Path(log_path) if log_path else data_dir / f"label-studio-{port}.log"
    env = label_studio_env(data_dir, username=username, password=password, token=token)
    cmd = [
        str(exe), "start", "--no-browser", "--internal-host", "127.0.0.1", "--port", str(port),
        "--data-dir", str(data_dir), "--username", username, "--password", password, "--user-token", token,
    ]
    started = time.monotonic()
    log = open(log_path, "wb")
    try:
        process = subprocess.Popen(cmd, env=env, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True)
    finally:
        log.close()
    server = LabelStudioServer(
        url=f"http://127.0.0.1:{port}", token=token, username=username, password=password,
        data_dir=data_dir, process=process, log_path=log_path,
    )
    try:
        wait_healthy(server.url, timeout=timeout, process=process, log_path=log_path)
    except BaseException:
        server.stop()
        raise
    server.started_in_s = time.monotonic() - started
    return server


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Run a headless Label Studio on 127.0.0.1 until interrupted.")
    parser.add_argument("--data-dir", default=str(DEFAULT_DATA_DIR))
    parser.add_argument("--port", type=int, default=8080)
    parser.add_argument("--venv", default=str(DEFAULT_VENV))
    parser.add_argument("--username", default=os.environ.get("RLTHF_LS_USER", DEFAULT_USER))
    parser.add_argument("--password", default=os.environ.get("RLTHF_LS_PASSWORD", DEFAULT_PASSWORD))
    parser.add_argument("--token", default=os.environ.get("RLTHF_LS_TOKEN", DEFAULT_TOKEN))
    args = parser.parse_args(argv)

    def stop(signum: int, frame: object) -> None:
        # Label Studio runs in a session of its own: without this, SIGTERM or SIGHUP would orphan it on its port.
        raise KeyboardInterrupt

    for stop_signal in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):  # SIGINT too: a background job ignores it
        signal.signal(stop_signal, stop)
    try:  # stopped while starting: start_label_studio has stopped it already
        server = start_label_studio(
            data_dir=args.data_dir, port=args.port, venv=args.venv,
            username=args.username, password=args.password, token=args.token,
        )
    except KeyboardInterrupt:
        return 0
    print(f"Label Studio at {server.url} (user {server.username}, ready in {server.started_in_s:.0f} s); "
          f"Ctrl-C, SIGTERM or SIGHUP stops it", flush=True)
    try:
        server.process.wait()
    except KeyboardInterrupt:
        pass
    finally:
        for stop_signal in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):  # a second signal must not cut this short
            signal.signal(stop_signal, signal.SIG_IGN)
        server.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
