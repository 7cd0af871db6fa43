#!/usr/bin/env python3
"""Turn the benchmark's raw records into statistics, Rust/C ratios, a
results file and a plot.

    bench.py --records FILE --out DIR --kernel RELEASE --line LINE
             --c-ko C.ko --rust-ko RUST.ko

FILE holds the guest's BENCH records (qemu/guest/src/bench.rs). Writes
DIR/results-LINE.json and DIR/bench-LINE.png (gnuplot), and prints a table
and one `ratio <name> <rust/c>` line per figure: the median over the
rounds of the per-round ratio, with its spread (the lowest and highest
per-round ratio) in the table. Times are per call: lower is better;
throughputs (`tput_*`) are calls per second: higher is better.

Checks (printed as PASS/FAIL, then `N passed, N failed`): every figure was
measured, for both drivers, in every round, with as many calls and binds
as the guest's `sizes` record says. No figure's value is judged: a timed
assertion has no place in a test.
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
PERCENTILES = (("min", 0), ("p10", 10), ("p50", 50), ("p90", 90), ("p99", 99), ("max", 100))
OVERHEADS = ("min", "p10", "p50", "p90", "p99")
TPUT_CONFIGS = ("threads1", "threads2", "threads4", "two_devices")
SIZES = ("rounds", "calls", "warmup", "tput_calls", "binds", "mem_devices")


def percentile(values, p):
    """Nearest-rank percentile of a non-empty list."""
    s = sorted(values)
    if p <= 0:
        return s[0]
    rank = math.ceil(p / 100 * len(s))
    return s[min(len(s), max(1, rank)) - 1]


class Records:
    """The guest's records by kind, keyed (who, round[, config])."""

    def __init__(self, path):
        self.sizes = None
        self.rtt, self.tput, self.bind, self.load = {}, {}, {}, {}
        self.mem, self.mem_extra, self.coresize = {}, {}, {}
        for line in Path(path).read_text().splitlines():
            f = line.split()
            if not f:
                continue
            kind = f[0]
            if kind == "sizes":
                self.sizes = dict(zip(SIZES, (int(v) for v in f[1:])))
            elif kind == "rtt":
                self.rtt[(f[1], int(f[2]))] = [int(v) for v in f[3:]]
            elif kind == "tput":
                self.tput[(f[1], int(f[2]), f[3])] = float(f[4])
            elif kind == "bind":
                self.bind[(f[1], int(f[2]))] = [int(v) for v in f[3:]]
            elif kind == "load":
                self.load[(f[1], int(f[2]))] = int(f[3])
            elif kind in ("mem", "mem_extra", "coresize"):
                getattr(self, kind)[(f[1], int(f[2]))] = int(f[3])
            else:
                raise SystemExit(f"bench.py: unknown record {line!r}")

    def rounds(self):
        return sorted({r for (_, r) in self.rtt})


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


def build_figures(rec, rounds):
    """Every figure, per driver and round. floor_*: the floor measured
    right before that driver, so its ratio shows how far the machine moved
    between the two."""
    fig = Figures()
    pct = dict(PERCENTILES)
    for r in rounds:
        for d in DRIVERS:
            v = rec.rtt.get((d, r))
            floor = rec.rtt.get((f"floor_{d}", r))
            if v:
                for label, p in PERCENTILES:
                    fig.add(f"keepalive_{label}", d, r, percentile(v, p) / 1e3, "us")
            if floor:
                for label, p in PERCENTILES:
                    fig.add(f"floor_{label}", d, r, percentile(floor, p) / 1e3, "us")
            if v and floor:
                for label in OVERHEADS:
                    over = (percentile(v, pct[label]) - percentile(floor, pct[label])) / 1e3
                    fig.add(f"keepalive_{label}_overhead", d, r, over, "us")
            for cfg in TPUT_CONFIGS:
                if (d, r, cfg) in rec.tput:
                    fig.add(f"tput_{cfg}", d, r, rec.tput[(d, r, cfg)], "calls/s", higher_better=True)
            if rec.bind.get((d, r)):
                fig.add("bind_p50", d, r, statistics.median(rec.bind[(d, r)]) / 1e6, "ms")
            if (d, r) in rec.load:
                fig.add("insmod_to_ready", d, r, rec.load[(d, r)] / 1e6, "ms")
            if (d, r) in rec.mem:
                fig.add("memory_per_device", d, r, rec.mem[(d, r)], "bytes")
            if (d, r) in rec.mem_extra:
                fig.add("memory_per_extra_device", d, r, rec.mem_extra[(d, r)], "bytes")
            if (d, r) in rec.coresize:
                fig.add("coresize", d, r, rec.coresize[(d, r)], "bytes")
    return fig


def ratio_stats(fig, name, rounds):
    """(median ratio, lowest, highest) of rust/c over the rounds; None
    when a round lacks a value or C's value is not positive (a ratio of
    overheads around zero means nothing)."""
    by = fig.per_round.get(name, {})
    ratios = []
    for r in rounds:
        c, rust = by.get("c", {}).get(r), by.get("rust", {}).get(r)
        if c is None or rust is None or c <= 0:
            return None
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
    series = {
        who: sorted(v / 1e3 for (w, _), vs in rtt.items() if w in whos for v in vs)
        for who, whos in (("floor", ("floor_c", "floor_rust")), ("c", ("c",)), ("rust", ("rust",)))
    }
    empty = [who for who, vals in series.items() if not vals]
    if empty:
        return f"no round trips for {', '.join(empty)}"
    with tempfile.TemporaryDirectory() as tmp:
        files = {}
        for who, vals in series.items():
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
        p99 = max(percentile(vals, 99.5) for vals in series.values())
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


def finite_or_none(v):
    return v if isinstance(v, (int, float)) and math.isfinite(v) else None


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--records", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--kernel", required=True, help="kernel release")
    ap.add_argument("--line", required=True, help="kernel line, e.g. 6.12")
    ap.add_argument("--c-ko", required=True)
    ap.add_argument("--rust-ko", required=True)
    args = ap.parse_args()

    rec = Records(args.records)
    rounds = rec.rounds()
    fig = build_figures(rec, rounds)
    sizes = {"c": ko_size(args.c_ko), "rust": ko_size(args.rust_ko)}

    rows, ratios, no_ratio = [], {}, []
    for name in fig.per_round:
        by = fig.per_round[name]
        c = statistics.median(by["c"].values()) if by.get("c") else None
        rust = statistics.median(by["rust"].values()) if by.get("rust") else None
        st = ratio_stats(fig, name, rounds)
        if st:
            ratios[name] = st
        else:
            no_ratio.append(name)
        rows.append((name, fig.units[name], c, rust, st))
    for part in ("text", "data", "bss"):
        name = f"ko_{part}"
        c, rust = sizes["c"][part], sizes["rust"][part]
        st = (rust / c,) * 3 if c > 0 else None
        if st:
            ratios[name] = st
        else:
            no_ratio.append(name)
        rows.append((name, "bytes", c, rust, st))

    quick = rec.sizes is not None and rec.sizes.get("calls", 0) < 1000
    title = f"mei_wdt, Linux {args.kernel}, {len(rounds)} round(s), one vCPU (QEMU TCG)"
    print(f"bench: {title}")
    head = f"{'figure':<30} {'unit':>8} {'C':>12} {'Rust':>12} {'Rust/C':>8} {'spread':>15}"
    print(head)
    print("-" * len(head))
    for name, unit, c, rust, st in rows:
        ratio, spread = ("-", "-") if st is None else (f"{st[0]:.2f}", f"{st[1]:.2f}-{st[2]:.2f}")
        print(f"{name:<30} {unit:>8} {fmt(c):>12} {fmt(rust):>12} {ratio:>8} {spread:>15}")
    print("(medians over the rounds; Rust/C: the median of the per-round ratios, spread: their lowest"
          " and highest. floor_*: the floor measured right before each driver. tput_*: higher is"
          " better; every other figure: lower is better)")
    if no_ratio:
        print(f"bench: no ratio where C's value is not positive in a round: {', '.join(no_ratio)}")

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    png = out / f"bench-{args.line}.png"
    plot_error = plot(png, rec.rtt, sizes, title)
    results = {
        "kernel": args.kernel,
        "line": args.line,
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "host": {"machine": platform.machine(), "cpus": os.cpu_count()},
        "vcpus": 1,
        "quick": quick,
        "sizes": rec.sizes,
        "rounds": len(rounds),
        "figures": {
            name: {
                "unit": fig.units[name],
                "higher_is_better": name in fig.higher_better,
                "per_round": {d: {str(r): finite_or_none(v) for r, v in sorted(by.items())}
                              for d, by in fig.per_round[name].items()},
            }
            for name in fig.per_round
        },
        "module_size": sizes,
        "ratios": {
            **{n: {"median": st[0], "min": st[1], "max": st[2]} for n, st in ratios.items()},
            **{n: None for n in no_ratio},
        },
    }
    json_path = out / f"results-{args.line}.json"
    json_path.write_text(json.dumps(results, indent=1, allow_nan=False) + "\n")
    print(f"bench: results in {json_path}")
    if plot_error:
        print(f"bench: no plot: {plot_error}")
    else:
        print(f"bench: plot in {png}")
    for name, st in ratios.items():
        print(f"ratio {name} {st[0]:.2f}")

    # Checks: that everything was measured, as much as asked, never how fast.
    passed = failed = 0

    def check(name, ok, why=""):
        nonlocal passed, failed
        if ok:
            passed += 1
            print(f"PASS {name}")
        else:
            failed += 1
            print(f"FAIL {name}: {why}")

    z = rec.sizes or {}
    check("bench-sizes-record", set(z) == set(SIZES), f"sizes record {z or 'missing'}")
    check("bench-rounds", rounds == list(range(z.get("rounds", -1))),
          f"rounds {rounds}, want 0..{z.get('rounds')}")
    expected = (
        [f"keepalive_{p}" for p, _ in PERCENTILES]
        + [f"floor_{p}" for p, _ in PERCENTILES]
        + [f"keepalive_{p}_overhead" for p in OVERHEADS]
        + [f"tput_{c}" for c in TPUT_CONFIGS]
        + ["bind_p50", "insmod_to_ready", "memory_per_device", "memory_per_extra_device", "coresize"]
    )
    missing = []
    for name in expected:
        by = fig.per_round.get(name, {})
        for d in DRIVERS:
            got = by.get(d, {})
            lacking = [r for r in rounds if r not in got or not math.isfinite(got[r])]
            if lacking or not rounds:
                missing.append(f"{name} ({d}, rounds {lacking or 'none'})")
    check("bench-figures", not missing, "missing: " + ", ".join(missing))
    short = [f"rtt {who} round {r}: {len(v)}" for (who, r), v in sorted(rec.rtt.items())
             if len(v) != z.get("calls")]
    short += [f"bind {who} round {r}: {len(v)}" for (who, r), v in sorted(rec.bind.items())
              if len(v) != z.get("binds")]
    check("bench-counts", not short and bool(z),
          f"want {z.get('calls')} calls and {z.get('binds')} binds per record: " + ", ".join(short))
    check("bench-plot", plot_error is None, plot_error or "")
    print(f"{passed} passed, {failed} failed")
    return 0 if failed == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
