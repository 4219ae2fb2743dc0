"""Tiny event-camera data sets, written in the publishers' own on-disk formats.

Each ``write_*`` function fills ``root/download`` with what a user downloads by
hand, shrunk to a few random samples, so that spikingjelly 2.0's loaders can
read them end to end: they extract the archives into ``root/extract``, convert
every sample to ``root/events_np/...npz`` and integrate those into frame caches
such as ``root/frames_number_<T>_split_by_number``.  Nothing is fetched.

N-MNIST (``write_nmnist``; ``spikingjelly.datasets.n_mnist.NMNIST``)
    ``download/Train.zip`` and ``download/Test.zip``, holding
    ``Train/<digit>/<id>.bin`` and ``Test/<digit>/<id>.bin``.  A ``.bin`` file is
    a stream of 40-bit ATIS events, 5 bytes each: x, y, then 24 bits whose top
    bit is the polarity and whose other 23 bits are the timestamp in us.
    34 x 34 pixels, 10 classes; the split is the zip an example is in.

CIFAR10-DVS (``write_cifar10_dvs``; ``spikingjelly.datasets.cifar10_dvs.CIFAR10DVS``)
    ``download/<class>.zip`` for all ten classes, each holding
    ``<class>/cifar10_<class>_<i>.aedat``: AEDAT 2.0, i.e. ``#`` header lines,
    then big-endian pairs (uint32 address, uint32 timestamp in us).  The address
    is the DVS128 one: bit 0 polarity, bits 1-7 x, bits 8-14 y.  spikingjelly
    reports ``(127 - y_addr, 127 - x_addr, 1 - polarity)`` as (x, y, p); the
    writer encodes the inverse, so the events it returns are what the loader
    yields.  128 x 128 pixels, 10 classes, no official train/test split.

DVS128 Gesture (``write_dvs128_gesture``; ``spikingjelly.datasets.dvs128_gesture.DVS128Gesture``)
    ``download/DvsGesture.tar.gz`` holding ``DvsGesture/userNN_<lighting>.aedat``
    with ``userNN_<lighting>_labels.csv`` beside each, plus
    ``DvsGesture/trials_to_train.txt`` and ``trials_to_test.txt`` (which decide
    the split); beside the archive ``gesture_mapping.csv``, ``LICENSE.txt`` and
    ``README.txt``.  A trial is AEDAT 3.1: ``#...\\r\\n`` header lines closed by
    ``#!END-HEADER\\r\\n``, then packets, each a 28-byte little-endian header
    (type, source: int16; event size, timestamp offset, timestamp overflow,
    capacity, number, valid: int32) followed by capacity x size bytes.
    Polarity events (type 1) are 8 bytes: uint32 (bit 0 valid, bit 1 polarity,
    bits 2-16 y, bits 17-31 x) and int32 timestamp in us; packets of other
    types (a special-event packet is written first) are skipped by the loader.
    A labels csv has a header line, then ``class (1-11), startTime_usec,
    endTime_usec`` rows; the loader keeps the events with start <= t < end as
    one sample, so the events written between gestures are dropped.  Every
    trial performs all 11 gestures once.  128 x 128 pixels, 11 classes.

What the loaders check: when ``root/events_np`` is missing they verify the md5
of every file named by ``resource_url_md5()`` in ``root/download``, before and
whatever ``root/extract`` holds.  A file that is not byte for byte the
publisher's is deleted, and the loader then raises (N-MNIST, Gesture) or
downloads the real one (CIFAR10-DVS).  Hand-made files can never match, so each
writer returns the md5 of what it wrote (``EventFiles.md5``) for a test to put
in place of the published checksums; every other step runs unchanged.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import struct
import tarfile
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

EVENT_DTYPE = np.dtype([("t", np.int64), ("x", np.int64), ("y", np.int64), ("p", np.int64)])
CIFAR10_CLASSES = ("airplane", "automobile", "bird", "cat", "deer",
                   "dog", "frog", "horse", "ship", "truck")
GESTURES = ("hand_clapping", "right_hand_wave", "left_hand_wave", "right_arm_clockwise",
            "right_arm_counter_clockwise", "left_arm_clockwise", "left_arm_counter_clockwise",
            "arm_roll", "air_drums", "air_guitar", "other_gestures")
LIGHTINGS = ("fluorescent", "fluorescent_led", "lab", "led", "natural")
_STAMP = (2017, 1, 1, 0, 0, 0)  # fixed archive dates keep the files (and md5s) reproducible


@dataclass(frozen=True)
class Sample:
    """One written sample, as the loader should give it back."""

    split: str          # "train", "test", or "" where the data set has no split
    label: int          # 0-based class of the data set
    folder: str         # class folder the loader files the sample under
    name: str           # file stem of the sample in the loader's caches
    events: np.ndarray  # EVENT_DTYPE records (t, x, y, p), as the loader decodes them


@dataclass(frozen=True)
class EventFiles:
    """What a ``write_*`` function wrote under ``root``."""

    root: Path
    sensor_size: tuple[int, int]  # (H, W)
    num_classes: int
    md5: dict[str, str]           # file name in root/download -> md5 of what was written
    samples: tuple[Sample, ...]

    def split(self, split: str) -> list[Sample]:
        return [s for s in self.samples if s.split == split]


def _events(rng: np.random.Generator, n_range: tuple[int, int], H: int, W: int,
            t0: int = 0) -> np.ndarray:
    """Random events inside an H x W sensor, strictly increasing times, both polarities."""
    n = int(rng.integers(n_range[0], n_range[1] + 1))
    ev = np.empty(n, EVENT_DTYPE)
    ev["t"] = t0 + np.cumsum(rng.integers(1, 50, n))
    ev["x"] = rng.integers(0, W, n)
    ev["y"] = rng.integers(0, H, n)
    ev["p"] = rng.permutation(n) % 2
    return ev


def _md5(path: Path) -> str:
    return hashlib.md5(path.read_bytes()).hexdigest()


def _zip(path: Path, members: dict[str, bytes]) -> None:
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, data in members.items():
            zf.writestr(zipfile.ZipInfo(name, _STAMP), data, zipfile.ZIP_DEFLATED)


def _tar_gz(path: Path, members: dict[str, bytes]) -> None:
    with open(path, "wb") as raw, gzip.GzipFile(fileobj=raw, mode="wb", mtime=0) as gz, \
            tarfile.open(fileobj=gz, mode="w") as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size, info.mtime = len(data), 0
            tar.addfile(info, io.BytesIO(data))


def _download_dir(root: str | Path) -> Path:
    download = Path(root) / "download"
    download.mkdir(parents=True, exist_ok=False)
    return download


def encode_atis(ev: np.ndarray) -> bytes:
    """N-MNIST's 5-byte ATIS records."""
    if ev["t"].max(initial=0) >= 1 << 23:
        raise ValueError("ATIS timestamps have 23 bits")
    rec = np.empty((len(ev), 5), np.uint8)
    rec[:, 0], rec[:, 1] = ev["x"], ev["y"]
    rec[:, 2] = (ev["p"] << 7) | (ev["t"] >> 16)
    rec[:, 3], rec[:, 4] = (ev["t"] >> 8) & 0xFF, ev["t"] & 0xFF
    return rec.tobytes()


def write_nmnist(root: str | Path, samples_per_class: int = 2, seed: int = 0,
                 events: tuple[int, int] = (100, 300)) -> EventFiles:
    """``Train.zip`` / ``Test.zip`` with ``samples_per_class`` examples per digit in each."""
    rng, download, samples = np.random.default_rng(seed), _download_dir(root), []
    for top in ("Train", "Test"):
        members = {}
        for digit in range(10):
            for _ in range(samples_per_class):
                name = f"{len(members) + 1:05d}"
                ev = _events(rng, events, 34, 34)
                members[f"{top}/{digit}/{name}.bin"] = encode_atis(ev)
                samples.append(Sample(top.lower(), digit, str(digit), name, ev))
        _zip(download / f"{top}.zip", members)
    return EventFiles(Path(root), (34, 34), 10,
                      {f.name: _md5(f) for f in download.iterdir()}, tuple(samples))


def encode_aedat2_dvs128(ev: np.ndarray) -> bytes:
    """AEDAT 2.0 file of DVS128 events, addressed so that spikingjelly decodes ``ev``."""
    x, y, p = 127 - ev["y"], 127 - ev["x"], 1 - ev["p"]
    header = (b"#!AER-DAT2.0\r\n"
              b"# This is a raw AE data file - do not edit\r\n"
              b"# Data format is int32 address, int32 timestamp (8 bytes total), "
              b"repeated for each event\r\n"
              b"# Timestamps tick is 1 us\r\n")
    address = (y << 8) | (x << 1) | p
    return header + np.stack([address, ev["t"]], axis=1).astype(">u4").tobytes()


def write_cifar10_dvs(root: str | Path, samples_per_class: int = 2, seed: int = 0,
                      events: tuple[int, int] = (100, 300)) -> EventFiles:
    """The ten ``<class>.zip`` archives with ``samples_per_class`` recordings each (no split)."""
    rng, download, samples = np.random.default_rng(seed), _download_dir(root), []
    for label, cls in enumerate(CIFAR10_CLASSES):
        members = {}
        for i in range(samples_per_class):
            name = f"cifar10_{cls}_{i}"
            ev = _events(rng, events, 128, 128)
            members[f"{cls}/{name}.aedat"] = encode_aedat2_dvs128(ev)
            samples.append(Sample("", label, cls, name, ev))
        _zip(download / f"{cls}.zip", members)
    return EventFiles(Path(root), (128, 128), 10,
                      {f.name: _md5(f) for f in download.iterdir()}, tuple(samples))


def _aedat3_packet(event_type: int, records: np.ndarray) -> bytes:
    n = len(records)
    header = struct.pack("<hhiiiiii", event_type, 1, 8, 4, 0, n, n, n)
    return header + records.astype("<u4").tobytes()


def encode_aedat31_polarity(ev: np.ndarray, packet_size: int = 64) -> bytes:
    """AEDAT 3.1 file: a special-event packet, then polarity packets of ``ev``."""
    header = (b"#!AER-DAT3.1\r\n#Format: RAW\r\n#Source 1: DVS128\r\n"
              b"#Start-Time: 2017-01-01 00:00:00 (TZ+0000)\r\n#!END-HEADER\r\n")
    special = np.array([[(1 << 1) | 1, 0]])  # one valid timestamp-reset event at t = 0
    data = (ev["x"] << 17) | (ev["y"] << 2) | (ev["p"] << 1) | 1
    polarity = np.stack([data, ev["t"]], axis=1)
    return header + _aedat3_packet(0, special) + b"".join(
        _aedat3_packet(1, polarity[i:i + packet_size]) for i in range(0, len(ev), packet_size))


def write_dvs128_gesture(root: str | Path, samples_per_class: int = 1, seed: int = 0,
                         events: tuple[int, int] = (40, 120)) -> EventFiles:
    """``DvsGesture.tar.gz`` and its three companion files.

    ``samples_per_class`` trials are written per split, each performing all 11
    gestures once, with random events between gestures that the loader drops.
    """
    rng, download, samples = np.random.default_rng(seed), _download_dir(root), []
    members = {}
    for split, first_user in (("train", 1), ("test", 24)):
        trials = [f"user{first_user + i // 5:02d}_{LIGHTINGS[i % 5]}"
                  for i in range(samples_per_class)]
        listing = "".join(f"{trial}.aedat\n" for trial in trials)
        members[f"DvsGesture/trials_to_{split}.txt"] = listing.encode()
        for trial in trials:
            parts, rows, t = [], ["class,startTime_usec,endTime_usec"], 1_000_000
            for label in rng.permutation(11):
                parts.append(_events(rng, (5, 20), 128, 128, t))        # idle, dropped
                start = int(parts[-1]["t"][-1]) + 100
                ev = _events(rng, events, 128, 128, start)
                end = int(ev["t"][-1]) + 1
                parts.append(ev)
                rows.append(f"{label + 1},{start},{end}")
                samples.append(Sample(split, int(label), str(label), f"{trial}_0", ev))
                t = end + 100
            members[f"DvsGesture/{trial}.aedat"] = encode_aedat31_polarity(np.concatenate(parts))
            members[f"DvsGesture/{trial}_labels.csv"] = ("\n".join(rows) + "\n").encode()
    _tar_gz(download / "DvsGesture.tar.gz", members)
    (download / "gesture_mapping.csv").write_text(
        "action,label\n" + "".join(f"{g},{i + 1}\n" for i, g in enumerate(GESTURES)))
    (download / "LICENSE.txt").write_text("Synthetic test data for autospk.\n")
    (download / "README.txt").write_text("Synthetic DVS128 Gesture trials for autospk tests.\n")
    return EventFiles(Path(root), (128, 128), 11,
                      {f.name: _md5(f) for f in download.iterdir()}, tuple(samples))
