"""The diffill language server: pygls 2.x wiring of the pieces.

State lives on ``DiffillServer``; each LSP feature is a small module in
``lsp_server/features`` with a ``register(server)`` function.
"""
from __future__ import annotations

import asyncio
import inspect
import logging
from collections.abc import Callable, Sequence
from dataclasses import replace
from typing import Any

from lsprotocol import types
from pygls.exceptions import (
    JsonRpcException,
    JsonRpcInvalidParams,
    JsonRpcInvalidRequest,
    JsonRpcServerNotInitialized,
)
from pygls.lsp.server import LanguageServer
from pygls.protocol.language_server import lsp_method

from lsp_server import __version__
from lsp_server.config import Settings, parse_settings
from lsp_server.context.pieces import Packed
from lsp_server.context.service import ContextService
from lsp_server.converter import strict_converter
from lsp_server.debounce import Debouncer
from lsp_server.documents import (
    Change,
    Document,
    DocumentStore,
    PositionError,
    RefusedDocumentError,
    UnknownDocumentError,
)
from lsp_server.documents.notebooks import Cell, NotebookStore
from lsp_server.documents.positions import Pos
from lsp_server.documents.store import DISPATCH_SNAPSHOT
from lsp_server.engines import Engines
from lsp_server.fill_edits import FillEdits, LateAnswers
from lsp_server.inflight import Inflight
from lsp_server.limits import RateLimiter
from lsp_server.logging_setup import quiet_client_errors, set_log_file
from lsp_server.methods import STATUS
from lsp_server.notices import Notices
from lsp_server.progress import ClientProgress
from lsp_server.pygls_internals import HookedProtocol, answer_message_kinds_once, forget_request, is_shutting_down
from lsp_server.stats import Stats
from lsp_server.trust import screen_trusted_models, workspace_paths
from lsp_server.worker import EngineWorker

log = logging.getLogger(__name__)


class DiffillProtocol(HookedProtocol):
    """pygls' protocol with document sync routed to our own ``DocumentStore``
    (strict positions, LSP line breaks, immutable snapshots) and the LSP
    lifecycle enforced (pygls serves requests before ``initialize``, accepts a
    second one, and exits with 0 on ``exit`` without ``shutdown`` here)."""

    #: whether ``initialize`` was received (every later one is refused)
    initialized = False

    @property
    def owner(self) -> DiffillServer:
        return super().owner

    def on_request(self) -> None:
        """Snapshot the documents as the request arrives (see DocumentStore)."""
        DISPATCH_SNAPSHOT.set(self.owner.documents.snapshot())

    def refuse_request(self, method_name: str) -> JsonRpcException | None:
        """-32002 before ``initialize``; a second ``initialize`` is an invalid request."""
        if method_name == types.INITIALIZE:
            if self.initialized:
                return JsonRpcInvalidRequest("initialize was already received: the server is initialized once")
            return None
        if not self.initialized:
            return JsonRpcServerNotInitialized(f"{method_name}: the server is not initialized "
                                               "(send initialize first)")
        return None

    def accept_notification(self, method_name: str) -> bool:
        """Before ``initialize`` notifications are dropped, except ``exit``."""
        if self.initialized or method_name == types.EXIT:
            return True
        log.warning("dropping %s: the server is not initialized", method_name)
        return False

    @lsp_method(types.EXIT)
    def lsp_exit(self, params: Any = None) -> None:  # type: ignore[override]  # pygls' own is a generator
        """Exit code 0 after ``shutdown``, else 1 (LSP); requests in flight stop quietly."""
        self.owner.request_exit(0 if is_shutting_down(self) else 1)

    @lsp_method(types.TEXT_DOCUMENT_DID_OPEN)
    def lsp_text_document__did_open(self, params: types.DidOpenTextDocumentParams) -> None:
        doc = params.text_document
        server = self.owner
        reopened = server.documents.current(doc.uri) is not None
        opened = self._open(doc.uri, doc.text, doc.version, doc.language_id)
        if opened is None:
            return
        if server.settings.context_enabled:
            server.context.document_changed(opened, None)
        if reopened:  # new text for an open URI: completions for the old text are stale
            server.inflight.cancel_matching(lambda key: key[0] == doc.uri and key[1] != "command")

    def _open(self, uri: str, text: str, version: int, language_id: str | None) -> Document | None:
        """Keep a document; None when its URI is refused (the user is told once)."""
        try:
            return self.owner.documents.open(uri, text, version, language_id)
        except RefusedDocumentError as exc:
            self.owner.document_refused(exc)
            return None

    @lsp_method(types.TEXT_DOCUMENT_DID_CHANGE)
    def lsp_text_document__did_change(self, params: types.DidChangeTextDocumentParams) -> None:
        self._change_text(params.text_document.uri, params.text_document.version, params.content_changes)

    def _change_text(self, uri: str, version: int, content_changes: Sequence[types.TextDocumentContentChangeEvent],
                     ) -> None:
        server = self.owner
        changes = []
        for change in content_changes:
            if isinstance(change, types.TextDocumentContentChangePartial):
                r = change.range
                changes.append(Change(change.text, (Pos(r.start.line, r.start.character),
                                                    Pos(r.end.line, r.end.character))))
            else:
                changes.append(Change(change.text))
        try:
            doc = server.documents.change(uri, version, changes)
        except RefusedDocumentError:
            return  # said once, at its didOpen
        except (UnknownDocumentError, PositionError) as exc:
            server.log_message(f"didChange ignored: {exc}", types.MessageType.Error)
            return
        if server.settings.context_enabled:  # re-index it; the edited lines count as recently seen
            edited = changes[-1].range
            server.context.document_changed(doc, edited[0].line if edited is not None else None)
        # a completion for the old text is stale: stop it (the fill command keeps
        # running; its version guard decides what happens to its edit)
        server.inflight.cancel_matching(lambda key: key[0] == uri and key[1] != "command")

    @lsp_method(types.TEXT_DOCUMENT_DID_CLOSE)
    def lsp_text_document__did_close(self, params: types.DidCloseTextDocumentParams) -> None:
        self._close_text(params.text_document.uri)

    def _close_text(self, uri: str) -> None:
        self.owner.documents.close(uri)
        self.owner.context.document_closed(uri)
        self.owner.inflight.cancel_matching(lambda key: key[0] == uri)
        self.owner.debouncer.forget(uri)
        self.owner.fill_edits.forget(uri)
        self.owner.pipeline.shown.forget(uri)

    # -- notebooks (LSP 3.17 notebook synchronisation): cells are text documents,
    #    the notebook store keeps their order (lsp_server/documents/notebooks.py)
    @lsp_method(types.NOTEBOOK_DOCUMENT_DID_OPEN)
    def lsp_notebook_document__did_open(self, params: types.DidOpenNotebookDocumentParams) -> None:
        nb = params.notebook_document
        for item in params.cell_text_documents:
            self._open(item.uri, item.text, item.version, item.language_id)
        self.owner.notebooks.open(nb.uri, nb.version, [_cell(c) for c in nb.cells])

    @lsp_method(types.NOTEBOOK_DOCUMENT_DID_CHANGE)
    def lsp_notebook_document__did_change(self, params: types.DidChangeNotebookDocumentParams) -> None:
        server = self.owner
        uri, version = params.notebook_document.uri, params.notebook_document.version
        cells = params.change.cells
        server.notebooks.set_version(uri, version)
        if cells is None:
            return
        if cells.structure is not None:
            s = cells.structure
            for item in s.did_open or []:
                self._open(item.uri, item.text, item.version, item.language_id)
            try:
                server.notebooks.splice(uri, version, s.array.start, s.array.delete_count,
                                        [_cell(c) for c in s.array.cells or []])
            except (KeyError, ValueError) as exc:
                server.log_message(f"notebookDocument/didChange ignored: {exc}", types.MessageType.Error)
            for closed in s.did_close or []:
                self._close_text(closed.uri)
        for cell in cells.data or []:
            server.notebooks.set_kind(cell.document, cell.kind == types.NotebookCellKind.Code)
        for content in cells.text_content or []:
            self._change_text(content.document.uri, content.document.version, content.changes)
        # a completion in any cell read the other cells: all of them are stale now
        for cell_uri in server.notebooks.cells_of(uri):
            server.inflight.cancel_matching(lambda key, u=cell_uri: key[0] == u and key[1] != "command")

    @lsp_method(types.NOTEBOOK_DOCUMENT_DID_CLOSE)
    def lsp_notebook_document__did_close(self, params: types.DidCloseNotebookDocumentParams) -> None:
        cells = self.owner.notebooks.close(params.notebook_document.uri)
        for uri in {*cells, *(d.uri for d in params.cell_text_documents)}:
            self._close_text(uri)


    @lsp_method(types.WORKSPACE_EXECUTE_COMMAND)
    async def lsp_workspace__execute_command(  # type: ignore[override]  # pygls' own is a generator
            self, params: types.ExecuteCommandParams) -> Any:
        """Run the command as this request's own task, so that `$/cancelRequest`
        cancels it (pygls' generator-based dispatch runs it as a separate,
        uncancellable task and a cancelled fill would still apply its edit)."""
        handler = self.fm.commands.get(params.command)
        if handler is None:
            raise JsonRpcInvalidParams(f"Command name {params.command!r} is not defined")
        result = handler(*(params.arguments or []))
        if inspect.isawaitable(result):
            result = await result
        return result


#: notebooks whose cells are synchronised: Jupyter notebooks, every cell (a cell's language
#: still goes through the ``languages`` setting, and markdown cells are never filled)
NOTEBOOK_SYNC = types.NotebookDocumentSyncOptions(notebook_selector=[
    types.NotebookDocumentFilterWithNotebook(notebook="jupyter-notebook"),
])


def _cell(cell: types.NotebookCell) -> Cell:
    return Cell(cell.document, cell.kind == types.NotebookCellKind.Code)


class DiffillServer(LanguageServer):
    """Holds settings, documents, the engine worker and request bookkeeping."""

    protocol: DiffillProtocol

    def __init__(self, settings: Settings | None = None) -> None:
        answer_message_kinds_once()
        quiet_client_errors()
        super().__init__("diffill", __version__, protocol_cls=DiffillProtocol,
                         converter_factory=strict_converter, notebook_document_sync=NOTEBOOK_SYNC)
        self.settings = settings or Settings()
        self._last_status: dict[str, str] | None = None
        self.documents = DocumentStore()
        self.notebooks = NotebookStore(self.documents)
        self.worker = EngineWorker()
        self.engine_host = Engines(self, self.worker, self.settings)
        self.inflight = Inflight()
        self.debouncer = Debouncer(self.settings.effective_debounce_ms(), self.settings.adaptive_debounce)
        self.stats = Stats()
        self.notices = Notices(self.show_message)
        self.rate_limiter = RateLimiter(self.settings.max_requests_per_second)
        self.context = ContextService()
        self._index_started = False
        self.fill_edits = FillEdits()
        self.late_answers = LateAnswers(lambda msg_id: forget_request(self.protocol, msg_id))
        self.client_progress = ClientProgress(self.protocol, self._client_has_progress)
        #: set by ``exit`` (or a dead client process): the process's exit code
        self.exit_code: int | None = None
        #: how the transport stops serving (set by ``serve_stdio``; None: raise SystemExit)
        self.stop_serving: Callable[[], None] | None = None
        #: polls the client's processId (see parent_watch)
        self.parent_watch: asyncio.Future[None] | None = None
        from lsp_server.infill import InfillPipeline, PipelineParts

        self.pipeline = InfillPipeline(PipelineParts(
            settings=lambda: self.settings, stats=self.stats, inflight=self.inflight, debouncer=self.debouncer,
            engine_host=self.engine_host, worker=self.worker, notices=self.notices,
            rate_limiter=self.rate_limiter, client=self, context=self.context_for))

    # -- repository context -------------------------------------------------
    def context_for(self, doc: Document, offset: int, *, note: bool = True) -> Packed:
        """Other files' snippets for a cursor, as the next completion would send them."""
        return self.context.for_settings(doc, offset, self.documents.snapshot(), self.settings,
                                         self.engine_host.engine, note=note)

    def start_index(self) -> None:
        """(Re)build the symbol index of the workspace folders in the background,
        reporting work-done progress; nothing while context is disabled."""
        self._index_started = True
        if not self.settings.context_enabled:
            return
        asyncio.ensure_future(self._build_index())

    async def _build_index(self) -> None:
        loop = asyncio.get_running_loop()
        token = await self.progress_begin("diffill: indexing the workspace")

        def report(message: str, done: int) -> None:
            if token is not None:
                loop.call_soon_threadsafe(self.client_progress.report, token, message)

        future = self.context.start(workspace_paths(self), self.settings.context_exclude,
                                    self.documents.snapshot, report)
        try:
            files = await asyncio.wrap_future(future)
        except Exception as exc:  # no index: completions go on without definitions
            log.exception("indexing failed")
            self.progress_end(token, f"indexing failed: {exc}")
            return
        stats = self.context.index.stats()
        log.info("indexed %d files: %d definitions", files, stats["definitions"])
        self.progress_end(token, f"{stats['files']} files, {stats['definitions']} definitions")

    # -- lifecycle ----------------------------------------------------------
    def request_exit(self, code: int) -> None:
        """Stop serving and exit with ``code``: requests in flight are cancelled (the
        engine stops within a step) and nothing more is written to the client."""
        if self.exit_code is not None:
            return
        log.info("exiting with code %d", code)
        self.exit_code = code
        self.stop_background_work()
        if self.stop_serving is None:
            raise SystemExit(code)
        self.stop_serving()

    def stop_background_work(self) -> None:
        """Cancel requests in flight and stop the engine thread and the context index
        without waiting for either (the index's worker process is terminated after a
        short grace): the process's exit must not wait for background work."""
        self.inflight.cancel_all()
        self.worker.shutdown()
        self.context.shutdown()

    def shutdown(self) -> None:
        """pygls' transport shutdown (the input ended, or after ``exit``): background
        work stops too, whichever way the server stops serving."""
        self.stop_background_work()
        super().shutdown()

    # -- settings ---------------------------------------------------------
    def update_settings(self, raw: Any, *, source: str) -> None:
        """Overlay client settings; warn about bad keys; reload the model if needed."""
        old = self.settings
        new, warnings = parse_settings(raw, old)
        new, refused = screen_trusted_models(new, workspace_paths(self))
        for warning in warnings + refused:
            self.log_message(f"diffill ({source}): {warning}", types.MessageType.Warning)
        for message in refused:
            self.notices.show_once(("trust", message), f"diffill: {message}", types.MessageType.Warning)
        self.settings = new
        self.debouncer.configure(new.effective_debounce_ms(), new.adaptive_debounce)
        self.rate_limiter.configure(new.max_requests_per_second)
        self.pipeline.cache.resize(new.cache_size)
        if new.request_key() != old.request_key():
            self.pipeline.cache.clear()
        if new.log_file != old.log_file:
            try:
                set_log_file(new.log_file)
            except OSError as exc:
                new = self.settings = replace(new, log_file=old.log_file)
                self.log_message(f"diffill ({source}): cannot write the log file: {exc}; "
                                 f"keeping {old.log_file!r}", types.MessageType.Warning)
        if new.engine_key() != old.engine_key():
            self.pipeline.cache.clear()
        if new.max_document_bytes != old.max_document_bytes:
            self.notices.clear("too-large")
        self.engine_host.settings_changed(old, new)
        if self._index_started and (new.context_exclude, new.context_enabled) != (old.context_exclude,
                                                                                  old.context_enabled):
            self.start_index()

    # -- messages to the client --------------------------------------------
    def notify(self, method: str, params: Any) -> None:
        self.protocol.notify(method, params)

    def send_status(self, state: str, message: str, **extra: str) -> None:
        """``diffill/status``; the same status twice in a row is sent once (a quick
        request leaves the status at "ready", and every request ends with "ready")."""
        status = {"state": state, "message": message, **extra}
        if status == self._last_status:
            return
        self._last_status = status
        # busy/ready flip on slow requests: keep them out of the info log
        log.log(logging.DEBUG if state in ("busy", "ready") else logging.INFO, "status %s: %s", state, message)
        self.protocol.notify(STATUS, status)

    def show_message(self, message: str, kind: types.MessageType = types.MessageType.Info) -> None:
        self.window_show_message(types.ShowMessageParams(type=kind, message=message))

    def log_message(self, message: str, kind: types.MessageType = types.MessageType.Log) -> None:
        log.info("%s", message)
        self.window_log_message(types.LogMessageParams(type=kind, message=message))

    def document_refused(self, refused: RefusedDocumentError) -> None:
        """A document whose URI cannot be kept: one log line and one message, at its
        ``didOpen``; requests about it get -32602 with the same reason."""
        if not refused.first:
            return
        log.warning("%s", refused)
        self.show_message(f"diffill: {refused}; it gets no completions.", types.MessageType.Warning)

    def report_engine_error(self, text: str) -> None:
        """Status error every time; the pop-up only once until a request succeeds."""
        log.error("engine error: %s", text)
        self.send_status("error", text)
        self.notices.show_once(("engine", text), f"diffill: {text}", types.MessageType.Error)

    async def progress_begin(self, title: str) -> str | None:
        """Start a work-done progress if the client supports it; returns its token
        at once (the work never waits for the client: lsp_server/progress.py)."""
        return self.client_progress.begin(title)

    def progress_end(self, token: str | None, message: str) -> None:
        self.client_progress.end(token, message)

    def _client_has_progress(self) -> bool:
        caps = self.client_capabilities
        return bool(caps and caps.window and caps.window.work_done_progress)
