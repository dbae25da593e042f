-- diffill.nvim does nothing until require("diffill").setup({...}) is called;
-- this file only guards against double loading.
if vim.g.loaded_diffill then
  return
end
vim.g.loaded_diffill = true
