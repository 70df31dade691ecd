"""Job options as the API takes them (form fields) and as a job key hashes them (normalised).

Checked against the TensorFlow-free layer table, so a bad option is a 400 before anything is
enqueued, and two spellings of the same request (``"block5_pool, block1_pool"`` and
``"block1_pool,block5_pool"``) make the same job.
"""
import hashlib
import json
from dataclasses import dataclass

from visnet.architecture import get_layer, resolve_layers
from visnet.numbers import parse_whole_number

FIELDS = ("layers", "top_k", "channels", "mode")
MODES = ("single", "per-layer")
DEFAULTS = {"layers": "pools", "top_k": "3", "channels": "", "mode": "single"}
# A result sheet, not a dump: the CLI allows more.
MAX_TOP_K = 16
MAX_CHANNELS = 16


class OptionError(ValueError):
    """A readable 400: which option and why."""


@dataclass(frozen=True)
class JobOptions:
    layers: tuple  # layers ranked by top_k, in network order; empty when top_k is 0
    top_k: int
    channels: tuple  # sorted ((layer, channel), ...)
    mode: str

    def as_dict(self) -> dict:
        return {"layers": list(self.layers), "top_k": self.top_k,
                "channels": [[layer, channel] for layer, channel in self.channels], "mode": self.mode}

    def job_key(self, image_sha256: str) -> str:
        """The job id: the same image bytes with the same options always give the same id."""
        canonical = json.dumps({"image": image_sha256, "options": self.as_dict()}, sort_keys=True)
        return hashlib.sha256(canonical.encode()).hexdigest()[:32]


def _top_k(raw: str) -> int:
    try:
        value = parse_whole_number(raw)
    except ValueError:
        raise OptionError(f"top_k: {raw!r} is not a whole number; expected 1 to {MAX_TOP_K}") from None
    if not 0 <= value <= MAX_TOP_K:
        raise OptionError(f"top_k: {value} is out of range; expected 1 to {MAX_TOP_K} "
                          "(or 0 together with channels)")
    return value


def _channels(raw: str) -> tuple:
    pairs = set()
    for item in filter(None, (part.strip() for part in raw.split(","))):
        layer_name, separator, channel = item.partition(":")
        try:
            channel = parse_whole_number(channel) if separator else -1
        except ValueError:
            channel = -1
        if channel < 0:
            raise OptionError(f"channels: {item!r} is not of the form LAYER:CHANNEL, e.g. block5_pool:12")
        try:
            layer = get_layer(layer_name.strip())
        except ValueError as error:
            raise OptionError(f"channels: {error}") from None
        if channel >= layer.channels:
            raise OptionError(f"channels: channel {channel} is out of range for {layer.name}, "
                              f"which has channels 0 to {layer.channels - 1}")
        pairs.add((layer.name, channel))
    if len(pairs) > MAX_CHANNELS:
        raise OptionError(f"channels: {len(pairs)} channels requested; at most {MAX_CHANNELS} per job")
    return tuple(sorted(pairs))


def parse_options(form) -> JobOptions:
    """A mapping of form fields (strings) → JobOptions. Unknown fields are refused so that a typo
    (``topk=5``) is not silently ignored."""
    unknown = sorted(set(form) - set(FIELDS))
    if unknown:
        raise OptionError(f"unknown option {unknown[0]!r}; expected {', '.join(FIELDS)}")
    values = {name: form.get(name, DEFAULTS[name]) for name in FIELDS}
    mode = values["mode"].strip() or DEFAULTS["mode"]
    if mode not in MODES:
        raise OptionError(f"mode: {mode!r} is unknown; expected one of {', '.join(MODES)}")
    top_k = _top_k(values["top_k"] or DEFAULTS["top_k"])
    channels = _channels(values["channels"])
    if top_k == 0:
        if not channels:
            raise OptionError("top_k: 0 projects nothing; give top_k from 1 to "
                              f"{MAX_TOP_K}, or channels to project")
        return JobOptions((), 0, channels, mode)
    try:
        layers = resolve_layers(values["layers"].strip() or DEFAULTS["layers"])
    except ValueError as error:
        raise OptionError(f"layers: {error}") from None
    return JobOptions(tuple(layers), top_k, channels, mode)


# --- the other views (visnet.views): method + options -----------------------------------------

DEFAULT_METHOD = "deconv"
TAB_LABELS = {
    "deconv": "Deconvnet", "feature-maps": "Feature maps", "filters": "Filters", "occlusion": "Occlusion",
    "activation-max": "Activation max.", "classification": "Classes", "channel-rank": "Channel rank",
    "gradients": "Gradients",
}
# The deconvnet's own form fields, described like visnet.views.options.OPTIONS for the job page.
DECONV_OPTIONS = (
    {"name": "layers", "kind": "choice_or_layers", "default": DEFAULTS["layers"],
     "help": "all, pools or comma-separated layer names", "minimum": None, "maximum": None, "choices": []},
    {"name": "top_k", "kind": "int", "default": int(DEFAULTS["top_k"]), "help": "strongest channels per layer",
     "minimum": 1, "maximum": MAX_TOP_K, "choices": []},
    {"name": "mode", "kind": "choice", "default": DEFAULTS["mode"],
     "help": "single: all layers in one pass; per-layer: one pass per layer", "minimum": None, "maximum": None,
     "choices": list(MODES)},
)


@dataclass(frozen=True)
class ViewOptions:
    """A view job's method and checked options, normalised to JSON values (tuples become lists)."""
    method: str
    values: dict

    def as_dict(self) -> dict:
        return dict(self.values)

    def job_key(self, image_sha256: str) -> str:
        canonical = json.dumps({"image": image_sha256, "method": self.method, "options": self.values},
                               sort_keys=True)
        return hashlib.sha256(canonical.encode()).hexdigest()[:32]


def parse_view_options(method: str, form) -> ViewOptions:
    """Form fields of one view → ViewOptions, or OptionError naming the option and why."""
    from visnet.architecture import resolve_layers
    from visnet.views.options import OPTIONS
    from visnet.views.options import parse_options as parse_view

    form = dict(form)
    # The core's message for a bad layer names the layer, not the field: say which field.
    for option in OPTIONS.get(method, ()):
        if option.kind in ("layer", "choice_or_layers") and (form.get(option.name) or "").strip():
            try:
                resolve_layers(form[option.name]) if option.kind != "layer" else get_layer(form[option.name].strip())
            except ValueError as error:
                raise OptionError(f"{option.name}: {error}") from None
    try:
        values = parse_view(method, form)
    except ValueError as error:
        raise OptionError(str(error)) from None
    return ViewOptions(method, json.loads(json.dumps(values)))


def parse_method_options(form):
    """``method`` (default deconv) and its options from form fields: JobOptions for the deconvnet
    (the job key is unchanged), ViewOptions for the other views."""
    from visnet.views.options import METHODS

    form = dict(form)
    method = (form.pop("method", "") or DEFAULT_METHOD).strip()
    if method not in METHODS:
        raise OptionError(f"method: {method!r} is unknown; expected one of {', '.join(METHODS)}")
    if method == DEFAULT_METHOD:
        return parse_options(form)
    return parse_view_options(method, form)


def describe_methods() -> list:
    """Every method with its tab label and options, as JSON for ``GET /api/methods``."""
    from visnet.views.options import METHODS, NEEDS_CLASSIFIER, OPTIONS

    described = []
    for method in METHODS:
        if method == DEFAULT_METHOD:
            options = [dict(option) for option in DECONV_OPTIONS]
        else:
            options = [{"name": option.name, "kind": option.kind, "default": option.default, "help": option.help,
                        "minimum": option.minimum, "maximum": option.maximum, "choices": list(option.choices)}
                       for option in OPTIONS[method]]
        described.append({"name": method, "label": TAB_LABELS.get(method, method),
                          "needs_classifier": method in NEEDS_CLASSIFIER, "options": options})
    return described
