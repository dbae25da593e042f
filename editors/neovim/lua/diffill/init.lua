--- diffill.nvim: diffusion-model code infilling through the `diffill serve` language server.
---
---   require("diffill").setup({ settings = { model = "..." } })
---
--- Registers the "diffill" LSP config (vim.lsp.config / vim.lsp.enable, Neovim >= 0.11) with:
---  * completion with autotrigger (vim.lsp.completion),
---  * ghost-text inline suggestions (diffill.inline),
---  * live drafts of the fill command (diffill.draft, `diffill/draft` notifications),
---  * :DiffillFill / :DiffillStatus / :DiffillToggle and accept/dismiss keymaps.
local config = require('diffill.config')

local M = {}

M._setup_done = false

local function define_highlights()
  vim.api.nvim_set_hl(0, 'DiffillGhostText', { link = 'Comment', default = true })
  -- ghost text by the model's confidence in each token (inline.confidence thresholds)
  vim.api.nvim_set_hl(0, 'DiffillGhostSure', { link = 'DiffillGhostText', default = true })
  vim.api.nvim_set_hl(0, 'DiffillGhostUnsure', { link = 'NonText', default = true })
  vim.api.nvim_set_hl(0, 'DiffillDraft', { link = 'NonText', default = true })
  vim.api.nvim_set_hl(0, 'DiffillDraftProgress', { link = 'Comment', default = true })
  vim.api.nvim_set_hl(0, 'DiffillDraftReplaced', { strikethrough = true, default = true })
end

--- characters that make vim.lsp.completion's autotrigger fire: every identifier and
--- punctuation character, since an infill model can continue after anything
local function every_char()
  local chars = {}
  for c in ('abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_.(,=:[{ '):gmatch('.') do
    chars[#chars + 1] = c
  end
  return chars
end

local function map_keys(bufnr)
  local km = config.options.keymaps
  local inline = require('diffill.inline')
  --- insert-mode mapping: `action()` returns true when it handled the key, otherwise the
  --- key does what it would do without the mapping (a plain callback, not an expr mapping,
  --- because accepting edits the buffer, which an expr mapping may not)
  local function imap(lhs, action, desc)
    vim.keymap.set('i', lhs, function()
      if not action() then
        vim.api.nvim_feedkeys(vim.api.nvim_replace_termcodes(lhs, true, false, true), 'n', false)
      end
    end, { buffer = bufnr, desc = desc })
  end
  vim.keymap.set('i', '<Plug>(diffill-accept)', function()
    inline.accept()
  end, { buffer = bufnr, desc = 'diffill: accept suggestion' })
  if km.accept then
    imap(km.accept, function()
      if inline.use_builtin() then
        return vim.lsp.inline_completion.get({ bufnr = bufnr })
      end
      if not inline.current(bufnr) then
        return false
      end
      if vim.fn.pumvisible() == 1 then
        -- close the completion menu first (<C-e>), then accept the ghost text
        vim.api.nvim_feedkeys(vim.api.nvim_replace_termcodes('<C-e><Plug>(diffill-accept)', true, false, true), 'm', false)
        return true
      end
      return inline.accept()
    end, 'diffill: accept suggestion')
  end
  if km.accept_line then
    imap(km.accept_line, function()
      return inline.accept({ line = true })
    end, 'diffill: accept one line of the suggestion')
  end
  if km.dismiss then
    imap(km.dismiss, inline.dismiss, 'diffill: dismiss suggestion')
  end
  if km.trigger then
    vim.keymap.set('i', km.trigger, function()
      if inline.use_builtin() then
        pcall(vim.lsp.inline_completion.select, { bufnr = bufnr })
      else
        inline.request(1) -- triggerKind Invoked
      end
    end, { buffer = bufnr, desc = 'diffill: ask for a suggestion now' })
  end
  if km.next then
    imap(km.next, function()
      return inline.cycle(1)
    end, 'diffill: next suggestion')
  end
  if km.prev then
    imap(km.prev, function()
      return inline.cycle(-1)
    end, 'diffill: previous suggestion')
  end
  if km.fill then
    vim.keymap.set('n', km.fill, '<Cmd>DiffillFill<CR>', { buffer = bufnr, desc = 'diffill: fill at cursor' })
    vim.keymap.set('x', km.fill, ':DiffillFill<CR>', { buffer = bufnr, silent = true, desc = 'diffill: fill selection' })
  end
end

local function on_attach(client, bufnr)
  local opts = config.options
  if opts.completion.enabled and client:supports_method('textDocument/completion', bufnr) then
    if opts.completion.autotrigger then
      local cp = client.server_capabilities.completionProvider
      local chars = cp.triggerCharacters or {}
      local seen = {}
      for _, c in ipairs(chars) do
        seen[c] = true
      end
      for _, c in ipairs(every_char()) do
        if not seen[c] then
          chars[#chars + 1] = c
        end
      end
      cp.triggerCharacters = chars
    end
    vim.lsp.completion.enable(true, client.id, bufnr, { autotrigger = opts.completion.autotrigger })
  end
  if opts.inline.enabled then
    require('diffill.inline').attach(client, bufnr)
  end
  map_keys(bufnr)
end

local function create_commands()
  vim.api.nvim_create_user_command('DiffillFill', function(cmd)
    local range
    if cmd.range > 0 then
      range = { cmd.line1, cmd.line2 }
    end
    -- '<,'> from visual mode: use the exact selection (charwise or linewise)
    local visual = cmd.range == 2 and vim.fn.line("'<") == cmd.line1 and vim.fn.line("'>") == cmd.line2
    require('diffill.fill').run({ range = range, visual = visual })
  end, { range = true, desc = 'diffill: fill in the middle at the cursor or over the range' })
  vim.api.nvim_create_user_command('DiffillStatus', function()
    vim.notify(require('diffill.status').describe())
  end, { desc = 'diffill: show server status' })
  vim.api.nvim_create_user_command('DiffillToggle', function()
    local on = require('diffill.inline').toggle()
    vim.notify('diffill inline suggestions ' .. (on and 'on' or 'off'))
  end, { desc = 'diffill: toggle inline suggestions' })
  vim.api.nvim_create_user_command('DiffillLog', function()
    vim.cmd.split(vim.lsp.log.get_filename())
  end, { desc = 'diffill: open the LSP log' })
end

--- The server's working directory: the user's `cmd_cwd`, else Neovim's cache directory
--- (vim.lsp would use Neovim's current directory, usually the project).
local function server_cwd(opts)
  local dir = opts.cmd_cwd or vim.fs.joinpath(vim.fn.stdpath('cache'), 'diffill')
  vim.fn.mkdir(dir, 'p')
  return dir
end

--- Configure and enable the diffill language server. This is the plugin's only
--- configuration: it reads no project files and no global or buffer variables.
function M.setup(opts)
  if vim.fn.has('nvim-0.11') == 0 then
    vim.notify('diffill.nvim needs Neovim >= 0.11', vim.log.levels.ERROR)
    return
  end
  opts = config.set(opts)
  define_highlights()
  create_commands()

  -- an empty Lua table would be sent as a JSON array
  local server_settings = next(opts.settings) and opts.settings or vim.empty_dict()
  local lsp_config = {
    cmd = opts.cmd,
    cmd_cwd = server_cwd(opts),
    root_markers = opts.root_markers,
    init_options = server_settings,
    settings = { diffill = server_settings },
    handlers = {
      ['diffill/draft'] = require('diffill.draft').handler,
      ['diffill/status'] = require('diffill.status').handler,
    },
    on_attach = on_attach,
  }
  if opts.filetypes then
    lsp_config.filetypes = opts.filetypes
  end
  vim.lsp.config('diffill', lsp_config)
  vim.lsp.enable('diffill')
  M._setup_done = true

  vim.api.nvim_create_autocmd('ColorScheme', {
    group = vim.api.nvim_create_augroup('diffill.highlights', { clear = true }),
    callback = define_highlights,
  })
end

--- statusline component, e.g. `set statusline+=%{v:lua.require'diffill'.statusline()}`
function M.statusline()
  return require('diffill.status').statusline()
end

M.fill = function(o)
  return require('diffill.fill').run(o)
end
M.accept = function(o)
  return require('diffill.inline').accept(o)
end
M.dismiss = function()
  return require('diffill.inline').dismiss()
end

return M
