"""Job options as the API takes them (form fields) and as a job key hashes them (normalised).

Checked against the TensorFlow-free layer table, so a bad option is a 400 before anything is
enqueued, and two spellings of the same request (``"block5_pool, block1_pool"`` and
``"block1_pool,block5_pool"``) make the same job.
"""
import hashlib
import json
from dataclasses import dataclass

from visnet.architecture import get_layer, resolve_layers

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
        value = int(raw.strip())
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
        channel = channel.strip()
        if not separator or not channel.isdigit():
            raise OptionError(f"channels: {item!r} is not of the form LAYER:CHANNEL, e.g. block5_pool:12")
        try:
            layer = get_layer(layer_name.strip())
        except ValueError as error:
            raise OptionError(f"channels: {error}") from None
        if int(channel) >= layer.channels:
            raise OptionError(f"channels: channel {int(channel)} is out of range for {layer.name}, "
                              f"which has channels 0 to {layer.channels - 1}")
        pairs.add((layer.name, int(channel)))
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
