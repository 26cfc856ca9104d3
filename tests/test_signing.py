"""Signed, tamper-evident packets: keygen, --sign-key, custody log, verify, redaction."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import stat
import subprocess
import zipfile
from pathlib import Path

import pytest
from click.testing import CliRunner
from cryptography.hazmat.primitives import serialization

from borderwatch.cli import main
from borderwatch.errors import SigningKeyError
from borderwatch.products.custody import GENESIS
from borderwatch.products.export import sha256_file
from borderwatch.products.manifest import verify_packet
from borderwatch.products.redact import redact_record, user_name
from borderwatch.products.signing import (
    PRIVATE_NAME,
    PUBLIC_NAME,
    generate_keys,
    load_private_key,
    load_public_key,
)
from borderwatch.products.timestamp import timestamp_request
from borderwatch.sample_data import sample_tiles_dir

NOT_SIGNED = "not signed: anyone could have rewritten the manifest"


def invoke(*args: str, env: dict[str, str] | None = None):
    return CliRunner().invoke(main, list(args), env=env)


def one_line_error(result) -> str:
    """The single stderr line of a refused command (exit 2, no traceback)."""
    assert result.exit_code == 2, result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("borderwatch: error: "), result.output
    return lines[0]


@pytest.fixture(scope="module")
def keys(tmp_path_factory):
    out = tmp_path_factory.mktemp("keys")
    r = invoke("keygen", "--out", str(out / "k"))
    assert r.exit_code == 0, r.output
    return out / "k"


@pytest.fixture(scope="module")
def other_keys(tmp_path_factory):
    return generate_keys(tmp_path_factory.mktemp("other") / "k")


@pytest.fixture(scope="module")
def signed(tmp_path_factory, keys):
    """The demo, signed (and redacted, its default); session copy: copy before editing."""
    out = tmp_path_factory.mktemp("signed") / "demo"
    r = invoke("demo", "--out-dir", str(out), "--sign-key", str(keys / PRIVATE_NAME))
    assert r.exit_code == 0, r.output
    return out, r.output


@pytest.fixture()
def packet(signed, tmp_path):
    """A fresh copy of the signed demo packet in another folder."""
    dest = tmp_path / "elsewhere" / "packet"
    shutil.copytree(signed[0], dest)
    return dest


def verify(packet: Path, *extra: str):
    return invoke("verify", str(packet), *extra)


def test_keygen_writes_0600_private_key_and_refuses_to_overwrite(keys, tmp_path):
    private, public = keys / PRIVATE_NAME, keys / PUBLIC_NAME
    assert stat.S_IMODE(private.stat().st_mode) == 0o600
    key = load_private_key(private)
    der = load_public_key(public).public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    assert key.public_key() == load_public_key(public)
    # The printed fingerprint is `openssl pkey -pubin -outform DER | sha256sum`.
    out = tmp_path / "new"
    r = invoke("keygen", "--out", str(out))
    new_der = load_public_key(out / PUBLIC_NAME).public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    assert f"fingerprint sha256:{hashlib.sha256(new_der).hexdigest()}" in r.output
    assert der != new_der  # a new key each time
    before = private.read_bytes()
    line = one_line_error(invoke("keygen", "--out", str(keys)))
    assert str(private) in line and "never overwritten" in line
    assert private.read_bytes() == before


def test_signed_demo_verifies_and_prints_manifest_sha(signed, keys):
    out, output = signed
    digest = sha256_file(out / "manifest.json")
    assert f"manifest sha256 {digest} (record it elsewhere)" in output
    r = verify(out, "--key", str(keys / PUBLIC_NAME))
    assert r.exit_code == 0, r.output
    assert "signed by key sha256:" in r.output and "ok:" in r.output
    sig = json.loads((out / "manifest.json.sig").read_text())
    assert sig["algorithm"] == "Ed25519" and sig["sha256"] == digest


def test_private_key_is_never_written_into_the_packet(signed, keys):
    key = load_private_key(keys / PRIVATE_NAME)
    raw = key.private_bytes(
        serialization.Encoding.Raw, serialization.PrivateFormat.Raw, serialization.NoEncryption()
    )
    pem = (keys / PRIVATE_NAME).read_bytes()
    body = b"".join(pem.splitlines()[1:-1])  # the base64 of the PKCS #8 key
    files = [p for p in signed[0].rglob("*") if p.is_file()]
    assert len(files) > 30
    for p in files:
        data = p.read_bytes()
        assert raw not in data and body not in data and b"PRIVATE KEY" not in data, p


def test_custody_log_chains_and_names_the_manifest(signed):
    out = signed[0]
    lines = (out / "custody.jsonl").read_bytes().splitlines()
    entry = json.loads(lines[0])
    assert len(lines) == 1 and entry["seq"] == 1 and entry["prev_sha256"] == GENESIS
    assert entry["manifest_sha256"] == sha256_file(out / "manifest.json")
    assert entry["command"] == "borderwatch demo" and entry["version"]
    assert entry["user"] == "redacted" and entry["utc"].endswith("+00:00")
    doc = json.loads((out / "manifest.json").read_text())
    assert {k: v for k, v in entry.items() if k not in ("manifest_sha256", "prev_sha256")} == (
        doc["custody"]["entry"]
    )


def test_moved_packet_verifies_outputs_only_with_key(packet, keys):
    r = verify(packet, "--outputs-only", "--key", str(keys / PUBLIC_NAME))
    assert r.exit_code == 0, r.output
    assert "ok:" in r.output and "changed" not in r.output


def _rewrite(packet: Path, edit) -> None:
    """Apply ``edit`` to the manifest dict, then write it back (same layout)."""
    path = packet / "manifest.json"
    doc = json.loads(path.read_text())
    edit(doc)
    path.write_text(json.dumps(doc, indent=2, ensure_ascii=False), "utf-8")


def _rehash_custody(packet: Path) -> None:
    """Re-point the custody entry at the edited manifest: what a careful forger does."""
    log = packet / "custody.jsonl"
    entry = json.loads(log.read_text())
    entry["manifest_sha256"] = sha256_file(packet / "manifest.json")
    log.write_text(json.dumps(entry, sort_keys=True, separators=(",", ":")) + "\n")


def _chip(packet: Path) -> Path:
    return sorted((packet / "chips").glob("*_after.png"))[0]


def edit_chip(packet: Path) -> None:
    p = _chip(packet)
    p.write_bytes(p.read_bytes() + b"\0")


def edit_chip_and_rehash(packet: Path) -> None:
    edit_chip(packet)
    name = f"chips/{_chip(packet).name}"
    digest = sha256_file(_chip(packet))

    def fix(doc):
        for f in doc["files"]:
            if f["path"] == name:
                f["sha256"] = digest
                f["bytes"] = _chip(packet).stat().st_size

    _rewrite(packet, fix)
    _rehash_custody(packet)


def edit_date(packet: Path) -> None:
    _rewrite(packet, lambda doc: doc["scenes"]["after"].update(date="2021-01-01"))


def edit_date_and_rehash(packet: Path) -> None:
    edit_date(packet)
    _rehash_custody(packet)


def symlink_inside(packet: Path) -> None:
    (packet / "chips" / "link.png").symlink_to(_chip(packet))


def symlink_replacing_a_file(packet: Path) -> None:
    chip = _chip(packet)
    shutil.copy(chip, packet.parent / "copy.png")
    chip.unlink()
    chip.symlink_to(packet.parent / "copy.png")  # same bytes, same hash: still refused


def symlink_dir_outside(packet: Path) -> None:
    (packet / "elsewhere").symlink_to(packet.parent)


def extra_file(packet: Path) -> None:
    (packet / "notes.txt").write_text("added later")


def missing_file(packet: Path) -> None:
    _chip(packet).unlink()


def custody_entry_edited(packet: Path) -> None:
    log = packet / "custody.jsonl"
    log.write_text(log.read_text().replace('"user":"redacted"', '"user":"someone"'))


def custody_entry_deleted(packet: Path) -> None:
    (packet / "custody.jsonl").write_text("")


def custody_entry_added(packet: Path) -> None:
    log = packet / "custody.jsonl"
    line = log.read_bytes().splitlines()[0]
    entry = json.loads(line) | {"seq": 2, "prev_sha256": hashlib.sha256(line).hexdigest()}
    with log.open("a") as fh:
        fh.write(json.dumps(entry, sort_keys=True, separators=(",", ":")) + "\n")


def signature_removed(packet: Path) -> None:
    (packet / "manifest.json.sig").unlink()


def resigned_by_another_key(packet: Path, other) -> None:
    from borderwatch.products.signing import sign_file

    signature_removed(packet)
    edit_date_and_rehash(packet)
    sign_file(packet / "manifest.json", load_private_key(other.private))


@pytest.mark.parametrize(
    ("tamper", "expect"),
    [
        (edit_chip, "changed: chips/"),
        (edit_chip_and_rehash, "signature: does not match manifest.json"),
        (edit_date, "custody: entry 1 names another manifest"),
        (edit_date_and_rehash, "signature: does not match manifest.json"),
        (symlink_inside, "symlink: chips/link.png ->"),
        (symlink_replacing_a_file, "symlink: chips/"),
        (symlink_dir_outside, "symlink: elsewhere ->"),
        (extra_file, "extra: notes.txt"),
        (missing_file, "missing: chips/"),
        (custody_entry_edited, "custody: entry 1 differs from the manifest's record"),
        (custody_entry_deleted, "custody: entry 1 of this manifest is missing"),
        (custody_entry_added, "custody: entries after 1 are not covered by the manifest"),
        (signature_removed, "not signed: the packet has no signature, and --key was given"),
        (resigned_by_another_key, "signature: signed by sha256:"),
    ],
)
def test_each_tampering_fails_verify(packet, keys, other_keys, tamper, expect):
    if tamper is resigned_by_another_key:
        tamper(packet, other_keys)
    else:
        tamper(packet)
    r = verify(packet, "--outputs-only", "--key", str(keys / PUBLIC_NAME))
    assert r.exit_code == 1, r.output
    assert expect in r.output
    assert "FAILED:" in r.output and "Traceback" not in r.output


def test_overwrite_carries_the_custody_log_forward(packet, keys):
    old = (packet / "custody.jsonl").read_bytes().splitlines()
    r = invoke(
        "demo", "--out-dir", str(packet), "--overwrite", "--sign-key", str(keys / PRIVATE_NAME)
    )
    assert r.exit_code == 0, r.output
    lines = (packet / "custody.jsonl").read_bytes().splitlines()
    assert lines[0] == old[0] and len(lines) == 2
    second = json.loads(lines[1])
    assert second["seq"] == 2 and second["prev_sha256"] == hashlib.sha256(old[0]).hexdigest()
    assert verify_packet(packet, inputs=False, key=load_public_key(keys / PUBLIC_NAME)).ok
    # Deleting the first (carried) entry breaks the chain of the second.
    (packet / "custody.jsonl").write_bytes(lines[1] + b"\n")
    problems = verify_packet(packet, inputs=False).problems
    assert any("does not chain" in p for p in problems), problems
    assert not list(packet.parent.glob(".packet.*"))  # no temporary folder left


def test_wrong_key_fails(packet, other_keys):
    r = verify(packet, "--outputs-only", "--key", str(other_keys.public))
    assert r.exit_code == 1
    assert f"not by the given key {other_keys.fingerprint}" in r.output
    # The manifest is untouched: only the wrong signer is reported.
    assert "does not match manifest.json" not in r.output
    result = verify_packet(packet, inputs=False, key=load_public_key(other_keys.public))
    assert len(result.problems) == 1 and "not by the given key" in result.problems[0]


def test_wrong_key_and_an_edited_manifest_both_show(packet, other_keys):
    manifest = packet / "manifest.json"
    manifest.write_text(manifest.read_text().replace('"redacted": true', '"redacted": false'))
    problems = verify_packet(packet, inputs=False, key=load_public_key(other_keys.public)).problems
    assert any("not by the given key" in p for p in problems), problems
    assert any("does not match manifest.json" in p for p in problems), problems


def test_overwrite_without_a_key_warns_that_the_signature_goes(packet, keys):
    r = invoke("demo", "--out-dir", str(packet), "--overwrite")
    assert r.exit_code == 0, r.output
    fp = load_public_key(keys / PUBLIC_NAME)
    from borderwatch.products.signing import fingerprint

    want = f"the packet replaced was signed by key {fingerprint(fp)}; this one is not signed"
    assert want in r.output
    assert not (packet / "manifest.json.sig").exists()
    r = invoke(
        "demo", "--out-dir", str(packet), "--overwrite", "--sign-key", str(keys / PRIVATE_NAME)
    )
    assert r.exit_code == 0 and "this one is not signed" not in r.output


def test_sign_key_inside_the_packet_is_refused_before_any_work(packet, keys, monkeypatch):
    import borderwatch.cli.demo_cmd as demo_cmd

    def no_work(*args, **kwargs):
        raise AssertionError("detection started")

    monkeypatch.setattr(demo_cmd, "detect", no_work)
    inside = packet / "key.pem"
    shutil.copy(keys / PRIVATE_NAME, inside)
    line = one_line_error(
        invoke("demo", "--out-dir", str(packet), "--overwrite", "--sign-key", str(inside))
    )
    assert f"{inside}: the signing key lies in the evidence folder {packet}" in line
    line = one_line_error(
        invoke(
            "demo",
            "--out-dir",
            str(packet),
            "--overwrite",
            env={"BORDERWATCH_SIGN_KEY": str(inside)},
        )
    )
    assert "the signing key lies in the evidence folder" in line
    assert inside.read_bytes() == (keys / PRIVATE_NAME).read_bytes()


def test_unsigned_packet_says_so_and_fails_with_a_key(analyst_outputs, keys, tmp_path):
    packet = tmp_path / "packet"
    shutil.copytree(analyst_outputs.evidence, packet)
    r = verify(packet)
    assert r.exit_code == 0, r.output
    assert NOT_SIGNED in r.output
    r = verify(packet, "--key", str(keys / PUBLIC_NAME))
    assert r.exit_code == 1 and "not signed" in r.output


@pytest.mark.parametrize(
    ("text", "expect"),
    [
        ("{not json", "cannot read the manifest"),
        ("[]", "not a borderwatch manifest"),
        ('{"format": "borderwatch-manifest/2"}', "'files' must be a list"),
        (
            '{"format": "borderwatch-manifest/2", "files": [{"path": 3}]}',
            "files[0].path missing or not a str",
        ),
        ('{"format": "borderwatch-manifest/2", "files": []}', "'custody' missing"),
        (
            '{"format": "borderwatch-manifest/2", "files": [], "custody": {"prev_sha256": 1}}',
            "'custody' missing",
        ),
    ],
)
def test_malformed_manifest_is_one_line_exit_2(packet, keys, text, expect):
    (packet / "manifest.json").write_text(text)
    line = one_line_error(verify(packet, "--key", str(keys / PUBLIC_NAME)))
    assert expect in line and str(packet / "manifest.json") in line


def test_malformed_signature_and_key_files_are_one_line(packet, keys, tmp_path):
    bad = tmp_path / "bad.pub"
    bad.write_text("hello")
    assert "not a PEM public key" in one_line_error(verify(packet, "--key", str(bad)))
    private = str(keys / PRIVATE_NAME)
    assert "is a private key" in one_line_error(verify(packet, "--key", private))
    (packet / "manifest.json.sig").write_text('{"format": 1}')
    line = one_line_error(verify(packet, "--key", str(keys / PUBLIC_NAME)))
    assert "not a borderwatch signature" in line


def test_redacted_demo_has_no_host_user_or_absolute_path(signed):
    out = signed[0]
    tiles = str(sample_tiles_dir().resolve())
    doc = json.loads((out / "manifest.json").read_text())
    assert doc["redacted"] is True and doc["host"]["name"] == "redacted"
    inputs = {f["path"]: f for f in doc["files"] if f["role"] == "input"}
    assert set(inputs) == {"before.tif", "after.tif"}  # bare names, hashes kept
    assert inputs["before.tif"]["sha256"] == sha256_file(sample_tiles_dir() / "before.tif")
    home = os.path.expanduser("~")
    texts = {
        name: (out / name).read_text()
        for name in ("manifest.json", "custody.jsonl", "report.html", "new_structures.geojson")
    }
    for qgz in out.glob("*.qgz"):  # a zip: read the project document inside
        with zipfile.ZipFile(qgz) as zf:
            texts.update({f"{qgz.name}:{n}": zf.read(n).decode() for n in zf.namelist()})
    texts.update({vrt.name: vrt.read_text() for vrt in out.rglob("*.vrt")})
    assert any(".qgz:" in name for name in texts)
    for name, text in texts.items():
        for secret in (tiles, str(out.parent), home, f'"{user_name()}"', "../"):
            assert secret not in text, (name, secret)
    assert "redacted" in texts["report.html"]
    # The project names the images by file name alone and says they are not in the packet.
    project = next(t for n, t in texts.items() if ".qgz:" in n)
    assert 'source="./after.tif"' in project
    assert "after (image not in the packet: after.tif)" in project


def test_unredacted_packet_records_user_host_and_paths(analyst_outputs):
    packet = analyst_outputs.evidence
    entry = json.loads((packet / "custody.jsonl").read_text())
    assert entry["user"] == user_name()
    doc = json.loads((packet / "manifest.json").read_text())
    assert doc["redacted"] is False and doc["host"]["name"] != "redacted"
    assert str(analyst_outputs.tiles.resolve() / "before.tif") in {f["path"] for f in doc["files"]}


def test_redact_record_cuts_paths_to_names():
    rec = {"a": "/home/ana/x/aoi.geojson", "b": ["C:\\data\\b.tif", 3], "c": "helong"}
    assert redact_record(rec) == {"a": "aoi.geojson", "b": ["b.tif", 3], "c": "helong"}


@pytest.mark.parametrize(("host", "user"), [("data", "vm"), ("vm", "data")])
def test_redact_record_removes_names_as_whole_tokens_only(monkeypatch, host, user):
    import platform

    import borderwatch.products.redact as redact

    monkeypatch.setattr(platform, "node", lambda: host)
    monkeypatch.setattr(redact, "user_name", lambda: user)
    credit = "Contains modified Copernicus Sentinel data 2016"
    rec = {
        "scenes": {"after": {"credit": credit, "scene_id": "vm_data-2016.tif"}},
        "note": "run on data by vm (vm), metadata of data-2016 and data.gov",
        "aoi": {"source": "../case_alpha_secret/aoi.geojson"},
        "files": ["case_alpha_secret\\b.tif", "./x/y.tif", "My data/z.geojson"],
        "caveat": "Airbus DS/Spot Image",
    }
    assert redact_record(rec) == {
        "scenes": {"after": {"credit": credit, "scene_id": "vm_data-2016.tif"}},
        "note": "run on redacted by redacted (redacted), metadata of data-2016 and data.gov",
        "aoi": {"source": "aoi.geojson"},
        "files": ["b.tif", "y.tif", "z.geojson"],
        "caveat": "Airbus DS/Spot Image",
    }


def test_relative_aoi_path_is_redacted_in_the_manifest(tmp_path, monkeypatch):
    secret = tmp_path / "case_alpha_secret"
    secret.mkdir()
    import geopandas as gpd
    import rasterio
    from shapely.geometry import box

    with rasterio.open(sample_tiles_dir() / "after.tif") as ds:
        footprint = gpd.GeoDataFrame({"name": ["case"]}, geometry=[box(*ds.bounds)], crs=ds.crs)
    footprint.to_crs("EPSG:4326").to_file(secret / "aoi.geojson", driver="GeoJSON")
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    tiles = sample_tiles_dir()
    r = invoke(
        "detect",
        "--before",
        str(tiles / "before.tif"),
        "--after",
        str(tiles / "after.tif"),
        "--aoi",
        "../case_alpha_secret/aoi.geojson",
        "--reviews",
        str(tmp_path / "store"),
        "--evidence",
        "packet",
        "--redact",
    )
    assert r.exit_code == 0, r.output
    for name in ("manifest.json", "report.html"):
        assert "case_alpha_secret" not in (work / "packet" / name).read_text(), name
    assert json.loads((work / "packet" / "manifest.json").read_text())["aoi"]["source"] == (
        "aoi.geojson"
    )


def test_bad_sign_key_is_refused_before_any_work(tmp_path, keys, monkeypatch):
    import borderwatch.cli.demo_cmd as demo_cmd

    def no_work(*args, **kwargs):
        raise AssertionError("detection started")

    monkeypatch.setattr(demo_cmd, "detect", no_work)
    out = tmp_path / "demo"
    missing = tmp_path / "nope.key"
    line = one_line_error(invoke("demo", "--out-dir", str(out), "--sign-key", str(missing)))
    assert str(missing) in line and "cannot read the signing key" in line
    public = str(keys / PUBLIC_NAME)
    line = one_line_error(invoke("demo", "--out-dir", str(out), "--sign-key", public))
    assert public in line and "that is a public key" in line
    line = one_line_error(
        invoke("demo", "--out-dir", str(out), env={"BORDERWATCH_SIGN_KEY": str(missing)})
    )
    assert str(missing) in line
    assert not out.exists()
    with pytest.raises(SigningKeyError, match="not a PEM private key"):
        load_private_key(sample_tiles_dir() / "before.tif")


def test_detect_signs_with_the_env_key_and_option_wins(tmp_path, keys, other_keys):
    tiles = sample_tiles_dir()
    base = ["detect", "--before", str(tiles / "before.tif"), "--after", str(tiles / "after.tif")]
    base += ["--aoi", "helong", "--reviews", str(tmp_path / "store"), "--redact"]
    env = {"BORDERWATCH_SIGN_KEY": str(keys / PRIVATE_NAME)}
    r = invoke(*base, "--evidence", str(tmp_path / "a"), env=env)
    assert r.exit_code == 0, r.output
    assert f"manifest sha256 {sha256_file(tmp_path / 'a' / 'manifest.json')}" in r.output
    assert verify_packet(tmp_path / "a", key=load_public_key(keys / PUBLIC_NAME)).ok
    r = invoke(
        *base, "--evidence", str(tmp_path / "b"), "--sign-key", str(other_keys.private), env=env
    )
    assert r.exit_code == 0, r.output
    assert verify_packet(tmp_path / "b", key=load_public_key(other_keys.public)).ok
    entry = json.loads((tmp_path / "b" / "custody.jsonl").read_text())
    assert entry["command"] == "borderwatch detect" and entry["user"] == "redacted"


def test_batch_signs_each_job_and_prints_its_manifest_sha(tmp_path, keys, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path))  # no review store in the real home
    tiles = sample_tiles_dir()
    r = invoke(
        "batch",
        "--pair",
        str(tiles / "before.tif"),
        str(tiles / "after.tif"),
        "--aoi",
        "helong",
        "--out-dir",
        str(tmp_path / "out"),
        "--evidence",
        "--sign-key",
        str(keys / PRIVATE_NAME),
    )
    assert r.exit_code == 0, r.output
    (packet,) = (tmp_path / "out").glob("*.evidence")
    digest = sha256_file(packet / "manifest.json")
    assert f"manifest sha256 {digest} (record it elsewhere)" in r.output
    assert verify_packet(packet, key=load_public_key(keys / PUBLIC_NAME)).ok
    batch = json.loads((tmp_path / "out" / "batch.json").read_text())
    assert batch["jobs"][0]["manifest_sha256"] == digest


def test_timestamp_request_is_what_openssl_writes(signed, tmp_path):
    out = signed[0]
    tsq = (out / "manifest.json.tsq").read_bytes()
    assert tsq == timestamp_request(sha256_file(out / "manifest.json"))
    if shutil.which("openssl") is None:
        pytest.skip("openssl not installed: cannot compare with openssl ts -query")
    want = tmp_path / "openssl.tsq"
    r = subprocess.run(
        ["openssl", "ts", "-query", "-data", str(out / "manifest.json"), "-sha256", "-cert"]
        + ["-no_nonce", "-out", str(want)],
        capture_output=True,
    )
    if r.returncode != 0:
        pytest.skip(f"openssl ts unavailable: {r.stderr.decode().strip()}")
    assert tsq == want.read_bytes()


def test_timestamp_request_and_token_in_verify(packet, keys):
    (packet / "manifest.json.tsr").write_bytes(b"token from a TSA")
    r = verify(packet, "--outputs-only", "--key", str(keys / PUBLIC_NAME))
    assert r.exit_code == 0, r.output
    assert "timestamp token manifest.json.tsr not checked here: openssl ts -verify" in r.output
    (packet / "manifest.json.tsq").write_bytes(timestamp_request("00" * 32))
    r = verify(packet, "--outputs-only", "--key", str(keys / PUBLIC_NAME))
    assert r.exit_code == 1
    assert "timestamp: manifest.json.tsq is not the request for this manifest" in r.output
