"""visnet.results: the result-folder contract that the worker, the CLI, the web app and the tests share."""
from visnet import results


def test_file_names():
    assert (results.MANIFEST_FILE, results.JOB_RECORD_FILE, results.SUMMARY_FILE) == \
        ("manifest.json", "job.json", "summary.png")
    assert results.reconstruction_file("block4_pool", 6) == "block4_pool_ch6.png"
    assert results.overlay_file("block4_pool", 6) == "block4_pool_ch6_overlay.png"
    assert results.raw_file("block4_pool", 6) == "raw/block4_pool_6.npy"
    assert results.picture_file("channel_rank") == "channel_rank.png"


def test_a_folder_is_complete_once_its_manifest_is_written(tmp_path):
    (tmp_path / "b.png").write_bytes(b"png")
    (tmp_path / "a.png").write_bytes(b"png")
    (tmp_path / "notes.txt").write_text("not a picture")
    assert not results.is_complete(tmp_path)
    assert results.read_job_record(tmp_path) is None  # a CLI result has none
    results.write_job_record(tmp_path, {"id": "x", "timings": {"total_seconds": 1.5}})
    results.write_manifest(tmp_path, {"summary": results.SUMMARY_FILE, "caption": "ch 3 · ‖a‖ 4.0"})
    assert results.is_complete(tmp_path)
    assert results.read_manifest(tmp_path) == {"summary": "summary.png", "caption": "ch 3 · ‖a‖ 4.0"}
    assert results.read_job_record(tmp_path) == {"id": "x", "timings": {"total_seconds": 1.5}}
    assert [path.name for path in results.pictures(tmp_path)] == ["a.png", "b.png"]
    assert sorted(path.name for path in tmp_path.iterdir()) == ["a.png", "b.png", "job.json", "manifest.json",
                                                                 "notes.txt"]  # no temporary left
    (tmp_path / results.JOB_RECORD_FILE).write_text("{damaged")
    assert results.read_job_record(tmp_path) is None
