"""Benchmark harnesses that drive the language server from outside, as an editor would.

Nothing here is imported by the server itself.  The modules import only the
standard library (and pure-Python parts of ``engine.bench``) at the top, so that
``diffill`` can register their parsers cheaply at every start; pygls and
lsprotocol are imported when a run starts.

- ``client``: the pygls client both benchmarks drive the server with.
- ``procstat``: the server's memory, threads and CPU time from /proc.
- ``latency``: percentile summaries in the shape the reports use.
- ``lsp``: ``diffill bench lsp`` (latency, server overhead, memory).
- ``soak``: ``diffill bench soak``, a long mixed session: ``workload``
  (documents, edits, request choices), ``runner`` (the client side and the
  measurements), ``verdict`` (the targets), ``report`` (JSON and summary).
"""
