#!/usr/bin/env bash
# Build llama.cpp's `llama-server` for the remote-backend tests against the real
# server (tests/test_llamacpp_real.py), from the `vendor/llama.cpp` tree of a
# pinned llama-cpp-python sdist: PyPI is the only registry reachable here.
#
#   .ci/install-llama-server.sh                # build once, print the binary's path on stdout
#   .ci/install-llama-server.sh --print-path   # print where the binary is (or would be); build nothing
#   DIFFILL_LLAMA_DIR=/opt/x ...               # cache root (default /opt/diffill-llama)
#
# The binary is cached outside the checkout, in $DIR/<version>-<cpu key>/, and a
# second run only checks it is there.  Nothing is fetched at build time: the
# sdist is downloaded first (pip), then cmake builds offline (no curl, no
# OpenSSL, no web UI: LLAMA_USE_PREBUILT_UI would download the page).
#
# Why GGML_NATIVE=ON with a CPU key in the path: a native build is several
# times faster than a portable one on this 2-core machine (tests and the
# benchmark in docs/BENCHMARKS.md run it), but it may use instructions (AVX-512
# here) that another CPU lacks, and the cache may outlive the machine it was
# built on.  The key is a hash of the CPU's model name and instruction flags:
# on another CPU the path differs, so the build is redone there instead of
# dying with SIGILL.  Logs go to stderr; stdout carries only the path.
set -euo pipefail

VERSION="${LLAMA_CPP_PYTHON_VERSION:-0.3.36}"
# the llama.cpp commit vendored by llama-cpp-python $VERSION (its git submodule);
# the sdist has no .git, so the build is told it (llama-server reports it in /props)
COMMIT="${LLAMA_CPP_COMMIT:-0c1e57098}"
DIR="${DIFFILL_LLAMA_DIR:-/opt/diffill-llama}"

log() { printf '[install-llama-server] %s\n' "$*" >&2; }

cpu_key() {
  # model name + flags of the first processor: what -march=native depends on
  local info
  info="$(grep -m1 -E '^model name' /proc/cpuinfo 2>/dev/null; grep -m1 -E '^(flags|Features)' /proc/cpuinfo 2>/dev/null)"
  printf '%s' "$info" | sha256sum | cut -c1-12
}

PREFIX="$DIR/$VERSION-$(cpu_key)"
BIN="$PREFIX/bin/llama-server"

if [ "${1:-}" = "--print-path" ]; then
  echo "$BIN"
  exit 0
fi

if [ -x "$BIN" ] && "$BIN" --version >/dev/null 2>&1; then
  log "llama-server already built: $BIN"
  echo "$BIN"
  exit 0
fi

for tool in cmake g++ python3; do
  command -v "$tool" >/dev/null || { log "$tool is required to build llama-server"; exit 1; }
done
GENERATOR=(-G Ninja)
if ! command -v ninja >/dev/null; then
  if python3 -m pip install -q ninja >&2 && command -v ninja >/dev/null; then
    :
  else
    log "ninja not available: building with make"
    GENERATOR=(-G "Unix Makefiles")
  fi
fi

# the sdist and the build tree are kept until the binary is installed: a run that is
# interrupted (the build takes minutes) resumes where it stopped
work="$PREFIX.build"
mkdir -p "$work"
sdist="$work/llama_cpp_python-$VERSION.tar.gz"
if [ ! -f "$sdist" ]; then
  log "downloading the llama-cpp-python $VERSION sdist (PyPI)"
  python3 -m pip download -q --no-binary :all: --no-deps "llama-cpp-python==$VERSION" -d "$work.dl" >&2
  mv "$work.dl/llama_cpp_python-$VERSION.tar.gz" "$sdist"
  rm -rf "$work.dl"
fi
src="$work/llama_cpp_python-$VERSION/vendor/llama.cpp"
[ -f "$src/CMakeLists.txt" ] || tar xzf "$sdist" -C "$work"
[ -f "$src/CMakeLists.txt" ] || { log "no vendor/llama.cpp in the sdist"; exit 1; }

jobs="${LLAMA_BUILD_JOBS:-$(nproc)}"
log "building llama-server (llama.cpp $COMMIT) with $jobs jobs: about 11 minutes on 2 cores"
start=$(date +%s)
cmake -S "$src" -B "$work/build" "${GENERATOR[@]}" \
  -DCMAKE_BUILD_TYPE=Release -DBUILD_SHARED_LIBS=OFF -DGGML_NATIVE=ON \
  -DLLAMA_CURL=OFF -DLLAMA_OPENSSL=OFF -DLLAMA_BUILD_SERVER=ON \
  -DLLAMA_USE_PREBUILT_UI=OFF -DLLAMA_BUILD_UI=OFF \
  -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF \
  -DLLAMA_BUILD_COMMIT="$COMMIT" >&2
cmake --build "$work/build" --target llama-server -j "$jobs" >&2

# install: the (static) binary, and the tree's converter and gguf-py for tests
# that want to write models with the exact gguf version this server reads
mkdir -p "$PREFIX.tmp/bin"
cp "$work/build/bin/llama-server" "$PREFIX.tmp/bin/"
cp -r "$src/gguf-py" "$PREFIX.tmp/gguf-py"
printf 'llama-cpp-python %s\nllama.cpp %s\n' "$VERSION" "$COMMIT" > "$PREFIX.tmp/VERSION"
rm -rf "$PREFIX"
mv "$PREFIX.tmp" "$PREFIX"
rm -rf "$work"
"$BIN" --version >&2 || true
log "built in $(( $(date +%s) - start ))s: $BIN"
echo "$BIN"
