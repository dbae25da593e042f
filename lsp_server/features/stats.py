"""`diffill/stats` (client -> server request): counters and recent timings.

Params (optional): ``{"timings": bool, "reset": bool}``.  Used by tests to
see that a burst of edits computed only the last request, and by
``diffill bench lsp`` to separate server overhead from engine time.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any

from lsp_server.features.common import plain
from lsp_server.methods import STATS
from lsp_server.pygls_internals import bookkeeping

if TYPE_CHECKING:
    from lsp_server.server import DiffillServer


def register(server: DiffillServer) -> None:
    @server.feature(STATS)
    def stats(params: Any) -> dict[str, Any]:
        opts = plain(params)
        opts = opts if isinstance(opts, dict) else {}
        out = server.stats.to_json(timings=bool(opts.get("timings")))
        out["cacheEntries"] = len(server.pipeline.cache)
        out["documents"] = len(server.documents)
        out["engineLoaded"] = server.engine_host.engine is not None
        out["engines"] = server.engine_host.describe()  # the typing and the fill command's model
        # pygls' per-request tables: back to the same size whenever nothing is in flight
        out["bookkeeping"] = {**bookkeeping(server.protocol), "lateEditsKept": len(server.late_answers)}
        if opts.get("reset"):
            server.stats.reset()
        return out
