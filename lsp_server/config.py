"""Server settings, each declared once: name, type, default, bounds, effect, description.

Every field of ``Settings`` is built with :func:`setting`, which records in the
field's metadata everything else that needs to know about it: validation
(``parse_settings``), the two keys that decide when the model is loaded again
and what a cached completion depends on, docs/PROTOCOL.md's settings table and
the VS Code extension's contributions (``lsp_server.settings_doc`` writes and
checks both).  Parsed from the client's camelCase JSON
(``initializationOptions`` or ``settings.diffill``).

Bad or unknown keys never stop the server: they are returned as warnings,
which the server reports with ``window/logMessage``.
"""
from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import MISSING, Field, dataclass, field, fields, replace
from functools import partial
from typing import Any, Literal

from engine.backends.remote.options import MAX_CONNECT_TIMEOUT_S, MAX_READ_TIMEOUT_S, MAX_RETRIES

Multiline = Literal["auto", "always", "never"]
#: what a request is for: "typing" (inline completion and completion items: ``model``) or
#: "fill" (the fill command and its drafts: ``fillModel``, or ``model`` when that is null)
Use = Literal["typing", "fill"]
Backend = Literal["local", "vllm", "openai", "llamacpp", "ollama"]
#: where the model runs (engine.backends.remote.BACKENDS; repeated here so that
#: reading the settings never imports the engine's HTTP client)
BACKENDS: tuple[Backend, ...] = ("local", "vllm", "openai", "llamacpp", "ollama")
Device = Literal["auto", "cpu", "cuda"]
MULTILINE_MODES: tuple[Multiline, ...] = ("auto", "always", "never")
DEVICES: tuple[Device, ...] = ("auto", "cpu", "cuda")

#: how a value is checked and documented
Kind = Literal["text", "choice", "int", "fraction", "bool", "names", "flags", "drafts", "globs"]


@dataclass(frozen=True)
class DraftSettings:
    """Whether ``diffill/draft`` notifications are sent, per entry point."""

    completion: bool = False
    command: bool = True


@dataclass(frozen=True)
class SettingSpec:
    """What the server knows about one setting besides its Python type and default."""

    kind: Kind
    description: str
    reload: bool = False  # a change loads the model again (part of ``engine_key``)
    #: a change loads the fill command's model again (part of ``engine_key("fill")`` only)
    fill: bool = False
    cache: bool = False  # a change changes completions (part of ``request_key``)
    low: int | None = None
    high: int | None = None
    nullable: bool = False
    choices: tuple[str, ...] = ()
    #: the default as the docs say it, where the value alone would not tell
    shown_default: str | None = None


#: the debounce for remote backends when ``debounceMs`` is null
REMOTE_DEBOUNCE_MS = 100
#: the default ``minConfidence``: the lowest threshold (in steps of 0.05) at which the bundled model's
#: shown suggestions are right at least twice as often as ungated ones on both the held-out set and
#: real files (docs/BENCHMARKS.md, "The confidence gate", issue 28)
MIN_CONFIDENCE = 0.8


def setting(default: Any, kind: Kind, description: str, **spec: Any) -> Any:
    """A ``Settings`` field whose metadata carries its :class:`SettingSpec`."""
    meta = {"spec": SettingSpec(kind, description, **spec)}
    if isinstance(default, (dict, list)) or callable(default):
        factory: Callable[[], Any] = default if callable(default) else partial(copy.copy, default)
        return field(default_factory=factory, metadata=meta)
    return field(default=default, metadata=meta)


@dataclass(frozen=True)
class Settings:
    """Every setting the server understands."""

    backend: Backend = setting(
        "local", "choice", "Where the model runs: local (in the server process) or an inference server at url: "
        "vllm (DiffusionGemma on vLLM), openai (OpenAI-compatible completions with suffix), llamacpp "
        "(llama-server /infill), ollama (/api/generate).", reload=True, cache=True, choices=BACKENDS)
    url: str | None = setting(
        None, "text", "The inference server's URL for a remote backend, e.g. http://gpu-box:8000 (https is "
        "verified).", reload=True, cache=True, nullable=True, shown_default="none")
    api_key_env: str | None = setting(
        None, "text", "Name of the environment variable (in the server's environment) that holds the remote "
        "server's API key; the key itself is never a setting, never logged, and only sent to url.",
        reload=True, nullable=True, shown_default="none")
    remote_connect_timeout_ms: int = setting(
        5_000, "int", "Remote backends: milliseconds to wait for a connection to url before reporting the server "
        "unreachable.", reload=True, low=1, high=int(MAX_CONNECT_TIMEOUT_S * 1000))
    remote_read_timeout_ms: int = setting(
        60_000, "int", "Remote backends: milliseconds to wait for the server's next bytes (the answer's start, or "
        "the next streamed piece) before reporting a timeout.", reload=True, low=1,
        high=int(MAX_READ_TIMEOUT_S * 1000))
    remote_retries: int = setting(
        2, "int", "Remote backends: extra tries when the server answers busy (HTTP 429 or 503), with backoff or "
        "its Retry-After (at most 5 s); no other failure is retried.", reload=True, low=0, high=MAX_RETRIES)
    remote_proxy: bool = setting(
        True, "bool", "Remote backends: send requests through the proxy named by HTTPS_PROXY / HTTP_PROXY / "
        "ALL_PROXY in the server's environment, unless NO_PROXY lists the host (loopback is never proxied; "
        "false: always connect directly).", reload=True)
    model: str | None = setting(
        None, "text", "Model: catalog name (diffill models list; pulled first with diffill models pull NAME), "
        "bundled name, local directory or hub id (null: the bundled model); with a remote backend, the "
        "served model's name.",
        reload=True, nullable=True, shown_default="bundled")
    fill_model: str | None = setting(
        None, "text", "Model for the fill command and its drafts (diffill.fillInTheMiddle), named as model: a "
        "stronger, slower model than the one for typing; inline completions and completion items always use "
        "model. Loaded at the first fill, next to model (refused with a message when both do not fit the "
        "device's memory). null: model serves both (with a different fillBackend: that backend's default).",
        fill=True, nullable=True, shown_default="as model")
    fill_backend: Backend | None = setting(
        None, "choice", "Where the fill model runs, as backend (e.g. vllm: a team's server for the fill command "
        "while model runs locally for typing); null: as backend.", fill=True, nullable=True, choices=BACKENDS,
        shown_default="as backend")
    fill_url: str | None = setting(
        None, "text", "The fill model's inference server URL, as url; null: url when fillBackend is null or the "
        "same as backend.", fill=True, nullable=True, shown_default="as url")
    fill_api_key_env: str | None = setting(
        None, "text", "Environment variable holding the fill model's server API key, as apiKeyEnv; null: "
        "apiKeyEnv when fillBackend is null or the same as backend.", fill=True, nullable=True,
        shown_default="as apiKeyEnv")
    device: Device = setting("auto", "choice", "Device the model runs on.", reload=True, choices=DEVICES)
    dtype: str | None = setting(
        None, "text", "Model dtype (float32, bfloat16, float16); null: bfloat16 on a GPU and on CPUs with bf16 units "
        "(AVX512-BF16, AMX), float32 on other CPUs and for DiffusionGemma on any CPU (environment "
        "DIFFILL_CPU_BF16=1/0 overrides the CPU check).",
        reload=True, nullable=True, shown_default="per device")
    max_new_tokens: int = setting(
        32, "int", "Most tokens one infill may produce (the canvas size).", cache=True, low=1, high=4096)
    steps: int | None = setting(
        None, "int", "Most denoising forward passes per infill (null: the backend's default).",
        cache=True, low=1, high=4096, nullable=True, shown_default="backend default")
    context_tokens: int | None = setting(
        None, "int", "Context window around the cursor in tokens (null: the model's default); with a remote "
        "backend, the window the server serves (null: what the server says, else 2048), which every prompt is "
        "kept within.",
        reload=True, cache=True, low=16, nullable=True, shown_default="model default")
    threads: int | None = setting(
        None, "int", "CPU threads for the model (null: all usable cores, fewer while other processes keep cores busy).",
        reload=True, low=1, high=4096, nullable=True, shown_default="adaptive")
    debounce_ms: int | None = setting(
        None, "int", "Milliseconds the server waits after a keystroke before an automatic completion (0: none; "
        "null: 0 with the local engine, which stops a superseded run within one layer once its first forward, "
        "kept for the next keystroke, is done, and "
        f"{REMOTE_DEBOUNCE_MS} with a remote backend, where every request costs the shared server).",
        low=0, high=10_000, nullable=True, shown_default=f"0 local, {REMOTE_DEBOUNCE_MS} remote")
    adaptive_debounce: bool = setting(
        True, "bool", "Adapt that wait to the typing rhythm (between half and three times debounceMs).")
    multiline: Multiline = setting(
        "auto", "choice", "Whether suggestions may span several lines.", cache=True, choices=MULTILINE_MODES)
    min_confidence: float = setting(
        MIN_CONFIDENCE, "fraction", "Automatic completions are shown only when the model's confidence in the "
        "suggestion (the geometric mean of its shown tokens' probabilities) is at least this (0: show every "
        "suggestion); a completion the user asks for always answers, with its confidence.")
    alternatives: int = setting(
        3, "int", "Suggestions a completion the user asks for (invoked, or cycling in the editor) returns, best "
        "first, the first included (1: one); automatic completions always return one.", low=1, high=8)
    drafts: DraftSettings = setting(
        DraftSettings, "drafts", "Which requests stream diffill/draft notifications (one bool sets both).")
    languages: dict[str, bool] = setting(
        {}, "flags", 'Language id -> enabled (all enabled by default; "*" for the rest), e.g. {"markdown": false}.',
        shown_default="all enabled")
    cache_size: int = setting(256, "int", "Completions kept in the cache (0: no cache).", low=0, high=100_000)
    allow_download: bool = setting(False, "bool", "Allow downloading a model from the hub.", reload=True)
    #: models allowed to run their own code (trust_remote_code), by the exact
    #: name or path given in ``model``: trust is per model, never global
    trust_remote_code: tuple[str, ...] = setting(
        (), "names", "Models (exactly as named in model) allowed to run code from their repository "
        "(trust_remote_code): absolute paths or hub ids; true is refused (trust is per model), and so are "
        "relative paths, paths inside a workspace folder and hub ids that name a local directory.")
    fallback_to_cpu: bool = setting(
        True, "bool", "When device is cuda and the GPU is unavailable or out of memory, run on the CPU instead "
        "(you are told once).", reload=True)
    fallback_to_bundled: bool = setting(
        False, "bool", "When the configured model cannot be loaded, use the bundled model instead "
        "(you are told once).", reload=True)
    max_document_bytes: int = setting(
        8 * 1024 * 1024, "int", "Files larger than this (UTF-8 bytes) get no completions.",
        low=1024, high=1024 ** 3, shown_default="8388608 (8 MiB)")
    max_requests_per_second: int = setting(
        50, "int", "Completion and fill requests accepted per second, bursts up to one second's worth "
        "(0: no limit); the rest are dropped as cancelled.", low=0, high=100_000)
    apply_edit_timeout_ms: int = setting(
        30_000, "int", "Milliseconds a fill waits for the editor to answer workspace/applyEdit (some ask the "
        "user first); then it reports the edit as not applied, and diffill/status tells if it is applied later.",
        low=100, high=3_600_000)
    log_file: str | None = setting(None, "text", "Server log file (null: none).", nullable=True)
    context_enabled: bool = setting(
        True, "bool", "Send snippets of other files with each completion: definitions of the names used near the "
        "cursor, recently viewed or edited code, similar code in open documents (see diffill/context).", cache=True)
    context_max_tokens: int = setting(
        256, "int", "Most tokens those snippets may take per completion (0: none); never more than half of the "
        "model's window after the canvas, so the cursor's own file keeps its room.", cache=True, low=0, high=32_768)
    context_exclude: tuple[str, ...] = setting(
        (), "globs", "Files never read for context, as .gitignore patterns relative to a workspace folder (besides "
        "the .gitignore files themselves, secrets such as .env, keys and credentials, and binaries), "
        'e.g. ["vendor/", "*.generated.ts"].')

    def effective_debounce_ms(self) -> int:
        """``debounce_ms``, or the backend's default when it is null (measured for the
        local engine in docs/BENCHMARKS.md, issue 15: starting at once and cancelling on
        the next key gave automatic completions p50 373 ms against 555 ms with 100 ms)."""
        if self.debounce_ms is not None:
            return self.debounce_ms
        return 0 if self.backend == "local" else REMOTE_DEBOUNCE_MS

    def language_enabled(self, language: str | None) -> bool:
        if language is None:
            return True
        return self.languages.get(language, self.languages.get("*", True))

    def trusts_model_code(self) -> bool:
        """Whether the configured model may run its own code (listed by name)."""
        return self.model is not None and self.model in self.trust_remote_code

    def for_use(self, use: Use) -> Settings:
        """The settings a request of ``use`` runs with: for "fill", ``fillModel``/``fillBackend``/
        ``fillUrl``/``fillApiKeyEnv`` in place of ``model``/``backend``/``url``/``apiKeyEnv``
        (each null one inherits, but a different backend does not inherit the others, which name
        things of the typing backend); the rest is shared."""
        if use == "typing":
            return self
        derived = self.__dict__.get("_fill_settings")
        if derived is None:
            backend = self.fill_backend or self.backend
            same = backend == self.backend

            def pick(own: str | None, inherited: str | None) -> str | None:
                return own if own is not None else (inherited if same else None)

            derived = replace(self, backend=backend, model=pick(self.fill_model, self.model),
                              url=pick(self.fill_url, self.url),
                              api_key_env=pick(self.fill_api_key_env, self.api_key_env),
                              fill_model=None, fill_backend=None, fill_url=None, fill_api_key_env=None)
            object.__setattr__(self, "_fill_settings", derived)
        return derived

    def separate_fill(self) -> bool:
        """Whether the fill command needs an engine of its own (its model settings differ)."""
        return self.for_use("fill").engine_key() != self.engine_key()

    def engine_key(self, use: Use = "typing") -> tuple[Any, ...]:
        """Settings whose change needs the model for ``use`` loaded again."""
        if use == "fill":
            return self.for_use("fill").engine_key()
        return self._once("_engine_key", lambda: tuple(
            getattr(self, f.name) for f in SETTING_FIELDS if spec_of(f).reload) + (self.trusts_model_code(),))

    def request_key(self, use: Use = "typing") -> tuple[Any, ...]:
        """Settings that change the text of a request for ``use`` (part of the cache key)."""
        if use == "fill":
            return self.for_use("fill").request_key()
        return self._once("_request_key", lambda: tuple(
            getattr(self, f.name) for f in SETTING_FIELDS if spec_of(f).cache))

    def _once(self, name: str, compute: Callable[[], tuple[Any, ...]]) -> tuple[Any, ...]:
        """``compute()``, kept on this object: every request asks for the keys, and a
        settings object never changes (a change makes a new one)."""
        key = self.__dict__.get(name)
        if key is None:
            key = compute()
            object.__setattr__(self, name, key)
        return key


def spec_of(f: Field) -> SettingSpec:
    return f.metadata["spec"]


def camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(part.title() for part in rest)


def default_of(f: Field) -> Any:
    if f.default is MISSING:
        assert callable(f.default_factory), f.name  # every setting has a default or a factory
        return f.default_factory()
    return f.default


#: every setting, in declaration order
SETTING_FIELDS: tuple[Field, ...] = tuple(fields(Settings))
_KEYS = {camel(f.name): f for f in SETTING_FIELDS}


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def check_value(spec: SettingSpec, value: Any) -> Any:
    """Validate one value; raise ValueError with a message for the user."""
    if spec.kind == "text":
        if (value is None and spec.nullable) or (isinstance(value, str) and value):
            return value
        raise ValueError("expected a non-empty string or null")
    if spec.kind == "choice":
        if value in spec.choices or (value is None and spec.nullable):
            return value
        raise ValueError(f"expected one of {', '.join(spec.choices)}{' or null' if spec.nullable else ''}")
    if spec.kind == "int":
        low = spec.low if spec.low is not None else -(2 ** 63)
        if (value is None and spec.nullable) or (_is_int(value) and low <= value
                                                 and (spec.high is None or value <= spec.high)):
            return value
        bounds = f">= {spec.low}" if spec.high is None else f"in {spec.low}..{spec.high}"
        raise ValueError(f"expected an integer {bounds}{' or null' if spec.nullable else ''}")
    if spec.kind == "fraction":
        if (_is_int(value) or isinstance(value, float)) and 0.0 <= value <= 1.0:
            return float(value)
        raise ValueError("expected a number from 0 to 1")
    if spec.kind == "bool":
        if isinstance(value, bool):
            return value
        raise ValueError("expected true or false")
    if spec.kind == "names":
        if value is False or value is None:
            return ()
        if isinstance(value, list) and all(isinstance(v, str) and v for v in value):
            return tuple(value)
        raise ValueError("expected a list of model names or paths to trust (trust is per model; "
                         "true is not accepted)")
    if spec.kind == "globs":
        if isinstance(value, list) and all(isinstance(v, str) and v.strip() for v in value):
            return tuple(value)
        raise ValueError("expected a list of .gitignore-style patterns")
    if spec.kind == "flags":
        if isinstance(value, dict) and all(isinstance(v, bool) for v in value.values()):
            return dict(value)
        raise ValueError("expected an object of language id -> true/false")
    raise ValueError(f"no check for kind {spec.kind!r}")  # pragma: no cover - drafts are parsed apart


def parse_settings(raw: Any, base: Settings | None = None) -> tuple[Settings, list[str]]:
    """Overlay ``raw`` (flat, or nested under ``"diffill"``) on ``base``.

    Returns the new settings and one warning per ignored key or value.
    """
    base = base or Settings()
    warnings: list[str] = []
    if raw is None:
        return base, warnings
    if not isinstance(raw, dict):
        return base, [f"diffill settings must be an object, got {type(raw).__name__}"]
    if isinstance(raw.get("diffill"), dict):
        raw = raw["diffill"]
    changes: dict[str, Any] = {}
    for key, value in raw.items():
        f = _KEYS.get(key)
        if f is None:
            warnings.append(f"unknown setting {key!r} ignored")
            continue
        if spec_of(f).kind == "drafts":
            drafts, sub = _parse_drafts(value, base.drafts)
            warnings.extend(sub)
            changes[f.name] = drafts
            continue
        try:
            changes[f.name] = check_value(spec_of(f), value)
        except ValueError as exc:
            warnings.append(f"setting {key!r}: {exc}; got {value!r}, keeping {getattr(base, f.name)!r}")
    return replace(base, **changes), warnings


def _parse_drafts(value: Any, base: DraftSettings) -> tuple[DraftSettings, list[str]]:
    if isinstance(value, bool):
        return DraftSettings(completion=value, command=value), []
    if not isinstance(value, dict):
        return base, [f"setting 'drafts': expected an object, got {value!r}"]
    warnings = []
    changes = {}
    for key, v in value.items():
        if key not in ("completion", "command"):
            warnings.append(f"unknown setting 'drafts.{key}' ignored")
        elif not isinstance(v, bool):
            warnings.append(f"setting 'drafts.{key}': expected true or false, got {v!r}")
        else:
            changes[key] = v
    return replace(base, **changes), warnings
