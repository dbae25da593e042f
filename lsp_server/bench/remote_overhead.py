"""The client's own overhead with a remote backend, for `diffill bench lsp`.

Through a remote backend the engine's time is mostly the server's: the LSP
round trip minus the inference server's own processing time is what diffill
adds (LSP, the HTTP client, thread hops, loopback TCP).  The loopback
stand-ins (tests/remote_standin.py) report their processing time per request
at ``GET /_standin/timings``; a real engine has no such route, and then the
bench says so instead of guessing.
"""
from __future__ import annotations

import json
import urllib.request
from typing import Any

from lsp_server.bench.latency import summary

TIMINGS_PATH = "/_standin/timings"
#: the issue's target for the client-side overhead on top of the remote engine
TARGET_CLIENT_OVERHEAD_P50_MS = 3.0


def fetch_processing_ms(url: str) -> list[float] | None:
    """The stand-in's processing times since the last call (then forgotten), or None
    when the server does not report them (not a stand-in)."""
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # loopback: no proxy
    try:
        with opener.open(url.rstrip("/") + TIMINGS_PATH, timeout=5) as response:
            data = json.loads(response.read())
    except (OSError, ValueError):
        return None
    times = data.get("processing_ms") if isinstance(data, dict) else None
    return [float(t) for t in times] if isinstance(times, list) else None


def client_overhead(e2e_ms: list[float], processing_ms: list[float] | None) -> dict[str, Any]:
    """``client_overhead_ms`` = round trip - stand-in processing, request by request,
    with the target check; or why it cannot be told."""
    if processing_ms is None:
        return {"client_overhead_ms": None,
                "client_overhead_note": f"the server does not report its processing time ({TIMINGS_PATH})"}
    if len(processing_ms) != len(e2e_ms):
        return {"client_overhead_ms": None,
                "client_overhead_note": f"{len(processing_ms)} server timings for {len(e2e_ms)} requests "
                                        "(retries or extra requests): cannot pair them"}
    overhead = [a - b for a, b in zip(e2e_ms, processing_ms)]
    result = summary(overhead)
    return {"server_processing_ms": summary(processing_ms), "client_overhead_ms": result,
            "client_overhead_target": {"p50_ms": TARGET_CLIENT_OVERHEAD_P50_MS,
                                       "ok": result["p50"] <= TARGET_CLIENT_OVERHEAD_P50_MS}}
