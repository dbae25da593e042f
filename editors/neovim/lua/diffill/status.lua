--- Server state from `diffill/status` notifications, for statuslines and :DiffillStatus.
local M = {}

M.state = { state = 'stopped', message = 'not started' }

--- lsp handler for diffill/status
function M.handler(_, params, _ctx)
  if type(params) ~= 'table' then
    return
  end
  M.state = params
  vim.api.nvim_exec_autocmds('User', { pattern = 'DiffillStatus', modeline = false, data = params })
  if params.state == 'error' then
    vim.notify('diffill: ' .. (params.message or 'error'), vim.log.levels.ERROR)
  end
end

--- short text for a statusline, e.g. "diffill:ready"
function M.statusline()
  return 'diffill:' .. (M.state.state or '?')
end

function M.describe()
  local s = M.state
  local parts = { 'diffill: ' .. (s.state or '?') }
  if s.message and s.message ~= '' then
    parts[#parts + 1] = s.message
  end
  if s.model then
    parts[#parts + 1] = 'model=' .. s.model
  end
  if s.device then
    parts[#parts + 1] = 'device=' .. s.device
  end
  if s.fillModel then
    parts[#parts + 1] = 'fillModel=' .. s.fillModel .. (s.fillDevice and (' (' .. s.fillDevice .. ')') or ' (loads at the first fill)')
  end
  return table.concat(parts, '  ')
end

return M
