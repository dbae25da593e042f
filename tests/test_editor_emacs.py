"""Emacs end to end: editors/emacs/diffill.el with eglot (Debian emacs-nox +
elpa-eglot), in batch mode, against a real `diffill serve` with a real (tiny,
random) model: completion-at-point inserts the infill, `diffill-fill` shows
drafts as an overlay and the server's workspace/applyEdit changes the buffer,
which is saved.
"""
from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from editor_sources import SHAPES

REPO = Path(__file__).resolve().parents[1]
PLUGIN = REPO / "editors" / "emacs"

SOURCE = SHAPES

# Debian's elpa-* packages live in /usr/share/emacs/site-lisp/elpa (Emacs 29+ has eglot built in)
ELPA_INIT = """(progn (require 'package)
  (add-to-list 'package-directory-list "/usr/share/emacs/site-lisp/elpa")
  (package-initialize))"""

TEST_EL = ELPA_INIT + r"""
(require 'json)
(let* ((cfg (json-read-file (getenv "DIFFILL_HARNESS")))
       (get (lambda (k) (alist-get k cfg)))
       (result nil)
       (put (lambda (k v) (setq result (cons (cons k v) (assq-delete-all k result)))))
       (wait (lambda (pred secs)
               (let ((end (+ (float-time) secs)))
                 (while (and (not (funcall pred)) (< (float-time) end))
                   (accept-process-output nil 0.05))
                 (funcall pred)))))
  (add-to-list 'load-path (funcall get 'plugin))
  (require 'diffill)
  (setq diffill-server-command (append (funcall get 'cmd) nil)
        diffill-settings (funcall get 'settings)
        eglot-confirm-server-initiated-edits nil
        eglot-sync-connect t
        eglot-connect-timeout 120)
  (diffill-eglot-setup '(python-mode))
  (condition-case err
      (progn
        (find-file (funcall get 'file))
        (funcall put 'mode (symbol-name major-mode))
        (apply #'eglot (eglot--guess-contact))
        (funcall put 'connected (if (eglot-current-server) t :json-false))
        (funcall wait (lambda () (member (plist-get diffill-status :state) '("ready" "error"))) 120)
        (funcall put 'status (plist-get diffill-status :state))
        ;; 1. completion-at-point after typing
        (goto-char (point-min))
        (search-forward "    result = ")
        (end-of-line)
        (insert "2 * (")
        (let ((before (buffer-substring (line-beginning-position) (line-end-position))))
          ;; the candidates eglot's completion table holds (asked for: the suggestion and its
          ;; alternatives), with the annotation eglot shows beside each (the item's detail)
          (let* ((capf (eglot-completion-at-point))
                 (table (nth 2 capf))
                 (annotate (plist-get (nthcdr 3 capf) :annotation-function))
                 (cands (all-completions (buffer-substring (nth 0 capf) (nth 1 capf)) table)))
            (funcall put 'candidates (vconcat cands))
            (funcall put 'annotations (vconcat (mapcar (lambda (c) (or (and annotate (funcall annotate c)) ""))
                                                       cands))))
          ;; as a completion UI does when the user takes the first candidate of the sorted list
          ;; (the model's best: eglot sorts by the items' sortText), exit function included
          (let ((completion-in-region-function
                 (lambda (start end table pred)
                   (let* ((typed (buffer-substring start end))
                          (meta (completion-metadata typed table pred))
                          (sort (or (completion-metadata-get meta 'display-sort-function) #'identity))
                          (choice (car (funcall sort (all-completions typed table pred))))
                          (exit (plist-get completion-extra-properties :exit-function)))
                     (when choice
                       (delete-region start end)
                       (goto-char start)
                       (insert choice)
                       (when exit (funcall exit choice 'finished)))
                     t))))
            (completion-at-point))
          (funcall put 'completion_before before)
          (funcall put 'completion_after (buffer-substring (line-beginning-position) (line-end-position))))
        ;; 2. diffill-fill on the empty line above print(total), drafts shown meanwhile
        (let ((drafts nil) (done nil) (before (buffer-string)))
          (add-hook 'diffill-draft-hook
                    (lambda (d) (push (list (cons 'step (plist-get d :step))
                                            (cons 'overlay (if (overlayp diffill--draft-overlay) t :json-false))
                                            (cons 'shown (and (overlayp diffill--draft-overlay)
                                                              (substring-no-properties
                                                               (overlay-get diffill--draft-overlay 'before-string)))))
                                      drafts)))
          (add-hook 'diffill-fill-done-hook (lambda (r) (setq done (or r t))))
          (goto-char (point-min))
          (search-forward "    print(total)")
          (forward-line -1)
          (diffill-fill)
          (funcall wait (lambda () done) 120)
          (funcall wait (lambda () (not (equal before (buffer-string)))) 5)
          (funcall put 'fill_result (if (listp done) (json-encode done) (format "%S" done)))
          (funcall put 'drafts (vconcat (reverse drafts)))
          (funcall put 'fill_changed (if (equal before (buffer-string)) :json-false t))
          (funcall put 'overlay_left (if (overlayp diffill--draft-overlay) t :json-false))
          (save-buffer)
          (funcall put 'final (buffer-string))))
    (error (funcall put 'error (format "%S" err))))
  (with-temp-file (funcall get 'out) (insert (json-encode result)))
  (ignore-errors (eglot-shutdown (eglot-current-server)))
  (kill-emacs 0))
"""


def server_cmd(model_dir: Path) -> list[str]:
    exe = Path(sys.executable).parent / "diffill"
    base = [str(exe)] if exe.exists() else [sys.executable, "-m", "diffill"]
    return base + ["serve", "--model", str(model_dir)]


def require_emacs() -> str:
    emacs = shutil.which("emacs")
    if emacs is None:
        pytest.skip("emacs not installed (run .ci/install-editors.sh: emacs-nox + elpa-eglot)")
    probe = subprocess.run([emacs, "--batch", "-Q", "--eval", ELPA_INIT + "(require 'eglot)"],
                           capture_output=True, text=True, timeout=60)
    if probe.returncode != 0:
        pytest.skip("eglot not available to emacs (apt-get install elpa-eglot)")
    return emacs


def run_emacs(tmp: Path, cmd: list[str], settings: dict, timeout_s: float = 300) -> dict:
    emacs = require_emacs()
    work = tmp / "proj"
    work.mkdir()
    (work / ".git").mkdir()  # a project root for eglot
    src = work / "shapes.py"
    src.write_text(SOURCE)
    out = tmp / "result.json"
    (tmp / "harness.json").write_text(json.dumps({
        "plugin": str(PLUGIN), "cmd": cmd, "settings": settings, "file": str(src), "out": str(out)}))
    (tmp / "test.el").write_text(TEST_EL)
    env = dict(os.environ, DIFFILL_HARNESS=str(tmp / "harness.json"), HOME=str(tmp))
    proc = subprocess.run([emacs, "--batch", "-Q", "-l", str(tmp / "test.el")], cwd=work, env=env,
                          capture_output=True, text=True, timeout=timeout_s)
    assert out.exists(), f"no result\n{proc.stdout}\n{proc.stderr[-3000:]}"
    res = json.loads(out.read_text())
    res["_saved"] = src.read_text()
    res["_stderr"] = proc.stderr[-3000:]
    return res


@pytest.fixture(scope="module")
def emacs_result(request, tmp_path_factory) -> dict:
    require_emacs()  # skip before building a model when the editor is missing
    tiny_model_dir = request.getfixturevalue("tiny_model_dir")
    return run_emacs(tmp_path_factory.mktemp("emacs"), server_cmd(tiny_model_dir),
                     {"device": "cpu", "maxNewTokens": 8, "debounceMs": 10})


def test_emacs_eglot_connects(emacs_result):
    assert "error" not in emacs_result, emacs_result
    assert emacs_result["mode"] == "python-mode"
    assert emacs_result["connected"] is True
    assert emacs_result["status"] == "ready"


def test_emacs_completion_lists_the_alternatives_with_their_confidence(emacs_result):
    r = emacs_result
    cands, notes = r["candidates"], r["annotations"]
    assert 1 <= len(cands) <= 3 and len(set(cands)) == len(cands), cands
    assert all(re.search(r"diffill, \d{1,3}% sure", n) for n in notes), notes


def test_emacs_completion_at_point_inserts(emacs_result):
    r = emacs_result
    assert r["completion_before"] == "    result = 2 * ("
    assert r["completion_after"].startswith(r["completion_before"])
    assert len(r["completion_after"]) > len(r["completion_before"]), r["_stderr"]


def test_emacs_fill_applies_and_saves(emacs_result):
    r = emacs_result
    result = json.loads(r["fill_result"])
    assert result.get("applied") is True, result
    assert r["fill_changed"] is True
    assert r["_saved"] == r["final"]
    assert r["_saved"] != SOURCE
    assert r["drafts"], "no diffill/draft displayed"
    assert all(d["overlay"] is True for d in r["drafts"])
    assert r["overlay_left"] is False
