import os
import shutil
import zipfile

import numpy as np
import pytest
import torch
from PIL import Image

from conftest import write_images
from facegan.errors import DataError
from facegan.batches import TensorBatches, get_dataloader
from facegan.data import find_images, load_images
from facegan.synthetic import draw_faces


def zip_folder(folder, zip_path, arc_root):
    with zipfile.ZipFile(zip_path, "w") as z:
        for root, _, files in os.walk(folder):
            for f in files:
                full = os.path.join(root, f)
                z.write(full, os.path.join(arc_root, os.path.relpath(full, folder)))
    return zip_path


def test_udacity_folder_from_top_or_inside(udacity_dir):
    for path in (udacity_dir, udacity_dir / "celeba", udacity_dir / "celeba" / "New Folder With Items"):
        images = load_images(path, 32, progress=False)
        assert images.shape == (40, 3, 32, 32) and images.dtype == torch.uint8


def test_udacity_zip_read_in_place(udacity_dir, tmp_path):
    zip_path = zip_folder(udacity_dir, tmp_path / "processed-celeba-small.zip", "processed_celeba_small")
    shutil.rmtree(udacity_dir)
    source = find_images(zip_path)
    assert source.kind == "zip" and len(source.members) == 40  # .DS_Store is not an image
    assert all("New Folder With Items/" in m for m in source.members)
    assert load_images(zip_path, 64, progress=False).shape == (40, 3, 64, 64)


def celeba_frame(width=178, height=218):
    """An aligned-CelebA-shaped frame: red in the conventional centred 108/178 face square, blue outside."""
    array = np.zeros((height, width, 3), np.uint8)
    array[..., 2] = 255
    side = round(width * 108 / 178)
    top, left = (height - side) // 2, (width - side) // 2
    array[top:top + side, left:left + side] = (255, 0, 0)
    return Image.fromarray(array)


@pytest.mark.parametrize("size", [(178, 218), (89, 109)])
@pytest.mark.parametrize("as_zip", [False, True])
def test_aligned_celeba_is_cropped_to_the_face_square(tmp_path, size, as_zip):
    folder = tmp_path / "img_align_celeba"
    folder.mkdir()
    for i in range(1, 4):
        celeba_frame(*size).save(folder / f"{i:06d}.png")
    path = zip_folder(folder, tmp_path / "celeba.zip", "img_align_celeba") if as_zip else folder
    images = load_images(path, 32, progress=False).float()
    assert images.shape == (3, 3, 32, 32)
    inner = images[:, :, 2:-2, 2:-2]  # the crop edge may blend a pixel
    assert inner[:, 0].min() > 200 and inner[:, 2].max() < 50


def test_other_aspect_ratios_take_the_largest_centred_square(tmp_path):
    array = np.zeros((60, 120, 3), np.uint8)
    array[:, 30:90] = 255  # the centred 60x60 square is white, the sides black
    Image.fromarray(array).save(tmp_path / "wide.png")
    images = load_images(tmp_path, 32, progress=False)
    assert images[..., 1:-1].min() > 240


def test_synthetic_is_deterministic_varied_and_face_sized():
    a, b = draw_faces(16, 32, seed=3), draw_faces(16, 32, seed=3)
    assert a.shape == (16, 32, 32, 3) and a.dtype == np.uint8
    assert (a == b).all()
    assert not (draw_faces(16, 32, seed=4) == a).all()
    # varied: faces differ from each other clearly, and the centre (the face) differs from the corners
    assert np.abs(a[0].astype(int) - a[1].astype(int)).mean() > 10
    assert load_images("synthetic", 64, synthetic_count=8).shape == (8, 3, 64, 64)


def test_cache_is_reused_and_invalidated(tmp_path, monkeypatch):
    folder = write_images(tmp_path / "faces", 6)
    first = load_images(folder, 32, progress=False)
    cached = list((tmp_path / "cache").glob("*.npy"))
    assert len(cached) == 1
    # reuse: decoding is not called again
    import facegan.data as data
    monkeypatch.setattr(data, "_decode_all", lambda *a, **k: pytest.fail("decoded again despite the cache"))
    assert torch.equal(load_images(folder, 32, progress=False), first)
    monkeypatch.undo()
    monkeypatch.setenv("FACEGAN_CACHE", str(tmp_path / "cache"))
    # invalidation: a new file, a changed file
    write_images(folder, 1, start=7)
    assert len(load_images(folder, 32, progress=False)) == 7
    Image.new("RGB", (64, 64), (255, 0, 0)).save(os.path.join(folder, "000001.jpg"))
    os.utime(os.path.join(folder, "000001.jpg"), ns=(1, 1))
    changed = load_images(folder, 32, progress=False)
    assert changed[0, 0].float().mean() > 240
    # a damaged cache file is rebuilt, not fatal
    for f in (tmp_path / "cache").glob("*.npy"):
        f.write_bytes(b"garbage")
    assert len(load_images(folder, 32, progress=False)) == 7


def test_parallel_decoding_matches_serial(tmp_path):
    folder = write_images(tmp_path / "many", 1100, size=(40, 40), ext="png")
    serial = load_images(folder, 32, cache=False, workers=1, progress=False)
    parallel = load_images(folder, 32, cache=False, workers=2, progress=False)
    assert torch.equal(serial, parallel)


def test_get_dataloader_is_udacity_compatible(udacity_dir):
    loader = get_dataloader(8, 32, str(udacity_dir))
    images, labels = next(iter(loader))
    assert images.shape == (8, 3, 32, 32) and images.dtype == torch.float32
    assert 0 <= images.min() and images.max() <= 1 and images.max() > 0.5
    assert labels.shape == (8,)
    assert isinstance(loader.sampler, torch.utils.data.RandomSampler)


def test_tensor_batches_order_range_and_shards():
    images = torch.arange(20, dtype=torch.uint8).view(20, 1, 1, 1).expand(20, 3, 2, 2).contiguous()
    batches = TensorBatches(images, 4, seed=1)
    assert len(batches) == 5
    epoch0 = torch.cat([b[:, 0, 0, 0] for b in batches.epoch(0)])
    assert epoch0.min() >= -1 and epoch0.max() <= 1
    assert sorted(((epoch0 + 1) * 255 / 2).round().long().tolist()) == list(range(20))
    again = torch.cat([b for b in batches.epoch(0)])
    assert torch.equal(torch.cat([b[:, 0, 0, 0] for b in batches.epoch(0)]), epoch0) and len(again) == 20
    assert not torch.equal(torch.cat([b[:, 0, 0, 0] for b in batches.epoch(1)]), epoch0)
    resumed = torch.cat([b[:, 0, 0, 0] for b in batches.epoch(0, start=2)])
    assert torch.equal(resumed, epoch0[8:])
    # two shards of the same epoch are disjoint and together cover the drawn batches
    shards = [torch.cat([b[:, 0, 0, 0] for b in TensorBatches(images, 4, seed=1, shard=(r, 2)).epoch(0)])
              for r in range(2)]
    assert len(set(shards[0].tolist()) & set(shards[1].tolist())) == 0
    with pytest.raises(DataError, match="batch size"):
        TensorBatches(images, 64)


def test_mirror_flips_a_random_half_of_the_images_each_epoch_the_same_way_on_every_replay():
    images = torch.randint(0, 256, (64, 3, 4, 5), dtype=torch.uint8)
    plain, mirrored = TensorBatches(images, 8, seed=3), TensorBatches(images, 8, seed=3, mirror=True)
    flips = [mirrored.flips(epoch) for epoch in range(3)]
    assert all(20 < int(f.sum()) < 44 for f in flips)  # about half, drawn afresh every epoch
    assert not torch.equal(flips[0], flips[1]) and not plain.flips(0).any()
    for epoch in range(3):
        order = mirrored.order(epoch)
        assert torch.equal(order, plain.order(epoch))  # mirroring leaves the order alone
        for b, (p, m) in enumerate(zip(plain.epoch(epoch), mirrored.epoch(epoch))):
            flipped = flips[epoch][order[b * 8:(b + 1) * 8]]
            assert torch.equal(m[flipped], p[flipped].flip(-1)) and torch.equal(m[~flipped], p[~flipped])
    # a resumed epoch replays the same flips from its batch on
    assert torch.equal(torch.cat(list(mirrored.epoch(1, start=5))), torch.cat(list(mirrored.epoch(1)))[40:])


def test_an_unwritable_cache_costs_speed_not_the_run(tmp_path, monkeypatch):
    folder = write_images(tmp_path / "faces", 3)
    (tmp_path / "not-a-folder").write_text("x")
    monkeypatch.setenv("FACEGAN_CACHE", str(tmp_path / "not-a-folder" / "cache"))
    with pytest.warns(UserWarning, match="could not cache decoded images"):
        assert len(load_images(folder, 32, progress=False)) == 3


def test_a_cache_entry_zeroed_behind_its_header_is_noticed_and_decoded_again(tmp_path, monkeypatch):
    """A storage fault or a bad copy can zero a cache entry's pixels and leave its .npy header intact: np.load reads
    it without complaint. The checksum in the entry's name catches it: a warning, the images decoded again, and the
    run trains on the real faces, not on black ones."""
    from facegan.config import TrainConfig
    from facegan.train import Trainer
    monkeypatch.setenv("FACEGAN_CACHE", str(tmp_path / "cache"))
    folder = write_images(tmp_path / "faces", 40)
    real = load_images(folder, 32, progress=False)
    entry, = (tmp_path / "cache").glob("*.npy")
    with open(entry, "r+b") as f:
        np.lib.format.read_magic(f)
        np.lib.format.read_array_header_1_0(f)
        header = f.tell()
        size = entry.stat().st_size - header
        f.write(bytes(size))  # every pixel zero, the header untouched
    assert np.load(entry).shape == (40, 32, 32, 3) and not np.load(entry).any()  # loads "fine"

    seen = []

    def step(batch, z):
        seen.append(batch.clone())
        return torch.zeros(()), torch.zeros(())
    config = TrainConfig(data=str(folder), batch_size=20, epochs=1, d_conv_dim=8, g_conv_dim=8, z_size=16,
                         n_samples=4, out=str(tmp_path / "run"), threads="1", ema=0)
    with pytest.warns(UserWarning, match="cache entry .* is damaged .* decoding the images again"):
        Trainer(config, progress=False, step=step).run()
    assert torch.cat(seen).sum() > 0 and torch.equal(load_images(folder, 32, progress=False), real)
    entry, = (tmp_path / "cache").glob("*.npy")  # rebuilt, and intact again
    assert np.load(entry).any()
