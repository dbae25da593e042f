"""Every place that lists the server settings agrees with their one declaration."""
from __future__ import annotations

import json
import shutil

import pytest

from lsp_server import settings_doc
from lsp_server.config import SETTING_FIELDS, Settings, camel, parse_settings, spec_of


def test_protocol_doc_vscode_contributions_server_keys_and_neovim_readme_match_the_table():
    assert settings_doc.check() == []


def test_every_setting_has_a_spec_with_a_description():
    for f in SETTING_FIELDS:
        spec = spec_of(f)
        assert spec.description.endswith(".") and spec.description[0].isupper(), f.name


@pytest.mark.parametrize("place", ["PROTOCOL", "PACKAGE_JSON", "SERVER_KEYS_TS", "NEOVIM_README", "NEOVIM_HELP"])
def test_drift_in_any_place_is_reported(tmp_path, monkeypatch, place):
    original = getattr(settings_doc, place)
    copy = tmp_path / original.name
    shutil.copyfile(original, copy)
    monkeypatch.setattr(settings_doc, place, copy)
    text = copy.read_text()
    if place == "PACKAGE_JSON":
        pkg = json.loads(text)
        del pkg["contributes"]["configuration"]["properties"]["diffill.cacheSize"]
        copy.write_text(json.dumps(pkg, indent=2) + "\n")
    else:
        copy.write_text(text.replace("maxRequestsPerSecond", "maxRequestsPerMinute"))
    problems = settings_doc.check()
    assert problems and any(copy.name in p for p in problems)


def test_bounds_come_from_the_table():
    for f in SETTING_FIELDS:
        spec = spec_of(f)
        if spec.kind == "int" and spec.high is not None:
            s, warnings = parse_settings({camel(f.name): spec.high + 1})
            assert warnings and getattr(s, f.name) == getattr(Settings(), f.name)
            s, warnings = parse_settings({camel(f.name): spec.high})
            assert not warnings and getattr(s, f.name) == spec.high


def test_reload_and_cache_keys_come_from_the_table():
    base = Settings()
    for f in SETTING_FIELDS:
        spec = spec_of(f)
        if spec.kind != "int":
            continue
        value = spec.low + 1 if spec.low is not None else 2
        changed, warnings = parse_settings({camel(f.name): value})
        assert not warnings
        assert (changed.engine_key() != base.engine_key()) == spec.reload, f.name
        assert (changed.request_key() != base.request_key()) == spec.cache, f.name
