import io

import numpy as np
import pytest
from PIL import Image

from tests.support.images import png_chunks
from visnet import display

# --- normalisation and quantisation -------------------------------------------------------------


def test_normalize_symmetric_maps_zero_to_half_and_largest_magnitude_to_an_end():
    np.testing.assert_array_equal(display.normalize_symmetric([[-2.0, 0.0, 1.0]]), [[0.0, 0.5, 0.75]])
    np.testing.assert_array_equal(display.normalize_symmetric([[4.0, -1.0]]), [[1.0, 0.375]])


def test_normalize_symmetric_of_zeros_is_half_without_nan():
    result = display.normalize_symmetric(np.zeros((2, 3), dtype=np.float32))
    np.testing.assert_array_equal(result, np.full((2, 3), 0.5))


def test_normalize_min_max():
    np.testing.assert_array_equal(display.normalize_min_max([1.0, 3.0]), [0.0, 1.0])
    np.testing.assert_array_equal(display.normalize_min_max([-1.0, 0.0, 3.0]), [0.0, 0.25, 1.0])
    np.testing.assert_array_equal(display.normalize_min_max(np.full((2, 2), 7.0)), np.zeros((2, 2)))


def test_normalizing_rejects_nan():
    with pytest.raises(ValueError, match="finite"):
        display.normalize_symmetric([0.0, np.nan])


def test_to_uint8_rounds_and_clips():
    values = np.array([-0.3, 0.0, 0.001, 0.002, 0.5, 100 / 255, 1.0, 1.7])
    expected = np.array([0, 0, 0, 1, 128, 100, 255, 255], dtype=np.uint8)
    result = display.to_uint8(values)
    assert result.dtype == np.uint8
    np.testing.assert_array_equal(result, expected)


# --- reconstructions ---------------------------------------------------------------------------


def test_reconstruction_image_swaps_bgr_to_rgb():
    reconstruction = np.zeros((224, 224, 3), dtype=np.float32)
    reconstruction[..., 0] = 3.0  # blue, in BGR order
    symmetric = display.reconstruction_image(reconstruction)
    assert symmetric.shape == (224, 224, 3) and symmetric.dtype == np.uint8
    np.testing.assert_array_equal(symmetric[0, 0], [128, 128, 255])
    min_max = display.reconstruction_image(reconstruction, domain="min-max")
    np.testing.assert_array_equal(min_max[100, 50], [0, 0, 255])


def test_reconstruction_symmetric_scale_is_shared_by_channels():
    reconstruction = np.zeros((201, 1, 3))
    reconstruction[:, 0, 2] = np.arange(201)  # R ramps 0 … 200: its 99.5th percentile of |x| is 199
    reconstruction[0, 0, 1] = -99.5  # one G value at minus half the scale
    image = display.reconstruction_image(reconstruction)
    # scale s: the 99.5th percentile of all 603 magnitudes (≈ 197: numpy interpolates to 196.99)
    np.testing.assert_array_equal(image[0, 0], [128, 63, 128])  # G = 0.5 − 99.5/394 = 0.2475 → 63.1
    assert image[197, 0, 0] == 255 and image[200, 0, 0] == 255  # at the scale, and clipped beyond
    assert image[1, 0, 0] == 128  # 0.5 + 1/394 → 128.15
    assert image[98, 0, 0] == 191  # 0.5 + 98/394 = 0.7487 → 190.9


def test_reconstruction_image_rejects_unknown_domain():
    with pytest.raises(ValueError, match="domain"):
        display.reconstruction_image(np.zeros((4, 4, 3)), domain="log")


def test_reconstruction_png_is_the_encoded_image():
    rng = np.random.default_rng(1)
    reconstruction = rng.normal(size=(224, 224, 3)).astype(np.float32)
    decoded = np.asarray(Image.open(io.BytesIO(display.reconstruction_png(reconstruction))))
    np.testing.assert_array_equal(decoded, display.reconstruction_image(reconstruction))


# --- PNG encoding -------------------------------------------------------------------------------


@pytest.mark.parametrize("shape, mode", [((5, 7), "L"), ((5, 7, 3), "RGB"), ((5, 7, 4), "RGBA")])
def test_encode_png_round_trips_exactly(shape, mode):
    array = np.random.default_rng(0).integers(0, 256, size=shape, dtype=np.uint8)
    data = display.encode_png(array)
    with Image.open(io.BytesIO(data)) as image:
        assert image.format == "PNG"
        assert image.mode == mode
        np.testing.assert_array_equal(np.asarray(image), array)


def test_encode_png_writes_no_metadata_chunks():
    types = [kind.decode("ascii") for kind, _ in png_chunks(display.encode_png(np.zeros((3, 3, 3), dtype=np.uint8)))]
    assert types[0] == "IHDR" and types[-1] == "IEND" and "IDAT" in types
    assert not {"tEXt", "iTXt", "zTXt", "eXIf", "tIME"} & set(types)
    assert set(types) <= {"IHDR", "IDAT", "IEND"}


def test_encode_png_compression_level_changes_the_bytes_never_the_pixels():
    array = np.tile(np.arange(256, dtype=np.uint8), (64, 3)).reshape(64, 256, 3)
    encoded = {level: display.encode_png(array, compress_level=level) for level in (0, 1, 6, 9)}
    assert encoded[1] == display.encode_png(array)  # the default is PNG_COMPRESS_LEVEL
    assert display.PNG_COMPRESS_LEVEL == 1
    assert len(encoded[0]) > len(encoded[9])
    for data in encoded.values():
        np.testing.assert_array_equal(np.asarray(Image.open(io.BytesIO(data))), array)
    with pytest.raises(ValueError, match="compress_level must be an integer from 0 to 9"):
        display.encode_png(array, compress_level=10)


def test_encode_png_rejects_float_arrays():
    with pytest.raises(ValueError, match="uint8"):
        display.encode_png(np.zeros((3, 3, 3), dtype=np.float32))


# --- colormap and overlay ------------------------------------------------------------------------


def test_colormap_hits_its_anchors_and_interpolates():
    anchors = display.COLORMAPS["inferno"]
    result = display.colormap(np.array([[0.0, 1.0, 1 / 16, 2.0]]))
    assert result.shape == (1, 4, 3) and result.dtype == np.uint8
    np.testing.assert_array_equal(result[0, 0], anchors[0])
    np.testing.assert_array_equal(result[0, 1], anchors[-1])
    # Half-way between the first two anchors (0, 0, 4) and (31, 12, 72).
    np.testing.assert_array_equal(result[0, 2], [16, 6, 38])
    np.testing.assert_array_equal(result[0, 3], anchors[-1])  # clipped


def test_colormap_is_monotonically_brighter():
    ramp = display.colormap(np.linspace(0, 1, 50)[None, :]).astype(float)[0]
    luma = ramp @ display.LUMA_WEIGHTS
    assert np.all(np.diff(luma) > 0)


def test_overlay_lights_the_hot_cell_region():
    photo = np.full((224, 224, 3), 120, dtype=np.uint8)
    activation = np.zeros((7, 7), dtype=np.float32)
    activation[2, 5] = 3.0  # covers rows 64..95, columns 160..191 of the photo
    overlay = display.overlay_activation(photo, activation)
    assert overlay.shape == (224, 224, 3) and overlay.dtype == np.uint8
    brightness = overlay.astype(float).mean(axis=2)
    inside = brightness[70:90, 166:186].mean()
    outside = brightness[150:, :100].mean()
    assert outside == pytest.approx(60.0)  # 120 dimmed by half
    assert inside > outside + 25
    brightest_row, brightest_column = np.unravel_index(np.argmax(brightness), brightness.shape)
    assert 64 <= brightest_row < 96 and 160 <= brightest_column < 192


def test_overlay_peak_is_the_documented_blend():
    photo = np.full((16, 16, 3), 200, dtype=np.uint8)
    activation = np.ones((16, 16))
    overlay = display.overlay_activation(photo, activation, alpha=0.5)
    # 0.5 · (200 · 0.5) + 0.5 · top inferno colour (252, 255, 164)
    np.testing.assert_array_equal(overlay[8, 8], [176, 178, 132])


def test_overlay_of_zero_map_is_the_dimmed_grey_photo():
    photo = np.zeros((224, 224, 3), dtype=np.uint8)
    photo[..., 0] = 255  # pure red: luma 0.299 · 255 = 76.245, dimmed 38.1
    overlay = display.overlay_activation(photo, np.zeros((14, 14), dtype=np.float32))
    np.testing.assert_array_equal(overlay, np.full((224, 224, 3), 38, dtype=np.uint8))


# --- grid --------------------------------------------------------------------------------------


def test_grid_exact_layout():
    tiles = [np.full((2, 3), value, dtype=np.uint8) for value in (10, 20, 30)]
    result = display.grid(tiles, columns=2, pad=1, background=0)
    expected = np.array([
        [10, 10, 10, 0, 20, 20, 20],
        [10, 10, 10, 0, 20, 20, 20],
        [0, 0, 0, 0, 0, 0, 0],
        [30, 30, 30, 0, 0, 0, 0],
        [30, 30, 30, 0, 0, 0, 0],
    ], dtype=np.uint8)
    np.testing.assert_array_equal(result, expected)


def test_grid_promotes_grey_tiles_when_mixed_with_colour_and_caps_columns():
    grey = np.full((2, 2), 50, dtype=np.uint8)
    colour = np.zeros((2, 2, 3), dtype=np.uint8)
    colour[..., 2] = 200
    result = display.grid([grey, colour], columns=5)
    assert result.shape == (2, 2 + 2 + 2, 3)
    np.testing.assert_array_equal(result[0, 0], [50, 50, 50])
    np.testing.assert_array_equal(result[0, 2], [255, 255, 255])
    np.testing.assert_array_equal(result[1, 5], [0, 0, 200])


def test_grid_rejects_unequal_tiles():
    with pytest.raises(ValueError, match="one size"):
        display.grid([np.zeros((2, 2), np.uint8), np.zeros((3, 2), np.uint8)], columns=2)


# --- summary sheet ------------------------------------------------------------------------------


def make_rows(layer_count, feature_count):
    rng = np.random.default_rng(2)
    rows = []
    for layer in range(layer_count):
        features = [
            {
                "channel": 10 * layer + index,
                "norm": 45.6 * (index + 1),
                "overlay": rng.integers(0, 256, size=(224, 224, 3), dtype=np.uint8),
                "reconstruction": rng.integers(0, 256, size=(224, 224, 3), dtype=np.uint8),
            }
            for index in range(feature_count)
        ]
        rows.append((f"block{layer + 1}_conv1", features))
    return rows


def test_summary_sheet_size_follows_the_layout_constants():
    photo = np.full((224, 224, 3), 90, dtype=np.uint8)
    sheet = display.summary_sheet(photo, make_rows(2, 3), title="cat")
    pair = 2 * display.SHEET_TILE_SIZE + display.SHEET_TILE_GAP
    width = 2 * display.SHEET_MARGIN + display.SHEET_LABEL_WIDTH + 3 * pair + 2 * display.SHEET_PAIR_GAP
    height = (2 * display.SHEET_MARGIN + display.SHEET_PHOTO_SIZE + display.SHEET_HEADER_GAP
              + 2 * (display.SHEET_TILE_SIZE + display.SHEET_CAPTION_HEIGHT) + display.SHEET_ROW_GAP)
    assert (width, height) == (862, 556)  # with the constants as first chosen
    assert sheet.shape == (height, width, 3) and sheet.dtype == np.uint8
    assert sheet.min() < sheet.max()


def test_summary_sheet_places_photo_and_tiles():
    photo = np.full((224, 224, 3), 90, dtype=np.uint8)
    rows = make_rows(2, 3)
    sheet = display.summary_sheet(photo, rows)
    margin = display.SHEET_MARGIN
    np.testing.assert_array_equal(sheet[margin:margin + 224, margin:margin + 224], photo)
    assert np.all(sheet[0, :] == 255) and np.all(sheet[:, 0] == 255)  # white margin
    # The first reconstruction tile of the first row is the downscaled reconstruction.
    top = margin + display.SHEET_PHOTO_SIZE + display.SHEET_HEADER_GAP
    left = margin + display.SHEET_LABEL_WIDTH + display.SHEET_TILE_SIZE + display.SHEET_TILE_GAP
    tile = display.SHEET_TILE_SIZE
    expected = np.asarray(Image.fromarray(rows[0][1][0]["reconstruction"]).resize(
        (tile, tile), Image.Resampling.LANCZOS))
    np.testing.assert_array_equal(sheet[top:top + tile, left:left + tile], expected)


def test_summary_sheet_draws_dark_text():
    photo = np.full((224, 224, 3), 255, dtype=np.uint8)
    white = {"overlay": np.full((224, 224, 3), 255, np.uint8),
             "reconstruction": np.full((224, 224, 3), 255, np.uint8)}
    sheet = display.summary_sheet(photo, [("block1_conv1", [dict(white, channel=1, norm=2.0)])], title="t")
    # Only the text is not white: the layer label column, the caption strip and the header.
    top = display.SHEET_MARGIN + display.SHEET_PHOTO_SIZE + display.SHEET_HEADER_GAP
    label = sheet[top:top + display.SHEET_TILE_SIZE, :display.SHEET_MARGIN + display.SHEET_LABEL_WIDTH]
    caption = sheet[top + display.SHEET_TILE_SIZE:]
    assert label.min() < 100 and caption.min() < 100


def test_caption_text():
    assert display.caption_text(123, 45.63) == "ch 123 · ‖a‖ 45.6"
    assert display.caption_text(7, 12345.4) == "ch 7 · ‖a‖ 12,345"
    assert display.caption_text(5, 0.0) == "ch 5 · silent on this photo"  # its pictures are flat grey


def test_summary_sheet_shows_patches_after_the_reconstruction_enlarged_pixel_by_pixel():
    photo = np.full((224, 224, 3), 90, dtype=np.uint8)
    rows = make_rows(1, 2)
    rng = np.random.default_rng(4)
    for feature in rows[0][1]:
        feature["patch"] = rng.integers(0, 256, size=(6, 6, 3), dtype=np.uint8)
        feature["photo_patch"] = rng.integers(0, 256, size=(6, 6, 3), dtype=np.uint8)
    sheet = display.summary_sheet(photo, rows)
    tile, gap = display.SHEET_TILE_SIZE, display.SHEET_TILE_GAP
    group = 4 * tile + 3 * gap
    assert sheet.shape[1] == 2 * display.SHEET_MARGIN + display.SHEET_LABEL_WIDTH + 2 * group + display.SHEET_PAIR_GAP
    top = display.SHEET_MARGIN + display.SHEET_PHOTO_SIZE + display.SHEET_HEADER_GAP
    for index, kind in ((2, "patch"), (3, "photo_patch")):
        left = display.SHEET_MARGIN + display.SHEET_LABEL_WIDTH + group + display.SHEET_PAIR_GAP + index * (tile + gap)
        expected = np.asarray(Image.fromarray(rows[0][1][1][kind]).resize((tile, tile), Image.Resampling.NEAREST))
        np.testing.assert_array_equal(sheet[top:top + tile, left:left + tile], expected)
