"""A small httpx client for llama-server: /health, /props, /tokenize, /metrics and streamed /completion.

The transport is a seam: tests pass `httpx.MockTransport` to exercise the SSE parsing without a server.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from typing import Any

import httpx

from collector.base.errors import CollectorError

# Every sampling parameter is sent: GGUF files can change the server's defaults (ref/llama-cpp.md §2.4).
GREEDY: dict[str, Any] = {
    "temperature": 0.0, "top_k": 1, "top_p": 1.0, "min_p": 0.0, "typical_p": 1.0, "repeat_penalty": 1.0,
    "presence_penalty": 0.0, "frequency_penalty": 0.0, "dry_multiplier": 0.0, "xtc_probability": 0.0,
    "mirostat": 0, "n_probs": 0,
}


class ServerRequestError(CollectorError):
    """A request failed: HTTP error, an error event in the stream, or the connection dropped."""


@dataclass
class CompletionResult:
    """One streamed /completion: server timings plus client-side times (seconds from request start)."""

    timings: dict[str, float]
    n_tokens: int  # generated tokens seen by the client (one per chunk with non-empty tokens)
    ttft_ms: float | None  # request sent -> first chunk carrying a token
    token_times_s: list[float] = field(default_factory=list)
    content: str = ""
    tokens_evaluated: int | None = None
    stop_type: str | None = None
    started_at: float = 0.0  # time.perf_counter() when the request was sent: puts concurrent streams on one clock
    id_slot: int | None = None  # the server slot that served it

    @property
    def last_token_at(self) -> float | None:
        """perf_counter time of the last token received (None: no token)."""
        return self.started_at + self.token_times_s[-1] if self.token_times_s else None

    @property
    def queue_ms(self) -> float | None:
        """Client TTFT minus the server's prompt time: how long the request waited before its slot started on
        the prompt (HTTP and tokenization, a decode step in progress, or no free slot)."""
        if self.ttft_ms is None or "prompt_ms" not in self.timings:
            return None
        return max(0.0, self.ttft_ms - self.timings["prompt_ms"])

    @property
    def tg_tps_client(self) -> float | None:
        """Client generation rate in tokens/s: tokens after the first over first->last token time."""
        if len(self.token_times_s) < 2:
            return None
        span = self.token_times_s[-1] - self.token_times_s[0]
        return (len(self.token_times_s) - 1) / span if span > 0 else None


class LlamaClient:
    """Talks to one llama-server; `transport` replaces the network (tests)."""

    def __init__(self, base_url: str, *, timeout_s: float = 600.0,
                 transport: httpx.BaseTransport | None = None) -> None:
        self.http = httpx.Client(base_url=base_url, timeout=httpx.Timeout(timeout_s, connect=10.0),
                                 transport=transport)

    def close(self) -> None:
        self.http.close()

    def __enter__(self) -> LlamaClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _get_json(self, path: str) -> Any:
        try:
            r = self.http.get(path)
        except httpx.HTTPError as exc:
            raise ServerRequestError(f"GET {path} failed: {exc!r}") from exc
        _check(r, path)
        return r.json()

    def health(self) -> int:
        """The /health status code (200 ready, 503 loading)."""
        try:
            return self.http.get("/health").status_code
        except httpx.HTTPError as exc:
            raise ServerRequestError(f"GET /health failed: {exc!r}") from exc

    def props(self) -> dict[str, Any]:
        return dict(self._get_json("/props"))

    def metrics(self) -> str:
        try:
            r = self.http.get("/metrics")
        except httpx.HTTPError as exc:
            raise ServerRequestError(f"GET /metrics failed: {exc!r}") from exc
        _check(r, "/metrics")
        return r.text

    def tokenize(self, text: str, *, add_special: bool = False) -> list[int]:
        """Token ids of `text`; add_special=True adds BOS the way a string prompt would get it."""
        try:
            r = self.http.post("/tokenize", json={"content": text, "add_special": add_special,
                                                  "parse_special": False})
        except httpx.HTTPError as exc:
            raise ServerRequestError(f"POST /tokenize failed: {exc!r}") from exc
        _check(r, "/tokenize")
        return [int(t) for t in r.json()["tokens"]]

    def completion_stream(self, prompt: str | list[int], *, n_predict: int, seed: int,
                          temperature: float = 0.0, **extra: Any) -> CompletionResult:
        """One streamed /completion with every sampling parameter explicit; raises ServerRequestError."""
        body: dict[str, Any] = {**GREEDY, "prompt": prompt, "n_predict": n_predict, "seed": seed,
                                "temperature": temperature, "ignore_eos": True, "cache_prompt": False,
                                "stream": True, "timings_per_token": False, **extra}
        t0 = time.perf_counter()
        times: list[float] = []
        content: list[str] = []
        final: dict[str, Any] | None = None
        try:
            with self.http.stream("POST", "/completion", json=body) as r:
                if r.status_code != 200:
                    r.read()
                    _check(r, "/completion")
                for event in iter_sse(r.iter_lines()):
                    now = time.perf_counter() - t0
                    if "error" in event:
                        raise ServerRequestError(f"/completion stream error: {_error_text(event['error'])}")
                    if event.get("tokens"):
                        times.append(now)
                    content.append(str(event.get("content", "")))
                    if event.get("stop"):
                        final = event
                        break
        except httpx.HTTPError as exc:
            raise ServerRequestError(f"/completion failed after {time.perf_counter() - t0:.1f} s: {exc!r} "
                                     "(did the server die?)") from exc
        if final is None:
            raise ServerRequestError("/completion stream ended without a final stop event (did the server die?)")
        timings = {k: float(v) for k, v in (final.get("timings") or {}).items() if isinstance(v, (int, float))}
        if "predicted_per_second" not in timings:
            raise ServerRequestError("/completion final event carries no timings; is this a llama-server?")
        slot = final.get("id_slot")
        return CompletionResult(timings=timings, n_tokens=len(times), ttft_ms=times[0] * 1000 if times else None,
                                token_times_s=times, content="".join(content),
                                tokens_evaluated=final.get("tokens_evaluated"), stop_type=final.get("stop_type"),
                                started_at=t0, id_slot=slot if isinstance(slot, int) else None)


def iter_sse(lines: Any) -> Any:
    """Yield the JSON object of each `data:` line; comments (keep-alive pings) and blanks are skipped."""
    for line in lines:
        if not line or line.startswith(":"):
            continue
        if not line.startswith("data:"):
            continue
        payload = line[5:].strip()
        if payload == "[DONE]":
            return
        try:
            yield json.loads(payload)
        except json.JSONDecodeError as exc:
            raise ServerRequestError(f"unreadable stream event {payload[:80]!r}: {exc}") from exc


def _error_text(err: Any) -> str:
    if isinstance(err, dict):
        return f"{err.get('type', 'error')} {err.get('code', '')}: {err.get('message', '')}".strip()
    return str(err)


def _check(r: httpx.Response, path: str) -> None:
    if r.status_code >= 400:
        try:
            msg = _error_text(r.json().get("error"))
        except (ValueError, AttributeError):
            msg = r.text[:200]
        raise ServerRequestError(f"{path}: HTTP {r.status_code} {msg}")
