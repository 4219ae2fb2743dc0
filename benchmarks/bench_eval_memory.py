"""Peak memory of scoring a subnet on a large image folder: streaming against the model's own footprint.

Builds an image-folder data set in a temporary folder: ``test/<class>/`` holds --images
224x224 JPEG images (default 20,000) and ``train/<class>/`` a few hundred more for BN
recalibration. Then, each in a fresh child process, so that each peak is its own:

- ``model + one batch``: builds a small supernet for 224x224 input (patch 16, embed 32,
  depth 2, T 1: about 10 ms an image on one CPU core), reads one
  evaluation batch from the folder and runs one forward pass in eval mode;
- ``evaluation``: builds the same supernet and scores its largest subnet on the whole
  ``test/`` folder with `nas.SubnetEvaluator` (default `EvaluationSettings`: BN
  recalibration on 4 x 64 training images, batches of 256, energy measured).

Both children import the same modules; each reports its peak resident set size
(``resource.getrusage(RUSAGE_SELF).ru_maxrss``). The target: the evaluation's peak is
within 1.2x of the first. The table also shows what holding the split in memory, as the
evaluator did before it streamed, would take: images x 3 x 224 x 224 x 4 bytes.

    python benchmarks/bench_eval_memory.py [--images 20000] [--batch-size 256] [--folder DIR] [--keep]

On this repository's shared 2-core machine, writing the 20,000 images took about 2 minutes
and scoring them 13 to 17; --images lowers both. --folder reuses (or keeps) a folder built
before.
"""

from __future__ import annotations

import argparse
import json
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

SIZE = 224
CLASSES = 10
TRAIN_PER_CLASS = 40
"""Training images per class: enough for 4 recalibration batches of 64 after the validation split."""


def write_folder(root: Path, images: int) -> float:
    """Write the image folder (smooth colour gradients, one hue per class); return seconds taken."""
    start = time.perf_counter()
    rng = np.random.default_rng(0)
    ramp = np.linspace(0.0, 1.0, SIZE, dtype=np.float32)
    for split, count in (("train", TRAIN_PER_CLASS * CLASSES), ("test", images)):
        for c in range(CLASSES):
            (root / split / f"class{c}").mkdir(parents=True, exist_ok=True)
        for i in range(count):
            c = i % CLASSES
            slope = rng.uniform(0.2, 1.0, size=(2, 3)).astype(np.float32)
            colour = np.array([c / CLASSES, 0.5, 1 - c / CLASSES], dtype=np.float32)
            pixels = colour + np.multiply.outer(ramp, slope[0])[:, None] * np.multiply.outer(ramp, slope[1])[None]
            image = Image.fromarray((255 * np.clip(pixels, 0, 1)).astype(np.uint8))
            image.save(root / split / f"class{c}" / f"{i:06d}.jpg", quality=90)
    return time.perf_counter() - start


def child(kind: str, folder: str, batch_size: int) -> None:
    """Run in a child process: build the model, then one batch or a whole evaluation; print the peak."""
    import torch
    from torch.utils.data import DataLoader

    from models import SpikformerSupernet, SupernetConfig
    from nas import DatasetSpec, EvaluationSettings, SubnetEvaluator, load_dataset

    data = load_dataset(DatasetSpec("folder", root=folder))
    cfg = SupernetConfig(in_channels=3, img_size=SIZE, patch_size=16, num_classes=CLASSES, max_depth=2,
                         max_embed_dim=32, max_num_heads=4, max_mlp_ratio=4.0, time_steps=1)
    net = SpikformerSupernet(cfg).eval()
    start = time.perf_counter()
    images = 0
    if kind == "one-batch":
        x, _ = next(iter(DataLoader(data.test, batch_size=batch_size, shuffle=False)))
        with torch.no_grad():
            net(x)
        images = len(x)
    else:
        evaluator = SubnetEvaluator(net, data.train_eval, data.test, settings=EvaluationSettings(batch_size=batch_size))
        images = evaluator(cfg.largest_subnet()).images_scored
    peak_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(json.dumps({"peak_mib": peak_kib / 1024, "images": images, "seconds": time.perf_counter() - start}))


def measure(kind: str, folder: Path, batch_size: int) -> dict:
    out = subprocess.run([sys.executable, __file__, "--child", kind, "--folder", str(folder),
                          "--batch-size", str(batch_size)], capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", type=int, default=20_000, help="images in the scored folder")
    parser.add_argument("--batch-size", type=int, default=256, help="evaluation batch size")
    parser.add_argument("--folder", default=None, help="where to build the folder (default: a temporary one)")
    parser.add_argument("--keep", action="store_true", help="keep the folder")
    parser.add_argument("--child", choices=["one-batch", "evaluation"], help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.child, args.folder, args.batch_size)
        return

    folder = Path(args.folder) if args.folder else Path(tempfile.mkdtemp(prefix="autospk-memory-"))
    present = len(list((folder / "test").glob("*/*.jpg"))) if (folder / "test").is_dir() else 0
    written = None
    if present != args.images:
        shutil.rmtree(folder, ignore_errors=True)
        print(f"writing {args.images} + {TRAIN_PER_CLASS * CLASSES} images of {SIZE}x{SIZE} to {folder}", flush=True)
        written = write_folder(folder, args.images)
    try:
        base = measure("one-batch", folder, args.batch_size)
        full = measure("evaluation", folder, args.batch_size)
    finally:
        if not args.keep and not args.folder:
            shutil.rmtree(folder, ignore_errors=True)
    held_gib = args.images * 3 * SIZE * SIZE * 4 / 2**30
    ratio = full["peak_mib"] / base["peak_mib"]
    print()
    print(f"image folder: {args.images} JPEG images of {SIZE}x{SIZE}x3"
          + (f" (written in {written:.0f} s)" if written is not None else "")
          + f"; supernet for 224x224, patch 16, embed 32, depth 2, T 1; evaluation batch {args.batch_size}")
    print()
    print("| process | images | peak RSS | seconds |")
    print("|---|---|---|---|")
    print(f"| model + one batch (forward) | {base['images']} | {base['peak_mib']:.0f} MiB | {base['seconds']:.1f} |")
    print(f"| streaming evaluation (recalibration + accuracy + energy) | {full['images']} | "
          f"{full['peak_mib']:.0f} MiB | {full['seconds']:.0f} |")
    print(f"| split held in memory (the evaluator before streaming), images alone | {args.images} | "
          f"{held_gib:.1f} GiB | - |")
    print()
    print(f"evaluation peak / (model + one batch) = {ratio:.2f} (target <= 1.2)")


if __name__ == "__main__":
    main()
