// Settings: what starts the server (client side) and what the server reads
// (docs/PROTOCOL.md "Settings"), sent as initializationOptions and
// workspace/didChangeConfiguration {settings: {diffill: ...}}. Every value goes
// through the policy (policy.ts): what a workspace may not set is read from the
// user's own settings.
import * as vscode from 'vscode';
import { SECTION, SettingsPolicy, settingOrDefault, settingValue } from './policy';

import { SERVER_KEYS } from './serverKeys';

export { SECTION, SERVER_KEYS };


export interface ServerCommand {
  command: string;
  args: string[];
  env: Record<string, string>;
}

export function serverCommand(policy: SettingsPolicy): ServerCommand {
  const python = (settingOrDefault<string>(policy, 'server.pythonPath') || '').trim();
  const env = settingOrDefault<Record<string, string>>(policy, 'server.env') || {};
  const args = settingOrDefault<string[]>(policy, 'server.args') || ['serve'];
  if (python) {
    // `python -m lsp_server` is `diffill serve`; extra args (e.g. --model) still apply
    return { command: python, args: ['-m', 'lsp_server', ...args.filter((a) => a !== 'serve')], env };
  }
  return { command: settingOrDefault<string>(policy, 'server.command') || 'diffill', args, env };
}

const sent = new Set<string>();

/**
 * Server settings the user set (user, workspace or folder scope, as the policy
 * allows). Keys left at their default are not sent, so the server's own defaults
 * and its command-line flags (`diffill serve --model ...`) apply; a key sent before
 * and unset since is sent with its default so the server drops the old value.
 */
export function serverSettings(policy: SettingsPolicy): Record<string, unknown> {
  const cfg = vscode.workspace.getConfiguration(SECTION);
  const out: Record<string, unknown> = {};
  for (const key of SERVER_KEYS) {
    const info = cfg.inspect(key);
    const value = settingValue(policy, key);
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
