"""Job options: normalised for the job key, refused with a 400 that says which and why."""
import io

import pytest

from app.jobs.forms import MAX_TOP_K, OptionError, read_method_form


def test_defaults_are_the_pools_top_3():
    options = read_method_form({})
    assert options.as_dict() == {"layers": ["block1_pool", "block2_pool", "block3_pool", "block4_pool",
                                            "block5_pool"], "top_k": 3, "channels": [], "mode": "single"}


def test_equivalent_spellings_make_the_same_job_key():
    a = read_method_form({"layers": "block5_pool, block1_pool", "top_k": " 2", "channels": "block3_pool:7,block1_pool:3"})
    b = read_method_form({"layers": "block1_pool,block5_pool,block1_pool", "top_k": "2",
                       "channels": "block1_pool:3, block3_pool:7, block1_pool:3"})
    assert a == b
    assert a.job_key("0" * 64) == b.job_key("0" * 64)
    assert a.job_key("0" * 64) != a.job_key("1" * 64)
    assert a.job_key("0" * 64) != read_method_form({"layers": "block1_pool,block5_pool", "top_k": "3"}).job_key("0" * 64)


def test_top_k_zero_with_channels_ignores_layers():
    options = read_method_form({"top_k": "0", "channels": "block5_conv3:42", "layers": "all"})
    assert options.layers == () and options.channels == (("block5_conv3", 42),)


@pytest.mark.parametrize("form, words", [
    ({"layers": "block9_pool"}, ["layers", "block9_pool"]),
    ({"layers": "block1_pool,nonsense"}, ["layers", "nonsense"]),
    ({"top_k": "0"}, ["top_k", "0"]),
    ({"top_k": "10000"}, ["top_k", "10000", str(MAX_TOP_K)]),
    ({"top_k": "-1"}, ["top_k"]),
    ({"top_k": "three"}, ["top_k", "three"]),
    ({"channels": "block1_pool:64"}, ["channels", "64", "block1_pool", "0 to 63"]),
    ({"channels": "block5_conv3:512"}, ["channels", "512", "0 to 511"]),
    ({"channels": "block1_pool:-1"}, ["channels", "LAYER:CHANNEL"]),
    ({"channels": "block1_pool"}, ["channels", "LAYER:CHANNEL"]),
    ({"channels": "fc1:3"}, ["channels", "fc1"]),
    ({"mode": "turbo"}, ["mode", "turbo"]),
    ({"topk": "5"}, ["topk"]),
])
def test_invalid_options_say_which_and_why(form, words):
    with pytest.raises(OptionError) as error:
        read_method_form(form)
    for word in words:
        assert word in str(error.value)


@pytest.mark.parametrize("form, words", [
    ({"layers": "block9_pool"}, ["layers", "block9_pool"]),
    ({"top_k": "0"}, ["top_k"]),
    ({"top_k": "10000"}, ["top_k", "10000"]),
    ({"channels": "block3_pool:999"}, ["channels", "999", "block3_pool"]),
    ({"channels": "block5_pool:²"}, ["channels", "LAYER:CHANNEL"]),  # str.isdigit() said yes, int() no: a 500
    ({"channels": "block5_pool:٣"}, ["channels", "LAYER:CHANNEL"]),  # int() read 3
    ({"top_k": "３"}, ["top_k", "not a whole number"]),
])
def test_invalid_options_are_400_with_nothing_stored(client, images, nothing_stored, form, words):
    response = client.post("/api/jobs", data={"image": (io.BytesIO(images.photo_jpeg()), "a.jpg"), **form},
                           content_type="multipart/form-data")
    assert response.status_code == 400
    error = response.get_json()["error"]
    assert error["code"] == "invalid_option"
    for word in words:
        assert word in error["message"]
    nothing_stored()
