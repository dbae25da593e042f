--- :DiffillFill — run `diffill.fillInTheMiddle` at the cursor or over a selection.
--- The server streams diffill/draft notifications (shown by diffill.draft) and then
--- applies the edit itself with workspace/applyEdit; the command result tells whether it did.
local util = require('diffill.util')

local M = {}

--- the last command result (table from the server, or { error = ... })
M.last_result = nil

--- Arguments for the command: cursor position, or the range of lines/characters.
--- `range` = { line1, line2 } from a :command range, with `visual` true when it came from '<,'>.
local function build_args(bufnr, client, opts)
  local enc = client.offset_encoding
  local uri = vim.uri_from_bufnr(bufnr)
  if not opts.range then
    local c = vim.api.nvim_win_get_cursor(0)
    local col = c[2]
    -- in normal mode the cursor is *on* a character; fill after it when at end of line
    local line = vim.api.nvim_buf_get_lines(bufnr, c[1] - 1, c[1], false)[1] or ''
    if opts.after_cursor and #line > 0 then
      col = math.min(col + 1, #line)
    end
    return { uri = uri, position = util.to_lsp(bufnr, c[1] - 1, col, enc) }
  end
  local srow, scol, erow, ecol
  local vmode = opts.visual and vim.fn.visualmode() or 'V'
  if vmode == 'v' then
    local s = vim.api.nvim_buf_get_mark(bufnr, '<')
    local e = vim.api.nvim_buf_get_mark(bufnr, '>')
    srow, scol, erow = s[1] - 1, s[2], e[1] - 1
    local eline = vim.api.nvim_buf_get_lines(bufnr, erow, erow + 1, false)[1] or ''
    -- '> is on the last selected character: include all of its bytes
    local char = vim.fn.strpart(eline, e[2], 1, true)
    ecol = math.min(e[2] + math.max(#char, 1), #eline)
  else
    srow, scol = opts.range[1] - 1, 0
    erow = opts.range[2] - 1
    ecol = #(vim.api.nvim_buf_get_lines(bufnr, erow, erow + 1, false)[1] or '')
  end
  return {
    uri = uri,
    range = { start = util.to_lsp(bufnr, srow, scol, enc), ['end'] = util.to_lsp(bufnr, erow, ecol, enc) },
  }
end

--- Run the command. opts: { range = {l1, l2}?, visual = bool?, on_done = fun(result)? }
function M.run(opts)
  opts = opts or {}
  local bufnr = vim.api.nvim_get_current_buf()
  local client = util.get_client(bufnr)
  if not client then
    vim.notify('diffill: no diffill language server attached to this buffer', vim.log.levels.WARN)
    return
  end
  local args = build_args(bufnr, client, opts)
  local params = { command = 'diffill.fillInTheMiddle', arguments = { args } }
  client:request('workspace/executeCommand', params, function(err, result)
    require('diffill.draft').clear(bufnr)
    if err then
      M.last_result = { error = err.message or tostring(err) }
      vim.notify('diffill: fill failed: ' .. M.last_result.error, vim.log.levels.ERROR)
    else
      M.last_result = result or {}
      if type(result) == 'table' and result.applied == false then
        vim.notify('diffill: edit not applied' .. (result.reason and (': ' .. result.reason) or ''), vim.log.levels.WARN)
      end
    end
    vim.api.nvim_exec_autocmds('User', { pattern = 'DiffillFillDone', modeline = false, data = M.last_result })
    if opts.on_done then
      opts.on_done(M.last_result)
    end
  end, bufnr)
end

return M
