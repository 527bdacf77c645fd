#!/usr/bin/env python3
"""Turns the per-run JSON lines that compare.sh collected ($OUT/<peer>-<N>.json) into one
markdown table: rows are metrics, columns are tinysse and its peers; each peer cell has its
value and its ratio against tinysse (peer / tinysse)."""
import argparse
import json
import os
import platform

PEERS = [("tinysse", "tinysse"), ("nchan", "nchan"), ("axum", "axum"), ("go", "Go"), ("node", "Node")]


def load(out, peer, n):
    try:
        with open(os.path.join(out, f"{peer}-{n}.json")) as f:
            d = json.loads(f.read().strip() or "{}")
    except (OSError, ValueError):
        return None
    return d


def num(d, key):
    if not d or "error" in d:
        return None
    v = d.get(key)
    return v if isinstance(v, (int, float)) and not isinstance(v, bool) else None


def incomplete(d):
    """A run that ended with events missing, streams dropped or the loadgen's timeout."""
    return bool(d) and "error" not in d and (
        (num(d, "missing") or 0) > 0 or (num(d, "dropped") or 0) > 0 or d.get("timed_out") is True
    )


def fmt_mib(kib):
    return f"{kib / 1024:.1f} MiB"


def fmt_rate(v):
    if v >= 1e6:
        return f"{v / 1e6:.2f} M/s"
    if v >= 1e3:
        return f"{v / 1e3:.0f} k/s"
    return f"{v:.0f}/s"


def fmt_ms(v):
    return f"{v:.1f} ms" if v >= 1 else f"{v:.2f} ms"


def fmt_s(v):
    return f"{v:.2f} s"


def fmt_int(v):
    return f"{v:,.0f}"


def ratio(v, base):
    if v is None or base is None:
        return ""
    if base == 0:
        return "" if v == 0 else " (tinysse: 0)"
    return f" (×{v / base:.2f})"


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("out")
    ap.add_argument("--e1k", default="?")
    ap.add_argument("--e10k", default="?")
    ap.add_argument("--size", default="64")
    ap.add_argument("--idle-secs", default="5")
    ap.add_argument("--total-secs", type=int, default=None)
    ap.add_argument("--tinysse-args", default="")
    a = ap.parse_args()

    runs = {(p, n): load(a.out, p, n) for p, _ in PEERS for n in (1000, 10000)}

    # (label, N, key, formatter)
    numeric = [
        ("RSS idle 1k", 1000, "rss_idle_kib", fmt_mib),
        ("RSS idle 10k", 10000, "rss_idle_kib", fmt_mib),
        ("deliveries/s 1k", 1000, "deliveries_per_sec", fmt_rate),
        ("deliveries/s 10k", 10000, "deliveries_per_sec", fmt_rate),
        ("p99 latency 10k", 10000, "p99_ms", fmt_ms),
        ("connect time 10k", 10000, "connect_secs", fmt_s),
        (f"idle wakeups 10k (in {a.idle_secs} s)", 10000, "idle_wakeups", fmt_int),
    ]
    header = ["metric"] + [label for _, label in PEERS]
    rows = []
    for label, n, key, f in numeric:
        base = num(runs[("tinysse", n)], key)
        row = [label]
        for p, _ in PEERS:
            d = runs[(p, n)]
            v = num(d, key)
            # Only the busy phase's numbers are cut short by an incomplete run.
            mark = " †" if key in ("deliveries_per_sec", "p99_ms") and incomplete(d) else ""
            if d is None:
                row.append("—")
            elif "error" in d:
                row.append("fail")
            elif v is None:
                row.append("n/a" + mark)  # the loadgen reported null (e.g. nothing delivered)
            elif p == "tinysse":
                row.append(f(v) + mark)
            else:
                row.append(f(v) + ratio(v, base) + mark)
        rows.append(row)

    # Correctness: missing/duplicate/reordered, and publish errors, for 1k; 10k.
    for label, keys in (
        ("missing/dup/reordered (1k; 10k)", ("missing", "duplicate", "reordered")),
        ("malformed/dropped (1k; 10k)", ("malformed", "dropped")),
        ("publish errors (1k; 10k)", ("publish_errors",)),
        ("subscribers streaming (1k; 10k)", ("connected",)),
    ):
        row = [label]
        for p, _ in PEERS:
            parts = []
            for n in (1000, 10000):
                d = runs[(p, n)]
                vals = [num(d, k) for k in keys]
                if d is None:
                    parts.append("—")
                elif "error" in d:
                    parts.append("fail")
                elif any(v is None for v in vals):
                    parts.append("n/a")  # the loadgen did not report this key
                else:
                    parts.append("/".join(fmt_int(v) for v in vals))
            row.append("; ".join(parts))
        rows.append(row)

    lines = []
    lines.append(
        f"tinysse vs peers: 1k subscribers x {a.e1k} events, 10k x {a.e10k} events, {a.size}-byte events, "
        f"{a.idle_secs} s idle window; {os.cpu_count()} CPUs, Linux {platform.release()}"
        + (f"; whole run {a.total_secs // 60} min {a.total_secs % 60} s" if a.total_secs is not None else "")
        + (f"; tinysse extra flags: `{a.tinysse_args}`" if a.tinysse_args.strip() else "")
    )
    lines.append("")
    lines.append("| " + " | ".join(header) + " |")
    lines.append("|" + "|".join("---" for _ in header) + "|")
    for r in rows:
        lines.append("| " + " | ".join(r) + " |")
    lines.append("")
    lines.append(
        "(×r) = peer / tinysse: lower is better for RSS, latency, connect time and wakeups, higher for deliveries/s. "
        "RSS and wakeups are of the serving process (nginx: its one worker). "
        "† = that run was incomplete (events missing, streams dropped or the loadgen's timeout), so its "
        "numbers cover only what was delivered. — = not run, fail = no result (see the logs), n/a = not reported. "
        "nchan answers a publish 201/202, which the loadgen counts as success (any 2xx)."
    )
    print("\n".join(lines))


if __name__ == "__main__":
    main()
