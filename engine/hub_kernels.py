"""What every model load tells transformers about kernels from the Hub.

Why: transformers (5.2x) swaps layers for kernels it fetches from the Hub by
default where it can (ModernBERT's rotary positions on CUDA).  Nothing is
fetched unless the user asked (``--allow-download`` covers weights only), and a
load must work offline.  One module with no imports, so that each loader can
take it without reaching back up into ``engine.loading``.
"""
from __future__ import annotations

#: keyword arguments of every model's ``from_pretrained``
NO_HUB_KERNELS = {"use_kernels": False}
