"""Benchmarks that print figures (never timed tests): ``python -m visnet.bench`` (the deconvnet sweep),
``python -m visnet.bench.views`` (occlusion, activation maximisation) and ``python -m visnet.bench.scan``
(the forward scan), each against this machine's dense convolution rate."""
