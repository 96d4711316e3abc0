"""Duplicate groups on real files: exact copies from the catalog (hard links reclaim
nothing), near-duplicate pictures from pHash (resized, recompressed, brightened, EXIF
rotated and PNG variants group with their original; distinct pictures do not), and the
Rust search against brute force."""

from __future__ import annotations

import json
import os
from collections.abc import Callable
import random
import shutil
from pathlib import Path

import pytest
from hypothesis import given, settings, strategies as st
from PIL import Image, ImageEnhance

import media_corpus
from conftest import rows, run_cli, write_bytes_path


def _photo(seed: int) -> Image.Image:
    """Photo-like: gradients and several shapes, different layout per seed."""
    rnd = random.Random(seed)
    img = Image.linear_gradient("L").resize((640, 480)).rotate(rnd.randrange(360)).convert("RGB")
    from PIL import ImageDraw

    d = ImageDraw.Draw(img)
    for _ in range(8):
        x, y, r = rnd.randrange(640), rnd.randrange(480), rnd.randrange(20, 120)
        d.ellipse((x - r, y - r, x + r, y + r), fill=tuple(rnd.randrange(256) for _ in range(3)))
    return img


def _scanned_groups(lib: Path, catalog: Path, kind: str) -> dict[int, set[str]]:
    """Scan `lib` into `catalog`, then `dupes --similar --kind KIND`: the names in each group."""
    assert run_cli("scan", lib, catalog=catalog).rc == 0
    res = run_cli("dupes", "--similar", "--kind", kind, "--format", "json", catalog=catalog)
    assert res.rc == 0, res.err
    groups: dict[int, set[str]] = {}
    for r in json.loads(res.out):
        groups.setdefault(r["group"], set()).add(Path(r["path"]).name)
    return groups


@pytest.fixture(scope="module")
def library(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    base = tmp_path_factory.mktemp("dupes")
    lib = base / "lib"
    lib.mkdir()
    for i in range(8):
        img = _photo(i)
        img.save(lib / f"p{i}.jpg", quality=92)
        img.resize((320, 240), Image.Resampling.LANCZOS).save(lib / f"p{i}_half.jpg", quality=60)
        ImageEnhance.Brightness(img).enhance(1.1).save(lib / f"p{i}_bright.jpg", quality=85)
        img.save(lib / f"p{i}.png")
        # Stored rotated, with EXIF saying how to turn it upright.
        ex = Image.Exif()
        ex[0x0112] = 6
        img.transpose(Image.Transpose.ROTATE_90).save(lib / f"p{i}_exifrot.jpg", quality=90, exif=ex)
    shutil.copy2(lib / "p0.jpg", lib / "p0_copy.jpg")
    os.link(lib / "p1.jpg", lib / "p1_hardlink.jpg")
    catalog = base / "cat.duckdb"
    assert run_cli("scan", lib, catalog=catalog).rc == 0
    return lib, catalog


def test_exact_groups_count_hard_links_once(library) -> None:
    lib, catalog = library
    res = run_cli("dupes", "--format", "json", catalog=catalog)
    assert res.rc == 0, res.err
    data = json.loads(res.out)
    groups: dict[int, list[dict]] = {}
    for r in data:
        groups.setdefault(r["group"], []).append(r)
    by_paths = {frozenset(Path(r["path"]).name for r in g): g for g in groups.values()}
    assert set(by_paths) == {frozenset({"p0.jpg", "p0_copy.jpg"}), frozenset({"p1.jpg", "p1_hardlink.jpg"})}
    copy = by_paths[frozenset({"p0.jpg", "p0_copy.jpg"})][0]
    link = by_paths[frozenset({"p1.jpg", "p1_hardlink.jpg"})][0]
    assert copy["reclaimable"] == (lib / "p0.jpg").stat().st_size
    assert link["reclaimable"] == 0
    assert copy["width"] > 0 and copy["height"] > 0  # the resolution of pictures


def test_kind_limits_the_rows_and_each_row_has_its_own_kind(tmp_path: Path) -> None:
    """QA: `dupes --kind image` listed the `.txt` files holding a photo's bytes too (the
    rows joined every copy back), all said `image`, `copies` disagreed with the rows, and
    the group's kind, any copy's, changed from run to run. Each row now has its file's
    kind, `--kind` keeps only its own (as `dedupe --kind` acts), and the output is stable."""
    lib = tmp_path / "lib"
    lib.mkdir()
    for name in ("a.jpg", "d.jpg", "b.txt", "c.txt", "e.xmp"):
        (lib / name).write_bytes(b"same bytes\n")
    os.utime(lib / "b.txt", (1e9, 1e9))  # the oldest: the kept copy of the whole group
    catalog = tmp_path / "c.duckdb"
    assert run_cli("scan", lib, "--no-meta", catalog=catalog).rc == 0

    def listed(*args: str) -> list[tuple[str, str, int]]:
        res = run_cli("dupes", *args, "-f", "json", catalog=catalog)
        assert res.rc == 0, res.err
        return [(Path(r["path"]).name, r["kind"], r["copies"]) for r in json.loads(res.out)]

    assert listed("--kind", "image") == [("a.jpg", "image", 2), ("d.jpg", "image", 2)]
    assert listed("--kind", "other") == [("b.txt", "other", 2), ("c.txt", "other", 2)]
    whole = listed()  # sidecars only with --kind sidecar
    assert whole == [("a.jpg", "image", 4), ("b.txt", "other", 4), ("c.txt", "other", 4), ("d.jpg", "image", 4)]
    assert all(listed() == whole for _ in range(3))
    plan = json.loads(run_cli("dedupe", "--kind", "image", "--json", catalog=catalog).out)
    assert [(Path(s["keep"]).name, Path(s["hardlink"]).name) for s in plan["steps"]] == [("a.jpg", "d.jpg")]


def test_empty_files_are_no_duplicates(tmp_path: Path) -> None:
    """Zero-byte files of any kind (an empty JPEG, an empty MP4) made one group of "video"
    in `dupes`, under no `--kind`, and `dedupe` planned to hard-link them, saving nothing:
    they hold nothing, and a placeholder's name is what matters. Also with `--no-hash`."""
    lib = tmp_path / "lib"
    lib.mkdir()
    for name in ("empty.jpg", "empty2.mp4", ".nomedia"):
        (lib / name).write_bytes(b"")
    for name in ("a.jpg", "b.jpg"):
        (lib / name).write_bytes(b"\xff\xd8\xff\xe0 same" * 100)
    for hashed in (True, False):
        catalog = tmp_path / f"c{hashed}.duckdb"
        assert run_cli("scan", lib, "--no-meta", *(() if hashed else ("--no-hash",)), catalog=catalog).rc == 0
        found = json.loads(run_cli("dupes", "-f", "json", catalog=catalog).out)
        assert sorted(os.path.basename(r["path"]) for r in found) == ["a.jpg", "b.jpg"], found
        res = run_cli("dedupe", "--json", catalog=catalog)
        assert res.rc == 0, res.err
        steps = json.loads(res.out)["steps"]
        assert [(os.path.basename(st["keep"]), os.path.basename(st["hardlink"])) for st in steps] == [
            ("a.jpg", "b.jpg")], steps


def test_no_groups_print_the_count_alone(tmp_path: Path) -> None:
    """With nothing found, the table said so twice: an empty table (or "(0 rows of 9
    columns: ...)") above "0 groups". JSON and CSV keep their empty array and header."""
    lib = tmp_path / "lib"
    lib.mkdir()
    _photo(1).save(lib / "one.jpg")
    catalog = tmp_path / "c.duckdb"
    assert run_cli("scan", lib, catalog=catalog).rc == 0
    for similar in ((), ("--similar",)):
        res = run_cli("dupes", *similar, catalog=catalog)
        assert (res.rc, res.out) == (0, "0 groups, 0 B reclaimable\n"), res
        assert json.loads(run_cli("dupes", *similar, "-f", "json", catalog=catalog).out) == []
        assert run_cli("dupes", *similar, "-f", "csv", catalog=catalog).out.startswith("group,")


def test_dupes_json_and_csv_give_the_exact_bytes_of_undecodable_names(tmp_path: Path) -> None:
    """A script acting on `dupes --format json` needs the real name of a copy whose name
    is not UTF-8 (`path` shows U+FFFD): `path_raw` carries its bytes, null otherwise."""
    import base64
    import csv
    import io

    lib, catalog = tmp_path / "lib", tmp_path / "cat.duckdb"
    lib.mkdir()
    data = b"\xff\xd8\xff\xe0" + bytes(range(256)) * 16
    odd = os.fsencode(lib) + b"/caf\xe9 \x80.jpg"
    write_bytes_path(odd, data)
    (lib / "plain.jpg").write_bytes(data)
    assert run_cli("scan", lib, catalog=catalog).rc == 0
    res = run_cli("dupes", "--format", "json", catalog=catalog)
    assert res.rc == 0, res.err
    got = {r["path"]: r["path_raw"] for r in json.loads(res.out)}
    assert got.pop(str(lib / "plain.jpg")) is None
    ((shown, raw),) = got.items()
    assert "\ufffd" in shown and base64.b64decode(raw) == odd
    res = run_cli("dupes", "--format", "csv", catalog=catalog)
    assert res.rc == 0, res.err
    assert {base64.b64decode(r["path_raw"]) for r in csv.DictReader(io.StringIO(res.out)) if r["path_raw"]} == {odd}
    table = run_cli("dupes", catalog=catalog)
    assert table.rc == 0 and "path_raw" not in table.out


def test_similar_groups_gather_every_variant_and_nothing_else(library) -> None:
    lib, catalog = library
    res = run_cli("dupes", "--similar", "--format", "json", catalog=catalog)
    assert res.rc == 0, res.err
    groups: dict[int, set[str]] = {}
    sizes: dict[int, list[int]] = {}
    for r in json.loads(res.out):
        groups.setdefault(r["group"], set()).add(Path(r["path"]).name)
        sizes.setdefault(r["group"], []).append(r["size"])
        assert r["width"] and r["height"]
    # Keeping the best copy (most pixels, then the biggest) frees the rest, each inode once
    # (p1_hardlink.jpg frees nothing): what dedupe --similar counts.
    per_group = {r["group"]: r["reclaimable"] for r in json.loads(res.out)}
    for g, got in per_group.items():
        if "p1_hardlink.jpg" in groups[g]:  # its bytes are those of the file it links
            assert got < sum(sizes[g]) - max(sizes[g]), (g, got)
        else:
            assert got == sum(sizes[g]) - max(sizes[g]), (g, got)
    # Biggest savings first, numbered 1, 2, ... in that order, as the exact groups are (a QA
    # finding: they came in the order the search found them).
    listed = list(dict.fromkeys(r["group"] for r in json.loads(res.out)))
    assert listed == list(range(1, len(per_group) + 1))
    assert [per_group[g] for g in listed] == sorted(per_group.values(), reverse=True)
    plan = json.loads(run_cli("dedupe", "--similar", "--json", catalog=catalog).out)
    assert plan["reclaimable"] == sum(per_group.values())
    expected = []
    for i in range(8):
        names = {f"p{i}.jpg", f"p{i}_half.jpg", f"p{i}_bright.jpg", f"p{i}.png", f"p{i}_exifrot.jpg"}
        names |= {"p0_copy.jpg"} if i == 0 else {"p1_hardlink.jpg"} if i == 1 else set()
        expected.append(frozenset(names))
    assert sorted(map(sorted, groups.values())) == sorted(map(sorted, expected))
    # The groups are in the catalog too, for SQL.
    n = rows(catalog, "SELECT count(DISTINCT group_id) AS g, max(distance) AS d FROM similar_groups")[0]
    assert n["g"] == 8 and n["d"] <= 8


def test_deep_pictures_group_with_their_8_bit_copies_and_flat_ones_never_group(tmp_path: Path) -> None:
    """16-bit and float pictures hash as they look (Pillow's 8-bit conversion clipped them
    to white, so any two 16-bit scans were "identical"), and flat pictures (one colour,
    a 1x1 pixel) get no fingerprint at all: they would all be each other's duplicates."""
    import numpy as np

    lib = tmp_path / "lib"
    lib.mkdir()
    for i in range(3):
        grey = np.asarray(_photo(10 + i).convert("L"))
        Image.fromarray(grey).save(lib / f"s{i}_8.png")
        Image.fromarray(grey.astype(np.uint16) * 257).save(lib / f"s{i}_16.png")
        Image.fromarray(grey.astype(np.float32) / 255).save(lib / f"s{i}_float.tif")
    Image.new("RGB", (1, 1), "red").save(lib / "px_red.png")
    Image.new("RGB", (1, 1), "blue").save(lib / "px_blue.png")
    Image.new("RGB", (300, 200), "black").save(lib / "black.jpg")
    Image.new("RGBA", (300, 200), (255, 255, 255, 0)).save(lib / "clear.png")
    Image.new("I;16", (300, 200), 40000).save(lib / "flat16.png")
    with Image.open(lib / "s0_16.png") as a, Image.open(lib / "s0_float.tif") as b:
        assert (a.mode, b.mode) == ("I;16", "F")
    catalog = tmp_path / "cat.duckdb"
    groups = _scanned_groups(lib, catalog, "image")
    assert sorted(map(sorted, groups.values())) == [[f"s{i}_16.png", f"s{i}_8.png", f"s{i}_float.tif"]
                                                    for i in range(3)]
    flat = {"px_red.png", "px_blue.png", "black.jpg", "clear.png", "flat16.png"}
    assert {r["name"] for r in rows(catalog, "SELECT f.name FROM meta_errors e JOIN files f USING (blake3) "
                                             "WHERE e.message LIKE '%one flat colour%'")} == flat
    # Recorded, so a later `dupes --similar` does not try them again; their thumbnails stand.
    assert rows(catalog, "SELECT count(*) AS n FROM media WHERE thumb IS NULL")[0]["n"] == 0
    assert run_cli("dupes", "--similar", catalog=catalog).rc == 0
    assert rows(catalog, "SELECT count(*) AS n FROM meta_errors WHERE message LIKE '%flat%'")[0]["n"] == len(flat)


def test_an_older_catalogs_fingerprints_of_deep_and_flat_pictures_are_dropped(tmp_path: Path) -> None:
    """A version-9 catalog holds the fingerprints made before deep pictures were scaled
    and flat ones skipped (a 16-bit scan clipped to white, a blank page hashing to 0),
    and near-duplicate groups of them: opened by this version, those fingerprints and
    groups are gone, so no `dedupe --similar` acts on them; the next `dupes --similar`
    fingerprints them again, as they look."""
    import duckdb
    import numpy as np

    lib = tmp_path / "lib"
    lib.mkdir()
    grey = np.asarray(_photo(3).convert("L"))
    Image.fromarray(grey.astype(np.uint16) * 257).save(lib / "scan16.png")
    Image.new("RGB", (300, 200), "white").save(lib / "blank.png")
    _photo(4).save(lib / "photo.jpg")
    catalog = tmp_path / "cat.duckdb"
    assert run_cli("scan", lib, catalog=catalog).rc == 0
    con = duckdb.connect(str(catalog))
    ids = {n: b for n, b in con.execute("SELECT name, blake3 FROM files").fetchall()}
    con.execute("DELETE FROM meta_errors")
    con.execute("DELETE FROM image_hashes WHERE blake3 <> ?", [ids["photo.jpg"]])
    for name, phash in (("scan16.png", 2**64 - 1), ("blank.png", 0)):  # what the old code stored
        con.execute("INSERT INTO image_hashes (blake3, phash, dhash) VALUES (?, ?, ?)", [ids[name], phash, phash])
    con.execute("INSERT INTO similar_groups SELECT 1, blake3, ?, 0, 'phash', 8, now()::TIMESTAMP FROM image_hashes",
                [ids["blank.png"]])
    con.execute("UPDATE meta SET value = '9' WHERE key = 'schema_version'")
    con.close()
    assert run_cli("tag", "add", "t", lib / "photo.jpg", catalog=catalog).rc == 0  # a writer upgrades it
    assert {r["blake3"] for r in rows(catalog, "SELECT blake3 FROM image_hashes")} == {ids["photo.jpg"]}
    assert rows(catalog, "SELECT count(*) AS n FROM similar_groups")[0]["n"] == 0
    assert run_cli("dupes", "--similar", catalog=catalog).rc == 0
    got = {r["blake3"]: r["phash"] for r in rows(catalog, "SELECT blake3, phash FROM image_hashes")}
    assert ids["scan16.png"] in got and got[ids["scan16.png"]] != 2**64 - 1 and ids["blank.png"] not in got


def test_transparent_pictures_hash_as_shown_with_a_thumbnail_or_without(tmp_path: Path) -> None:
    """A transparent picture is hashed as a viewer shows it: over white, or over black
    where on white it would be flat (a white logo). It hashed over black where a thumbnail
    was made (Pillow scales transparency premultiplied) and over the colours hidden under
    its transparent pixels where not: a logo matched neither its copy hashed the other way
    nor its copy flattened on white. A catalog of schema 26 loses the fingerprints of
    pictures that may be transparent (and their groups); `dupes --similar` makes them
    again, as a new extraction does."""
    import duckdb
    import numpy as np

    lib = tmp_path / "lib"
    lib.mkdir()
    rgb = np.asarray(_photo(11))
    yy, xx = np.mgrid[0:480, 0:640]
    alpha = np.where((xx - 320) ** 2 + (yy - 240) ** 2 < 200 ** 2, 255, 0).astype(np.uint8)
    hidden = alpha == 0

    def logo(under: np.ndarray, name: str, picture: np.ndarray = rgb) -> None:
        shown = picture.copy()
        shown[hidden] = under[hidden]
        Image.fromarray(np.dstack([shown, alpha]), "RGBA").save(lib / name)

    logo(np.random.default_rng(5).integers(0, 256, rgb.shape, dtype=np.uint8), "noise_under.png")
    logo(np.zeros_like(rgb), "black_under.png")
    Image.open(lib / "black_under.png").resize((320, 240), Image.Resampling.LANCZOS).save(lib / "half.png")
    Image.open(lib / "noise_under.png").convert("P", palette=Image.Palette.ADAPTIVE).save(lib / "palette.png")
    on_white = rgb.copy()
    on_white[hidden] = 255
    Image.fromarray(on_white).save(lib / "flat_on_white.jpg", quality=90)
    on_black = rgb.copy()
    on_black[hidden] = 0
    Image.fromarray(on_black).save(lib / "flat_on_black.jpg", quality=90)  # another picture
    white = np.full_like(rgb, 255)
    logo(np.full_like(rgb, 255), "white_logo.png", white)  # on white: flat
    light = white.copy()
    light[hidden] = 0
    Image.fromarray(light).save(lib / "white_logo_on_black.jpg", quality=90)
    _photo(12).save(lib / "other.jpg", quality=90)
    want = [{"black_under.png", "flat_on_white.jpg", "half.png", "noise_under.png", "palette.png"},
            {"white_logo.png", "white_logo_on_black.jpg"}]
    phashes = "SELECT f.name, i.phash FROM image_hashes i JOIN files f USING (blake3) ORDER BY 1"
    made = {}
    for how in ((), ("--no-thumbs",)):
        catalog = tmp_path / f"c{len(how)}.duckdb"
        assert run_cli("scan", *how, lib, catalog=catalog).rc == 0
        res = run_cli("dupes", "--similar", "--kind", "image", "--format", "json", catalog=catalog)
        assert res.rc == 0, res.err
        groups: dict[int, set[str]] = {}
        for r in json.loads(res.out):
            groups.setdefault(r["group"], set()).add(Path(r["path"]).name)
        assert sorted(groups.values(), key=len, reverse=True) == want, how
        made[how] = {r["name"]: r["phash"] for r in rows(catalog, phashes)}
    pngs = {n for n in made[()] if n.endswith(".png")}
    assert {n: made[()][n] for n in pngs} == {n: made[("--no-thumbs",)][n] for n in pngs}

    catalog = tmp_path / "c0.duckdb"
    con = duckdb.connect(str(catalog))  # as schema 26 left it: hashed another way
    con.execute("UPDATE image_hashes SET phash = xor(phash, 4095)")
    con.execute("UPDATE meta SET value = '26' WHERE key = 'schema_version'")
    con.close()
    assert run_cli("stats", catalog=catalog).rc == 0  # opening it upgrades it
    assert {r["name"] for r in rows(catalog, phashes)} == {
        "flat_on_white.jpg", "flat_on_black.jpg", "white_logo_on_black.jpg", "other.jpg"}
    assert rows(catalog, "SELECT count(*) AS n FROM similar_groups WHERE method = 'phash'") == [{"n": 0}]
    assert run_cli("dupes", "--similar", "--kind", "image", catalog=catalog).rc == 0
    assert {r["name"]: r["phash"] for r in rows(catalog, phashes) if r["name"].endswith(".png")} == \
        {n: made[()][n] for n in pngs}


def test_screenshots_of_one_app_are_told_apart_by_the_finer_phash(tmp_path: Path) -> None:
    """Screenshots of one app (its window the same, its text not) lie a few bits apart in
    the 64-bit pHash: one in five pairs of these within the default 8, so `dedupe
    --similar` would have trashed screenshots of other text. The finer 256-bit pHash
    checks each pair: they lie about 70 apart there, each screenshot's recompressed and
    resized copies within about 20. Pictures hashed before schema 27 (no finer pHash) are
    grouped as before, with a note saying how to check them too."""
    import duckdb

    from mediaforge.synth import screenshot

    lib = tmp_path / "lib"
    lib.mkdir()
    for seed in range(12):
        screenshot(seed).save(lib / f"s{seed:02d}.png")
    for seed in range(3):
        screenshot(seed).save(lib / f"s{seed:02d}_copy.jpg", quality=70)
        screenshot(seed).resize((640, 400), Image.Resampling.LANCZOS).save(lib / f"s{seed:02d}_half.png")
    catalog = tmp_path / "c.duckdb"
    groups = _scanned_groups(lib, catalog, "image")
    assert sorted(groups.values(), key=sorted) == [{f"s{i:02d}.png", f"s{i:02d}_copy.jpg", f"s{i:02d}_half.png"}
                                                    for i in range(3)]
    near = rows(catalog, """SELECT count(*) AS n FROM image_hashes a JOIN image_hashes b ON a.blake3 < b.blake3
                            WHERE bit_count(xor(a.phash, b.phash)) <= 8""")[0]["n"]
    assert near >= 9 + 10, near  # the copies' 9 pairs, and 10 or more of other screenshots
    con = duckdb.connect(str(catalog))  # as hashed before schema 27
    con.execute("UPDATE image_hashes SET phash256 = NULL")
    con.close()
    res = run_cli("dupes", "--similar", "--kind", "image", "--format", "json", catalog=catalog)
    assert res.rc == 0, res.err
    assert len(json.loads(res.out)) > 9
    assert "with no finer pHash to check its pairs" in res.err and "`mediaforge thumbs`" in res.err, res.err
    assert run_cli("thumbs", catalog=catalog).rc == 0
    res = run_cli("dupes", "--similar", "--kind", "image", "--format", "json", catalog=catalog)
    assert res.rc == 0 and "finer pHash" not in res.err, res.err
    assert len(json.loads(res.out)) == 9
    # Thumbnails of 16 pixels hold too little for it: none is made from them.
    assert run_cli("thumbs", "--size", "16", catalog=catalog).rc == 0
    assert rows(catalog, "SELECT count(*) AS n FROM image_hashes WHERE phash256 IS NOT NULL") == [{"n": 0}]


def test_the_command_line_runs_without_loading_numpy(library) -> None:
    """The CLI loads pyarrow as if numpy were absent (numpy's import is 0.05-0.1 s of CPU at
    every start); the pHash grouping reads the hashes from Arrow's buffer instead, and the
    groups are the same as above."""
    import subprocess
    import sys

    _lib, catalog = library
    probe = ("import atexit, sys; atexit.register(lambda: print('numpy loaded:', 'numpy' in sys.modules, "
             "file=sys.stderr)); sys.argv = ['mediaforge'] + sys.argv[1:]; from mediaforge._entry import main; main()")
    for args in (["dupes", "--similar", "--format", "json"], ["query", "SELECT * FROM files", "--format", "json"]):
        p = subprocess.run([sys.executable, "-c", probe, "--catalog", str(catalog), *args], capture_output=True,
                           text=True, timeout=120)
        assert p.returncode == 0, p.stderr
        assert p.stderr.strip().splitlines()[-1] == "numpy loaded: False", p.stderr
        assert json.loads(p.stdout)
    groups = json.loads(run_cli("dupes", "--similar", "--format", "json", catalog=catalog).out)
    assert len({r["group"] for r in groups}) == 8


def test_similar_threshold_zero_and_bad_values(library) -> None:
    _lib, catalog = library
    res = run_cli("dupes", "--similar", "--threshold", "40", catalog=catalog)
    assert res.rc == 2 and res.err.strip() == "mediaforge: error: --threshold must be 0 to 32 bits, got 40", res.err
    # Past 11 bits a group may join pages of one layout, screenshots of one app (a QA
    # finding: they grouped from 12, with no word until 17): said on stderr, and the
    # groups come. Videos past 16.
    res = run_cli("dupes", "--similar", "--threshold", "12", "--format", "json", catalog=catalog)
    assert res.rc == 0 and "--threshold 12 is loose (over 11 bits)" in res.err and json.loads(res.out), res.err
    assert "screenshots of one app" in res.err
    assert "loose" not in run_cli("dupes", "--similar", "--threshold", "11", catalog=catalog).err
    assert "is loose (over 16 bits)" in run_cli("dupes", "--similar", "--kind", "video", "--threshold", "17",
                                                catalog=catalog).err
    res = run_cli("dupes", "--kind", "spreadsheet", catalog=catalog)
    assert res.rc == 2 and "unknown kind" in res.err


def test_a_colour_set_apart_from_its_leader_checks_each_member_by_the_finer_phash() -> None:
    """A pHash group split by colour (`find._by_colour`): the set that is not the leader's
    is led by its own first picture and keeps only members near it in both pHashes; one
    within the 64-bit radius but far in the finer one (a screenshot of other text) goes,
    one with no finer pHash (hashed before schema 27) stays, as its pairs are taken."""
    from mediaforge.dupes.find import _by_colour, fine_radius

    red, blue = bytes([90, 200] * 9), bytes([200, 90] * 9)
    near = bytes(32)
    far = (2**(fine_radius(8) + 1) - 1).to_bytes(32)  # one bit past the finer radius from `near`
    edge = (2**fine_radius(8) - 1).to_bytes(32)  # at the finer radius: still near
    # Members: 0 the leader (red), 1 its red copy; 2 the blue set's head, 3 and 6 near it,
    # 4 far from it in the finer pHash, 5 with none.
    phash = [0, 0b1, 0b11, 0b111, 0b1011, 0b10011, 0b100011]
    fine: list[bytes | None] = [near, near, near, near, far, None, edge]
    chroma = [red, red, blue, blue, blue, blue, blue]
    n = len(phash)
    out = _by_colour([7] * n, list(range(n)), [0] * n, phash, [False] * n, chroma, 8, fine)
    groups: dict[int, set[int]] = {}
    for index, group, leader, distance in out:
        groups.setdefault(group, set()).add(index)
        assert distance == (phash[index] ^ phash[leader]).bit_count()
        assert leader == (0 if index < 2 else 2)
    assert sorted(groups.values(), key=min) == [{0, 1}, {2, 3, 5, 6}]
    # Within the 64-bit radius of the head but not of the set's other members: kept, as
    # the head is what each is compared with.
    phash[6] = 0b11 ^ (0xFF << 8)  # 8 bits from the head, 9 from member 3
    out = _by_colour([7] * n, list(range(n)), [0] * n, phash, [False] * n, chroma, 8, fine)
    assert {r[0] for r in out if r[2] == 2} == {2, 3, 5, 6}


@settings(max_examples=25, deadline=None)
@given(st.lists(st.integers(0, 2**64 - 1), min_size=0, max_size=300), st.integers(0, 16),
       st.lists(st.tuples(st.integers(0, 299), st.integers(0, 63)), max_size=200))
def test_search_finds_exactly_the_brute_force_pairs(base: list[int], radius: int, flips: list) -> None:
    from mediaforge import _core
    import pyarrow as pa
    import numpy as np

    hashes = list(base)
    # Near copies: the same hash with a few bits flipped.
    for idx, bit in flips:
        if idx < len(base):
            hashes.append(base[idx] ^ (1 << bit))
    buf = np.array(hashes, dtype="<u8").tobytes()
    fast = pa.record_batch(_core.near_pairs(buf, radius)).to_pylist()
    brute = pa.record_batch(_core.near_pairs(buf, radius, brute=True)).to_pylist()
    assert fast == brute
    for p in fast:
        assert p["distance"] == bin(hashes[p["a"]] ^ hashes[p["b"]]).count("1") <= radius


def test_identical_images_hash_equal(tmp_path: Path) -> None:
    from mediaforge import _core

    img = _photo(3).convert("L")
    a = _core.image_hashes(img.tobytes(), img.width, img.height)
    b = _core.image_hashes(img.copy().tobytes(), img.width, img.height)
    assert a == b
    from mediaforge.errors import InvalidInputError

    with pytest.raises(InvalidInputError, match="needs"):
        _core.image_hashes(b"\x00" * 10, 4, 4)


def _clip(path: Path, seeds: list[int], size: tuple[int, int], crf: str, fps: int = 12,
          sound_seconds: float = 0.0, look: Callable[[Image.Image], Image.Image] | None = None) -> None:
    """A clip showing picture `seeds[i]` during its i-th half second (through `look`,
    where given); with `sound_seconds`, an AAC track of that length beside it."""
    import av
    import numpy as np

    frames = {s: (look or (lambda im: im))(media_corpus.picture(160, 120, s).resize(size)) for s in set(seeds)}
    with av.open(str(path), "w") as out:
        st = out.add_stream("libx264", rate=fps)
        st.width, st.height, st.pix_fmt = size[0], size[1], "yuv420p"
        st.options = {"preset": "ultrafast", "crf": crf}
        sound = out.add_stream("aac", rate=48000, layout="mono") if sound_seconds else None
        for s in seeds:
            for _ in range(fps // 2):
                for p in st.encode(av.VideoFrame.from_image(frames[s])):
                    out.mux(p)
        for p in st.encode():
            out.mux(p)
        if sound is not None:
            total, pts = int(sound_seconds * 48000), 0
            while pts < total:
                n = min(1024, total - pts)
                tone = (0.2 * np.sin(2 * np.pi * 440 * (pts + np.arange(n)) / 48000)).astype(np.float32)
                frame = av.AudioFrame.from_ndarray(tone[None, :], format="fltp", layout="mono")
                frame.sample_rate, frame.pts = 48000, pts
                for p in sound.encode(frame):
                    out.mux(p)
                pts += n
            for p in sound.encode():
                out.mux(p)


def test_similar_videos_group_reencodes_but_not_shared_intros(tmp_path: Path) -> None:
    lib = tmp_path / "videos"
    lib.mkdir()
    a = [100 + i for i in range(24)]  # 12 s, a new picture every half second
    _clip(lib / "a.mp4", a, (160, 120), "20")
    _clip(lib / "a_reencoded_small.mp4", a, (96, 72), "32")
    _clip(lib / "b_same_intro.mp4", a[:6] + [300 + i for i in range(18)], (160, 120), "20")  # shares 3 s
    _clip(lib / "c_other.mp4", [500 + i for i in range(24)], (160, 120), "20")
    _clip(lib / "d_first_half.mp4", a[:12], (160, 120), "20")  # same start, half as long
    # QA: its sound running 4 s past its pictures kept it apart (the container's length).
    _clip(lib / "a_longer_sound.mp4", a, (160, 120), "24", sound_seconds=16.0)
    catalog = tmp_path / "cat.duckdb"
    assert run_cli("scan", lib, catalog=catalog).rc == 0
    assert rows(catalog, "SELECT count(DISTINCT blake3) AS n FROM video_hashes") == [{"n": 6}]
    assert rows(catalog, "SELECT round(m.duration) AS d FROM media m JOIN files f USING (blake3) "
                         "WHERE f.name = 'a_longer_sound.mp4'") == [{"d": 16.0}]
    res = run_cli("dupes", "--similar", "--kind", "video", "--format", "json", catalog=catalog)
    assert res.rc == 0, res.err
    groups: dict[int, set[str]] = {}
    for r in json.loads(res.out):
        groups.setdefault(r["group"], set()).add(Path(r["path"]).name)
    assert list(groups.values()) == [{"a.mp4", "a_reencoded_small.mp4", "a_longer_sound.mp4"}]


def test_a_portrait_clip_groups_with_its_re_encode_turned_upright(tmp_path: Path) -> None:
    """A phone stores a portrait clip on its side with a display rotation; a re-encode
    (FFmpeg's default) turns its pixels upright and drops the rotation. The fingerprint
    hashed the stored frames, about 30 bits from the re-encode's: they never grouped. It
    now hashes frames as players show them. A catalog of schema 25 loses the fingerprints
    of turned videos (and their groups), and the next `dupes --similar` makes them again."""
    import duckdb

    lib = tmp_path / "lib"
    lib.mkdir()

    def frame(i: int, turned: bool = False) -> Image.Image:
        img = media_corpus.picture(160, 120, 700 + i // 6)
        return img.rotate(90, expand=True) if turned else img

    media_corpus._video(lib / "phone.mp4", "libx264", "mp4", (160, 120), 72, rate=6, rotation=90,
                        options={"preset": "ultrafast"}, frame_picture=frame)
    media_corpus._video(lib / "upright.mp4", "libx264", "mp4", (120, 160), 72, rate=6,
                        options={"preset": "ultrafast", "crf": "30"}, frame_picture=lambda i: frame(i, True))
    media_corpus._video(lib / "sideways.mkv", "libx264", "matroska", (160, 120), 72, rate=6,
                        options={"preset": "ultrafast"}, frame_picture=frame)  # no rotation: another picture
    catalog = tmp_path / "c.duckdb"
    assert run_cli("scan", lib, catalog=catalog).rc == 0
    assert rows(catalog, "SELECT f.name, m.rotation FROM media m JOIN files f USING (blake3) ORDER BY 1") == [
        {"name": "phone.mp4", "rotation": 90}, {"name": "sideways.mkv", "rotation": 0},
        {"name": "upright.mp4", "rotation": 0}]

    def grouped() -> list[set[str]]:
        res = run_cli("dupes", "--similar", "--kind", "video", "--format", "json", catalog=catalog)
        assert res.rc == 0, res.err
        groups: dict[int, set[str]] = {}
        for r in json.loads(res.out):
            groups.setdefault(r["group"], set()).add(Path(r["path"]).name)
        return list(groups.values())

    assert grouped() == [{"phone.mp4", "upright.mp4"}]
    phashes = "SELECT f.name, v.k, v.phash FROM video_hashes v JOIN files f USING (blake3) ORDER BY ALL"
    made = rows(catalog, phashes)
    # As schema 25 left it: the turned clip's frames hashed as stored.
    con = duckdb.connect(str(catalog))
    con.execute("UPDATE video_hashes SET phash = xor(phash, 4095) WHERE blake3 IN "
                "(SELECT blake3 FROM files WHERE name = 'phone.mp4')")
    con.execute("UPDATE meta SET value = '25' WHERE key = 'schema_version'")
    con.close()
    assert run_cli("stats", catalog=catalog).rc == 0  # opening it upgrades it
    assert {r["name"] for r in rows(catalog, phashes)} == {"sideways.mkv", "upright.mp4"}
    assert rows(catalog, "SELECT count(*) AS n FROM similar_groups") == [{"n": 0}]
    assert grouped() == [{"phone.mp4", "upright.mp4"}]
    assert rows(catalog, phashes) == made


def test_a_matroska_clip_turned_by_its_rotate_tag_groups_with_its_upright_copy(tmp_path: Path) -> None:
    """Matroska keeps no track matrix: a `rotate` tag on the track (counted clockwise, as
    mkvmerge and old FFmpeg write it) turns its frames, for the fingerprint as for the
    thumbnail, read without the frames' side data (which held each frame in memory)."""
    import av

    from mediaforge.meta import probe

    def frame(i: int, turned: bool = False) -> Image.Image:
        img = media_corpus.picture(160, 120, 900 + i // 6)
        return img.rotate(90, expand=True) if turned else img  # 90 counter-clockwise: `rotate` 270

    with av.open(str(tmp_path / "tagged.mkv"), "w", format="matroska") as out:
        st = out.add_stream("libx264", rate=6)
        st.width, st.height, st.pix_fmt, st.options = 160, 120, "yuv420p", {"preset": "ultrafast"}
        st.metadata["rotate"] = "270"
        for i in range(48):
            for p in st.encode(av.VideoFrame.from_image(frame(i))):
                out.mux(p)
        for p in st.encode():
            out.mux(p)
    media_corpus._video(tmp_path / "upright.mp4", "libx264", "mp4", (120, 160), 48, rate=6,
                        options={"preset": "ultrafast"}, frame_picture=lambda i: frame(i, True))
    upright, _, _, _ = probe.video_fingerprint(str(tmp_path / "upright.mp4"), 8.0)
    tagged, _, _, _ = probe.video_fingerprint(str(tmp_path / "tagged.mkv"), 8.0)
    assert len(tagged) == len(upright) > 3
    assert all(bin(a["phash"] ^ b["phash"]).count("1") <= 4 for a, b in zip(tagged, upright)), (tagged, upright)


def test_metadata_first_then_fingerprints_on_demand(tmp_path: Path) -> None:
    """`--no-fingerprints` reads metadata only; `dupes --similar` fingerprints what its
    kind lacks, `meta` the rest, with the same hashes a default extraction stores. A
    picture whose pixels cannot be decoded fails once and is not picked again, unless
    `--retry-failed`."""
    lib = tmp_path / "lib"
    lib.mkdir()
    _photo(0).save(lib / "p0.jpg", quality=92)
    _photo(0).resize((320, 240), Image.Resampling.LANCZOS).save(lib / "p0_half.jpg", quality=60)
    _photo(1).save(lib / "p1.jpg", quality=92)
    whole = (lib / "p1.jpg").read_bytes()
    (lib / "p2_cut.jpg").write_bytes(whole[:len(whole) // 3])  # the header reads, the pixels do not
    a = [100 + i for i in range(24)]
    _clip(lib / "a.mp4", a, (160, 120), "20")
    _clip(lib / "a_small.mp4", a, (96, 72), "32")
    media_corpus._audio(lib / "song.flac", "flac", "flac", 3.0)
    full, fast = tmp_path / "full.duckdb", tmp_path / "fast.duckdb"
    assert run_cli("scan", lib, "--no-thumbs", catalog=full).rc == 0
    res = run_cli("scan", lib, "--no-thumbs", "--no-fingerprints", "--json", catalog=fast)
    assert res.rc == 0, res.err
    assert json.loads(res.out)["extract"]["files"] == 7
    count = ("SELECT (SELECT count(*) FROM image_hashes) AS i, (SELECT count(DISTINCT blake3) FROM video_hashes) AS v, "
             "(SELECT count(*) FROM audio_hashes) AS a")
    assert rows(fast, count) == [{"i": 0, "v": 0, "a": 0}]
    media = ("SELECT f.name, m.width, m.height, m.duration, m.video_codec, m.audio_codec FROM media m "
             "JOIN files f USING (blake3) ORDER BY f.name")
    assert rows(fast, media) == rows(full, media)

    def without_fingerprint(catalog: Path = fast) -> int:
        out = json.loads(run_cli("stats", "--json", catalog=catalog).out)
        return sum(r["without_fingerprint"] for r in out["extraction"])

    assert without_fingerprint() == 7
    pending = "SELECT count(*) AS n FROM meta WHERE key = 'fingerprints_pending'"
    assert rows(fast, pending) == [{"n": 1}]
    # The marked catalog: a plain rescan fingerprints what is missing, then looks no more.
    rescanned = tmp_path / "rescanned.duckdb"
    shutil.copy(fast, rescanned)
    out = json.loads(run_cli("scan", lib, "--no-thumbs", "--json", catalog=rescanned).out)["extract"]
    # Six fingerprints made; the cut picture's could not be: not a file of this run that failed.
    assert (out["files"], out["fingerprinted"], out["fingerprint_failed"], out["failed"]) == (0, 6, 1, 0)
    assert without_fingerprint(rescanned) == 1 and rows(rescanned, pending) == [{"n": 0}]
    out = json.loads(run_cli("scan", lib, "--no-thumbs", "--json", catalog=rescanned).out)["extract"]
    assert (out["files"], out["fingerprinted"]) == (0, 0)

    res = run_cli("dupes", "--similar", catalog=fast)
    assert res.rc == 0, res.err
    assert "fingerprinted 3 distinct image files" in res.err and "1 could not be" in res.err
    assert rows(fast, count) == [{"i": 3, "v": 0, "a": 0}] and rows(fast, pending) == [{"n": 1}]
    res = run_cli("dupes", "--similar", "--format", "json", catalog=fast)
    assert {Path(r["path"]).name for r in json.loads(res.out)} == {"p0.jpg", "p0_half.jpg"}
    res = run_cli("dupes", "--similar", "--kind", "video", "--format", "json", catalog=fast)
    assert {Path(r["path"]).name for r in json.loads(res.out)} == {"a.mp4", "a_small.mp4"}

    out = json.loads(run_cli("meta", "--json", catalog=fast).out)
    assert (out["files"], out["fingerprinted"], out["failed"]) == (0, 1, 0)  # the song
    assert rows(fast, pending) == [{"n": 0}]
    for table in ("image_hashes", "video_hashes", "audio_hashes"):
        sql = f"SELECT * FROM {table} ORDER BY ALL"
        assert rows(fast, sql) == rows(full, sql), table
    assert without_fingerprint() == 1  # the cut picture, whose fingerprint failed
    cut = rows(fast, "SELECT e.stage FROM meta_errors e JOIN files f USING (blake3) WHERE f.name = 'p2_cut.jpg'")
    assert cut == [{"stage": "fingerprint"}]
    out = json.loads(run_cli("meta", "--json", catalog=fast).out)
    assert (out["files"], out["fingerprinted"]) == (0, 0)
    # Told to retry, the extraction reads it again, fingerprint and all, and its pixels fail
    # once more: one row says so (the catch-up after it does not try them a second time).
    out = json.loads(run_cli("meta", "--json", "--retry-failed", catalog=fast).out)
    assert (out["files"], out["partial"], out["fingerprinted"], out["fingerprint_failed"]) == (1, 1, 0, 0), out
    cut = rows(fast, "SELECT e.stage FROM meta_errors e JOIN files f USING (blake3) WHERE f.name = 'p2_cut.jpg'")
    assert cut == [{"stage": "decode"}]


def test_a_clip_cut_by_a_second_and_still_footage_never_group(tmp_path: Path) -> None:
    """QA findings. A clip cut by a second shows the same frames at the same fractions of
    its length where the picture changes little, and lengths agreed within 2% (at least
    1 s): it grouped with its whole, and `dedupe --similar` kept the cut one for its
    bitrate. Lengths agree within a quarter second now (a thousandth of the longer past
    that). And footage whose frames barely change (a still with sound, a static camera)
    has a fingerprint that cannot tell another stretch or recording of the scene from a
    copy: clips of one still scene of one length all grouped, and of lengths 2, 3 and 4 s
    chained the 2 s one to the 4 s one. They are left out, and counted on stderr."""
    lib = tmp_path / "videos"
    lib.mkdir()
    for secs in (2, 3, 4):
        _clip(lib / f"still_{secs}s.mp4", [7] * (secs * 2), (160, 120), "20")
    _clip(lib / "still_3s_again.mp4", [7] * 6, (160, 120), "35")
    # Two scenes of 6 s each; the cut one loses its first second, so its middle frame
    # (5.5 s) falls in the second scene as the whole's (6 s) does.
    _clip(lib / "scenes.mp4", [1] * 12 + [2] * 12, (160, 120), "20")
    _clip(lib / "scenes_again.mp4", [1] * 12 + [2] * 12, (160, 120), "35")
    _clip(lib / "scenes_cut.mp4", [1] * 10 + [2] * 12, (160, 120), "18")
    catalog = tmp_path / "cat.duckdb"
    groups = _scanned_groups(lib, catalog, "video")
    assert list(groups.values()) == [{"scenes.mp4", "scenes_again.mp4"}]
    res = run_cli("dupes", "--similar", "--kind", "video", catalog=catalog)
    assert res.rc == 0 and "4 videos whose frames barely change" in res.err, res.err
    # (A QA finding: with no --kind, "0 groups" said nothing of the videos not compared.)
    res = run_cli("dupes", "--similar", catalog=catalog)
    assert res.rc == 0 and res.out == "0 groups, 0 B reclaimable\n", res.out
    assert "the catalog's videos and sound (7 files) are compared with --kind video" in res.err, res.err
    res = run_cli("dedupe", "--similar", "--kind", "video", "--json", catalog=catalog)
    assert res.rc == 0, res.err
    assert [Path(s["trash"]).name for s in json.loads(res.out)["steps"]] == ["scenes_again.mp4"]


def test_a_copy_damaged_in_the_middle_groups_with_its_whole_original_which_stays(tmp_path: Path) -> None:
    """A QA finding: a stretch of a copy overwritten (a bad sector, a broken transfer) made
    libav's decoder refuse the data on the way to one fingerprint frame, and the whole
    fingerprint was lost: the damaged copy never grouped with its whole original. That
    position is left out now, the extraction notes where (`decode`, so `partial`), and
    `dedupe --similar` keeps the whole one."""
    lib = tmp_path / "videos"
    lib.mkdir()
    _clip(lib / "whole.mp4", list(range(60, 100)), (320, 240), "18")
    data = bytearray((lib / "whole.mp4").read_bytes())
    middle = len(data) // 2
    data[middle:middle + len(data) // 8] = random.Random(7).randbytes(len(data) // 8)
    (lib / "damaged.mp4").write_bytes(bytes(data))
    catalog = tmp_path / "cat.duckdb"
    groups = _scanned_groups(lib, catalog, "video")
    assert list(groups.values()) == [{"whole.mp4", "damaged.mp4"}]
    got = {r["name"]: r for r in rows(catalog, """SELECT f.name, m.status, (SELECT count(*) FROM video_hashes h
                                                  WHERE h.blake3 = f.blake3) AS frames FROM files f JOIN media m
                                                  USING (blake3)""")}
    assert got["whole.mp4"]["status"] == "ok" and got["whole.mp4"]["frames"] == 9, got
    assert got["damaged.mp4"]["status"] == "partial" and 3 <= got["damaged.mp4"]["frames"] < 9, got
    res = run_cli("dedupe", "--similar", "--kind", "video", "--json", catalog=catalog)
    assert res.rc == 0, res.err
    assert [(Path(s["keep"]).name, Path(s["trash"]).name) for s in json.loads(res.out)["steps"]] == [
        ("whole.mp4", "damaged.mp4")]
    # A catalog of schema 27 holds the failure: its upgrade has the next scan try again.
    import duckdb

    damaged = "SELECT blake3 FROM files WHERE name = 'damaged.mp4'"
    con = duckdb.connect(str(catalog))
    con.execute(f"DELETE FROM video_hashes WHERE blake3 IN ({damaged})")
    con.execute(f"DELETE FROM meta_errors WHERE blake3 IN ({damaged})")
    message = "InvalidDataError: Invalid data found when processing input: 'avcodec_send_packet()'"
    con.execute("INSERT INTO meta_errors SELECT blake3, path, path_bytes, 'fingerprint', ?, now() FROM files "
                "WHERE name = 'damaged.mp4'", [message])
    con.execute("DELETE FROM similar_groups")
    con.execute("UPDATE meta SET value = '27' WHERE key = 'schema_version'")
    con.close()
    assert _scanned_groups(lib, catalog, "video") == groups
    assert rows(catalog, f"SELECT stage FROM meta_errors WHERE blake3 IN ({damaged})") == [{"stage": "decode"}]


def test_clips_of_one_layout_in_other_colours_never_group_but_a_grey_copy_does(tmp_path: Path) -> None:
    """A QA finding: video fingerprints are the pHashes of frames, which see brightness
    alone: clips of one layout in other colours (one title style, one app's screen
    recordings) lay a few bits apart and grouped, and `dedupe --similar` would have
    trashed all but one. Each frame's colours are kept now, as a picture's are, and most
    frames must agree; a grey copy says nothing of colour and groups with its original,
    but never joins a clip of other colours to it, whichever leads."""
    from PIL import ImageOps

    def tint(colour: str) -> Callable[[Image.Image], Image.Image]:
        return lambda im: ImageOps.colorize(im.convert("L"), "black", colour)

    lib = tmp_path / "videos"
    lib.mkdir()
    seeds = [31, 32, 33, 34, 35, 36, 37, 38, 39, 40] * 2
    _clip(lib / "red.mp4", seeds, (160, 120), "30", look=tint("#ff6060"))
    _clip(lib / "red_again.mp4", seeds, (160, 120), "36", look=tint("#ff6060"))
    _clip(lib / "cyan.mp4", seeds, (160, 120), "30", look=tint("#30c0c0"))
    _clip(lib / "grey.mp4", seeds, (160, 120), "8", look=lambda im: im.convert("L").convert("RGB"))
    catalog = tmp_path / "cat.duckdb"
    groups = _scanned_groups(lib, catalog, "video")
    assert sorted(groups.values(), key=len) == [{"grey.mp4", "red.mp4", "red_again.mp4"}] or \
        sorted(groups.values(), key=len) == [{"cyan.mp4", "grey.mp4"}, {"red.mp4", "red_again.mp4"}], groups
    near = rows(catalog, """SELECT count(*) AS n FROM video_hashes a JOIN video_hashes b USING (k)
                            JOIN files fa ON fa.blake3 = a.blake3 JOIN files fb ON fb.blake3 = b.blake3
                            WHERE fa.name = 'red.mp4' AND fb.name = 'cyan.mp4'
                              AND bit_count(xor(a.phash, b.phash)) <= 8""")[0]["n"]
    assert near >= 7, near  # the pHash alone would have grouped them
    assert rows(catalog, "SELECT count(*) FILTER (WHERE grey) AS grey, count(chroma) AS measured, count(*) AS n "
                         "FROM video_hashes JOIN files f USING (blake3) WHERE f.name = 'grey.mp4'") == [
        {"grey": 9, "measured": 9, "n": 9}]
    # The grey copy has the highest bitrate; `--keep best` keeps a colour one all the same.
    res = run_cli("dedupe", "--similar", "--kind", "video", "--json", catalog=catalog)
    assert res.rc == 0, res.err
    steps = json.loads(res.out)["steps"]
    assert {Path(s["trash"]).name for s in steps} >= {"grey.mp4"}
    assert "grey.mp4" not in {Path(s["keep"]).name for s in steps}
    # A catalog of schema 27 (no colours) drops the fingerprints of the videos its last
    # search grouped (red's group here), and their groups; the next search makes them
    # again, with colours, and those of the others that pair with any video (each does).
    import duckdb

    grouped = next(g for g in groups.values() if "red.mp4" in g)
    con = duckdb.connect(str(catalog))
    con.execute("UPDATE video_hashes SET grey = NULL, chroma = NULL")
    con.execute("""DELETE FROM similar_groups WHERE method = 'video' AND group_id <> (
                   SELECT group_id FROM similar_groups JOIN files f USING (blake3) WHERE f.name = 'red.mp4')""")
    con.execute("UPDATE meta SET value = '27' WHERE key = 'schema_version'")
    con.close()
    assert run_cli("stats", catalog=catalog).rc == 0  # opening it upgrades it
    kept = {r["name"] for r in rows(catalog, "SELECT DISTINCT f.name FROM video_hashes JOIN files f USING (blake3)")}
    assert kept == {"red.mp4", "red_again.mp4", "cyan.mp4", "grey.mp4"} - grouped
    assert rows(catalog, "SELECT count(*) AS n FROM similar_groups WHERE method = 'video'") == [{"n": 0}]
    res = run_cli("dupes", "--similar", "--kind", "video", "--format", "json", catalog=catalog)
    assert res.rc == 0, res.err
    assert f"{len(kept)} video{'' if len(kept) == 1 else 's'} fingerprinted by an older MediaForge" in res.err, res.err
    again: dict[int, set[str]] = {}
    for r in json.loads(res.out):
        again.setdefault(r["group"], set()).add(Path(r["path"]).name)
    assert again == groups
    assert rows(catalog, "SELECT count(*) FILTER (WHERE grey IS NULL) AS old, count(*) AS n FROM video_hashes") == [
        {"old": 0, "n": 36}]


def test_near_duplicate_pictures_leave_out_animations_and_tiny_ones_and_keep_colour(tmp_path: Path) -> None:
    """QA findings: an animation whose first frame is a photo was trashed as a copy of the
    photo; 2x2 and 3x3 pictures of random pixels grouped, and so did strips one or two
    pixels tall of unrelated random walks; `--keep best` kept a grey copy (bigger,
    16-bit) over the colour original, which pHash and pixel counts tie with."""
    lib = tmp_path / "lib"
    lib.mkdir()
    photo = _photo(3)
    photo.save(lib / "colour.jpg", quality=80)
    photo.convert("I;16").save(lib / "grey16.png")
    frames = [photo, _photo(4)]
    frames[0].save(lib / "anim.gif", save_all=True, append_images=frames[1:], duration=200)
    rnd = random.Random(5)
    for i in range(12):
        side = 2 + i % 2
        Image.frombytes("RGB", (side, side), bytes(rnd.randrange(256) for _ in range(3 * side * side))).save(
            lib / f"tiny{i}.png")
    for i in range(30):  # 2000x1 and 1000x2: no two alike
        walk = [0.0]
        for _ in range(1999):
            walk.append(walk[-1] + rnd.gauss(0, 1))
        lo, hi = min(walk), max(walk)
        row = bytes(int(255 * (v - lo) / (hi - lo)) for v in walk)
        size = (2000, 1) if i % 2 else (1000, 2)
        Image.frombytes("L", size, row).save(lib / f"strip{i}.png")
    catalog = tmp_path / "cat.duckdb"
    groups = _scanned_groups(lib, catalog, "image")
    assert list(groups.values()) == [{"colour.jpg", "grey16.png"}], groups
    res = run_cli("dedupe", "--similar", "--json", catalog=catalog)
    assert res.rc == 0, res.err
    steps = json.loads(res.out)["steps"]
    assert [(Path(s["keep"]).name, Path(s["trash"]).name) for s in steps] == [("colour.jpg", "grey16.png")], steps
    res = run_cli("dupes", "--threshold", "4", catalog=catalog)
    assert res.rc == 2 and "--threshold is for --similar" in res.err, res.err
    for both in (("--exact", "--similar"), ("--similar", "--exact")):  # neither silently wins
        res = run_cli("dupes", *both, catalog=catalog)
        assert res.rc == 2 and "give one of them" in res.err, res.err


def test_a_black_and_white_photo_saved_in_colour_is_grey_to_keep_best(tmp_path: Path) -> None:
    """A QA finding: a black-and-white copy saved as RGB (as editors and phone filters
    save one), a bigger file, was kept over the colour original: grey was told by the
    mode alone. It is measured on the pixels the hash's decode holds; a sepia copy is
    colour. A picture hashed from a grey decode alone (no thumbnails) is not measured."""
    from PIL import ImageOps

    lib = tmp_path / "lib"
    lib.mkdir()
    photo = _photo(21).resize((1280, 960))
    photo.save(lib / "IMG_0001.jpg", quality=85)
    bw = ImageOps.grayscale(photo)
    bw.convert("RGB").save(lib / "IMG_0001_bw.jpg", quality=100)
    ImageOps.colorize(bw, (40, 20, 0), (255, 240, 200)).save(lib / "IMG_0001_sepia.png")
    assert (lib / "IMG_0001_bw.jpg").stat().st_size > (lib / "IMG_0001.jpg").stat().st_size
    catalog = tmp_path / "cat.duckdb"
    groups = _scanned_groups(lib, catalog, "image")
    # The sepia print's colours lie apart from the original's: never one group; the grey
    # copy groups with one of them.
    assert len(groups) == 1 and "IMG_0001_bw.jpg" in groups[1] and len(groups[1]) == 2, groups
    grey = {r["name"]: r["grey"] for r in rows(catalog, "SELECT f.name, h.grey FROM files f JOIN image_hashes h "
                                                        "USING (blake3)")}
    assert grey == {"IMG_0001.jpg": False, "IMG_0001_bw.jpg": True, "IMG_0001_sepia.png": False}, grey
    plan = json.loads(run_cli("dedupe", "--similar", "--keep", "best", "--json", catalog=catalog).out)
    assert [Path(s["trash"]).name for s in plan["steps"]] == ["IMG_0001_bw.jpg"], plan
    # Without the sepia print, the colour original and its grey copy: the original stays.
    (lib / "IMG_0001_sepia.png").unlink()
    assert _scanned_groups(lib, catalog, "image") == {1: {"IMG_0001.jpg", "IMG_0001_bw.jpg"}}
    plan = json.loads(run_cli("dedupe", "--similar", "--keep", "best", "--json", catalog=catalog).out)
    assert [(Path(s["keep"]).name, Path(s["trash"]).name) for s in plan["steps"]] == [("IMG_0001.jpg",
                                                                                       "IMG_0001_bw.jpg")], plan
    # Hashed without a thumbnail, from a grey decode: the colour is measured all the same
    # (the last session's note: it was not, and groups went by pHash alone), from the
    # chroma's DC coefficients on the Rust core's path, and agrees with the thumbnail's.
    bare = tmp_path / "bare.duckdb"
    assert run_cli("scan", lib, "--no-thumbs", catalog=bare).rc == 0
    measured = {r["name"]: (r["grey"], r["chroma"]) for r in rows(
        bare, "SELECT f.name, h.grey, h.chroma FROM files f JOIN image_hashes h USING (blake3)")}
    assert {n: g for n, (g, _) in measured.items()} == {"IMG_0001.jpg": False, "IMG_0001_bw.jpg": True}, measured
    thumbed = {r["name"]: r["chroma"] for r in rows(catalog, "SELECT f.name, h.chroma FROM files f "
                                                             "JOIN image_hashes h USING (blake3)")}
    for name, (_, chroma) in measured.items():
        assert max(abs(a - b) for a, b in zip(chroma, thumbed[name], strict=True)) <= 3, (name, chroma, thumbed[name])
    res = run_cli("dupes", "--similar", catalog=bare)
    assert res.rc == 0 and "without measuring colour" not in res.err, res
    # Hashed by a version before schema 23 (or by one that measured no colour under
    # --no-thumbs): grouped by pHash alone, and the mode (RGB) tells, as before.
    import duckdb

    with duckdb.connect(str(bare)) as con:
        con.execute("UPDATE image_hashes SET grey = NULL, chroma = NULL")
    res = run_cli("dupes", "--similar", catalog=bare)
    assert res.rc == 0 and "2 pictures of these groups were fingerprinted without measuring colour" in res.err, res
    assert run_cli("thumbs", catalog=bare).rc == 0
    res = run_cli("dupes", "--similar", catalog=bare)
    assert res.rc == 0 and "without measuring colour" not in res.err, res
    assert rows(bare, "SELECT count(*) AS n FROM image_hashes WHERE grey IS NULL OR chroma IS NULL") == [{"n": 0}]
    lone = tmp_path / "lone"
    lone.mkdir()
    photo.convert("L").save(lone / "grey_mode.png")
    assert run_cli("scan", lone, "--no-thumbs", catalog=bare).rc == 0
    assert rows(bare, "SELECT h.grey FROM files f JOIN image_hashes h USING (blake3) WHERE f.name = 'grey_mode.png'") \
        == [{"grey": True}]


def test_edits_a_third_brighter_darker_or_more_saturated_stay_with_their_photo(tmp_path: Path) -> None:
    """QA: the colour split went around the group's leader, one of its edits as often as
    not, and a third brighter and a third darker copy of one photo (each within 20
    levels of it, over 28 of each other) were split into two groups. Each set now goes
    around the picture that agrees with the most others: the photo."""
    import numpy as np
    from PIL import ImageDraw, ImageFilter

    lib = tmp_path / "lib"
    lib.mkdir()
    families = {}
    for seed in range(6):
        rng = np.random.default_rng(seed)
        w, h = 1024, 768
        t = np.linspace(0, 1, w)[None, :, None]
        im = Image.fromarray((rng.integers(0, 256, 3) * (1 - t) + rng.integers(0, 256, 3) * t
                              + np.zeros((h, 1, 1))).astype(np.uint8))
        draw = ImageDraw.Draw(im)
        for _ in range(10):
            x, y = rng.integers(0, w), rng.integers(0, h)
            draw.ellipse([x, y, x + rng.integers(60, 300), y + rng.integers(60, 300)],
                         fill=tuple(int(v) for v in rng.integers(0, 256, 3)))
        im = im.filter(ImageFilter.GaussianBlur(1))
        im.save(lib / f"s{seed}_orig.jpg", quality=92)
        names = {f"s{seed}_orig.jpg"}
        for name, edited in (("bright", ImageEnhance.Brightness(im).enhance(1.33)),
                             ("dark", ImageEnhance.Brightness(im).enhance(0.67)),
                             ("sat", ImageEnhance.Color(im).enhance(1.33)),
                             ("desat", ImageEnhance.Color(im).enhance(0.67))):
            edited.save(lib / f"s{seed}_{name}.jpg", quality=90)
            names.add(f"s{seed}_{name}.jpg")
        families[seed] = names
    catalog = tmp_path / "cat.duckdb"
    groups = _scanned_groups(lib, catalog, "image")
    for seed, names in families.items():
        holding = [g for g in groups.values() if g & names]
        assert holding == [names], (seed, holding)
    # Files not compared are said: those no extraction read yet.
    # Files, not contents, are counted (a copy is a file the user looks for).
    (lib / "later.jpg").write_bytes((lib / "s0_orig.jpg").read_bytes() + b"\0")
    shutil.copy(lib / "later.jpg", lib / "later_copy.jpg")
    assert run_cli("scan", "--no-meta", lib, catalog=catalog).rc == 0
    res = run_cli("dupes", "--similar", catalog=catalog)
    assert res.rc == 0 and ("mediaforge: note: of the image files, 2 have no metadata yet (`mediaforge meta` reads "
                            "them): they are not compared") in res.err, res.err


def test_pictures_whose_colours_lie_apart_are_no_near_copies(tmp_path: Path) -> None:
    """A QA finding: a red and a blue gradient (pHash 6 bits apart) and a photo with a
    green disc painted over its middle (4 bits from the photo) grouped at the default
    threshold, and `dedupe --similar` would have trashed one: pHash sees brightness
    alone. Each picture's 3x3 colour layout is kept beside its hash, and a picture whose
    colours lie clearly apart from its group's leader's is left out; a brightened copy
    and a grey one still group with their photo."""
    from PIL import ImageDraw, ImageEnhance

    lib = tmp_path / "lib"
    lib.mkdir()
    photo = _photo(31).resize((1600, 1200))
    photo.save(lib / "photo.jpg", quality=90)
    ImageEnhance.Brightness(photo).enhance(1.2).save(lib / "brighter.jpg", quality=90)
    photo.convert("L").save(lib / "grey.png")
    disc = photo.copy()
    ImageDraw.Draw(disc).ellipse((600, 400, 1000, 800), fill=(40, 200, 60))
    disc.save(lib / "painted.jpg", quality=90)
    ramp = Image.linear_gradient("L").resize((800, 600)).rotate(90)
    dark = Image.new("L", ramp.size, 0)
    Image.merge("RGB", (ramp, dark, dark)).save(lib / "red.png")
    Image.merge("RGB", (dark, dark, ramp)).save(lib / "blue.png")
    catalog = tmp_path / "cat.duckdb"
    groups = _scanned_groups(lib, catalog, "image")
    assert sorted(groups.values(), key=len) == [{"photo.jpg", "brighter.jpg", "grey.png"}], groups
    ph = {r["name"]: r for r in rows(catalog, "SELECT f.name, h.phash, h.chroma FROM files f "
                                              "JOIN image_hashes h USING (blake3)")}
    assert all(len(r["chroma"]) == 18 for r in ph.values()), ph
    # What the guard is for: these lie within the default threshold by pHash alone.
    assert bin(ph["red.png"]["phash"] ^ ph["blue.png"]["phash"]).count("1") <= 8
    assert bin(ph["painted.jpg"]["phash"] ^ ph["photo.jpg"]["phash"]).count("1") <= 8
    # A review finding: with a grey version of the ramp as a group's leader, red and blue
    # were compared with it alone (grey agrees with every colour), and grouped; and a
    # pair left out went unreported though it was a pair of copies. Colour members agree
    # with each other now, and those who leave are grouped again among themselves.
    ramps = tmp_path / "ramps"
    ramps.mkdir()
    Image.merge("RGB", (ramp, dark, dark)).save(ramps / "red.png")
    Image.merge("RGB", (ramp, dark, dark)).save(ramps / "red_copy.jpg", quality=85)
    Image.merge("RGB", (dark, dark, ramp)).save(ramps / "blue.png")
    Image.merge("RGB", (dark, dark, ramp)).save(ramps / "blue_copy.jpg", quality=85)
    ramp.save(ramps / "grey.png")
    got = _scanned_groups(ramps, tmp_path / "ramps.duckdb", "image")
    assert all(not {"red.png", "blue.png"} <= g and not {"red_copy.jpg", "blue_copy.jpg"} <= g for g in got.values()), got
    assert any({"red.png", "red_copy.jpg"} <= g for g in got.values()), got
    assert any({"blue.png", "blue_copy.jpg"} <= g for g in got.values()), got
    # A review finding: a leader alone in its colour took its group's others with it.
    lone = tmp_path / "lone"
    lone.mkdir()
    for name in ("red.png", "blue.png", "blue_copy.jpg"):
        shutil.copy(ramps / name, lone / name)
    assert list(_scanned_groups(lone, tmp_path / "lone.duckdb", "image").values()) == [{"blue.png", "blue_copy.jpg"}]


def test_a_group_whose_leader_is_gone_is_left_out_of_the_plan(tmp_path: Path) -> None:
    """A QA finding: burst shots grouped around the middle one; that one moved away and
    the library rescanned, `dedupe --similar` trashed a shot 10 bits from the one it
    kept, past the threshold: members are near their leader, not always each other. So
    did a later QA with the leader gone and no scan since: a leader the catalog has as
    present is looked for on its disk."""
    lib = tmp_path / "lib"
    lib.mkdir()
    base = _photo(11).resize((1600, 1200))
    shots = {}
    for dx in (0, 10, 25, 50):
        shots[dx] = lib / f"b{dx}.jpg"
        base.crop((dx, 0, dx + 1400, 1050)).save(shots[dx], quality=90)
    catalog = tmp_path / "cat.duckdb"
    assert run_cli("scan", lib, catalog=catalog).rc == 0
    res = run_cli("dupes", "--similar", "--format", "json", catalog=catalog)
    assert res.rc == 0, res.err
    got = json.loads(res.out)
    leaders = [Path(r["path"]).name for r in got if r["leader"]]
    assert len(leaders) == 1 and len(got) >= 3, got
    shutil.move(lib / leaders[0], tmp_path / leaders[0])
    for apply in ((), ("--apply",)):  # not scanned since
        res = run_cli("dedupe", "--similar", "--json", *apply, catalog=catalog)
        assert res.rc == 0, res.err
        out = json.loads(res.out)
        assert (out["steps"], out["groups_left_out"]) == ([], 1), out
        assert "1 group left out: the file each was found around is gone or changed since" in res.err, res.err
    assert sorted(p.name for p in lib.iterdir()) == sorted(p.name for p in shots.values() if p.name != leaders[0])
    # The leader put back in its place with another mtime is not the one grouped either.
    shutil.copy(tmp_path / leaders[0], lib / leaders[0])
    res = run_cli("dedupe", "--similar", "--json", catalog=catalog)
    assert (res.rc, json.loads(res.out)["groups_left_out"]) == (0, 1), res
    (lib / leaders[0]).unlink()
    assert run_cli("scan", lib, catalog=catalog).rc == 0
    res = run_cli("dedupe", "--similar", "--json", catalog=catalog)
    assert res.rc == 0, res.err
    assert json.loads(res.out)["steps"] == []
    assert "1 group left out: the file each was found around is gone or changed since" in res.err, res.err
    # Grouped again, the rest are what they are.
    assert run_cli("dupes", "--similar", catalog=catalog).rc == 0
    res = run_cli("dedupe", "--similar", "--json", catalog=catalog)
    assert res.rc == 0 and "left out" not in res.err, res.err


def test_a_dedupe_run_again_goes_on_with_groups_whose_leader_it_moved(tmp_path: Path) -> None:
    """The last session's note: an `--apply` run again after it stopped part way left out
    each group whose leader the first run had moved to the trash, though that was the
    plan it was carrying out. It goes on now, while it keeps the file the first run kept;
    a plan that would keep another, or a journal undone, leaves the group out as before."""
    lib = tmp_path / "lib"
    photo = _photo(23).resize((1600, 1200))
    for folder, size, quality in (("a", (1600, 1200), 92), ("b", (1200, 900), 88), ("c", (800, 600), 85)):
        (lib / folder).mkdir(parents=True)
        photo.resize(size).save(lib / folder / "p.jpg", quality=quality)
    catalog = tmp_path / "cat.duckdb"
    assert run_cli("scan", lib, catalog=catalog).rc == 0
    res = run_cli("dupes", "--similar", "--format", "json", catalog=catalog)
    assert res.rc == 0, res.err
    got = json.loads(res.out)
    assert len(got) == 3, got
    (leader,) = [Path(r["path"]).parent.name for r in got if r["leader"]]
    kept, other = [f for f in "abc" if f != leader]
    keep = f"prefix:{lib / kept}"
    # The first run moves the leader and stops before the other (here: the other's bytes
    # differ while it runs, so it is skipped; a Ctrl-C leaves the same behind).
    victim = lib / other / "p.jpg"
    before, st = victim.read_bytes(), victim.stat()
    victim.write_bytes(before[:-100] + bytes(100))
    res = run_cli("dedupe", "--similar", "--keep", keep, "--apply", "--json", catalog=catalog)
    assert res.rc == 8, res.err
    first = json.loads(res.out)
    assert (first["done"], len(first["skipped"])) == (1, 1), first
    assert not (lib / leader / "p.jpg").exists()
    victim.write_bytes(before)
    os.utime(victim, ns=(st.st_atime_ns, st.st_mtime_ns))
    # A plan that keeps another file than the first run kept: left out, as before.
    res = run_cli("dedupe", "--similar", "--keep", f"prefix:{lib / other}", "--json", catalog=catalog)
    assert res.rc == 0, res.err
    assert (json.loads(res.out)["steps"], json.loads(res.out)["groups_left_out"]) == ([], 1), res.out
    for apply in ((), ("--apply",)):
        res = run_cli("dedupe", "--similar", "--keep", keep, "--json", *apply, catalog=catalog)
        out = json.loads(res.out)
        assert res.rc == 0, (out["skipped"], res.err)
        assert out["groups_left_out"] == 0 and "left out" not in res.err, (out, res.err)
        assert [Path(s["keep"]).parent.name for s in out["steps"]] == [kept], out
        assert [Path(s["trash"]).parent.name for s in out["steps"]] == [other], out
        # The leader the first run moved: done before this run, neither a step nor a skip.
        assert (out["already_linked"], out["skipped"]) == (1, []), out
    assert sorted(p.parent.name for p in lib.rglob("*.jpg")) == [kept]
    # Both runs undone, the last first: every file back. A journal undone is no plan to
    # go on with: with the other file out of place again, its group is left out.
    for journal in (out["journal"], first["journal"]):
        assert run_cli("dedupe", "--undo", journal, catalog=catalog).rc == 0
    assert sorted(p.parent.name for p in lib.rglob("*.jpg")) == ["a", "b", "c"]
    shutil.move(lib / leader / "p.jpg", tmp_path / "away.jpg")
    res = run_cli("dedupe", "--similar", "--keep", keep, "--json", catalog=catalog)
    assert (res.rc, json.loads(res.out)["groups_left_out"]) == (0, 1), res


@pytest.mark.parametrize("older", ["k.jpg", "v.jpg"])
def test_exact_reclaimable_is_what_dedupe_frees_with_a_link_outside_the_library(tmp_path: Path, older: str) -> None:
    """A QA finding: a copy with a second name outside the library frees nothing when it
    goes, yet `dupes` counted it: 262,530 reclaimable where `dedupe` freed 0 B."""
    lib, outside = tmp_path / "lib", tmp_path / "outside"
    lib.mkdir()
    outside.mkdir()
    data = os.urandom(50_000)
    for name in ("k.jpg", "v.jpg"):
        (lib / name).write_bytes(data)
    os.link(lib / "v.jpg", outside / "v elsewhere.jpg")
    os.utime(lib / older, (1_500_000_000, 1_500_000_000))
    catalog = tmp_path / "cat.duckdb"
    assert run_cli("scan", lib, "--no-meta", catalog=catalog).rc == 0
    res = run_cli("dupes", "--format", "json", catalog=catalog)
    assert res.rc == 0, res.err
    (reclaimable,) = {r["reclaimable"] for r in json.loads(res.out)}
    res = run_cli("dedupe", "--json", catalog=catalog)
    assert res.rc == 0, res.err
    assert reclaimable == json.loads(res.out)["reclaimable"] == (0 if older == "k.jpg" else 50_000)


def test_a_link_out_of_the_library_is_no_copy_for_dupes_as_for_dedupe(tmp_path: Path) -> None:
    """A QA finding: with `scan -L`, a link in the library to a file on another disk was a
    third copy for `dupes` (400 KB reclaimable) where `dedupe`, which neither keeps nor
    acts on such a file, freed 200 KB. A link to a file inside the library is that file."""
    lib, outside = tmp_path / "lib", tmp_path / "usb"
    (lib / "a").mkdir(parents=True)
    (lib / "b").mkdir()
    outside.mkdir()
    data = os.urandom(20_000)
    for p in (lib / "a" / "x.jpg", lib / "b" / "x.jpg", outside / "e.jpg"):
        p.write_bytes(data)
    os.utime(outside / "e.jpg", (1_000_000_000, 1_000_000_000))  # the oldest: kept, were it the library's
    (lib / "usb.jpg").symlink_to(outside / "e.jpg")
    (lib / "inside.jpg").symlink_to(lib / "a" / "x.jpg")
    catalog = tmp_path / "cat.duckdb"
    assert run_cli("scan", "-L", "--no-meta", lib, catalog=catalog).rc == 0
    res = run_cli("dupes", "--format", "json", catalog=catalog)
    assert res.rc == 0, res.err
    found = json.loads(res.out)
    assert sorted(Path(r["path"]).relative_to(lib).as_posix() for r in found) == ["a/x.jpg", "b/x.jpg", "inside.jpg"]
    assert {(r["group"], r["copies"], r["reclaimable"]) for r in found} == {(1, 3, 20_000)}
    res = run_cli("dedupe", "--json", catalog=catalog)
    assert res.rc == 0, res.err
    plan = json.loads(res.out)
    assert plan["reclaimable"] == 20_000 and [s["group"] for s in plan["steps"]] == [1]


def test_best_keeps_the_camera_s_original_over_a_copy_of_its_pixels_that_lost_its_exif(tmp_path: Path) -> None:
    """A QA finding: `--keep best` ranked pictures of one size by file size alone, and
    trashed the camera's original (with its EXIF: camera, date taken, GPS) for a PNG
    export or a re-save at a higher quality, bigger files that hold no more. A picture
    whose EXIF names its camera stays; the dry run names each one's camera, or says it
    has none. One with more pixels still wins (an upscaled copy: the dry run shows it)."""
    lib = tmp_path / "lib"
    lib.mkdir()
    exif = Image.Exif()
    exif[0x010F], exif[0x0110] = "Canon", "Canon EOS R5"
    exif.get_ifd(0x8769)[0x9003] = "2019:07:14 10:30:05"
    _photo(31).resize((1200, 800)).save(lib / "IMG_0001.jpg", quality=85, exif=exif)
    with Image.open(lib / "IMG_0001.jpg") as im:
        im.save(lib / "export.png")
        im.save(lib / "resaved.jpg", quality=98)
    for name in ("export.png", "resaved.jpg"):
        assert (lib / name).stat().st_size > (lib / "IMG_0001.jpg").stat().st_size
    catalog = tmp_path / "cat.duckdb"
    assert _scanned_groups(lib, catalog, "image") == {1: {"IMG_0001.jpg", "export.png", "resaved.jpg"}}
    plan = json.loads(run_cli("dedupe", "--similar", "--json", catalog=catalog).out)
    assert {Path(s["keep"]).name for s in plan["steps"]} == {"IMG_0001.jpg"}, plan
    res = run_cli("dedupe", "--similar", catalog=catalog)
    assert res.rc == 0, res.err
    assert "IMG_0001.jpg (1200x800, Canon EOS R5," in res.out, res.out
    assert "export.png (1200x800, no camera EXIF," in res.out, res.out
    # A re-save whose editor wrote only its own name and a date is no camera's.
    edited = Image.Exif()
    edited[0x0131], edited[0x0132] = "GIMP 2.10.34", "2024:03:01 12:00:00"
    with Image.open(lib / "IMG_0001.jpg") as im:
        im.save(lib / "resaved.jpg", quality=98, exif=edited)
    assert _scanned_groups(lib, catalog, "image") == {1: {"IMG_0001.jpg", "export.png", "resaved.jpg"}}
    plan = json.loads(run_cli("dedupe", "--similar", "--json", catalog=catalog).out)
    assert {Path(s["keep"]).name for s in plan["steps"]} == {"IMG_0001.jpg"}, plan


def test_best_counts_a_raw_of_unknown_mode_as_colour_and_groups_a_jpeg_with_its_preview(tmp_path: Path) -> None:
    """Review findings: a RAW has no Pillow mode, and the colour-over-grey rule ranked it
    under its camera JPEG of the same pixels, so `--keep best` trashed the RAW; and a JPEG
    carrying a preview (MPO, two frames) was left out with the animations."""
    import duckdb

    from mediaforge.dupes.find import BEST_ORDER

    con = duckdb.connect()
    con.execute("CREATE TABLE tags_audio (blake3 VARCHAR, lossless BOOLEAN, has_cover BOOLEAN)")
    con.execute("CREATE TABLE image_hashes (blake3 VARCHAR, grey BOOLEAN)")  # (none measured)
    con.execute("CREATE TABLE video_hashes (blake3 VARCHAR, grey BOOLEAN)")
    con.execute("CREATE TABLE meta_errors (blake3 VARCHAR, stage VARCHAR)")
    con.execute("CREATE TABLE exif (blake3 VARCHAR, make VARCHAR, model VARCHAR, taken_at TIMESTAMP)")
    # (A review finding: a RAW whose EXIF the catalog does not hold, a CR3 or RAF, lost to
    # its camera JPEG, whose EXIF names the camera: a RAW is as the camera wrote it.)
    con.execute("INSERT INTO exif VALUES ('j', 'Canon', 'Canon EOS R5', '2019-07-14 10:30:05')")
    con.execute("CREATE TABLE streams (blake3 VARCHAR, type VARCHAR, bitrate BIGINT)")
    con.execute("CREATE TABLE f AS SELECT * FROM (VALUES ('r', 'raw', 25000000, 1, 'IMG_1.CR2'), "
                "('j', 'image', 9000000, 2, 'IMG_1.JPG'), ('g', 'image', 30000000, 3, 'IMG_1 grey.png')) "
                "t(blake3, kind, size, mtime_ns, path)")
    con.execute("CREATE TABLE m AS SELECT * FROM (VALUES ('r', 'raw', 6000, 4000, NULL, NULL, NULL), "
                "('j', 'image', 6000, 4000, 'RGB', NULL, NULL), ('g', 'image', 6000, 4000, 'L', NULL, NULL)) "
                "t(blake3, kind, width, height, mode, bitrate, duration)")
    ranked = con.sql(f"SELECT f.path FROM f JOIN m USING (blake3) ORDER BY {BEST_ORDER}").fetchall()
    assert [p for (p,) in ranked] == ["IMG_1.CR2", "IMG_1.JPG", "IMG_1 grey.png"]
    lib = tmp_path / "lib"
    lib.mkdir()
    photo = _photo(21)
    photo.save(lib / "camera.mpo", "MPO", save_all=True, append_images=[photo.resize((160, 120))])
    photo.save(lib / "copy.jpg", quality=70)
    with Image.open(lib / "camera.mpo") as im:
        assert im.n_frames == 2
    groups = _scanned_groups(lib, tmp_path / "cat.duckdb", "image")
    assert list(groups.values()) == [{"camera.mpo", "copy.jpg"}], groups
