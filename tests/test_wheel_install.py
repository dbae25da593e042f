"""The built package, installed away from the source tree, works as a tool: `python -m build`
makes an sdist and a wheel (the wheel built from the sdist) that carry the bundled model, the
catalog and every data file of the packages, and the wheel, installed by pip into a new
virtual environment and run from another directory, answers `diffill --version`, `diffill
doctor`, `diffill fill` and `diffill serve` (initialize and one inline completion over stdio).

The tests run offline, so the new environment cannot download the wheel's dependencies.
Instead it sees exactly the distributions that the wheel's own metadata requires, resolved
from this environment (``Requires-Dist`` followed transitively, markers evaluated, no extras)
and linked into a directory that the new environment adds as a site directory; pip
(``--no-index``) then finds every requirement satisfied or fails.  Nothing else of this
environment is visible there: not the editable checkout, not the test tools, not matplotlib,
so an import that the metadata does not declare fails as it would on a user's machine.
Copying torch instead of linking it would cost about a minute per run on the 2-core CI machine
for no more truth about the package.
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tarfile
import zipfile
from collections.abc import Iterator
from email.parser import Parser
from importlib import metadata
from pathlib import Path
from typing import NamedTuple

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from raw_lsp_client import RawLspClient

from diffill import __version__

#: starts processes or trains/loads models: left out of the quick loop (pytest -m 'not slow and not editor')
pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("diffill", "engine", "lsp_server")
#: generous: the machine running the tests is shared and loaded
WAIT_S = 120.0


def source_files() -> list[str]:
    """The files a clone has (tracked, or new and not ignored), as paths relative to the root."""
    if shutil.which("git") is None or not (ROOT / ".git").exists():
        pytest.skip("needs the git checkout to know which files are the project's")
    out = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"], cwd=ROOT,
                         capture_output=True, check=True).stdout.decode()
    return sorted(p for p in out.split("\0") if p and (ROOT / p).is_file())


def requirement_closure(requires: list[str]) -> dict[str, metadata.Distribution]:
    """The distributions of this environment that ``requires`` pulls in, transitively, as pip
    would install them (no extras unless a requirement names one); a requirement that this
    environment cannot satisfy fails the test."""
    installed = {canonicalize_name(d.metadata["Name"]): d for d in metadata.distributions()}
    found: dict[str, metadata.Distribution] = {}
    todo = [(Requirement(r), "") for r in requires]
    while todo:
        req, extra = todo.pop()
        if req.marker is not None and not req.marker.evaluate({"extra": extra}):
            continue
        name = canonicalize_name(req.name)
        dist = installed.get(name)
        assert dist is not None, f"{req} is required but not installed here"
        assert req.specifier.contains(dist.version, prereleases=True), f"{req}: {dist.version} is installed"
        if name not in found:
            found[name] = dist
            todo += [(Requirement(r), "") for r in dist.requires or []]
        for wanted in req.extras:
            todo += [(Requirement(r), wanted) for r in dist.requires or []]
    return found


def link_distributions(dists: dict[str, metadata.Distribution], into: Path) -> None:
    """Symbolic links to each distribution's top-level files and folders (its RECORD's)."""
    into.mkdir()
    for dist in dists.values():
        site = Path(str(dist.locate_file("")))
        for entry in {f.parts[0] for f in dist.files or [] if f.parts and f.parts[0] not in ("..", "__pycache__")}:
            target = into / entry
            if not target.exists() and (site / entry).exists():
                target.symlink_to(site / entry)


class Built(NamedTuple):
    sdist: Path
    wheel: Path
    files: list[str]  # the project's files the build started from


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Built:
    """sdist and wheel from a copy of the project's files (so nothing of the checkout is written)."""
    base = tmp_path_factory.mktemp("build")
    files = source_files()
    src = base / "src"
    for rel in files:
        (src / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(ROOT / rel, src / rel)
    proc = subprocess.run([sys.executable, "-m", "build", "--no-isolation", "--outdir", str(base / "dist"), str(src)],
                          capture_output=True, text=True, timeout=600, cwd=base)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    (sdist,) = (base / "dist").glob("diffill-*.tar.gz")
    (wheel,) = (base / "dist").glob("diffill-*.whl")
    return Built(sdist, wheel, files)


@pytest.fixture(scope="module")
def venv(built: Built, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A new virtual environment with the wheel installed by pip and its requirements linked in."""
    base = tmp_path_factory.mktemp("installed")
    env = base / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(env)], check=True, timeout=120)
    python = env / "bin" / "python"
    site = Path(subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"],
                               capture_output=True, text=True, check=True).stdout.strip())
    with zipfile.ZipFile(built.wheel) as wheel:
        (meta,) = [n for n in wheel.namelist() if n.endswith(".dist-info/METADATA")]
        requires = Parser().parsestr(wheel.read(meta).decode()).get_all("Requires-Dist") or []
    deps = requirement_closure(requires)
    link_distributions(deps, base / "deps")
    (site / "diffill-test-deps.pth").write_text(f"import site; site.addsitedir({str(base / 'deps')!r})\n")
    proc = subprocess.run([sys.executable, "-m", "pip", "--python", str(python), "install", "--no-index",
                           "--no-input", "--disable-pip-version-check", str(built.wheel)],
                          capture_output=True, text=True, timeout=300, cwd=base)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "Successfully installed diffill-" in proc.stdout, proc.stdout
    return env


def run_env(venv: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV", "PYTHONHOME")}
    return {**env, "PATH": f"{venv / 'bin'}{os.pathsep}{env.get('PATH', '')}", "OMP_NUM_THREADS": "1",
            "TOKENIZERS_PARALLELISM": "false"}


class Started:
    """A command of the new environment running in the background, its output in files."""

    def __init__(self, venv: Path, cwd: Path, name: str, *args: str) -> None:
        self.out, self.err = cwd / f"{name}.out", cwd / f"{name}.err"
        with self.out.open("wb") as out, self.err.open("wb") as err:
            self.proc = subprocess.Popen([str(venv / "bin" / args[0]), *args[1:]], stdout=out, stderr=err,
                                         stdin=subprocess.DEVNULL, cwd=cwd, env=run_env(venv))

    def result(self) -> subprocess.CompletedProcess[str]:
        code = self.proc.wait(timeout=WAIT_S * 2)
        return subprocess.CompletedProcess(self.proc.args, code, self.out.read_text(), self.err.read_text())


#: an import check run by the installed interpreter: where the packages come from, whether
#: matplotlib is there, and which of the context index's grammars do not load
CHECK = ("import importlib.metadata, importlib.util, json, diffill, engine, lsp_server;"
         "from lsp_server.context.languages import EXTENSIONS, parser_for;"
         "print(json.dumps({'files': [m.__file__ for m in (diffill, engine, lsp_server)],"
         " 'matplotlib': importlib.util.find_spec('matplotlib') is not None,"
         " 'distributions': sorted(d.metadata['Name'].lower() for d in importlib.metadata.distributions()),"
         " 'no_grammar': sorted(g for g in set(EXTENSIONS.values()) if parser_for(g) is None)}))")


@pytest.fixture(scope="module")
def started(venv: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Started]]:
    """The one-shot commands, started together from a directory outside the checkout: each loads
    torch and the model, so on two cores they run side by side (and beside the serve test)."""
    cwd = tmp_path_factory.mktemp("elsewhere")
    (cwd / "small.py").write_text("def add(a, b):\n    return \n", encoding="utf-8")
    procs = {
        "version": Started(venv, cwd, "version", "diffill", "--version"),
        "check": Started(venv, cwd, "check", "python", "-c", CHECK),
        "doctor": Started(venv, cwd, "doctor", "diffill", "doctor", "--device", "cpu"),
        "fill": Started(venv, cwd, "fill", "diffill", "fill", "small.py", "--line", "2", "--col", "12", "--json",
                        "--max-new-tokens", "8", "--device", "cpu"),
    }
    yield procs
    for started in procs.values():
        if started.proc.poll() is None:
            started.proc.kill()
            started.proc.wait()


def test_wheel_and_sdist_carry_every_package_file(built: Built) -> None:
    files = built.files
    package_files = {f for f in files if f.split("/", 1)[0] in PACKAGES}
    assert "engine/models/diffill-tiny/config.json" in package_files  # the listing is the real one
    with zipfile.ZipFile(built.wheel) as wheel:
        missing = package_files - set(wheel.namelist())
    assert not missing, f"not in the wheel: {sorted(missing)}"
    with tarfile.open(built.sdist) as sdist:
        names = {n.split("/", 1)[1] for n in sdist.getnames() if "/" in n}
    wanted = package_files | {"README.md", "pyproject.toml"} | {f for f in files if f.startswith("docs/")}
    missing = wanted - names
    assert not missing, f"not in the sdist: {sorted(missing)}"


def test_serve_answers_initialize_and_an_inline_completion(venv: Path, started: dict[str, Started],
                                                           tmp_path: Path) -> None:
    """Over stdio, as an editor starts it (the one-shot commands run meanwhile)."""
    client = RawLspClient([str(venv / "bin" / "diffill"), "serve"], env=run_env(venv), cwd=tmp_path,
                          stderr_path=tmp_path / "serve-stderr.log")
    try:
        response = client.call("initialize", {
            "processId": None, "rootUri": None, "capabilities": {"window": {"workDoneProgress": False}},
            "initializationOptions": {"device": "cpu", "threads": 1, "maxNewTokens": 8, "debounceMs": 0}},
            timeout=WAIT_S)
        assert "inlineCompletionProvider" in response["result"]["capabilities"], response
        client.notify("initialized", {})
        uri = (tmp_path / "small.py").as_uri()
        client.notify("textDocument/didOpen", {"textDocument": {
            "uri": uri, "languageId": "python", "version": 1, "text": "def add(a, b):\n    return \n"}})
        answer = client.call("textDocument/inlineCompletion", {
            "textDocument": {"uri": uri}, "position": {"line": 1, "character": 11},
            "context": {"triggerKind": 1}}, timeout=WAIT_S)
        assert "result" in answer, (answer, client.stderr_tail())
        items = answer["result"]["items"] if isinstance(answer["result"], dict) else answer["result"]
        assert isinstance(items, list)
        stats = client.call("diffill/stats", {}, timeout=WAIT_S)["result"]
        assert stats["engineLoaded"] and stats["engineStarted"] == 1 and stats["completed"] == 1, stats
        client.call("shutdown", timeout=WAIT_S)
        client.notify("exit")
        assert client.proc.wait(timeout=30) == 0
    finally:
        client.close()


def test_installed_away_from_the_source(venv: Path, started: dict[str, Started]) -> None:
    """The modules come from the new environment, every grammar the context index names loads
    (tree-sitter-language-pack's wheel carries them), and matplotlib (the bench extra) is absent."""
    proc = started["check"].result()
    assert proc.returncode == 0, proc.stderr
    found = json.loads(proc.stdout)
    assert all(Path(f).resolve().is_relative_to(venv.resolve()) for f in found["files"]), found["files"]
    assert found["no_grammar"] == []
    assert found["matplotlib"] is False and "matplotlib" not in found["distributions"]
    assert {"diffill", "torch", "tree-sitter-language-pack"} <= set(found["distributions"])


def test_version(started: dict[str, Started]) -> None:
    proc = started["version"].result()
    assert proc.returncode == 0 and proc.stdout.strip() == f"diffill {__version__}", proc.stdout + proc.stderr


def test_doctor(venv: Path, started: dict[str, Started]) -> None:
    proc = started["doctor"].result()
    assert proc.returncode == 0, proc.stdout + proc.stderr
    report = dict(line.split(": ", 1) for line in proc.stdout.splitlines() if ": " in line)
    assert report["status"] == "ok" and report["fill"] == "ok"
    assert Path(report["model_path"]).resolve().is_relative_to(venv.resolve())  # the bundled model, installed


def test_fill(started: dict[str, Started]) -> None:
    proc = started["fill"].result()
    assert proc.returncode == 0, proc.stdout + proc.stderr
    record = json.loads(proc.stdout)
    assert record["forwards"] >= 1 and record["tokens"] >= 1 and isinstance(record["middle"], str)
