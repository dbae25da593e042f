// Settings: what starts the server (client side) and what the server reads
// (docs/PROTOCOL.md "Settings"), sent as initializationOptions and
// workspace/didChangeConfiguration {settings: {diffill: ...}}.
import * as vscode from 'vscode';

import { SERVER_KEYS } from './serverKeys';

export { SERVER_KEYS };

export const SECTION = 'diffill';


export interface ServerCommand {
  command: string;
  args: string[];
  env: Record<string, string>;
}

export function serverCommand(): ServerCommand {
  const cfg = vscode.workspace.getConfiguration(SECTION);
  const python = (cfg.get<string>('server.pythonPath') || '').trim();
  const env = cfg.get<Record<string, string>>('server.env') || {};
  if (python) {
    // `python -m lsp_server` is `diffill serve`; extra args (e.g. --model) still apply
    const args = (cfg.get<string[]>('server.args') || []).filter((a) => a !== 'serve');
    return { command: python, args: ['-m', 'lsp_server', ...args], env };
  }
  return {
    command: cfg.get<string>('server.command') || 'diffill',
    args: cfg.get<string[]>('server.args') || ['serve'],
    env,
  };
}

const sent = new Set<string>();

/**
 * Server settings the user set (user, workspace or folder scope). Keys left at their
 * default are not sent, so the server's own defaults and its command-line flags
 * (`diffill serve --model ...`) apply; a key sent before and unset since is sent
 * with its default so the server drops the old value.
 */
export function serverSettings(): Record<string, unknown> {
  const cfg = vscode.workspace.getConfiguration(SECTION);
  const out: Record<string, unknown> = {};
  for (const key of SERVER_KEYS) {
    const info = cfg.inspect(key);
    const value = info?.workspaceFolderValue ?? info?.workspaceValue ?? info?.globalValue;
    if (value !== undefined) {
      out[key] = value;
      sent.add(key);
    } else if (sent.has(key)) {
      out[key] = info?.defaultValue ?? null;
      sent.delete(key);
    }
  }
  return out;
}

export function inlineEnabled(): boolean {
  return vscode.workspace.getConfiguration(SECTION).get<boolean>('inline.enabled', true);
}
