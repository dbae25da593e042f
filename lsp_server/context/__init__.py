"""Context from the rest of the repository: snippets of other files for the prompt.

One module per stage: ``privacy`` decides what may be read and ``files`` reads
it, ``languages`` and ``symbols`` turn a file into definitions (tree-sitter,
in the ``worker`` process), ``index`` keeps them for the workspace (built in
the background, updated on edits), the sources
``definitions``, ``recent`` and ``similar`` each propose candidate pieces, and
``packer`` fits the best of them into the token budget.  ``service`` is the
one interface the server and the pipeline use.
"""
