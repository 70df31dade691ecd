"""The views besides the deconvnet, one module each; ``VIEWS`` maps a method name to its class.

The views, their classes and options are listed in :mod:`visnet.methods`. Importing this package
imports no TensorFlow: a view's module (and with it TensorFlow) is imported the first time its class is
looked up, so the web layer can list methods and validate options cheaply.
"""
from collections.abc import Mapping

from .. import architecture
from ..methods import VIEW_NAMES, computation_options, get_method, parse_options


def get_view(method: str):
    """The View subclass for ``method``, importing its module on first use."""
    if method not in VIEW_NAMES:
        raise ValueError(f"unknown view {method!r}; expected one of {', '.join(VIEW_NAMES)}")
    return get_method(method).load()


class _LazyViews(Mapping):
    """``VIEWS[method]`` is the view's class, imported when first looked up."""

    def __getitem__(self, method):
        if method not in VIEW_NAMES:
            raise KeyError(method)
        return get_view(method)

    def __iter__(self):
        return iter(VIEW_NAMES)

    def __len__(self):
        return len(VIEW_NAMES)


VIEWS = _LazyViews()


def run_view(engine, method: str, rgb, options=None, progress=None):
    """Validate ``options`` (strings or values, see :func:`visnet.methods.parse_options`), build the view
    on ``engine`` and run it on the photo ``rgb`` (already made square: ``fit`` is the caller's, who read the photo). Raises ValueError for a bad method or option and
    :class:`visnet.views.base.ClassifierRequired` when the view needs a top the weights lack."""
    # A stored model's engine (visnet.chain.engine.ChainEngine, whose class has ``view``) has its own layers and
    # views; VGG16's are visnet.architecture's. Asked of the class: nothing of the engine runs before the check.
    stored = getattr(type(engine), "view", None) is not None
    values = parse_options(method, options or {}, engine.layers if stored else architecture)  # before TensorFlow
    view = engine.view(method) if stored else get_view(method)
    return view(engine).run(rgb, progress, **computation_options(values))
