"""``borderwatch batch`` from the command line: names, per-job failures, progress, logging."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner
from test_engine import make_pair

from borderwatch.cli import main

BEFORE, AFTER = "before_20190614.tif", "after_20210902.tif"


@pytest.fixture(autouse=True)
def _no_home_store(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Keep every run away from the user's review store."""
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg"))


@pytest.fixture(scope="module")
def cities(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Two 'cities' whose before/after files have the same names: alpha/ and bravo/."""
    root = tmp_path_factory.mktemp("cities")
    for seed, city in enumerate(("alpha", "bravo"), start=1):
        (root / city).mkdir()
        make_pair(root / city, rows=300, cols=360, seed=seed)
    return root


def pair(root: Path, city: str) -> list[str]:
    return ["--pair", str(root / city / BEFORE), str(root / city / AFTER)]


def run(*args: str):
    return CliRunner().invoke(main, list(args))


def test_equal_stems_get_names_with_their_city_folder(cities: Path, tmp_path: Path) -> None:
    out = tmp_path / "reports"
    res = run("batch", *pair(cities, "alpha"), *pair(cities, "bravo"), "--out-dir", str(out))
    assert res.exit_code == 0, res.output
    summary = json.loads((out / "batch.json").read_text())
    names = [j["name"] for j in summary["jobs"]]
    assert names == [
        "overlap__alpha__before_20190614__after_20210902",
        "overlap__bravo__before_20190614__after_20210902",
    ]
    assert [j["status"] for j in summary["jobs"]] == ["ok", "ok"]
    assert summary["counts"] == {"ok": 2, "no-overlap": 0, "error": 0}
    for j in summary["jobs"]:
        report = json.loads((out / j["report"]).read_text())
        assert j["report"] == f"{j['name']}.geojson"
        assert len(report["features"]) == j["detections"] >= 1
        # The reviewed table's figures (none reviewed here), not the engine's raw count.
        assert (j["confirmed"], j["rejected"], j["unreviewed"]) == (0, 0, j["detections"])
        areas = [f["properties"]["area_m2"] for f in report["features"]]
        assert j["area_m2_excluding_rejected"] == pytest.approx(sum(areas), rel=1e-6)
        assert "total_area_m2" not in j
        assert report["borderwatch"]["summary"]["detections"] == j["detections"]
    assert "job 1/2 overlap__alpha__" in res.stdout and "job 2/2 overlap__bravo__" in res.stdout


def test_batch_redact_leaves_no_path_in_batch_json(cities: Path, tmp_path: Path) -> None:
    out = tmp_path / "reports"
    res = run("batch", *pair(cities, "alpha"), "--out-dir", str(out), "--redact")
    assert res.exit_code == 0, res.output
    text = (out / "batch.json").read_text()
    assert str(cities) not in text and str(tmp_path) not in text
    (job,) = json.loads(text)["jobs"]
    assert (job["before"], job["after"], job["status"]) == ([BEFORE], [AFTER], "ok")
    res = run("batch", *pair(cities, "alpha"), "--out-dir", str(out), "--overwrite")
    assert res.exit_code == 0, res.output
    assert str(cities) in (out / "batch.json").read_text()  # not redacted without --redact


def test_batch_overwrite_refuses_an_evidence_folder_with_other_files(
    cities: Path, tmp_path: Path
) -> None:
    out = tmp_path / "reports"
    res = run("batch", *pair(cities, "alpha"), "--out-dir", str(out), "--evidence")
    assert res.exit_code == 0, res.output
    (packet,) = out.glob("*.evidence")
    (packet / "thesis.docx").write_text("x")
    res = run("batch", *pair(cities, "alpha"), "--out-dir", str(out), "--evidence", "--overwrite")
    assert res.exit_code == 2, res.output
    assert "does not list: thesis.docx" in res.output and "job 1/1" not in res.output
    assert (packet / "thesis.docx").exists()


def test_missing_file_fails_its_job_only(cities: Path, tmp_path: Path) -> None:
    jobs = tmp_path / "jobs.csv"
    missing = cities / "bravo" / "after_2099.tif"
    jobs.write_text(
        "aoi,before,after\n"
        f",{cities / 'alpha' / BEFORE},{cities / 'alpha' / AFTER}\n"
        f",{cities / 'bravo' / BEFORE},{missing}\n",
        encoding="utf-8",
    )
    out = tmp_path / "reports"
    res = run("batch", "--jobs", str(jobs), "--out-dir", str(out))
    assert res.exit_code == 1, res.output
    summary = json.loads((out / "batch.json").read_text())
    ok, bad = summary["jobs"]
    assert (ok["status"], bad["status"]) == ("ok", "error")
    assert (out / ok["report"]).is_file()
    assert "report" not in bad
    assert bad["reason"] == f"{missing}: no such file"
    assert bad["source"] == f"{jobs}:3"
    assert summary["counts"] == {"ok": 1, "no-overlap": 0, "error": 1}
    # The one error line names the job: index, name and CSV line.
    (line,) = [x for x in res.stderr.splitlines() if "error" in x]
    assert line.startswith(f"borderwatch: job 2/2 {bad['name']} ({jobs}:3): error: {missing}")
    # ... printed once, not again in the closing list of jobs.
    assert (res.stdout + res.stderr).count(f"{missing}: no such file") == 1


def test_aoi_outside_a_pair_is_no_overlap_not_a_failure(cities: Path, tmp_path: Path) -> None:
    far = tmp_path / "far.geojson"
    far.write_text(
        json.dumps(
            {
                "type": "FeatureCollection",
                "features": [
                    {
                        "type": "Feature",
                        "properties": {"id": "far"},
                        "geometry": {
                            "type": "Polygon",
                            "coordinates": [[[10, 10], [10.01, 10], [10.01, 10.01], [10, 10]]],
                        },
                    }
                ],
            }
        ),
        encoding="utf-8",
    )
    out = tmp_path / "reports"
    res = run("batch", *pair(cities, "alpha"), "--aoi", str(far), "--out-dir", str(out))
    assert res.exit_code == 0, res.output
    (entry,) = json.loads((out / "batch.json").read_text())["jobs"]
    assert entry["status"] == "no-overlap" and "overlap" in entry["reason"]


def test_existing_report_is_refused_before_any_work(cities: Path, tmp_path: Path) -> None:
    out = tmp_path / "reports"
    out.mkdir()
    taken = out / "overlap__alpha__before_20190614__after_20210902.geojson"
    taken.write_text("{}")
    res = run("batch", *pair(cities, "alpha"), *pair(cities, "bravo"), "--out-dir", str(out))
    assert res.exit_code == 2
    assert f"{taken}: output exists" in res.stderr and "--overwrite" in res.stderr
    assert sorted(p.name for p in out.iterdir()) == [taken.name]  # nothing ran
    assert taken.read_text() == "{}"


def test_repeated_job_is_refused(cities: Path, tmp_path: Path) -> None:
    res = run(
        "batch", *pair(cities, "alpha"), *pair(cities, "alpha"), "--out-dir", str(tmp_path / "r")
    )
    assert res.exit_code == 2
    assert "--pair 2: repeats the job of --pair 1" in res.stderr
    assert not (tmp_path / "r").exists()


def test_job_file_errors_name_file_and_line(tmp_path: Path) -> None:
    jobs = tmp_path / "jobs.csv"
    jobs.write_text("aoi,before,after\n,b.tif,a.tif\nhelong,,a.tif\n", encoding="utf-8")
    res = run("batch", "--jobs", str(jobs), "--out-dir", str(tmp_path / "r"))
    assert res.exit_code == 2
    assert f"borderwatch: error: {jobs}:3: before and after must both be given" in res.stderr


def test_verbose_logs_borderwatch_stages_not_gdal(cities: Path, tmp_path: Path) -> None:
    out = tmp_path / "reports"
    res = run("-vv", "batch", *pair(cities, "alpha"), "--out-dir", str(out))
    assert res.exit_code == 0, res.output
    lines = res.stderr.splitlines()
    stages = [x for x in lines if " INFO borderwatch." in x]
    assert any("job 1/1 overlap__" in x and "px grid" in x for x in stages), res.stderr
    assert any("job 1/1 overlap__" in x and "done in" in x for x in stages)
    assert any(" DEBUG borderwatch." in x for x in lines)
    for noise in ("rasterio", "GDAL", "PROJ", "CPL", "fiona", "pyogrio"):
        assert not [x for x in lines if noise in x], noise
    # Without -v: no log lines at all; -q: nothing on stdout.
    quiet = run("-q", "batch", *pair(cities, "alpha"), "--out-dir", str(out), "--overwrite")
    assert quiet.exit_code == 0 and quiet.stdout == "" and quiet.stderr == ""
    plain = run("batch", *pair(cities, "alpha"), "--out-dir", str(out), "--overwrite")
    assert plain.exit_code == 0 and " INFO " not in plain.stderr


def test_terminal_shows_job_k_of_n(cities: Path, tmp_path: Path, monkeypatch) -> None:
    import borderwatch.progress as progress

    # CliRunner's stderr is no terminal; pretend it is one.
    monkeypatch.setattr(progress, "wants_progress", lambda *, quiet, stream=None: not quiet)
    args = ["batch", *pair(cities, "alpha"), *pair(cities, "bravo")]
    res = run(*args, "--out-dir", str(tmp_path / "r"))
    assert res.exit_code == 0, res.output
    assert "jobs" in res.stderr and "2/2" in res.stderr
    assert "job 1/2 overlap__alpha__" in res.stderr and "job 2/2 overlap__bravo__" in res.stderr
    quiet = run("-q", *args, "--out-dir", str(tmp_path / "r"), "--overwrite")
    assert quiet.exit_code == 0 and quiet.stderr == ""


def test_library_loggers_stay_at_warning_even_with_vv(capsys) -> None:
    import logging

    from borderwatch.cli.logs import configure_logging

    before = logging.getLogger("borderwatch").level
    restore = configure_logging(verbose=2, quiet=False)
    try:
        logging.getLogger("distributed").setLevel(logging.INFO)  # as it does when imported
        logging.getLogger("distributed.core").info("connection chatter")
        logging.getLogger("rasterio._env").debug("GDAL environment noise")
        logging.getLogger("borderwatch.stage").debug("own debug line")
        logging.getLogger("rasterio").warning("a real warning")
    finally:
        restore()
    err = capsys.readouterr().err
    assert "DEBUG borderwatch.stage: own debug line" in err
    assert "WARNING rasterio: a real warning" in err
    assert "chatter" not in err and "noise" not in err
    assert logging.getLogger("borderwatch").level == before
    logging.getLogger("borderwatch.stage").warning("after the run")
    assert "after the run" not in capsys.readouterr().err  # handler removed


def test_activity_shows_only_on_a_terminal() -> None:
    import io

    from borderwatch.progress import activity

    class Tty(io.StringIO):
        def isatty(self) -> bool:
            return True

    piped, tty = io.StringIO(), Tty()
    with activity("detecting", quiet=False, stream=piped):
        pass
    with activity("detecting", quiet=True, stream=tty):
        pass
    assert piped.getvalue() == "" and tty.getvalue() == ""
    with activity("detecting", quiet=False, stream=tty):
        pass
    assert "detecting" in tty.getvalue()


def test_job_file_pairs_name_the_job_files_column_and_credit(cities: Path, tmp_path: Path) -> None:
    """A refused row names the column ``allow_reversed`` and its line; a CSV credit: job file."""
    alpha = cities / "alpha"
    jobs = tmp_path / "jobs.csv"
    jobs.write_text(
        "aoi,before,after,credit\n"
        f",{alpha / BEFORE},{alpha / AFTER},Example Imaging 2021\n"
        f",{alpha / AFTER},{alpha / BEFORE},\n"
        f",{cities / 'bravo' / BEFORE},{cities / 'bravo' / BEFORE},\n",
        encoding="utf-8",
    )
    out = tmp_path / "reports"
    res = run("batch", "--jobs", str(jobs), "--out-dir", str(out), "--evidence")
    assert res.exit_code == 1, res.output
    ok, swapped, same = json.loads((out / "batch.json").read_text())["jobs"]
    assert (ok["status"], swapped["status"], same["status"]) == ("ok", "error", "error")
    assert swapped["reason"].endswith(
        "swap before and after, correct the dates, or set the column allow_reversed to yes "
        f"on {jobs}:3"
    )
    assert "later than after date" in swapped["reason"]
    assert same["reason"].endswith(
        f"give two different dates, or set the column allow_reversed to yes on {jobs}:4"
    )
    assert "--allow-reversed" not in res.stderr and "--before" not in res.stderr
    report = (out / f"{ok['name']}.evidence" / "report.html").read_text("utf-8")
    assert "Example Imaging 2021 (job file)" in report and "(option)" not in report
