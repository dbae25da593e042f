"""The ``diffill`` command: composes the engine (``engine``) and the language server (``lsp_server``).

It sits above both packages: it may import either, neither imports it.
"""

__version__ = "0.1.0"
