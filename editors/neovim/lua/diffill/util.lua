--- Small position helpers shared by the diffill modules.
local M = {}

M.client_name = 'diffill'

--- the diffill client attached to `bufnr` (or any diffill client)
function M.get_client(bufnr)
  local clients = vim.lsp.get_clients({ name = M.client_name, bufnr = bufnr })
  return clients[1]
end

local function line_text(bufnr, row)
  return vim.api.nvim_buf_get_lines(bufnr, row, row + 1, false)[1] or ''
end

--- LSP position -> 0-based row and byte column
function M.to_byte(bufnr, pos, encoding)
  local text = line_text(bufnr, pos.line)
  local col = pos.character
  if col > 0 and encoding ~= 'utf-8' then
    local ok, b = pcall(vim.str_byteindex, text, encoding, col, false)
    col = ok and b or math.min(col, #text)
  end
  return pos.line, math.min(col, #text)
end

--- 0-based row and byte column -> LSP position
function M.to_lsp(bufnr, row, col, encoding)
  local text = line_text(bufnr, row)
  col = math.min(col, #text)
  if col > 0 and encoding ~= 'utf-8' then
    local ok, c = pcall(vim.str_utfindex, text, encoding, col, false)
    col = ok and c or col
  end
  return { line = row, character = col }
end

--- buffer for a URI, only if it is already loaded (never creates one)
function M.loaded_buf(uri)
  local ok, fname = pcall(vim.uri_to_fname, uri)
  if not ok then
    return nil
  end
  local bufnr = vim.fn.bufnr(fname)
  if bufnr == -1 or not vim.api.nvim_buf_is_loaded(bufnr) then
    return nil
  end
  return bufnr
end

--- split text on newlines (keeps empty trailing line)
function M.lines(text)
  return vim.split(text, '\n', { plain = true })
end

return M
