// Live drafts of the fill command: diffill/draft notifications rendered as faded
// text after the range the fill will replace (which is shown struck through).
import * as vscode from 'vscode';

export interface DraftParams {
  uri: string;
  version: number;
  requestId: string;
  range: { start: { line: number; character: number }; end: { line: number; character: number } };
  step: number;
  steps: number;
  text: string;
  confidence: number[];
  final: boolean;
}

export class Drafts implements vscode.Disposable {
  private readonly textType = vscode.window.createTextEditorDecorationType({
    after: {
      color: new vscode.ThemeColor('editorGhostText.foreground'),
      fontStyle: 'italic',
      margin: '0 0 0 0',
    },
    opacity: '0.55',
    rangeBehavior: vscode.DecorationRangeBehavior.ClosedClosed,
  });
  private readonly replacedType = vscode.window.createTextEditorDecorationType({
    textDecoration: 'line-through',
    opacity: '0.5',
  });
  /** uri -> last draft shown */
  readonly shown = new Map<string, DraftParams>();
  /** drafts rendered since activation (exposed to tests through the extension API) */
  count = 0;

  show(uri: vscode.Uri, params: DraftParams): void {
    const editors = vscode.window.visibleTextEditors.filter((e) => e.document.uri.toString() === uri.toString());
    for (const editor of editors) {
      // a draft for an older version of the document is stale
      if (editor.document.version !== params.version) continue;
      const r = params.range;
      const start = new vscode.Position(r.start.line, r.start.character);
      const end = new vscode.Position(r.end.line, r.end.character);
      const lines = params.text.split('\n');
      const more = lines.length > 1 ? `  … +${lines.length - 1} line${lines.length > 2 ? 's' : ''}` : '';
      const progress = `  [${params.step}/${params.steps}]`;
      const hover = new vscode.MarkdownString();
      hover.appendMarkdown(`**diffill draft** step ${params.step}/${params.steps}\n`);
      hover.appendCodeblock(params.text, editor.document.languageId);
      editor.setDecorations(this.textType, [{
        range: new vscode.Range(end, end),
        hoverMessage: hover,
        renderOptions: { after: { contentText: (lines[0] || '\u2026') + more + progress } },
      }]);
      editor.setDecorations(this.replacedType, start.isEqual(end) ? [] : [new vscode.Range(start, end)]);
    }
    this.shown.set(uri.toString(), params);
    this.count += 1;
  }

  clear(uri?: vscode.Uri): void {
    for (const editor of vscode.window.visibleTextEditors) {
      if (uri && editor.document.uri.toString() !== uri.toString()) continue;
      editor.setDecorations(this.textType, []);
      editor.setDecorations(this.replacedType, []);
    }
    if (uri) this.shown.delete(uri.toString());
    else this.shown.clear();
  }

  dispose(): void {
    this.textType.dispose();
    this.replacedType.dispose();
  }
}
