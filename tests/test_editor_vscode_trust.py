"""VS Code: a cloned repository cannot run code or redirect the server through its
.vscode/settings.json (issue 18).

The workspace (tests/editor_sources.py ``hostile_workspace``) sets the server command,
arguments, interpreter and environment (LD_PRELOAD, PYTHONPATH; partly as a nested
``"diffill.server": {...}`` object, which VS Code 1.100's own filter lets through), a model of its
own whose code writes a marker, trusts that model, and picks the log file. It also holds an
``lsp_server`` package that `python -m lsp_server` would import if the server were started
in the workspace folder. The user's own settings start the real server through a launcher
that records its arguments, working directory and environment.

It is opened in a real code-server twice, answering the workspace-trust prompt "No" (then
reloading the window) and "Yes". Each time: no marker appears, the server was started
exactly as the user configured it, no model code ran, and a notification names the ignored
settings once per workspace. The manifest checks at the end need no editor.
"""
from __future__ import annotations

import json
import os
import re
import sys
import time
from pathlib import Path

import pytest
from editor_sources import (
    HostileWorkspace,
    assert_started_as_the_user_configured,
    hostile_workspace,
    server_starts,
    user_launcher,
)
from test_editor_vscode import ARTIFACTS, DRIVER_PRELUDE, MANIFEST, require_tools, run_in_code_server

PROPS = MANIFEST["contributes"]["configuration"]["properties"]
#: settings that name a program, its arguments or environment, an interpreter, code to
#: trust or a file to write: a workspace must never set them
USER_ONLY = ("diffill.server.command", "diffill.server.args", "diffill.server.pythonPath", "diffill.server.env",
             "diffill.trustRemoteCode", "diffill.logFile")
#: settings a workspace may set only once trusted
RESTRICTED = ("diffill.model", "diffill.fillModel", "diffill.allowDownload", "diffill.trustRemoteCode",
              "diffill.logFile")

DRIVER = DRIVER_PRELUDE + r"""
async function main() {
  const { browser, page } = await openPage();
  const statusSel = '[id$="diffill.status"]';
  const statusLabel = () => page.$eval(statusSel, (e) => e.getAttribute('aria-label') || e.textContent).catch(() => '');
  const notices = () => page.$$eval('.notifications-toasts .notification-list-item-message',
    (els) => els.map((e) => e.textContent || '')).catch(() => []);
  // every notification toast seen, by phase (toasts hide themselves after a few seconds)
  let phase = 'first';
  const seen = { first: [], reload: [] };
  const poll = setInterval(async () => {
    for (const t of await notices()) if (!seen[phase].includes(t)) seen[phase].push(t);
  }, 250);
  // wait for the extension's status, then give the ignored-settings notice time to appear
  const settle = async () => {
    R[`${phase}_status_item`] = !!(await waitFor(async () => (await page.$(statusSel)) !== null, 90000));
    if (!R[`${phase}_status_item`]) return;  // the extension did not start
    await waitFor(async () => {
      R[`${phase}_status`] = await statusLabel();
      return /diffill (ready|error)/.test(R[`${phase}_status`]);
    }, cfg.ready_timeout_ms);
    const ignored = () => seen[phase].find((t) => t.includes('diffill ignored settings'));
    const found = await waitFor(async () => ignored(), cfg.notice_timeout_ms);
    R[`${phase}_notice`] = found || null;
    R[`${phase}_notifications`] = seen[phase];
    R[`${phase}_restricted_mode`] = await page.evaluate(
      () => [...document.querySelectorAll('.statusbar-item')].some((e) => /Restricted Mode/.test(e.textContent || '')));
    log(`${phase}: ${R[`${phase}_status`]} notice=${!!found}`);
  };
  try {
    await page.goto(cfg.url, { waitUntil: 'domcontentloaded', timeout: 60000 });
    await page.waitForSelector('.monaco-workbench', { timeout: 90000 });
    log('workbench');
    // the workspace-trust prompt VS Code shows for a folder it does not know
    const answer = cfg.trust ? /Yes, I trust the authors/ : /No, I don.t trust the authors/;
    const button = page.getByRole('button', { name: answer });
    await button.waitFor({ state: 'visible', timeout: 60000 });
    await page.screenshot({ path: path.join(cfg.artifacts, `vscode-trust-${cfg.name}-prompt.png`) });
    await button.click();
    log('trust prompt answered ' + cfg.trust);
    await settle();
    await page.screenshot({ path: path.join(cfg.artifacts, `vscode-trust-${cfg.name}.png`) });
    if (cfg.reload) {
      const command = async (title) => {
        await page.keyboard.press('F1');
        await page.waitForSelector('.quick-input-widget', { state: 'visible', timeout: 10000 });
        await page.keyboard.type(title, { delay: 15 });
        await sleep(600);
        await page.keyboard.press('Enter');
      };
      await command('Notifications: Clear All Notifications');
      await sleep(500);
      phase = 'reload';  // from here on a toast can only come from the reloaded window
      await command('Developer: Reload Window');
      await sleep(3000);
      await page.waitForSelector('.monaco-workbench', { timeout: 90000 });
      log('reloaded');
      await settle();
    }
  } catch (e) {
    R.errors.push(String(e && e.stack || e));
    try { await page.screenshot({ path: path.join(cfg.artifacts, `vscode-trust-${cfg.name}-error.png`) }); } catch (_) {}
  } finally {
    clearInterval(poll);
    fs.writeFileSync(cfg.out, JSON.stringify(R, null, 1));
    await browser.close();
  }
}
main();
"""

def workspace_settings(ws: HostileWorkspace) -> dict:
    """Everything a repository would set; the interpreter and environment as a nested object."""
    return {  # the nested object first: VS Code would let a later one replace the flat keys' values
        "diffill.server": {"pythonPath": str(ws.python), "env": ws.env},
        "diffill.server.command": str(ws.server_command),
        "diffill.server.args": ws.args,
        "diffill.model": str(ws.model),
        "diffill.trustRemoteCode": [str(ws.model)],
        "diffill.allowDownload": True,
        "diffill.logFile": str(ws.log_file),
    }


def open_hostile_workspace(tmp: Path, model_dir: Path, *, trust: bool, python_path: bool, reload: bool) -> dict:
    """Open the hostile workspace in code-server, answer the trust prompt, and report."""
    ws = hostile_workspace(tmp / "project", tmp / "markers")
    (ws.root / ".vscode").mkdir()
    (ws.root / ".vscode" / "settings.json").write_text(json.dumps(workspace_settings(ws), indent=1))
    user_dir, record = tmp / "user", tmp / "server-starts.jsonl"
    user_dir.mkdir()
    user_args = ["--model", str(model_dir), "--device", "cpu"]
    if python_path:  # the user's interpreter: diffill runs as `python -m lsp_server ...`
        launcher = user_launcher(user_dir, "python", record, [sys.executable])
        user = {"diffill.server.pythonPath": str(launcher), "diffill.server.args": user_args}
        expected_argv = ["-m", "lsp_server", *user_args]
    else:
        exe = Path(sys.executable).parent / "diffill"
        launcher = user_launcher(user_dir, "diffill", record, [str(exe)])
        user = {"diffill.server.command": str(launcher), "diffill.server.args": ["serve", *user_args]}
        expected_argv = ["serve", *user_args]
    user["diffill.server.env"] = {"DIFFILL_USER_ENV": "from-user"}
    name = "trusted" if trust else "untrusted"
    settings = {
        **user,
        "security.workspace.trust.enabled": True,
        "security.workspace.trust.startupPrompt": "always",
    }
    env = {k: v for k, v in os.environ.items() if k not in ("LD_PRELOAD", "PYTHONPATH")}
    # started from the project folder, as `cd project && code .` would
    result = run_in_code_server(tmp, ws.root, settings, DRIVER, {
        "name": name, "trust": trust, "reload": reload, "notice_timeout_ms": 15_000,
    }, timeout_s=400, cwd=ws.root, env=env)
    time.sleep(1)  # a server still exiting may yet write a marker
    result["markers"] = ws.ran()
    result["starts"] = server_starts(record)
    result["expected_argv"] = expected_argv
    result["workspace"] = str(ws.root)
    result["injected_env"] = ws.env
    result["model"] = str(model_dir)
    result["hostile_model"] = str(ws.model)
    (ARTIFACTS / f"vscode-trust-{name}.json").write_text(json.dumps(
        {k: v for k, v in result.items() if k != "starts"}, indent=1))
    return result


def assert_started_as_configured(r: dict) -> None:
    assert r["starts"], f"the user's server was never started: {r['events']} {r['errors']}"
    assert_started_as_the_user_configured(r["starts"], r["expected_argv"], Path(r["workspace"]), r["injected_env"])
    assert all(start["env"].get("DIFFILL_USER_ENV") == "from-user" for start in r["starts"])  # the user's env


def assert_notice_names(notice: str | None, names: tuple[str, ...], absent: tuple[str, ...] = ()) -> None:
    assert notice, "no notification named the ignored settings"
    for name in names:
        assert name in notice, (name, notice)
    for name in absent:
        assert name not in notice, (name, notice)


@pytest.fixture(scope="module")
def untrusted(request, tmp_path_factory) -> dict:
    require_tools()
    model_dir = request.getfixturevalue("tiny_model_dir")
    return open_hostile_workspace(tmp_path_factory.mktemp("untrusted"), model_dir,
                                  trust=False, python_path=False, reload=True)


@pytest.fixture(scope="module")
def trusted(request, tmp_path_factory) -> dict:
    require_tools()
    model_dir = request.getfixturevalue("tiny_model_dir")
    return open_hostile_workspace(tmp_path_factory.mktemp("trusted"), model_dir,
                                  trust=True, python_path=True, reload=False)


def test_untrusted_workspace_runs_none_of_its_code(untrusted):
    r = untrusted
    assert not r["errors"], r["errors"]
    assert r["first_restricted_mode"], "the workspace was not opened in Restricted Mode"
    assert r["markers"] == [], f"the workspace's own code ran: {r['markers']}"


def test_untrusted_workspace_still_completes_with_the_users_server_and_model(untrusted):
    r = untrusted
    assert_started_as_configured(r)
    for phase in ("first", "reload"):
        assert r[f"{phase}_status"].startswith("diffill ready"), r[f"{phase}_status"]
        assert r["model"] in r[f"{phase}_status"]  # the user's model, not the workspace's


def test_untrusted_workspace_is_told_once_what_was_ignored(untrusted):
    assert_notice_names(untrusted["first_notice"], USER_ONLY + ("diffill.model", "diffill.allowDownload"))
    assert "Restricted Mode" in untrusted["first_notice"]
    assert untrusted["reload_status_item"], untrusted["events"]
    assert untrusted["reload_notice"] is None  # once per workspace, not on every start


def test_trusted_workspace_still_cannot_choose_program_environment_or_model_code(trusted):
    r = trusted
    assert not r["errors"], r["errors"]
    assert not r["first_restricted_mode"], "the workspace was not trusted"
    assert r["markers"] == [], f"the workspace's own code ran: {r['markers']}"
    assert_started_as_configured(r)
    # trusted: its model applies (a restricted setting), but not the trust for its code
    assert r["first_status"].startswith("diffill error"), r["first_status"]
    assert r["hostile_model"] in r["first_status"] and "custom code" in r["first_status"]
    assert_notice_names(r["first_notice"], USER_ONLY, absent=("diffill.model", "diffill.allowDownload"))


# -- the manifest (no editor needed) ----------------------------------------------

def test_manifest_keeps_programs_code_and_files_in_user_settings():
    for key in USER_ONLY:
        assert PROPS[key].get("scope") == "machine", key


def test_manifest_declares_limited_support_in_restricted_mode():
    untrusted = MANIFEST["capabilities"]["untrustedWorkspaces"]
    assert untrusted["supported"] == "limited" and untrusted["description"]
    assert set(untrusted["restrictedConfigurations"]) == set(RESTRICTED)
    assert set(untrusted["restrictedConfigurations"]) <= set(PROPS)


def test_no_workspace_setting_can_hold_a_secret_or_choose_where_text_goes():
    """Settings added later for remote backends (a URL, a backend, an API key or the variable
    holding it) must be user-only; this fails as soon as one is added with a weaker scope."""
    words = {"url", "endpoint", "backend", "host", "key", "token", "secret", "password", "credential",
             "command", "args", "path", "env", "file", "trust"}
    for key, prop in PROPS.items():
        name = re.sub(r"([A-Z])", r" \1", key.removeprefix("diffill.")).replace(".", " ").lower().split()
        if words & set(name):
            assert prop.get("scope") == "machine", f"{key} can be set by a workspace"
