"""README's figure of single-activation patches (Zeiler & Fergus, Fig. 2), drawn from a real run on scikit-image's
cat: for each pooling layer, the three strongest channels' single strongest activation projected alone by the
deconvnet, cropped to its receptive field, beside the photo in that field. Written to test-artifacts/ and, with
--update-screenshot, to docs/single-activation-patches.png."""
import numpy as np

from tests.support.paths import ARTIFACTS, PROJECT_ROOT
from visnet import display
from visnet.architecture import POOL_LAYERS
from visnet.outputs import feature_pictures

FIGURE = "single-activation-patches.png"


def test_single_activation_patches_figure(engine, chelsea_rgb, request):
    result = engine.deconv(chelsea_rgb, layers="pools", top_k=3, seed="max")
    rows = []
    for layer in POOL_LAYERS:
        features = result.images[0].layers[layer.name]
        tiles = []
        for feature in features:
            pictures = feature_pictures(feature, chelsea_rgb)
            patch, photo_patch = pictures["patch"], pictures["photo_patch"]
            side = feature.field[2]
            assert patch.shape == photo_patch.shape == (side, side, 3)
            # A strong unit's projection has structure: normalised on its own, it is far from flat grey.
            assert feature.max_value > 0 and np.ptp(patch) >= 100 and patch.std() > 2, (layer.name, feature.channel)
            tiles.append({"channel": feature.channel, "norm": feature.norm, "patch": patch, "photo_patch": photo_patch})
        rows.append((f"{layer.name} {side} px", tiles))
    figure = display.summary_sheet(chelsea_rgb, rows, title="Chelsea (scikit-image) · hed weights · deconvnet, "
                                                         "one activation at a time")
    assert figure.shape[0] > len(rows) * display.SHEET_TILE_SIZE and np.ptp(figure) == 255

    ARTIFACTS.mkdir(exist_ok=True)
    png = display.encode_png(figure)
    (ARTIFACTS / FIGURE).write_bytes(png)
    if request.config.getoption("--update-screenshot"):
        (PROJECT_ROOT / "docs" / FIGURE).write_bytes(png)
