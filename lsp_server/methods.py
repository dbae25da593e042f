"""Names of diffill's custom LSP methods and commands (docs/PROTOCOL.md)."""
from __future__ import annotations

DRAFT = "diffill/draft"
STATUS = "diffill/status"
STATS = "diffill/stats"
CONTEXT = "diffill/context"
FILL_COMMAND = "diffill.fillInTheMiddle"
