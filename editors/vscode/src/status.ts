// Status bar item driven by diffill/status notifications (and the client's state).
import * as vscode from 'vscode';

export interface StatusParams {
  state: 'loading' | 'ready' | 'busy' | 'error' | 'stopped' | 'starting';
  message: string;
  model?: string;
  device?: string;
  /** the fill command's own model (setting fillModel), when it has one; fillDevice once loaded */
  fillModel?: string;
  fillDevice?: string;
}

const ICONS: Record<StatusParams['state'], string> = {
  starting: '$(loading~spin)',
  loading: '$(loading~spin)',
  ready: '$(sparkle)',
  busy: '$(sync~spin)',
  error: '$(error)',
  stopped: '$(circle-slash)',
};

export class StatusBar implements vscode.Disposable {
  readonly item: vscode.StatusBarItem;
  state: StatusParams = { state: 'starting', message: 'starting the server' };
  private inlineOn = true;
  /** the model's confidence in the suggestions shown now (best first), 0..1; empty: none shown */
  private shown: number[] = [];

  constructor() {
    this.item = vscode.window.createStatusBarItem('diffill.status', vscode.StatusBarAlignment.Right, 100);
    this.item.name = 'diffill';
    this.item.command = 'diffill.showLog';
    this.render();
    this.item.show();
  }

  set(params: StatusParams): void {
    this.state = params;
    this.render();
  }

  setInline(on: boolean): void {
    this.inlineOn = on;
    this.render();
  }

  /** The suggestions now shown as ghost text, by the confidence the server gave each. */
  setSuggestions(confidences: number[]): void {
    this.shown = confidences;
    this.render();
  }

  private render(): void {
    const s = this.state;
    const sure = this.shown.length ? ` ${pct(this.shown[0])}` : '';
    this.item.text = `${ICONS[s.state] ?? '$(question)'} diffill${this.inlineOn ? '' : ' (off)'}${sure}`;
    const lines = [`**diffill**: ${s.state}`, s.message];
    if (this.shown.length) {
      lines.push(`suggestion: ${pct(this.shown[0])} sure` +
        (this.shown.length > 1 ? ` (others: ${this.shown.slice(1).map(pct).join(', ')}; Alt+] / Alt+[ to see them)` : ''));
    }
    if (s.model) lines.push(`model (typing): \`${s.model}\``);
    if (s.device) lines.push(`device: ${s.device}`);
    if (s.fillModel) lines.push(`fill model: \`${s.fillModel}\`${s.fillDevice ? ` on ${s.fillDevice}` : ' (loads at the first fill)'}`);
    lines.push('', 'Click to show the log.');
    this.item.tooltip = new vscode.MarkdownString(lines.filter((l) => l !== undefined).join('  \n'));
    this.item.backgroundColor = s.state === 'error'
      ? new vscode.ThemeColor('statusBarItem.errorBackground')
      : undefined;
    this.item.accessibilityInformation = { label: `diffill ${s.state}: ${s.message}` };
  }

  dispose(): void {
    this.item.dispose();
  }
}

function pct(confidence: number): string {
  return `${Math.round(100 * confidence)}%`;
}
