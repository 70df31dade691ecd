"""The views besides the deconvnet, one module each; ``VIEWS`` maps a method name to its class.

Importing this package imports no TensorFlow: a view's module (and with it TensorFlow) is imported the
first time its class is looked up, so the web layer can list methods and validate options cheaply.
"""
import importlib
from collections.abc import Mapping

from .options import parse_options

# method -> (module in this package, class name)
VIEW_CLASSES = {
    "feature-maps": ("feature_maps", "FeatureMapsView"),
    "filters": ("filters", "FiltersView"),
    "occlusion": ("occlusion", "OcclusionView"),
    "activation-max": ("activation_max", "ActivationMaximisationView"),
    "classification": ("classification", "ClassificationView"),
    "channel-rank": ("channel_rank", "ChannelRankView"),
    "gradients": ("gradients", "GradientsView"),
}


def get_view(method: str):
    """The View subclass for ``method``, importing its module on first use."""
    if method not in VIEW_CLASSES:
        raise ValueError(f"unknown view {method!r}; expected one of {', '.join(VIEW_CLASSES)}")
    module_name, class_name = VIEW_CLASSES[method]
    return getattr(importlib.import_module(f".{module_name}", __name__), class_name)


class _LazyViews(Mapping):
    """``VIEWS[method]`` is the view's class, imported when first looked up."""

    def __getitem__(self, method):
        if method not in VIEW_CLASSES:
            raise KeyError(method)
        return get_view(method)

    def __iter__(self):
        return iter(VIEW_CLASSES)

    def __len__(self):
        return len(VIEW_CLASSES)


VIEWS = _LazyViews()


def run_view(engine, method: str, rgb, options=None, progress=None):
    """Validate ``options`` (strings or values, see :mod:`visnet.views.options`), build the view on
    ``engine`` and run it on the photo ``rgb``. Raises ValueError for a bad method or option and
    :class:`visnet.views.base.ClassifierRequired` when the view needs a top the weights lack."""
    values = parse_options(method, options or {})
    return get_view(method)(engine).run(rgb, progress, **values)
