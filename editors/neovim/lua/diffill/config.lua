--- Default configuration for diffill.nvim; `require("diffill").setup(opts)` deep-merges into it.
local M = {}

M.defaults = {
  --- command that starts the language server (stdio)
  cmd = { 'diffill', 'serve' },
  --- directory the server runs in (nil: Neovim's cache directory); never the project,
  --- where `python -m lsp_server` would import the project's own modules first
  cmd_cwd = nil,
  --- filetypes the client attaches to (nil: every filetype with a file on disk)
  filetypes = nil,
  --- markers used to find the workspace root (single-file mode when none is found)
  root_markers = { '.git', 'pyproject.toml', 'package.json', 'Cargo.toml', 'go.mod' },
  --- server settings, sent as initializationOptions and settings.diffill (see docs/PROTOCOL.md),
  --- e.g. { model = "/path/to/model", device = "cpu", maxNewTokens = 32 }
  settings = {},
  completion = {
    enabled = true,
    --- ask for a completion on every typed character (the server debounces and cancels)
    autotrigger = true,
  },
  inline = {
    enabled = true,
    --- milliseconds between the last keystroke and the inline request
    debounce_ms = 75,
    --- "auto": vim.lsp.inline_completion on Neovim >= 0.12, own implementation on 0.11
    builtin = 'auto',
    --- ghost text tokens the model gave at least `high` probability are drawn with
    --- DiffillGhostSure, under `low` with DiffillGhostUnsure, the rest with DiffillGhostText
    confidence = { high = 0.8, low = 0.4 },
  },
  drafts = {
    --- show diffill/draft notifications as virtual text while the model denoises
    enabled = true,
  },
  --- insert-mode keymaps (set one to false to skip it)
  keymaps = {
    accept = '<Tab>',
    accept_line = '<M-l>',
    dismiss = '<C-]>',
    --- ask for a suggestion now
    trigger = '<M-\\>',
    --- show the next / previous suggestion (the first press asks the server for alternatives)
    next = '<M-]>',
    prev = '<M-[>',
    --- normal and visual mode
    fill = '<leader>df',
  },
}

M.options = vim.deepcopy(M.defaults)

function M.set(opts)
  M.options = vim.tbl_deep_extend('force', vim.deepcopy(M.defaults), opts or {})
  return M.options
end

return M
