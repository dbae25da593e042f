"""Repository context without a server: privacy rules, symbol extraction, the
index and its updates, the sources and the packer (budget, order, overlap)."""
from __future__ import annotations

import os
from pathlib import Path

import pytest

from engine.context_format import file_header, fit_context
from engine.types import ContextPiece
from lsp_server.context import symbols
from lsp_server.context.files import read_source, read_span
from lsp_server.context.index import Indexer, SymbolIndex, source_files
from lsp_server.context.packer import pack
from lsp_server.context.pieces import Piece
from lsp_server.context.privacy import Rules, looks_binary, looks_secret
from lsp_server.context.recent import RecentChunks
from lsp_server.context.service import ContextService, estimate_tokens
from lsp_server.context.similar import OpenText, SimilarSnippets
from lsp_server.context.worker import INLINE_MAX_CHARS, WORKER_MIN_FILES, WORKER_NICE, worker_priority
from lsp_server.documents.store import Document


def write(root: Path, rel: str, text: str | bytes) -> Path:
    path = root / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(text)
    return path


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    root = tmp_path / "ws"
    write(root, "app/util.py",
          "def helper(a):\n    return a + 1\n\n\nclass Shape:\n    def area(self):\n        return 0\n")
    write(root, "app/build/out.py", "def built():\n    pass\n")
    write(root, "app/sub/.gitignore", "local_*.py\n")
    write(root, "app/sub/local_conf.py", "def local_setting():\n    pass\n")
    write(root, "app/sub/kept.py", "def kept_fn():\n    pass\n")
    write(root, ".gitignore", "build/\n")
    write(root, "app/secrets.py", "def api_key():\n    return 'x'\n")
    write(root, ".env", "TOKEN=abc\n")
    write(root, "app/blob.py", b"def nope():\x00\x01\x02 pass\n")
    write(root, "vendor/lib.py", "def vendored():\n    pass\n")
    write(tmp_path / "outside", "far.py", "def far_away():\n    pass\n")
    os.symlink(tmp_path / "outside" / "far.py", root / "app" / "link.py")
    return root


def test_privacy_rules_gitignore_secrets_binaries_outside(tree: Path) -> None:
    rules = Rules([str(tree)], exclude=["vendor/"])
    files = {os.path.relpath(p, tree) for p in source_files(rules)}
    assert files == {"app/util.py", "app/sub/kept.py", "app/blob.py"}  # the binary is refused when read
    assert read_source(str(tree / "app" / "blob.py"), rules) is None
    assert read_source(str(tree / "app" / "util.py"), rules) is not None
    for refused in ("app/build/out.py", "app/sub/local_conf.py", "app/secrets.py", ".env", "vendor/lib.py",
                    "app/link.py"):
        assert not rules.may_read(str(tree / refused)), refused
        assert read_source(str(tree / refused), rules) is None, refused
    assert not rules.may_read(str(tree.parent / "outside" / "far.py"))
    assert looks_secret("config/id_rsa") and looks_secret("deploy/key.pem") and not looks_secret("app/keys.py")
    assert looks_binary(b"\x89PNG\r\n\x1a\n\x00") and not looks_binary("naïve = 1\n".encode())


def test_open_documents_outside_the_workspace_are_usable_but_not_secrets(tree: Path) -> None:
    rules = Rules([str(tree)])
    assert rules.may_use_open(str(tree.parent / "outside" / "far.py"))
    assert not rules.may_use_open(str(tree.parent / "outside" / ".env"))
    assert not rules.may_use_open(str(tree / "app" / "build" / "out.py"))


def test_symbols_across_languages() -> None:
    def names(src: str, grammar: str) -> list[str]:
        found = symbols.extract(src.encode(), grammar)
        assert found is not None
        return [s.name for s in found]

    assert names("@dec\ndef top():\n    def inner(): pass\nclass Box:\n    def put(self): pass\nLIMIT = 3\n",
                 "python") == ["top", "Box", "put", "LIMIT"]
    assert names("export function run(a) {}\nclass Car { drive() {} }\nconst speed = () => 1;\n",
                 "javascript") == ["run", "Car", "drive", "speed"]
    assert names("func Add(a int) int { return a }\ntype Pair struct {}\n", "go") == ["Add", "Pair"]
    assert names("struct Vec {}\nimpl Vec { fn len(&self) {} }\n", "rust") == ["Vec", "len"]
    assert symbols.extract(b"x", "no-such-grammar") is None


def test_index_build_lookup_update_and_bounds(tree: Path) -> None:
    index = SymbolIndex()
    indexer = Indexer(index)
    try:
        assert indexer.rebuild(Rules([str(tree)]), dict).result(timeout=60) == 4  # vendor/ is not excluded here
        assert indexer.ready and index.lookup("vendored") and not index.lookup("nope")
        [d] = index.lookup("helper")
        assert (d.path, d.start, d.end) == (str(tree / "app" / "util.py"), 0, 2)
        assert index.lookup("built") == [] and index.lookup("api_key") == [] and index.lookup("far_away") == []
        util = str(tree / "app" / "util.py")
        indexer.update(util, lambda: "def renamed():\n    pass\n")
        indexer.wait(10)
        assert index.lookup("helper") == [] and index.lookup("renamed")[0].path == util
        indexer.update(util, lambda: None)  # closed: the file on disk counts again
        indexer.wait(10)
        assert index.lookup("helper") and not index.lookup("renamed")
        indexer.remove(util)
        indexer.wait(10)
        assert index.lookup("helper") == [] and util not in index
    finally:
        indexer.shutdown()
    small = SymbolIndex(max_files=1)
    assert small.put("a.py", [symbols.Symbol("one", 0, 1)])
    assert not small.put("b.py", [symbols.Symbol("two", 0, 1)])  # full: bounded memory
    assert small.stats() == {"files": 1, "definitions": 1, "names": 1}


def piece(name: str, lines: int, score: float, start: int = 0, uri: str | None = None) -> Piece:
    text = "".join(f"{name} line {i}\n" for i in range(lines))
    return Piece(uri or f"file:///{name}.py", f"{name}.py", start, start + lines, text, name, score)


def test_packer_budget_order_and_overlap() -> None:
    count = estimate_tokens
    big = piece("big", 200, 9.0)
    best = piece("best", 3, 10.0)
    same_place = piece("best", 3, 5.0, start=1, uri="file:///best.py")
    low = piece("low", 3, 1.0)
    packed = pack([low, big, same_place, best], budget=150, count=count, current_path="main.py")
    reasons = [p.reason for p in packed.pieces]
    assert reasons[-2:] == ["big (cut)", "best"] and reasons.count("best") == 1  # most relevant last; no overlap
    assert [p.score for p in packed.pieces] == sorted(p.score for p in packed.pieces)
    cut = packed.pieces[-2]
    assert 3 <= cut.end_line - cut.start_line < 200 and cut.text == "".join(big.text.splitlines(True)[:cut.end_line])
    assert pack([low], budget=150, count=count).pieces[0].reason == "low"
    assert packed.used <= 150 and packed.used == sum(p.tokens for p in packed.pieces) + count(file_header("main.py"))
    assert pack([best], budget=0, count=count).pieces == ()
    assert pack([big], budget=8, count=count).pieces == ()  # not even 3 lines fit


def test_engine_fit_context_drops_least_relevant_first() -> None:
    pieces = [ContextPiece("a.py", "aaaa\n" * 40), ContextPiece("b.py", "def b():\n    pass\n")]
    text = fit_context(pieces, "main.py", estimate_tokens, 20)
    assert text == "# file: b.py\ndef b():\n    pass\n\n# file: main.py\n"
    assert fit_context(pieces, "main.py", estimate_tokens, 0) == ""


def test_recent_chunks_dedupe_by_overlap_and_ring() -> None:
    recent = RecentChunks(capacity=3, lines=10)
    text = "".join(f"line {i}\n" for i in range(100))
    recent.note("file:///a", "a", text, 20)
    recent.note("file:///a", "a", text, 22)  # overlaps the first by more than half: replaces it
    assert len(recent) == 1
    for uri in ("file:///b", "file:///c", "file:///d"):
        recent.note(uri, uri[-1], text, 50)
    assert [p.uri for p in recent.candidates("file:///c")] == ["file:///b", "file:///d"]


def test_service_gathers_definition_similar_and_recent(tree: Path) -> None:
    service = ContextService()
    try:
        service.start([str(tree)], [], dict).result(timeout=60)
        main_uri = (tree / "app" / "main.py").as_uri()
        other_uri = (tree / "app" / "notes.py").as_uri()
        main = Document(main_uri, "from app.util import helper\n\n\ndef go(shape_area):\n    return helper(", 1)
        other = Document(other_uri, "def go_fast(shape_area):\n    return shape_area * 2\n", 1, "python")
        service.document_changed(other, 0)
        docs = {main.uri: main, other.uri: other}
        packed = service.gather(main, len(main.text), docs, budget=200)
        reasons = [p.reason for p in packed.pieces]
        assert reasons[-1] == "definition of helper"  # the most relevant is nearest the cursor's file
        assert packed.pieces[-1].text == "def helper(a):\n    return a + 1\n"
        assert packed.pieces[-1].uri == (tree / "app" / "util.py").as_uri()
        assert any(r.startswith("similar code") for r in reasons)
        assert packed.path == "app/main.py"
        secret = Document((tree / ".env").as_uri(), "TOKEN=abc\nhelper(", 1)
        assert service.gather(secret, len(secret.text), docs, budget=200).pieces == ()
    finally:
        service.shutdown()


def test_large_builds_parse_in_a_niced_worker_process_with_the_same_index(tmp_path: Path) -> None:
    root = tmp_path / "big"
    for i in range(WORKER_MIN_FILES + 6):
        write(root, f"pkg/m{i}.py", f"import os\n\n\n@deco\ndef fn_{i}(a):\n    return a\n\n\nclass K{i}:\n"
                                    f"    def meth_{i}(self):\n        pass\n")
    index = SymbolIndex()
    indexer = Indexer(index)
    try:
        assert indexer.rebuild(Rules([str(root)]), dict).result(timeout=120) == WORKER_MIN_FILES + 6
        assert indexer.worker.running  # the build went to the worker process
        assert indexer.worker.call(worker_priority) == WORKER_NICE and os.getpriority(os.PRIO_PROCESS, 0) < 19
        for i in (0, WORKER_MIN_FILES + 5):
            path = str(root / "pkg" / f"m{i}.py")
            inline = symbols.extract(Path(path).read_bytes(), "python")
            assert inline is not None
            got = [(d.name, d.start, d.end) for s in inline for d in index.lookup(s.name) if d.path == path]
            assert got == [(s.name, s.start, s.end) for s in inline]
            assert [s.name for s in inline] == [f"fn_{i}", f"K{i}", f"meth_{i}"]
            [d] = index.lookup(f"fn_{i}")
            assert (d.start, d.stamp) == (3, (os.stat(path).st_mtime_ns, os.stat(path).st_size))
            assert read_span(path, d.stamp, d.first_byte, d.end_byte, 8192) == f"@deco\ndef fn_{i}(a):\n    return a\n"
        big = "".join(f"def huge_{n}():\n    return {n}\n" for n in range(1500))
        assert len(big) > INLINE_MAX_CHARS
        indexer.update(str(root / "pkg" / "open.py"), lambda: big)
        indexer.wait(60)
        assert index.lookup("huge_1499")[0].start == 2998 and index.lookup("huge_1499")[0].stamp is None
    finally:
        indexer.shutdown()


def test_definitions_are_read_by_their_bytes_unless_the_file_changed(tree: Path) -> None:
    util = tree / "app" / "util.py"
    [d] = [d for d in _built(tree).lookup("helper")]
    assert read_span(str(util), d.stamp, d.first_byte, d.end_byte, 8192) == "def helper(a):\n    return a + 1\n"
    assert read_span(str(util), (1, 2), d.first_byte, d.end_byte, 8192) is None  # another version: not misread
    assert read_span(str(util), d.stamp, d.first_byte, d.end_byte, 20) == "def helper(a):\n"  # cut at a line end
    service = ContextService()
    try:
        service.start([str(tree)], [], dict).result(timeout=60)
        main = Document((tree / "app" / "main.py").as_uri(), "from app.util import helper\n\nhelper(", 1)
        util.write_text("def helper(a, b):\n    return a - b\n\n\nclass Shape:\n    pass\n")  # no watcher event
        packed = service.gather(main, len(main.text), {main.uri: main}, budget=200)
        assert [p.text for p in packed.pieces if p.reason == "definition of helper"] == [
            "def helper(a, b):\n    return a - b\n"]  # the stale stamp sent it to the whole new file
    finally:
        service.shutdown()


def _built(tree: Path) -> SymbolIndex:
    index = SymbolIndex()
    indexer = Indexer(index)
    try:
        indexer.rebuild(Rules([str(tree)]), dict).result(timeout=60)
    finally:
        indexer.shutdown()
    return index


def test_packer_counts_only_about_what_can_fit() -> None:
    counted: list[int] = []

    def count(text: str) -> int:
        counted.append(len(text))
        return estimate_tokens(text)

    huge = piece("huge", 5000, 9.0)
    packed = pack([huge], budget=100, count=count)
    [cut] = packed.pieces
    assert cut.reason == "huge (cut)" and cut.end_line - cut.start_line >= 3 and packed.used <= 100
    assert max(counted) <= 1.25 * 100 * 4  # the 5,000 lines were cut by characters before counting


def test_similar_windows_follow_new_versions() -> None:
    similar = SimilarSnippets()
    doc = OpenText("file:///o.py", "o.py", 1, "def alpha_beta(gamma_delta):\n    return gamma_delta\n")
    similar.prepare(doc)
    lines = ["x = alpha_beta(gamma_delta)"]
    assert [p.start_line for p in similar.candidates(lines, 0, "file:///m.py", [doc])] == [0]
    changed = OpenText(doc.uri, doc.path, 2, "def unrelated_name():\n    pass\n")
    assert similar.candidates(lines, 0, "file:///m.py", [changed]) == []
    assert similar.candidates(lines, 0, "file:///m.py", [doc]) != []  # back to the old version: recomputed


def test_the_worker_process_ends_when_the_server_is_killed(tmp_path: Path) -> None:
    import signal
    import subprocess
    import sys
    import time

    script = ("import os, sys\nfrom lsp_server.context.worker import ParseWorker\n"
              "w = ParseWorker()\nprint(w.call(os.getpid), flush=True)\nsys.stdin.read()\n")
    server = subprocess.Popen([sys.executable, "-c", script], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                              text=True, cwd=Path(__file__).parent.parent)
    try:
        assert server.stdout is not None
        worker = int(server.stdout.readline())
        os.kill(worker, 0)  # running
        server.send_signal(signal.SIGKILL)
        server.wait(10)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                os.kill(worker, 0)
            except ProcessLookupError:
                return
            time.sleep(0.1)
        pytest.fail("the index worker outlived the killed server")
    finally:
        server.kill()


def test_an_edited_document_is_parsed_once_typing_pauses(tmp_path) -> None:
    """Keystrokes queue one parse, run after the last key plus the quiet time, with the
    latest text (a parse per key held the GIL that the key's completion needed)."""
    import time

    from lsp_server.context.index import Indexer, SymbolIndex

    parsed: list[str] = []
    indexer = Indexer(SymbolIndex())
    try:
        path = str(tmp_path / "typing.py")
        start = time.monotonic()
        for n in range(5):
            text = f"def typed_{n}():\n    pass\n"
            indexer.update(path, lambda text=text: parsed.append(text) or text, quiet_s=0.3)
            time.sleep(0.05)
        indexer.wait(5)
        waited = time.monotonic() - start
    finally:
        indexer.shutdown()
    assert parsed == ["def typed_4():\n    pass\n"]
    assert waited >= 0.2 + 0.3 * 0.9
    assert [d.path for d in indexer.index.lookup("typed_4")] == [path]


def test_a_typed_document_waiting_for_a_pause_does_not_hold_up_other_updates(tmp_path) -> None:
    import time

    from lsp_server.context.index import Indexer, SymbolIndex

    indexer = Indexer(SymbolIndex())
    try:
        typed, other = str(tmp_path / "typed.py"), str(tmp_path / "other.py")
        indexer.update(typed, lambda: "def typed():\n    pass\n", quiet_s=2.0)
        time.sleep(0.05)  # the typed update is on the index thread, waiting for the pause
        indexer.update(other, lambda: "def other():\n    pass\n")
        deadline = time.monotonic() + 1.5
        while not indexer.index.lookup("other") and time.monotonic() < deadline:
            time.sleep(0.02)
        assert indexer.index.lookup("other"), "the other file waited for the typing pause"
        assert not indexer.index.lookup("typed")
        indexer.wait(5)
        assert indexer.index.lookup("typed")
    finally:
        indexer.shutdown()
