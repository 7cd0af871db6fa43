#!/usr/bin/env python3
"""Turn the benchmark's raw records into statistics, Rust/C ratios, a
results file and a plot.

    bench.py --records FILE --out DIR --kernel RELEASE --line LINE
             --c-ko C.ko --rust-ko RUST.ko [--quick]

FILE holds the guest's BENCH records (qemu/guest/src/bench.rs). Writes
DIR/results-LINE.json and DIR/bench-LINE.png (gnuplot), and prints a table
and one `ratio <name> <rust/c>` line per figure: the median over the
rounds of the per-round ratio, with its spread (the lowest and highest
per-round ratio) in the table. Times are per call: lower is better;
throughputs (`tput_*`) are calls per second: higher is better.

Checks (printed as PASS/FAIL, then `N passed, N failed`): every figure was
measured, for both drivers, in every round. No figure's value is judged:
a timed assertion has no place in a test.
"""

import argparse
import datetime
import json
import math
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

DRIVERS = ("c", "rust")
PERCENTILES = (("min", 0), ("p50", 50), ("p90", 90), ("p99", 99), ("max", 100))
TPUT_CONFIGS = ("threads1", "threads2", "threads4", "two_devices")


def percentile(values, p):
    """Nearest-rank percentile of a non-empty list."""
    s = sorted(values)
    if p <= 0:
        return s[0]
    rank = math.ceil(p / 100 * len(s))
    return s[min(len(s), max(1, rank)) - 1]


def parse(path):
    """The records by kind, keyed (kind, who, round[, config])."""
    rtt, tput, bind, load, mem, coresize = {}, {}, {}, {}, {}, {}
    for line in Path(path).read_text().splitlines():
        f = line.split()
        if not f:
            continue
        kind = f[0]
        if kind == "rtt":
            rtt[(f[1], int(f[2]))] = [int(v) for v in f[3:]]
        elif kind == "tput":
            tput[(f[1], int(f[2]), f[3])] = float(f[4])
        elif kind == "bind":
            bind[(f[1], int(f[2]))] = [int(v) for v in f[3:]]
        elif kind == "load":
            load[(f[1], int(f[2]))] = int(f[3])
        elif kind == "mem":
            mem[(f[1], int(f[2]))] = int(f[3])
        elif kind == "coresize":
            coresize[f[1]] = int(f[2])
        else:
            raise SystemExit(f"bench.py: unknown record {line!r}")
    return rtt, tput, bind, load, mem, coresize


def ko_size(path):
    """text, data and bss of a module, as size(1) reports them."""
    out = subprocess.run(["size", path], check=True, capture_output=True, text=True).stdout
    text, data, bss = out.splitlines()[1].split()[:3]
    return {"text": int(text), "data": int(data), "bss": int(bss)}


class Figures:
    """Per-round values of each figure, for both drivers."""

    def __init__(self):
        self.per_round = {}  # name -> {driver: {round: value}}
        self.units = {}
        self.higher_better = set()

    def add(self, name, driver, rnd, value, unit, higher_better=False):
        self.per_round.setdefault(name, {}).setdefault(driver, {})[rnd] = value
        self.units[name] = unit
        if higher_better:
            self.higher_better.add(name)


def build_figures(rtt, tput, bind, load, mem, rounds):
    fig = Figures()
    for r in rounds:
        floor = rtt.get(("floor", r))
        for d in DRIVERS:
            v = rtt.get((d, r))
            if v:
                for label, p in PERCENTILES:
                    fig.add(f"keepalive_{label}", d, r, percentile(v, p) / 1e3, "us")
                if floor:
                    for label, p in (("p50", 50), ("p99", 99)):
                        over = (percentile(v, p) - percentile(floor, p)) / 1e3
                        fig.add(f"keepalive_{label}_overhead", d, r, over, "us")
            for cfg in TPUT_CONFIGS:
                if (d, r, cfg) in tput:
                    fig.add(f"tput_{cfg}", d, r, tput[(d, r, cfg)], "calls/s", higher_better=True)
            if bind.get((d, r)):
                fig.add("bind_p50", d, r, statistics.median(bind[(d, r)]) / 1e6, "ms")
            if (d, r) in load:
                fig.add("insmod_to_ready", d, r, load[(d, r)] / 1e6, "ms")
            if (d, r) in mem:
                fig.add("memory_per_device", d, r, mem[(d, r)], "bytes")
        if floor:
            for label, p in PERCENTILES:
                fig.add(f"floor_{label}", "floor", r, percentile(floor, p) / 1e3, "us")
    return fig


def ratio_stats(fig, name, rounds):
    """(median ratio, lowest, highest) of rust/c over the rounds."""
    by = fig.per_round.get(name, {})
    ratios = []
    for r in rounds:
        c, rust = by.get("c", {}).get(r), by.get("rust", {}).get(r)
        if c is None or rust is None:
            continue
        if c == 0:
            ratios.append(math.inf if rust else 1.0)
        else:
            ratios.append(rust / c)
    if not ratios:
        return None
    return statistics.median(ratios), min(ratios), max(ratios)


def fmt(v):
    if v is None:
        return "-"
    if isinstance(v, float) and not math.isfinite(v):
        return str(v)
    if abs(v) >= 1000:
        return f"{v:,.0f}"
    return f"{v:.2f}" if abs(v) < 100 else f"{v:.1f}"


def plot(out_png, rtt, sizes, title):
    """Round-trip distributions (CDF) and the module sizes, with gnuplot."""
    gnuplot = shutil.which("gnuplot")
    if not gnuplot:
        return "gnuplot not found (make setup installs gnuplot-nox)"
    with tempfile.TemporaryDirectory() as tmp:
        files = {}
        for who in ("floor", "c", "rust"):
            vals = sorted(v / 1e3 for (w, _), vs in rtt.items() if w == who for v in vs)
            path = Path(tmp) / f"{who}.dat"
            n = len(vals)
            path.write_text("".join(f"{v} {(i + 1) / n}\n" for i, v in enumerate(vals)))
            files[who] = path
        sizes_dat = Path(tmp) / "sizes.dat"
        sizes_dat.write_text(
            "".join(
                f"{part} {sizes['c'][part]} {sizes['rust'][part]}\n" for part in ("text", "data", "bss")
            )
        )
        p99 = max(percentile([v / 1e3 for (w, _), vs in rtt.items() if w == who for v in vs], 99.5)
                  for who in ("floor", "c", "rust"))
        script = f"""
set terminal pngcairo size 1400,560 font ",11" noenhanced
set output "{out_png}"
set multiplot layout 1,2 title "{title}"
set title "keepalive round trip (all rounds), CDF"
set xlabel "microseconds"
set ylabel "fraction of calls"
set key bottom right
set grid
set xrange [0:{p99 * 1.05:.1f}]
plot "{files['floor']}" using 1:2 with lines lw 2 lc rgb "#888888" title "floor: /dev/mei, no driver", \\
     "{files['c']}" using 1:2 with lines lw 2 lc rgb "#1f77b4" title "C mei_wdt", \\
     "{files['rust']}" using 1:2 with lines lw 2 lc rgb "#ff7f0e" title "Rust mei_wdt"
set title "module size (size(1))"
set xlabel ""
set ylabel "bytes"
set autoscale x
set yrange [0:*]
set style data histograms
set style histogram clustered gap 1
set style fill solid 0.8 border -1
set key top right
plot "{sizes_dat}" using 2:xtic(1) lc rgb "#1f77b4" title "C", "" using 3 lc rgb "#ff7f0e" title "Rust"
unset multiplot
"""
        res = subprocess.run([gnuplot], input=script, capture_output=True, text=True)
        if res.returncode != 0:
            return f"gnuplot failed: {res.stderr.strip()}"
    return None


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--records", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--kernel", required=True, help="kernel release")
    ap.add_argument("--line", required=True, help="kernel line, e.g. 6.12")
    ap.add_argument("--c-ko", required=True)
    ap.add_argument("--rust-ko", required=True)
    ap.add_argument("--quick", action="store_true")
    args = ap.parse_args()

    rtt, tput, bind, load, mem, coresize = parse(args.records)
    rounds = sorted({r for (_, r) in rtt})
    fig = build_figures(rtt, tput, bind, load, mem, rounds)
    sizes = {"c": ko_size(args.c_ko), "rust": ko_size(args.rust_ko)}

    rows, ratios = [], {}
    for name in fig.per_round:
        if name.startswith("floor_"):
            continue
        by = fig.per_round[name]
        c = statistics.median(by["c"].values()) if by.get("c") else None
        rust = statistics.median(by["rust"].values()) if by.get("rust") else None
        st = ratio_stats(fig, name, rounds)
        if st:
            ratios[name] = st
        rows.append((name, fig.units[name], c, rust, st))
    for part in ("text", "data", "bss"):
        name = f"ko_{part}"
        c, rust = sizes["c"][part], sizes["rust"][part]
        st = (rust / c if c else math.inf, rust / c if c else math.inf, rust / c if c else math.inf)
        ratios[name] = st
        rows.append((name, "bytes", c, rust, st))
    if "c" in coresize and "rust" in coresize:
        c, rust = coresize["c"], coresize["rust"]
        ratios["coresize"] = (rust / c,) * 3
        rows.append(("coresize", "bytes", c, rust, ratios["coresize"]))

    title = f"mei_wdt, Linux {args.kernel}, {len(rounds)} round(s), one vCPU (QEMU TCG)"
    print(f"bench: {title}")
    floor_rows = [(n, fig.per_round[n]["floor"]) for n in fig.per_round if n.startswith("floor_")]
    if floor_rows:
        print("bench: floor (/dev/mei, no driver), median over rounds: " + ", ".join(
            f"{n[len('floor_'):]} {fmt(statistics.median(v.values()))} us" for n, v in floor_rows))
    head = f"{'figure':<28} {'unit':>8} {'C':>12} {'Rust':>12} {'Rust/C':>8} {'spread':>15}"
    print(head)
    print("-" * len(head))
    for name, unit, c, rust, st in rows:
        ratio, spread = ("-", "-") if st is None else (f"{st[0]:.2f}", f"{st[1]:.2f}-{st[2]:.2f}")
        print(f"{name:<28} {unit:>8} {fmt(c):>12} {fmt(rust):>12} {ratio:>8} {spread:>15}")
    print("(tput_*: higher is better; every other figure: lower is better)")

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    png = out / f"bench-{args.line}.png"
    plot_error = plot(png, rtt, sizes, title)
    results = {
        "kernel": args.kernel,
        "line": args.line,
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "host": {"machine": platform.machine(), "cpus": os.cpu_count()},
        "vcpus": 1,
        "quick": args.quick,
        "rounds": len(rounds),
        "calls_per_round": len(next(iter(rtt.values()), [])),
        "figures": {
            name: {
                "unit": fig.units[name],
                "higher_is_better": name in fig.higher_better,
                "per_round": {d: [by[r] for r in sorted(by)] for d, by in fig.per_round[name].items()},
            }
            for name in fig.per_round
        },
        "module_size": sizes,
        "coresize": coresize,
        "ratios": {n: {"median": st[0], "min": st[1], "max": st[2]} for n, st in ratios.items()},
    }
    json_path = out / f"results-{args.line}.json"
    json_path.write_text(json.dumps(results, indent=1) + "\n")
    print(f"bench: results in {json_path}")
    if plot_error:
        print(f"bench: no plot: {plot_error}")
    else:
        print(f"bench: plot in {png}")
    for name, st in ratios.items():
        print(f"ratio {name} {st[0]:.2f}")

    # Checks: that everything was measured, never how fast.
    passed = failed = 0

    def check(name, ok, why=""):
        nonlocal passed, failed
        if ok:
            passed += 1
            print(f"PASS {name}")
        else:
            failed += 1
            print(f"FAIL {name}: {why}")

    expected = (
        [f"keepalive_{p}" for p, _ in PERCENTILES]
        + ["keepalive_p50_overhead", "keepalive_p99_overhead"]
        + [f"tput_{c}" for c in TPUT_CONFIGS]
        + ["bind_p50", "insmod_to_ready", "memory_per_device"]
    )
    missing = []
    for name in expected:
        by = fig.per_round.get(name, {})
        for d in DRIVERS:
            got = by.get(d, {})
            lacking = [r for r in rounds if r not in got or not math.isfinite(got[r])]
            if lacking or not rounds:
                missing.append(f"{name} ({d}, rounds {lacking or 'none'})")
    check("bench-rounds", len(rounds) >= 1, "no round measured")
    check("bench-figures", not missing, "missing: " + ", ".join(missing))
    check("bench-floor", all(("floor", r) in rtt for r in rounds), "a round has no floor")
    check("bench-sizes", set(coresize) == set(DRIVERS), f"coresize for {sorted(coresize)} only")
    check("bench-plot", plot_error is None, plot_error or "")
    print(f"{passed} passed, {failed} failed")
    return 0 if failed == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
