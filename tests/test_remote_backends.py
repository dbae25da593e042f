"""Remote backends against loopback stand-ins (tests/remote_standin.py).

The stand-ins follow each engine's documented API (named per test); they are
not the engines, and nothing here runs against a real vLLM, llama.cpp or
Ollama server.
"""
from __future__ import annotations

import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from remote_standin import VLLM_SUFFIX_ERROR, StandinServer

from engine import CancellationToken, Cancelled, EngineError, InfillRequest, load_engine
from engine.backends.remote.http import ClientOptions
from engine.backends.remote.openai import split_endpoint
from engine.backends.remote.vllm import VllmBackend, suffix_prompt
from engine.errors import RemoteError

PREFIX = "def add(a, b):\n    "
SUFFIX = "\n\nprint(add(1, 2))\n"
REQUEST = InfillRequest(prefix=PREFIX, suffix=SUFFIX, max_new_tokens=16)
FAST = ClientOptions(connect_timeout_s=1.0, read_timeout_s=1.0, retries=2, backoff_s=0.01)


def _engine(kind: str, url: str, model: str | None = "standin-model", options: ClientOptions = FAST, **kw):
    from engine.backends.remote import load_remote
    from engine.engine import Engine

    return Engine(load_remote(kind, url, model, options=options, **kw))


# --- each kind sends prefix and suffix, and streams drafts ----------------------------------

@pytest.mark.parametrize("pr_57250", [True, False])
def test_vllm_sends_the_suffix_in_the_prompt(pr_57250: bool) -> None:
    """vLLM >= 0.24 OpenAI-compatible completions: 400 on `suffix` (issue 9976), and released vLLM
    ignores unknown vllm_xargs, so the suffix goes in the prompt, never in `suffix` or `vllm_xargs`
    (a build with PR 57250, pr_57250=True, would take token-id canvases, which are not built yet)."""
    with StandinServer("vllm", pinned=pr_57250) as srv:
        eng = _engine("vllm", srv.url)
        assert eng.infill(REQUEST).middle == "return a + b"
        assert eng.infill(REQUEST).middle == "return a + b"
        assert len(srv.requests) == 2  # no probe
        for body in srv.requests:
            assert "suffix" not in body and "vllm_xargs" not in body
            assert body["prompt"] == suffix_prompt(PREFIX, SUFFIX)
            assert SUFFIX.strip() in body["prompt"] and body["prompt"].endswith(PREFIX)
        assert isinstance(eng.backend, VllmBackend) and eng.backend.infill_mode.startswith("prompt")


def test_suffix_on_vllm_is_refused_with_the_servers_reason() -> None:
    """The `openai` kind sends `suffix`; vLLM's 400 'suffix is not currently supported' comes back as one line."""
    with StandinServer("vllm") as srv:
        eng = _engine("openai", srv.url)
        with pytest.raises(RemoteError, match=rf"HTTP 400: {VLLM_SUFFIX_ERROR}\)$"):
            eng.infill(REQUEST)


@pytest.mark.parametrize("kind, prefix_field, suffix_field", [
    ("openai", "prompt", "suffix"),            # OpenAI legacy completions API with suffix
    ("llamacpp", "input_prefix", "input_suffix"),  # llama.cpp tools/server README, POST /infill
    ("ollama", "prompt", "suffix"),            # Ollama API docs, POST /api/generate
])
def test_each_kind_sends_prefix_and_suffix_and_streams_drafts(kind: str, prefix_field: str,
                                                              suffix_field: str) -> None:
    with StandinServer(kind) as srv:
        eng = _engine(kind, srv.url)
        drafts = list(eng.stream(REQUEST))
        body = srv.requests[0]
        assert body[prefix_field] == PREFIX and body[suffix_field] == SUFFIX
        texts = [d.text for d in drafts]
        assert texts[:3] == ["return ", "return a", "return a + b"] and texts[-1] == "return a + b"
        assert drafts[-1].done and not any(d.done for d in drafts[:-1])
    if kind == "llamacpp":
        assert body["input_extra"] == [] and body["n_predict"] == 16 and body["stream"] is True
    if kind == "ollama":
        assert body["raw"] is False and body["options"]["num_predict"] == 16


@pytest.mark.parametrize("kind", ["openai", "vllm"])
def test_openai_style_servers_give_alternatives_in_one_request(kind: str) -> None:
    """OpenAI's completions API ``n`` (vLLM's too): the primary streamed greedily as always,
    then one request with ``n`` sampled answers; repeats of the primary are dropped."""
    with StandinServer(kind) as srv:
        eng = _engine(kind, srv.url)
        result = eng.infill(InfillRequest(prefix=PREFIX, suffix=SUFFIX, max_new_tokens=16, alternatives=3))
        assert result.middle == "return a + b"
        assert [a.middle for a in result.alternatives] == ["return a + b #1", "return a + b #2"]
        primary, asked = srv.requests
        assert "n" not in primary and primary["temperature"] == 0.0
        assert asked["n"] == 3 and asked["temperature"] > 0


@pytest.mark.parametrize("kind", ["llamacpp", "ollama"])
def test_other_servers_give_the_primary_alone(kind: str) -> None:
    with StandinServer(kind) as srv:
        result = _engine(kind, srv.url).infill(InfillRequest(prefix=PREFIX, suffix=SUFFIX, alternatives=3))
        assert result.middle == "return a + b" and result.alternatives == [] and len(srv.requests) == 1


def test_endpoint_paths() -> None:
    assert split_endpoint("http://h:8000") == ("http://h:8000", "/v1/completions")
    assert split_endpoint("https://api.x.com/beta/v1/") == ("https://api.x.com", "/beta/v1/completions")
    assert split_endpoint("https://api.x.com/fim/completions") == ("https://api.x.com", "/fim/completions")


# --- failures: one line each, never a traceback ------------------------------------------------

def test_429_then_success_is_retried() -> None:
    with StandinServer("openai") as srv:
        srv.statuses = [429, 503]
        assert _engine("openai", srv.url).infill(REQUEST).middle == "return a + b"
        assert len(srv.requests) == 3


def test_busy_server_gives_up_after_bounded_retries() -> None:
    with StandinServer("llamacpp") as srv:
        srv.statuses = [503] * 10
        with pytest.raises(RemoteError, match=r"is busy \(HTTP 503: server busy\) after 3 tries"):
            _engine("llamacpp", srv.url).infill(REQUEST)
        assert len(srv.requests) == 3


def test_other_errors_are_not_retried() -> None:
    with StandinServer("ollama") as srv:
        srv.statuses = [500]
        with pytest.raises(RemoteError, match=r"failed \(HTTP 500"):
            _engine("ollama", srv.url).infill(REQUEST)
        assert len(srv.requests) == 1


def test_401_names_the_key_variable_and_the_key_is_sent_only_as_a_header(monkeypatch) -> None:
    monkeypatch.setenv("DIFFILL_TEST_KEY", "s3cret-key")
    with StandinServer("vllm") as srv:
        srv.api_key = "other-key"
        eng = _engine("vllm", srv.url, api_key_env="DIFFILL_TEST_KEY")
        with pytest.raises(RemoteError) as info:
            eng.infill(REQUEST)
        assert "refused the credentials (HTTP 401: Invalid API key)" in str(info.value) and info.value.status == 401
        assert "s3cret" not in str(info.value) and "s3cret" not in repr(eng.backend.client)
        assert srv.headers_seen[0]["Authorization"] == "Bearer s3cret-key"
        srv.api_key = "s3cret-key"
        assert eng.infill(REQUEST).middle == "return a + b"


def test_missing_key_variable_is_a_clear_error(monkeypatch) -> None:
    monkeypatch.delenv("DIFFILL_NO_SUCH_KEY", raising=False)
    with pytest.raises(RemoteError, match="DIFFILL_NO_SUCH_KEY .* is not set"):
        load_engine("m", backend="openai", url="http://127.0.0.1:9", api_key_env="DIFFILL_NO_SUCH_KEY")


def test_unreachable_server() -> None:
    with StandinServer("openai") as srv:
        url = srv.url  # a port that was just closed
    with pytest.raises(RemoteError, match=r"cannot reach the server at http://127\.0\.0\.1:\d+ \("):
        _engine("openai", url).infill(REQUEST)


def test_server_that_never_answers_times_out() -> None:
    with StandinServer("llamacpp") as srv:
        srv.hang = True
        options = ClientOptions(connect_timeout_s=1.0, read_timeout_s=0.3)
        start = time.perf_counter()
        with pytest.raises(RemoteError, match=r"did not answer within 0\.3 s \(read timeout\)"):
            _engine("llamacpp", srv.url, options=options).infill(REQUEST)
        assert time.perf_counter() - start < 2.0


@pytest.mark.parametrize("kind", ["vllm", "llamacpp", "ollama"])
def test_dropped_stream_is_reported(kind: str) -> None:
    with StandinServer(kind) as srv:
        srv.drop_after = 2
        with pytest.raises(RemoteError, match="dropped the connection|without finishing it"):
            list(_engine(kind, srv.url).stream(REQUEST))


def test_bad_url_and_missing_model_are_clear() -> None:
    with pytest.raises(EngineError, match="must start with http"):
        load_engine("m", backend="openai", url="gpu-box:8000")
    with pytest.raises(EngineError, match="needs the served model's name"):
        load_engine(None, backend="ollama", url="http://127.0.0.1:9")
    with pytest.raises(EngineError, match="needs the server's URL"):
        load_engine("m", backend="vllm")
    with pytest.raises(EngineError, match="needs a remote backend"):
        load_engine(None, url="http://127.0.0.1:9")


# --- cancellation: the HTTP request is closed within 50 ms ------------------------------------

def test_cancel_closes_a_request_the_server_never_answers_within_50_ms() -> None:
    with StandinServer("vllm") as srv:
        srv.hang = True
        eng = _engine("vllm", srv.url, options=ClientOptions(read_timeout_s=30.0))
        token = CancellationToken()
        raised: list[float] = []

        def run() -> None:
            try:
                eng.infill(REQUEST, token)
            except Cancelled:
                raised.append(time.perf_counter())

        worker = threading.Thread(target=run)
        worker.start()
        deadline = time.perf_counter() + 5
        while not srv.requests and time.perf_counter() < deadline:
            time.sleep(0.005)
        time.sleep(0.05)
        cancelled_at = time.perf_counter()
        token.cancel()
        worker.join(2)
        for _ in range(100):
            if srv.closed_at is not None:
                break
            time.sleep(0.005)
        assert raised and raised[0] - cancelled_at < 0.05
        assert srv.closed_at is not None and srv.closed_at - cancelled_at < 0.05, "server still holds the request"


def test_cancel_during_a_slow_stream_stops_within_50_ms() -> None:
    with StandinServer("ollama") as srv:
        srv.delay_s = 2.0
        eng = _engine("ollama", srv.url, options=ClientOptions(read_timeout_s=30.0))
        token = CancellationToken()
        stream = eng.stream(REQUEST, token)
        assert next(stream).text == "return "
        threading.Timer(0.05, token.cancel).start()
        start = time.perf_counter()
        with pytest.raises(Cancelled):
            next(stream)
        assert time.perf_counter() - start < 0.05 + 0.05


def test_concurrency_cap_holds_requests_back() -> None:
    with StandinServer("openai") as srv:
        srv.delay_s = 0.4  # each answer takes >= 0.8 s
        eng = _engine("openai", srv.url, options=ClientOptions(max_concurrency=2, read_timeout_s=5.0))
        threads = [threading.Thread(target=eng.infill, args=(REQUEST,)) for _ in range(4)]
        for t in threads:
            t.start()
        deadline = time.perf_counter() + 5
        while len(srv.requests) < 2 and time.perf_counter() < deadline:
            time.sleep(0.01)
        time.sleep(0.2)
        in_flight = len(srv.requests)
        for t in threads:
            t.join(5)
        assert in_flight == 2 and len(srv.requests) == 4


@pytest.mark.slow  # starts a Python process
def test_remote_engine_does_not_import_torch() -> None:
    code = ("import sys; sys.path.insert(0, 'tests'); from remote_standin import StandinServer\n"
            "from engine import load_engine, InfillRequest\n"
            "with StandinServer('llamacpp') as s:\n"
            "    r = load_engine(None, backend='llamacpp', url=s.url).infill(InfillRequest(prefix='a', suffix='b'))\n"
            "print(r.middle, 'torch' in sys.modules)")
    root = Path(__file__).resolve().parent.parent
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=root, timeout=60)
    assert out.stdout.strip() == "return a + b False", out.stderr


def test_connections_are_reused_and_a_closed_idle_one_is_replaced() -> None:
    """Kept-alive connections serve the next request; when the server has closed an idle
    one (its keep-alive timeout), the request goes out again on a new connection, once."""
    with StandinServer("llamacpp") as srv:
        eng = _engine("llamacpp", srv.url)
        for _ in range(3):
            assert eng.infill(REQUEST).middle == "return a + b"
        assert len(srv.requests) == 3
        assert len(eng.backend.client._pool._idle) == 1  # one connection served all three
        srv.close_idle = True
        for _ in range(3):
            assert eng.infill(REQUEST).middle == "return a + b"
        assert len(srv.requests) == 6  # nothing was sent twice to the server


def test_cancelled_requests_give_their_connections_back() -> None:
    """Regression: cancelling mid-stream must release the pooled connection, or a
    client capped at N connections hangs after N cancellations."""
    with StandinServer("llamacpp") as srv:
        srv.delay_s = 0.5
        eng = _engine("llamacpp", srv.url, options=ClientOptions(max_concurrency=2, read_timeout_s=5.0))
        for _ in range(5):
            token = CancellationToken()
            stream = eng.stream(REQUEST, token)
            next(stream)
            token.cancel()
            with pytest.raises(Cancelled):
                next(stream)
        srv.delay_s = 0.0
        assert eng.infill(REQUEST).middle == "return a + b"


def _tls_standin(tmp_path: Path, name: str) -> tuple[StandinServer, Path]:
    """The openai stand-in behind TLS, with a fresh self-signed certificate for ``name``
    (made by the openssl command; the test is skipped without it)."""
    import shutil
    import ssl

    if shutil.which("openssl") is None:
        pytest.skip("needs the openssl command to make a certificate")
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    san = f"IP:{name}" if name[0].isdigit() else f"DNS:{name}"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
                    "-nodes", "-keyout", str(key), "-out", str(cert), "-days", "2", "-subj", f"/CN={name}",
                    "-addext", f"subjectAltName={san}"], check=True, capture_output=True, timeout=30)
    srv = StandinServer("openai")
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(cert, key)
    srv.socket = ctx.wrap_socket(srv.socket, server_side=True)
    return srv, cert


def test_tls_is_verified(tmp_path: Path, monkeypatch) -> None:
    """Against a real TLS stand-in: a certificate the system does not trust is refused,
    the same certificate once trusted (SSL_CERT_FILE, where a company puts its CA) works,
    and a trusted certificate for another host name is refused."""
    srv, cert = _tls_standin(tmp_path, "127.0.0.1")
    with srv:
        url = srv.url.replace("http://", "https://")
        with pytest.raises(RemoteError, match=r"cannot reach the server at https://.*certificate verify failed"):
            _engine("openai", url).infill(REQUEST)
        monkeypatch.setenv("SSL_CERT_FILE", str(cert))
        assert _engine("openai", url).infill(REQUEST).middle == "return a + b"
    (tmp_path / "other").mkdir()
    other, other_cert = _tls_standin(tmp_path / "other", "gpu-box.test")
    monkeypatch.setenv("SSL_CERT_FILE", str(other_cert))
    with other, pytest.raises(RemoteError, match=r"cannot reach the server at https://.*(certificate|mismatch)"):
        _engine("openai", other.url.replace("http://", "https://")).infill(REQUEST)
