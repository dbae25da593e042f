"""Pictures for the READMEs (tests/test_screenshots.py, `bash scripts/screenshots.sh`): a terminal
screen rendered to PNG, an asciinema recording rendered to an animated GIF, PNGs made small, and
the bundled model's identity, so no picture shows another model's text.

A terminal's screen arrives as text with ANSI escapes (`tmux capture-pane -e`, or the byte stream
an asciinema recording holds); pyte (a VT100 emulator) turns it into cells, and Pillow draws the
cells with DejaVu Sans Mono. Nothing here starts an editor.
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
BUNDLED_DIR = REPO / "engine" / "models" / "diffill-tiny"
#: sha256 over the bundled model's weight shards (sorted by name, each file's bytes in turn): a
#: picture is made only from these weights. A retrained model changes it, and then the pictures
#: are to be made again (tests/test_screenshots_committed.py says so).
BUNDLED_WEIGHTS_SHA256 = "c68c48baa7ed283aed421d414f71bbfb6425310e43580bdc3338aa00a82c4e93"
#: what the captions say about the bundled model (its model card, README "Status")
BUNDLED_PARAMETERS = "22.5M"
BUNDLED_PASS_AT_1 = "13.7 %"

FONT_DIR = Path("/usr/share/fonts/truetype/dejavu")
FONTS = {(False, False): "DejaVuSansMono.ttf", (True, False): "DejaVuSansMono-Bold.ttf",
         (False, True): "DejaVuSansMono-Oblique.ttf", (True, True): "DejaVuSansMono-BoldOblique.ttf"}
REPLACEMENT = "\ufffd"

#: the 16 ANSI colours pyte names (xterm's defaults), for screens that use them
NAMED = {
    "black": "000000", "red": "cd0000", "green": "00cd00", "brown": "cdcd00", "blue": "0000ee",
    "magenta": "cd00cd", "cyan": "00cdcd", "white": "e5e5e5", "brightblack": "7f7f7f", "brightred": "ff0000",
    "brightgreen": "00ff00", "brightbrown": "ffff00", "brightblue": "5c5cff", "brightmagenta": "ff00ff",
    "brightcyan": "00ffff", "brightwhite": "ffffff",
}


def bundled_weights_sha256(model_dir: Path = BUNDLED_DIR) -> str:
    """The sha256 that ``BUNDLED_WEIGHTS_SHA256`` pins, computed from ``model_dir``'s shards."""
    h = hashlib.sha256()
    shards = sorted(model_dir.glob("*.safetensors"))
    if not shards:
        raise FileNotFoundError(f"no .safetensors in {model_dir}")
    for shard in shards:
        with shard.open("rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                h.update(block)
    return h.hexdigest()


def assert_bundled(model: str | None) -> None:
    """Fail unless ``model`` (what the running server reported) is the bundled model's folder and
    its weights are the ones the pictures' captions describe."""
    assert model, "the server did not report its model"
    assert Path(model).resolve() == BUNDLED_DIR.resolve(), f"the editor ran {model}, not the bundled model"
    got = bundled_weights_sha256(Path(model))
    assert got == BUNDLED_WEIGHTS_SHA256, (
        f"the bundled weights changed (sha256 {got}): check the captions' figures (parameters, pass@1), "
        "then update BUNDLED_WEIGHTS_SHA256 in tests/screenshot_tools.py")


def assert_no_replacement(text: str, what: str) -> None:
    """A picture must not show U+FFFD (bytes that were not valid UTF-8)."""
    assert REPLACEMENT not in text, f"{what} shows U+FFFD replacement characters: {text!r}"


# -- terminal screens -----------------------------------------------------------------


@dataclass
class Palette:
    """Colours for cells that use the terminal's defaults."""
    fg: str = "e0e2ea"  # Neovim 0.10+'s default colour scheme (Normal, dark)
    bg: str = "14161b"
    cursor: str = "e0e2ea"


class TerminalRenderer:
    """Draws a pyte screen with DejaVu Sans Mono: one cell per character, the screen's colours,
    bold, italics, underline, strike-through and reverse video; the cursor as a bar."""

    def __init__(self, font_size: int = 15, palette: Palette | None = None, pad: int = 8) -> None:
        from PIL import ImageFont

        self.palette = palette or Palette()
        self.pad = pad
        self.fonts = {k: ImageFont.truetype(str(FONT_DIR / name), font_size) for k, name in FONTS.items()}
        regular = self.fonts[(False, False)]
        ascent, descent = regular.getmetrics()
        self.cell_w = round(regular.getlength("M"))
        self.cell_h = ascent + descent + 2
        self.ascent = ascent

    def _colour(self, value: str, default: str) -> str:
        if value == "default":
            value = default
        value = NAMED.get(value, value)
        return "#" + value if len(value) == 6 else "#" + default

    def render(self, screen: Any, cursor: tuple[int, int] | None = None):
        """The screen (a ``pyte.Screen``) as a Pillow RGB image; ``cursor`` = (column, row)."""
        from PIL import Image, ImageDraw

        cols, rows = screen.columns, screen.lines
        img = Image.new("RGB", (cols * self.cell_w + 2 * self.pad, rows * self.cell_h + 2 * self.pad),
                        "#" + self.palette.bg)
        draw = ImageDraw.Draw(img)
        for y in range(rows):
            line = screen.buffer[y]
            top = self.pad + y * self.cell_h
            x = 0
            while x < cols:
                ch = line[x]
                fg = self._colour(ch.fg, self.palette.fg)
                bg = self._colour(ch.bg, self.palette.bg)
                if ch.reverse:
                    fg, bg = bg, fg
                left = self.pad + x * self.cell_w
                wide = x + 1 < cols and line[x + 1].data == ""  # a double-width character's second cell
                width = self.cell_w * (2 if wide else 1)
                if bg != "#" + self.palette.bg:
                    draw.rectangle((left, top, left + width - 1, top + self.cell_h - 1), fill=bg)
                if ch.data.strip():
                    draw.text((left, top + 1), ch.data, font=self.fonts[(bool(ch.bold), bool(ch.italics))], fill=fg)
                if ch.underscore:
                    draw.line((left, top + self.ascent + 2, left + width - 1, top + self.ascent + 2), fill=fg)
                if ch.strikethrough:
                    mid = top + self.cell_h // 2 + 1
                    draw.line((left, mid, left + width - 1, mid), fill=fg)
                x += 2 if wide else 1
        if cursor is not None:
            cx, cy = cursor
            left, top = self.pad + cx * self.cell_w, self.pad + cy * self.cell_h
            draw.rectangle((left, top, left + 1, top + self.cell_h - 1), fill="#" + self.palette.cursor)
        return img


def screen_from_ansi(text: str, cols: int, rows: int):
    """A pyte screen holding ``text``, one screen line per text line (``tmux capture-pane -e -p``)."""
    import pyte

    screen = pyte.Screen(cols, rows)
    stream = pyte.Stream(screen)
    lines = text.split("\n")[:rows]
    for i, line in enumerate(lines):
        stream.feed(f"\x1b[{i + 1};1H\x1b[0m" + line)
    return screen


def render_ansi(text: str, cols: int, rows: int, cursor: tuple[int, int] | None = None,
                renderer: TerminalRenderer | None = None):
    """``tmux capture-pane -e -p`` output as an image."""
    return (renderer or TerminalRenderer()).render(screen_from_ansi(text, cols, rows), cursor)


def read_cast(path: Path) -> tuple[dict, list[tuple[float, str]]]:
    """An asciinema v2 recording: its header and its output events (time, text)."""
    lines = path.read_text(encoding="utf-8").splitlines()
    header = json.loads(lines[0])
    assert header.get("version") == 2, f"{path}: not an asciinema v2 recording"
    events = []
    for line in lines[1:]:
        t, kind, data = json.loads(line)
        if kind == "o":
            events.append((float(t), data))
    return header, events


def render_cast(path: Path, out: Path, *, fps: float = 8.0, max_seconds: float = 40.0, hold_last_ms: int = 3000,
                renderer: TerminalRenderer | None = None) -> dict:
    """Render an asciinema v2 recording to an animated GIF: the screen as it stood at each
    1/``fps`` second (unchanged frames merged), at most ``max_seconds``. Returns the frames' texts
    and durations, so a caller can check what the animation shows."""
    import pyte
    from PIL import Image

    header, events = read_cast(path)
    cols, rows = int(header["width"]), int(header["height"])
    renderer = renderer or TerminalRenderer(font_size=13)
    screen = pyte.Screen(cols, rows)
    stream = pyte.ByteStream(screen)
    frames: list[tuple[Any, int, str]] = []  # image, duration ms, screen text
    tick = 1.0 / fps
    t_next, i, last_text = 0.0, 0, None
    end = min(events[-1][0] if events else 0.0, max_seconds)
    while t_next <= end + tick:
        while i < len(events) and events[i][0] <= t_next:
            stream.feed(events[i][1].encode("utf-8"))
            i += 1
        text = "\n".join(screen.display)
        cursor = None if screen.cursor.hidden else (screen.cursor.x, screen.cursor.y)
        key = text + repr(cursor) + repr([[(c.fg, c.bg, c.reverse) for c in screen.buffer[y].values()]
                                          for y in range(rows)])
        if key == last_text:
            img, ms, txt = frames[-1]
            frames[-1] = (img, ms + round(tick * 1000), txt)
        else:
            frames.append((renderer.render(screen, cursor), round(tick * 1000), text))
            last_text = key
        t_next += tick
    if not frames:
        raise ValueError(f"{path}: no output to render")
    img, ms, txt = frames[-1]
    frames[-1] = (img, ms + hold_last_ms, txt)
    palette_src = frames[-1][0].quantize(colors=64, method=Image.Quantize.MEDIANCUT)
    images = [f[0].quantize(palette=palette_src, dither=Image.Dither.NONE) for f in frames]
    images[0].save(out, save_all=True, append_images=images[1:], duration=[f[1] for f in frames], loop=0,
                   optimize=True, disposal=1)
    return {"frames": len(frames), "texts": [f[2] for f in frames], "durations_ms": [f[1] for f in frames],
            "size": [cols, rows]}


def save_small_png(img, path: Path, colors: int = 128) -> int:
    """Write ``img`` as a palette PNG (screenshots of editors have few colours), optimised; its size in bytes."""
    from PIL import Image

    path.parent.mkdir(parents=True, exist_ok=True)
    small = img.convert("RGB").quantize(colors=colors, method=Image.Quantize.MEDIANCUT, dither=Image.Dither.NONE)
    small.save(path, optimize=True)
    return path.stat().st_size
