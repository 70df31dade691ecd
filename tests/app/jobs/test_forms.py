"""Job options: normalised for the job key, refused with a 400 that says which and why."""
import io
import json

import pytest

from app.jobs.forms import MAX_TOP_K, OptionError, ViewOptions, read_method_form
from app.openapi.builder import build_spec
from visnet import cli, methods
from visnet.methods import METHODS


def test_defaults_are_the_pools_top_3():
    options = read_method_form({})
    assert options.as_dict() == {"layers": ["block1_pool", "block2_pool", "block3_pool", "block4_pool",
                                            "block5_pool"], "top_k": 3, "channels": [], "mode": "single",
                                 "rule": "deconvnet", "seed": "both", "rank": "norm", "reference": "", "fit": "squash"}


def test_another_ranking_or_reference_makes_its_own_job_key():
    options = read_method_form({"layers": "block1_pool", "top_k": "2"})
    distinct = read_method_form({"layers": "block1_pool", "top_k": "2", "rank": "distinctive", "reference": "a" * 32})
    other = read_method_form({"layers": "block1_pool", "top_k": "2", "rank": "distinctive", "reference": "b" * 32})
    assert len({options.job_key("0" * 64), distinct.job_key("0" * 64), other.job_key("0" * 64)}) == 3


@pytest.mark.parametrize("method", [method.name for method in METHODS if method.reads_photo])
def test_each_fit_makes_its_own_job_key(method):
    squash, crop = (read_method_form({"method": method, "fit": fit}) for fit in ("squash", "crop"))
    assert squash.values["fit"] == "squash" and crop.values["fit"] == "crop"
    assert squash.job_key("0" * 64) != crop.job_key("0" * 64)
    assert squash.job_key("0" * 64) == read_method_form({"method": method}).job_key("0" * 64)  # squash: the default


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
    ({"rank": "loud"}, ["rank", "norm, distinctive"]),
    ({"rank": "distinctive"}, ["reference", "finished scan"]),
    ({"reference": "a" * 32}, ["reference", "only rank=distinctive"]),
    ({"rank": "distinctive", "reference": "../etc"}, ["reference", "not a scan id"]),
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


# --- every method: web form, OpenAPI, CLI and page tab derive from visnet.methods and agree -------

def _cli_command(name):
    """The argparse subcommand of ``python -m visnet NAME`` and its option flags → argparse actions."""
    commands = next(action for action in cli.build_parser()._actions if action.dest == "command")
    command = commands.choices[name]
    return {action.option_strings[0]: action for action in command._actions
            if action.option_strings
            and action.dest not in ("help", "device", "weights", "out", "raw", "sweep_memory_mb")}


def _past_limits(option):
    """Values just past each of the option's limits."""
    if option.kind in ("int", "float"):
        step = 1 if option.kind == "int" else 0.5
        return [str(option.minimum - step), str(option.maximum + step)]
    if option.kind == "choice":
        return ["not-" + option.choices[0]]
    return []


@pytest.mark.parametrize("method", METHODS, ids=[method.name for method in METHODS])
def test_the_form_openapi_cli_and_tab_agree_with_the_registry(method, client):
    names = [option.name for option in method.options]
    # web form: every option known by name, and the defaults are the registry's
    defaults = methods.parse_options(method.name, {name: option.default for name, option in
                                                   zip(names, method.options)})
    form = read_method_form({"method": method.name})
    assert (form.as_dict() if isinstance(form, ViewOptions) else
            {**form.as_dict(), "channels": []}) == json.loads(json.dumps(defaults))
    # OpenAPI: one form schema per method, and POST /api/jobs takes its fields and no other
    spec = build_spec()
    schema = spec["components"]["schemas"][f"MethodForm-{method.name}"]
    assert list(schema["properties"]) == names and schema["additionalProperties"] is False
    body = spec["paths"]["/api/jobs"]["post"]["requestBody"]["content"]["multipart/form-data"]["schema"]
    branches = [branch for branch in body["anyOf"] if branch["properties"]["method"]["const"] == method.name]
    assert branches and all(set(branch["properties"]) == {"image", "from_job", "method", "model", *names} for branch in branches)
    # CLI: one flag per option, checked by the same parser (so no argparse default or choices of its own)
    flags = _cli_command(method.name)
    assert sorted(flags) == sorted(option.flag for option in method.options)
    # page tab: GET /api/methods, which static/job.js draws the tabs from
    tabs = {tab["name"]: tab for tab in client.get("/api/methods").get_json()["methods"]}
    tab = tabs[method.name]
    assert tab["label"] == method.label and tab["needs_classifier"] == method.needs_classifier
    assert [option["name"] for option in tab["options"]] == [option.name for option in method.options if option.on_tab]
    for option in method.options:
        field = schema["properties"][option.name]
        assert field["default"] == option.default and field["description"] == option.help
        assert flags[option.flag].default is None and flags[option.flag].choices is None
        assert repr(option.default) in flags[option.flag].help
        described = next((entry for entry in tab["options"] if entry["name"] == option.name), None)
        if option.on_tab:
            assert (described["default"], described["minimum"], described["maximum"], described["choices"]) == (
                option.default, option.minimum, option.maximum, list(option.choices))
        if option.kind in ("int", "float"):
            assert (field["minimum"], field["maximum"]) == (option.minimum, option.maximum)
            assert f"{option.minimum} to {option.maximum}" in flags[option.flag].help
        if option.kind == "choice":
            assert field["enum"] == [*option.choices, ""]  # a blank field is the default
            assert read_method_form({"method": method.name, option.name: ""}).as_dict()[option.name] == option.default


@pytest.mark.parametrize("method, option, value", [
    (method, option, value) for method in METHODS for option in method.options for value in _past_limits(option)],
    ids=lambda item: getattr(item, "name", item))
def test_a_value_just_past_a_limit_is_refused_by_the_form_and_the_cli_alike(method, option, value, capsys):
    with pytest.raises(OptionError) as refused:
        read_method_form({"method": method.name, option.name: value})
    message = str(refused.value)
    assert message.startswith(option.name) and value in message
    image = [] if method.image_optional else ["no-such-photo.jpg"]  # options are checked before images
    assert cli.main([method.name, *image, option.flag, value, "--out", "unused"]) == 2
    assert capsys.readouterr().err == f"error: {option.flag}{message[len(option.name):]}\n"


def test_top_k_has_one_limit():
    limits = {(option.minimum, option.maximum) for method in METHODS for option in method.options
              if option.name == "top_k"}
    assert {maximum for _, maximum in limits} == {MAX_TOP_K} == {methods.MAX_TOP_K}
    assert build_spec()["components"]["schemas"]["Options"]["properties"]["top_k"]["maximum"] == MAX_TOP_K
