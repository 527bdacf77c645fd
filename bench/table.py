#!/usr/bin/env python3
"""Turns the per-run JSON lines that compare.sh collected ($OUT/<peer>-<N>-<mode>-r<k>.json) into
markdown tables: one per publisher mode (rows are metrics at 1k and 10k subscribers, columns are
tinysse and its peers), and one for the figures that do not depend on the mode (idle RSS, connect
time, wakeups; from the pipelined runs). Each cell is `best / median` over the repeats, and a
peer's cell ends with its median's ratio to tinysse's median (peer / tinysse)."""
import argparse
import json
import os
import platform
import re
import statistics

PEERS = [
    ("tinysse", "tinysse"),
    ("tinysse_journal", "tinysse --history-file"),
    ("tinysse_old", "tinysse (older build)"),
    ("nchan", "nchan"),
    ("axum", "axum"),
    ("go", "Go"),
    ("node", "Node"),
]
NS = (1000, 10000)
NAME = re.compile(r"^(?P<peer>[a-z_]+)-(?P<n>\d+)-(?P<mode>[a-z]+\d*)-r(?P<rep>\d+)\.json$")


def load_all(out):
    """{(peer, n, mode): [run dict, ...]} in repeat order; a run that failed is {"error": ...}."""
    runs = {}
    for name in sorted(os.listdir(out)):
        m = NAME.match(name)
        if not m:
            continue
        try:
            with open(os.path.join(out, name)) as f:
                d = json.loads(f.read().strip() or "{}")
        except (OSError, ValueError):
            d = {"error": "unreadable"}
        if not isinstance(d, dict):
            d = {"error": "not an object"}
        key = (m["peer"], int(m["n"]), m["mode"])
        runs.setdefault(key, []).append((int(m["rep"]), d))
    return {k: [d for _, d in sorted(v, key=lambda x: x[0])] for k, v in runs.items()}


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
        return f"{v / 1e3:.1f} k/s"
    return f"{v:.0f}/s"


def fmt_ms(v):
    return f"{v:.1f} ms" if v >= 1 else f"{v:.3f} ms"


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


def summary(runs, key, higher_better):
    """(best, median, runs with a value, failed runs, any incomplete) of `key` over the runs."""
    vals = [num(d, key) for d in runs]
    vals = [v for v in vals if v is not None]
    failed = sum(1 for d in runs if "error" in d)
    inc = any(incomplete(d) for d in runs)
    if not vals:
        return None, None, 0, failed, inc
    best = max(vals) if higher_better else min(vals)
    return best, statistics.median(vals), len(vals), failed, inc


def cell(runs, key, fmt, higher_better, base_median, is_base, busy_metric):
    if not runs:
        return "—"
    best, med, n, failed, inc = summary(runs, key, higher_better)
    if best is None:
        return "fail" if failed == len(runs) else "n/a"
    mark = " †" if busy_metric and inc else ""
    extra = f" ({failed} failed)" if failed else ""
    text = fmt(best) if n == 1 else f"{fmt(best)} / {fmt(med)}"
    if not is_base:
        text += ratio(med, base_median)
    return text + mark + extra


def mode_title(mode, a):
    if mode == "pipelined":
        return (f"pipelined publisher (one connection, up to 16 requests in flight): "
                f"1k x {a.e1k} events, 10k x {a.e10k} events")
    m = re.match(r"wait(\d+)$", mode)
    if m:
        k = int(m.group(1))
        who = "one publisher that waits" if k == 1 else f"{k} publishers at once, each waiting"
        return (f"{who} for each answer before the next POST (one request in flight per connection): "
                f"1k x {a.w1k} events, 10k x {a.w10k} events in all")
    return mode


def mode_order(mode):
    if mode == "pipelined":
        return (0, 0)
    m = re.match(r"wait(\d+)$", mode)
    return (1, int(m.group(1))) if m else (2, 0)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("out")
    ap.add_argument("--e1k", default="?")
    ap.add_argument("--e10k", default="?")
    ap.add_argument("--w1k", default="?")
    ap.add_argument("--w10k", default="?")
    ap.add_argument("--size", default="64")
    ap.add_argument("--idle-secs", default="5")
    ap.add_argument("--total-secs", type=int, default=None)
    ap.add_argument("--tinysse-args", default="")
    a = ap.parse_args()

    runs = load_all(a.out)
    modes = sorted({m for (_, _, m) in runs}, key=mode_order)
    reps = max((len(v) for v in runs.values()), default=0)
    header = ["metric"] + [label for _, label in PEERS]
    lines = [
        f"tinysse vs peers: {a.size}-byte events, {reps} repeat(s) per cell; "
        f"{os.cpu_count()} CPUs, Linux {platform.release()}"
        + (f"; whole run {a.total_secs // 60} min {a.total_secs % 60} s" if a.total_secs is not None else "")
        + (f"; tinysse extra flags: `{a.tinysse_args}`" if a.tinysse_args.strip() else ""),
        "",
        "Each cell: best / median over the repeats; (×r) = peer median / tinysse median.",
    ]

    def table(rows):
        out = ["", "| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
        out += ["| " + " | ".join(r) + " |" for r in rows]
        return out

    def metric_row(label, n, mode, key, fmt, higher_better, busy_metric=True):
        base = summary(runs.get(("tinysse", n, mode), []), key, higher_better)[1]
        row = [label]
        for p, _ in PEERS:
            row.append(cell(runs.get((p, n, mode), []), key, fmt, higher_better, base, p == "tinysse", busy_metric))
        return row

    def counts_row(label, n, mode, keys):
        """Sums over the repeats, e.g. missing/dup/reordered."""
        row = [label]
        for p, _ in PEERS:
            rs = runs.get((p, n, mode), [])
            ok = [d for d in rs if "error" not in d]
            if not rs:
                row.append("—")
            elif not ok:
                row.append("fail")
            else:
                sums = []
                for k in keys:
                    vals = [num(d, k) for d in ok]
                    sums.append("n/a" if any(v is None for v in vals) else fmt_int(sum(vals)))
                failed = len(rs) - len(ok)
                row.append("/".join(sums) + (f" ({failed} failed)" if failed else ""))
        return row

    for mode in modes:
        lines += ["", f"### {mode_title(mode, a)}"]
        rows = []
        for n in NS:
            k = f"{n // 1000}k"
            if not any(runs.get((p, n, mode)) for p, _ in PEERS):
                continue
            rows += [
                metric_row(f"answers/s {k}", n, mode, "answers_per_sec", fmt_rate, True),
                metric_row(f"publish round trip p50 {k}", n, mode, "rtt_p50_ms", fmt_ms, False),
                metric_row(f"publish round trip p99 {k}", n, mode, "rtt_p99_ms", fmt_ms, False),
                metric_row(f"round trip p99 to the answer's arrival {k}", n, mode, "rtt_arrival_p99_ms", fmt_ms, False),
                metric_row(f"deliveries/s {k}", n, mode, "deliveries_per_sec", fmt_rate, True),
                metric_row(f"delivery latency p50 {k}", n, mode, "p50_ms", fmt_ms, False),
                metric_row(f"delivery latency p99 {k}", n, mode, "p99_ms", fmt_ms, False),
                metric_row(f"latency p99 to the kernel's arrival stamp {k}", n, mode, "arrival_p99_ms", fmt_ms, False),
                metric_row(f"server CPU, busy phase {k}", n, mode, "cpu_busy_secs", fmt_s, False),
                counts_row(f"missing/dup/reordered {k} (sum)", n, mode, ("missing", "duplicate", "reordered")),
                counts_row(f"malformed/dropped/publish errors {k} (sum)", n, mode,
                           ("malformed", "dropped", "publish_errors")),
            ]
        lines += table(rows)

    if any(m == "pipelined" for m in modes):
        lines += ["", f"### not publisher-bound (from the pipelined runs; idle window {a.idle_secs} s)"]
        rows = [
            metric_row("RSS idle 1k", 1000, "pipelined", "rss_idle_kib", fmt_mib, False, False),
            metric_row("RSS idle 10k", 10000, "pipelined", "rss_idle_kib", fmt_mib, False, False),
            metric_row("RSS peak (VmHWM) 10k", 10000, "pipelined", "rss_peak_kib", fmt_mib, False, False),
            metric_row("connect time 10k", 10000, "pipelined", "connect_secs", fmt_s, False, False),
            metric_row(f"idle wakeups 10k (in {a.idle_secs} s)", 10000, "pipelined", "idle_wakeups", fmt_int,
                       False, False),
            counts_row("subscribers streaming 10k (sum)", 10000, "pipelined", ("connected",)),
        ]
        lines += table(rows)

    lines += [
        "",
        "Lower is better for RSS, latency, round trip, CPU, connect time and wakeups; higher for answers/s "
        "and deliveries/s. answers/s = publishes answered 2xx per second over all publisher connections "
        "(first request to last answer); a waiting publisher's answers/s is the inverse of its round trip. "
        "RSS and wakeups are of the serving process (nginx: its one worker). "
        "† = at least one run of that cell was incomplete (events missing, streams dropped or the "
        "loadgen's timeout), so its numbers cover only what was delivered. — = not run, fail = no result "
        "(see the logs), n/a = not reported. nchan answers a publish 201/202, which the loadgen counts as "
        "success (any 2xx).",
    ]
    print("\n".join(lines))


if __name__ == "__main__":
    main()
