--- :checkhealth diffill
local M = {}

function M.check()
  local health = vim.health
  health.start('diffill')

  if vim.fn.has('nvim-0.11') == 1 then
    health.ok('Neovim ' .. tostring(vim.version()))
  else
    health.error('Neovim >= 0.11 is required (vim.lsp.config / vim.lsp.enable)')
  end
  local inline = require('diffill.inline')
  if inline.has_builtin() then
    health.ok('inline suggestions: built-in vim.lsp.inline_completion')
  else
    health.ok('inline suggestions: diffill ghost text (Neovim 0.11 has no built-in inline completion)')
  end

  local ok, config = pcall(require, 'diffill.config')
  if not ok or not require('diffill')._setup_done then
    health.warn('require("diffill").setup() has not been called')
    return
  end
  local opts = config.options
  local exe = opts.cmd[1]
  if vim.fn.executable(exe) == 1 then
    health.ok(string.format('server command: %s (%s)', table.concat(opts.cmd, ' '), vim.fn.exepath(exe)))
  else
    health.error(string.format('server executable %q not found', exe), {
      'pip install diffill (or set cmd = { "/path/to/venv/bin/diffill", "serve" })',
    })
  end
  local cmd_model
  for i, a in ipairs(opts.cmd) do
    if a == '--model' then
      cmd_model = opts.cmd[i + 1]
    end
  end
  if opts.settings.model or cmd_model then
    local m = opts.settings.model or cmd_model
    if m:find('/') and vim.uv.fs_stat(vim.fs.normalize(m)) == nil and not m:match('^[%w_.-]+/[%w_.-]+$') then
      health.warn('settings.model does not exist on disk: ' .. m)
    else
      health.ok('model: ' .. m)
    end
  else
    health.ok('model: bundled default')
  end
  local fill_model = opts.settings.fillModel
  for i, a in ipairs(opts.cmd) do
    if a == '--fill-model' then
      fill_model = fill_model or opts.cmd[i + 1]
    end
  end
  local fill_backend = opts.settings.fillBackend
  if fill_model or fill_backend then
    health.ok(string.format('fill command model: %s%s (loaded at the first fill)', fill_model or 'server default',
      fill_backend and (' on ' .. fill_backend .. (opts.settings.fillUrl and (' at ' .. opts.settings.fillUrl) or '')) or ''))
  else
    health.ok('fill command model: the same as model')
  end

  local clients = vim.lsp.get_clients({ name = 'diffill' })
  if #clients == 0 then
    health.info('no diffill client running (open a file of a configured filetype)')
  else
    for _, c in ipairs(clients) do
      local caps = c.server_capabilities or {}
      health.ok(string.format('client %d running; completion=%s inlineCompletion=%s executeCommand=%s',
        c.id, tostring(caps.completionProvider ~= nil), tostring(caps.inlineCompletionProvider ~= nil),
        tostring(caps.executeCommandProvider ~= nil)))
    end
    local st = require('diffill.status').state
    local report = st.state == 'error' and health.error or health.ok
    report(require('diffill.status').describe())
    if st.model then
      health.ok('typing (inline completion, completion items): ' .. st.model .. (st.device and (' on ' .. st.device) or ''))
      if st.fillModel then
        health.ok('fill command: ' .. st.fillModel .. (st.fillDevice and (' on ' .. st.fillDevice) or ' (loads at the first fill)'))
      else
        health.ok('fill command: ' .. st.model .. ' (the same model)')
      end
    end
  end
  health.info('LSP log: ' .. vim.lsp.log.get_filename())
end

return M
