"""Monitoring a stack: brackets, statuses, unassessable dates, the ledger, read-once, CSV errors."""

from __future__ import annotations

import contextlib
import json
from collections import defaultdict
from collections.abc import Iterator
from pathlib import Path

import geopandas as gpd
import numpy as np
import pyogrio
import pytest
import rasterio
import rasterio.io
import shapely
from click.testing import CliRunner

from borderwatch.cli import main
from borderwatch.errors import InputError
from borderwatch.io import Grid
from borderwatch.monitor import monitor, read_stack_csv
from borderwatch.monitor.track import (
    ONSET_SIMILAR,
    link,
    onset_similarity,
    onset_states,
    status_of,
)
from borderwatch.products.gpkg import read_layer_styles
from borderwatch.synthetic.pair import make_pair

DATES = ["2020-03-01", "2020-05-03", "2020-07-10", "2020-09-14", "2020-11-02", "2021-01-20"]
SIZE, PIXEL_M = 128, 4.0
# Planted roofs (row0, col0, rows, cols) in image pixels.
BUILDING = (30, 30, 8, 10)  # from date 2 on; under a cloud (user mask) on date 3
TRANSIENT = (90, 70, 7, 7)  # on dates 1 and 2 only
EDGE = (20, 100, 6, 12)  # from date 3 on; date 4 has no imagery there (right 40 columns cut)
OLD_ROOF = (70, 20, 9, 9)  # on every date, but dimmed by haze on date 1: not new
CLOUD_PAD = 10
CUT_COLS = 40


def plant(folder: Path, seed: int = 3) -> Path:
    """Write six dated GeoTIFFs, one cloud mask and STACK.csv; return the CSV."""
    pair = make_pair(
        seed=seed, size=SIZE, pixel_m=PIXEL_M, changes=False, shift_px=(0.0, 0.0), season=False
    )
    base = pair.before.astype(np.float32)
    rng = np.random.default_rng(seed)
    roof = np.array([2600, 2500, 2400, 2300], np.float32)[:, None, None]
    profile = dict(driver="GTiff", height=SIZE, crs=pair.crs, transform=pair.transform)
    lines = ["date,path,credit,scene_id,mask"]
    for k, date in enumerate(DATES):
        img = base + rng.normal(0, 15, base.shape).astype(np.float32)
        for box, on in ((BUILDING, k >= 2), (TRANSIENT, k in (1, 2)), (EDGE, k >= 3)):
            if on:
                r, c, h, w = box
                img[:, r : r + h, c : c + w] = roof + rng.normal(0, 10, (4, h, w))
        r, c, h, w = OLD_ROOF
        pad = (slice(None), slice(r - 4, r + h + 4), slice(c - 4, c + w + 4))
        img[:, r : r + h, c : c + w] = roof + 600 + rng.normal(0, 10, (4, h, w))
        if k == 0:  # haze: the same shapes, less contrast
            img[pad] = img[pad] * 0.55 + 600
        data = np.clip(img, 1, 65535).astype(np.uint16)
        if k == 4:
            data = data[:, :, : SIZE - CUT_COLS]
        path = folder / f"d{k}.tif"
        with rasterio.open(
            path, "w", **profile, width=data.shape[2], count=4, dtype="uint16", nodata=0
        ) as dst:
            dst.write(data)
            dst.descriptions = tuple(pair.band_names)
            dst.update_tags(ACQUISITION_DATE=date)
        mask = ""
        if k == 3:
            m = np.zeros((SIZE, SIZE), np.uint8)
            r, c, h, w = BUILDING
            m[r - CLOUD_PAD : r + h + CLOUD_PAD, c - CLOUD_PAD : c + w + CLOUD_PAD] = 255
            with rasterio.open(
                folder / "cloud3.tif", "w", **profile, width=SIZE, count=1, dtype="uint8"
            ) as dst:
                dst.write(m, 1)
            mask = "cloud3.tif"
        lines.append(f"{date},d{k}.tif,Synthetic {date[:4]},S{k},{mask}")
    csv = folder / "stack.csv"
    csv.write_text("\n".join(lines) + "\n")
    return csv


def aoi_file(folder: Path) -> Path:
    """An AOI just inside the full image (so date 4 misses part of it)."""
    with rasterio.open(folder / "d0.tif") as src:
        from rasterio.warp import transform_bounds

        bounds = transform_bounds(src.crs, "EPSG:4326", *src.bounds)
    path = folder / "aoi.geojson"
    geom = shapely.box(*bounds).buffer(-0.0001)
    gpd.GeoDataFrame({"id": ["plot"], "name": ["Plot"]}, geometry=[geom], crs=4326).to_file(path)
    return path


def centre(folder: Path, box: tuple[int, int, int, int]) -> shapely.Point:
    with rasterio.open(folder / "d0.tif") as src:
        r, c, h, w = box
        return shapely.Point(src.transform * (c + w / 2, r + h / 2))


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("stack")
    return plant(folder)


@pytest.fixture(scope="module")
def monitored(stack: Path, tmp_path_factory: pytest.TempPathFactory):
    out = tmp_path_factory.mktemp("out")
    gpkg, evidence = out / "monitor.gpkg", out / "packet"
    args = ["monitor", "--stack", str(stack), "--aoi", str(aoi_file(stack.parent))]
    r = CliRunner().invoke(main, [*args, "--out", str(gpkg), "--evidence", str(evidence)])
    assert r.exit_code == 0, r.output
    return r, gpkg, evidence


def _structure(gpkg: Path, folder: Path, box) -> gpd.GeoSeries:
    s = gpd.read_file(gpkg, layer="structures")
    hit = s[s.geometry.contains(centre(folder, box))]
    assert len(hit) == 1, s.drop(columns="geometry")
    return hit.iloc[0]


def test_brackets_statuses_and_unassessable(monitored, stack: Path):
    _, gpkg, _ = monitored
    folder = stack.parent
    obs = gpd.read_file(gpkg, layer="observations")
    b = _structure(gpkg, folder, BUILDING)
    assert b["status"] == "new"
    assert (b["last_absent"], b["last_absent_scene"]) == ("2020-05-03", "S1")
    assert (b["first_present"], b["first_present_scene"]) == ("2020-07-10", "S2")
    assert (b["n_present"], b["n_absent"], b["n_unassessable"]) == (3, 2, 1)
    states = obs[obs["id"] == b["id"]].set_index("date")
    # Under the cloud: unassessable, never absent; it does not break "still present".
    assert states.loc["2020-09-14", "state"] == "unassessable"
    assert states.loc["2020-09-14", "clear_share"] == 0.0
    assert list(states["state"]) == [
        "absent", "absent", "present", "unassessable", "present", "present"
    ]  # fmt: skip
    t = _structure(gpkg, folder, TRANSIENT)
    assert t["status"] == "transient"
    assert (t["last_absent"], t["first_present"]) == ("2020-03-01", "2020-05-03")
    assert "absent, then present from 2020-07-10" in b["status_reason"]
    assert b["onset_similarity"] < ONSET_SIMILAR
    # an old roof seen through haze on the first date differs from every later date,
    # but with the same shapes: it was there already
    old = _structure(gpkg, folder, OLD_ROOF)
    assert old["status"] == "present_throughout", old["status_reason"]
    assert old["onset_similarity"] >= ONSET_SIMILAR and "same shapes" in old["status_reason"]
    e = _structure(gpkg, folder, EDGE)
    assert e["status"] == "new"
    assert (e["last_absent"], e["first_present"]) == ("2020-07-10", "2020-09-14")
    e_states = obs[obs["id"] == e["id"]].set_index("date")["state"]
    assert e_states["2020-11-02"] == "unassessable"  # outside that date's image
    assert {"id", "ref", "class", "area_m2", "lat", "lon", "mgrs", "review", "note"} <= set(b.index)
    assert b["review"] == "unreviewed" and b["id"].startswith("bw-")


def test_ledger_sums_and_areas(monitored, stack: Path):
    r, gpkg, _ = monitored
    led = gpd.read_file(gpkg, layer="coverage").set_index("date")
    parts = ["assessed_m2", "cloud_m2", "shadow_m2", "snow_m2", "nodata_m2", "no_imagery_m2"]
    np.testing.assert_allclose(led[parts].sum(axis=1), led["region_m2"])
    np.testing.assert_allclose(
        led["masked_m2"], led["cloud_m2"] + led["shadow_m2"] + led["snow_m2"]
    )
    assert list(led.index) == [*DATES, "total"]
    cloud = (BUILDING[2] + 2 * CLOUD_PAD) * (BUILDING[3] + 2 * CLOUD_PAD) * PIXEL_M**2
    assert led.loc["2020-09-14", "cloud_m2"] == pytest.approx(cloud, rel=0.05)
    assert led.loc["2020-09-14", "mask"] == "user" and led.loc["2020-05-03", "mask"] == "none"
    missing = led.loc["2020-11-02", "no_imagery_m2"]
    assert missing == pytest.approx(CUT_COLS * SIZE * PIXEL_M**2, rel=0.1)
    assert led.loc["total", "assessed_share"] == pytest.approx(1.0, abs=0.01)
    assert led.loc["2020-03-01", "no_imagery_m2"] == 0.0
    assert "total (assessed on 2+ dates): assessed" in r.output
    s = gpd.read_file(gpkg, layer="structures")
    n_new = int((s["status"] == "new").sum())
    assert f"{n_new} new, 1 transient" in r.output and "manifest sha256" in r.output
    # the two planted buildings, and any other only as a part first seen on the last date
    others = s[(s["status"] == "new") & (s["first_present"] != DATES[-1])]
    assert len(others) == 2
    assert {"structures", "observations", "coverage"} <= {n for n, _ in pyogrio.list_layers(gpkg)}
    styles = read_layer_styles(gpkg)
    assert 'attr="state"' in styles["observations"] and 'attr="class"' in styles["structures"]


def test_packet_strips_bracket_words_and_manifest(monitored, stack: Path):
    _, gpkg, evidence = monitored
    b = _structure(gpkg, stack.parent, BUILDING)
    html = (evidence / "report.html").read_text()
    assert (
        "not present on 2020-05-03 (scene S1); present on 2020-07-10 (scene S2) "
        "and on 2 later images" in html
    )
    chips = sorted((evidence / "chips").glob(f"{b['id']}_*.png"))
    assert [c.stem.split("_")[1] for c in chips] == DATES
    assert 'id="ledger"' in html and "unassessable" in html
    man = json.loads((evidence / "manifest.json").read_text())
    dates = {d["date"]: d for d in man["dates"]}
    assert dates["2020-09-14"]["mask"] == {"kind": "user", "files": ["cloud3.tif"]}
    for d in man["dates"]:
        assert len(d["files"][0]["sha256"]) == 64
    names = {Path(f["path"]).name for f in man["files"] if f.get("role") == "input"} or {
        Path(f["path"]).name for f in man["files"]
    }
    assert {"d0.tif", "cloud3.tif"} <= names


def test_each_input_is_read_once(stack: Path, monkeypatch: pytest.MonkeyPatch):
    reads: dict[str, int] = defaultdict(int)
    original = rasterio.io.DatasetReader.read

    def counting(self, *args, **kw):
        reads[Path(self.name).name] += 1
        return original(self, *args, **kw)

    monkeypatch.setattr(rasterio.io.DatasetReader, "read", counting)
    with monitor(read_stack_csv(stack), aoi=aoi_file(stack.parent)) as run:
        assert len(run.dates) == len(DATES)
    inputs = {f"d{k}.tif" for k in range(len(DATES))} | {"cloud3.tif"}
    assert {n: reads[n] for n in inputs} == dict.fromkeys(inputs, 1)
    assert any(n.startswith("date") for n in reads)  # the engine read the staged copies


def test_dates_repeated_from_file_metadata(stack: Path, tmp_path: Path):
    folder = stack.parent
    out = tmp_path / "m.geojson"
    args = ["monitor", "--out", str(out)]
    for k in (2, 0, 1, 5):  # any order: sorted by the files' dates
        args += ["--date", str(folder / f"d{k}.tif")]
    r = CliRunner().invoke(main, args)
    assert r.exit_code == 0, r.output
    fc = json.loads(out.read_text())
    meta = fc["borderwatch"]
    assert [d["date"] for d in meta["dates"]] == [DATES[0], DATES[1], DATES[2], DATES[5]]
    assert meta["dates"][0]["date_source"].startswith("tiff tag")
    statuses = sorted(f["properties"]["status"] for f in fc["features"])
    assert statuses.count("new") >= 1 and "transient" in statuses
    assert {o["state"] for o in meta["observations"]} <= {"present", "absent", "unassessable"}
    assert out.with_suffix(".qml").exists()


@pytest.mark.parametrize(
    ("text", "expect"),
    [
        ("date,file\n2020-01-01,d0.tif\n", ":1: missing column path"),
        (
            "date,path\n2020-01-01,d0.tif\n2020-13-40,d1.tif\n",
            ":3: date: '2020-13-40' is not a date",
        ),
        ("date,path\n2020-01-01,d0.tif\n2020-02-01,nothere.tif\n", ":3: file not found:"),
        (
            "date,path\n2020-01-01,d0.tif\n2020-01-01,d1.tif\n",
            ":3: date 2020-01-01 is already on line 2",
        ),
        ("date,path\n2020-01-01,d0.tif\n2020-02-01,./d0.tif\n", ":3: the same files as line 2"),
        ("date,path\n", ":2: the stack has no date"),
    ],
)
def test_stack_csv_errors(stack: Path, tmp_path: Path, text: str, expect: str):
    csv = stack.parent / "bad.csv"
    csv.write_text(text)
    with pytest.raises(InputError, match=None) as err:
        read_stack_csv(csv)
    assert f"{csv}{expect}" in str(err.value)
    r = CliRunner().invoke(
        main, ["monitor", "--stack", str(csv), "--out", str(tmp_path / "x.gpkg")]
    )
    assert r.exit_code == 2
    lines = [ln for ln in r.output.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0] == f"borderwatch: error: {err.value}"
    assert not (tmp_path / "x.gpkg").exists()


def test_stack_csv_paths_and_band_lists(stack: Path):
    folder = stack.parent
    csv = folder / "bands.csv"
    csv.write_text("date,path,scene_id\n2020-01-01,d0.tif;d1.tif,A\n2020-01-01,d2.tif,B\n")
    a, b = read_stack_csv(csv)
    assert a.paths == (str(folder / "d0.tif"), str(folder / "d1.tif")) and a.line == 2
    assert (b.scene_id, b.mask, b.credit) == ("B", None, None)


def test_outputs_checked_before_work(stack: Path, tmp_path: Path):
    out = tmp_path / "m.gpkg"
    out.write_text("old")
    r = CliRunner().invoke(main, ["monitor", "--stack", str(stack), "--out", str(out)])
    assert r.exit_code == 2 and "exists" in r.output
    assert out.read_text() == "old"


@pytest.mark.parametrize(
    ("states", "status", "last_absent", "first_present"),
    [
        (["absent", "present", "present"], "new", 0, 1),
        (["absent", "absent", "present"], "new", 1, 2),  # present on the last date
        (["absent", "present", "unassessable"], "unconfirmed", 0, 1),  # one scene only
        (["absent", "present", "absent"], "unconfirmed", 0, 1),  # one scene's word
        (["absent", "present", "present", "absent"], "transient", 0, 1),
        # a lone present date long before the structure does not date it
        (
            ["absent", "present", "absent", "absent", "present", "present", "absent"],
            "transient",
            3,
            4,
        ),
        (["absent", "present", "absent", "unassessable", "present", "present"], "new", 2, 4),
        (["present", "absent", "present", "present"], "new", 1, 2),
        (["present", "unassessable", "present"], "present_throughout", None, 0),
        (["absent", "unassessable", "present", "present"], "new", 0, 2),
        # seen, gone, back again: no one step from absent to present, so not new
        (["absent", "present", "present", "absent", "present", "present"], "transient", 0, 1),
    ],
)
def test_status_rules(states, status, last_absent, first_present):
    assert status_of(states) == (status, last_absent, first_present)


@contextlib.contextmanager
def _staged(data: np.ndarray, grid: Grid) -> Iterator[rasterio.io.DatasetReader]:
    with rasterio.io.MemoryFile() as mem:
        with mem.open(
            driver="GTiff",
            width=grid.shape[1],
            height=grid.shape[0],
            count=data.shape[0],
            dtype="float32",
            crs=grid.crs,
            transform=grid.transform,
            nodata=float("nan"),
        ) as dst:
            dst.write(data.astype(np.float32))
        with mem.open() as src:
            yield src


def _roof_scene(rows: slice, cols: slice):
    from affine import Affine
    from rasterio.crs import CRS

    grid = Grid(CRS.from_epsg(32652), Affine(1, 0, 500000, 0, -1, 4700000), (64, 64))
    rng = np.random.default_rng(0)
    field = 800 + rng.normal(0, 40, (3, 64, 64))
    roofed = field.copy()
    h, w = rows.stop - rows.start, cols.stop - cols.start
    roofed[:, rows, cols] = 2500 + rng.normal(0, 20, (3, h, w))
    roof = shapely.box(
        500000 + cols.start, 4700000 - rows.stop, 500000 + cols.stop, 4700000 - rows.start
    )
    brighter = np.roll(roofed * 1.4 + 300, 1, axis=2) + rng.normal(0, 20, roofed.shape)
    hazy = field * 0.6 + 500 + rng.normal(0, 20, field.shape)
    return grid, roof, roofed, brighter, hazy


@pytest.mark.parametrize(
    ("rows", "cols"), [(slice(20, 32), slice(24, 40)), (slice(0, 8), slice(56, 64))]
)
def test_onset_similarity_tells_a_new_roof_from_a_brighter_one(rows, cols):
    """Gain, offset and a 1 px shift keep the shapes; a roof on bare field does not.

    Also at the grid's corner (the window reads past the edge).
    """
    grid, roof, roofed, brighter, hazy = _roof_scene(rows, cols)
    with _staged(roofed, grid) as b, _staged(brighter, grid) as a, _staged(hazy, grid) as f:
        same = onset_similarity(roof, grid, b, a)
        new = onset_similarity(roof, grid, f, a)
    assert same >= 0.95 > ONSET_SIMILAR
    assert new < 0.5


def test_onset_similarity_cannot_tell_under_cloud():
    """Half the roof clouded on one date: too little clear footprint, NaN (no verdict)."""
    grid, roof, roofed, brighter, _ = _roof_scene(slice(20, 32), slice(24, 40))
    brighter[:, 20:32, 24:34] = np.nan
    with _staged(roofed, grid) as b, _staged(brighter, grid) as a:
        assert np.isnan(onset_similarity(roof, grid, b, a))


DATES6 = [f"2020-0{m}-01" for m in range(1, 7)]


@pytest.mark.parametrize(
    ("states", "sims", "status", "bracket", "edited"),
    [
        # the first present date already differs: the engine's bracket stands
        ("APPPPP", {}, "new", (0, 1), ""),
        # gradual: dates 1-2 look like date 0 (each also like the next), date 3 does not;
        # only the engine's absent date is ever the "before"
        ("APPPPP", {(0, 1): 0.85, (0, 2): 0.82, (2, 3): 0.81}, "new", (2, 3), "AAAPPP"),
        # a brightness artefact first, a real structure later
        ("APPAPP", {(0, 1): 0.9, (0, 2): 0.9}, "new", (3, 4), "AAAAPP"),
        # brightness only, on every date (a bright roof against a hazy first date)
        ("APPPPP", {(0, j): 0.95 for j in range(1, 6)}, "present_throughout", (None, 0), "PPPPPP"),
        # same shapes as the last absent date, but not as an earlier one: built between
        ("AAPPPP", {(1, j): 0.9 for j in range(2, 6)}, "new", (0, 1), "APPPPP"),
        # cannot tell (NaN): the engine's word stands
        ("APPPPP", {(0, 1): float("nan")}, "new", (0, 1), ""),
    ],
)
def test_onset_states(states, sims, status, bracket, edited):
    code = {"A": "absent", "P": "present", "U": "unassessable"}
    names = [code[c] for c in states]
    got = onset_states(names, lambda i, j: sims.get((i, j), 0.1), DATES6)
    assert (got[0], got[1], got[2]) == (status, *bracket)
    assert "".join(n[0].upper() for n in names) == (edited or states)
    assert bool(got[4]) == bool(edited)  # every edited date carries its note


def _objects(*geoms: object) -> gpd.GeoDataFrame:
    return gpd.GeoDataFrame({"area_m2": [g.area for g in geoms]}, geometry=list(geoms))


def test_link_splits_a_part_first_seen_later():
    """A tower (date 1) inside a fence ring found from date 2 on: two structures."""
    ring = shapely.box(-40, -40, 40, 40).difference(shapely.box(-34, -34, 34, 34))
    tower_on_ring = shapely.box(-40, -3, -34, 3)
    tower = shapely.box(-40, -3, -34, 3)
    grown = shapely.union(ring, tower_on_ring.buffer(1))  # one object: tower and ring
    groups = link([None, _objects(tower), _objects(grown), _objects(grown)], pixel_m=1.0)
    assert len(groups) == 2
    first, second = groups
    assert [k for k, _ in first["members"]] == [1, 2, 3]  # the tower: seen from date 1 on
    assert [k for k, _ in second["members"]] == [2, 3]  # the ring: from date 2 on
    assert first["geometry"].area == pytest.approx(36.0)  # not grown into the ring
    assert second["geometry"].intersection(tower).area == 0.0
    assert second["geometry"].area > 0.9 * ring.area


def test_link_grows_one_structure_and_ignores_edge_jitter():
    """A building found a pixel larger on a later date stays one structure."""
    roof = shapely.box(0, 0, 10, 8)
    groups = link([_objects(roof), _objects(roof.buffer(1.5, join_style="mitre"))], pixel_m=1.0)
    assert len(groups) == 1
    assert [k for k, _ in groups[0]["members"]] == [0, 1]


def test_signed_redacted_packet_verifies(stack: Path, tmp_path: Path):
    from borderwatch.products.manifest import verify_packet
    from borderwatch.products.signing import generate_keys

    keys = generate_keys(tmp_path / "keys")
    packet = tmp_path / "packet"
    r = CliRunner().invoke(
        main,
        [
            "monitor",
            "--stack",
            str(stack),
            "--out",
            str(tmp_path / "m.gpkg"),
            "--evidence",
            str(packet),
            "--sign-key",
            str(keys.private),
            "--redact",
        ],
    )
    assert r.exit_code == 0, r.output
    assert f"signed by key {keys.fingerprint}" in r.output
    result = verify_packet(packet)
    assert result.ok and result.signed_by == keys.fingerprint
    text = (packet / "manifest.json").read_text()
    assert str(stack.parent) not in text  # absolute paths cut to names


def test_stac_without_module_is_one_line(stack: Path, tmp_path: Path, monkeypatch):
    import sys

    monkeypatch.setitem(sys.modules, "borderwatch.stac", None)  # import fails
    base = ["monitor", "--stac", str(stack.parent), "--out", str(tmp_path / "m.gpkg")]
    r = CliRunner().invoke(main, base)
    assert r.exit_code == 2 and "--stac needs --from" in r.output
    r = CliRunner().invoke(main, [*base, "--from", "2020-01-01", "--to", "2021-01-01"])
    assert r.exit_code == 2
    assert "module borderwatch.stac is missing" in r.output
    r = CliRunner().invoke(main, [*base, "--stack", str(stack)])
    assert r.exit_code == 2 and "got --stack and --stac" in r.output


def test_corridor_aoi_gets_km(stack: Path, tmp_path: Path):
    folder = stack.parent
    aoi = gpd.read_file(aoi_file(folder))
    aoi["border_km"] = 0.5
    path = tmp_path / "corridor.geojson"
    aoi.to_file(path)
    with monitor(read_stack_csv(stack), aoi=str(path)) as run:
        total = run.ledger.set_index("date").loc["total"]
        assert total["assessed_km"] == pytest.approx(0.5 * total["assessed_share"])
        cut = run.ledger.set_index("date").loc["2020-11-02"]
        assert cut["no_imagery_km"] == pytest.approx(0.5 * cut["no_imagery_share"])
        assert run.corridor is not None and run.corridor["border_km"] == 0.5
        assert run.corridor["new_fence_km"] == pytest.approx(
            run.structures.query("`class` == 'fence_or_wall' and status == 'new'")["length_m"].sum()
            / 1000
        )


def test_blocks_give_the_same_answer(stack: Path):
    aoi = aoi_file(stack.parent)
    with (
        monitor(read_stack_csv(stack), aoi=aoi) as one,
        monitor(read_stack_csv(stack), aoi=aoi, block_size=32) as many,
    ):
        cols = ["id", "date", "state", "clear_share", "score"]
        assert one.observations[cols].equals(many.observations[cols])
        assert one.ledger.equals(many.ledger)


def test_two_dates_give_detects_objects():
    """The same engine: a two-date stack finds exactly what ``detect`` finds."""
    from borderwatch import detect
    from borderwatch.engine import DetectParams
    from borderwatch.monitor import entries_from_dates
    from borderwatch.sample_data import sample_tiles_dir

    tiles = sample_tiles_dir()
    pair = [tiles / "before.tif", tiles / "after.tif"]
    run = detect(*pair, aoi="helong", params=DetectParams(method="combined"))  # monitor's
    with monitor(entries_from_dates(pair), aoi="helong") as mon:
        assert mon.dates[1].threshold == pytest.approx(run.change.threshold)
        assert len(mon.structures) == len(run.objects) > 0
        assert sorted(mon.structures.area_m2) == pytest.approx(sorted(run.objects.area_m2))
        assert set(mon.structures.status) == {"new"}  # present on the last date
        assert (mon.structures.first_present == "2021-09-02").all()
        total = mon.ledger.set_index("date").loc["total"]
        assert total["assessed_share"] < 0.02  # the tiles cover about 1 % of the AOI
