"""`python -m diffill` = the `diffill` command."""
import sys

from diffill.main import main

sys.exit(main())
