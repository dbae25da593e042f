"""Which licences the bundled model may be trained on: permissive ones only.

A distribution's licence comes from its metadata as a free-form string, an SPDX
expression or trove classifiers (see ``corpus._license_of``).  Copyleft
(GPL, LGPL, AGPL, MPL, EPL, CDDL...), proprietary and unknown licences are
excluded, so that the weights carry no obligations beyond attribution.
"""
from __future__ import annotations

import re

_PERMISSIVE = re.compile(
    r"\b(MIT|BSD|Apache|PSF|Python Software Foundation|Python-2\.0|ISC|Unlicense|Zlib|HPND|CC0|0BSD|"
    r"Public Domain|CC-BY-[0-9][.0-9]*|MIT-CMU|BSL-1\.0|Boost|NCSA|X11|Historical Permission)\b",
    re.IGNORECASE,
)
_RESTRICTED = re.compile(
    r"GPL|\bMPL\b|Mozilla|\bEPL\b|Eclipse|CDDL|Proprietary|Commercial|Non-?Commercial|"
    r"NVIDIA|EULA|\bCC-BY-NC|\bSSPL|\bBUSL|UNKNOWN|\bOther\b",
    re.IGNORECASE,
)


def _one(term: str) -> bool:
    term = term.strip().strip("()").strip()
    return bool(term) and bool(_PERMISSIVE.search(term)) and not _RESTRICTED.search(term)


def is_permissive(licence: str | None) -> bool:
    """True for a licence string that is permissive in every ``AND`` part and in
    at least one ``OR`` alternative; ``;``-joined classifiers must all be."""
    if not licence:
        return False
    text = licence.replace("(", " ").replace(")", " ")
    for part in re.split(r";|\bAND\b|\band\b", text):
        if not part.strip():
            continue
        alternatives = re.split(r"\bOR\b|\bor\b|/", part)
        if not any(_one(a) for a in alternatives):
            return False
    return True
