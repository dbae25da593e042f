"""VS Code end to end: the extension in editors/vscode, packaged as a .vsix
(`npm ci && npm run package`), installed into a real code-server (VS Code 1.100)
and driven by a real browser (Debian chromium + playwright-core) against a real
`diffill serve` with a real (tiny, random) model:
  * typing in a Python file shows an inline suggestion (ghost text), Tab accepts it;
  * "Diffill: Fill in the Middle" from the command palette streams drafts (faded
    decorations seen in the DOM) and applies the edit; the saved file changed;
  * Ctrl+Alt+Enter on a selection replaces the selected text;
  * the status bar item reports the server state and a click shows the log.
Screenshots go to artifacts/vscode-*.png.

Needs: code-server + playwright-core (.ci/install-editors.sh puts them in
/opt/diffill-editors, or set DIFFILL_EDITORS_DIR), chromium, node and npm.
"""
from __future__ import annotations

import json
import os
import re
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from editor_sources import SHAPES

REPO = Path(__file__).resolve().parents[1]
EXT = REPO / "editors" / "vscode"
EDITORS_DIR = Path(os.environ.get("DIFFILL_EDITORS_DIR", "/opt/diffill-editors"))
ARTIFACTS = REPO / "artifacts"


def _find_code_server() -> str | None:
    for c in (os.environ.get("DIFFILL_CODE_SERVER"), str(EDITORS_DIR / "node_modules" / ".bin" / "code-server"),
              shutil.which("code-server")):
        if c and Path(c).exists():
            return c
    return None


def _find_chromium() -> str | None:
    for c in (os.environ.get("DIFFILL_CHROMIUM"), shutil.which("chromium"), shutil.which("chromium-browser")):
        if c and Path(c).exists():
            return c
    return None


def _playwright_dir() -> Path | None:
    p = EDITORS_DIR / "node_modules"
    return p if (p / "playwright-core").is_dir() else None


def _server_cmd(model_dir: Path) -> list[str]:
    exe = Path(sys.executable).parent / "diffill"
    base = [str(exe)] if exe.exists() else [sys.executable, "-m", "diffill"]
    return base + ["serve", "--model", str(model_dir)]


def build_vsix() -> Path:
    """`npm ci && npm run package` unless the .vsix is newer than every source file."""
    vsix = EXT / "diffill.vsix"
    sources = [EXT / "package.json", EXT / "package-lock.json", EXT / "esbuild.mjs", EXT / "README.md",
               EXT / "CHANGELOG.md", EXT / "LICENSE.txt", *(EXT / "src").glob("*.ts")]
    if vsix.exists() and vsix.stat().st_mtime > max(p.stat().st_mtime for p in sources):
        return vsix
    npm = shutil.which("npm")
    if npm is None:
        pytest.skip("npm not installed: cannot build the VS Code extension")
    if not (EXT / "node_modules" / "vscode-languageclient").is_dir():
        subprocess.run([npm, "ci", "--no-audit", "--no-fund", "--loglevel=error"], cwd=EXT, check=True, timeout=600)
    subprocess.run([npm, "run", "package"], cwd=EXT, check=True, timeout=300, capture_output=True)
    assert vsix.exists()
    return vsix


SOURCE = SHAPES

# playwright-core driver; keys go through the browser exactly as a user's would
#: what every playwright driver starts with: the config, a result log, polling
DRIVER_PRELUDE = r"""
const fs = require('fs');
const path = require('path');
const { chromium } = require('playwright-core');
const cfg = JSON.parse(fs.readFileSync(process.argv[2], 'utf8'));
const R = { events: [], errors: [] };
const t0 = Date.now();
const log = (s) => { R.events.push(`${((Date.now() - t0) / 1000).toFixed(1)} ${s}`); fs.writeFileSync(cfg.out, JSON.stringify(R, null, 1)); };
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const norm = (s) => (s || '').replace(/\u00a0/g, ' ');
// the language server's pid: the process whose command line holds cfg.server_marker (the model
// directory or log path only the server is started with), to stop it (SIGSTOP) while a draft is
// photographed; null when none is found
const serverPid = () => {
  for (const d of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(d)) continue;
    try {
      if (fs.readFileSync(`/proc/${d}/cmdline`, 'utf8').includes(cfg.server_marker)) return Number(d);
    } catch (_) {}
  }
  return null;
};

// headless Chromium with no background traffic (this machine has no network)
async function openPage(height = 640) {
  const browser = await chromium.launch({
    executablePath: cfg.chromium, headless: true,
    args: ['--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update',
           '--disable-sync', '--no-first-run', '--disable-dev-shm-usage'],
  });
  const page = await browser.newPage({ viewport: { width: 1100, height } });
  page.on('pageerror', (e) => log('pageerror ' + e.message));
  return { browser, page };
}

async function waitFor(fn, timeoutMs, stepMs = 100) {
  const end = Date.now() + timeoutMs;
  for (;;) {
    const v = await fn();
    if (v) return v;
    if (Date.now() > end) return null;
    await sleep(stepMs);
  }
}

"""

DRIVER = DRIVER_PRELUDE + r"""
async function main() {
  const { browser, page } = await openPage();
  const shot = async (name) => {
    const file = path.join(cfg.artifacts, `vscode-${name}.png`);
    await page.screenshot({ path: file });
    R[`shot_${name}`] = file;
  };
  try {
    await page.goto(cfg.url, { waitUntil: 'domcontentloaded', timeout: 60000 });
    await page.waitForSelector('.monaco-workbench', { timeout: 90000 });
    log('workbench');
    // the status bar item appears once the extension is active
    const statusSel = '[id$="diffill.status"]';
    R.status_item = !!(await waitFor(async () => (await page.$(statusSel)) !== null, 90000, 250));
    log('status item ' + R.status_item);

    // open the file with Quick Open
    await page.keyboard.press('Control+P');
    await page.waitForSelector('.quick-input-widget', { state: 'visible', timeout: 20000 });
    await page.keyboard.type(cfg.file_name, { delay: 20 });
    await sleep(800);
    await page.keyboard.press('Enter');
    await page.waitForSelector('.monaco-editor .view-lines', { timeout: 30000 });
    await sleep(500);
    log('file open');
    R.status_ready = !!(await waitFor(async () => {
      const label = await page.$eval(statusSel, (e) => e.getAttribute('aria-label') || e.textContent).catch(() => '');
      R.status_label = label;
      return /ready|busy/.test(label);
    }, cfg.ready_timeout_ms, 250));
    log('status ' + R.status_label);

    const goto = async (line) => {
      await page.keyboard.press('Control+G');
      await page.waitForSelector('.quick-input-widget', { state: 'visible', timeout: 10000 });
      await page.keyboard.type(String(line));
      await page.keyboard.press('Enter');
      await sleep(200);
      await page.keyboard.press('End');
    };
    const editorText = async () => norm(await page.$eval('.monaco-editor .view-lines', (e) => e.innerText));

    // 1. inline suggestion while typing, accepted with Tab
    await page.click('.monaco-editor .view-lines');
    await goto(cfg.inline_line);
    await page.keyboard.type(cfg.inline_typed, { delay: 60 });
    const ghost = await waitFor(async () => {
      const els = await page.$$('.monaco-editor .ghost-text-decoration, .monaco-editor .ghost-text');
      if (!els.length) return null;
      const texts = await Promise.all(els.map((e) => e.textContent()));
      return norm(texts.join(''));
    }, cfg.request_timeout_ms);
    R.inline_ghost = ghost;
    log('ghost ' + JSON.stringify(ghost));
    if (ghost !== null) {
      await shot('inline');
      // the status bar shows how sure the model is of the suggestion on screen
      R.status_with_ghost = await page.$eval(statusSel, (e) => e.textContent).catch(() => '');
      // Alt+] asks again (invoked) and shows the next suggestion; the hints show "2/N"; Alt+[ goes back
      const ghostText = async () => {
        const els = await page.$$('.monaco-editor .ghost-text-decoration, .monaco-editor .ghost-text');
        return norm((await Promise.all(els.map((e) => e.textContent()))).join(''));
      };
      await page.keyboard.press('Alt+BracketRight');
      R.next_ghost = await waitFor(async () => {
        const t = await ghostText();
        return t && t !== ghost ? t : null;
      }, cfg.request_timeout_ms);
      R.hints = await page.$eval('.inlineSuggestionsHints', (e) => e.innerText).catch(() => null);
      log('next ghost ' + JSON.stringify(R.next_ghost) + ' hints ' + JSON.stringify(R.hints));
      await page.keyboard.press('Alt+BracketLeft');
      R.back_ghost = await waitFor(async () => ((await ghostText()) === ghost ? ghost : null), 10000);
      await page.keyboard.press('Tab');
      await sleep(300);
      R.ghost_after_tab = (await page.$$('.monaco-editor .ghost-text-decoration')).length;
    }
    await page.keyboard.press('Control+S');
    R.saved_after_inline = await waitFor(() => {
      const t = fs.readFileSync(cfg.file, 'utf8');
      return t.includes(cfg.inline_prefix_saved) ? t : null;
    }, 10000);
    log('saved after inline');

    // 2. fill in the middle from the command palette, drafts visible meanwhile
    await goto(cfg.fill_line);
    const before = await editorText();
    await page.keyboard.press('F1');
    await page.waitForSelector('.quick-input-widget', { state: 'visible', timeout: 10000 });
    await page.keyboard.type('Diffill: Fill in the Middle', { delay: 15 });
    await sleep(600);
    // record every draft decoration VS Code renders (its text is CSS ::after content)
    await page.evaluate(() => {
      window.__drafts = [];
      const root = document.querySelector('.monaco-editor .view-lines');
      window.__draftObserver = new MutationObserver(() => {
        for (const s of root.querySelectorAll('span')) {
          const c = getComputedStyle(s, '::after').content;
          if (c && /\[\d+\/\d+\]/.test(c)) {
            window.__drafts.push(c);
            if (window.__onDraft) window.__onDraft(c);
          }
        }
      });
      window.__draftObserver.observe(root, { subtree: true, childList: true, attributes: true, characterData: true });
    });
    // a draft is on screen for as long as a step takes (milliseconds with the tiny model): the
    // first one drawn stops the server process (SIGSTOP) until it is photographed (SIGCONT)
    const pid = serverPid();
    let stopped = false;
    await page.exposeFunction('__diffillStop', () => {
      if (!stopped && pid) { stopped = true; process.kill(pid, 'SIGSTOP'); }
    });
    await page.evaluate(() => { window.__onDraft = () => window.__diffillStop(); });
    await page.keyboard.press('Enter');
    log('fill started');
    R.drafts_seen = [];
    let shotDraft = false;
    const changed = await waitFor(async () => {
      const contents = await page.$$eval('.monaco-editor .view-lines span', (spans) => spans
        .map((s) => getComputedStyle(s, '::after').content)
        .filter((c) => c && c !== 'none' && c !== 'normal' && /\[\d+\/\d+\]/.test(c)));
      if (contents.length) {
        R.drafts_seen.push(contents[0]);
        if (!shotDraft) {
          shotDraft = true;
          try { await shot('draft'); } finally { if (stopped) process.kill(pid, 'SIGCONT'); }
        }
      }
      const now = await editorText();
      return now !== before && contents.length === 0 ? now : null;
    }, cfg.request_timeout_ms, 50);
    if (stopped) process.kill(pid, 'SIGCONT');  // (again: harmless) never leave the server stopped
    R.fill_changed = changed !== null;
    R.drafts_seen = R.drafts_seen.concat(await page.evaluate(() => window.__drafts));
    log('fill changed ' + R.fill_changed);
    await page.keyboard.press('Control+S');
    await sleep(1000);
    R.saved_final = fs.readFileSync(cfg.file, 'utf8');

    // 3. the keybinding (Ctrl+Alt+Enter) on a selection replaces it
    const lines = R.saved_final.split('\n');
    const target = lines.indexOf('    print(total)') + 1;
    await goto(target);
    await page.keyboard.press('Home');  // first non-blank character
    await page.keyboard.press('Shift+End');
    const beforeSel = await editorText();
    await page.keyboard.press('Control+Alt+Enter');
    R.selection_changed = (await waitFor(async () => (await editorText()) !== beforeSel, cfg.request_timeout_ms)) !== null;
    await sleep(300);
    await page.keyboard.press('Control+S');
    R.saved_selection = await waitFor(() => {
      const t = fs.readFileSync(cfg.file, 'utf8');
      return t !== R.saved_final ? t : null;
    }, 10000);
    log('selection fill ' + R.selection_changed);

    // 4. clicking the status bar item shows the extension's log
    await page.click(statusSel);
    R.log_shown = !!(await waitFor(async () => {
      const text = norm(await page.$eval('.part.panel', (e) => e.innerText).catch(() => ''));
      return /starting the diffill server/.test(text);
    }, 15000, 200));
    log('log shown ' + R.log_shown);
    await shot('final');
  } catch (e) {
    R.errors.push(String(e && e.stack || e));
    try { await shot('error'); } catch (_) {}
  } finally {
    fs.writeFileSync(cfg.out, JSON.stringify(R, null, 1));
    await browser.close();
  }
}
main();
"""


MANIFEST = json.loads((EXT / "package.json").read_text())
MACHINE_SCOPED = frozenset(key for key, prop in MANIFEST["contributes"]["configuration"]["properties"].items()
                           if prop.get("scope") == "machine")


def write_user_settings(user_data: Path, settings: dict) -> None:
    """Write settings where code-server's window reads them.

    code-server is a remote window: VS Code takes machine-scoped settings
    (diffill.server.*) only from the Remote settings there (``Machine/settings.json``
    under the user data folder) and drops them from the User file once the extension's
    manifest is registered. Written to the User file, they were seen or not depending on
    that race (a reloaded window started the default ``diffill``), so they go where a
    user of a remote window sets them: "Preferences: Open Remote Settings"."""
    machine = {k: v for k, v in settings.items() if k in MACHINE_SCOPED}
    for folder, values in (("User", {k: v for k, v in settings.items() if k not in machine}), ("Machine", machine)):
        (user_data / folder).mkdir(parents=True, exist_ok=True)
        (user_data / folder / "settings.json").write_text(json.dumps(values, indent=1))


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def require_tools() -> tuple[str, str, Path]:
    """code-server, chromium and playwright-core's node_modules, or skip."""
    code_server, chromium, pw = _find_code_server(), _find_chromium(), _playwright_dir()
    missing = [n for n, v in (("code-server", code_server), ("chromium", chromium), ("playwright-core", pw),
                              ("node", shutil.which("node"))) if not v]
    if missing:
        pytest.skip(f"{', '.join(missing)} not installed (run .ci/install-editors.sh)")
    return code_server, chromium, pw


def run_vscode(tmp: Path, server_cmd: list[str], settings: dict, timeout_s: float = 300) -> dict:
    lines = SOURCE.splitlines()
    result = run_driver(tmp, server_cmd, settings, {"shapes.py": SOURCE}, DRIVER, {
        "file_name": "shapes.py",
        "inline_line": lines.index("    result = ") + 1,
        "inline_typed": "2 * (",
        "inline_prefix_saved": "    result = 2 * (",
        "fill_line": lines.index("    print(total)"),  # the empty line above print
        "server_marker": server_cmd[-1],  # the model directory: only the server's command line has it
    }, timeout_s)
    result["_source"] = SOURCE
    return result


def run_driver(tmp: Path, server_cmd: list[str], settings: dict, files: dict[str, str], driver: str,
               driver_cfg: dict, timeout_s: float = 300) -> dict:
    """Install the extension into a fresh code-server, open a project holding
    ``files`` and run the playwright ``driver`` script against it; its result.

    The driver gets ``driver_cfg`` plus url, chromium, artifacts, out,
    ready_timeout_ms, request_timeout_ms and ``file`` (the first file's path)."""
    work = tmp / "project"
    work.mkdir(parents=True, exist_ok=True)
    for name, text in files.items():
        (work / name).write_text(text)
    user_settings = {
        "diffill.server.command": server_cmd[0],
        "diffill.server.args": server_cmd[1:],
        **{f"diffill.{k}": v for k, v in settings.items()},
        "editor.inlineSuggest.enabled": True,
        "editor.inlineSuggest.showToolbar": "always",  # the "1/3" hints with the cycling arrows
        # the completion widget would compete with the ghost text for Tab
        "editor.quickSuggestions": {"other": "off", "comments": "off", "strings": "off"},
        "editor.suggestOnTriggerCharacters": False,
        "workbench.welcomePage.walkthroughs.openOnInstall": False,
        "security.workspace.trust.enabled": False,
        "files.autoSave": "off",
        "python.languageServer": "None",
    }
    cfg = {"file": str(work / next(iter(files))), "request_timeout_ms": 60_000, **driver_cfg}
    return run_in_code_server(tmp, work, user_settings, driver, cfg, timeout_s=timeout_s,
                              server_args=["--disable-workspace-trust"])


#: user settings every code-server run starts with: nothing on screen or on the network but the test
QUIET_SETTINGS = {
    "workbench.startupEditor": "none",
    "workbench.tips.enabled": False,
    "telemetry.telemetryLevel": "off",
    "extensions.autoCheckUpdates": False,
    "extensions.autoUpdate": False,
    "update.mode": "none",
}


def run_in_code_server(tmp: Path, folder: Path, user_settings: dict, driver: str, driver_cfg: dict, *,
                       timeout_s: float, server_args: list[str] | None = None, cwd: Path | None = None,
                       env: dict[str, str] | None = None) -> dict:
    """Install the extension into a fresh code-server (its user data under ``tmp``),
    write ``user_settings`` over ``QUIET_SETTINGS``, open ``folder`` and run the playwright
    ``driver`` against it; the result it wrote, with the tails of its stderr and of
    code-server's log.

    The driver's config is ``driver_cfg`` plus url, chromium, artifacts, out and
    ready_timeout_ms.  ``env`` replaces this process's environment (HOME and the XDG
    folders are always under ``tmp``); ``cwd`` is where code-server starts."""
    code_server, chromium, pw = require_tools()
    vsix = build_vsix()
    data, exts = tmp / "user-data", tmp / "extensions"
    for d in (data / "User", exts):
        d.mkdir(parents=True, exist_ok=True)
    env = dict(os.environ if env is None else env, HOME=str(tmp), XDG_CONFIG_HOME=str(tmp / "xdg"),
               XDG_DATA_HOME=str(tmp / "xdgdata"))
    common = ["--user-data-dir", str(data), "--extensions-dir", str(exts)]
    subprocess.run([code_server, *common, "--install-extension", str(vsix)], check=True, env=env,
                   capture_output=True, timeout=120)
    write_user_settings(data, {**QUIET_SETTINGS, **user_settings})
    port = _free_port()
    log = open(tmp / "code-server.log", "w")  # noqa: SIM115 - code-server writes to it until the test ends
    proc = subprocess.Popen([code_server, *common, "--auth", "none", "--bind-addr", f"127.0.0.1:{port}",
                             "--disable-telemetry", "--disable-update-check", "--disable-getting-started-override",
                             *(server_args or []), str(folder)],
                            cwd=cwd, env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        deadline = time.time() + 60
        while time.time() < deadline:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                time.sleep(0.3)
        ARTIFACTS.mkdir(exist_ok=True)
        cfg = {
            "url": f"http://127.0.0.1:{port}/?folder={folder}",
            "chromium": chromium,
            "artifacts": str(ARTIFACTS),
            "ready_timeout_ms": 120_000,
            "out": str(tmp / "result.json"),
            **driver_cfg,
        }
        (tmp / "driver.json").write_text(json.dumps(cfg))
        (tmp / "driver.js").write_text(driver)
        drv = subprocess.run(["node", str(tmp / "driver.js"), str(tmp / "driver.json")], cwd=tmp,
                             env=dict(env, NODE_PATH=str(pw)), capture_output=True, text=True, timeout=timeout_s)
        out = tmp / "result.json"
        assert out.exists(), f"driver wrote no result\n{drv.stdout}\n{drv.stderr}"
        result = json.loads(out.read_text())
        result["_driver_stderr"] = drv.stderr[-3000:]
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()
    result["_code_server_log"] = (tmp / "code-server.log").read_text()[-3000:]
    return result


@pytest.fixture(scope="module")
def vscode_result(request, tmp_path_factory) -> dict:
    require_tools()  # skip before building a model when the editor is missing
    tiny_model_dir = request.getfixturevalue("tiny_model_dir")
    res = run_vscode(tmp_path_factory.mktemp("vscode"), _server_cmd(tiny_model_dir),
                     # one token per step over a 128-token canvas keeps the drafts on screen
                     # long enough for the 50 ms poll to see and photograph one (48 was enough
                     # until the steps between full forwards reused the context and got cheaper)
                     # (minConfidence 0: the random test model is never sure; typing must show ghost text)
                     {"device": "cpu", "dtype": "float32", "maxNewTokens": 128, "steps": 128, "debounceMs": 10,
                      "minConfidence": 0})
    (ARTIFACTS / "vscode-result.json").write_text(json.dumps(res, indent=1))
    return res


def test_vscode_extension_starts_server(vscode_result):
    r = vscode_result
    assert not r["errors"], r["errors"]
    assert r["status_item"], r["events"]
    assert r["status_ready"], r.get("status_label")


def test_vscode_shows_the_confidence_and_cycles_through_alternatives(vscode_result):
    """The status item carries the suggestion's confidence; Alt+] shows another suggestion
    (VS Code asks again, invoked, and the server answers with its alternatives), with the
    cycling hints; Alt+[ shows the first again."""
    r = vscode_result
    assert r["inline_ghost"], f"no ghost text: {r['events']}"
    assert re.search(r"diffill \d{1,3}%", r["status_with_ghost"] or ""), r["status_with_ghost"]
    assert r["next_ghost"] and r["next_ghost"] != r["inline_ghost"], r["events"]
    assert r["hints"] and re.search(r"2\s*/\s*[23]", r["hints"]), r["hints"]
    assert r["back_ghost"] == r["inline_ghost"]


def test_vscode_inline_suggestion_accepted_with_tab(vscode_result):
    r = vscode_result
    assert r["inline_ghost"], f"no ghost text: {r['events']}"
    saved = r["saved_after_inline"]
    assert saved, "file not saved after accepting"
    line = next(ln for ln in saved.splitlines() if ln.startswith("    result = 2 * ("))
    # the accepted ghost text follows what was typed
    first = r["inline_ghost"].splitlines()[0].strip()
    assert len(line) > len("    result = 2 * ("), line
    assert first[:5] in line, (first, line)


def test_vscode_fill_command_applies_and_saves(vscode_result):
    r = vscode_result
    assert r["fill_changed"], r["events"]
    saved = r["saved_final"]
    assert saved != r["saved_after_inline"]
    assert saved.count("\n") >= r["_source"].count("\n")


def test_vscode_fill_keybinding_replaces_selection(vscode_result):
    r = vscode_result
    assert r["selection_changed"], r["events"]
    saved = r["saved_selection"]
    assert saved, "file not saved after the selection fill"
    assert "print(total)" not in saved  # the selected text was replaced
    assert "    total = 0" in saved


def test_vscode_status_item_click_shows_log(vscode_result):
    assert vscode_result["log_shown"], vscode_result["events"]


def test_vscode_drafts_rendered(vscode_result):
    assert vscode_result["drafts_seen"], "no draft decoration was seen while filling"
    assert Path(vscode_result["shot_draft"]).exists()
