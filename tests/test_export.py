"""Exported subnets that stand alone (format 2, `models.load_exported`) and fine-tuning a subnet."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import optuna
import pytest
import torch
from PIL import Image
from sklearn.datasets import load_digits

import nas.train_loop as train_loop
from models import ConfigError, InputTransform, Spikformer, load_exported
from nas import DatasetSpec, SamplerSettings, finetune_recipe, get_recipe, load_dataset, load_finetune_checkpoint
from nas.train import FINETUNE_METRICS, metrics_path
from studies import formatting
from studies.cli import main
from studies.export import FINETUNE_CHECKPOINT, export_trial, finetune_trial
from studies.study import create, load
from studies.workers import run_worker
from tests.helpers import fake_cifar10, image_tree

optuna.logging.set_verbosity(optuna.logging.WARNING)
ROOT = Path(__file__).resolve().parents[1]
README_MARKER = "<!-- the export walkthrough: tests/test_export.py runs this block as written -->"


# ----------------------------------------------------------------------------- the input transform


def test_transform_of_raw_digits_gives_exactly_the_pipelines_test_images(digits_data):
    transform = digits_data.input_transform(time_steps=2)
    assert transform.classes == tuple(str(d) for d in range(10)) and transform.pixel_max == 16
    raw = load_digits().images  # float64, pixel values 0..16
    for position, index in enumerate(digits_data.test.indices):
        assert torch.equal(transform(raw[index]), digits_data.test[position][0])
    assert transform(torch.from_numpy(raw[0])).dtype == torch.float32  # tensors as arrays


def test_transform_refuses_images_already_scaled_or_normalised(digits_data):
    """The issue's mistake: the model fed x / 16 scored 13.7% instead of 96.7%. Through the transform it cannot be."""
    transform = digits_data.input_transform(time_steps=2)
    raw = load_digits().images[0]
    with pytest.raises(ValueError, match=r"expected raw pixel values, whole numbers from 0 to 16; got values from "
                                         r"0 to 0\.\d+, not all whole numbers\. Pass the sample as it was read"):
        transform(raw / 16)
    with pytest.raises(ValueError, match=r"got values from -\d.* not all whole numbers"):
        transform(digits_data.test[0][0])  # a normalised image
    with pytest.raises(ValueError, match=rf"got values from 0 to {int(raw.max()) * 16}\. Pass"):
        transform(raw * 16)  # whole numbers, but beyond digits' 0..16
    with pytest.raises(ValueError, match=r"expected one image of 1 channel and 8x8 pixels .* got shape \(1, 1, 8, 8\)"):
        transform(raw[None, None])


def test_transform_of_folder_images_resizes_pil_images_as_the_pipeline_does(tmp_path):
    image_tree(tmp_path / "train", ("ant", "bee", "cat"), 12, 12, "RGB")
    image_tree(tmp_path / "test", ("ant", "bee", "cat"), 4, 12, "RGB")
    splits = load_dataset(DatasetSpec(name="folder", root=str(tmp_path), img_size=16))
    transform = splits.input_transform(time_steps=3)
    assert transform.classes == ("ant", "bee", "cat") and transform.img_size == 16
    test = splits.test
    for position, index in enumerate(test.indices):
        with Image.open(test.dataset.samples[index][0]) as image:
            assert torch.equal(transform(image), test[position][0])
    with pytest.raises(ValueError, match=r"3 channels and 16x16 pixels .* got shape \(3, 12, 12\); pass a PIL image"):
        transform(np.zeros((3, 12, 12), dtype=np.uint8))


def test_transform_of_cifar_arrays_in_either_layout_and_class_names_from_the_meta_file(tmp_path, accept_fake_cifar):
    raw = fake_cifar10(tmp_path)["test_batch"].reshape(-1, 3, 32, 32)
    splits = load_dataset(DatasetSpec(name="cifar10", root=str(tmp_path)))
    transform = splits.input_transform(time_steps=4)
    assert transform.classes[0] == "airplane" and len(transform.classes) == 10
    for i, chw in enumerate(raw):
        expected = splits.test[i][0]
        hwc = chw.transpose(1, 2, 0)
        assert torch.equal(transform(chw), expected) and torch.equal(transform(hwc), expected)
        assert torch.equal(transform(Image.fromarray(hwc)), expected)


def test_event_transform_crops_counts_and_refuses_anything_else():
    transform = InputTransform(in_channels=2, img_size=4, time_steps=2, pixel_max=None, frames=3)
    frames = torch.arange(3 * 2 * 6 * 6, dtype=torch.float32).view(3, 2, 6, 6)
    assert torch.equal(transform(frames.numpy()), frames[..., 1:5, 1:5])
    with pytest.raises(ValueError, match=r"F=3 frames, C=2 polarities .* got shape \(2, 2, 6, 6\)"):
        transform(frames[:2])
    with pytest.raises(ValueError,
                       match=r"expected event counts, whole numbers >= 0; got values from 0 to 107\.5, not all"):
        transform(frames / 2)


def test_transform_round_trips_through_plain_values():
    transform = InputTransform(in_channels=3, img_size=32, time_steps=4, mean=(0.5, 0.4, 0.3), std=(0.2, 0.2, 0.2),
                               classes=("a", "b"))
    text = json.dumps(transform.to_dict())
    assert InputTransform.from_dict(json.loads(text)) == transform
    with pytest.raises(ConfigError, match=r"unknown keys \['scale'\]"):
        InputTransform.from_dict({**transform.to_dict(), "scale": 1})
    with pytest.raises(ConfigError, match="one value per channel"):
        InputTransform(in_channels=3, img_size=32, time_steps=4, mean=(0.5,), std=(0.2,))


# ----------------------------------------------------------------------------- export and load


@pytest.fixture(scope="module")
def study(tmp_path_factory, digits_checkpoint):
    storage = f"sqlite:///{tmp_path_factory.mktemp('export')}/s.db"
    create(storage, "digits-pareto", objective="pareto", checkpoint=digits_checkpoint.path,
           sampler=SamplerSettings(population_size=4, num_parents=2), device="cpu")
    run_worker(storage, "digits-pareto", n_trials=6, device="cpu")
    return storage


@pytest.fixture(scope="module")
def knee_export(study, tmp_path_factory):
    folder = tmp_path_factory.mktemp("walkthrough") / "digits-knee"
    study_, settings = load(study, "digits-pareto")
    return folder, export_trial(study_, settings, folder, trial="knee", device="cpu")


def test_export_holds_weights_config_transform_and_measurements(knee_export, digits_data):
    folder, result = knee_export
    state = torch.load(folder / "subnet.pt", weights_only=True)
    assert set(state) == {"format", "supernet", "config", "model", "transform", "info"} and state["format"] == 2
    assert state["transform"] == digits_data.input_transform(result["config"]["time_steps"]).to_dict()
    described = json.loads((folder / "subnet.json").read_text())
    assert described["transform"] == state["transform"] and described["weights"] == "subnet.pt"
    for key in ("study", "trial", "test_accuracy", "test_energy_mj", "energy_profile", "energy_first_layer", "dataset"):
        assert described[key] == state["info"][key] == result[key]
    assert result["study"] == "digits-pareto" and result["finetune"] is None
    assert result["energy_profile"] == "fp32" and result["energy_first_layer"] == "once"

    subnet = load_exported(folder)
    assert isinstance(subnet.model, Spikformer) and not subnet.model.training
    assert subnet.info == state["info"] and subnet.classes == [str(d) for d in range(10)]
    x = torch.stack([digits_data.test[i][0] for i in range(len(digits_data.test))])
    with torch.no_grad():
        predicted = subnet.model(x).argmax(1)
    labels = torch.tensor([digits_data.test[i][1] for i in range(len(digits_data.test))])
    assert (predicted == labels).double().mean().item() == result["test_accuracy"]


def test_docs_walkthrough_run_as_written_in_a_fresh_process_prints_the_stored_accuracy(knee_export):
    folder, result = knee_export
    page = (ROOT / "docs" / "how-to" / "export-finetune.md").read_text()
    block = re.search(re.escape(README_MARKER) + r"\n```python\n(.*?)```", page, re.S)
    assert block, "the export guide lost its walkthrough"
    code = block.group(1)
    assert 'load_exported("digits-knee")' in code and "import studies" not in code and "import nas" not in code
    exact = "\nprint('exact:', float(accuracy) == subnet.info['test_accuracy'])\n"
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    proc = subprocess.run([sys.executable, "-c", code + exact], cwd=folder.parent, env=env, capture_output=True,
                          text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    lines = proc.stdout.splitlines()
    stored = f"{result['test_accuracy']:.2%}"
    assert f"test accuracy {stored}, stored {stored}" in lines
    assert lines[-1] == "exact: True"
    assert re.fullmatch(r"predicted \d, true \d", lines[1]) and lines[0].startswith("raw 1x8x8 images, pixels 0..16")


def test_old_and_foreign_files_load_or_fail_clearly(knee_export, digits_checkpoint, tmp_path):
    folder, _ = knee_export
    state = torch.load(folder / "subnet.pt", weights_only=True)
    old = tmp_path / "old"
    old.mkdir()
    torch.save({key: state[key] for key in ("supernet", "config", "model")} | {"format": 1}, old / "subnet.pt")
    (old / "subnet.json").write_text(json.dumps({"trial": 3}))
    subnet = load_exported(old / "subnet.pt")
    assert subnet.info == {"trial": 3} and subnet.model.config.to_dict() == state["config"]
    with pytest.raises(ConfigError, match="exported in format 1, which does not record its input transform"):
        subnet.transform(np.zeros((8, 8)))
    with pytest.raises(ConfigError, match="not an autospk subnet export"):
        load_exported(digits_checkpoint.path)
    with pytest.raises(FileNotFoundError, match="subnet export .* does not exist"):
        load_exported(tmp_path / "nothing")


# ----------------------------------------------------------------------------- fine-tuning


def test_finetune_recipe_lowers_the_learning_rate_and_trains_one_network():
    recipe = get_recipe("cifar")
    tuned = finetune_recipe(recipe, epochs=30)
    assert (tuned.epochs, tuned.lr, tuned.warmup_epochs, tuned.mixup_off_epoch) == (30, recipe.lr / 10, 0, 20)
    assert not tuned.sandwich and not tuned.distill and tuned.min_lr <= tuned.lr
    assert (tuned.batch_size, tuned.weight_decay, tuned.label_smoothing) == (128, 0.06, 0.1)
    assert finetune_recipe(recipe).epochs == 30 and finetune_recipe(recipe, lr=1e-3).lr == 1e-3
    assert finetune_recipe(get_recipe("digits")).epochs == 3


def test_finetune_resumes_after_a_crash_to_the_same_weights_and_exports_a_loadable_subnet(
        study, tmp_path, monkeypatch, capsys, digits_data):
    storage = study
    assert main(["finetune", "--storage", storage, "--study-name", "digits-pareto", "--trial", "best", "--epochs",
                 "2", "--output", str(tmp_path / "straight"), "--device", "cpu"]) == 0
    captured = capsys.readouterr()
    result = json.loads(captured.out)  # stdout is the JSON alone: progress and summary are on stderr
    inherited = result["finetune"]["inherited"]
    before, energy = inherited["test_accuracy"], inherited["test_energy_mj"]
    unit = formatting.energy_unit([energy, result["test_energy_mj"]])
    change = result["test_energy_mj"] / energy - 1
    assert captured.err.splitlines()[-1] == (
        f"trial {result['trial']}: test accuracy {before:.2%} inherited -> {result['test_accuracy']:.2%} fine-tuned "
        f"(2 epochs); energy {formatting.format_energy(energy, unit)} -> "
        f"{formatting.format_energy(result['test_energy_mj'], unit)} ({change:+.1%}, ops model: fine-tuning changes "
        f"the firing rates); export: {tmp_path / 'straight'}")
    assert "epoch 2/2" in captured.err  # the per-epoch progress lines
    assert result["finetune"]["epochs"] == 2 and result["finetune"]["recipe"]["name"] == "digits-finetune"
    history = load_finetune_checkpoint(tmp_path / "straight" / FINETUNE_CHECKPOINT).history
    assert [row["epoch"] for row in history] == [1, 2] and all(0 <= row["val_accuracy"] <= 1 for row in history)
    csv = metrics_path(tmp_path / "straight" / FINETUNE_CHECKPOINT).read_text().splitlines()
    assert csv[0] == ",".join(FINETUNE_METRICS) and len(csv) == 3

    study_, settings = load(storage, "digits-pareto")
    real_save = train_loop.save_checkpoint

    def save_then_crash(path, ckpt):
        real_save(path, ckpt)
        raise KeyboardInterrupt

    monkeypatch.setattr(train_loop, "save_checkpoint", save_then_crash)
    with pytest.raises(KeyboardInterrupt):
        finetune_trial(study_, settings, tmp_path / "resumed", trial="best", epochs=2, device="cpu", progress=False)
    assert load_finetune_checkpoint(tmp_path / "resumed" / FINETUNE_CHECKPOINT).epoch == 1
    assert not (tmp_path / "resumed" / "subnet.pt").exists()
    monkeypatch.setattr(train_loop, "save_checkpoint", real_save)
    with pytest.raises(ConfigError, match=r"trained with another recipe \(stored -> now: \{'epochs': \(2, 3\)"):
        finetune_trial(study_, settings, tmp_path / "resumed", trial="best", epochs=3, resume=True, device="cpu",
                       progress=False)
    resumed = finetune_trial(study_, settings, tmp_path / "resumed", trial="best", epochs=2, resume=True,
                             device="cpu", progress=False)

    straight, again = load_exported(tmp_path / "straight"), load_exported(tmp_path / "resumed")
    for (name, a), b in zip(straight.model.state_dict().items(), again.model.state_dict().values()):
        assert torch.equal(a, b), name
    assert resumed["test_accuracy"] == result["test_accuracy"]
    assert again.info["finetune"]["inherited"] == result["finetune"]["inherited"]
    # The loader and the transform reproduce the stored test accuracy of the fine-tuned subnet.
    raw = load_digits().images
    x = torch.stack([again.transform(raw[i]) for i in digits_data.test.indices])
    labels = torch.tensor([digits_data.test[i][1] for i in range(len(digits_data.test))])
    with torch.no_grad():
        accuracy = (again.model(x).argmax(1) == labels).double().mean().item()
    assert accuracy == resumed["test_accuracy"]


def test_finetune_has_help_and_refuses_a_bad_trial(study, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["finetune", "--help"])
    assert exit_info.value.code == 0 and "--epochs" in capsys.readouterr().out
    assert main(["finetune", "--storage", study, "--study-name", "digits-pareto", "--trial", "worst"]) == 2
    assert capsys.readouterr().err == "autospk-study: error: --trial 'worst': give best, knee or a trial number\n"
