"""Server settings: a typed dataclass with defaults, parsed from the client's
camelCase JSON (``initializationOptions`` or ``settings.diffill``).

Bad or unknown keys never stop the server: they are returned as warnings,
which the server reports with ``window/logMessage``.
"""
from __future__ import annotations

from dataclasses import dataclass, field, fields, replace
from typing import Any

MULTILINE_MODES = ("auto", "always", "never")
DEVICES = ("auto", "cpu", "cuda")


@dataclass(frozen=True)
class DraftSettings:
    """Whether ``diffill/draft`` notifications are sent, per entry point."""

    completion: bool = False
    command: bool = True


@dataclass(frozen=True)
class Settings:
    """Every setting the server understands (docs/PROTOCOL.md lists them)."""

    model: str | None = None
    device: str = "auto"
    dtype: str | None = None
    max_new_tokens: int = 32
    steps: int | None = None
    context_tokens: int | None = None
    threads: int | None = None
    debounce_ms: int = 100
    adaptive_debounce: bool = True
    multiline: str = "auto"
    drafts: DraftSettings = field(default_factory=DraftSettings)
    languages: dict[str, bool] = field(default_factory=dict)
    cache_size: int = 256
    allow_download: bool = False
    #: models allowed to run their own code (trust_remote_code), by the exact
    #: name or path given in ``model``: trust is per model, never global
    trust_remote_code: tuple[str, ...] = ()
    #: when ``device`` is "cuda" and CUDA is unusable (absent at start, out of
    #: memory), run on the CPU instead of failing
    fallback_to_cpu: bool = True
    #: when the configured model cannot be loaded, load the bundled one
    fallback_to_bundled: bool = False
    #: documents larger than this (UTF-8 bytes) get no completions
    max_document_bytes: int = 8 * 1024 * 1024
    #: model-bound requests (completions, fill commands) per second; 0 = no limit
    max_requests_per_second: int = 50
    log_file: str | None = None

    def language_enabled(self, language: str | None) -> bool:
        if language is None:
            return True
        return self.languages.get(language, self.languages.get("*", True))

    def trusts_model_code(self) -> bool:
        """Whether the configured model may run its own code (listed by name)."""
        return self.model is not None and self.model in self.trust_remote_code

    def engine_key(self) -> tuple[Any, ...]:
        """Settings whose change needs the model loaded again."""
        return (self.model, self.device, self.dtype, self.context_tokens, self.threads,
                self.allow_download, self.trusts_model_code(), self.fallback_to_cpu,
                self.fallback_to_bundled)

    def request_key(self) -> tuple[Any, ...]:
        """Settings that change a completion's text (part of the cache key)."""
        return (self.max_new_tokens, self.steps, self.context_tokens, self.multiline)


def _camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(part.title() for part in rest)


_KEYS = {_camel(f.name): f.name for f in fields(Settings)}


#: integer settings: (lowest, highest or None, whether null is allowed)
INT_RANGES: dict[str, tuple[int, int | None, bool]] = {
    "max_new_tokens": (1, 4096, False),
    "steps": (1, 4096, True),
    "threads": (1, 4096, True),
    "context_tokens": (16, None, True),
    "debounce_ms": (0, 10_000, False),
    "cache_size": (0, 100_000, False),
    "max_document_bytes": (1024, 1024 ** 3, False),
    "max_requests_per_second": (0, 100_000, False),  # 0 = no limit
}


def _check(name: str, value: Any) -> Any:
    """Validate one value; raise ValueError with a message for the user."""
    def is_int(v: Any) -> bool:
        return isinstance(v, int) and not isinstance(v, bool)

    if name in ("model", "dtype", "log_file"):
        if value is None or (isinstance(value, str) and value):
            return value
        raise ValueError("expected a non-empty string or null")
    if name == "device":
        if value in DEVICES:
            return value
        raise ValueError(f"expected one of {', '.join(DEVICES)}")
    if name == "multiline":
        if value in MULTILINE_MODES:
            return value
        raise ValueError(f"expected one of {', '.join(MULTILINE_MODES)}")
    if name in INT_RANGES:
        low, high, nullable = INT_RANGES[name]
        if (value is None and nullable) or (is_int(value) and low <= value and (high is None or value <= high)):
            return value
        bounds = f">= {low}" if high is None else f"in {low}..{high}"
        raise ValueError(f"expected an integer {bounds}{' or null' if nullable else ''}")
    if name == "trust_remote_code":
        if value is False or value is None:
            return ()
        if isinstance(value, list) and all(isinstance(v, str) and v for v in value):
            return tuple(value)
        raise ValueError("expected a list of model names or paths to trust (trust is per model; "
                         "true is not accepted)")
    if name in ("allow_download", "adaptive_debounce", "fallback_to_cpu", "fallback_to_bundled"):
        if isinstance(value, bool):
            return value
        raise ValueError("expected true or false")
    if name == "languages":
        if isinstance(value, dict) and all(isinstance(v, bool) for v in value.values()):
            return dict(value)
        raise ValueError("expected an object of language id -> true/false")
    raise ValueError("unknown setting")  # pragma: no cover


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
        name = _KEYS.get(key)
        if name is None:
            warnings.append(f"unknown setting {key!r} ignored")
            continue
        if name == "drafts":
            drafts, sub = _parse_drafts(value, base.drafts)
            warnings.extend(sub)
            changes[name] = drafts
            continue
        try:
            changes[name] = _check(name, value)
        except ValueError as exc:
            warnings.append(f"setting {key!r}: {exc}; got {value!r}, keeping {getattr(base, name)!r}")
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
