"""The VS Code extension packages cleanly for the marketplace: `npm run package` (vsce) prints no
WARNING (it used to need --skip-license and --allow-missing-repository), and the .vsix carries the
licence, the changelog and a README whose pictures vsce points at the repository, where they are.
tests/test_editor_vscode.py installs this same .vsix into code-server and drives it."""
from __future__ import annotations

import json
import re
import shutil
import subprocess
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
EXT = REPO / "editors" / "vscode"


def test_vsce_package_prints_no_warning():
    npm = shutil.which("npm")
    if npm is None or not (EXT / "node_modules" / "@vscode" / "vsce").is_dir():
        pytest.skip("npm or the extension's node_modules missing (cd editors/vscode && npm ci)")
    script = json.loads((EXT / "package.json").read_text())["scripts"]["package"]
    assert "--skip-license" not in script and "--allow-missing-repository" not in script, script
    proc = subprocess.run([npm, "run", "package"], cwd=EXT, capture_output=True, text=True, timeout=300,
                          stdin=subprocess.DEVNULL)
    output = proc.stdout + proc.stderr
    assert proc.returncode == 0, output
    assert "WARNING" not in output, output
    with zipfile.ZipFile(EXT / "diffill.vsix") as vsix:
        names = set(vsix.namelist())
        assert {"extension/LICENSE.txt", "extension/changelog.md", "extension/readme.md"} <= names, names
        readme = vsix.read("extension/readme.md").decode()
        manifest = vsix.read("extension.vsixmanifest").decode()
    assert "<License>extension/LICENSE.txt</License>" in manifest
    # the marketplace page shows the README's pictures from the repository: the files must be there
    images = re.findall(r"!\[[^\]]*\]\(([^)]+)\)", readme)
    assert images, "the README shows no picture"
    base = "https://github.com/diffill/diffill/raw/HEAD/editors/vscode/"
    for url in images:
        assert url.startswith(base), url
        assert (EXT / url[len(base):]).is_file(), url


def test_manifest_fields_the_marketplace_reads():
    pkg = json.loads((EXT / "package.json").read_text())
    assert pkg["license"] == "Apache-2.0"
    assert "Apache License" in (EXT / "LICENSE.txt").read_text()
    assert pkg["repository"]["url"].startswith("https://github.com/diffill/diffill")
    assert pkg["repository"]["directory"] == "editors/vscode"
    # the engines range is the API the extension is compiled against (@types/vscode)
    assert pkg["engines"]["vscode"] == "^" + pkg["devDependencies"]["@types/vscode"]
    changelog = (EXT / "CHANGELOG.md").read_text()
    assert f"## {pkg['version']}" in changelog
