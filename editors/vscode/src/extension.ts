// diffill for VS Code: starts `diffill serve` with vscode-languageclient and adds
// what the standard LSP features do not cover:
//   inline suggestions  textDocument/inlineCompletion (languageclient's feature; Tab accepts)
//   fill command        diffill.fillInTheMiddle on the cursor or selection (palette, keybinding)
//   drafts              diffill/draft notifications as faded decorations (drafts.ts)
//   status              diffill/status in the status bar; click shows the log (status.ts)
//   workspace settings  what a workspace may not set is ignored and the user told once (policy.ts,
//                       ignoredSettings.ts); the server runs outside the workspace folder
import * as os from 'os';
import * as vscode from 'vscode';
import {
  DidChangeConfigurationNotification,
  LanguageClient,
  LanguageClientOptions,
  RevealOutputChannelOn,
  ServerOptions,
  State,
} from 'vscode-languageclient/node';
import { Drafts, DraftParams } from './drafts';
import { reportIgnored } from './ignoredSettings';
import { SettingsPolicy, policyFromManifest } from './policy';
import { SECTION, inlineEnabled, serverCommand, serverSettings } from './settings';
import { StatusBar, StatusParams } from './status';

export const FILL_COMMAND = 'diffill.fillInTheMiddle';

interface FillResult {
  applied: boolean;
  text: string;
  version: number;
  reason?: string;
}

let client: LanguageClient | undefined;
let output: vscode.LogOutputChannel;
let status: StatusBar;
let drafts: Drafts;
let inlineOn = true;
let policy: SettingsPolicy;
/** the server's working directory: the extension's own storage, never a workspace folder */
let serverCwd: string;

/** `{uri, position}` for an empty selection, `{uri, range}` otherwise (docs/PROTOCOL.md). */
function fillArgs(c: LanguageClient, editor: vscode.TextEditor): Record<string, unknown> {
  const uri = c.code2ProtocolConverter.asUri(editor.document.uri);
  const sel = editor.selection;
  if (sel.isEmpty) {
    return { uri, position: c.code2ProtocolConverter.asPosition(sel.active) };
  }
  return { uri, range: c.code2ProtocolConverter.asRange(new vscode.Range(sel.start, sel.end)) };
}

function createClient(): LanguageClient {
  const cmd = serverCommand(policy);
  // vscode-languageclient would start the server in the first workspace folder, where
  // `python -m lsp_server` (diffill.server.pythonPath) imports the repository's own
  // modules first, and relative paths are the repository's to choose
  const serverOptions: ServerOptions = {
    command: cmd.command,
    args: cmd.args,
    options: { env: { ...process.env, ...cmd.env }, cwd: serverCwd },
  };
  const clientOptions: LanguageClientOptions = {
    // notebook cells too: the server syncs Jupyter notebooks (notebookDocument/*) and gives a
    // cell the code cells above and below as context
    documentSelector: [{ scheme: 'file' }, { scheme: 'untitled' }, { scheme: 'vscode-notebook-cell' }],
    initializationOptions: serverSettings(policy),
    outputChannel: output,
    revealOutputChannelOn: RevealOutputChannelOn.Never,
    middleware: {
      provideInlineCompletionItems: async (document, position, context, token, next) => {
        if (!inlineOn) return null;
        const result = await next(document, position, context, token);
        // each item's command argument carries the model's confidence (docs/PROTOCOL.md)
        const items = Array.isArray(result) ? result : result?.items ?? [];
        status.setSuggestions(items.map(confidenceOf).filter((c): c is number => c !== undefined));
        return result;
      },
      // the languageclient registers a VS Code command for each server command; from the
      // palette or a keybinding it gets no arguments: fill them from the active editor
      executeCommand: async (command, args, next) => {
        if (command !== FILL_COMMAND) return next(command, args);
        const editor = vscode.window.activeTextEditor;
        if (!args || args.length === 0) {
          if (!editor) {
            void vscode.window.showWarningMessage('diffill: open a file to fill in.');
            return undefined;
          }
          args = [fillArgs(client!, editor)];
        }
        const uri = vscode.Uri.parse(String((args[0] as { uri: string }).uri));
        try {
          const result = (await next(command, args)) as FillResult | undefined;
          if (result && result.applied === false) {
            void vscode.window.showWarningMessage(`diffill: edit not applied${result.reason ? `: ${result.reason}` : ''}`);
          }
          return result;
        } finally {
          drafts.clear(uri);
        }
      },
      workspace: {
        // a pull for our section answers with the server's keys only
        configuration: async (params, token, next) => {
          const result = await next(params, token);
          if (!Array.isArray(result)) return result;
          return params.items.map((item, i) => (item.section === SECTION ? serverSettings(policy) : result[i]));
        },
      },
    },
  };
  const c = new LanguageClient('diffill', 'diffill', serverOptions, clientOptions);
  c.onDidChangeState((e) => {
    if (e.newState === State.Starting) status.set({ state: 'starting', message: 'starting the server' });
    if (e.newState === State.Running) output.info('diffill server running');
    if (e.newState === State.Stopped && status.state.state !== 'error') {
      status.set({ state: 'stopped', message: 'server stopped' });
    }
  });
  return c;
}

async function startClient(context: vscode.ExtensionContext): Promise<void> {
  const c = createClient();
  client = c;
  const cmd = serverCommand(policy);
  output.info(`starting the diffill server: ${[cmd.command, ...cmd.args].join(' ')}`);
  // handlers before start: the server may report status as soon as it is initialized
  c.onNotification('diffill/status', (p: StatusParams) => {
    // busy/ready flip on every slow request (busy after 100 ms in the engine): show them in the status bar, keep them out of the log
    const perRequest = p.state === 'busy' || (p.state === 'ready' && status.state.state === 'busy');
    status.set(p);
    if (!perRequest) output.info(`status: ${p.state} ${p.message}`);
  });
  c.onNotification('diffill/draft', (p: DraftParams) => {
    drafts.show(c.protocol2CodeConverter.asUri(p.uri), p);
  });
  try {
    await c.start();
    if (status.state.state === 'starting') status.set({ state: 'loading', message: 'server started' });
  } catch (err) {
    let msg = err instanceof Error ? err.message : String(err);
    if (vscode.env.remoteName) {
      // machine-scoped settings in a local User settings file do not apply here (editors/vscode/README.md)
      msg += `; this is a remote window (${vscode.env.remoteName}): diffill.server.* settings are read from your Remote settings only`;
    }
    status.set({ state: 'error', message: `could not start ${cmd.command}: ${msg}` });
    output.appendLine(`[diffill] failed to start the server: ${msg}`);
    void vscode.window.showErrorMessage(`diffill: could not start the language server (${msg}).`, 'Show Log', 'Settings')
      .then((choice) => {
        if (choice === 'Show Log') output.show(true);
        if (choice === 'Settings') void vscode.commands.executeCommand('workbench.action.openSettings', 'diffill.server');
      });
  }
  context.subscriptions.push({ dispose: () => void c.stop().catch(() => undefined) });
}

async function restart(context: vscode.ExtensionContext): Promise<void> {
  const old = client;
  client = undefined;
  if (old) {
    try {
      await old.stop();
    } catch {
      // already stopped
    }
  }
  drafts.clear();
  await startClient(context);
}

export interface DiffillApi {
  client(): LanguageClient | undefined;
  status(): StatusParams;
  draftCount(): number;
  /** the status bar item's text (tests read the suggestion's confidence there) */
  statusText(): string;
}

export async function activate(context: vscode.ExtensionContext): Promise<DiffillApi> {
  output = vscode.window.createOutputChannel('diffill', { log: true });
  status = new StatusBar();
  drafts = new Drafts();
  inlineOn = inlineEnabled();
  status.setInline(inlineOn);
  context.subscriptions.push(output, status, drafts);
  policy = policyFromManifest(context.extension.packageJSON);
  serverCwd = os.homedir();
  try {
    await vscode.workspace.fs.createDirectory(context.globalStorageUri);
    if (context.globalStorageUri.scheme === 'file') serverCwd = context.globalStorageUri.fsPath;
  } catch (err) {
    output.warn(`no storage folder to run the server in, using ${serverCwd} (${String(err)})`);
  }
  const sendSettings = async () => {
    if (client?.isRunning()) {
      await client.sendNotification(DidChangeConfigurationNotification.type, { settings: { [SECTION]: serverSettings(policy) } });
    }
  };

  context.subscriptions.push(
    // a suggestion lasts until the text or the cursor moves (typing asks for the next one)
    vscode.window.onDidChangeTextEditorSelection(() => status.setSuggestions([])),
    vscode.commands.registerCommand('diffill.showLog', () => output.show(true)),
    vscode.commands.registerCommand('diffill.restart', () => restart(context)),
    vscode.commands.registerCommand('diffill.toggleInline', async () => {
      inlineOn = !inlineOn;
      status.setInline(inlineOn);
      await vscode.workspace.getConfiguration(SECTION).update('inline.enabled', inlineOn, vscode.ConfigurationTarget.Global);
    }),
    vscode.workspace.onDidChangeConfiguration(async (e) => {
      if (!e.affectsConfiguration(SECTION)) return;
      inlineOn = inlineEnabled();
      status.setInline(inlineOn);
      if (e.affectsConfiguration(`${SECTION}.server`)) {
        await restart(context);
      } else {
        await sendSettings();
      }
    }),
    // the workspace's restricted settings (diffill.model, ...) apply from now on
    vscode.workspace.onDidGrantWorkspaceTrust(() => sendSettings()),
    vscode.workspace.onDidChangeTextDocument((e) => {
      // typing invalidates a draft shown for the old text
      if (e.contentChanges.length && drafts.shown.has(e.document.uri.toString())) {
        const d = drafts.shown.get(e.document.uri.toString());
        if (d && d.version !== e.document.version) drafts.clear(e.document.uri);
      }
    }),
  );

  await startClient(context);
  await reportIgnored(context, policy, output).catch((err) => output.warn(`cannot read workspace settings: ${String(err)}`));
  return {
    client: () => client,
    status: () => status.state,
    draftCount: () => drafts.count,
    statusText: () => status.item.text,
  };
}

export async function deactivate(): Promise<void> {
  if (client) await client.stop();
}

/** The confidence the server sent in an inline item's command argument ({confidence, spans}). */
function confidenceOf(item: vscode.InlineCompletionItem): number | undefined {
  const arg = item.command?.arguments?.[0] as { confidence?: unknown } | undefined;
  return typeof arg?.confidence === 'number' ? arg.confidence : undefined;
}
