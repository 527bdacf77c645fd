#!/usr/bin/env bash
# Measures what the link adds to the stripped release server: builds the committed server twice
# in a temporary copy (never in the work tree), without and with src/cluster/ linked in and every
# link API called from main, and prints both sizes. Takes ~1 minute on 2 cores.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
repo=$(git -C "$here" rev-parse --show-toplevel)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
git -C "$repo" archive HEAD | tar -x -C "$work"
rm -rf "$work/scratch"
cd "$work"
cargo build --release --quiet --bin tinysse
base=$(stat -c %s target/release/tinysse)
mkdir -p src/cluster
cp "$here/src/link.rs" "$here/src/resp.rs" src/cluster/
sed -i 's/use crate::resp::/use super::resp::/' src/cluster/link.rs
printf 'pub mod link;\npub mod resp;\n' > src/cluster/mod.rs
python3 - "$here/size_probe.rs" <<'PY'
import sys
s = open('src/main.rs').read()
s = s.replace("use std::process::ExitCode;", "#[allow(dead_code)]\nmod cluster;\nuse std::process::ExitCode;", 1)
s = s.replace('    log::info!("listening on {}", server.local_addr());',
              '    log::info!("listening on {}", server.local_addr());\n'
              '    if let Ok(url) = std::env::var("PROBE_REDIS") {\n        probe(&url, &mut server);\n    }', 1)
s += "\n" + open(sys.argv[1]).read()
open('src/main.rs', 'w').write(s)
PY
cargo build --release --quiet --bin tinysse
with=$(stat -c %s target/release/tinysse)
echo "server without the link: $base bytes; with it: $with bytes; the link adds $((with - base))"
