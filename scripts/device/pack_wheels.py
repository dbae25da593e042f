"""Wheels for the device machine, packed from this environment's installed packages.

Why: the device image (docs/DEVICE.md) has transformers 5.17 and huggingface_hub
1.33, and none of the language server's packages, while diffill is tested here
with transformers >= 5.23 (DiffusionGemma; ModernBERT as the canvas stepper
mirrors it) and what travels to the device, the tree included, is limited to
64 MiB: the bundled model takes 45 MB of it, the full transformers wheel 13.5 MB
more.  So every distribution in ``CARRY`` is packed from its installed files, at
the version this environment and CI test with, into a wheel of its own in
``--out`` (``.whl/``, git-ignored, carried), and transformers keeps only the
model families diffill loads (``KEEP_MODELS``): 2.4 MB instead of 13.5.
The device installs them with ``pip install --no-deps --target`` and puts that
folder first on ``PYTHONPATH`` (scripts/device/gpu-check.sh).

Only pure-Python distributions can be packed: a compiled one would be this
machine's Python's build, and the device runs Python 3.12.  The compiled ones
(``DOWNLOAD``) are downloaded from the package index instead, at the installed
version, built for the device's Python; ``--offline`` skips them (CI's smoke run
packs and installs the rest, with this environment's compiled ones beside it).

    .venv/bin/python scripts/device/pack_wheels.py --out .whl
"""
from __future__ import annotations

import argparse
import base64
import hashlib
import importlib.metadata as metadata
import subprocess
import sys
import zipfile
from pathlib import Path

#: distribution -> why it travels (the image lacks it, or has a version diffill is not tested with)
CARRY = {
    "transformers": "the image has 5.17; diffill needs >= 5.23 (DiffusionGemma) and is tested with this one",
    "huggingface_hub": "transformers checks for >= 2.4 when imported; the image has 1.33",
    "httpx2": "huggingface_hub 2.x imports it (the image has httpx, not httpx2)",
    "httpcore2": "httpx2's transport",
    "truststore": "httpcore2 imports it (the image has none)",
    "anyio": "httpx2 needs >= 4.10 (the image's version is unknown)",
    "idna": "httpx2 needs >= 3.18 (the image's version is unknown)",
    "h11": "httpcore2's HTTP/1.1 (the version tested here)",
    "pygls": "the language server (the real-GPU out-of-memory test starts it)",
    "lsprotocol": "pygls's protocol types",
    "cattrs": "lsprotocol's converter",
    "attrs": "cattrs >= 26 needs attrs >= 25.4 (the image's version is unknown)",
    "typing_extensions": "cattrs needs >= 4.14 (the image's version is unknown)",
    "pathspec": "the server imports it when it starts; the version the tests here use",
    "pytest": "the version CI runs (pytest-asyncio 1.5 needs >= 8.4; the image's version is unknown)",
    "pluggy": "pytest's plugin system, at the version it was tested with",
    "iniconfig": "pytest reads pyproject's [tool.pytest.ini_options] with it",
    "pytest_asyncio": "the server tests are asyncio tests",
    "pytest_lsp": "the server tests' client",
    "tomlkit": "kernels reads its configuration with it",
}
#: compiled distributions -> why they travel: downloaded for the device's Python
DOWNLOAD = {
    "kernels": "transformers >= 5.25 loads no model without it (hub kernels are on by default)",
    "tree-sitter": "the server imports it when it starts (the grammars' pack is optional and too large)",
}
#: the device's platform tags (pip download matches each exactly)
PLATFORMS = ("manylinux_2_28_x86_64", "manylinux_2_27_x86_64", "manylinux_2_17_x86_64", "manylinux2014_x86_64")
#: transformers' model families diffill imports (the bundled ModernBERT, DiffusionGemma and
#: the Gemma 4 text model it builds on, the native families' Llama/Qwen2 classes, and what
#: the tests import); every other folder of transformers/models is left out
KEEP_MODELS = ("auto", "bert", "diffusion_gemma", "encoder_decoder", "gemma4", "llama", "modernbert", "qwen2")
#: installer bookkeeping that is not part of a wheel
SKIP_DIST_INFO = {"INSTALLER", "REQUESTED", "RECORD", "direct_url.json"}
#: a fixed timestamp, so that packing twice gives the same bytes
STAMP = (2020, 1, 1, 0, 0, 0)


class PackError(RuntimeError):
    """A distribution cannot be packed (missing, compiled, or installed in editable mode)."""


def kept(name: str, relative: str) -> bool:
    """Whether file ``relative`` (a path under site-packages) of distribution ``name`` travels."""
    parts = relative.split("/")
    if relative.startswith("../") or "__pycache__" in parts or relative.endswith(".pyc"):
        return False
    if ".dist-info" in parts[0] and len(parts) == 2 and parts[1] in SKIP_DIST_INFO:
        return False
    if name == "transformers" and parts[:2] == ["transformers", "models"] and len(parts) > 3:
        return parts[2] in KEEP_MODELS
    return True


def _record_hash(data: bytes) -> str:
    return "sha256=" + base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()


def pack(name: str, out: Path) -> Path:
    """Pack the installed distribution ``name`` into a wheel in ``out``; returns its path."""
    try:
        dist = metadata.distribution(name)
    except metadata.PackageNotFoundError:
        raise PackError(f"{name} is not installed in this environment ({sys.executable})") from None
    files = [f for f in dist.files or [] if kept(name, str(f).replace("\\", "/"))]
    info = next((f for f in dist.files or [] if str(f).endswith(".dist-info/METADATA")), None)
    if info is None or not files:
        raise PackError(f"{name}: no installed files listed (an editable install?)")
    wheel_info = (Path(str(info.locate())).parent / "WHEEL").read_text(encoding="utf-8")
    if "Root-Is-Purelib: true" not in wheel_info or any(str(f).endswith((".so", ".pyd")) for f in files):
        raise PackError(f"{name}: compiled code, cannot travel as a wheel packed here")
    dist_info = str(info).split("/")[0]
    stem = dist_info.removesuffix(".dist-info")  # name-version, as the installer wrote it
    target = out / f"{stem}-py3-none-any.whl"
    record = []
    with zipfile.ZipFile(target, "w", zipfile.ZIP_DEFLATED) as wheel:
        for f in sorted(files, key=str):
            data = Path(str(f.locate())).read_bytes()
            path = str(f).replace("\\", "/")
            wheel.writestr(zipfile.ZipInfo(path, STAMP), data, zipfile.ZIP_DEFLATED)
            record.append(f"{path},{_record_hash(data)},{len(data)}")
        record.append(f"{dist_info}/RECORD,,")
        wheel.writestr(zipfile.ZipInfo(f"{dist_info}/RECORD", STAMP), "\n".join(record) + "\n", zipfile.ZIP_DEFLATED)
    return target


def download(name: str, out: Path, python_version: str) -> Path:
    """The wheel of the installed version of ``name`` for CPython ``python_version`` on
    the device's platform, from the package index (the only step that needs the network)."""
    try:
        version = metadata.version(name)
    except metadata.PackageNotFoundError:
        raise PackError(f"{name} is not installed in this environment ({sys.executable})") from None
    before = set(out.glob("*.whl"))
    command = [sys.executable, "-m", "pip", "download", "-q", "--no-deps", "--only-binary=:all:",
               "--python-version", python_version, "--implementation", "cp",
               *(arg for platform in PLATFORMS for arg in ("--platform", platform)), "-d", str(out),
               f"{name}=={version}"]
    proc = subprocess.run(command, capture_output=True, text=True)
    new = sorted(set(out.glob("*.whl")) - before)
    if proc.returncode != 0 or not new:
        raise PackError(f"{name}=={version}: pip download failed: {proc.stderr.strip()[-500:]}")
    return new[0]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=Path(".whl"), help="folder of the wheels (default .whl)")
    ap.add_argument("--python-version", default="3.12", help="the device's Python, for the compiled ones")
    ap.add_argument("--offline", action="store_true", help="pack the pure-Python ones only, download nothing")
    args = ap.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    for stale in args.out.glob("*.whl"):  # one version of each: two stop the whole install there
        stale.unlink()
    total, count = 0, 0
    jobs = [(name, why, False) for name, why in CARRY.items()]
    jobs += [(name, why, True) for name, why in DOWNLOAD.items() if not args.offline]
    for name, why, compiled in jobs:
        try:
            wheel = download(name, args.out, args.python_version) if compiled else pack(name, args.out)
        except PackError as exc:
            print(f"pack_wheels: {exc}", file=sys.stderr)
            return 1
        total, count = total + wheel.stat().st_size, count + 1
        print(f"{wheel.name:<70} {wheel.stat().st_size / 1e6:6.2f} MB  {why}")
    skipped = f" (--offline: not {', '.join(DOWNLOAD)})" if args.offline else ""
    print(f"{count} wheels, {total / 1e6:.2f} MB in {args.out}{skipped}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
