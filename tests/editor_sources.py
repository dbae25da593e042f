"""What the real-editor tests open: one Python file, shared so every editor is tested on the same
code, and a hostile repository (a project whose editor settings try to run its own code)."""
from __future__ import annotations

import json
import shlex
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

SHAPES = '''import os


def area(width, height):
    return width * height


def perimeter(width, height):
    result = 


def main():
    total = 0

    print(total)
'''

#: the same file with a class after it (the Neovim tests also fill inside a method)
SHAPES_WITH_CLASS = SHAPES + '\n\nclass Shape:\n    def describe(self):\n        return "a shape"\n'


# -- a hostile repository ---------------------------------------------------------
# What a cloned repository could ship to take over the diffill server through editor
# settings (issue 18). Every attack writes its own marker file into a directory outside
# the workspace, so a test sees exactly which one ran.


def remote_code_model(directory: Path, marker: Path) -> Path:
    """A model directory whose configuration class is its own code: importing it writes ``marker``."""
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "config.json").write_text(json.dumps({
        "model_type": "diffill_remote_code_probe",
        "auto_map": {"AutoConfig": "configuration_probe.ProbeConfig"},
    }))
    (directory / "configuration_probe.py").write_text(
        "from pathlib import Path\n"
        "from transformers import PretrainedConfig\n\n"
        f"Path({str(marker)!r}).write_text('remote code ran')\n\n\n"
        "class ProbeConfig(PretrainedConfig):\n"
        "    model_type = 'diffill_remote_code_probe'\n")
    return directory


def _script(path: Path, body: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("#!/bin/sh\n" + body)
    path.chmod(0o755)
    return path


@dataclass
class HostileWorkspace:
    root: Path
    markers: Path
    server_command: Path   # a program that only writes its marker
    python: Path           # an "interpreter" that only writes its marker
    env: dict[str, str]    # LD_PRELOAD (when a C compiler is here) and PYTHONPATH with sitecustomize
    path_dir: Path         # holds a `diffill` that only writes its marker
    model: Path            # a model whose own code writes its marker
    log_file: Path         # where the repository would have the server log
    args: list[str]        # server arguments that would log to a marker

    def ran(self) -> list[str]:
        """The attacks whose marker exists."""
        return sorted(p.name for p in self.markers.iterdir())


def hostile_workspace(root: Path, markers: Path) -> HostileWorkspace:
    """A project (``shapes.py``, ``.git``) holding every attack; markers go to ``markers``."""
    root.mkdir(parents=True)
    markers.mkdir(parents=True)
    (root / ".git").mkdir()
    (root / "shapes.py").write_text(SHAPES)
    attack = root / ".attack"
    server_command = _script(attack / "server.sh", f"echo ran > '{markers}/server-command'\nexit 1\n")
    python = _script(attack / "python", f"echo ran > '{markers}/python-path'\nexit 1\n")
    pypath = attack / "pypath"
    pypath.mkdir()
    (pypath / "sitecustomize.py").write_text(f"open({str(markers / 'pythonpath-env')!r}, 'w').write('ran')\n")
    env = {"PYTHONPATH": str(pypath), "LD_PRELOAD": str(attack / "preload.so")}
    cc = shutil.which("cc") or shutil.which("gcc")
    if cc:  # without a compiler the variable is still set: the tests check it never reaches the server
        src = attack / "preload.c"
        src.write_text('#include <stdio.h>\n__attribute__((constructor)) static void ran(void) {\n'
                       f'  FILE *f = fopen("{markers}/ld-preload", "w");\n'
                       '  if (f) { fputs("ran", f); fclose(f); }\n}\n')
        subprocess.run([cc, "-shared", "-fPIC", "-o", env["LD_PRELOAD"], str(src)], check=True, timeout=60)
    # a `diffill` found first on a PATH / exec-path the repository sets
    path_dir = attack / "bin"
    _script(path_dir / "diffill", f"echo ran > '{markers}/exec-path'\nexit 1\n")
    # `python -m lsp_server` started in this folder would import this package instead of diffill's
    (root / "lsp_server").mkdir()
    (root / "lsp_server" / "__init__.py").write_text("")
    (root / "lsp_server" / "__main__.py").write_text(f"open({str(markers / 'cwd-module')!r}, 'w').write('ran')\n")
    model = remote_code_model(root / "evil-model", markers / "remote-code")
    return HostileWorkspace(root=root, markers=markers, server_command=server_command, python=python, env=env,
                            path_dir=path_dir, model=model, log_file=markers / "log-file",
                            args=["serve", "--log-file", str(markers / "args-log-file")])


# -- the user's own launcher ----------------------------------------------------------

RECORDER = """import json, os, sys
with open(sys.argv[1], "a") as f:
    f.write(json.dumps({"argv": sys.argv[2:], "cwd": os.getcwd(), "env": dict(os.environ)}) + "\\n")
"""


def user_launcher(user_dir: Path, name: str, record: Path, target: list[str]) -> Path:
    """The user's own launcher (outside any workspace): appends how it was started (arguments,
    working directory, environment) to ``record`` as a JSON line, then runs ``target`` with them."""
    user_dir.mkdir(parents=True, exist_ok=True)
    (user_dir / "record.py").write_text(RECORDER)
    quoted = " ".join(shlex.quote(t) for t in target)
    return _script(user_dir / name, f'"{sys.executable}" -I "{user_dir / "record.py"}" "{record}" "$@"\n'
                                    f'exec {quoted} "$@"\n')


def server_starts(record: Path) -> list[dict]:
    return [json.loads(line) for line in record.read_text().splitlines()] if record.exists() else []


def assert_started_as_the_user_configured(starts: list[dict], argv: list[str], workspace: Path,
                                          injected_env: dict[str, str]) -> None:
    """Every server start had exactly the user's arguments, none of the workspace's environment
    and a working directory outside the workspace."""
    assert starts, "the user's server was never started"
    for start in starts:
        assert start["argv"] == argv
        for key, value in injected_env.items():
            assert value not in start["env"].get(key, ""), f"{key} from the workspace reached the server"
        cwd = Path(start["cwd"]).resolve()
        assert cwd != workspace and workspace not in cwd.parents, f"the server ran in the workspace: {cwd}"
