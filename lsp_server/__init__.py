"""diffill language server (pygls 2.x) on top of the ``engine`` public API."""
__version__ = "0.1.0"
