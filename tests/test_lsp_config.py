"""Settings parsing, the cache and the adaptive debounce (no model needed)."""
from __future__ import annotations

from lsp_server.cache import LruCache
from lsp_server.config import DraftSettings, Settings, parse_settings
from lsp_server.debounce import Debouncer


def test_defaults_match_protocol_doc():
    s = Settings()
    assert (s.model, s.device, s.dtype, s.max_new_tokens, s.debounce_ms, s.multiline) == (
        None, "auto", None, 32, None, "auto")
    assert s.drafts == DraftSettings(completion=False, command=True)
    assert not s.allow_download and s.trust_remote_code == () and s.log_file is None


def test_parse_camel_case_flat_and_nested():
    s, warnings = parse_settings({"diffill": {"maxNewTokens": 16, "debounceMs": 0,
                                              "drafts": {"completion": True}, "languages": {"markdown": False}}})
    assert warnings == []
    assert s.max_new_tokens == 16 and s.debounce_ms == 0
    assert s.drafts == DraftSettings(completion=True, command=True)
    assert not s.language_enabled("markdown") and s.language_enabled("python")
    flat, _ = parse_settings({"model": "/m", "device": "cpu"})
    assert flat.model == "/m" and flat.device == "cpu"


def test_unknown_and_invalid_keys_are_warnings_not_errors():
    base = Settings(max_new_tokens=20)
    s, warnings = parse_settings({"bogus": 1, "maxNewTokens": "many", "multiline": "sometimes",
                                  "drafts": {"x": True}, "debounceMs": True}, base)
    assert s == base
    text = "\n".join(warnings)
    for key in ("bogus", "maxNewTokens", "multiline", "drafts.x", "debounceMs"):
        assert key in text
    _, warnings = parse_settings([1, 2])
    assert warnings


def test_engine_key_changes_only_for_model_settings():
    a = Settings()
    assert parse_settings({"debounceMs": 5}, a)[0].engine_key() == a.engine_key()
    assert parse_settings({"device": "cpu"}, a)[0].engine_key() != a.engine_key()


def test_lru_cache_evicts_least_recent():
    cache: LruCache[str] = LruCache(2)
    cache.put("a", "1")
    cache.put("b", "2")
    assert cache.get("a") == "1"
    cache.put("c", "3")
    assert cache.get("b") is None and cache.get("a") == "1" and cache.get("c") == "3"
    cache.resize(1)
    assert len(cache) == 1
    LruCache(0).put("x", "y")


def test_debounce_adapts_to_typing_rhythm():
    d = Debouncer(100, adaptive=True)
    assert d.delay_ms("u") == 100
    t = 0.0
    for _ in range(10):  # fast typist: 30 ms between keys
        d.observe("u", t)
        t += 0.03
    assert d.delay_ms("u") == 50  # lower bound base/2
    for _ in range(10):  # 200 ms rhythm: wait a bit longer than that
        d.observe("u", t)
        t += 0.2
    assert 200 <= d.delay_ms("u") <= 300
    d.observe("u", t + 5.0)  # a pause resets to the base delay
    assert d.delay_ms("u") == 100
    assert Debouncer(0).delay_ms("u") == 0
    assert Debouncer(100, adaptive=False).delay_ms("u") == 100


def test_the_debounce_defaults_to_the_backend_and_an_explicit_value_wins():
    from dataclasses import replace

    from lsp_server.config import REMOTE_DEBOUNCE_MS, Settings

    assert Settings().debounce_ms is None
    assert Settings().effective_debounce_ms() == 0
    assert replace(Settings(), backend="vllm").effective_debounce_ms() == REMOTE_DEBOUNCE_MS
    assert replace(Settings(), debounce_ms=40).effective_debounce_ms() == 40
    assert replace(Settings(), backend="ollama", debounce_ms=0).effective_debounce_ms() == 0


def test_the_fill_model_settings_derive_the_fill_commands_engine():
    """fillModel/fillBackend/fillUrl/fillApiKeyEnv: null inherits the typing value, except across backends."""
    same, warnings = parse_settings({"model": "/typing", "fillModel": None})
    assert warnings == [] and not same.separate_fill() and same.for_use("fill").model == "/typing"
    assert same.engine_key("fill") == same.engine_key()  # one engine serves both

    two, _ = parse_settings({"model": "/typing", "fillModel": "/strong"})
    assert two.separate_fill() and two.for_use("fill").model == "/strong" and two.for_use("typing").model == "/typing"
    assert two.engine_key() == same.engine_key()  # the typing model is not reloaded for a fill setting
    assert two.request_key("fill") == two.request_key()  # the same shared settings (canvas, steps, ...)

    team, warnings = parse_settings({"url": "http://typing:1", "apiKeyEnv": "TYPING_KEY",
                                     "fillBackend": "vllm", "fillUrl": "http://gpu-box:8000"})
    fill = team.for_use("fill")
    assert warnings == [] and team.separate_fill()
    assert (fill.backend, fill.url, fill.model, fill.api_key_env) == ("vllm", "http://gpu-box:8000", None, None)
    assert team.request_key("fill") != team.request_key()  # cached fills are keyed by the fill server

    bad, warnings = parse_settings({"fillBackend": "gpu-box", "fillModel": ""})
    assert bad.fill_backend is None and bad.fill_model is None and len(warnings) == 2
    assert "fillBackend" in warnings[0] and "or null" in warnings[0]
