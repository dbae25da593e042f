--- Ghost-text inline suggestions (`textDocument/inlineCompletion`, LSP 3.18).
---
--- Neovim >= 0.12 ships `vim.lsp.inline_completion`; it is used when available.
--- Neovim 0.11 has no inline completion, so this module sends the request itself
--- (debounced, cancelling the previous one) and draws the first item with extmarks:
--- the rest of the current line as inline virtual text, further lines as virt_lines,
--- each token shaded by the model's confidence (DiffillGhostSure / DiffillGhostText /
--- DiffillGhostUnsure).  `cycle` shows the server's other suggestions.
local util = require('diffill.util')

local M = {}

M.ns = vim.api.nvim_create_namespace('diffill.inline')

--- per buffer: { timer, request = {client, id}, suggestion = {...} }
local state = {}

local function bstate(bufnr)
  state[bufnr] = state[bufnr] or {}
  return state[bufnr]
end

function M.has_builtin()
  return vim.lsp.inline_completion ~= nil and vim.lsp.inline_completion.enable ~= nil
end

function M.use_builtin()
  local mode = require('diffill.config').options.inline.builtin
  if mode == 'auto' then
    return M.has_builtin()
  end
  return mode == true and M.has_builtin()
end

--- the suggestion currently shown in `bufnr`, or nil
function M.current(bufnr)
  return (state[bufnr or vim.api.nvim_get_current_buf()] or {}).suggestion
end

local function cancel_request(s)
  if s.request then
    pcall(function()
      s.request.client:cancel_request(s.request.id)
    end)
    s.request = nil
  end
end

function M.clear(bufnr)
  bufnr = bufnr or vim.api.nvim_get_current_buf()
  local s = state[bufnr]
  if s then
    cancel_request(s)
    if s.timer then
      s.timer:stop()
    end
    s.suggestion = nil
  end
  if vim.api.nvim_buf_is_valid(bufnr) then
    vim.api.nvim_buf_clear_namespace(bufnr, M.ns, 0, -1)
  end
end

local function item_text(item)
  local t = item.insertText
  if type(t) == 'table' then
    -- StringValue snippet: drop placeholders/tabstops for display and insertion
    t = (t.value or ''):gsub('%$%{%d+:([^}]*)%}', '%1'):gsub('%$%d+', '')
  end
  return t or ''
end

--- The suggestion's confidence as the server sent it in the item's command argument
--- ({confidence, spans = {{start, end, probability}, ...}}, characters of the text), or nil.
function M.item_confidence(item)
  local cmd = item and item.command
  local arg = cmd and cmd.arguments and cmd.arguments[1]
  if type(arg) ~= 'table' then
    return nil
  end
  return arg
end

--- The highlight group for a token of probability `p` (`inline.confidence` thresholds).
function M.group_for(p)
  local t = require('diffill.config').options.inline.confidence
  if type(p) ~= 'number' then
    return 'DiffillGhostText'
  elseif p >= t.high then
    return 'DiffillGhostSure'
  elseif p < t.low then
    return 'DiffillGhostUnsure'
  end
  return 'DiffillGhostText'
end

--- `ghost` (the text after its first `skip` characters) as chunks {text, group} per line,
--- shaded by the spans' probabilities (characters, as the server counts them).
local function shaded_lines(ghost, skip, spans)
  -- one group per byte of ghost; bytes no span covers keep the plain group
  local groups = {}
  for _, span in ipairs(spans or {}) do
    local a, b = span[1] - skip, span[2] - skip
    if b > 0 then
      local ok_a, ba = pcall(vim.str_byteindex, ghost, 'utf-32', math.max(a, 0), false)
      local ok_b, bb = pcall(vim.str_byteindex, ghost, 'utf-32', b, false)
      if ok_a and ok_b then
        for i = ba + 1, bb do
          groups[i] = M.group_for(span[3])
        end
      end
    end
  end
  local lines, chunks = {}, {}
  local run_start, run_group = 1, groups[1] or 'DiffillGhostText'
  local function flush(stop)
    if stop >= run_start then
      chunks[#chunks + 1] = { ghost:sub(run_start, stop), run_group }
    end
  end
  for i = 1, #ghost do
    local ch = ghost:sub(i, i)
    if ch == '\n' then
      flush(i - 1)
      lines[#lines + 1] = #chunks > 0 and chunks or { { '', 'DiffillGhostText' } }
      chunks, run_start, run_group = {}, i + 1, groups[i + 1] or 'DiffillGhostText'
    else
      local g = groups[i] or 'DiffillGhostText'
      if g ~= run_group then
        flush(i - 1)
        run_start, run_group = i, g
      end
    end
  end
  flush(#ghost)
  lines[#lines + 1] = #chunks > 0 and chunks or { { '', 'DiffillGhostText' } }
  return lines
end

--- Draw `item` (replacing `range`, inserting `text`) at the cursor of `bufnr`; `items` and
--- `index` are the suggestions the server gave and which one this is (for cycling).
local function show(bufnr, client, item, items, index)
  local text = item_text(item)
  local cursor = vim.api.nvim_win_get_cursor(0)
  local crow, ccol = cursor[1] - 1, cursor[2]
  local srow, scol, erow, ecol = crow, ccol, crow, ccol
  if item.range then
    srow, scol = util.to_byte(bufnr, item.range.start, client.offset_encoding)
    erow, ecol = util.to_byte(bufnr, item.range['end'], client.offset_encoding)
  end
  -- the part of the buffer between the range start and the cursor is already typed
  local typed = ''
  if srow == crow and scol <= ccol then
    local line = vim.api.nvim_buf_get_lines(bufnr, crow, crow + 1, false)[1] or ''
    typed = line:sub(scol + 1, ccol)
  end
  if typed ~= '' then
    if text:sub(1, #typed) ~= typed then
      return -- the suggestion no longer matches what is typed
    end
  end
  local ghost = text:sub(#typed + 1)
  if ghost == '' then
    return
  end
  local sure = M.item_confidence(item) or {}
  local lines = shaded_lines(ghost, vim.str_utfindex(typed, 'utf-32'), sure.spans)
  local virt_lines = {}
  for i = 2, #lines do
    virt_lines[#virt_lines + 1] = lines[i]
  end
  vim.api.nvim_buf_clear_namespace(bufnr, M.ns, 0, -1)
  vim.api.nvim_buf_set_extmark(bufnr, M.ns, crow, ccol, {
    virt_text = lines[1],
    virt_text_pos = 'inline',
    virt_lines = #virt_lines > 0 and virt_lines or nil,
    hl_mode = 'combine',
    priority = 100,
  })
  bstate(bufnr).suggestion = {
    client_id = client.id,
    item = item,
    items = items or { item },
    index = index or 1,
    text = text,
    ghost = ghost,
    confidence = type(sure.confidence) == 'number' and sure.confidence or nil,
    range = { srow, scol, erow, ecol },
    changedtick = vim.b[bufnr].changedtick,
    cursor = { crow, ccol },
  }
  vim.api.nvim_exec_autocmds('User', {
    pattern = 'DiffillInline',
    modeline = false,
    data = { bufnr = bufnr, text = ghost, confidence = bstate(bufnr).suggestion.confidence,
             index = index or 1, count = items and #items or 1 },
  })
end

--- Send textDocument/inlineCompletion now for the cursor in the current buffer; `on_items`
--- (optional) receives the items instead of the first being shown.
function M.request(trigger_kind, on_items)
  local bufnr = vim.api.nvim_get_current_buf()
  local client = util.get_client(bufnr)
  if not client or not client:supports_method('textDocument/inlineCompletion', bufnr) then
    return
  end
  local s = bstate(bufnr)
  cancel_request(s)
  local cursor = vim.api.nvim_win_get_cursor(0)
  local params = {
    textDocument = vim.lsp.util.make_text_document_params(bufnr),
    position = util.to_lsp(bufnr, cursor[1] - 1, cursor[2], client.offset_encoding),
    context = { triggerKind = trigger_kind or 2 },
  }
  local tick = vim.b[bufnr].changedtick
  local ok, id = client:request('textDocument/inlineCompletion', params, function(err, result)
    s.request = nil
    if err or not result then
      return
    end
    -- stale: the user typed or moved meanwhile
    if not vim.api.nvim_buf_is_valid(bufnr) or vim.b[bufnr].changedtick ~= tick
      or vim.api.nvim_get_current_buf() ~= bufnr or not vim.fn.mode():match('^i') then
      return
    end
    local c = vim.api.nvim_win_get_cursor(0)
    if c[1] ~= cursor[1] or c[2] ~= cursor[2] then
      return
    end
    local items = result.items or result
    if type(items) == 'table' and items[1] then
      if on_items then
        on_items(items)
      else
        show(bufnr, client, items[1], items, 1)
      end
    end
  end, bufnr)
  if ok then
    s.request = { client = client, id = id }
  end
end

--- Debounced request after typing.
function M.schedule(bufnr)
  local s = bstate(bufnr)
  M.clear(bufnr)
  s.tick = vim.b[bufnr].changedtick
  s.cursor = vim.api.nvim_win_get_cursor(0)
  s.timer = s.timer or vim.uv.new_timer()
  local ms = require('diffill.config').options.inline.debounce_ms
  s.timer:start(ms, 0, vim.schedule_wrap(function()
    if vim.api.nvim_get_current_buf() == bufnr and vim.fn.mode():match('^i') then
      M.request(2)
    end
  end))
end

--- Accept the shown suggestion (whole, or only up to the end of its first line).
--- Returns true when something was inserted.
function M.accept(opts)
  opts = opts or {}
  local bufnr = vim.api.nvim_get_current_buf()
  if M.use_builtin() then
    return vim.lsp.inline_completion.get({ bufnr = bufnr }) and true or false
  end
  local sug = M.current(bufnr)
  if not sug or sug.changedtick ~= vim.b[bufnr].changedtick then
    return false
  end
  M.clear(bufnr)
  local ghost = sug.ghost
  if opts.line then
    local first, rest = ghost:match('^([^\n]*)\n(.*)$')
    if first then
      ghost = first ~= '' and first or ('\n' .. (rest:match('^[^\n]*') or ''))
    end
  end
  -- insert the ghost part at the cursor, replace what the range covers after it
  local cursor = vim.api.nvim_win_get_cursor(0)
  local crow, ccol = cursor[1] - 1, cursor[2]
  local erow, ecol = sug.range[3], sug.range[4]
  if opts.line or erow < crow or (erow == crow and ecol < ccol) then
    erow, ecol = crow, ccol
  end
  local lines = util.lines(ghost)
  vim.api.nvim_buf_set_text(bufnr, crow, ccol, erow, ecol, lines)
  local last_row = crow + #lines - 1
  local last_col = (#lines == 1 and ccol or 0) + #lines[#lines]
  vim.api.nvim_win_set_cursor(0, { last_row + 1, last_col })
  local client = vim.lsp.get_client_by_id(sug.client_id)
  if client and sug.item.command then
    client:exec_cmd(sug.item.command, { bufnr = bufnr })
  end
  vim.api.nvim_exec_autocmds('User', { pattern = 'DiffillAccept', modeline = false, data = { bufnr = bufnr, text = ghost } })
  return true
end

--- Show the next (`step` 1) or previous (-1) suggestion.  Suggestions shown while typing
--- come one at a time: the first cycle asks the server (invoked) for its alternatives.
--- Returns true when it did something.
function M.cycle(step)
  local bufnr = vim.api.nvim_get_current_buf()
  if M.use_builtin() then
    return pcall(vim.lsp.inline_completion.select, { bufnr = bufnr, count = step })
  end
  local sug = M.current(bufnr)
  local client = sug and vim.lsp.get_client_by_id(sug.client_id)
  local function go(items, from)
    local n = #items
    if n == 0 then
      return
    end
    local index = ((from - 1 + step) % n) + 1
    show(bufnr, client or util.get_client(bufnr), items[index], items, index)
  end
  if sug and client and sug.changedtick == vim.b[bufnr].changedtick and #sug.items > 1 then
    go(sug.items, sug.index)
    return true
  end
  M.request(1, function(items)
    client = client or util.get_client(bufnr)
    local from = 1
    if sug then -- keep the one on screen in its place if the server gave it again
      for i, it in ipairs(items) do
        if item_text(it) == sug.text then
          from = i
        end
      end
    end
    go(items, #items > 1 and from or 0)
  end)
  return true
end

function M.dismiss()
  local bufnr = vim.api.nvim_get_current_buf()
  if M.current(bufnr) then
    M.clear(bufnr)
    return true
  end
  return false
end

--- Turn inline suggestions on for `bufnr` (called on LspAttach).
function M.attach(client, bufnr)
  if M.use_builtin() then
    pcall(vim.lsp.inline_completion.enable, true, { bufnr = bufnr, client_id = client.id })
    return
  end
  local group = vim.api.nvim_create_augroup('diffill.inline.' .. bufnr, { clear = true })
  vim.api.nvim_create_autocmd({ 'TextChangedI', 'TextChangedP' }, {
    group = group,
    buffer = bufnr,
    callback = function()
      if M.enabled ~= false then
        M.schedule(bufnr)
      end
    end,
  })
  vim.api.nvim_create_autocmd({ 'InsertLeave', 'BufLeave' }, {
    group = group,
    buffer = bufnr,
    callback = function()
      M.clear(bufnr)
    end,
  })
  vim.api.nvim_create_autocmd('CursorMovedI', {
    group = group,
    buffer = bufnr,
    callback = function()
      -- typing also moves the cursor: only a pure cursor move (same changedtick) dismisses
      local s = bstate(bufnr)
      if s.tick ~= vim.b[bufnr].changedtick then
        return
      end
      local c = vim.api.nvim_win_get_cursor(0)
      if s.cursor and s.cursor[1] == c[1] and s.cursor[2] == c[2] then
        return
      end
      local sug = s.suggestion
      if sug then
        local marks = vim.api.nvim_buf_get_extmarks(bufnr, M.ns, 0, -1, {})
        if marks[1] and marks[1][2] == c[1] - 1 and marks[1][3] == c[2] then
          return
        end
      end
      M.clear(bufnr)
    end,
  })
  vim.api.nvim_create_autocmd('LspDetach', {
    group = group,
    buffer = bufnr,
    callback = function(ev)
      if ev.data and ev.data.client_id == client.id then
        M.clear(bufnr)
        pcall(vim.api.nvim_del_augroup_by_id, group)
      end
    end,
  })
end

--- Enable/disable automatic inline suggestions everywhere.
function M.toggle(on)
  if on == nil then
    on = M.enabled == false
  end
  M.enabled = on
  if M.use_builtin() then
    pcall(vim.lsp.inline_completion.enable, on)
  end
  if not on then
    for b in pairs(state) do
      M.clear(b)
    end
  end
  return on
end

return M
