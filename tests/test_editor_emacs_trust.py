"""Emacs: a cloned repository cannot run code or redirect the server through its
.dir-locals.el (issue 18).

The project's .dir-locals.el sets the server command, `process-environment` (LD_PRELOAD,
PYTHONPATH), `exec-path` (a `diffill` of its own first), `diffill-settings` with a model of
its own whose code writes a marker, trust for that model and a log file, and the same in
`eglot-workspace-configuration` (which eglot declares safe, so Emacs applies it without
asking). The project also holds an `lsp_server` package that `python -m lsp_server` would
import if the server were started in the project's root, as eglot does.

The user's init starts diffill with `("diffill" ...)` found on their exec-path: a launcher
that records its arguments, working directory and environment and runs
`python -m lsp_server`. Emacs 28 + Debian elpa-eglot in batch mode, twice:
  * `enable-local-variables :safe` (only what is declared safe applies): the risky
    settings are not applied, eglot-workspace-configuration's unsafe keys are dropped;
  * every prompt answered "yes" (the reflex): even then the server is the user's, no
    marker appears, trust and the log file never come from the project, and the risky
    variables were asked about as risky.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from editor_sources import (
    HostileWorkspace,
    assert_started_as_the_user_configured,
    hostile_workspace,
    server_starts,
    user_launcher,
)
from test_editor_emacs import ELPA_INIT, PLUGIN, require_emacs
from test_editor_vscode import ARTIFACTS

TEST_EL = ELPA_INIT + r"""
(require 'json)
(let* ((cfg (json-read-file (getenv "DIFFILL_HARNESS")))
       (get (lambda (k) (alist-get k cfg)))
       (result nil)
       (asked nil)
       (put (lambda (k v) (setq result (cons (cons k v) (assq-delete-all k result)))))
       (names (lambda (vars) (vconcat (mapcar (lambda (e) (symbol-name (car e))) vars))))
       (wait (lambda (pred secs)
               (let ((end (+ (float-time) secs)))
                 (while (and (not (funcall pred)) (< (float-time) end))
                   (accept-process-output nil 0.05))
                 (funcall pred)))))
  (add-to-list 'load-path (funcall get 'plugin))
  (require 'diffill)
  ;; the user's init file
  (setq diffill-server-command (append (funcall get 'cmd) nil)
        diffill-settings (car (read-from-string (funcall get 'settings)))
        exec-path (cons (funcall get 'user_bin) exec-path)
        eglot-sync-connect t
        eglot-connect-timeout 120)
  (setenv "DIFFILL_USER_ENV" "from-user")
  (diffill-eglot-setup '(python-mode))
  (if (equal (funcall get 'answer) "safe")
      (setq enable-local-variables :safe)
    ;; batch Emacs cannot ask: answer "y" as a user trusting by reflex would, and record the question
    (advice-add 'hack-local-variables-confirm :override
                (lambda (_all unsafe risky _dir)
                  (setq asked (list (cons 'unsafe (funcall names unsafe)) (cons 'risky (funcall names risky))))
                  t)))
  (condition-case err
      (progn
        (find-file (funcall get 'file))
        (funcall put 'asked asked)
        (funcall put 'local_vars (vconcat (mapcar #'symbol-name
                                                  (cl-remove-if-not #'local-variable-p
                                                                    '(diffill-settings diffill-server-command
                                                                      process-environment exec-path
                                                                      eglot-workspace-configuration
                                                                      diffill-fill-timeout)))))
        (apply #'eglot (eglot--guess-contact))
        (funcall put 'connected (if (eglot-current-server) t :json-false))
        (funcall wait (lambda () (member (plist-get diffill-status :state) '("ready" "error"))) 120)
        (funcall put 'status (plist-get diffill-status :state))
        (funcall put 'status_message (plist-get diffill-status :message))
        (funcall put 'ignored (vconcat (mapcar (lambda (e) (format "%s: %s" (nth 1 e) (nth 2 e)))
                                               diffill-ignored-project-settings))))
    (error (funcall put 'error (format "%S" err))))
  (with-temp-file (funcall get 'out) (insert (json-encode result)))
  (ignore-errors (eglot-shutdown (eglot-current-server)))
  (kill-emacs 0))
"""


def elisp(value) -> str:
    """A Python value as Emacs Lisp data: str, bool, number, list (-> list), tuple (-> vector), dict (-> plist)."""
    if isinstance(value, bool):
        return "t" if value else ":json-false"
    if isinstance(value, str):
        return json.dumps(value)
    if isinstance(value, (int, float)):
        return str(value)
    if isinstance(value, tuple):
        return "[" + " ".join(elisp(v) for v in value) + "]"
    if isinstance(value, list):
        return "(" + " ".join(elisp(v) for v in value) + ")"
    if isinstance(value, dict):
        return "(" + " ".join(f":{k} {elisp(v)}" for k, v in value.items()) + ")"
    raise TypeError(value)


def dir_locals(ws: HostileWorkspace, environ: dict[str, str]) -> str:
    """The project's .dir-locals.el; its `process-environment` is ``environ`` plus its own variables."""
    hostile = {"model": str(ws.model), "trustRemoteCode": (str(ws.model),), "logFile": str(ws.log_file),
               "allowDownload": True}
    env = [f"{k}={v}" for k, v in ws.env.items()] + [f"PATH={ws.path_dir}:{os.environ.get('PATH', '')}"]
    env += [f"{k}={v}" for k, v in environ.items() if k not in ws.env and k != "PATH"]
    variables = [
        ("diffill-server-command", elisp([str(ws.server_command), *ws.args])),
        ("diffill-settings", elisp({**hostile, "maxNewTokens": 4})),
        ("diffill-fill-timeout", "30"),
        ("process-environment", elisp(env)),
        ("exec-path", elisp([str(ws.path_dir), *os.environ.get("PATH", "").split(":")])),
        ("eglot-workspace-configuration", elisp({"diffill": {**hostile, "multiline": "never"}})),
    ]
    return "((nil . (" + "\n  ".join(f"({name} . {value})" for name, value in variables) + ")))\n"


def open_hostile_project(tmp: Path, model_dir: Path, answer: str) -> dict:
    emacs = require_emacs()
    ws = hostile_workspace(tmp / "project", tmp / "markers")
    user_bin, record = tmp / "user-bin", tmp / "server-starts.jsonl"
    user_launcher(user_bin, "diffill", record, [sys.executable, "-m", "lsp_server"])
    user_args = ["--model", str(model_dir), "--device", "cpu"]
    out = tmp / "result.json"
    (tmp / "harness.json").write_text(json.dumps({
        "plugin": str(PLUGIN), "cmd": ["diffill", *user_args], "settings": elisp({"debounceMs": 10}),
        "user_bin": str(user_bin), "answer": answer, "file": str(ws.root / "shapes.py"), "out": str(out)}))
    (tmp / "test.el").write_text(TEST_EL)
    env = {k: v for k, v in os.environ.items() if k not in ("LD_PRELOAD", "PYTHONPATH")}
    env.update(DIFFILL_HARNESS=str(tmp / "harness.json"), HOME=str(tmp))
    (ws.root / ".dir-locals.el").write_text(dir_locals(ws, env))
    proc = subprocess.run([emacs, "--batch", "-Q", "-l", str(tmp / "test.el")], cwd=ws.root, env=env,
                          capture_output=True, text=True, timeout=300)
    assert out.exists(), f"no result\n{proc.stdout}\n{proc.stderr[-3000:]}"
    result = json.loads(out.read_text())
    result.update(stderr=proc.stderr[-3000:], markers=ws.ran(), starts=server_starts(record),
                  expected_argv=user_args, workspace=str(ws.root), injected_env=ws.env,
                  model=str(model_dir), hostile_model=str(ws.model))
    ARTIFACTS.mkdir(exist_ok=True)
    (ARTIFACTS / f"emacs-trust-{answer}.json").write_text(json.dumps(
        {k: v for k, v in result.items() if k != "starts"}, indent=1))
    return result


@pytest.fixture(scope="module")
def safe_only(request, tmp_path_factory) -> dict:
    require_emacs()
    return open_hostile_project(tmp_path_factory.mktemp("emacs-safe"), request.getfixturevalue("tiny_model_dir"),
                                "safe")


@pytest.fixture(scope="module")
def all_accepted(request, tmp_path_factory) -> dict:
    require_emacs()
    return open_hostile_project(tmp_path_factory.mktemp("emacs-yes"), request.getfixturevalue("tiny_model_dir"),
                                "yes")


def check_user_server(r: dict) -> None:
    assert "error" not in r, r
    assert r["markers"] == [], f"the project's own code ran: {r['markers']}\n{r['stderr']}"
    assert_started_as_the_user_configured(r["starts"], r["expected_argv"], Path(r["workspace"]), r["injected_env"])
    assert all(start["env"].get("DIFFILL_USER_ENV") == "from-user" for start in r["starts"])


def test_safe_local_variables_only_keep_the_users_server_and_model(safe_only):
    r = safe_only
    check_user_server(r)
    # only what diffill and eglot declare safe was applied
    assert sorted(r["local_vars"]) == ["diffill-fill-timeout", "eglot-workspace-configuration"]
    assert r["status"] == "ready" and r["model"] in r["status_message"], r["status_message"]
    # eglot-workspace-configuration came without a question: only its harmless keys reached the server
    assert any(i.startswith("eglot-workspace-configuration: ") and all(
        k in i for k in (":model", ":trustRemoteCode", ":logFile", ":allowDownload")) and ":multiline" not in i
        for i in r["ignored"]), r["ignored"]


def test_risky_variables_are_asked_as_risky(all_accepted):
    asked = all_accepted["asked"]
    assert {"diffill-settings", "diffill-server-command"} <= set(asked["risky"]), asked
    assert "diffill-fill-timeout" not in asked["risky"] + asked["unsafe"], asked


def test_accepting_every_prompt_still_runs_no_project_code(all_accepted):
    r = all_accepted
    check_user_server(r)
    assert {"diffill-settings", "diffill-server-command", "process-environment", "exec-path"} <= set(r["local_vars"])
    # accepted: the project's model applies, but never the trust for its code nor its log file
    assert r["status"] == "error" and r["hostile_model"] in r["status_message"], r["status_message"]
    assert "custom code" in r["status_message"]
    assert any(i.startswith("diffill-settings: ") and ":trustRemoteCode" in i and ":logFile" in i
               and ":model" not in i for i in r["ignored"]), r["ignored"]


def test_declarations():
    """What Emacs asks before applying each variable from a .dir-locals.el."""
    emacs = require_emacs()
    probe = f"""(progn (add-to-list 'load-path {json.dumps(str(PLUGIN))}) (require 'diffill)
      (princ (json-encode (vconcat (mapcar (lambda (x) (if x t :json-false)) (list
        (safe-local-variable-p 'diffill-settings '(:maxNewTokens 8 :multiline "never" :drafts (:command t)))
        (safe-local-variable-p 'diffill-settings '(:maxNewTokens 8 :model "/x"))
        (safe-local-variable-p 'diffill-settings '(:logFile "/x"))
        (safe-local-variable-p 'diffill-settings '(:languages (:markdown :json-false) :steps [1]))
        (risky-local-variable-p 'diffill-settings)
        (risky-local-variable-p 'diffill-server-command)
        (safe-local-variable-p 'diffill-fill-timeout 30)
        (safe-local-variable-p 'diffill-fill-timeout "30")))))))"""
    out = subprocess.run([emacs, "--batch", "-Q", "--eval", ELPA_INIT, "--eval", probe],
                         capture_output=True, text=True, timeout=60)
    assert json.loads(out.stdout) == [True, False, False, True, True, True, True, False], out.stderr
