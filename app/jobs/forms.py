"""Job options as the API takes them (form fields) and as a job key hashes them (normalised).

The methods, their options and limits are :mod:`visnet.methods`' (TensorFlow-free), so a bad option is a
400 before anything is enqueued, and two spellings of the same request (``"block5_pool, block1_pool"``
and ``"block1_pool,block5_pool"``) make the same job.
"""
import hashlib
import json
from dataclasses import dataclass

from visnet import methods
from visnet.chain.catalogue import CHAIN_METHODS
from visnet.methods import DEFAULT_METHOD

# The deconvnet's form fields and their defaults as the upload page's form writes them.
DECONV = methods.get_method(DEFAULT_METHOD)
DEFAULTS = {option.name: str(option.default) for option in DECONV.options}
MAX_TOP_K = DECONV.option("top_k").maximum


class OptionError(ValueError):
    """A readable 400: which option and why."""


@dataclass(frozen=True)
class JobOptions:
    """The deconvnet's checked options (every option of its registry entry), normalised to JSON values; its
    job key hashes no method name, so it is the one it had before other methods existed. ``model``: a stored
    model's {"name", "sha256"}, hashed into the key; None for VGG16, whose keys are as they were."""
    values: dict
    model: dict = None
    method = DEFAULT_METHOD

    @property
    def layers(self) -> tuple:  # layers ranked by top_k, in network order; empty when top_k is 0
        return tuple(self.values["layers"])

    @property
    def channels(self) -> tuple:  # sorted ((layer, channel), ...)
        return tuple(tuple(pair) for pair in self.values["channels"])

    @property
    def rank(self) -> str:  # how top_k picks the channels (visnet.methods.RANKINGS)
        return self.values["rank"]

    @property
    def reference(self) -> str:  # with rank "distinctive": the reference scan's id
        return self.values["reference"]

    def as_dict(self) -> dict:
        return dict(self.values)

    def job_key(self, image_sha256: str) -> str:
        """The job id: the same image bytes with the same options always give the same id."""
        return _key({"image": image_sha256, "options": self.values}, self.model)


@dataclass(frozen=True)
class ViewOptions:
    """A view job's method and checked options, normalised to JSON values (tuples become lists)."""
    method: str
    values: dict
    model: dict = None  # as JobOptions'

    def as_dict(self) -> dict:
        return dict(self.values)

    def job_key(self, image_sha256: str) -> str:
        return _key({"image": image_sha256, "method": self.method, "options": self.values}, self.model)


def _key(fields: dict, model) -> str:
    """32 hex digits of the hash of ``fields`` and, for a stored model, its name and its file's hash."""
    canonical = json.dumps({**fields, **({"model": model} if model else {})}, sort_keys=True)
    return hashlib.sha256(canonical.encode()).hexdigest()[:32]


def read_method_form(form, layers=methods.architecture, model=None):
    """``method`` (default deconv) and its options from form fields: JobOptions for the deconvnet
    (the job key is unchanged), ViewOptions for the other views; OptionError naming the option and why.
    ``layers`` and ``model``: a stored model's layers (visnet.chain.catalogue.ChainLayers, whose defaults replace
    those of VGG16's that do not fit the model) and {"name", "sha256"}; such a model serves CHAIN_METHODS."""
    form = dict(form)
    method = (form.pop("method", "") or DEFAULT_METHOD).strip()
    if model is not None:
        _check_method_served(method, model)
    try:
        values = methods.parse_options(method, form, layers)
    except ValueError as error:
        raise OptionError(str(error)) from None
    normalised = json.loads(json.dumps(values))
    return JobOptions(normalised, model) if method == DEFAULT_METHOD else ViewOptions(method, normalised, model)


def _check_method_served(method: str, model: dict) -> None:
    """A stored model serves CHAIN_METHODS only: OptionError naming the model and the method otherwise."""
    try:
        methods.get_method(method)  # an unknown method is named as such
    except ValueError as error:
        raise OptionError(str(error)) from None
    if method not in CHAIN_METHODS:
        raise OptionError(f"method {method} is not available for model {model['name']}: a stored model serves "
                          f"{', '.join(CHAIN_METHODS)} so far; the other views run on vgg16")


def describe_methods(layers=methods.architecture) -> list:
    """Every method with its tab label and options, as JSON for ``GET /api/methods`` and the job page. ``layers``:
    a stored model's (visnet.chain.catalogue.ChainLayers), whose defaults and layer choices are its own."""
    described = []
    for method in methods.METHODS:
        defaults = layers.option_defaults(method.name)
        described.append({"name": method.name, "label": method.label, "needs_classifier": method.needs_classifier,
                          "options": [{"name": option.name, "kind": option.kind,
                                       "default": defaults.get(option.name, option.default), "help": option.help,
                                       "minimum": option.minimum, "maximum": option.maximum,
                                       "choices": _choices(option, layers)}
                                      for option in method.options if option.on_tab]})
    return described


def _choices(option, layers) -> list:
    """An option's choices; a layer option restricted to kinds of layer: the model's layers of those kinds."""
    if option.kind != "layer" or not option.layer_kinds or layers is methods.architecture:
        return list(option.choices)
    return [name for name in layers.names if layers.get_layer(name).kind in option.layer_kinds]
