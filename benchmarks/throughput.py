"""Throughput benchmark: blockwise detect vs the I/O floor, numpy and OTB MAD.

For each size (pairs made by ``benchmarks/make_large.py``), in one run and with the
same files, page cache warmed first, every measurement in a fresh child process
timed by ``/usr/bin/time`` (wall seconds and peak resident set size from the OS), each
``--repeat`` times (default 3; the median wall time and the largest RSS are reported):

1. ``io-floor``: read both inputs fully with rasterio (``DatasetReader.read()``).
2. ``detect cva``: ``borderwatch -q detect --method cva --threshold otsu --no-align
   --no-classify --block-size 1024 --out ...`` end to end (single pass, statistics
   from the default 1 Mpx sample, GeoJSON with input hashes).
3. ``detect <default>``: ``detect --block-size 1024`` with every default (method,
   KI threshold, co-registration, classification), block by block; at 2048 px also
   the in-memory path.
4. ``numpy cva+otsu``: whole arrays read into memory, ``borderwatch.change.cva`` and
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
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
PY = sys.executable
BW = str(Path(PY).with_name("borderwatch"))
READ = "import rasterio,sys\nfor p in sys.argv[1:]:\n    rasterio.open(p).read()\n"
NUMPY = (
    "import rasterio,sys\n"
    "from borderwatch.change import cva, otsu_threshold\n"
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
    from borderwatch.pipeline import DetectParams

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
    rows = []

    def add(name: str, cmd: list[str] | None, note: str = "") -> None:
        if cmd is None:
            rows.append(
                {
                    "size": size,
                    "name": name,
                    "wall": None,
                    "spread": None,
                    "rss": None,
                    "status": note,
                    "load": None,
                }
            )
            return
        load = os.getloadavg()[0]  # other work on the machine skews the timings
        runs = [timed(cmd) for _ in range(repeat)]
        walls = sorted(w for w, _, _ in runs)
        wall = walls[len(walls) // 2]  # the median: one slow or fast run does not decide
        rss = max(r for _, r, _ in runs)
        status = next((st for _, _, st in runs if st != "ok"), "ok")
        rows.append(
            {
                "size": size,
                "name": name,
                "wall": wall,
                "spread": (walls[0], walls[-1]),
                "rss": rss,
                "status": status,
                "load": load,
            }
        )
        print(f"{size:6d} {name:22s} {wall:7.2f} s {rss:8.0f} MiB {status} {walls}", flush=True)

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
    dm = default_method()
    add(
        f"detect {dm} (default), blocks",
        [*detect, "--out", str(out / f"default_{size}.geojson")],
    )
    if size <= 2048:  # the in-memory path (with co-registration and classification)
        add(
            f"detect {dm} (default), in memory",
            [
                BW,
                "-q",
                "detect",
                "--before",
                str(b),
                "--after",
                str(a),
                "--overwrite",
                "--method",
                dm,
                "--out",
                str(out / f"default_mem_{size}.geojson"),
            ],
        )
    if size <= numpy_max:
        add("numpy cva+otsu", [PY, "-c", NUMPY, str(b), str(a)])
    else:
        add("numpy cva+otsu", None, f"not run: whole arrays need > {mem_gib():.0f} GiB RAM")
    if otb:
        mad = out / f"otb_mad_{size}.tif"
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
        mad.unlink(missing_ok=True)
    else:
        add("otb mad", None, "not run: otbcli_MultivariateAlterationDetector not installed")
    return rows


def table(rows: list[dict]) -> str:
    floors = {r["size"]: r["wall"] for r in rows if r["name"] == "io-floor"}
    lines = [
        "| size (px) | what | wall (s) | runs (s) | Mpx/s | x I/O floor | peak RSS (MiB) "
        "| load | status |",
        "|---:|---|---:|---|---:|---:|---:|---:|---|",
    ]
    for r in rows:
        if r["wall"] is None or r["status"] != "ok":
            lines.append(f"| {r['size']} | {r['name']} | - | - | - | - | - | - | {r['status']} |")
            continue
        mpx = r["size"] ** 2 / 1e6 / r["wall"]
        ratio = r["wall"] / floors[r["size"]]
        lo, hi = r["spread"]
        lines.append(
            f"| {r['size']} | {r['name']} | {r['wall']:.2f} | {lo:.2f}-{hi:.2f} | {mpx:.1f} "
            f"| {ratio:.2f} "
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
        "resident memory from `/usr/bin/time`; `wall` is the median of the runs (all "
        "listed), peak RSS the largest. Mpx/s counts pixels of one date. `load` is "
        "the 1-minute load average just before the row (2 CPUs: above 2, other work was "
        "competing and timings are pessimistic).\n\n"
    )
    args.results.parent.mkdir(parents=True, exist_ok=True)
    args.results.write_text(head + table(rows) + "\n", encoding="utf-8")
    print(f"wrote {args.results}")


if __name__ == "__main__":
    main()
