#!/usr/bin/env bash
# Print the absolute path of a real llama.cpp `llama-server` binary (last line of stdout), building it
# once if needed. Used by the integration tests; safe to run any number of times, also concurrently.
#
#   bash scripts/llama-server.sh            # -> /root/.cache/modelhub/llama-server-<version>/llama-server
#
# Why it is built this way:
# - There is no internet here but the npm registry and Debian's packages, and Debian 12 has no llama.cpp.
#   The npm tarball of node-llama-cpp ships llama.cpp's source as a git bundle (llama/gitRelease.bundle).
#   `npm pack` only downloads the tarball: none of node-llama-cpp's install scripts run.
# - npm versions are immutable, so pinning node-llama-cpp pins the llama.cpp source; the cache key below
#   is known without any download, and the cached binary is used with no network at all. The bundle's
#   commit is checked after cloning so that a changed pin cannot silently reuse a stale key.
# - Progress goes to stderr: stdout carries only the path.
#
# Environment: MODELHUB_CACHE (default ~/.cache/modelhub) holds the binary; LLAMA_BUILD_JOBS (default 2).
set -euo pipefail

NODE_LLAMA_CPP_VERSION=3.22.1
# What llama/llama.cpp.info.json and `git bundle list-heads` report for that tarball.
LLAMA_CPP_TAG=v0.5.0
LLAMA_CPP_COMMIT=de3ff815ea7d559ee917f063901b8986f038abc6

VERSION="nlc${NODE_LLAMA_CPP_VERSION}-${LLAMA_CPP_TAG}-${LLAMA_CPP_COMMIT:0:12}"
CACHE_ROOT="${MODELHUB_CACHE:-$HOME/.cache/modelhub}"
DEST_DIR="$CACHE_ROOT/llama-server-$VERSION"
DEST="$DEST_DIR/llama-server"
JOBS="${LLAMA_BUILD_JOBS:-2}"

log() { echo "[llama-server.sh] $*" >&2; }

# Fast path: already built.
if [ -x "$DEST" ]; then
  echo "$DEST"
  exit 0
fi

for tool in npm tar git cmake c++ make; do
  command -v "$tool" >/dev/null || { log "missing required tool: $tool"; exit 1; }
done

mkdir -p "$DEST_DIR"
# Serialize concurrent callers (e.g. parallel test files): the second one waits, then finds the binary.
exec 9>"$DEST_DIR/.lock"
flock 9
if [ -x "$DEST" ]; then
  echo "$DEST"
  exit 0
fi

WORK="$(mktemp -d "${TMPDIR:-/tmp}/llama-server-build.XXXXXX")"
trap 'rm -rf "$WORK"' EXIT
started=$SECONDS

log "fetching node-llama-cpp@$NODE_LLAMA_CPP_VERSION (about 35 MB) into $WORK"
(cd "$WORK" && npm pack --silent "node-llama-cpp@$NODE_LLAMA_CPP_VERSION" >&2)
tar -xzf "$WORK/node-llama-cpp-$NODE_LLAMA_CPP_VERSION.tgz" -C "$WORK" \
  package/llama/gitRelease.bundle package/llama/llama.cpp.info.json

log "cloning llama.cpp from the bundle"
git -c advice.detachedHead=false clone --quiet "$WORK/package/llama/gitRelease.bundle" "$WORK/src" >&2
head="$(git -C "$WORK/src" rev-parse HEAD)"
if [ "$head" != "$LLAMA_CPP_COMMIT" ]; then
  log "bundle is at $head, expected $LLAMA_CPP_COMMIT: update LLAMA_CPP_COMMIT/LLAMA_CPP_TAG in $0"
  exit 1
fi

# Configure a minimal, offline, static build:
# - LLAMA_USE_PREBUILT_UI=OFF: otherwise the build downloads the web UI from a Hugging Face bucket.
#   LLAMA_BUILD_UI=OFF: otherwise it runs `npm` to build the UI. With both off the server embeds no UI
#   (the API is unaffected).
# - LLAMA_OPENSSL=OFF: no libssl-dev needed; the server only listens on loopback over plain HTTP.
# - tests/examples/app off and only the llama-server target built: ~5 min instead of much longer.
# - BUILD_SHARED_LIBS=OFF: one self-contained binary that can be copied; it needs only libgomp at run time.
# - GGML_NATIVE=OFF: no -march=native, so the cached binary also runs if the cache moves to another
#   x86-64 host; ggml then enables AVX2/FMA/F16C, plenty for the tiny test model.
log "configuring"
cmake -S "$WORK/src" -B "$WORK/build" \
  -DCMAKE_BUILD_TYPE=Release \
  -DBUILD_SHARED_LIBS=OFF \
  -DGGML_NATIVE=OFF \
  -DGGML_CCACHE=OFF \
  -DLLAMA_USE_PREBUILT_UI=OFF \
  -DLLAMA_BUILD_UI=OFF \
  -DLLAMA_OPENSSL=OFF \
  -DLLAMA_BUILD_TESTS=OFF \
  -DLLAMA_BUILD_EXAMPLES=OFF \
  -DLLAMA_BUILD_APP=OFF \
  -DLLAMA_BUILD_SERVER=ON \
  -DLLAMA_BUILD_TOOLS=ON >&2

log "building llama-server with -j$JOBS (about 5 minutes on 2 cores)"
cmake --build "$WORK/build" --target llama-server -j"$JOBS" >&2

bin="$WORK/build/bin/llama-server"
"$bin" --version >&2 2>&1 || { log "built binary does not run"; exit 1; }

# Atomic install: copy next to the destination (same filesystem), then rename over it.
cp "$bin" "$DEST.tmp.$$"
chmod 755 "$DEST.tmp.$$"
mv -f "$DEST.tmp.$$" "$DEST"
log "built in $((SECONDS - started)) s: $DEST"
echo "$DEST"
