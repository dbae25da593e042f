"""`python -m lsp_server` = `diffill serve`."""
import sys

from lsp_server.cli import main

sys.exit(main())
