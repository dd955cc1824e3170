import random

import pytest
from PIL import Image

from lorakiln.config.train import BucketConfig
from lorakiln.core.errors import ConfigError
from lorakiln.train.batches import prepare_image
from lorakiln.train.buckets import (
    bucket_info,
    bucket_resolutions,
    choose_bucket,
    cover_size,
    crop_offset,
    resample_filter,
    resolve_spec,
)


def spec(**kw):
    return resolve_spec(BucketConfig(**kw), 512, "sd15")


def test_buckets_at_512_keep_area_and_steps():
    s = spec(resolution=512, min_bucket_reso=256, max_bucket_reso=1024, bucket_reso_steps=64)
    buckets = bucket_resolutions(s)
    assert (512, 512) in buckets and (384, 640) in buckets and (640, 384) in buckets
    assert (256, 1024) in buckets and (1024, 256) in buckets
    for w, h in buckets:
        assert w % 64 == 0 and h % 64 == 0
        assert 256 <= w <= 1024 and 256 <= h <= 1024
        assert w * h <= 512 * 512
    # symmetric: every landscape bucket has its portrait twin
    assert all((h, w) in buckets for w, h in buckets)


def test_sdxl_1024_buckets_include_the_usual_sdxl_sizes():
    s = resolve_spec(BucketConfig(resolution=1024, max_bucket_reso=2048), 1024, "sdxl")
    buckets = bucket_resolutions(s)
    for b in [(1024, 1024), (832, 1216), (1216, 832), (896, 1152), (768, 1344), (640, 1600)]:
        assert b in buckets, b


def test_nearest_aspect_bucket_and_cover_resize():
    s = spec(resolution=512, max_bucket_reso=1024)
    assert choose_bucket((1000, 1000), s) == (512, 512)
    b = choose_bucket((600, 900), s)  # 2:3 portrait
    assert b[0] < b[1] and abs(b[0] / b[1] - 2 / 3) < 0.08
    target = cover_size((600, 900), b)
    assert target[0] >= b[0] and target[1] >= b[1]
    assert abs(target[0] / target[1] - 600 / 900) < 0.01


def test_no_upscale_gives_small_images_their_own_bucket():
    s = spec(resolution=512, bucket_no_upscale=True, bucket_reso_steps=64)
    assert choose_bucket((300, 200), s) == (256, 192)
    big = choose_bucket((2000, 1000), s)  # larger than max area: scaled into the area
    assert big[0] * big[1] <= 512 * 512 and big[0] > big[1]
    assert cover_size((300, 200), (256, 192))[0] <= 300  # never enlarged


def test_disabled_bucketing_uses_the_resolution():
    s = spec(resolution=(512, 768), enable_bucket=False, max_bucket_reso=1024)
    assert choose_bucket((100, 100), s) == (512, 768)


def test_sdxl_steps_must_be_multiple_of_32_and_resolution_in_range():
    with pytest.raises(ConfigError, match="multiple of 32 for SDXL"):
        resolve_spec(BucketConfig(bucket_reso_steps=48), 1024, "sdxl")
    resolve_spec(BucketConfig(bucket_reso_steps=48), 512, "sd15")  # fine for SD1.5
    with pytest.raises(ConfigError, match="must contain the resolution"):
        resolve_spec(BucketConfig(resolution=512, min_bucket_reso=640), 512, "sd15")


def test_kohya_resolution_string():
    assert BucketConfig(resolution="1024,1024").resolution == (1024, 1024)
    assert BucketConfig(resolution="768").resolution == 768


def test_crop_centre_and_random_within_bounds():
    assert crop_offset((700, 512), (512, 512)) == (94, 0)
    rng = random.Random(1)
    for _ in range(50):
        x, y = crop_offset((700, 600), (512, 512), rng)
        assert 0 <= x <= 188 and 0 <= y <= 88


def test_resample_filter_area_down_lanczos_up():
    assert resample_filter((1000, 1000), (500, 500)) == Image.Resampling.BOX
    assert resample_filter((300, 300), (512, 512)) == Image.Resampling.LANCZOS
    assert resample_filter((300, 300), (512, 512), "bicubic") == Image.Resampling.BICUBIC


def test_prepare_image_shape_range_and_flip():
    img = Image.new("RGB", (600, 400), (255, 0, 0))
    img.paste((0, 0, 255), (0, 0, 300, 400))  # left half blue
    p = prepare_image(img, (384, 256))
    assert tuple(p.pixels.shape) == (3, 256, 384)
    assert p.pixels.min() >= -1 and p.pixels.max() <= 1
    assert p.pixels[2, 0, 0] > 0.9 and p.pixels[0, 0, -1] > 0.9  # blue left, red right
    f = prepare_image(img, (384, 256), flip=True)
    assert f.pixels[0, 0, 0] > 0.9 and f.pixels[2, 0, -1] > 0.9
    assert p.original_size == (600, 400)


def test_bucket_info_counts_and_ar_error():
    info = bucket_info([(512, 512), (512, 512), (384, 640)], [(500, 500), (520, 500), (380, 640)])
    assert info["buckets"][0] == {"resolution": [384, 640], "count": 1}
    assert info["buckets"][1] == {"resolution": [512, 512], "count": 2}
    assert 0 < info["mean_img_ar_error"] < 0.05
