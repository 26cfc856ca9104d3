"""Batch jobs on their own: job files, distinct names, one failure per job (borderwatch.jobs)."""

from __future__ import annotations

from pathlib import Path

import pytest

from borderwatch.errors import InputError, NoOverlapError, RasterReadError
from borderwatch.jobs import (
    MAX_NAME_BYTES,
    BatchJob,
    job_names,
    one_line,
    pair_jobs,
    read_jobs,
    refuse_duplicates,
    run_batch,
)

OSCD = "/data/oscd/Onera Satellite Change Detection dataset - Images"


def job(before: str | tuple[str, ...], after: str | tuple[str, ...], aoi: str | None = None):
    b = (before,) if isinstance(before, str) else before
    a = (after,) if isinstance(after, str) else after
    return BatchJob(aoi, b, a, "test")


# --------------------------------------------------------------------------- names
def test_oscd_cities_are_named_by_their_folder() -> None:
    jobs = [job(f"{OSCD}/{c}/imgs_1", f"{OSCD}/{c}/imgs_2") for c in ("beihai", "bercy", "paris")]
    assert job_names(jobs) == [
        "overlap__beihai__imgs_1__imgs_2",
        "overlap__bercy__imgs_1__imgs_2",
        "overlap__paris__imgs_1__imgs_2",
    ]


def test_band_files_are_named_by_their_folder() -> None:
    def bands(city: str, n: int) -> tuple[str, ...]:
        return tuple(f"{OSCD}/{city}/imgs_{n}/T49QCD_2016_B0{b}.tif" for b in (2, 3, 4, 8))

    jobs = [job(bands(c, 1), bands(c, 2), aoi="helong") for c in ("beihai", "rennes")]
    assert job_names(jobs) == [
        "helong__beihai__imgs_1__imgs_2",
        "helong__rennes__imgs_1__imgs_2",
    ]


def test_pairs_in_one_folder_keep_aoi_before_after() -> None:
    jobs = [
        job("/x/2019.tif", "/x/2022.tif", aoi="helong"),
        job("/x/2019.tif", "/x/2022.tif", aoi="tumen"),
        job("/x/2020.tif", "/x/2023.tif"),
    ]
    assert job_names(jobs) == ["helong__2019__2022", "tumen__2019__2022", "overlap__2020__2023"]


def test_a_job_alone_is_named_by_its_stems() -> None:
    assert job_names([job(f"{OSCD}/beihai/imgs_1", f"{OSCD}/beihai/imgs_2")]) == [
        "overlap__imgs_1__imgs_2"
    ]


def test_folders_every_job_shares_below_the_city_are_dropped() -> None:
    jobs = [job(f"/d/{c}/s2/l1c/a.tif", f"/d/{c}/s2/l1c/b.tif") for c in ("c1", "c2")]
    assert job_names(jobs) == ["overlap__c1__a__b", "overlap__c2__a__b"]


def test_dates_in_different_trees_keep_the_folders_that_differ() -> None:
    jobs = [job(f"/d/before/{c}.tif", f"/d/after/{c}.tif") for c in ("c1", "c2")]
    assert job_names(jobs) == ["overlap__before-c1__after-c1", "overlap__before-c2__after-c2"]


def test_aoi_files_and_features_are_told_apart() -> None:
    jobs = [
        job("/x/b.tif", "/x/a.tif", aoi="/aois/north/site.geojson"),
        job("/x/b.tif", "/x/a.tif", aoi="/aois/south/site.geojson"),
        job("/x/b.tif", "/x/a.tif", aoi="/aois/all.gpkg#depot-7"),
    ]
    names = job_names(jobs)
    assert names[0].startswith("north-site__") and names[1].startswith("south-site__")
    assert names[2].startswith("all-depot-7__")


def test_names_are_file_system_safe() -> None:
    jobs = [job("/x/my scene: (v2).tif", "/x/after?*.tif", aoi='we"ird|aoi')]
    (name,) = job_names(jobs)
    assert name == "we_ird_aoi__my_scene_v2__after"
    assert all(ch.isalnum() or ch in "._-" for ch in name)


def test_names_that_still_collide_get_a_numeric_suffix_ignoring_case() -> None:
    jobs = [
        job("/x/a b/p.tif", "/x/a b/q.tif"),
        job("/x/a_b/p.tif", "/x/a_b/q.tif"),
        job("/x/A_B/p.tif", "/x/A_B/q.tif"),
    ]
    assert job_names(jobs) == [
        "overlap__a_b__p__q",
        "overlap__a_b__p__q-2",
        "overlap__A_B__p__q-3",
    ]


def test_long_names_are_cut_and_stay_distinct() -> None:
    long = "S2A_MSIL1C_" + "x" * 300
    names = job_names([job(f"/x/{long}1.tif", "/x/a.tif"), job(f"/x/{long}2.tif", "/x/a.tif")])
    assert len(set(names)) == 2
    assert all(len(n.encode()) <= MAX_NAME_BYTES for n in names)


def test_relative_and_absolute_paths_compare_alike(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    jobs = [job("c1/b.tif", str(tmp_path / "c1" / "a.tif")), job("c2/b.tif", "c2/a.tif")]
    assert job_names(jobs) == ["overlap__c1__b__a", "overlap__c2__b__a"]


def test_repeated_job_is_refused_with_both_origins(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    jobs = [
        BatchJob(None, ("b.tif",), ("a.tif",), "jobs.csv:2"),
        BatchJob("helong", ("b.tif",), ("a.tif",), "jobs.csv:3"),
        BatchJob(None, (str(tmp_path / "b.tif"),), ("./a.tif",), "jobs.csv:4"),
    ]
    with pytest.raises(InputError, match=r"^jobs.csv:4: repeats the job of jobs.csv:2"):
        refuse_duplicates(jobs)
    refuse_duplicates(jobs[:2])  # another AOI is another job


def test_pair_jobs_cross_aois_and_say_where_they_came_from() -> None:
    jobs = pair_jobs([("b1.tif", "a1.tif"), (Path("b2.tif"), Path("a2.tif"))], ["helong", "tumen"])
    assert [(j.aoi, j.before, j.origin) for j in jobs] == [
        ("helong", ("b1.tif",), "--pair 1 --aoi helong"),
        ("tumen", ("b1.tif",), "--pair 1 --aoi tumen"),
        ("helong", ("b2.tif",), "--pair 2 --aoi helong"),
        ("tumen", ("b2.tif",), "--pair 2 --aoi tumen"),
    ]
    assert [j.origin for j in pair_jobs([("b", "a")])] == ["--pair 1"]


# --------------------------------------------------------------------------- job files
def test_read_jobs_gives_file_and_line_of_each_job(tmp_path: Path) -> None:
    path = tmp_path / "jobs.csv"
    path.write_text(
        "\ufeffaoi, before ,after,note\n"
        "helong,b.tif,a.tif,x\n"
        "\n"
        ',"b1.tif; b2.tif",a1.tif;a2.tif,"two\nlines"\n'
        ",c.tif,d.tif,\n",
        encoding="utf-8",
    )
    jobs = read_jobs(path)
    assert [(j.aoi, j.before, j.after) for j in jobs] == [
        ("helong", ("b.tif",), ("a.tif",)),
        (None, ("b1.tif", "b2.tif"), ("a1.tif", "a2.tif")),
        (None, ("c.tif",), ("d.tif",)),
    ]
    assert [j.origin for j in jobs] == [f"{path}:2", f"{path}:5", f"{path}:6"]


def test_read_jobs_errors_name_file_and_line(tmp_path: Path) -> None:
    path = tmp_path / "jobs.csv"
    path.write_text("aoi,before,after\n,b.tif,a.tif\nhelong,b.tif,\n", encoding="utf-8")
    with pytest.raises(InputError, match=rf"^{path}:3: before and after must both be given"):
        read_jobs(path)
    path.write_text("aoi,before\n,b.tif\n", encoding="utf-8")
    with pytest.raises(InputError, match=rf"^{path}:1: job file lacks column\(s\) after"):
        read_jobs(path)
    with pytest.raises(InputError, match=r"nope.csv: cannot read job file"):
        read_jobs(tmp_path / "nope.csv")


# --------------------------------------------------------------------------- running
def _batch(tmp_path: Path, workers: int):
    """Five jobs: ok, missing at prepare, no overlap, I/O error while running, ok."""
    jobs = [BatchJob(None, (f"b{i}.tif",), (f"a{i}.tif",), f"jobs.csv:{i + 1}") for i in range(5)]
    names = [f"job{i}" for i in range(5)]
    seen = []

    def prepare(ref):
        if ref.index == 2:
            raise RasterReadError("b1.tif: no such file")
        if ref.index == 3:
            raise NoOverlapError("helong is outside the pair")
        return ref.index

    def execute(item, ref):
        if item == 4:
            raise OSError("read failed\n  at block 3")
        return item * 10

    def write(value, ref):
        (tmp_path / f"{ref.name}.txt").write_text(str(value))
        return {"value": value}

    results = run_batch(
        jobs,
        names=names,
        prepare=prepare,
        execute=execute,
        write=write,
        workers=workers,
        on_result=seen.append,
    )
    return results, seen


@pytest.mark.parametrize("workers", [1, 3])
def test_a_failing_job_fails_alone(tmp_path: Path, workers: int) -> None:
    results, seen = _batch(tmp_path, workers)
    assert [r.status for r in results] == ["ok", "error", "no-overlap", "error", "ok"]
    assert [r.ref.index for r in results] == [1, 2, 3, 4, 5]
    assert sorted(r.ref.index for r in seen) == [1, 2, 3, 4, 5]
    assert results[1].reason == "b1.tif: no such file"
    assert results[3].reason == "OSError: read failed at block 3"  # one line
    assert results[3].label == "job 4/5 job3 (jobs.csv:4)"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["job0.txt", "job4.txt"]
    entry = results[1].record()
    assert entry["status"] == "error" and entry["source"] == "jobs.csv:2"
    assert entry["reason"] == "b1.tif: no such file" and "report" not in entry
    assert results[4].record()["value"] == 50


def test_a_bug_is_not_a_job_failure() -> None:
    def execute(item, ref):
        raise RuntimeError("bug")

    with pytest.raises(RuntimeError, match="bug"):
        run_batch(
            [BatchJob(None, ("b",), ("a",), "x")],
            names=["n"],
            prepare=lambda ref: 1,
            execute=execute,
            write=lambda v, ref: {},
        )


def test_one_line_adds_the_cause_that_names_the_file() -> None:
    try:
        try:
            raise ValueError("after.tif, band 1: IReadBlock failed")
        except ValueError as cause:
            raise OSError("Read failed. See previous exception for details.") from cause
    except OSError as exc:
        assert one_line(exc) == (
            "OSError: Read failed. See previous exception for details. "
            "(after.tif, band 1: IReadBlock failed)"
        )


def test_one_line() -> None:
    assert one_line(RasterReadError("x.tif: no\nsuch   file")) == "x.tif: no such file"
    assert one_line(OSError()) == "OSError"
    assert (
        one_line(FileNotFoundError(2, "No such file"))
        == "FileNotFoundError: [Errno 2] No such file"
    )
