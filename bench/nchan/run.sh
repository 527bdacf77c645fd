#!/usr/bin/env bash
# Runs the nginx + nchan peer in the foreground: bash bench/nchan/run.sh PORT [RUN_DIR]
# (or PORT / RUN_DIR in the environment). One master and one worker; the worker is the server
# (its pid is the only child of this script's pid once nginx has started).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
port=${1:-${PORT:?usage: run.sh PORT [RUN_DIR]}}
run=${2:-${RUN_DIR:-$(mktemp -d /tmp/nchan-run.XXXXXX)}}
mkdir -p "$run"
run=$(cd "$run" && pwd)
sed -e "s|@RUN@|$run|g" -e "s|@PORT@|$port|g" "$here/nginx.conf.in" >"$run/nginx.conf"
exec nginx -p "$run" -c "$run/nginx.conf" -e "$run/error.log"
