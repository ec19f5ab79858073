"""A judge behind any OpenAI-compatible ``/chat/completions`` endpoint (OpenAI, vLLM, Ollama, llama.cpp, ...).

Standard library only (``urllib``), so prelabeling needs no extra dependency. Thread-safe: the runner calls
:meth:`OpenAIJudge.judge_order` from several threads.

Retries: HTTP 408, 409, 425, 429 and 5xx, timeouts, dropped connections and unreadable response bodies are
retried with exponential backoff and full jitter; a ``Retry-After`` header is honoured, and pauses every
thread of this judge, not just the one that received it. 401, 403 and 404 stop the run
(:class:`JudgeFatalError`); other 4xx answers fail only the pair at hand.

The API key is sent in the ``Authorization`` header and nowhere else: it is never logged, never part of an
exception message, and scrubbed from any server text that is quoted in one.
"""

from __future__ import annotations

import email.utils
import http.client
import json
import logging
import random
import socket
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from typing import Any, Callable

from rlthf_selector.judge.base import JudgeFatalError, OrderVerdict, PairJudge
from rlthf_selector.judge.prompts import PromptTemplate, first_position_probability, parse_verdict

logger = logging.getLogger(__name__)

RETRY_STATUS = frozenset({408, 409, 425, 429, 500, 502, 503, 504, 520, 521, 522, 524, 529})
FATAL_STATUS = frozenset({401, 403, 404})
_RAW_KEEP = 300  # characters of an answer kept for inspection
_MAX_RETRY_AFTER = 600.0


class _Retryable(Exception):
    def __init__(self, message: str, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class _PairRejected(Exception):
    """A 4xx answer about this request only (e.g. the pair is too long for the model's context)."""


def parse_retry_after(value: str | None, *, now: float | None = None) -> float | None:
    """Seconds to wait from a ``Retry-After`` header (delta-seconds or an HTTP date); None if absent or bad."""
    if not value:
        return None
    value = value.strip()
    try:
        seconds = float(value)
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(value)
        except (TypeError, ValueError):
            return None
        if when is None:
            return None
        seconds = when.timestamp() - (time.time() if now is None else now)
    return min(max(seconds, 0.0), _MAX_RETRY_AFTER)


def backoff_delay(attempt: int, *, base: float, cap: float, rng: random.Random) -> float:
    """Exponential backoff with full jitter: uniform in ``[0, min(cap, base * 2**attempt)]``."""
    return rng.uniform(0.0, min(cap, base * (2.0**attempt)))


class OpenAIJudge(PairJudge):
    """Judge pairs with a model behind an OpenAI-compatible chat-completions API.

    Parameters
    ----------
    model : str
        Model name sent to the server; also the judge's name in ``judge_labels``.
    base_url : str
        API root, e.g. ``https://api.openai.com/v1`` or ``http://localhost:8000/v1`` (vLLM) or
        ``http://localhost:11434/v1`` (Ollama). ``/chat/completions`` is appended.
    api_key : str or None
        Bearer token; None = no ``Authorization`` header (local servers).
    template : PromptTemplate
        The prompt.
    timeout : float
        Seconds to wait on a connection or read before retrying.
    max_retries : int
        Retries per request after the first attempt (transport errors, 429, 5xx).
    backoff_base, backoff_max : float
        Backoff before retry k is uniform in ``[0, min(backoff_max, backoff_base * 2**k)]``.
    temperature : float
    max_tokens : int
        Completion budget; raise it for models that reason before answering.
    logprobs : bool
        Ask for token log-probabilities (``top_logprobs`` alternatives) to derive a confidence. Turned off
        by itself if the server rejects the option.
    top_logprobs : int
    extra_body : dict, optional
        Additional JSON fields sent with every request.
    sleep : callable
        ``time.sleep``; replaceable in tests.
    seed : int, optional
        Seed of the backoff jitter.
    api_key_env : str, optional
        Name of the environment variable the key came from, for error messages.
    """

    max_concurrency = 1024

    def __init__(
        self,
        model: str,
        *,
        base_url: str = "https://api.openai.com/v1",
        api_key: str | None = None,
        template: PromptTemplate | None = None,
        timeout: float = 60.0,
        max_retries: int = 6,
        backoff_base: float = 1.0,
        backoff_max: float = 60.0,
        temperature: float = 0.0,
        max_tokens: int = 16,
        logprobs: bool = True,
        top_logprobs: int = 5,
        extra_body: dict[str, Any] | None = None,
        sleep: Callable[[float], None] = time.sleep,
        seed: int | None = None,
        api_key_env: str | None = None,
    ) -> None:
        if not model:
            raise ValueError("model name is empty")
        parsed = urllib.parse.urlparse(base_url)
        if parsed.scheme not in ("http", "https") or not parsed.netloc:
            raise ValueError(f"base URL {base_url!r} is not an http(s) URL")
        self.name = model
        self.model = model
        self.base_url = base_url.rstrip("/")
        self.url = self.base_url + "/chat/completions"
        self._api_key = api_key or None
        self.api_key_env = api_key_env
        self.template = template or PromptTemplate()
        self.timeout = float(timeout)
        self.max_retries = int(max_retries)
        self.backoff_base = float(backoff_base)
        self.backoff_max = float(backoff_max)
        self.temperature = float(temperature)
        self.max_tokens = int(max_tokens)
        self.logprobs = bool(logprobs)
        self.top_logprobs = int(top_logprobs)
        self.extra_body = dict(extra_body or {})
        self._sleep = sleep
        self._rng = random.Random(seed)
        self._lock = threading.Lock()
        self._pause_until = 0.0
        # Loopback servers are reached directly even when a proxy is configured for the outside world.
        handlers: list[Any] = []
        if parsed.hostname in ("127.0.0.1", "localhost", "::1"):
            handlers.append(urllib.request.ProxyHandler({}))
        self._opener = urllib.request.build_opener(*handlers)

    def __repr__(self) -> str:  # never shows the key
        return (
            f"OpenAIJudge(model={self.model!r}, base_url={self.base_url!r}, key={'set' if self._api_key else 'none'})"
        )

    def signature(self) -> dict[str, Any]:
        # Log-probabilities change the confidence, not the verdict, so they are not part of the key.
        return {
            "kind": "openai-chat",
            "model": self.model,
            "template": self.template.sha256,
            "temperature": self.temperature,
            "max_tokens": self.max_tokens,
            "extra_body": self.extra_body,
        }

    # ------------------------------------------------------------------------------------------ judging

    def judge_order(self, prompt: str, first: str, second: str) -> OrderVerdict:
        usage = {"prompt_tokens": 0, "completion_tokens": 0}
        attempts = 0
        raw = ""
        for strict in (False, True):
            body = self._request_body(self.template.messages(prompt, first, second, strict=strict))
            try:
                response, n = self._post_with_retries(body)
            except _PairRejected as exc:
                return OrderVerdict(
                    None, reason=f"request_failed: {exc}", usage=usage, attempts=attempts + 1, cacheable=False
                )
            except _Retryable as exc:
                attempts += self.max_retries + 1
                return OrderVerdict(
                    None,
                    reason=f"request_failed: {exc} (after {self.max_retries + 1} attempts)",
                    usage=usage,
                    attempts=attempts,
                    cacheable=False,
                )
            attempts += n
            for key in usage:
                usage[key] += int((response.get("usage") or {}).get(key) or 0)
            content, logprobs = _first_choice(response)
            raw = (content or "")[:_RAW_KEEP]
            verdict = parse_verdict(content)
            if verdict is not None:
                return OrderVerdict(
                    verdict,
                    p_first=first_position_probability(logprobs, verdict),
                    raw=raw,
                    usage=usage,
                    attempts=attempts,
                )
            logger.debug(
                "%s: unreadable answer %r%s", self.model, raw[:80], "" if strict else "; asking again, strictly"
            )
        return OrderVerdict(
            None,
            reason=f"malformed: answer names neither A nor B: {raw[:80]!r}",
            raw=raw,
            usage=usage,
            attempts=attempts,
        )

    def _request_body(self, messages: list[dict[str, str]]) -> dict[str, Any]:
        body: dict[str, Any] = {
            "model": self.model,
            "messages": messages,
            "temperature": self.temperature,
            "max_tokens": self.max_tokens,
        }
        if self.logprobs:
            body["logprobs"] = True
            body["top_logprobs"] = self.top_logprobs
        body.update(self.extra_body)
        return body

    def _post_with_retries(self, body: dict[str, Any]) -> tuple[dict[str, Any], int]:
        """POST ``body``; returns (parsed response, attempts). Raises _Retryable once retries run out."""
        attempt = 0
        while True:
            self._wait_for_pause()
            try:
                return self._post_once(body), attempt + 1
            except _LogprobsRejected:
                # Happens at most once: the option is dropped for this and every later request.
                logger.warning("%s rejected the logprobs option; continuing without log-probabilities", self.base_url)
                self.logprobs = False
                body = {k: v for k, v in body.items() if k not in ("logprobs", "top_logprobs")}
                continue
            except _Retryable as exc:
                if attempt >= self.max_retries:
                    raise
                delay = backoff_delay(attempt, base=self.backoff_base, cap=self.backoff_max, rng=self._rng)
                if exc.retry_after is not None:
                    delay = max(delay, exc.retry_after)
                    with self._lock:  # everyone waits out a rate limit, not just this thread
                        self._pause_until = max(self._pause_until, time.monotonic() + exc.retry_after)
                logger.debug("%s: %s; retry %d in %.2fs", self.model, exc, attempt + 1, delay)
                self._sleep(delay)
                attempt += 1

    def _wait_for_pause(self) -> None:
        with self._lock:
            wait = self._pause_until - time.monotonic()
        if wait > 0:
            self._sleep(wait)

    def _post_once(self, body: dict[str, Any]) -> dict[str, Any]:
        data = json.dumps(body).encode("utf-8")
        headers = {"Content-Type": "application/json", "Accept": "application/json"}
        if self._api_key:
            headers["Authorization"] = f"Bearer {self._api_key}"
        request = urllib.request.Request(self.url, data=data, headers=headers, method="POST")
        try:
            with self._opener.open(request, timeout=self.timeout) as response:
                payload = response.read()
        except urllib.error.HTTPError as exc:
            detail = self._redact(_error_text(exc))
            status = exc.code
            if status in FATAL_STATUS:
                hint = {
                    401: "the server rejected the API key"
                    + (f" (from ${self.api_key_env})" if self.api_key_env and self._api_key else "")
                    + ("" if self._api_key else f" (none was sent: set ${self.api_key_env or 'OPENAI_API_KEY'})"),
                    403: "the API key may not use this model or endpoint",
                    404: f"no such endpoint or model (is {self.base_url!r} the API root, and does model {self.model!r} exist?)",
                }[status]
                raise JudgeFatalError(f"HTTP {status} from {self.url}: {hint}. Server said: {detail}") from None
            if status in RETRY_STATUS:
                raise _Retryable(
                    f"HTTP {status}: {detail}", parse_retry_after((exc.headers or {}).get("Retry-After"))
                ) from None
            if status == 400 and "logprob" in detail.lower() and "logprobs" in body:
                raise _LogprobsRejected() from None
            raise _PairRejected(f"HTTP {status}: {detail}") from None
        except (TimeoutError, socket.timeout):
            raise _Retryable(f"no answer within {self.timeout:g}s") from None
        except urllib.error.URLError as exc:
            if isinstance(exc.reason, (TimeoutError, socket.timeout)):
                raise _Retryable(f"no answer within {self.timeout:g}s") from None
            raise _Retryable(f"connection failed: {self._redact(str(exc.reason))}") from None
        except (ConnectionError, http.client.HTTPException, OSError) as exc:
            raise _Retryable(f"connection failed: {type(exc).__name__}: {self._redact(str(exc))}") from None
        try:
            parsed = json.loads(payload)
        except ValueError:
            raise _Retryable(
                f"unreadable response body: {self._redact(payload[:80].decode('utf-8', 'replace'))!r}"
            ) from None
        if not isinstance(parsed, dict) or not isinstance(parsed.get("choices"), list) or not parsed["choices"]:
            raise _Retryable(f"response has no choices: {self._redact(str(parsed)[:80])!r}")
        return parsed

    def _redact(self, text: str) -> str:
        if self._api_key and self._api_key in text:
            text = text.replace(self._api_key, "***")
        return text


class _LogprobsRejected(Exception):
    pass


def _error_text(exc: urllib.error.HTTPError) -> str:
    try:
        raw = exc.read()[:2000].decode("utf-8", "replace")
    except Exception:  # noqa: BLE001 - the body is only decoration for the message
        return exc.reason or ""
    try:
        parsed = json.loads(raw)
        if isinstance(parsed, dict):
            err = parsed.get("error", parsed)
            if isinstance(err, dict) and "message" in err:
                return str(err["message"])[:300]
            return str(err)[:300]
    except ValueError:
        pass
    return raw.strip()[:300]


def _first_choice(response: dict[str, Any]) -> tuple[str | None, dict[str, Any] | None]:
    choice = response["choices"][0] or {}
    message = choice.get("message") or {}
    content = message.get("content")
    if isinstance(content, list):  # some servers return content parts
        content = "".join(part.get("text", "") for part in content if isinstance(part, dict))
    logprobs = choice.get("logprobs")
    return (content if isinstance(content, str) else None), (logprobs if isinstance(logprobs, dict) else None)
