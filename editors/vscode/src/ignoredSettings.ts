// Tells the user, once per workspace, which diffill settings in the workspace's own
// settings files were ignored and why (policy.ts decides). VS Code drops such values
// before an extension can see them, so the files themselves are read here: each folder's
// .vscode/settings.json and the .code-workspace file's "settings".
import * as vscode from 'vscode';
import { parse as parseJsonc } from 'jsonc-parser';
import { Reason, SECTION, SettingsPolicy, ignoredReason } from './policy';

export interface IgnoredSetting {
  key: string;
  reason: Reason;
  file: string;
}

const SHOWN_KEY = 'diffill.ignoredWorkspaceSettingsShown';

type Json = Record<string, unknown>;

function isObject(value: unknown): value is Json {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/**
 * The value of a dotted key in settings as VS Code reads them: `"a.b.c": 1`,
 * `"a": {"b.c": 1}` and `"a": {"b": {"c": 1}}` all set `a.b.c`.
 */
export function lookup(settings: unknown, key: string): unknown {
  if (!isObject(settings)) return undefined;
  if (Object.hasOwn(settings, key)) return settings[key];
  const parts = key.split('.');
  for (let i = 1; i < parts.length; i++) {
    const head = parts.slice(0, i).join('.');
    if (Object.hasOwn(settings, head)) {
      const found = lookup(settings[head], parts.slice(i).join('.'));
      if (found !== undefined) return found;
    }
  }
  return undefined;
}

async function readSettings(uri: vscode.Uri, property?: string): Promise<unknown> {
  let text: string;
  try {
    text = new TextDecoder().decode(await vscode.workspace.fs.readFile(uri));
  } catch {
    return undefined; // no such file
  }
  const parsed: unknown = parseJsonc(text, [], { allowTrailingComma: true });
  return property === undefined ? parsed : isObject(parsed) ? parsed[property] : undefined;
}

/** Workspace-level diffill settings that are present in the files but not used now. */
export async function findIgnored(policy: SettingsPolicy, trusted: boolean): Promise<IgnoredSetting[]> {
  const sources: Array<[vscode.Uri, string | undefined]> = [];
  const wsFile = vscode.workspace.workspaceFile;
  if (wsFile && wsFile.scheme !== 'untitled') sources.push([wsFile, 'settings']);
  for (const folder of vscode.workspace.workspaceFolders ?? []) {
    sources.push([vscode.Uri.joinPath(folder.uri, '.vscode', 'settings.json'), undefined]);
  }
  const keys = [...new Set([...policy.userOnly, ...policy.restricted])].filter((k) => k.startsWith(`${SECTION}.`));
  const found: IgnoredSetting[] = [];
  for (const [uri, property] of sources) {
    const settings = await readSettings(uri, property);
    for (const key of keys) {
      const reason = ignoredReason(policy, key, trusted);
      if (reason !== undefined && lookup(settings, key) !== undefined) {
        found.push({ key, reason, file: uri.scheme === 'file' ? uri.fsPath : uri.toString() });
      }
    }
  }
  return found;
}

/** One sentence per reason, naming the settings. */
export function describe(ignored: IgnoredSetting[]): string {
  const names = (reason: Reason) => [...new Set(ignored.filter((i) => i.reason === reason).map((i) => i.key))];
  const parts: string[] = [];
  const userOnly = names('user-only');
  if (userOnly.length) {
    parts.push(`${userOnly.join(', ')}: only your user settings may choose the server program, its arguments, ` +
      'environment and interpreter, trusted model code and the log file');
  }
  const restricted = names('restricted');
  if (restricted.length) {
    parts.push(`${restricted.join(', ')}: Restricted Mode, used once you trust this workspace`);
  }
  return `diffill ignored settings from this workspace. ${parts.join('. ')}.`;
}

/**
 * Logs what was ignored every time; pops it up only when this workspace has not been
 * told about the same settings before (workspace state remembers what was shown).
 */
export async function reportIgnored(
  context: vscode.ExtensionContext, policy: SettingsPolicy, output: vscode.LogOutputChannel,
): Promise<IgnoredSetting[]> {
  const ignored = await findIgnored(policy, vscode.workspace.isTrusted);
  if (!ignored.length) return ignored;
  const message = describe(ignored);
  output.warn(`${message} (${[...new Set(ignored.map((i) => i.file))].join(', ')})`);
  const signature = JSON.stringify(ignored.map((i) => `${i.reason}:${i.key}`).sort());
  if (context.workspaceState.get<string>(SHOWN_KEY) === signature) return ignored;
  await context.workspaceState.update(SHOWN_KEY, signature);
  void vscode.window.showWarningMessage(message, 'Show Log').then((choice) => {
    if (choice === 'Show Log') output.show(true);
  });
  return ignored;
}
