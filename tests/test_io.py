from __future__ import annotations

import dataclasses
import errno
import os
import pickle
import subprocess
import sys

import pytest
import torch

from models import SupernetConfig
from nas import (
    DatasetSpec,
    SearchSpace,
    SupernetCheckpoint,
    atomic_write,
    default_device,
    load_checkpoint,
    load_tensor_file,
    save_checkpoint,
)
from nas.recipes import get_recipe
from tests.conftest import TINY_SPACE


def test_atomic_write_replaces_the_target_whole(tmp_path):
    target = tmp_path / "sub" / "out.txt"
    assert atomic_write(target, lambda tmp: tmp.write_text("first")) == target
    atomic_write(target, lambda tmp: tmp.write_text("second"))
    assert target.read_text() == "second"
    assert [p.name for p in target.parent.iterdir()] == ["out.txt"]


def test_a_failing_writer_leaves_no_temp_file_and_the_old_target(tmp_path):
    target = tmp_path / "out.txt"
    target.write_text("good")

    def half_then_fail(tmp):
        tmp.write_text("half")
        raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"):
        atomic_write(target, half_then_fail)
    assert target.read_text() == "good"
    assert [p.name for p in tmp_path.iterdir()] == ["out.txt"]


def test_a_full_disk_leaves_no_temp_file_and_the_old_target(tmp_path):
    target = tmp_path / "out.pt"
    target.write_bytes(b"good")

    def fill_the_disk(tmp):
        tmp.write_bytes(b"\0" * 4096)
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(tmp))

    with pytest.raises(OSError) as err:
        atomic_write(target, fill_the_disk)
    assert err.value.errno == errno.ENOSPC
    assert target.read_bytes() == b"good"
    assert [p.name for p in tmp_path.iterdir()] == ["out.pt"]


def _dead_pid() -> int:
    """The id of a process that has ended (and been reaped)."""
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def test_the_next_write_removes_temp_files_of_killed_writers_only(tmp_path):
    target = tmp_path / "supernet.pt"
    save_checkpoint(target, _checkpoint())
    dead = tmp_path / f".supernet.pt.tmp{_dead_pid()}"
    dead.write_bytes(b"half a checkpoint")  # as a writer killed mid-write leaves it
    live = tmp_path / f".supernet.pt.tmp{os.getppid()}"  # a running process may still be writing it
    live.write_bytes(b"being written")
    others = [tmp_path / f".other.pt.tmp{_dead_pid()}", tmp_path / ".supernet.pt.tmpx"]
    for other in others:
        other.write_bytes(b"not ours")
    save_checkpoint(target, _checkpoint(epoch=2))
    assert load_checkpoint(target).epoch == 2
    assert not dead.exists()
    assert live.exists() and all(other.exists() for other in others)


def _checkpoint(**changes) -> SupernetCheckpoint:
    space = SearchSpace.from_dict(TINY_SPACE)
    ckpt = SupernetCheckpoint(
        epoch=1, model={"w": torch.ones(2)}, optimizer={}, scheduler={}, rng={}, space=space,
        supernet_cfg=space.supernet_config(in_channels=1, img_size=8, num_classes=10),
        dataset=DatasetSpec("digits"), recipe=get_recipe("digits"), seed=0, history=[],
    )
    return dataclasses.replace(ckpt, **changes)


def test_a_failed_checkpoint_save_leaves_no_temp_file_and_the_old_checkpoint(tmp_path):
    path = tmp_path / "supernet.pt"
    save_checkpoint(path, _checkpoint())
    with pytest.raises((pickle.PicklingError, AttributeError)):  # a lambda does not pickle
        save_checkpoint(path, _checkpoint(epoch=2, history=[{"loss": lambda: 0}]))
    assert [p.name for p in tmp_path.iterdir()] == ["supernet.pt"]
    assert load_checkpoint(path).epoch == 1


def test_load_tensor_file_says_what_is_missing_or_damaged(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"^weights file .*none\.pt does not exist; make one$"):
        load_tensor_file(tmp_path / "none.pt", what="weights file", hint="make one")
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"garbage")
    with pytest.raises(ValueError, match=r"bad\.pt is corrupt or not a weights file \(\w+\)$"):
        load_tensor_file(bad, what="weights file", hint="make one")
    torch.save({"x": torch.arange(3)}, bad)
    assert torch.equal(load_tensor_file(bad, what="weights file", hint="make one")["x"], torch.arange(3))


def test_default_device_is_the_gpu_when_there_is_one():
    expected = "cuda" if torch.cuda.is_available() else "cpu"
    assert default_device() == torch.device(expected)
    assert default_device("cpu") == default_device(torch.device("cpu")) == torch.device("cpu")


def test_checkpoint_rejects_configs_it_cannot_rebuild(tmp_path):
    state = _checkpoint().to_state()
    state["supernet"] = {**SupernetConfig().to_dict(), "max_embed_dim": 12}
    path = tmp_path / "bad.pt"
    torch.save(state, path)
    with pytest.raises(ValueError, match=r"supernet checkpoint .*bad\.pt: .*max_embed_dim=12"):
        load_checkpoint(path)
