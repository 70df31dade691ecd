"""Form fields as exact JSON Schemas, derived from the method registry (visnet.methods) that the routes parse
them with: a request the document accepts is one the service accepts, and the other way round (Schemathesis
holds the service to it: tests/integration/test_api_contract.py).

Every field arrives as text, so a list option is a pattern: its layer names and each layer's channel range are
written out from visnet.architecture. A channel's range depends on the method's ``layer``: such a method's form
is one alternative per layer. The deconvnet's rules between options (rank and reference, top_k 0 and channels)
are alternatives too. A blank field is the default, as the parsers read it; they also take spaces around
values, which the document leaves out: it describes the canonical spelling.

JSON Schema has no keyword for a decimal range in a string, so ``whole_numbers`` writes one as a regex."""
from visnet.architecture import INPUT_SIZE, LAYER_NAMES, get_layer
from visnet.chain.catalogue import CHAIN_METHODS
from visnet.images import FORMATS
from visnet.methods import DEFAULT_METHOD, MAX_OCCLUDED_IMAGES, METHODS, SCAN_ID
from visnet.settings import DEFAULT_MODEL

# The alternatives of POST /api/jobs are VGG16's; a stored model's layers are its own (GET /api/models).
MODEL_FIELD = {"type": "string", "enum": [DEFAULT_MODEL, ""]}
MODEL_HELP = ("vgg16 (the default), or a stored model (GET /api/models) with a live worker: a 400 names the models "
              "for an unknown one, a 503 says when none of its workers is live; a stored model takes its own layer "
              "names, channel ranges and input size (the alternatives here spell out VGG16's) and serves "
              + ", ".join(CHAIN_METHODS))
IMAGE_MEDIA_TYPES = ", ".join(f"image/{image_format.name.lower()}" for image_format in FORMATS)


def whole_numbers(low: int, high: int) -> str:
    """A regex (no anchors) of the decimal numbers ``low`` to ``high``, as parse_whole_number reads them."""
    parts = []
    for digits in range(len(str(low)), len(str(high)) + 1):
        start, stop = max(low, 10 ** (digits - 1) if digits > 1 else 0), min(high, 10 ** digits - 1)
        parts += _same_length(str(start), str(stop))
    return "(?:" + "|".join(parts) + ")"


def _same_length(low: str, high: str) -> list:
    if len(low) == 1:
        return [low if low == high else f"[{low}-{high}]"]
    if low[0] == high[0]:
        return [low[0] + "(?:" + "|".join(_same_length(low[1:], high[1:])) + ")"]
    rest = len(low) - 1
    parts = [low[0] + "(?:" + "|".join(_same_length(low[1:], "9" * rest)) + ")"]
    if int(high[0]) - int(low[0]) > 1:
        parts.append(f"[{int(low[0]) + 1}-{int(high[0]) - 1}]" + "[0-9]" * rest)
    parts.append(high[0] + "(?:" + "|".join(_same_length("0" * rest, high[1:])) + ")")
    return parts


def _channel_range(layer_name: str) -> str:
    return whole_numbers(0, get_layer(layer_name).channels - 1)


def listing(item: str, most: int = None) -> str:
    """``item`` comma-separated, once or up to ``most`` times (any number without)."""
    return f"{item}(?:,{item})" + ("*" if most is None else f"{{0,{most - 1}}}")


def anchored(regex: str) -> str:
    return f"^(?:{regex})$"


def or_blank(regex: str) -> str:
    """A pattern that also takes a blank field, which the parsers read as the option's default."""
    return f"^(?:{regex})?$"


LAYER_NAME = "(?:" + "|".join(LAYER_NAMES) + ")"
LAYER_SELECTION = "pools|all|" + listing(LAYER_NAME)
LAYER_CHANNEL = "(?:" + "|".join(f"{name}:{_channel_range(name)}" for name in LAYER_NAMES) + ")"


def _size_strides() -> str:
    """visnet.methods._sizes: size and stride 1 to INPUT_SIZE, and no setting of more than MAX_OCCLUDED_IMAGES
    occluded images; sizes grouped by their smallest stride."""
    def smallest_stride(size):
        return next(stride for stride in range(1, INPUT_SIZE + 1)
                    if len(range(0, INPUT_SIZE - size + 1, stride)) ** 2 <= MAX_OCCLUDED_IMAGES)
    groups = []  # [first size, last size, smallest stride]
    for size in range(1, INPUT_SIZE + 1):
        stride = smallest_stride(size)
        if groups and groups[-1][2] == stride:
            groups[-1][1] = size
        else:
            groups.append([size, size, stride])
    return "(?:" + "|".join(f"{whole_numbers(first, last)}:{whole_numbers(stride, INPUT_SIZE)}"
                            for first, last, stride in groups) + ")"


SIZE_STRIDE = _size_strides()


# Patterns too long to repeat in each alternative of POST /api/jobs: components, referenced by name.
REFERENCED_KINDS = {"choice_or_layers": "LayerSelection", "layer_channels": "LayerChannels", "sizes": "SizeStrides"}


def _validation(option, layer_name: str = None) -> dict:
    """What one option's form field admits; ``layer_name``: the method's layer, for an option of its channels.
    A blank text field is the default (visnet.methods.parse_options), as the HTML forms send it."""
    if option.kind in ("int", "float"):
        return {"type": "integer" if option.kind == "int" else "number",
                "minimum": option.minimum, "maximum": option.maximum}
    if option.kind == "channel":
        bound = {} if layer_name is None else {"maximum": get_layer(layer_name).channels - 1}
        return {"type": "integer", "minimum": 0, **bound}
    if option.kind in ("choice", "layer"):
        return {"type": "string", "enum": [*(option.choices or LAYER_NAMES), ""]}
    return {"type": "string", "pattern": or_blank(_item_pattern(option, layer_name))}


def _item_pattern(option, layer_name: str = None) -> str:
    if option.kind == "channels":
        return listing("[0-9]+" if layer_name is None else _channel_range(layer_name), option.max_items)
    if option.kind == "choice_or_layers":
        return LAYER_SELECTION
    if option.kind == "layer_channels":
        return listing(LAYER_CHANNEL, option.max_items)
    if option.kind == "sizes":
        return listing(SIZE_STRIDE, option.max_items)
    if option.kind == "scan":
        return SCAN_ID.pattern
    raise AssertionError(option.kind)


def _field(option, layer_name: str = None) -> dict:
    if option.kind in REFERENCED_KINDS:
        return {"$ref": f"#/components/schemas/{REFERENCED_KINDS[option.kind]}"}
    return _validation(option, layer_name)


def form_schemas() -> dict:
    """The referenced patterns (REFERENCED_KINDS), for the document's components."""
    schemas = {}
    for method in METHODS:
        for option in method.options:
            if option.kind in REFERENCED_KINDS:
                schema = _validation(option)
                assert schemas.setdefault(REFERENCED_KINDS[option.kind], schema) == schema, option.name
    return schemas


def option_schema(option) -> dict:
    """One option's form field with its default and help (a channel's range: see POST /api/jobs)."""
    return {**_field(option), "default": option.default, "description": option.help}


def _layer_option(method):
    return next((option for option in method.options if option.kind == "layer"), None)


def form_variants(method) -> list:
    """(layer name or None, {field: schema}) for each form of ``method``: one per layer its channels depend on."""
    layer_option = _layer_option(method)
    if layer_option is None or not any(option.kind in ("channel", "channels") for option in method.options):
        return [(None, {option.name: _field(option) for option in method.options})]
    def layer_field(name):  # blank is the default layer
        return {"type": "string", "enum": [name, ""] if name == layer_option.default else [name]}
    return [(name, {option.name: layer_field(name) if option is layer_option else _field(option, name)
                    for option in method.options})
            for name in (layer_option.choices or LAYER_NAMES)]


def method_form(method) -> dict:
    """``MethodForm-<method>``: the method's fields, as GET /api/methods lists them."""
    return {"type": "object", "description": method.help, "additionalProperties": False,
            "properties": {option.name: option_schema(option) for option in method.options}}


def _rule_variants(method) -> list:
    """The deconvnet's rules between options (visnet.methods._deconv_rule) as alternatives, each a
    ({field: schema}, required): a reference with rank distinctive only, and top_k 0 only with channels."""
    if method.name != DEFAULT_METHOD:
        return [({}, [])]
    top_k = method.option("top_k")
    ranks = [choice for choice in method.option("rank").choices if choice != "distinctive"]
    given = {name: {"type": "string", "pattern": anchored(_item_pattern(method.option(name)))}
             for name in ("reference", "channels")}
    ranking = [({"rank": {"type": "string", "enum": [*ranks, ""]}, "reference": {"type": "string", "const": ""}}, []),
               ({"rank": {"type": "string", "const": "distinctive"}, "reference": given["reference"]},
                ["rank", "reference"])]
    counts = [({"top_k": {"type": "integer", "minimum": 1, "maximum": top_k.maximum}}, []),
              ({"top_k": {"type": "integer", "const": 0}, "channels": given["channels"]}, ["top_k", "channels"])]
    return [({**rank_fields, **count_fields}, rank_required + count_required)
            for rank_fields, rank_required in ranking for count_fields, count_required in counts]


def _described_fields(photo_fields: dict) -> dict:
    """Every field of the body with its help, once: per method where two methods give a name two meanings."""
    helps = {}
    for method in METHODS:
        for option in method.options:
            helps.setdefault(option.name, {}).setdefault(option.help, []).append(method.name)
    fields = {"method": {"type": "string", "enum": [method.name for method in METHODS], "default": DEFAULT_METHOD,
                         "description": "deconv, or another view (GET /api/methods); the alternatives below say "
                                        "which fields each takes"},
              "model": {"type": "string", "default": DEFAULT_MODEL, "description": MODEL_HELP}}
    for name, by_help in helps.items():
        words = [help if len(by_help) == 1 else f"{', '.join(methods)}: {help}" for help, methods in by_help.items()]
        fields[name] = {"description": "; ".join(words)}
    return {**photo_fields, **fields}


def submission_schema(photo_fields: dict) -> dict:
    """The body of POST /api/jobs: one of ``photo_fields`` (the photo, or from_job), ``method`` and that method's
    options, nothing else. Alternatives (``anyOf``, which exclude one another): one closed schema per method,
    layer (form_variants), rule (_rule_variants) and photo field. ``anyOf`` rather than ``oneOf``: the same
    for these, and fuzzers draw from it without validating the photo's bytes."""
    branches = []
    for method in METHODS:
        layer_option = _layer_option(method)
        for layer_name, fields in form_variants(method):
            for rule_fields, rule_required in _rule_variants(method):
                for photo in photo_fields:
                    required = [photo] + ([] if method.name == DEFAULT_METHOD else ["method"]) + rule_required
                    if layer_name is not None and layer_name != layer_option.default:
                        required.append(layer_option.name)
                    merged = {**fields, **rule_fields}
                    branches.append({"type": "object", "additionalProperties": False, "required": required,
                                     "properties": {photo: {key: value for key, value in photo_fields[photo].items()
                                                            if key != "description"},
                                                    **{other: False for other in photo_fields if other != photo},
                                                    "method": {"type": "string", "const": method.name},
                                                    "model": MODEL_FIELD, **merged}})
    return {"type": "object", "properties": _described_fields(photo_fields), "additionalProperties": False,
            "anyOf": branches}
