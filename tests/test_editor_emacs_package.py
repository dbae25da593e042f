"""Emacs' conventions for editors/emacs/diffill.el, in the real Emacs (Debian emacs-nox 28.2) in
batch mode: checkdoc and package-lint (Debian elpa-package-lint) report nothing, and the file
installs as a package from a `git clone` of this repository, its commands and mode autoloaded.

package-lint checks that each dependency can be installed from a package archive; offline, a
local archive made with package-x from Debian's eglot 1.9 (elpa-eglot) stands in for GNU ELPA.
Emacs 28 has no `package-vc-install` (Emacs 29+), so the install test is `package-install-file`
of the one file, which is what package-vc-install does once it has cloned the repository and
found the file in :lisp-dir.
"""
from __future__ import annotations

import glob
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
EL = REPO / "editors" / "emacs" / "diffill.el"
DEBIAN_ELPA = "/usr/share/emacs/site-lisp/elpa"


def _emacs() -> str:
    emacs = shutil.which("emacs")
    if emacs is None:
        pytest.skip("emacs not installed (.ci/install-editors.sh)")
    return emacs


def batch(emacs: str, tmp: Path, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    """``emacs --batch -Q`` with HOME in ``tmp`` (no user init, no packages but the ones named)."""
    env = dict(os.environ, HOME=str(tmp))
    return subprocess.run([emacs, "--batch", "-Q", *args], capture_output=True, text=True, timeout=timeout,
                          env=env, cwd=tmp)


@pytest.fixture(scope="module")
def emacs() -> str:
    return _emacs()


@pytest.fixture(scope="module")
def local_archive(tmp_path_factory, emacs) -> Path:
    """A package archive (archive-contents) holding Debian's eglot, as GNU ELPA holds eglot."""
    sources = sorted(glob.glob("/usr/share/emacs/site-lisp/elpa-src/eglot-*/eglot.el"))
    if not sources:
        pytest.skip("Debian's elpa-eglot is not installed (.ci/install-editors.sh)")
    archive = tmp_path_factory.mktemp("elpa-archive")
    tmp = tmp_path_factory.mktemp("home")
    proc = batch(emacs, tmp, "--eval", f"""(progn (require 'package-x)
      (setq package-archive-upload-base "{archive}/")
      (package-upload-file "{sources[-1]}"))""")
    assert (archive / "archive-contents").exists(), proc.stderr
    return archive


def _package_setup(archive: Path, user_dir: Path) -> str:
    return f"""(progn (require 'package)
      (setq package-directory-list '("{DEBIAN_ELPA}")
            package-archives '(("local" . "{archive}/"))
            package-user-dir "{user_dir}")
      (package-initialize)
      (unless package-archive-contents (package-refresh-contents)))"""


def test_checkdoc_reports_nothing(emacs, tmp_path):
    proc = batch(emacs, tmp_path, "--eval", f"""(progn (require 'checkdoc)
      (setq checkdoc-arguments-in-order-flag t checkdoc-verb-check-experimental-flag t)
      (checkdoc-file "{EL}"))""")
    assert proc.returncode == 0, proc.stderr
    warnings = [line for line in proc.stderr.splitlines() if re.match(r".*diffill\.el:\d+:", line)]
    assert warnings == [], "\n".join(warnings)


def test_package_lint_reports_nothing(emacs, tmp_path, local_archive):
    if not glob.glob(f"{DEBIAN_ELPA}/package-lint-*"):
        pytest.skip("Debian's elpa-package-lint is not installed (.ci/install-editors.sh)")
    proc = batch(emacs, tmp_path, "--eval", _package_setup(local_archive, tmp_path / "elpa"),
                 "--eval", "(require 'package-lint)", "-f", "package-lint-batch-and-exit", str(EL))
    issues = [line for line in (proc.stdout + proc.stderr).splitlines() if re.match(r".*diffill\.el:\d+:\d+:", line)]
    assert proc.returncode == 0 and issues == [], "\n".join(issues) or proc.stderr


def test_commands_and_mode_carry_autoload_cookies():
    text = EL.read_text()
    forms = re.findall(r"(;;;###autoload\n)?\((defun|define-minor-mode) (diffill[-\w]*)[^\n]*\n((?:  [^\n]*\n)*)",
                       text)
    public = {name: bool(cookie) for cookie, kind, name, body in forms
              if kind == "define-minor-mode" or ("(interactive" in body and "--" not in name)}
    assert {"diffill-fill", "diffill-mode"} <= set(public), public
    assert all(public.values()), f"no autoload cookie: {[n for n, c in public.items() if not c]}"


def test_installs_from_a_clone_with_its_autoloads(emacs, tmp_path, local_archive):
    if not (REPO / ".git").exists() or shutil.which("git") is None:
        pytest.skip("not a git checkout")
    clone = tmp_path / "diffill"
    subprocess.run(["git", "clone", "--quiet", "--no-hardlinks", str(REPO), str(clone)], check=True, timeout=120,
                   capture_output=True)
    user_dir = tmp_path / "elpa"
    setup = _package_setup(local_archive, user_dir)
    proc = batch(emacs, tmp_path, "--eval", setup,
                 "--eval", f"""(package-install-file "{clone / 'editors' / 'emacs' / 'diffill.el'}")""")
    assert proc.returncode == 0, proc.stderr
    assert "Error" not in proc.stderr, proc.stderr
    installed = list(user_dir.glob("diffill-*"))
    assert len(installed) == 1 and (installed[0] / "diffill.elc").exists(), (installed, proc.stderr)
    # a fresh Emacs: package-initialize loads the autoloads, and the mode loads diffill on first use
    out = tmp_path / "out.txt"
    proc = batch(emacs, tmp_path, "--eval", setup, "--eval", f"""(with-temp-file "{out}"
      (insert (format "%S\\n" (list (package-installed-p 'diffill)
                                    (featurep 'diffill)
                                    (autoloadp (symbol-function 'diffill-fill))
                                    (autoloadp (symbol-function 'diffill-mode))
                                    (autoloadp (symbol-function 'diffill-eglot-setup)))))
      (insert (format "%S\\n" (with-temp-buffer
                                 (diffill-mode 1)
                                 (list (featurep 'diffill) diffill-mode (symbol-file 'diffill-fill))))))""")
    assert proc.returncode == 0, proc.stderr
    before, after = out.read_text().splitlines()
    assert before == "(t nil t t t)", before
    assert after.startswith("(t t ") and str(installed[0]) in after, after
