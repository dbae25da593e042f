"""Names of diffill's custom LSP methods and commands (docs/PROTOCOL.md)."""
from __future__ import annotations

DRAFT = "diffill/draft"
STATUS = "diffill/status"
STATS = "diffill/stats"
CONTEXT = "diffill/context"
FILL_COMMAND = "diffill.fillInTheMiddle"
#: run by the editor when the user accepts a suggestion (set as each item's ``command``): counted
#: in ``diffill/stats``; its argument carries the suggestion's confidence for the editor to show
ACCEPTED_COMMAND = "diffill.accepted"
