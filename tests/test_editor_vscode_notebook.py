"""VS Code notebooks end to end: a real code-server opens an `.ipynb` file in
its built-in notebook editor (no kernel needed), a real browser types into the
middle code cell, the ghost text is accepted with Tab, the fill command fills
in the cell, and the saved notebook holds both.  The server is the real one
(tests/fault_server.py only records what reached the engine), so the test also
sees that the model got the cells above and below as context.

Needs what tests/test_editor_vscode.py needs.
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
from test_editor_vscode import ARTIFACTS, DRIVER_PRELUDE, require_tools, run_driver

FAULT_SERVER = str(Path(__file__).with_name("fault_server.py"))
DEFINE = "import math\n\n\ndef area(radius):\n    return math.pi * radius ** 2"
WRITING = "r = 2\nresult = "
CALL = "print(area(3))"


def notebook() -> str:
    def cell(kind: str, source: str) -> dict:
        c = {"cell_type": kind, "metadata": {}, "source": source.splitlines(keepends=True)}
        return {**c, "execution_count": None, "outputs": []} if kind == "code" else c
    return json.dumps({
        "cells": [cell("code", DEFINE), cell("markdown", "The area of a circle:"), cell("code", WRITING),
                  cell("code", CALL)],
        "metadata": {"kernelspec": {"display_name": "Python 3", "language": "python", "name": "python3"},
                     "language_info": {"name": "python"}},
        "nbformat": 4, "nbformat_minor": 5,
    }, indent=1) + "\n"


DRIVER = DRIVER_PRELUDE + r"""
// the editor may be half-way through writing the file when it is read: a read that does not parse is "not saved yet"
const cellSources = () => {
  try { return JSON.parse(fs.readFileSync(cfg.file, 'utf8')).cells.map((c) => c.source.join('')); } catch (_) { return null; }
};

async function main() {
  const { browser, page } = await openPage(700);
  const shot = async (name) => { await page.screenshot({ path: path.join(cfg.artifacts, `vscode-notebook-${name}.png`) }); };
  try {
    await page.goto(cfg.url, { waitUntil: 'domcontentloaded', timeout: 60000 });
    await page.waitForSelector('.monaco-workbench', { timeout: 90000 });
    const statusSel = '[id$="diffill.status"]';
    R.status_item = !!(await waitFor(async () => (await page.$(statusSel)) !== null, 90000, 250));
    log('status item ' + R.status_item);
    await page.keyboard.press('Control+P');
    await page.waitForSelector('.quick-input-widget', { state: 'visible', timeout: 20000 });
    await page.keyboard.type(cfg.file_name, { delay: 20 });
    await sleep(800);
    await page.keyboard.press('Enter');
    // the code cells' editors (markdown cells render as markdown, without an editor)
    const editorsSel = '.notebook-editor .code-cell-row .cell-editor-container .monaco-editor';
    R.code_cells = await waitFor(async () => { const n = (await page.$$(editorsSel)).length; return n >= 3 ? n : null; }, 60000, 250);
    log('notebook open, code cells ' + R.code_cells);
    R.status_ready = !!(await waitFor(async () => {
      const label = await page.$eval(statusSel, (e) => e.getAttribute('aria-label') || e.textContent).catch(() => '');
      R.status_label = label;
      return /ready|busy/.test(label);
    }, cfg.ready_timeout_ms, 250));
    log('status ' + R.status_label);

    // 1. type at the end of the middle code cell; ghost text; Tab accepts it
    const cell = (await page.$$(editorsSel))[1];
    await (await cell.$('.view-lines')).click();
    await page.keyboard.press('Control+End');
    await page.keyboard.type(cfg.typed, { delay: 60 });
    const ghost = await waitFor(async () => {
      const els = await cell.$$('.ghost-text-decoration, .ghost-text');
      if (!els.length) return null;
      return norm((await Promise.all(els.map((e) => e.textContent()))).join(''));
    }, cfg.request_timeout_ms);
    R.inline_ghost = ghost;
    log('ghost ' + JSON.stringify(ghost));
    if (ghost !== null) {
      await shot('inline');
      await page.keyboard.press('Tab');
      await sleep(300);
    }
    await page.keyboard.press('Control+S');
    R.saved_after_inline = await waitFor(() => {
      const s = cellSources();
      return s && s[2].includes(cfg.typed) ? s : null;
    }, 10000);
    log('saved after inline');

    // 2. the fill command on a new line at the end of the same cell
    await page.keyboard.press('Control+End');
    await page.keyboard.press('Enter');
    const before = norm(await cell.$eval('.view-lines', (e) => e.innerText));
    await page.keyboard.press('F1');
    await page.waitForSelector('.quick-input-widget', { state: 'visible', timeout: 10000 });
    await page.keyboard.type('Diffill: Fill in the Middle', { delay: 15 });
    await sleep(600);
    await page.keyboard.press('Enter');
    R.fill_changed = (await waitFor(async () => norm(await cell.$eval('.view-lines', (e) => e.innerText)) !== before,
                                    cfg.request_timeout_ms, 100)) !== null;
    log('fill changed ' + R.fill_changed);
    await sleep(300);
    await page.keyboard.press('Control+S');
    const inlineCell = R.saved_after_inline ? R.saved_after_inline[2] : null;
    R.saved_final = (await waitFor(() => { const s = cellSources(); return s && s[2] !== inlineCell ? s : null; }, 10000))
      || cellSources();
    await shot('final');
  } catch (e) {
    R.errors.push(String(e && e.stack || e));
    try { await shot('error'); } catch (_) {}
  } finally {
    fs.writeFileSync(cfg.out, JSON.stringify(R, null, 1));
    await browser.close();
  }
}
main();
"""


@pytest.fixture(scope="module")
def notebook_result(request, tmp_path_factory) -> dict:
    require_tools()
    model = request.getfixturevalue("tiny_model_dir")
    tmp = tmp_path_factory.mktemp("vscode-notebook")
    record = tmp / "requests.jsonl"
    res = run_driver(tmp, [sys.executable, FAULT_SERVER], {
        "model": str(model), "device": "cpu", "maxNewTokens": 24, "debounceMs": 10,
        "minConfidence": 0,  # the random test model is never sure; typing in the cell must show ghost text
        "server.env": {"DIFFILL_TEST_FAULTS": json.dumps({"record_requests": str(record)})},
    }, {"analysis.ipynb": notebook()}, DRIVER, {"file_name": "analysis.ipynb", "typed": "area("})
    res["requests"] = [json.loads(line) for line in record.read_text().splitlines()] if record.exists() else []
    (ARTIFACTS / "vscode-notebook-result.json").write_text(json.dumps(res, indent=1))
    return res


def test_notebook_cell_gets_ghost_text_with_the_other_cells_as_context(notebook_result):
    r = notebook_result
    assert not r["errors"], r["errors"]
    assert r["code_cells"] == 3 and r["status_ready"], r["events"]
    assert r["inline_ghost"], r["events"]
    cell = r["saved_after_inline"][2]
    assert cell.startswith(WRITING + "area(") and len(cell) > len(WRITING + "area("), cell  # ghost text accepted
    # what reached the engine: the cell above as prefix, the cell below as suffix, no markdown
    seen = [q for q in r["requests"] if q["prefix"].endswith("result = area(")]
    assert seen, r["requests"]
    assert "def area(radius):" in seen[0]["prefix"] and "print(area(3))" in seen[0]["suffix"]
    assert "The area of a circle" not in seen[0]["prefix"] + seen[0]["suffix"]


def test_fill_command_edits_the_cell(notebook_result):
    r = notebook_result
    assert r["fill_changed"], r["events"]
    assert r["saved_final"][2] != r["saved_after_inline"][2]
    assert r["saved_final"][0] == DEFINE and r["saved_final"][3] == CALL  # the other cells untouched
