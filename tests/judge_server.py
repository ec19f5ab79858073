"""A scripted OpenAI-compatible chat-completions server for the judge tests.

It listens on 127.0.0.1 on a free port, in a daemon thread, and stops on ``close()`` (or by itself after
``lifetime`` seconds, so a failed test never leaves it running).

Test pairs are numbered: pair ``k`` has prompt ``question-k``, one response containing ``good-k`` and one
containing ``bad-k``. :class:`PairPolicy` answers like a sound judge (the letter of the ``good`` response as
shown) unless pair ``k`` is scripted to misbehave: see :data:`FAULTS`.
"""

from __future__ import annotations

import json
import math
import re
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Callable

STRICT_MARK = "your previous answer could not be read"

# Fault kinds a pair can be scripted with.
FAULTS = {
    "rate_limit": "first request of each order: 429 with Retry-After (seconds in PairPolicy.retry_after)",
    "error_500": "first request of each order: 500",
    "slow": "first request of each order: answer after PairPolicy.slow_s (beyond the client's timeout)",
    "garbage_body": "first request of each order: 200 with a body that is not JSON",
    "malformed_once": "first answer names neither letter; the stricter re-ask is answered properly",
    "malformed": "every answer names neither letter",
    "position_bias": "always answers 'A' (whatever is shown first)",
    "always_500": "every request: 500",
    "echo_key": "first request of each order: 500 whose message quotes the Authorization header",
    "no_logprobs": "a proper answer without log-probabilities",
}


@dataclass
class Request:
    """One request as the server saw it."""

    pair: int | None
    first_shown: str | None  # "good" or "bad": which response was shown as A
    strict: bool
    attempt: int  # 1-based count of identical (pair, first_shown, strict) requests so far
    authorization: str | None
    body: dict[str, Any]
    reply: str = ""  # what the server did: "ok", "429", "500", "slow", "garbage", ...


@dataclass
class Reply:
    status: int = 200
    body: Any = None  # dict -> JSON, str/bytes -> raw
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0  # an answer the client gives up on (beyond its timeout)
    latency: float = 0.0  # an ordinary answer's processing time


def completion(content: str, *, p_letter: float | None = 0.9, prompt_tokens: int = 50) -> dict[str, Any]:
    """A chat-completion body whose answer is ``content``; with log-probabilities when ``p_letter`` is given
    (the answered letter gets ``p_letter``, the other letter the rest)."""
    choice: dict[str, Any] = {"index": 0, "message": {"role": "assistant", "content": content}, "finish_reason": "stop"}
    letter = content.strip()[:1]
    if p_letter is not None and letter in ("A", "B"):
        other = "B" if letter == "A" else "A"
        top = [{"token": letter, "logprob": math.log(p_letter)}, {"token": other, "logprob": math.log(1.0 - p_letter)}]
        choice["logprobs"] = {"content": [{"token": letter, "logprob": math.log(p_letter), "top_logprobs": top}]}
    return {
        "id": "chatcmpl-test",
        "object": "chat.completion",
        "model": "scripted",
        "choices": [choice],
        "usage": {"prompt_tokens": prompt_tokens, "completion_tokens": 1, "total_tokens": prompt_tokens + 1},
    }


class PairPolicy:
    """Answers for numbered test pairs, with faults scripted per pair number.

    Parameters
    ----------
    faults : dict of int to str
        Pair number -> a key of :data:`FAULTS`.
    fault_every : dict of int to str, optional
        Residue r -> fault for every pair with ``k % modulus == r``.
    modulus : int
    p_letter : float
        Probability reported for the answered letter.
    retry_after : float
        Retry-After of scripted 429s, seconds.
    slow_s : float
        How long a ``slow`` answer takes.
    latency : float
        Seconds each proper answer takes (a model's think time; lets concurrent requests overlap).
    """

    def __init__(
        self,
        faults: dict[int, str] | None = None,
        *,
        fault_every: dict[int, str] | None = None,
        modulus: int = 100,
        p_letter: float = 0.9,
        retry_after: float = 0.05,
        slow_s: float = 1.0,
        latency: float = 0.0,
    ) -> None:
        self.faults = dict(faults or {})
        self.fault_every = dict(fault_every or {})
        self.modulus = modulus
        self.p_letter = p_letter
        self.retry_after = retry_after
        self.slow_s = slow_s
        self.latency = latency

    def fault(self, pair: int | None) -> str | None:
        if pair is None:
            return None
        return self.faults.get(pair) or self.fault_every.get(pair % self.modulus)

    def __call__(self, req: Request) -> tuple[Reply, str]:
        fault = self.fault(req.pair)
        first = req.attempt == 1
        if fault == "always_500":
            return Reply(500, {"error": {"message": "internal error (scripted)"}}), "500"
        if fault == "rate_limit" and first:
            return Reply(429, {"error": {"message": "rate limited"}}, {"Retry-After": f"{self.retry_after:g}"}), "429"
        if fault == "error_500" and first:
            return Reply(500, {"error": {"message": "boom"}}), "500"
        if fault == "echo_key" and first:
            return Reply(500, {"error": {"message": f"bad gateway; you sent {req.authorization}"}}), "500"
        if fault == "slow" and first:
            return Reply(200, completion("A"), delay=self.slow_s), "slow"
        if fault == "garbage_body" and first:
            return Reply(200, "<html>502 proxy hiccup</html>"), "garbage"
        if fault == "malformed" or (fault == "malformed_once" and not req.strict):
            return Reply(200, completion("Both responses have merits.", p_letter=None)), "malformed"
        if req.first_shown is None:
            return Reply(200, completion("I cannot tell.", p_letter=None)), "malformed"
        if fault == "position_bias":
            letter = "A"
        else:
            letter = "A" if req.first_shown == "good" else "B"
        p = None if fault == "no_logprobs" or not req.body.get("logprobs") else self.p_letter
        return Reply(200, completion(letter, p_letter=p), latency=self.latency), "ok"


_PAIR = re.compile(r"question-(\d+)")


class ScriptedChatServer:
    """An OpenAI-compatible ``/v1/chat/completions`` endpoint on 127.0.0.1 answering through ``script``.

    Attributes
    ----------
    url : str
        The base URL to give a judge (``http://127.0.0.1:PORT/v1``).
    requests : list of Request
        Every request, in arrival order.
    max_in_flight : int
        Most requests being handled at once (counted until the reply is about to be written).
    """

    def __init__(
        self, script: Callable[[Request], tuple[Reply, str]] | None = None, *, lifetime: float = 120.0
    ) -> None:
        self.script = script or PairPolicy()
        self.requests: list[Request] = []
        self.max_in_flight = 0
        self._in_flight = 0
        self._attempts: Counter = Counter()
        self._lock = threading.Lock()
        self.answered = threading.Event()
        self.answer_target: int | None = None
        self._n_ok = 0
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:  # keep test output clean
                pass

            def do_POST(self) -> None:  # noqa: N802 - http.server API
                server._handle(self)

        class Server(ThreadingHTTPServer):
            daemon_threads = True
            request_queue_size = 256

            def handle_error(self, request: Any, client_address: Any) -> None:
                pass  # clients that gave up on a slow answer close their socket: expected here

        self._httpd = Server(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self._httpd.server_address[1]}/v1"
        self._thread = threading.Thread(target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self._thread.start()
        self._timer = threading.Timer(lifetime, self.close)
        self._timer.daemon = True
        self._timer.start()

    def _handle(self, handler: BaseHTTPRequestHandler) -> None:
        with self._lock:
            self._in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self._in_flight)
        counted = True
        try:
            length = int(handler.headers.get("Content-Length") or 0)
            body = json.loads(handler.rfile.read(length) or b"{}")
            if handler.path.rstrip("/") != "/v1/chat/completions":
                reply, what = Reply(404, {"error": {"message": f"no route {handler.path}"}}), "404"
                req = Request(None, None, False, 1, handler.headers.get("Authorization"), body)
            else:
                user = next((m["content"] for m in reversed(body.get("messages", [])) if m.get("role") == "user"), "")
                match = _PAIR.search(user)
                pair = int(match.group(1)) if match else None
                good, bad = user.find("good-"), user.find("bad-")
                first_shown = None if good < 0 or bad < 0 else ("good" if good < bad else "bad")
                strict = STRICT_MARK in user.lower()
                with self._lock:
                    self._attempts[(pair, first_shown, strict)] += 1
                    attempt = self._attempts[(pair, first_shown, strict)]
                req = Request(pair, first_shown, strict, attempt, handler.headers.get("Authorization"), body)
                reply, what = self.script(req)
            req.reply = what
            with self._lock:
                self.requests.append(req)
                if what in ("ok", "malformed") and reply.status == 200:
                    self._n_ok += 1
                    if self.answer_target is not None and self._n_ok >= self.answer_target:
                        self.answered.set()
            if reply.latency:
                time.sleep(reply.latency)
            if reply.delay:
                with self._lock:  # the client gives up on this one: it no longer holds a slot
                    self._in_flight -= 1
                counted = False
                time.sleep(reply.delay)
            payload = reply.body
            data = (
                payload
                if isinstance(payload, bytes)
                else (payload.encode() if isinstance(payload, str) else json.dumps(payload).encode())
            )
            if counted:
                with self._lock:
                    self._in_flight -= 1
                counted = False
            handler.send_response(reply.status)
            handler.send_header("Content-Type", "application/json")
            handler.send_header("Content-Length", str(len(data)))
            for k, v in reply.headers.items():
                handler.send_header(k, v)
            handler.end_headers()
            handler.wfile.write(data)
        finally:
            if counted:
                with self._lock:
                    self._in_flight -= 1

    def answered_requests(self) -> list[Request]:
        """Requests that got a 200 answer (proper or malformed)."""
        with self._lock:
            return [r for r in self.requests if r.reply in ("ok", "malformed")]

    def close(self) -> None:
        self._timer.cancel()
        self._httpd.shutdown()
        self._httpd.server_close()

    def __enter__(self) -> "ScriptedChatServer":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()
