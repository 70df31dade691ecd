"""Planning, the merge, the stored table and the browse data, on chunk files written by hand (no network):
what the web process reads must equal the brute force over the table."""
import json

import numpy as np
import pytest
from PIL import Image

from visnet.scan import (
    ScanOptions,
    create_scan,
    layer_overview,
    resolve_file,
    scan_progress,
    store,
    top_images,
    topk,
    unit_detail,
)
from visnet.scan.merge import ChunksMissing, load_rankings, load_table, merge_scan
from visnet.scan.plan import plan_chunks, projection_blocks
from visnet.scan.progress import busy_seconds
from visnet.scan.units import projected_units

LAYERS = ("block1_pool", "block3_conv1")  # 64 and 256 channels


def write_folder(root, count):
    rng = np.random.default_rng(3)
    names = []
    for index in range(count):
        name = f"{'sub/' if index % 3 else ''}img{index:03d}.png"
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(rng.integers(0, 256, (8, 8, 3), dtype=np.uint8)).save(root / name)
        names.append(name)
    return sorted(names)


def fake_table(record):
    """A tie-heavy (N, C) table per layer, as the network might give (zeros, repeats)."""
    rng = np.random.default_rng(4)
    tables = {}
    for layer in record["layers"]:
        table = rng.integers(0, 6, (len(record["images"]), layer["channels"])).astype(np.float32) / np.float32(3)
        table[rng.random(table.shape) < 0.4] = 0
        tables[layer["name"]] = table
    return tables


def write_chunk(scan_dir, record, index, tables):
    """What compute_chunk writes, without the network."""
    start, stop = record["chunks"][index]
    ids = np.arange(start, stop)
    arrays = {"ids": ids}
    for layer, table in tables.items():
        arrays[f"{layer}/rows"] = table[start:stop]
        arrays.update(topk.rank(table[start:stop], ids, record["options"]["k"]).arrays(f"{layer}/"))
    store.save_npz_atomically(store.chunk_path(scan_dir, index), arrays)
    store.append_execution(scan_dir, "done", chunk=index, images=stop - start, started=100.0 + index, worker="w")
    return arrays


@pytest.fixture
def planned(tmp_path):
    names = write_folder(tmp_path / "images", 23)
    options = ScanOptions(layers=",".join(LAYERS), k=4, chunk_size=5, project_channels=3, project_block=2)
    record = create_scan(tmp_path / "scan", tmp_path / "images", options)
    return tmp_path / "scan", record, names


def test_plan_lists_sorted_images_in_chunks(planned, tmp_path):
    scan_dir, record, names = planned
    assert record["images"] == names
    assert record["chunks"] == [[0, 5], [5, 10], [10, 15], [15, 20], [20, 23]]
    assert record["image_root"] == str((tmp_path / "images").resolve())
    assert json.loads((scan_dir / "scan.json").read_text()) == record
    assert [layer["name"] for layer in record["layers"]] == list(LAYERS)
    assert projection_blocks(record) == [("block1_pool", 0, 2), ("block1_pool", 2, 3),
                                         ("block3_conv1", 0, 2), ("block3_conv1", 2, 3)]
    with pytest.raises(ValueError, match="already holds a scan"):
        create_scan(scan_dir, tmp_path / "images", ScanOptions())


def test_plan_skips_greyscale_and_unreadable_images(tmp_path):
    folder = tmp_path / "images"
    folder.mkdir()
    Image.new("RGB", (9, 9), (10, 200, 30)).save(folder / "colour.png")
    Image.new("L", (9, 9), 50).save(folder / "grey.png")
    Image.new("RGB", (9, 9), (70, 70, 70)).save(folder / "grey_rgb.jpg", quality=95)
    (folder / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 not really")
    kept = create_scan(tmp_path / "a", folder, ScanOptions(skip_grey=True))
    assert kept["images"] == ["colour.png"]
    assert {entry["path"]: entry["reason"].split(":")[0] for entry in kept["skipped"]} == {
        "broken.jpg": "unreadable", "grey.png": "greyscale", "grey_rgb.jpg": "greyscale"}
    everything = create_scan(tmp_path / "b", folder, ScanOptions())
    assert everything["images"] == ["colour.png", "grey.png", "grey_rgb.jpg"]
    with pytest.raises(ValueError, match="no image to scan"):
        create_scan(tmp_path / "c", folder, ScanOptions(skip_grey=True), images=["grey.png"])


@pytest.mark.parametrize("values, message", [
    ({"k": 0}, "k must be"), ({"image_size": 100}, "image_size"), ({"layers": "block9_pool"}, "unknown layer"),
    ({"chunk_size": 0}, "chunk_size"), ({"skip_grey": "yes"}, "skip_grey"), ({"project_k": 10, "k": 9}, "project_k"),
    ({"colour": True}, "unknown scan options"),
])
def test_options_are_checked(values, message):
    with pytest.raises(ValueError, match=message):
        ScanOptions.from_dict(values)


def test_options_round_trip():
    options = ScanOptions(layers="pools", k=3, project_channels=0)
    assert ScanOptions.from_dict(json.loads(json.dumps(options.as_dict()))) == options
    assert plan_chunks(0, 4) == [] and plan_chunks(4, 4) == [[0, 4]]


def test_merge_equals_the_brute_force_and_the_table_answers(planned):
    scan_dir, record, _ = planned
    tables = fake_table(record)
    assert scan_progress(scan_dir)["status"] == "pending"
    for index in (3, 0, 4):  # chunks finish in any order
        write_chunk(scan_dir, record, index, tables)
    progress = scan_progress(scan_dir)
    assert progress["status"] == "scanning" and progress["chunks_done"] == 3 and progress["images_done"] == 13
    with pytest.raises(ChunksMissing, match="2 chunks"):
        merge_scan(scan_dir)
    for index in (2, 1):
        write_chunk(scan_dir, record, index, tables)
    assert scan_progress(scan_dir)["status"] == "merging"

    assert merge_scan(scan_dir) == {"merged": True, "reused": False, "images": 23, "chunks": 5}
    assert merge_scan(scan_dir)["reused"] is True
    for layer, table in tables.items():
        stored = load_table(scan_dir, layer)
        assert stored.dtype == np.float32 and np.array_equal(stored, table)
        brute = topk.brute_force(table, 4)
        assert load_rankings(scan_dir, layer).equals(brute)
        document = json.loads((scan_dir / "topk.json").read_text())["layers"][layer]
        assert document["top_ids"] == brute.top_ids.T.tolist()
        assert np.array_equal(np.array(document["bottom_values"], np.float32), brute.bottom_values.T)
        for channel in (0, 7, table.shape[1] - 1):
            for bottom in (False, True):
                answer = top_images(scan_dir, layer, channel, 6, bottom=bottom)
                expected = topk.brute_force(table[:, [channel]], 6)
                ids = expected.bottom_ids if bottom else expected.top_ids
                values = expected.bottom_values if bottom else expected.top_values
                assert [entry["id"] for entry in answer] == ids[:, 0].tolist()
                assert [entry["mean"] for entry in answer] == values[:, 0].tolist()
                assert [entry["path"] for entry in answer] == [record["images"][i] for i in ids[:, 0]]
    assert scan_progress(scan_dir)["status"] == "projecting"


def merged_scan(planned, dead=(), spread=False):
    """The planned scan with every chunk written from the fake tables (units ``dead`` of block1_pool zero on
    every image; with ``spread``, each unit's column scaled by its own factor, so that units differ in
    their strongest value) and merged; returns (scan_dir, record, tables)."""
    scan_dir, record, _ = planned
    tables = fake_table(record)
    if spread:
        rng = np.random.default_rng(12)
        for table in tables.values():
            table *= (1 + rng.permutation(table.shape[1]) / 64).astype(np.float32)
    tables["block1_pool"][:, list(dead)] = 0
    for index in range(len(record["chunks"])):
        write_chunk(scan_dir, record, index, tables)
    merge_scan(scan_dir)
    return scan_dir, record, tables


def brute_force_choice(table, count):
    """The units a scan projects, by brute force over its table: each column's maximum, highest first,
    ties to the lower index (a plain Python sort)."""
    best = [(-float(table[:, unit].max()), unit) for unit in range(table.shape[1])]
    return [unit for _, unit in sorted(best)[:count]]


def test_the_projected_units_are_those_with_the_highest_top_activation(planned):
    scan_dir, record, tables = merged_scan(planned, spread=True)
    for layer, table in tables.items():
        chosen = projected_units(scan_dir, layer)
        assert chosen == brute_force_choice(table, 3)
        assert chosen != [0, 1, 2]  # the fake tables' strongest units are not the first ones
    # A scan of format 2 projected the first units by index, and is still read that way.
    old = {**record, "version": 2}
    assert projected_units(scan_dir, "block1_pool", old) == [0, 1, 2]


def test_sorting_by_top_activation_and_selectivity_and_dead_units(planned):
    scan_dir, _, tables = merged_scan(planned, dead=(5, 40), spread=True)
    table = tables["block1_pool"].astype(np.float64)
    top, mean, std = table.max(axis=0), table.mean(axis=0), table.std(axis=0)
    page = layer_overview(scan_dir, "block1_pool", per_page=64, sort="top")
    assert [unit["channel"] for unit in page["units"]] == brute_force_choice(tables["block1_pool"], 64)
    assert page["dead_units"] == 2 and page["projected_units"] == 3
    for unit in page["units"]:
        channel = unit["channel"]
        assert unit["dead"] == (channel in (5, 40))
        assert unit["top_activation"] == pytest.approx(top[channel])
        assert unit["projected"] == (channel in brute_force_choice(tables["block1_pool"], 3))
        if std[channel] == 0:
            assert unit["selectivity"] is None
        else:
            assert unit["selectivity"] == pytest.approx((top[channel] - mean[channel]) / std[channel], abs=1e-4)

    by_selectivity = layer_overview(scan_dir, "block1_pool", per_page=64, sort="selectivity")["units"]
    defined = sorted((-(top[c] - mean[c]) / std[c], c) for c in range(64) if std[c] > 0)
    expected = [c for _, c in defined] + [c for c in range(64) if std[c] == 0]
    # Equal selectivities may come out in either order after rounding; the values must be sorted.
    shown = [unit["selectivity"] for unit in by_selectivity]
    assert shown[:len(defined)] == sorted(shown[:len(defined)], reverse=True)
    assert {unit["channel"] for unit in by_selectivity[len(defined):]} == set(expected[len(defined):])
    assert by_selectivity[0]["channel"] == expected[0]

    by_index = layer_overview(scan_dir, "block1_pool", per_page=10, sort="index", unit=37)
    assert by_index["page"] == 4 and [unit["channel"] for unit in by_index["units"]] == list(range(30, 40))
    strongest_last = brute_force_choice(tables["block1_pool"], 64)[-1]
    jumped = layer_overview(scan_dir, "block1_pool", per_page=10, sort="top", unit=strongest_last)
    assert jumped["page"] == 7 and jumped["units"][-1]["channel"] == strongest_last
    with pytest.raises(ValueError, match="sort must be"):
        layer_overview(scan_dir, "block1_pool", sort="random")
    with pytest.raises(ValueError, match="unit must be"):
        layer_overview(scan_dir, "block1_pool", unit=64)
    assert unit_detail(scan_dir, "block1_pool", 40)["dead"] is True


def test_browse_pages_and_unit_detail(planned):
    scan_dir, record, tables = merged_scan(planned)
    chosen = projected_units(scan_dir, "block1_pool")
    # one finished projection block (max seeds: no full view), as projection.project_block writes it
    names = store.projection_names("block1_pool", chosen[1], 0)
    store.write_json_atomically(store.projection_marker(scan_dir, "block1_pool", 0, 2), {
        "layer": "block1_pool", "start": 0, "stop": 2, "ranks": 1,
        "channels": {str(chosen[0]): [], str(chosen[1]): [{"rank": 0, "image": 3, **names, "full": None}]}})

    page = layer_overview(scan_dir, "block1_pool", page=2, per_page=30)
    assert (page["channels"], page["pages"], page["k"]) == (64, 3, 4)
    assert [unit["channel"] for unit in page["units"]] == list(range(30, 60))
    brute = topk.brute_force(tables["block1_pool"], 4)
    unit = page["units"][0]
    assert [entry["id"] for entry in unit["top"]] == brute.top_ids[:, 30].tolist()
    assert unit["top"][0]["thumb"] == f"thumbs/{brute.top_ids[0, 30]}.jpg"
    first = layer_overview(scan_dir, "block1_pool", page=1, per_page=64)["units"]
    assert first[chosen[1]]["top"][0]["projection"] == {"full": None, "crop": names["crop"], "patch": names["patch"]}
    assert first[chosen[1]]["top"][1]["projection"] is None and first[chosen[2]]["top"][0]["projection"] is None
    assert not unit_detail(scan_dir, "block1_pool", chosen[1])["complete"]

    # The unit's own projection (on demand) adds the full views, and completes it.
    store.write_json_atomically(store.unit_marker(scan_dir, "block1_pool", chosen[1]), {
        "layer": "block1_pool", "unit": chosen[1], "ranks": 4,
        "channels": {str(chosen[1]): [{"rank": rank, "image": 0, **store.projection_names("block1_pool", chosen[1], rank)}
                                      for rank in range(4)]}})
    detail = unit_detail(scan_dir, "block1_pool", chosen[1])
    assert detail["complete"] and detail["top"][0]["projection"]["full"] == names["full"]

    detail = unit_detail(scan_dir, "block3_conv1", 200)
    brute = topk.brute_force(tables["block3_conv1"], 4)
    assert [entry["id"] for entry in detail["bottom"]] == brute.bottom_ids[:, 200].tolist()
    assert [entry["mean"] for entry in detail["top"]] == brute.top_values[:, 200].tolist()
    assert detail["label"] is None and not detail["complete"]
    with pytest.raises(ValueError, match="page must be"):
        layer_overview(scan_dir, "block1_pool", page=4, per_page=30)
    with pytest.raises(ValueError, match="was not scanned"):
        unit_detail(scan_dir, "block5_pool", 0)
    with pytest.raises(ValueError, match="unit must be"):
        unit_detail(scan_dir, "block1_pool", 64)


def test_resolve_file_serves_only_scan_outputs(planned):
    scan_dir, _, _ = planned
    store.write_bytes_atomically(scan_dir / "thumbs" / "3.jpg", b"jpeg")
    assert resolve_file(scan_dir, "thumbs/3.jpg") == scan_dir / "thumbs" / "3.jpg"
    for name in ("../scan/scan.json", "thumbs/../scan.json", "chunks/00000.npz", "/etc/passwd", "thumbs/4.jpg"):
        with pytest.raises(FileNotFoundError):
            resolve_file(scan_dir, name)


def test_throughput_counts_overlapping_chunks_once():
    assert busy_seconds([(0, 10), (5, 12), (20, 25)]) == 17
    assert busy_seconds([]) == 0


def test_an_uploaded_zip_is_planned_inside_the_scan_folder(tmp_path):
    import io
    import zipfile

    from visnet.scan import describe_scan, extract_zip, list_scans

    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name, colour in (("b/one.png", (200, 10, 10)), ("a.png", (10, 200, 10)), ("grey.png", (90, 90, 90))):
            image = io.BytesIO()
            Image.new("RGB", (12, 12), colour).save(image, "PNG")
            archive.writestr(name, image.getvalue())
        archive.writestr("notes.txt", "hello")
    scan_dir = tmp_path / store.new_scan_id()
    extracted = extract_zip(buffer.getvalue(), scan_dir / store.IMAGES_DIR)
    record = create_scan(scan_dir, scan_dir / store.IMAGES_DIR, ScanOptions(skip_grey=True, k=2))
    assert record["id"] == scan_dir.name and record["image_root"] == "images"
    assert record["images"] == ["a.png", "b/one.png"] == [name for name in extracted.images if name != "grey.png"]
    assert store.image_path(scan_dir, record, 1) == scan_dir / "images" / "b" / "one.png"
    summary = describe_scan(scan_dir)
    assert list_scans(tmp_path) == [{"id": scan_dir.name, "created": record["created"], "images": 2,
                                     "layers": record["options"]["layers"], "status": "pending"}]
    assert summary["images"] == 2 and summary["skipped"] == [{"path": "grey.png", "reason": "greyscale"}]
    assert summary["progress"]["status"] == "pending" and summary["progress"]["seconds_left"] is None


def test_the_web_side_of_the_package_does_not_import_tensorflow():
    import subprocess
    import sys

    code = ("import sys, visnet.scan, service.jobs.scheduling, visnet.scan.browse, visnet.scan.progress; "
            "print('tensorflow' in sys.modules)")
    answer = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert answer.stdout.strip() == "False"


def test_a_classifier_layer_projects_its_strongest_neurons_by_default(tmp_path):
    names = write_folder(tmp_path / "images", 3)
    record = create_scan(tmp_path / "scan", tmp_path / "images", ScanOptions(layers="block1_pool,fc1,predictions", k=2))
    assert len(record["images"]) == len(names)
    assert [(layer["name"], layer["channels"]) for layer in record["layers"]] == [
        ("block1_pool", 64), ("fc1", 4096), ("predictions", 1000)]
    options = ScanOptions(layers="block1_pool,fc1,predictions")
    assert [options.projected_channels(layer) for layer in options.layers] == [64, 64, 64]
    assert ScanOptions(layers="fc2", project_channels=100).projected_channels("fc2") == 100
    assert len(projection_blocks(record)) == 4 + 4 + 4  # 16 units a block
    with pytest.raises(ValueError, match="or fc1, fc2, predictions"):
        ScanOptions(layers="fc3")
