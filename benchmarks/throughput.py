"""Throughput benchmark: blockwise detect vs the I/O floor, numpy and OTB MAD.

For each size (pairs made by ``benchmarks/make_large.py``), in one run and with the
same files, page cache warmed first, every measurement in a fresh child process
timed by ``/usr/bin/time`` (wall seconds and peak resident set size from the OS), in
``--repeat`` rounds (default 3) of every row once; reported are the median wall time,
the median ratio to the I/O floor of the same round, and the largest RSS:

1. ``io-floor``: read both inputs fully with rasterio (``DatasetReader.read()``).
2. ``detect cva``: ``borderwatch -q detect --method cva --threshold otsu --no-align
   --no-classify --block-size 1024 --out ...`` end to end (single pass, statistics
   from the default 1 Mpx sample, GeoJSON with input hashes).
3. ``detect combined``: ``detect --method combined --block-size 1024``, the unsupervised
   default for imagery coarser than 2.5 m or without RGB (KI threshold,
   co-registration, classification): the one engine, block by block, writing what
   ``detect`` writes (GeoJSON, ``.qml``, reviews re-applied).
3b. ``detect auto (default)``: the same with every default; on these 1 m RGB+NIR pairs
   ``auto`` is the structure-change network, which resamples every block to its
   0.5 m (four times the pixels) before onnxruntime applies it: the ``s/km2`` column
   is the issue's CPU inference budget (at most 10 s per km2 at 0.5 m).
4. ``numpy cva+otsu``: whole arrays read into memory, ``borderwatch.methods.cva.cva`` and
   ``otsu_threshold`` (the in-memory reference; skipped when it cannot fit in RAM).
5. ``otb mad``: ``otbcli_MultivariateAlterationDetector`` on the same files, if
   installed.

Usage::

    python benchmarks/make_large.py --size 2048 4096 8192 16384
    python benchmarks/throughput.py --size 2048 4096 8192 16384
"""

from __future__ import annotations

import argparse
import datetime as _dt
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
#: Pixel size of the make_large.py pairs, metres (for s/km2).
PIXEL_M = 1.0
PY = sys.executable
BW = str(Path(PY).with_name("borderwatch"))
READ = "import rasterio,sys\nfor p in sys.argv[1:]:\n    rasterio.open(p).read()\n"
NUMPY = (
    "import rasterio,sys\n"
    "from borderwatch.methods.cva import cva\n"
    "from borderwatch.methods.thresholds import otsu_threshold\n"
    "b=rasterio.open(sys.argv[1]).read().astype('float32')\n"
    "a=rasterio.open(sys.argv[2]).read().astype('float32')\n"
    "import numpy as np\n"
    "s=cva(b,a,np.ones(b.shape[1:],bool))\n"
    "print(otsu_threshold(s))\n"
)


def timed(cmd: list[str], *, env: dict[str, str] | None = None) -> tuple[float, float, str]:
    """Run ``cmd`` under /usr/bin/time; return (wall s, peak RSS MiB, status)."""
    with tempfile.NamedTemporaryFile("r", suffix=".time") as tf:
        proc = subprocess.run(
            ["/usr/bin/time", "-f", "%e %M", "-o", tf.name, *cmd],
            capture_output=True,
            text=True,
            env=env,
        )
        wall, kb = tf.read().strip().splitlines()[-1].split()
    status = (
        "ok"
        if proc.returncode == 0
        else f"exit {proc.returncode}: " + (proc.stderr.strip().splitlines() or ["?"])[-1][:120]
    )
    return float(wall), float(kb) / 1024, status


def default_method() -> str:
    from borderwatch.engine import DetectParams

    return DetectParams().method


def mem_gib() -> float:
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30


def run_size(
    size: int, data: Path, out: Path, *, numpy_max: int, otb: bool, repeat: int
) -> list[dict]:
    b, a = data / f"before_{size}.tif", data / f"after_{size}.tif"
    if not (b.exists() and a.exists()):
        raise SystemExit(f"{b} missing: run benchmarks/make_large.py --size {size}")
    for p in (b, a):  # warm the page cache so every row sees the same state
        with open(p, "rb") as fh:
            while fh.read(1 << 24):
                pass
    plan: list[tuple[str, list[str] | None, str]] = []

    def add(name: str, cmd: list[str] | None, note: str = "") -> None:
        plan.append((name, cmd, note))

    add("io-floor", [PY, "-c", READ, str(b), str(a)])
    detect = [
        BW,
        "-q",
        "detect",
        "--before",
        str(b),
        "--after",
        str(a),
        "--block-size",
        "1024",
        "--overwrite",
    ]
    cva = ["--method", "cva", "--threshold", "otsu", "--no-align", "--no-classify"]
    add("detect cva", [*detect, *cva, "--out", str(out / f"cva_{size}.geojson")])
    add(
        "detect combined, blocks",
        [*detect, "--method", "combined", "--out", str(out / f"combined_{size}.geojson")],
    )
    dm = default_method()
    add(
        f"detect {dm} (default), blocks",
        [*detect, "--out", str(out / f"default_{size}.geojson")],
    )
    if size <= numpy_max:
        add("numpy cva+otsu", [PY, "-c", NUMPY, str(b), str(a)])
    else:
        add("numpy cva+otsu", None, f"not run: whole arrays need > {mem_gib():.0f} GiB RAM")
    mad = out / f"otb_mad_{size}.tif"
    if otb:
        add(
            "otb mad",
            [
                "otbcli_MultivariateAlterationDetector",
                "-in1",
                str(b),
                "-in2",
                str(a),
                "-out",
                str(mad),
                "float",
                "-ram",
                "256",
            ],
        )
    else:
        add("otb mad", None, "not run: otbcli_MultivariateAlterationDetector not installed")
    rows = measure(size, plan, repeat=repeat)
    mad.unlink(missing_ok=True)
    return rows


def measure(size: int, plan: list[tuple[str, list[str] | None, str]], *, repeat: int) -> list[dict]:
    """Run every row of ``plan`` once per round, ``repeat`` rounds; one result per row.

    Rounds rather than one row's runs back to back: a machine that slows down for a
    while then slows every row alike. ``ratio`` is the median over rounds of the row's
    time over the I/O floor's time in the same round (a paired comparison).
    """
    runs: dict[str, list[tuple[float, float, str]]] = {n: [] for n, c, _ in plan if c}
    loads: dict[str, float] = {}
    for k in range(repeat):
        for name, cmd, _ in plan:
            if cmd is None:
                continue
            loads.setdefault(name, os.getloadavg()[0])  # other work skews the timings
            runs[name].append(timed(cmd))
            w, r, st = runs[name][-1]
            print(f"{size:6d} round {k + 1} {name:34s} {w:7.2f} s {r:6.0f} MiB {st}", flush=True)
    floor = [w for w, _, _ in runs["io-floor"]]
    rows = []
    for name, cmd, note in plan:
        if cmd is None:
            rows.append({"size": size, "name": name, "wall": None, "status": note})
            continue
        walls = [w for w, _, _ in runs[name]]
        rows.append(
            {
                "size": size,
                "name": name,
                "wall": statistics.median(walls),  # one slow or fast run does not decide
                "spread": (min(walls), max(walls)),
                "ratio": statistics.median(w / f for w, f in zip(walls, floor, strict=True)),
                "rss": max(r for _, r, _ in runs[name]),
                "status": next((st for _, _, st in runs[name] if st != "ok"), "ok"),
                "load": loads[name],
            }
        )
    return rows


def table(rows: list[dict]) -> str:
    lines = [
        "| size (px) | what | wall (s) | runs (s) | Mpx/s | s/km2 | x I/O floor "
        "| peak RSS (MiB) | load | status |",
        "|---:|---|---:|---|---:|---:|---:|---:|---:|---|",
    ]
    for r in rows:
        if r["wall"] is None or r["status"] != "ok":
            lines.append(
                f"| {r['size']} | {r['name']} | - | - | - | - | - | - | - | {r['status']} |"
            )
            continue
        mpx = r["size"] ** 2 / 1e6 / r["wall"]
        km2 = (r["size"] * PIXEL_M) ** 2 / 1e6
        ratio = r["ratio"]
        lo, hi = r["spread"]
        lines.append(
            f"| {r['size']} | {r['name']} | {r['wall']:.2f} | {lo:.2f}-{hi:.2f} | {mpx:.1f} "
            f"| {r['wall'] / km2:.1f} | {ratio:.2f} "
            f"| {r['rss']:.0f} | {r['load']:.1f} | {r['status']} |"
        )
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size", type=int, nargs="+", default=[2048, 4096, 8192])
    ap.add_argument("--data", type=Path, default=HERE / "data")
    ap.add_argument(
        "--numpy-max", type=int, default=8192, help="largest size for the whole-array reference"
    )
    ap.add_argument("--results", type=Path, default=HERE / "results" / "throughput.md")
    ap.add_argument(
        "--repeat", type=int, default=3, help="runs per row; the median wall time is reported"
    )
    args = ap.parse_args()
    if args.repeat < 1:
        ap.error("--repeat must be at least 1")
    otb = shutil.which("otbcli_MultivariateAlterationDetector") is not None
    rows: list[dict] = []
    with tempfile.TemporaryDirectory(prefix="bw-bench-", dir=args.data) as tmp:
        for size in args.size:
            rows += run_size(
                size, args.data, Path(tmp), numpy_max=args.numpy_max, otb=otb, repeat=args.repeat
            )
    import rasterio

    import borderwatch

    head = (
        f"# Throughput: blockwise detect vs I/O floor\n\n"
        f"Run {_dt.datetime.now(_dt.UTC):%Y-%m-%d %H:%M} UTC with "
        f"`python benchmarks/throughput.py --size {' '.join(map(str, args.size))} "
        f"--repeat {args.repeat}`; "
        f"borderwatch {borderwatch.__version__}, Python {platform.python_version()}, "
        f"rasterio {rasterio.__version__}, GDAL {rasterio.__gdal_version__}; "
        f"{os.cpu_count()} CPUs, {mem_gib():.0f} GiB RAM ({platform.machine()}).\n\n"
        "Inputs: `benchmarks/make_large.py` pairs, 4-band uint16, 512 px tiles, DEFLATE. "
        "Every row is a fresh child process with a warm page cache; wall time and peak "
        "resident memory from `/usr/bin/time`. The rows run in rounds (each row once per "
        "round), so a slow spell of the machine hits every row alike; `wall` is the "
        "median of a row's runs (all listed), `x I/O floor` the median over rounds of "
        "the row's time over the floor's time in the same round, peak RSS the largest. "
        "Mpx/s counts pixels of one date, s/km2 the ground area (1 m pixels). `load` is "
        "the 1-minute load average before the row's first run (2 CPUs: above 2, other "
        "work was competing and timings are pessimistic).\n\n"
    )
    args.results.parent.mkdir(parents=True, exist_ok=True)
    args.results.write_text(head + table(rows) + "\n", encoding="utf-8")
    print(f"wrote {args.results}")


if __name__ == "__main__":
    main()
