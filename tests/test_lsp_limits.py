"""Safe-default settings, the request limits and show-once notices (no model)."""
from __future__ import annotations

from lsprotocol import types

from lsp_server.config import Settings, parse_settings
from lsp_server.documents import Document
from lsp_server.limits import RateLimiter, document_too_large
from lsp_server.notices import Notices


def test_remote_code_is_trusted_per_model_only():
    s, warnings = parse_settings({"model": "org/a", "trustRemoteCode": ["org/a"]})
    assert warnings == [] and s.trusts_model_code()
    other, _ = parse_settings({"model": "org/b"}, s)
    assert not other.trusts_model_code()  # switching model does not carry trust over
    assert other.engine_key() != s.engine_key()
    bundled, _ = parse_settings({"model": None}, s)
    assert not bundled.trusts_model_code()


def test_global_trust_is_refused_with_a_reason():
    s, warnings = parse_settings({"model": "org/a", "trustRemoteCode": True})
    assert not s.trusts_model_code() and s.trust_remote_code == ()
    assert "per model" in warnings[0]
    s, warnings = parse_settings({"trustRemoteCode": False})
    assert warnings == [] and s.trust_remote_code == ()


def test_safe_defaults():
    s = Settings()
    assert not s.allow_download and not s.trusts_model_code()
    assert s.max_document_bytes == 8 * 1024 * 1024 and s.max_requests_per_second == 50
    assert s.fallback_to_cpu and not s.fallback_to_bundled


def test_limit_settings_are_validated():
    s, warnings = parse_settings({"maxDocumentBytes": 10, "maxRequestsPerSecond": -1})
    assert s == Settings() and len(warnings) == 2
    s, warnings = parse_settings({"maxDocumentBytes": 4096, "maxRequestsPerSecond": 0,
                                  "fallbackToBundled": True, "fallbackToCpu": False})
    assert warnings == []
    assert (s.max_document_bytes, s.max_requests_per_second, s.fallback_to_bundled, s.fallback_to_cpu) == (
        4096, 0, True, False)


def doc(text: str) -> Document:
    return Document("file:///p/big.py", text, 1, "python")


def test_document_size_counts_utf8_bytes():
    assert document_too_large(doc("a" * 1024), 1024) is None
    assert document_too_large(doc("a" * 1025), 1024) is not None
    # 300 characters of 4 bytes each: within by characters, over by bytes
    message = document_too_large(doc("\U0001F600" * 300), 1024)
    assert message is not None and "big.py" in message and "maxDocumentBytes" in message
    assert document_too_large(doc("\U0001F600" * 256), 1024) is None


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_rate_limiter_allows_a_burst_then_the_rate():
    clock = FakeClock()
    limiter = RateLimiter(10, clock)
    assert sum(limiter.allow() for _ in range(25)) == 10  # one second's burst
    clock.now += 0.5
    assert sum(limiter.allow() for _ in range(25)) == 5
    clock.now += 100.0  # refills to the burst size, not beyond
    assert sum(limiter.allow() for _ in range(25)) == 10
    limiter.configure(0)
    assert all(limiter.allow() for _ in range(1000))


def test_notices_show_once_until_cleared():
    shown: list[str] = []
    notices = Notices(lambda message, kind: shown.append(message))
    assert notices.show_once(("k",), "boom", types.MessageType.Error)
    assert not notices.show_once(("k",), "boom", types.MessageType.Error)
    notices.show_once(("doc", 1), "big")
    notices.clear("k")
    notices.show_once(("k",), "boom again")
    notices.show_once(("doc", 1), "big")
    assert shown == ["boom", "big", "boom again"]
