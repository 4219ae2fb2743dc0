from __future__ import annotations

import random
from dataclasses import dataclass
from pathlib import Path

import pytest
import torch

from models import SpikformerSupernet, SubnetConfig, SupernetConfig
from nas.recipes import get_recipe
from nas.space import SearchSpace


@pytest.fixture(autouse=True, scope="session")
def _one_thread():
    # The models here are tiny: one thread is faster, and far faster when other jobs share the CPUs.
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(autouse=True)
def _seed() -> None:
    torch.manual_seed(0)
    random.seed(0)


@pytest.fixture
def tiny_supernet_cfg() -> SupernetConfig:
    return SupernetConfig(in_channels=1, img_size=8, patch_size=2, num_classes=5, max_depth=3,
                          max_embed_dim=32, max_num_heads=4, max_mlp_ratio=4.0, time_steps=2)


def random_config(supernet_cfg: SupernetConfig, rng: random.Random) -> SubnetConfig:
    """A random valid subnet of `supernet_cfg` with a full-length genome."""
    depth = rng.randint(1, supernet_cfg.max_depth)
    dim = rng.choice([16, 24, 32])
    n = supernet_cfg.max_depth
    return SubnetConfig(
        depth=depth,
        embed_dim=dim,
        num_heads=[rng.choice([h for h in (1, 2, 4) if dim % h == 0]) for _ in range(n)],
        mlp_ratio=[rng.choice([1.0, 2.5, 4.0]) for _ in range(n)],
        tau=[rng.choice([1.25, 2.0, 10.0]) for _ in range(n)],
        threshold=[rng.choice([0.6, 1.0, 1.4]) for _ in range(n)],
        time_steps=rng.randint(1, 4),
    )


TINY_SPACE = {
    "name": "tiny",
    "patch_size": 2,
    "genes": {
        "depth": [1, 2],
        "embed_dim": [8, 16],
        "mlp_ratio": [1.0, 2.0],
        "num_heads": [1, 2],
        "threshold": [0.8, 1.0],
        "tau": [1.5, 2.0],
        "time_steps": [1, 2],
    },
}


@pytest.fixture
def tiny_space() -> SearchSpace:
    return SearchSpace.from_dict(TINY_SPACE)


@pytest.fixture(scope="session")
def digits_data():
    from nas.data import load_dataset
    from nas.dataspec import DatasetSpec

    return load_dataset(DatasetSpec("digits"))


DIGITS_RECIPE = get_recipe("digits").replace(epochs=2, batch_size=64, warmup_epochs=1).with_rule("uniform")
"""The recipe of `digits_checkpoint`: two short epochs, so a resumed run can be compared with it.
One subnet per step (a third of the default sandwich's cost); tests/test_training.py trains
the other rules."""


@dataclass(frozen=True)
class TrainedSupernet:
    """The supernet every test that needs trained weights shares (train it once per session).

    Attributes:
        path: Its checkpoint; tests only read it.
        space: `TINY_SPACE`, as a `SearchSpace`.
        weights: The state dict `train_supernet` returned, detached from any model.
    """

    path: Path
    space: SearchSpace
    weights: dict[str, torch.Tensor]

    def load(self) -> SpikformerSupernet:
        """A fresh copy of the trained supernet, rebuilt from the checkpoint (eval mode)."""
        from nas import load_checkpoint

        return load_checkpoint(self.path).build_supernet()


@pytest.fixture(scope="session")
def digits_checkpoint(tmp_path_factory, digits_data) -> TrainedSupernet:
    from nas import DatasetSpec
    from nas.train import train_supernet

    space = SearchSpace.from_dict(TINY_SPACE)
    path = tmp_path_factory.mktemp("digits-supernet") / "supernet.pt"
    # On the CPU everywhere: the resume test compares bit for bit, which CUDA kernels do not promise.
    net = train_supernet(space, DatasetSpec("digits"), DIGITS_RECIPE, path, data=digits_data, device="cpu",
                         progress=False)
    weights = {name: tensor.detach().clone() for name, tensor in net.state_dict().items()}
    return TrainedSupernet(path, space, weights)


def server_answers(url: str) -> bool:
    """Whether the database server of a storage URL answers (tests of it skip when it does not)."""
    from studies.storage import open_storage

    try:
        open_storage(url)
    except Exception:
        return False
    return True


@pytest.fixture
def offline_event_loaders(monkeypatch):
    """spikingjelly's event data set loaders preprocess in one thread and fail rather than download."""
    from spikingjelly import configure
    from spikingjelly.datasets import base

    monkeypatch.setattr(configure, "max_threads_number_for_datasets_preprocess", 1)

    def no_download(*args, **kwargs):
        raise AssertionError(f"spikingjelly tried to download: {args} {kwargs}")

    monkeypatch.setattr(base, "download_url", no_download)


@pytest.fixture
def accept_fake_cifar(monkeypatch):
    """torchvision's CIFAR reader checks each file's md5 against the publisher's release; the
    hand-made files of `tests.helpers.fake_cifar10` can never match, so this one check passes."""
    import os

    from torchvision.datasets import cifar

    monkeypatch.setattr(cifar, "check_integrity", lambda path, md5=None: os.path.isfile(path))


_DATABASES = ("postgresql", "mysql", "mariadb")


def pytest_collection_modifyitems(config, items):
    """Mark every test of a database server (its id names one) `db`, so that
    ``-m "not db"`` runs without the machine's PostgreSQL and MariaDB; skip `gpu` tests, with
    the reason, on a machine without CUDA."""
    import torch

    no_cuda = pytest.mark.skip(reason="needs CUDA: run `python -m pytest -q -m gpu` on a GPU machine")
    for item in items:
        if any(name in item.nodeid.lower() for name in _DATABASES):
            item.add_marker(pytest.mark.db)
        if "gpu" in item.keywords and not torch.cuda.is_available():
            item.add_marker(no_cuda)
