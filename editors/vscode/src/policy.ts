// Which diffill settings a workspace may set. A cloned repository ships its own
// .vscode/settings.json; it must not choose the program that runs, its environment,
// model code or the log file, and in Restricted Mode not the model either.
//
// The rules are read from this extension's package.json, so that the manifest VS Code
// enforces and the code here cannot drift apart:
//   scope "machine"                                  -> user settings only, always
//   capabilities.untrustedWorkspaces.restrictedConfigurations
//                                                    -> workspace values only once trusted
// VS Code already drops such workspace values, but only for settings written as flat
// keys: 1.100 keeps `"diffill": {"server": {"command": ...}}` written as a nested object.
// So every value is read here with `inspect` and its origin checked again.
//
// Settings that hold a secret or choose where text is sent (remote backends, API keys)
// must be scope "machine": a workspace must never supply them
// (tests/test_editor_vscode_trust.py checks the manifest for such names).
import * as vscode from 'vscode';

export const SECTION = 'diffill';

export type Reason = 'user-only' | 'restricted';

export interface SettingsPolicy {
  /** full keys ("diffill.server.command") only the user's own settings may set */
  userOnly: ReadonlySet<string>;
  /** full keys a workspace may set only once it is trusted */
  restricted: ReadonlySet<string>;
}

interface Manifest {
  contributes?: { configuration?: { properties?: Record<string, { scope?: string }> } };
  capabilities?: { untrustedWorkspaces?: { restrictedConfigurations?: string[] } };
}

export function policyFromManifest(manifest: Manifest): SettingsPolicy {
  const props = manifest.contributes?.configuration?.properties ?? {};
  const userOnly = Object.keys(props).filter((key) => props[key].scope === 'machine');
  const restricted = manifest.capabilities?.untrustedWorkspaces?.restrictedConfigurations ?? [];
  return { userOnly: new Set(userOnly), restricted: new Set(restricted) };
}

/** Why a workspace-level value of `fullKey` is not used now, or undefined if it is. */
export function ignoredReason(policy: SettingsPolicy, fullKey: string, trusted: boolean): Reason | undefined {
  if (policy.userOnly.has(fullKey)) return 'user-only';
  if (policy.restricted.has(fullKey) && !trusted) return 'restricted';
  return undefined;
}

/**
 * The value of `diffill.<key>` from the settings this workspace may influence:
 * folder, workspace, then user settings, skipping the levels the policy rules out.
 * Undefined when none of them sets it (the caller's default applies).
 */
export function settingValue<T>(policy: SettingsPolicy, key: string): T | undefined {
  const info = vscode.workspace.getConfiguration(SECTION).inspect<T>(key);
  if (!info) return undefined;
  if (ignoredReason(policy, `${SECTION}.${key}`, vscode.workspace.isTrusted) !== undefined) {
    return info.globalValue;
  }
  return info.workspaceFolderValue ?? info.workspaceValue ?? info.globalValue;
}

/** `settingValue`, or the default declared in package.json. */
export function settingOrDefault<T>(policy: SettingsPolicy, key: string): T | undefined {
  const value = settingValue<T>(policy, key);
  return value !== undefined ? value : vscode.workspace.getConfiguration(SECTION).inspect<T>(key)?.defaultValue;
}
