"""The production checklist, run against a live server: each bad request gets a 4xx with a message or is refused by
the kit's client before it is sent, and after each one the server still answers the next request.

>>> production_checklist(server)  # doctest: +SKIP
"""

from __future__ import annotations

import time

from ...core import LabkitError

NEXT_PROMPT = "Name a colour."  # the request sent after each bad one, to show the server still serves


def _http(server, payload=None, *, raw: bytes | None = None):
    import httpx

    url = f"{server.base_url}/v1/chat/completions"
    if raw is not None:
        return httpx.post(url, content=raw, headers={"content-type": "application/json"}, timeout=60)
    return httpx.post(url, json=payload, timeout=60)


def _disconnect_mid_stream(server) -> str:
    """Open a streaming request, read the first event, then drop the connection."""
    import httpx

    payload = {"model": server.model_id, "stream": True, "max_tokens": 64,
               "messages": [{"role": "user", "content": "Tell me a long story about a dragon."}]}
    with httpx.stream("POST", f"{server.base_url}/v1/chat/completions", json=payload, timeout=60) as response:
        for line in response.iter_lines():
            if line.startswith("data:"):
                return f"{response.status_code}: read one event ({len(line)} bytes), then closed the connection"
    return f"{response.status_code}: the stream ended before the first event"


def _refused(call) -> str:
    try:
        call()
    except LabkitError as err:
        return str(err)
    return ""


def production_checklist(server, *, over_context_words: int = 12000):
    """Run each bad request against ``server``; a DataFrame: case, what happened, the message, next request ok."""
    import pandas as pd

    if not server.running:
        raise LabkitError("The server is not running: run the checklist inside `with Server(folder) as server:`.")
    if not isinstance(over_context_words, int) or over_context_words < 1:
        raise LabkitError(f"over_context_words must be a positive whole number, got {over_context_words!r}.")
    msg = [{"role": "user", "content": "hi"}]
    long_prompt = "dragon " * over_context_words

    def status_row(case, response, how="server answered"):
        return case, how, response.status_code, response.text[:160]

    cases = [
        lambda: status_row("malformed JSON", _http(server, raw=b'{"model": "x", "messages": [')),
        lambda: status_row("unknown model", _http(server, {"model": "no-such-model", "messages": msg})),
        lambda: status_row("unknown adapter", _http(server, {"model": f"{server.model_id}@task-b", "messages": msg})),
        lambda: ("prompt over the context", "refused by the kit's client", None,
                 _refused(lambda: server.check_request(long_prompt, 16))),
        lambda: ("max_tokens = 0", "refused by the kit's client", None,
                 _refused(lambda: server.check_request("hi", 0))),
        lambda: status_row("max_tokens = 0 sent raw (bypassing the client)",
                           _http(server, {"model": server.model_id, "messages": msg, "max_tokens": 0}),
                           "server answered (a server bug: 5xx)"),
        lambda: ("client disconnects mid-stream", "handled", None, _disconnect_mid_stream(server)),
    ]
    rows = []
    for case in cases:
        name, how, status, message = case()
        begin = time.perf_counter()
        reply = server.chat(NEXT_PROMPT, max_tokens=4)
        rows.append({"case": name, "outcome": how, "status": status, "message": message,
                     "next_request_ok": bool(reply.text), "next_request_s": time.perf_counter() - begin})
    return pd.DataFrame(rows)
