"""SSE parsing and error handling of the llama-server client, through httpx.MockTransport."""

from __future__ import annotations

import json

import httpx
import pytest

from collector.llama.client import LlamaClient, ServerRequestError

FINAL_TIMINGS = {"cache_n": 0, "prompt_n": 12, "prompt_ms": 40.0, "prompt_per_token_ms": 3.33,
                 "prompt_per_second": 300.0, "predicted_n": 4, "predicted_ms": 30.0,
                 "predicted_per_token_ms": 10.0, "predicted_per_second": 100.0}


def _sse(*events: object, ping: bool = True) -> bytes:
    out = []
    for i, e in enumerate(events):
        if ping and i == 1:
            out.append(":\n\n")  # keep-alive comment
        out.append(f"data: {json.dumps(e)}\n\n")
    return "".join(out).encode()


def _chunk(tok: int, text: str) -> dict:
    return {"index": 0, "content": text, "tokens": [tok], "stop": False, "id_slot": 0}


def _client(handler) -> LlamaClient:
    return LlamaClient("http://127.0.0.1:1", transport=httpx.MockTransport(handler))


def test_stream_parsed_and_every_sampling_parameter_sent() -> None:
    seen: dict = {}

    def handler(request: httpx.Request) -> httpx.Response:
        seen.update(json.loads(request.content))
        body = _sse(_chunk(1, "a"), _chunk(2, "b"), _chunk(3, "c"), _chunk(4, "d"),
                    {"content": "", "tokens": [], "stop": True, "stop_type": "limit", "tokens_evaluated": 12,
                     "timings": FINAL_TIMINGS})
        return httpx.Response(200, content=body, headers={"content-type": "text/event-stream"})

    r = _client(handler).completion_stream([1, 2, 3], n_predict=4, seed=7)
    assert r.content == "abcd" and r.n_tokens == 4 and r.stop_type == "limit" and r.tokens_evaluated == 12
    assert r.timings["predicted_per_second"] == 100.0 and r.timings["prompt_n"] == 12
    assert r.ttft_ms is not None and r.ttft_ms >= 0 and len(r.token_times_s) == 4
    assert r.tg_tps_client is not None and r.tg_tps_client > 0
    assert seen["prompt"] == [1, 2, 3] and seen["n_predict"] == 4 and seen["seed"] == 7
    expected = {"temperature": 0.0, "top_k": 1, "top_p": 1.0, "min_p": 0.0, "repeat_penalty": 1.0,
                "ignore_eos": True, "cache_prompt": False, "stream": True, "timings_per_token": False}
    assert {k: seen[k] for k in expected} == expected


def test_client_rate_is_tokens_after_first_over_span() -> None:
    from collector.llama.client import CompletionResult

    r = CompletionResult(timings={}, n_tokens=5, ttft_ms=100.0, token_times_s=[0.1, 0.2, 0.3, 0.4, 0.5])
    assert r.tg_tps_client == pytest.approx(10.0)
    assert CompletionResult(timings={}, n_tokens=1, ttft_ms=1.0, token_times_s=[0.1]).tg_tps_client is None


def test_stream_error_event_raises() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        body = _sse(_chunk(1, "a"), {"error": {"code": 500, "message": "decode failed", "type": "server_error"}})
        return httpx.Response(200, content=body)

    with pytest.raises(ServerRequestError, match="decode failed"):
        _client(handler).completion_stream("x", n_predict=4, seed=1)


def test_http_error_and_truncated_stream_raise() -> None:
    def too_long(request: httpx.Request) -> httpx.Response:
        return httpx.Response(400, json={"error": {"code": 400, "message": "the request exceeds the available "
                                                   "context size", "type": "exceed_context_size_error"}})

    with pytest.raises(ServerRequestError, match="HTTP 400 .*exceeds the available context"):
        _client(too_long).completion_stream("x", n_predict=4, seed=1)

    def cut(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, content=_sse(_chunk(1, "a"), _chunk(2, "b")))

    with pytest.raises(ServerRequestError, match="without a final stop event"):
        _client(cut).completion_stream("x", n_predict=4, seed=1)


def test_tokenize_health_props() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/tokenize":
            body = json.loads(request.content)
            return httpx.Response(200, json={"tokens": [1, 5, 9] if body["add_special"] else [5, 9]})
        if request.url.path == "/health":
            return httpx.Response(503, json={"error": {"code": 503, "message": "Loading model"}})
        return httpx.Response(200, json={"build_info": "b0-unknown", "default_generation_settings": {"n_ctx": 512}})

    c = _client(handler)
    assert c.tokenize("hi") == [5, 9] and c.tokenize("hi", add_special=True) == [1, 5, 9]
    assert c.health() == 503
    assert c.props()["default_generation_settings"]["n_ctx"] == 512
