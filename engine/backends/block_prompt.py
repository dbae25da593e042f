"""Prompt-only infill: prefix and suffix inside an instruction, canvas left free.

A fallback for checkpoints that handle pinned suffix tokens badly (an
instruction-tuned model may prefer being asked): the whole canvas is
generated exactly as ``generate`` would, and the answer is cleaned up.
"""
from __future__ import annotations

import re

INSTRUCTION = (
    "Fill in the missing code at <FILL>. Reply with only the code that replaces <FILL>, "
    "no explanation and no code fence.\n\n{prefix}<FILL>{suffix}"
)

_FENCE = re.compile(r"^\s*```[\w+-]*\n(.*?)\n?```\s*$", re.S)


def prompt_text(tokenizer, prefix: str, suffix: str) -> str:
    """The instruction, wrapped in the tokenizer's chat template when it has one."""
    body = INSTRUCTION.format(prefix=prefix, suffix=suffix)
    if getattr(tokenizer, "chat_template", None):
        try:
            return tokenizer.apply_chat_template(
                [{"role": "user", "content": body}], tokenize=False, add_generation_prompt=True)
        except Exception:  # noqa: BLE001 - a broken template falls back to the plain text
            pass
    return body


def clean_answer(text: str, suffix: str) -> str:
    """Strip a code fence and a repeated suffix the model may have added."""
    m = _FENCE.match(text)
    if m:
        text = m.group(1)
    head = suffix.strip()
    if head and text.rstrip().endswith(head):
        text = text.rstrip()[: -len(head)]
    return text
