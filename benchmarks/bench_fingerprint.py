"""What the data fingerprint costs now that it hashes every training sample.

`nas.data.fingerprint` streams the stored bytes of every training sample (digits' and CIFAR's
pixels, each file of an image folder) into one hash; `train-supernet`, `create` and every
worker compute it once. This prints its time beside what it is compared with:

- digits: one training epoch of the digits supernet (the digits recipe; two epochs timed less
  one, so the set-up is not counted);
- an image folder of --images 32x32 PNG files (written first, into --folder or a temporary
  folder): one pass of the training split through its data loader (decoding and augmenting
  every image, no model), which is less than any training epoch takes.

    python benchmarks/bench_fingerprint.py [--images 50000] [--folder DIR] [--repeats 3]

Target: the fingerprint under 10% of one training epoch.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch.utils.data import DataLoader

from nas.data import fingerprint, legacy_fingerprint, load_dataset
from nas.dataspec import DatasetSpec


def _seconds(fn, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def _write_folder(root: Path, images: int) -> None:
    """`images` random 32x32 RGB PNGs in 10 class folders (skipped if the folder holds them)."""
    if len(list(root.glob("*/*.png"))) == images:
        return
    rng = np.random.default_rng(0)
    for i in range(images):
        folder = root / f"class{i % 10}"
        folder.mkdir(parents=True, exist_ok=True)
        Image.fromarray(rng.integers(0, 256, size=(32, 32, 3), dtype=np.uint8)).save(folder / f"{i:06d}.png")


def _digits_epoch() -> float:
    """Seconds of one digits training epoch: two epochs less one, each from scratch."""
    from nas.recipes import get_recipe
    from nas.space import load_space
    from nas.train import train_supernet

    data = load_dataset(DatasetSpec("digits"))
    space = load_space("digits")
    seconds = {}
    with tempfile.TemporaryDirectory() as tmp:
        for epochs in (1, 2):
            recipe = get_recipe("digits").replace(epochs=epochs)
            start = time.perf_counter()
            train_supernet(space, DatasetSpec("digits"), recipe, Path(tmp) / f"{epochs}.pt", data=data,
                           device="cpu", progress=False, eval_every=0)
            seconds[epochs] = time.perf_counter() - start
    return seconds[2] - seconds[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", type=int, default=50_000)
    parser.add_argument("--folder", type=Path, default=None, help="where the PNGs go (default: a temporary folder)")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()

    digits = load_dataset(DatasetSpec("digits"))
    rows = [("digits (1,797 images)", "one training epoch", _seconds(lambda: fingerprint(digits), args.repeats),
             _seconds(lambda: legacy_fingerprint(digits), args.repeats), _digits_epoch())]

    with tempfile.TemporaryDirectory() as tmp:
        root = args.folder or Path(tmp)
        _write_folder(root, args.images)
        folder = load_dataset(DatasetSpec(name="folder", root=str(root)))
        loader = DataLoader(folder.train, batch_size=128, shuffle=True, num_workers=0)

        def one_pass() -> None:
            for _ in loader:
                pass

        rows.append((f"folder ({args.images:,} PNG files, {len(folder.train_eval):,} for training)",
                     "one data-loader pass of the training split",
                     _seconds(lambda: fingerprint(folder), args.repeats),
                     _seconds(lambda: legacy_fingerprint(folder), args.repeats), _seconds(one_pass, 1)))

    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads; medians of {args.repeats} runs "
          "(the data-loader pass: one run); files in the page cache after they were written")
    print()
    print("| data | compared with | fingerprint, every sample, ms | sampled (before), ms | comparison, s | "
          "fingerprint / comparison (target < 10%) |")
    print("|---|---|---|---|---|---|")
    for data, what, full, sampled, against in rows:
        print(f"| {data} | {what} | {1e3 * full:.1f} | {1e3 * sampled:.1f} | {against:.1f} | "
              f"{100 * full / against:.2f}% |")


if __name__ == "__main__":
    main()
