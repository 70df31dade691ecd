"""The one FLOP model (visnet.architecture) against hand counts: 2 FLOPs per multiply-add, 9 taps."""
from visnet.architecture import classifier_flops, conv_flops, forward_flops, get_layer


def test_one_conv_layer_by_hand():
    # block3_conv2: a 56×56 output, 256 channels in and out, 3×3 taps.
    assert conv_flops(get_layer("block3_conv2")) == 2 * 56 * 56 * 9 * 256 * 256 == 3_699_376_128
    assert conv_flops(get_layer("block3_pool")) == 0


def test_forward_flops_count_every_conv_up_to_the_deepest_layer():
    block1 = 2 * 224 * 224 * 9 * (3 * 64 + 64 * 64)
    assert forward_flops("block1_conv1") == 2 * 224 * 224 * 9 * 3 * 64
    assert forward_flops("block1_pool") == forward_flops(["block1_conv2", "block1_pool"]) == block1
    assert forward_flops("block2_conv1") == block1 + 2 * 112 * 112 * 9 * 64 * 128
    assert forward_flops() == forward_flops("pools") == forward_flops("block5_pool") == 30_693_261_312


def test_classifier_flops_by_hand():
    assert classifier_flops() == 2 * (7 * 7 * 512 * 4096 + 4096 * 4096 + 4096 * 1000) == 247_267_328
