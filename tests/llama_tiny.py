"""A real llama.cpp ``llama-server`` for the tests, serving a tiny model made here.

The binary comes from ``.ci/install-llama-server.sh`` (built from the pinned
llama-cpp-python sdist's ``vendor/llama.cpp``); ``DIFFILL_LLAMA_SERVER`` names
another one.  Tests that need it skip, saying why, where it is absent.

The model is a Qwen2-architecture GGUF written with the ``gguf-py`` of the
same llama.cpp tree (installed beside the binary), with a byte-level BPE
vocabulary (every byte a token, so any text tokenizes, one token per byte)
and Qwen's FIM tokens, which llama-server's ``/infill`` recognises by name.
Its weights are not random: attention and MLP write nothing to the residual
stream, so each next token depends on the current one alone, and the output
layer is set so that it writes, greedily, after ``<|fim_middle|>`` (or after
any token outside the chain)::

     return a + b\\n    pass\\n\\ndef f():\\n    pass\\n\\ndef f():\\n ...

for ever: a known first line, then more lines than any request asks for.
That is what the tests need of a model: a known answer with a leading space
(a text-completion model's token after an indented prefix), a line break at a
known token, and no end of its own (a request that is not stopped runs to its
token limit).  With 64 dimensions and one layer it loads in milliseconds.
"""
from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parent.parent
INSTALLER = ROOT / ".ci" / "install-llama-server.sh"
ENV_BINARY = "DIFFILL_LLAMA_SERVER"

#: what the model writes after <|fim_middle|>, token by token (GPT-2 byte-level spelling: Ġ space, Ċ newline)
CHAIN = ["Ġreturn", "Ġa", "Ġ+", "Ġb", "Ċ", "ĠĠĠĠpass", "ĊĊ", "def", "Ġf", "():"]
#: the chain loops back here after "():"
LOOP_TO = "Ċ"
FIRST_LINE = " return a + b"
SPECIALS = ["<|endoftext|>", "<|fim_prefix|>", "<|fim_middle|>", "<|fim_suffix|>", "<|fim_pad|>",
            "<|repo_name|>", "<|file_sep|>"]
N_EMBD = 64
#: the model's own context (llama-server serves at most this per slot)
TRAIN_CONTEXT = 16384


def binary() -> Path | None:
    """The llama-server to use, or None where none is built."""
    named = os.environ.get(ENV_BINARY)
    if named:
        return Path(named) if Path(named).is_file() else None
    try:
        out = subprocess.run(["bash", str(INSTALLER), "--print-path"], capture_output=True, text=True,
                             timeout=30, check=True).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None
    return Path(out) if out and Path(out).is_file() else None


def require_binary() -> Path:
    """The server, or a skip saying how to build it; a missing ``DIFFILL_LLAMA_SERVER`` is a
    failure (CI names the one it built: its tests must not quietly skip)."""
    named = os.environ.get(ENV_BINARY)
    if named and not Path(named).is_file():
        pytest.fail(f"{ENV_BINARY}={named} does not exist")
    found = binary()
    if found is None:
        pytest.skip(f"no llama-server: build it with `bash {INSTALLER.relative_to(ROOT)}` (CI does) or set "
                    f"{ENV_BINARY}")
    return found


def _gguf_module(server: Path) -> Any:
    """gguf-py from the llama.cpp tree the server was built from (installed beside it)."""
    tree = server.parent.parent / "gguf-py"
    if tree.is_dir() and str(tree) not in sys.path:
        sys.path.insert(0, str(tree))
    try:
        import gguf
    except ImportError:
        pytest.skip(f"no gguf-py beside {server} (rebuild with .ci/install-llama-server.sh)")
    return gguf


def _byte_tokens() -> list[str]:
    """GPT-2's byte-to-character table: each byte as the character a byte-level BPE vocabulary spells it with."""
    printable = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + \
        list(range(ord("®"), ord("ÿ") + 1))
    chars = {b: chr(b) for b in printable}
    extra = 0
    for b in range(256):
        if b not in chars:
            chars[b] = chr(256 + extra)
            extra += 1
    return [chars[b] for b in range(256)]


def write_model(path: Path, server: Path, n_embd: int = N_EMBD, n_layer: int = 1) -> Path:
    """Write the tiny FIM model (see the module's docstring) as GGUF at ``path``.
    More dimensions and layers change nothing it writes, only what each token costs
    the server (the benchmark in docs/BENCHMARKS.md uses a larger one)."""
    import numpy as np

    gguf = _gguf_module(server)
    tokens = _byte_tokens()
    tokens += [t for t in CHAIN if t not in tokens] + ["ĠĠ"]
    first_special = len(tokens)
    tokens += SPECIALS
    ids = {t: i for i, t in enumerate(tokens)}
    n_vocab = len(tokens)
    # the successor of every token: the chain, looping; everything else starts it
    following = {t: CHAIN[0] for t in tokens}
    for here, there in zip(CHAIN, [*CHAIN[1:], LOOP_TO]):
        following[here] = there
    # embeddings: one dimension per chain token (its own next), dimension 0 shared by all others
    rng = np.random.default_rng(0)
    embd = np.zeros((n_vocab, n_embd), dtype=np.float32)
    dim = {t: i + 1 for i, t in enumerate(CHAIN)}
    for t, i in ids.items():
        embd[i, dim.get(t, 0)] = 1.0
    output = np.zeros((n_vocab, n_embd), dtype=np.float32)
    for t in ids:
        output[ids[following[t]], dim.get(t, 0)] = 4.0
    writer = gguf.GGUFWriter(str(path), "qwen2")
    writer.add_context_length(TRAIN_CONTEXT)
    writer.add_embedding_length(n_embd)
    writer.add_block_count(n_layer)
    writer.add_feed_forward_length(4 * n_embd)
    writer.add_head_count(n_embd // 32)
    writer.add_head_count_kv(n_embd // 32)
    writer.add_rope_freq_base(10000.0)
    writer.add_layer_norm_rms_eps(1e-6)
    writer.add_file_type(gguf.LlamaFileType.ALL_F32)
    writer.add_tokenizer_model("gpt2")
    writer.add_tokenizer_pre("qwen2")
    writer.add_token_list(tokens)
    writer.add_token_types([gguf.TokenType.CONTROL if i >= first_special else gguf.TokenType.NORMAL
                            for i in range(n_vocab)])
    writer.add_token_merges(["Ġ Ġ"])
    writer.add_bos_token_id(ids["<|endoftext|>"])
    writer.add_eos_token_id(ids["<|endoftext|>"])
    writer.add_add_bos_token(False)

    def small(*shape: int) -> Any:
        return (rng.standard_normal(shape) * 0.02).astype(np.float32)

    ones = np.ones(n_embd, dtype=np.float32)
    writer.add_tensor("token_embd.weight", embd)
    writer.add_tensor("output_norm.weight", ones)
    writer.add_tensor("output.weight", output)
    for layer in range(n_layer):  # they compute, and write nothing to the residual stream
        blk = f"blk.{layer}"
        writer.add_tensor(f"{blk}.attn_norm.weight", ones)
        for name in ("attn_q", "attn_k", "attn_v"):
            writer.add_tensor(f"{blk}.{name}.weight", small(n_embd, n_embd))
            writer.add_tensor(f"{blk}.{name}.bias", np.zeros(n_embd, dtype=np.float32))
        writer.add_tensor(f"{blk}.attn_output.weight", np.zeros((n_embd, n_embd), dtype=np.float32))
        writer.add_tensor(f"{blk}.ffn_norm.weight", ones)
        writer.add_tensor(f"{blk}.ffn_gate.weight", small(4 * n_embd, n_embd))
        writer.add_tensor(f"{blk}.ffn_up.weight", small(4 * n_embd, n_embd))
        writer.add_tensor(f"{blk}.ffn_down.weight", np.zeros((n_embd, 4 * n_embd), dtype=np.float32))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class LlamaServer:
    """One llama-server process on 127.0.0.1 (start, stop, start again on the same port)."""

    #: one slot of the whole context; a batch smaller than the context leaves llama-server's /infill
    #: room for other files' pieces (it gives input_extra n_ctx - n_batch - 2 * n_predict tokens)
    #: one thread: two threads spin-waiting on a loaded 2-core machine made a token cost 150 ms, not 0.1 ms
    ARGS = ("-c", "8192", "-b", "512", "-ub", "512", "-np", "1", "-t", "1", "--no-warmup")

    def __init__(self, exe: Path, model: Path, log: Path, port: int | None = None) -> None:
        self.exe, self.model, self.log_path = exe, model, log
        self.port = port or free_port()
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout_s: float = 60.0) -> LlamaServer:
        with open(self.log_path, "ab") as log:
            # LLAMA_SERVER_SLOTS_DEBUG: /slots shows the last task's prompt, parameters and generated text
            self.proc = subprocess.Popen([str(self.exe), "-m", str(self.model), "--host", "127.0.0.1",
                                          "--port", str(self.port), *self.ARGS],
                                         stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                         env={**os.environ, "LLAMA_SERVER_SLOTS_DEBUG": "1"})
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"llama-server exited ({self.proc.returncode}): {self.log_tail()}")
            try:
                if self.get("/health").get("status") == "ok":
                    return self
            except (OSError, ValueError):
                pass
            time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"llama-server did not become healthy in {timeout_s:g} s: {self.log_tail()}")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=10)
        self.proc = None

    def log_tail(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-2000:]
        except OSError:
            return ""

    def get(self, path: str) -> Any:
        opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
        with opener.open(self.url + path, timeout=10) as response:
            return json.loads(response.read())

    def post(self, path: str, body: dict[str, Any]) -> Any:
        """One non-streamed POST; an HTTP error comes back as ``{"status", "error"}``."""
        opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
        request = urllib.request.Request(self.url + path, data=json.dumps(body).encode(),
                                         headers={"Content-Type": "application/json"})
        try:
            with opener.open(request, timeout=30) as response:
                return json.loads(response.read())
        except urllib.error.HTTPError as exc:
            return {"status": exc.code, "error": json.loads(exc.read() or b"{}").get("error")}

    def last_task(self) -> dict[str, Any]:
        """What the one slot last ran (``GET /slots``): the prompt as the server laid it out
        (special tokens spelled), the request's parameters and the text it generated."""
        [slot] = self.get("/slots")
        return slot

    def __enter__(self) -> LlamaServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def main() -> int:
    """``python tests/llama_tiny.py PATH [--embd D --layers N]``: write the model (for the
    benchmark in docs/BENCHMARKS.md) with the gguf-py beside the built llama-server."""
    import argparse

    parser = argparse.ArgumentParser(description=main.__doc__)
    parser.add_argument("path", type=Path)
    parser.add_argument("--embd", type=int, default=N_EMBD)
    parser.add_argument("--layers", type=int, default=1)
    args = parser.parse_args()
    exe = binary()
    if exe is None:
        print("no llama-server: run .ci/install-llama-server.sh first", file=sys.stderr)
        return 1
    print(write_model(args.path, exe, args.embd, args.layers))
    return 0


if __name__ == "__main__":
    sys.exit(main())


def generated_tokens(text: str) -> int:
    """How many tokens of its chain the model generated to write ``text`` (the server's own
    count is gone from /slots once a task ends; the chain's spelling is known)."""
    spelled = {t: t.replace("Ġ", " ").replace("Ċ", "\n") for t in CHAIN}
    following = dict(zip(CHAIN, [*CHAIN[1:], LOOP_TO]))
    token, at, count = CHAIN[0], 0, 0
    while at < len(text) and text.startswith(spelled[token], at):
        at += len(spelled[token])
        count += 1
        token = following[token]
    return count
