"""Cross-file context for training examples: snippets of a file's neighbours.

At inference the server sends snippets of other files of the repository that
share names with the code around the cursor (definitions, recently seen
chunks).  Training imitates that: from files of the same directory or package
we take the window that shares the most identifiers with the current file's
window, so the model learns to copy names and signatures from the context.
"""
from __future__ import annotations

import random
import re

from engine.context_format import format_context

_IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]{2,}")


def identifiers(text: str) -> set[str]:
    return set(_IDENT.findall(text))


def best_window(text: str, focus: set[str], rng: random.Random, lines: int, tries: int = 4) -> str:
    """The window of ``lines`` lines (of ``tries`` random ones) sharing most identifiers with ``focus``."""
    all_lines = text.splitlines(keepends=True)
    if len(all_lines) <= lines:
        return text
    best, best_score = "", -1
    for _ in range(tries):
        start = rng.randrange(0, len(all_lines) - lines + 1)
        window = "".join(all_lines[start:start + lines])
        score = len(identifiers(window) & focus)
        if score > best_score:
            best, best_score = window, score
    return best


def build_context(neighbours: list[tuple[str, str]], current_path: str | None, focus_text: str,
                  rng: random.Random, char_budget: int) -> str:
    """Formatted context from ``(path, text)`` neighbours within about ``char_budget`` characters."""
    focus = identifiers(focus_text)
    snippets: list[tuple[str, str]] = []
    left = char_budget
    for path, text in neighbours:
        if left < 200:
            break
        lines = rng.randint(6, 40)
        window = best_window(text, focus, rng, lines)[:left]
        window = window[: window.rfind("\n") + 1] if "\n" in window else window
        if window.strip():
            snippets.append((path, window))
            left -= len(window) + len(path) + 12
    return format_context(snippets, current_path)
