#!/usr/bin/env bash
# Installs what the benchmark peers need (Debian packages) and builds the Go and axum peers in
# release mode. Idempotent: installs only what is missing; go/cargo rebuild only what changed.
#   bash bench/setup.sh
# Environment: AXUM_TARGET (default /tmp/bench-axum-target), the axum peer's cargo target dir.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
axum_target=${AXUM_TARGET:-/tmp/bench-axum-target}

need=()
command -v nginx >/dev/null || need+=(nginx)
[ -e /usr/lib/nginx/modules/ngx_nchan_module.so ] || need+=(libnginx-mod-nchan)
command -v go >/dev/null || need+=(golang-go)
command -v curl >/dev/null || need+=(curl)
command -v python3 >/dev/null || need+=(python3)
command -v node >/dev/null || need+=(nodejs)
command -v setsid >/dev/null || need+=(util-linux)
if [ ${#need[@]} -gt 0 ]; then
  echo "setup: installing ${need[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq "${need[@]}"
fi
# Debian's nginx package may start its stock service on install; the benchmark never uses it.

echo "setup: building the Go peer -> $here/go/bin/ssebench-go"
(cd "$here/go" && go build -o bin/ssebench-go .)

echo "setup: building the axum peer -> $axum_target/release/ssebench-axum"
CARGO_TARGET_DIR=$axum_target cargo build --release --quiet --manifest-path "$here/axum/Cargo.toml"

echo "setup: versions"
nginx -v 2>&1 | sed 's/^/  /'
echo "  nchan $(dpkg-query -W -f='${Version}' libnginx-mod-nchan 2>/dev/null || echo '?')"
echo "  $(go version)"
echo "  node $(node --version)"
echo "  $(rustc --version)"
echo "setup: done"
