"""The real command line, in subprocesses where it matters (workers, crashes, torchrun)."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import optuna
import pytest
from optuna.trial import TrialState

from nas import load_checkpoint
from studies.cli import main
from studies.progress import LINE_SECONDS
from studies.recovery import WORKER_ATTR
from studies.storage import open_storage
from tests.conftest import TINY_SPACE, server_answers
from tests.helpers import CLI, ENV, POSTGRES, assert_study_done, fails, run


@pytest.fixture(scope="module")
def tiny_toml(tmp_path_factory):
    path = tmp_path_factory.mktemp("space") / "tiny.toml"
    genes = "\n".join(f"{k} = {v}" for k, v in TINY_SPACE["genes"].items())
    path.write_text(f"patch_size = 2\n[genes]\n{genes}\n")
    return path


@pytest.mark.slow
def test_quickstart_reduced(tmp_path):
    storage = f"sqlite:///{tmp_path}/q.db"
    # As a user logs it: both streams to a file, progress on by default, every warning shown.
    log = tmp_path / "quickstart.log"
    env = {key: value for key, value in ENV.items() if key != "PYTHONWARNINGS"}
    started = time.monotonic()
    with open(log, "w") as out:
        proc = subprocess.run([*CLI, "quickstart", "--storage", storage, "--workdir", str(tmp_path / "runs"),
                               "--epochs", "2", "--trials", "6", "--population-size", "4"],
                              stdout=out, stderr=subprocess.STDOUT, env=env, timeout=600)
    seconds = time.monotonic() - started
    text = log.read_text()
    assert proc.returncode == 0, text
    assert "optuna-dashboard sqlite:///" in text
    assert "digits-aeb: top 5 by F_AEB" in text and "digits-pareto: Pareto front" in text
    for name in ("digits-aeb", "digits-pareto"):
        assert_study_done(storage, name, 6)
    listed = run("list", "--storage", storage).stdout
    assert "digits-aeb" in listed and "digits-pareto" in listed
    # The quickstart trains one subnet per step (the uniform rule), to finish in about 2 minutes.
    recipe = load_checkpoint(tmp_path / "runs" / "digits-supernet.pt").recipe
    assert (recipe.name, recipe.sandwich, recipe.distill) == ("digits", False, False)
    # Progress in a file is a line per epoch and per generation, never a bar.
    assert log.stat().st_size < 20_000, text
    assert "\r" not in text, "a progress bar was written to the file"
    for epoch in (1, 2):
        assert re.search(rf"^epoch {epoch}/2: loss \d\.\d{{4}}, lr ", text, re.M), text
    for name in ("digits-aeb", "digits-pareto"):
        # The parent looks once a second, so a generation that ends between two looks (fast
        # duplicates) shares its line with the next: at most one line per generation, and the last,
        # besides a line every 30 s while trials finish (a loaded machine: `progress.LINE_SECONDS`).
        lines = re.findall(rf"^{name}: (\d)/6 trials, front \d+, best ", text, re.M)
        assert lines and lines[-1] == "6" and lines == sorted(set(lines), key=int), text
        assert len(lines) <= 2 + seconds // LINE_SECONDS, text


# MySQL's storage path is covered by tests/test_storage.py; two workers on it add nothing here.
@pytest.mark.parametrize("backend", ["journal", "postgresql"])
@pytest.mark.slow
def test_two_workers_finish_without_losses_or_duplicates(tmp_path, digits_checkpoint, backend, capsys):
    checkpoint = digits_checkpoint.path
    storage = {"journal": f"journal://{tmp_path}/study.log", "postgresql": POSTGRES}[backend]
    if backend != "journal" and not server_answers(storage):
        pytest.skip(f"no {backend} server answers at {storage}")
    name = f"two-{uuid.uuid4().hex[:8]}"
    assert main(["create", "--storage", storage, "--study-name", name, "--objective", "pareto", "--checkpoint",
                 str(checkpoint), "--population-size", "4", "--num-parents", "2", "--eval-batch-size", "4"]) == 0
    # Small evaluation batches make a trial take ~0.6 s, so that a worker that starts a few seconds
    # after the other still finds trials to run: at full speed one worker could run all 16 alone.
    # "cpu:0" is the CPU under another name: it tells the two workers' devices apart.
    run("optimize", "--storage", storage, "--study-name", name, "--n-trials", "16", "--workers", "2",
        "--devices", "cpu,cpu:0", "--no-progress")
    study = assert_study_done(storage, name, 16)
    workers = {(t.system_attrs[WORKER_ATTR]["pid"], t.system_attrs[WORKER_ATTR]["device"])
               for t in study.trials if WORKER_ATTR in t.system_attrs}
    assert len(workers) == 2 and {device for _, device in workers} == {"cpu", "cpu:0"}
    capsys.readouterr()
    assert main(["show", "--storage", storage, "--study-name", name, "--format", "json"]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert shown and {"accuracy", "energy_mj", "depth", "embed_dim", "arch_id"} <= set(shown[0])


@pytest.mark.slow
def test_killed_worker_mid_trial_and_the_study_still_completes(tmp_path, digits_checkpoint):
    checkpoint = digits_checkpoint.path
    storage = f"journal://{tmp_path}/crash.log"
    name = "crash"
    # slow trials (many calibration batches, batch size 1) leave time to kill one mid-way
    assert main(["create", "--storage", storage, "--study-name", name, "--objective", "aeb", "--checkpoint",
                 str(checkpoint), "--population-size", "4", "--num-parents", "2", "--calib-batches", "4",
                 "--eval-batch-size", "2"]) == 0
    proc = subprocess.Popen([*CLI, "optimize", "--storage", storage, "--study-name", name, "--n-trials", "4",
                             "--no-progress"], env=ENV, start_new_session=True,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    store = open_storage(storage)
    victim = None
    deadline = time.monotonic() + 120
    while victim is None and time.monotonic() < deadline:
        time.sleep(0.05)
        study = optuna.load_study(study_name=name, storage=store)
        running = [t for t in study.get_trials(states=(TrialState.RUNNING,)) if WORKER_ATTR in t.system_attrs]
        if running:
            victim = running[0].number
            os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    assert victim is not None, "no trial was seen running"
    run("optimize", "--storage", storage, "--study-name", name, "--n-trials", "4", "--no-progress")
    study = assert_study_done(storage, name, 4)
    assert study.trials[victim].state == TrialState.FAIL
    retries = [t for t in study.trials if t.user_attrs.get("retry_of") == victim]
    assert retries and retries[0].state == TrialState.COMPLETE


@pytest.mark.slow
def test_training_killed_mid_epoch_resumes_to_all_epochs(tmp_path, tiny_toml):
    out = tmp_path / "sn.pt"
    args = [*CLI, "train-supernet", "--space", str(tiny_toml), "--epochs", "3", "--batch-size", "32", "--rule",
            "uniform", "--output", str(out), "--no-progress"]
    proc = subprocess.Popen(args, env=ENV, start_new_session=True, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    while not out.exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    time.sleep(0.3)  # into the second epoch
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    import torch

    assert torch.load(out, weights_only=True)["epoch"] < 3
    run(*args[3:], "--resume")
    state = torch.load(out, weights_only=True)
    assert state["epoch"] == 3 and [h["epoch"] for h in state["history"]] == [1, 2, 3]


@pytest.mark.slow
def test_training_killed_while_writing_its_checkpoint_leaves_no_temp_files(tmp_path, tiny_toml):
    from nas import load_checkpoint

    out = tmp_path / "sn.pt"
    args = ["train-supernet", "--space", str(tiny_toml), "--epochs", "6", "--batch-size", "32", "--rule", "uniform",
            "--output", str(out), "--resume", "--no-progress"]
    torn = 0
    for _ in range(6):
        proc = subprocess.Popen([*CLI, *args], env=ENV, start_new_session=True, stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL)
        # Kill the moment a temp file appears next to a checkpoint: the next one is being written.
        while proc.poll() is None and not (out.exists() and list(tmp_path.glob(".sn.pt.tmp*"))):
            time.sleep(0.001)
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
        torn += bool(list(tmp_path.glob(".sn.pt.tmp*")))
        assert load_checkpoint(out).epoch >= 1
        if torn:
            break
    assert torn, "no kill landed while a checkpoint was being written"
    run(*args)
    assert load_checkpoint(out).epoch == 6
    assert sorted(p.name for p in tmp_path.iterdir()) == ["sn.metrics.csv", "sn.pt"]


# Runs inside every torchrun rank: trains through the real CLI, recording the subnet of each
# training forward pass (three per step under the default rule: largest, smallest, random) and,
# after training, the rank's final parameters. Not the
# BN running statistics: DDP broadcasts rank 0's buffers before each forward, and each rank then
# updates them from its own batch, so they legitimately differ after the last step.
RANK_RECORDER = """
import json, os, sys
from pathlib import Path

import torch

from models import SpikformerSupernet
from studies.cli import main

rank = os.environ["RANK"]
subnets, nets = [], []
forward = SpikformerSupernet.forward


def recording_forward(self, x):
    if self.training:
        subnets.append(self.config.arch_id)
        nets[:] = [self]
    return forward(self, x)


SpikformerSupernet.forward = recording_forward
code = main(sys.argv[1:])
folder = Path(__file__).parent
(folder / f"subnets-{rank}.json").write_text(json.dumps(subnets))
torch.save({name: p.detach() for name, p in nets[0].named_parameters()}, folder / f"weights-{rank}.pt")
sys.exit(code)
"""


@pytest.mark.slow
def test_torchrun_data_parallel_training_on_cpu(tmp_path, tiny_toml, digits_data):
    import torch

    script = tmp_path / "train_rank.py"
    script.write_text(RANK_RECORDER)
    out = tmp_path / "ddp.pt"
    root = str(Path(__file__).resolve().parents[1])  # the script's folder, not the repo, starts sys.path
    env = {**ENV, "PYTHONPATH": os.pathsep.join(filter(None, [root, os.environ.get("PYTHONPATH")]))}
    proc = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2", str(script),
         "train-supernet", "--space", str(tiny_toml), "--epochs", "1", "--batch-size", "32",
         "--output", str(out), "--device", "cpu", "--no-progress"],
        capture_output=True, text=True, timeout=300, env=env)
    assert proc.returncode == 0, proc.stderr[-3000:]

    # each rank gets half the training images; 1221 -> 610 per rank -> 19 steps of 32
    steps = len(digits_data.train) // 2 // 32
    subnets = [json.loads((tmp_path / f"subnets-{rank}.json").read_text()) for rank in (0, 1)]
    assert len(subnets[0]) == 3 * steps and len(set(subnets[0][2::3])) > 1
    assert subnets[1] == subnets[0], "the ranks trained different subnets"
    weights = [torch.load(tmp_path / f"weights-{rank}.pt", weights_only=True) for rank in (0, 1)]
    assert weights[0].keys() == weights[1].keys()
    for name, tensor in weights[0].items():
        assert torch.equal(tensor, weights[1][name]), f"{name} differs between the ranks"
    state = torch.load(out, weights_only=True)
    assert state["epoch"] == 1 and state["history"][0]["loss"] > 0
    assert all(torch.equal(state["model"][name], tensor) for name, tensor in weights[0].items())


def _usage_fails(capsys, *argv: str) -> str:
    """Argument errors exit 2 from argparse with the usage and the reason."""
    with pytest.raises(SystemExit) as exit_info:
        main(list(argv))
    assert exit_info.value.code == 2
    return capsys.readouterr().err


def test_bad_inputs_get_one_line_errors_and_write_nothing(tmp_path, digits_checkpoint, capsys):
    checkpoint = digits_checkpoint.path
    trained = checkpoint.read_bytes()
    storage = f"sqlite:///{tmp_path}/bad.db"
    err = fails(capsys, "show", "--storage", storage, "--study-name", "nope")
    assert f"storage {storage} does not exist" in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "bad.db").exists()
    assert main(["create", "--storage", storage, "--study-name", "s", "--objective", "aeb",
                 "--checkpoint", str(checkpoint), "--population-size", "4", "--num-parents", "2"]) == 0
    capsys.readouterr()
    assert "already exists" in fails(capsys, "create", "--storage", storage, "--study-name", "s", "--objective",
                                      "aeb", "--checkpoint", str(checkpoint))
    assert "exists with objective 'aeb', not 'pareto'" in fails(
        capsys, "create", "--storage", storage, "--study-name", "s", "--objective", "pareto",
        "--checkpoint", str(checkpoint), "--skip-if-exists")
    assert "cannot open storage postgresql://postgres@127.0.0.1:1/test" in fails(
        capsys, "list", "--storage", "postgresql://postgres@127.0.0.1:1/test")
    assert "does not exist" in fails(capsys, "create", "--storage", storage, "--study-name", "m", "--objective",
                                      "aeb", "--checkpoint", str(tmp_path / "missing.pt"))
    corrupt = tmp_path / "corrupt.pt"
    corrupt.write_bytes(b"\x00garbage")
    assert "is corrupt" in fails(capsys, "create", "--storage", storage, "--study-name", "c", "--objective", "aeb",
                                  "--checkpoint", str(corrupt))
    assert "unknown data set 'mnist'" in fails(capsys, "train-supernet", "--dataset", "mnist",
                                                "--output", str(tmp_path / "never.pt"))
    assert "trained for another space" in fails(capsys, "train-supernet", "--space", "digits", "--output",
                                                 str(checkpoint), "--resume", "--epochs", "1")
    assert "num_parents=9 must be in 2..population_size (4)" in fails(
        capsys, "create", "--storage", storage, "--study-name", "r", "--objective", "aeb",
        "--checkpoint", str(checkpoint), "--population-size", "4", "--num-parents", "9")
    assert "must be a probability" in _usage_fails(capsys, "create", "--storage", storage, "--study-name",
                                             "r", "--objective", "aeb", "--checkpoint", str(checkpoint),
                                             "--crossover-fraction", "2")
    assert "--candidates" in _usage_fails(capsys, "create", "--storage", storage, "--study-name", "r", "--objective",
                                          "aeb", "--checkpoint", str(checkpoint), "--candidates", "0")
    assert "invalid choice: 'best'" in _usage_fails(capsys, "create", "--storage", storage,
                                              "--study-name", "r", "--objective", "best", "--checkpoint", "x")
    names = [s.study_name for s in optuna.get_all_study_summaries(open_storage(storage))]
    assert names == ["s"]
    assert not (tmp_path / "never.pt").exists()
    assert checkpoint.read_bytes() == trained, "the refused --resume rewrote the checkpoint"


@pytest.mark.parametrize("patch_size,threshold,message", [
    ("2", "[inf, 1.0]", "space 'bad': threshold=inf (block 0) must be a finite number > 0"),
    ("[2]", "[0.8, 1.0]", "space 'bad': patch_size=[2] must be one whole number"),
])
def test_a_bad_space_file_is_a_one_line_error(tmp_path, capsys, patch_size, threshold, message):
    genes = {**TINY_SPACE["genes"], "threshold": threshold}
    space = tmp_path / "bad.toml"
    space.write_text(f"patch_size = {patch_size}\n[genes]\n" + "\n".join(f"{k} = {v}" for k, v in genes.items()))
    err = fails(capsys, "train-supernet", "--space", str(space), "--epochs", "1", "--output", str(tmp_path / "x.pt"))
    assert message in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "x.pt").exists()


def test_a_checkpoint_holding_only_its_format_is_a_one_line_error(tmp_path, capsys):
    import torch

    checkpoint = tmp_path / "only-format.pt"
    torch.save({"format": 1}, checkpoint)
    err = fails(capsys, "create", "--storage", f"sqlite:///{tmp_path}/s.db", "--study-name", "s", "--objective",
                 "aeb", "--checkpoint", str(checkpoint))
    assert f"supernet checkpoint {checkpoint} lacks the keys ['epoch', 'model'," in err
    assert len(err.strip().splitlines()) == 1


def test_console_script_exits_non_zero_on_error(tmp_path):
    script = Path(sys.executable).with_name("autospk-study")  # the venv's, whether or not it is on PATH
    proc = subprocess.run([str(script), "show", "--storage", f"sqlite:///{tmp_path}/x.db", "--study-name", "x"],
                          capture_output=True, text=True, env=ENV)
    assert proc.returncode == 2
    assert proc.stderr.startswith(f"autospk-study: error: storage sqlite:///{tmp_path}/x.db does not exist")


def test_every_subcommand_has_help():
    for command in ("train-supernet", "create", "optimize", "list", "show", "plot", "export", "delete", "quickstart"):
        with pytest.raises(SystemExit) as exit_info:
            main([command, "--help"])
        assert exit_info.value.code == 0
