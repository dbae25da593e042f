"""The committed pictures (made by `bash scripts/screenshots.sh`, tests/test_screenshots.py) are
there, small, shown where the issue wants them (the top-level README above the fold, the VS Code
extension's README first), described truthfully (their captions quote what the model wrote, as the
manifest recorded it), and come from the bundled model as it is now: a retrained model makes this
fail until the pictures are made again."""
from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import screenshot_tools as shots

REPO = Path(__file__).resolve().parents[1]
MANIFEST = json.loads((REPO / "docs" / "screenshots" / "manifest.json").read_text())
GALLERY = (REPO / "docs" / "SCREENSHOTS.md").read_text()
README = (REPO / "README.md").read_text()
VSCODE_README = (REPO / "editors" / "vscode" / "README.md").read_text()
MAX_BYTES = 300_000


def _pictures() -> list[Path]:
    files = [REPO / s["file"] for e in ("neovim", "vscode") for s in MANIFEST[e]["stills"].values()]
    return [*files, REPO / MANIFEST["neovim"]["recording"]["file"]]


def test_made_from_the_bundled_model_as_it_is_now():
    assert MANIFEST["model"]["path"] == "engine/models/diffill-tiny"
    assert MANIFEST["model"]["weights_sha256"] == shots.BUNDLED_WEIGHTS_SHA256 == shots.bundled_weights_sha256(), \
        "the bundled model changed: make the pictures again (bash scripts/screenshots.sh)"
    for editor in ("neovim", "vscode"):
        assert "engine/models/diffill-tiny on " in MANIFEST[editor]["status"], MANIFEST[editor]["status"]


def test_pictures_exist_are_small_and_are_png_or_gif():
    pictures = _pictures()
    assert len(pictures) == 9
    for path in pictures:
        data = path.read_bytes()
        assert data[:8] == b"\x89PNG\r\n\x1a\n" or data[:6] in (b"GIF89a", b"GIF87a"), path
        assert len(data) <= MAX_BYTES, (path, len(data))


def test_no_recorded_text_has_a_replacement_character():
    assert shots.REPLACEMENT not in json.dumps(MANIFEST, ensure_ascii=False)


def test_every_picture_is_in_the_gallery_and_the_readmes_show_them():
    gallery = {(REPO / "docs" / link).resolve() for link in re.findall(r"!\[[^\]]*\]\(([^)]+)\)", GALLERY)}
    for path in _pictures():
        assert path.resolve() in gallery, path
    # above the fold: before the first section of the top-level README
    top = README.split("\n## ", 1)[0]
    shown = re.findall(r"!\[[^\]]*\]\(([^)]+)\)", top)
    assert shown and all((REPO / s).is_file() and (REPO / s) in _pictures() for s in shown), shown
    # the extension's README (its marketplace page) opens with a real picture, before any section
    first = re.findall(r"!\[[^\]]*\]\(([^)]+)\)", VSCODE_README.split("\n## ", 1)[0])
    ext = REPO / "editors" / "vscode"
    assert first and all((ext / s).resolve() in _pictures() for s in first), first
    assert not (ext / "media" / "screenshot.png").exists()


def test_captions_say_what_the_model_is_and_quote_what_it_wrote():
    for text in (README.split("\n## ", 1)[0], VSCODE_README.split("\n## ", 1)[0], GALLERY):
        assert "22.5M parameters" in text and "13.7 %" in text
    assert "diffill models list" in README.split("\n## ", 1)[0] and "diffill models list" in GALLERY
    vs, nv = MANIFEST["vscode"], MANIFEST["neovim"]
    assert f"`{vs['inline_ghost']}`" in README
    assert vs["fill"].strip() in VSCODE_README
    for quoted in (nv["inline_ghost"], vs["inline_ghost"], nv["completion_items"][0], nv["fill"], vs["fill"]):
        assert f"`{quoted}`" in GALLERY, quoted


def test_the_guards_refuse_another_model_and_replacement_characters(tmp_path, monkeypatch):
    """What tests/test_screenshots.py asserts before it writes a picture."""
    other = tmp_path / "tiny-model"
    other.mkdir()
    (other / "model.safetensors").write_bytes(b"random weights")
    with pytest.raises(AssertionError, match="not the bundled model"):
        shots.assert_bundled(str(other))
    with pytest.raises(AssertionError, match="did not report"):
        shots.assert_bundled(None)
    shots.assert_bundled(str(shots.BUNDLED_DIR))
    monkeypatch.setattr(shots, "BUNDLED_WEIGHTS_SHA256", "0" * 64)  # as after retraining
    with pytest.raises(AssertionError, match="weights changed"):
        shots.assert_bundled(str(shots.BUNDLED_DIR))
    with pytest.raises(AssertionError, match="U\\+FFFD"):
        shots.assert_no_replacement("result = \ufffd\ufffd", "ghost text")
    shots.assert_no_replacement("result = 0", "ghost text")
