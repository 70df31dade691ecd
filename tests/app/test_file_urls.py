"""app.file_urls: the URLs of a folder's files from one url_for, the same as url_for's."""
import pytest
from flask import url_for

from app.file_urls import file_urls


@pytest.mark.parametrize("endpoint, values, name", [
    ("api.job_file", {"job_id": "a" * 32}, "block5_pool_ch7_overlay.png"),
    ("scan_api.scan_file", {"scan_id": "e" * 32}, "thumbs/0007.jpg"),
    ("scan_api.scan_file", {"scan_id": "e" * 32}, "projections/block5_pool/3_12_patch.png"),
    ("scan_api.scan_file", {"scan_id": "e" * 32}, "odd name #1/ü.png"),  # quoted: through url_for itself
])
def test_a_files_url_is_url_fors(app, endpoint, values, name):
    with app.test_request_context(base_url="http://localhost/visnet"):  # behind a prefix too
        url = file_urls(endpoint, **values)(name)
        assert url == url_for(endpoint, name=name, **values) and url.startswith("/visnet/api/")
