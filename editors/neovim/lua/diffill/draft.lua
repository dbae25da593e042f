--- Live display of `diffill/draft` notifications: the text the model is denoising,
--- shown as faded virtual text at the range it will replace, until the final edit lands.
local util = require('diffill.util')

local M = {}

M.ns = vim.api.nvim_create_namespace('diffill.draft')
--- number of drafts shown since startup (handy for statuslines and tests)
M.count = 0
--- the last draft params rendered
M.last = nil

local function clear(bufnr)
  if vim.api.nvim_buf_is_valid(bufnr) then
    vim.api.nvim_buf_clear_namespace(bufnr, M.ns, 0, -1)
  end
end

function M.clear(bufnr)
  if bufnr then
    clear(bufnr)
  else
    for _, b in ipairs(vim.api.nvim_list_bufs()) do
      clear(b)
    end
  end
end

--- Render one draft (params as in docs/PROTOCOL.md) in `bufnr`.
function M.render(bufnr, params, encoding)
  clear(bufnr)
  local text = params.text or ''
  local srow, scol = util.to_byte(bufnr, params.range.start, encoding)
  local erow, ecol = util.to_byte(bufnr, params.range['end'], encoding)
  local progress = string.format(' [%d/%d]', params.step or 0, params.steps or 0)
  local lines = util.lines(text)
  local virt_lines = {}
  for i = 2, #lines do
    virt_lines[#virt_lines + 1] = { { lines[i], 'DiffillDraft' } }
  end
  if #virt_lines > 0 then
    virt_lines[#virt_lines][#virt_lines[#virt_lines] + 1] = { progress, 'DiffillDraftProgress' }
  end
  -- the text being replaced (a selection) is shown struck through
  if erow > srow or ecol > scol then
    vim.api.nvim_buf_set_extmark(bufnr, M.ns, srow, scol, {
      end_row = erow,
      end_col = ecol,
      hl_group = 'DiffillDraftReplaced',
      priority = 200,
    })
  end
  local first = { { lines[1], 'DiffillDraft' } }
  if #virt_lines == 0 then
    first[#first + 1] = { progress, 'DiffillDraftProgress' }
  end
  vim.api.nvim_buf_set_extmark(bufnr, M.ns, srow, scol, {
    virt_text = first,
    virt_text_pos = 'inline',
    virt_lines = #virt_lines > 0 and virt_lines or nil,
    priority = 200,
  })
  M.count = M.count + 1
  M.last = params
end

--- lsp handler for diffill/draft
function M.handler(_, params, ctx)
  local cfg = require('diffill.config').options
  if not cfg.drafts.enabled or type(params) ~= 'table' or not params.range then
    return
  end
  local bufnr = util.loaded_buf(params.uri)
  if not bufnr then
    return
  end
  -- a draft computed for an older version of the buffer is stale
  local version = vim.lsp.util.buf_versions[bufnr]
  if params.version and version and params.version ~= version then
    return
  end
  local client = ctx and vim.lsp.get_client_by_id(ctx.client_id)
  M.render(bufnr, params, client and client.offset_encoding or 'utf-16')
  vim.api.nvim_exec_autocmds('User', {
    pattern = 'DiffillDraft',
    modeline = false,
    data = { bufnr = bufnr, step = params.step, steps = params.steps, final = params.final, text = params.text },
  })
  if params.final then
    -- the edit arrives through workspace/applyEdit right after; keep the final draft briefly
    vim.defer_fn(function()
      if M.last == params then
        clear(bufnr)
      end
    end, 1500)
  end
end

return M
