"""No half-written output: SIGINT, SIGKILL, a full disk, read-only folders, GDAL errors.

The packet is built in a temporary folder beside its destination and renamed into
place when complete (borderwatch.products.export.atomic_folder), so a run stopped at
any point leaves the complete packet or none, and the next run at that destination
removes what the stopped one left.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pyogrio
import pytest
from click.testing import CliRunner

from borderwatch.cli import main
from borderwatch.errors import OutputExistsError
from borderwatch.products.export import atomic_folder, remove_stale
from borderwatch.products.manifest import unlisted_files, verify_packet
from borderwatch.sample_data import sample_tiles_dir

#: Run ``borderwatch demo`` with MODULE.ATTR replaced by a function that first sends
#: this process SIGNAL: the signal arrives at a known point of the writing, no race.
KILLER = """
import importlib, os, signal, sys
name, module, attr, out = sys.argv[1:5]
mod = importlib.import_module(module)
real = getattr(mod, attr)
def hooked(*args, **kwargs):
    os.kill(os.getpid(), getattr(signal, name))
    return real(*args, **kwargs)
setattr(mod, attr, hooked)
from borderwatch.cli import main
from borderwatch.errors import OutputExistsError
main(["demo", "--out-dir", out, *sys.argv[5:]], prog_name="borderwatch")
"""


def invoke(*args: str):
    return CliRunner().invoke(main, list(args))


def one_line_error(result) -> str:
    assert result.exit_code == 2, result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("borderwatch: error: "), result.output
    return lines[0]


def temporaries(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.startswith("."))


def kill_demo(sig: str, module: str, attr: str, out: Path, *extra: str) -> int:
    proc = subprocess.run(
        [sys.executable, "-c", KILLER, sig, module, attr, str(out), *extra],
        capture_output=True,
        text=True,
        timeout=300,
        # a home of its own: onnxruntime keeps a device id under ~/.cache, which is
        # not a packet temporary
        env={**os.environ, "HOME": str(out.parent.parent / f"{out.parent.name}-home")},
    )
    return proc.returncode


@pytest.mark.slow
@pytest.mark.parametrize(
    ("sig", "module", "attr"),
    [
        ("SIGINT", "borderwatch.products.evidence", "_write_png"),  # first chip
        ("SIGINT", "borderwatch.products.evidence", "write_manifest"),
        ("SIGKILL", "borderwatch.products.write", "write_gpkg"),  # layer inside the packet
        ("SIGKILL", "borderwatch.products.evidence", "append_entry"),  # just before the rename
    ],
)
def test_signal_while_writing_leaves_no_packet(tmp_path, sig, module, attr):
    out = tmp_path / "demo"
    rc = kill_demo(sig, module, attr, out)
    if sig == "SIGKILL":
        assert rc == -signal.SIGKILL
    else:
        assert rc != 0  # click turns KeyboardInterrupt into "Aborted!", exit 1
    assert not out.exists()  # no packet folder at all
    if sig == "SIGINT":
        assert temporaries(tmp_path) == []  # the interrupted run cleaned up after itself
        return
    assert [n for n in temporaries(tmp_path) if n.startswith(".demo.partial-")]
    # The next run at that destination writes the packet and removes what the killed one left.
    r = invoke("demo", "--out-dir", str(out))
    assert r.exit_code == 0, r.output
    assert verify_packet(out, inputs=False).ok
    assert temporaries(tmp_path) == []
    assert not [p for p in out.rglob(".*")]


@pytest.mark.slow
def test_kill_during_overwrite_keeps_the_old_packet(tmp_path):
    out = tmp_path / "demo"
    assert invoke("demo", "--out-dir", str(out)).exit_code == 0
    manifest = (out / "manifest.json").read_bytes()
    rc = kill_demo("SIGKILL", "borderwatch.products.evidence", "write_manifest", out, "--overwrite")
    assert rc == -signal.SIGKILL
    assert (out / "manifest.json").read_bytes() == manifest  # the old packet, untouched
    assert verify_packet(out, inputs=False).ok


def _listed_packet(dest: Path, *names: str) -> None:
    """A minimal borderwatch packet whose manifest lists ``names`` (written as files)."""
    dest.mkdir()
    for name in names:
        (dest / name).write_text("old")
    files = [{"path": n, "in_packet": True, "role": "output", "sha256": "0" * 64} for n in names]
    custody = {"prev_sha256": "0" * 64, "entry": {}}
    doc = {"format": "borderwatch-manifest/2", "files": files, "custody": custody}
    (dest / "manifest.json").write_text(json.dumps(doc))
    (dest / "custody.jsonl").write_text("{}\n")


def test_atomic_folder_replaces_only_when_complete(tmp_path):
    dest = tmp_path / "packet"
    _listed_packet(dest, "old.txt")
    before = sorted(p.name for p in dest.iterdir())
    with pytest.raises(KeyError), atomic_folder(dest, overwrite=True) as stage:
        (stage / "new.txt").write_text("new")
        raise KeyError("stopped")
    assert sorted(p.name for p in dest.iterdir()) == before and temporaries(tmp_path) == []
    with atomic_folder(dest, overwrite=True) as stage:
        (stage / "new.txt").write_text("new")
    assert [p.name for p in dest.iterdir()] == ["new.txt"] and temporaries(tmp_path) == []


def test_overwrite_refuses_a_folder_that_is_not_only_its_packet(tmp_path, no_detection):
    precious = tmp_path / "precious"
    precious.mkdir()
    (precious / "thesis.docx").write_text("x")
    tiles = sample_tiles_dir()
    pair = ["--before", str(tiles / "before.tif"), "--after", str(tiles / "after.tif")]
    line = one_line_error(invoke("detect", *pair, "--evidence", str(precious), "--overwrite"))
    assert f"{precious}: --overwrite replaces only an empty folder or a borderwatch packet" in line
    assert line.endswith("does not list: thesis.docx; move them away or choose another folder")
    line = one_line_error(invoke("demo", "--out-dir", str(precious), "--overwrite"))
    assert "thesis.docx" in line
    assert (precious / "thesis.docx").read_text() == "x"
    # A packet with files its manifest does not list: the first few are named.
    packet = tmp_path / "packet"
    _listed_packet(packet, "report.html")
    for name in ("a.txt", "b.txt", "c.txt", "d.txt"):
        (packet / name).write_text("mine")
    (packet / "notes").mkdir()
    (packet / "notes" / "e.txt").write_text("mine")
    line = one_line_error(invoke("demo", "--out-dir", str(packet), "--overwrite"))
    assert "does not list: a.txt, b.txt, c.txt and 2 more;" in line
    assert unlisted_files(packet) == ["a.txt", "b.txt", "c.txt", "d.txt", "notes/e.txt"]
    assert (packet / "notes" / "e.txt").exists() and temporaries(tmp_path) == []


def test_overwrite_refuses_files_added_while_writing(tmp_path):
    dest = tmp_path / "packet"
    _listed_packet(dest, "old.txt")
    with (
        pytest.raises(OutputExistsError, match="late.txt"),
        atomic_folder(dest, overwrite=True) as stage,
    ):
        (stage / "new.txt").write_text("new")
        (dest / "late.txt").write_text("added meanwhile")
    assert (dest / "late.txt").exists() and (dest / "old.txt").exists()
    assert temporaries(tmp_path) == []


def test_overwrite_replaces_a_packet_and_an_empty_folder(tmp_path):
    out = tmp_path / "demo"
    out.mkdir()
    assert invoke("demo", "--out-dir", str(out), "--overwrite").exit_code == 0
    r = invoke("demo", "--out-dir", str(out), "--overwrite")
    assert r.exit_code == 0, r.output
    assert verify_packet(out, inputs=False).ok


def test_output_folder_where_no_file_can_be_created_is_refused_before_work(
    no_detection, tmp_path, monkeypatch
):
    if not Path("/proc").is_dir():
        pytest.skip("no /proc on this system")
    tiles = sample_tiles_dir()
    pair = ["--before", str(tiles / "before.tif"), "--after", str(tiles / "after.tif")]
    line = one_line_error(invoke("detect", *pair, "--out", "/proc/x.gpkg"))
    assert line.startswith("borderwatch: error: /proc/x.gpkg: ")
    # Where os.access says yes (root, /proc): the probe file is what fails.
    monkeypatch.setattr(os, "access", lambda *a, **k: True)
    line = one_line_error(invoke("detect", *pair, "--out", "/proc/x.gpkg"))
    assert line.startswith("borderwatch: error: /proc/x.gpkg: cannot create a file in folder /proc")
    line = one_line_error(invoke("demo", "--out-dir", "/proc/demo"))
    assert "/proc/demo: cannot create a file in folder /proc" in line


def test_remove_stale_keeps_live_writers(tmp_path):
    dest = tmp_path / "out.gpkg"
    # The id of a process that has exited (and been reaped).
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], stdout=-1)
    pid = int(dead.stdout)
    gone = tmp_path / f".out.gpkg.pid-{pid}-abc.part"
    gone_journal = tmp_path / f".out.gpkg.pid-{pid}-abc.part-journal"
    folder = tmp_path / f".out.gpkg.partial-{pid}-xyz"
    mine = tmp_path / f".out.gpkg.pid-{os.getpid()}-def.part"
    other = tmp_path / ".other.gpkg.pid-1-abc.part"
    for p in (gone, gone_journal, mine, other):
        p.write_text("x")
    folder.mkdir()
    (folder / "chips").mkdir()
    removed = remove_stale(dest)
    assert sorted(removed) == sorted([gone, gone_journal, folder])
    assert mine.exists() and other.exists() and not folder.exists()


@pytest.fixture()
def tmpfs(tmp_path):
    """Mount a tmpfs at a fresh folder: ``tmpfs("size=200k")``; unmounted afterwards."""
    mounted = []

    def mount(options: str) -> Path:
        where = tmp_path / f"mnt{len(mounted)}"
        where.mkdir()
        if os.geteuid() != 0 or shutil.which("mount") is None:
            pytest.skip("mounting a tmpfs needs root and mount(8)")
        r = subprocess.run(
            ["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(where)], capture_output=True
        )
        if r.returncode != 0:
            pytest.skip(f"cannot mount a tmpfs here: {r.stderr.decode().strip()}")
        mounted.append(where)
        return where

    yield mount
    for where in mounted:
        subprocess.run(["umount", str(where)], check=True)


def test_full_disk_fails_with_one_line_and_leaves_nothing(tmpfs):
    disk = tmpfs("size=200k")
    line = one_line_error(invoke("demo", "--out-dir", str(disk / "demo")))
    # The file that did not fit, named at its place in the packet (not the temporary folder).
    assert line.startswith(f"borderwatch: error: {disk / 'demo'}/")
    assert line.endswith(": cannot write (disk full); nothing was left behind")
    assert os.listdir(disk) == []


@pytest.fixture()
def no_detection(monkeypatch):
    """Make any detection fail loudly: the command must stop before the work starts."""
    import borderwatch.cli.demo_cmd as demo_cmd
    import borderwatch.cli.detect_cmd as detect_cmd

    def no_work(*args, **kwargs):
        raise AssertionError("detection started")

    monkeypatch.setattr(demo_cmd, "detect", no_work)
    monkeypatch.setattr(detect_cmd, "detect", no_work)


def test_read_only_folder_is_refused_before_work(tmpfs, no_detection, tmp_path):
    ro = tmpfs("ro,size=64k")
    line = one_line_error(invoke("demo", "--out-dir", str(ro / "demo")))
    assert f"{ro / 'demo'}: folder {ro} is on a read-only file system" in line
    tiles = sample_tiles_dir()
    pair = ["--before", str(tiles / "before.tif"), "--after", str(tiles / "after.tif")]
    line = one_line_error(invoke("detect", *pair, "--out", str(ro / "d.gpkg")))
    assert f"{ro / 'd.gpkg'}: folder {ro} is on a read-only file system" in line
    line = one_line_error(
        invoke("detect", *pair, "--out", str(tmp_path / "d.gpkg"), "--evidence", str(ro / "e"))
    )
    assert "read-only file system" in line and str(ro / "e") in line
    assert os.listdir(ro) == [] and not (tmp_path / "d.gpkg").exists()


def test_gdal_write_error_is_one_line_and_leaves_nothing(tmp_path, monkeypatch):
    def failing(*args, **kwargs):
        raise pyogrio.errors.DataSourceError("sqlite3_exec(CREATE TABLE) failed: disk I/O error")

    monkeypatch.setattr(pyogrio, "write_dataframe", failing)
    tiles = sample_tiles_dir()
    pair = ["--before", str(tiles / "before.tif"), "--after", str(tiles / "after.tif")]
    out = tmp_path / "layers" / "d.gpkg"
    out.parent.mkdir()
    line = one_line_error(
        invoke("detect", *pair, "--out", str(out), "--reviews", str(tmp_path / "s"))
    )
    assert f"{out}: cannot write (sqlite3_exec(CREATE TABLE) failed: disk I/O error)" in line
    assert os.listdir(out.parent) == []
    line = one_line_error(invoke("demo", "--out-dir", str(tmp_path / "demo")))
    want = f"{tmp_path / 'demo' / 'new_structures.gpkg'}: cannot write (sqlite3_exec"
    assert want in line and ".partial-" not in line
    assert not (tmp_path / "demo").exists()
    assert temporaries(tmp_path) == []


def test_write_evidence_refuses_layers_inside_the_packet(analyst_outputs, tmp_path):
    from borderwatch.errors import InputError
    from borderwatch.products.evidence import write_evidence

    folder = tmp_path / "packet"
    with pytest.raises(InputError, match="lies in the packet folder"):
        write_evidence(
            analyst_outputs.run,
            folder,
            detections=analyst_outputs.products.detections,
            other_outputs=[folder / "d.gpkg"],
        )
    assert os.listdir(tmp_path) == []
