"""The registry of methods (visnet.methods): the engine and the views refuse a value just past a limit
exactly as the option parser does (the web form and the CLI use that parser too: tests/app/jobs/test_forms.py)."""
import numpy as np
import pytest

from visnet.display import encode_png
from visnet.engine import Engine
from visnet.methods import DEFAULT_METHOD, MAX_TOP_K, METHODS, PHOTO_OPTIONS, get_method, parse_options
from visnet.preprocessing import prepare_photo
from visnet.views import run_view

GREY = np.full((224, 224, 3), 128, np.uint8)


class RefusingEngine:
    """Stands in for a loaded engine where a request must be refused before anything runs."""

    has_top = True

    def __getattr__(self, name):
        raise AssertionError(f"the request reached the engine ({name}) though it should have been refused")


def _past_limits(option):
    if option.kind == "int":
        return [option.minimum - 1, option.maximum + 1]
    if option.kind == "float":
        return [option.minimum - 0.5, option.maximum + 0.5]
    if option.kind == "choice":
        return ["not-" + option.choices[0]]
    return []


@pytest.mark.parametrize("method, option, value", [
    (method, option, value) for method in METHODS for option in method.options for value in _past_limits(option)],
    ids=lambda item: getattr(item, "name", item))
def test_the_engine_and_the_views_refuse_a_value_past_a_limit_like_the_parser(method, option, value):
    with pytest.raises(ValueError) as parsed:
        parse_options(method.name, {option.name: value})
    with pytest.raises(ValueError) as ran:
        if option.name in PHOTO_OPTIONS:  # an option that prepares the photo is checked where photos are prepared
            prepare_photo(encode_png(GREY), **{option.name: value})
        elif method.name == DEFAULT_METHOD:
            Engine.deconv(RefusingEngine(), GREY, **{option.name: value})
        else:
            run_view(RefusingEngine(), method.name, GREY, {option.name: value})
    assert str(ran.value) == str(parsed.value)


def test_the_engine_accepts_top_k_up_to_the_one_limit():
    with pytest.raises(AssertionError, match="reached the engine"):
        Engine.deconv(RefusingEngine(), GREY, layers="block1_pool", top_k=MAX_TOP_K)


def test_unknown_methods_are_refused_naming_the_known_ones():
    with pytest.raises(ValueError, match="unknown method 'saliency'; expected one of deconv, feature-maps"):
        get_method("saliency")


def test_every_method_that_reads_the_photo_takes_fit_and_the_others_do_not():
    reading = {method.name for method in METHODS if method.reads_photo}
    assert reading == {"deconv", "feature-maps", "occlusion", "classification", "channel-rank", "gradients"}
    assert all(parse_options(name, {})["fit"] == "squash" for name in reading)
    with pytest.raises(ValueError, match="unknown option 'fit' for filters"):
        parse_options("filters", {"fit": "crop"})


def test_the_deconv_rules_offered_are_the_ones_the_sweep_builds(engine):
    offered = get_method("deconv").option("rule").choices
    assert offered == ("deconvnet", "guided", "gradient")
    for rule in offered:
        assert engine.sweep(["block1_pool"], rule).rule == rule
    with pytest.raises(ValueError, match="unknown rule 'guided-backprop'"):
        engine.sweep(["block1_pool"], "guided-backprop")


def test_filters_refuse_a_pooling_layer_in_the_registry_so_form_api_and_cli_agree():
    assert parse_options("filters", {"layer": "block3_conv2"})["layer"] == "block3_conv2"
    with pytest.raises(ValueError, match="block2_pool is a pooling layer, which has no filters"):
        parse_options("filters", {"layer": "block2_pool"})
    # The form's and the API's choices are the registry's: conv layers only.
    choices = get_method("filters").option("layer").choices
    assert "block1_conv1" in choices and not any(name.endswith("_pool") for name in choices)
    # Other layer options still take any layer.
    assert parse_options("feature-maps", {"layer": "block2_pool"})["layer"] == "block2_pool"
