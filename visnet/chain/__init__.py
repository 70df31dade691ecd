"""Any Keras CNN that is a chain, as a plain description the deconvnet can walk down.

A deconvnet (Zeiler & Fergus 2014) projects an activation down layer by layer: every max pool needs
the switches of the one pool window it came from, every convolution its own filters transposed. That
works on a chain of layers; a branch (a residual ``Add``, a ``Concatenate``) has no single way down.

One job per module:

- :mod:`.spec`: the description (:class:`~.spec.Chain` of :class:`~.spec.LayerSpec`), shapes, layer list;
- :mod:`.keras_config`: reads a Keras file's architecture without running it and lists what is not a chain;
- :mod:`.convert`: loads an accepted file in Keras' safe mode and turns it into a Chain (batch norm folded);
- :mod:`.store`: the models folder (``chain.json`` + ``weights.npz``, nothing executable);
- :mod:`.preprocess`: photo to model input, per preprocessing convention;
- :mod:`.ops`: the forward pass of one layer, shared by the graph and the autodiff reference;
- :mod:`.graph`: the TF1-style graph of a chain, max pools with switches;
- :mod:`.projection`: deconvnet, guided backprop and gradient projections down the chain;
- :mod:`.autodiff`: the same projections by ``tf.GradientTape``, the independent check;
- :mod:`.fields`, :mod:`.flops`: receptive fields and FLOP counts from the chain;
- :mod:`.vgg`: VGG16 and VGG19 (visnet.architecture + their weights) as chains; VGG19 is a built-in model;
- :mod:`.cli`: ``python -m visnet models add | list | remove``.

Nothing here imports TensorFlow or Keras at import time except graph, projection, autodiff and ops.
"""
