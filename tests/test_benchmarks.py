"""The benchmark scripts run end to end on tiny settings and print the tables they promise.

Their figures are measured by running them (see each script's docstring); these tests only
keep them runnable as the library changes under them.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def _run(args: list[str], tmp_path: Path) -> str:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
    result = subprocess.run([sys.executable, *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    return result.stdout


def _table_rows(text: str, first_cell: str) -> list[list[str]]:
    rows = [[c.strip() for c in line.strip().strip("|").split("|")] for line in text.splitlines()
            if line.startswith("|")]
    return [r for r in rows if r[0] == first_cell]


@pytest.mark.slow
def test_bench_overhead_prints_ms_per_trial_per_storage_and_sampler(tmp_path):
    out = _run(["benchmarks/bench_overhead.py", "--storages", "memory", "sqlite", "--n-trials", "40", "--window", "20",
                "--samplers", "ours-4", "nsga2", "--folder", str(tmp_path)], tmp_path)
    rows = _table_rows(out, "memory") + _table_rows(out, "sqlite")
    assert [(r[0], r[1]) for r in rows] == [("memory", "ours-4"), ("memory", "nsga2"),
                                            ("sqlite", "ours-4"), ("sqlite", "nsga2")]
    for row in rows:
        first, last, ratio = (float(v) for v in row[2:5])
        # The table rounds the ms to 0.1 and the ratio of the unrounded ones to 0.01.
        assert first > 0 and last > 0
        assert (last - 0.05) / (first + 0.05) - 0.005 <= ratio <= (last + 0.05) / (first - 0.05) + 0.005


@pytest.mark.slow
def test_bench_search_prints_hypervolume_per_sampler(tmp_path, digits_checkpoint):
    out = _run(["benchmarks/bench_search.py", "--checkpoint", str(digits_checkpoint.path), "--cache",
                str(tmp_path / "cache.json"), "--seeds", "0", "--budgets", "12", "24", "--population-size", "6"],
               tmp_path)
    names = ["autospk NSGA-II", "autospk NSGA-II, no screening", "optuna NSGAIISampler", "optuna TPESampler",
             "optuna RandomSampler"]
    for name in names:
        row = _table_rows(out, name)[0]  # the hypervolume table comes first
        hv12, hv24 = (float(cell.split("±")[0]) for cell in row[1:3])
        assert 0 <= hv12 <= hv24 <= 1  # the hypervolume of more trials is never smaller
    assert re.search(r"evaluations to reach Random's mean HV@24", out)
    assert (tmp_path / "cache.json").exists()


@pytest.mark.slow
def test_bench_train_prints_throughput_against_spikingjelly_and_memory(tmp_path):
    out = _run(["benchmarks/bench_train.py", "--device", "cpu", "--batch", "2", "--repeats", "1",
                "--precisions", "fp32", "bf16"], tmp_path)
    models = ("ours, largest", "spikingjelly, paper order", "spikingjelly", "ours, half-MAC")
    rows = [r for m in models for r in _table_rows(out, m)]
    assert sorted((r[0], r[1]) for r in rows) == sorted((m, p) for m in models for p in ("fp32", "bf16"))
    for row in rows:
        assert float(row[2]) > 0 and float(row[3]) > 0  # train and eval images/s
        # ours is timed against both spikingjelly models; they leave their ratio cells empty
        assert (float(row[4]) > 0 and float(row[5]) > 0) if row[0] == "ours, largest" else row[4:6] == ["", ""]
        assert int(row[6].replace(",", "")) >= 0  # minor page faults per step
    assert "MALLOC_" not in out  # timed with the allocator a user's run has
    memory = _table_rows(out, "fp32")[-1]
    before, peak, per_image = (float(v) for v in memory[1:4])
    # The table rounds MB to whole numbers and MB per image to 0.1.
    assert peak > before > 0 and per_image == pytest.approx((peak - before) / 2, abs=0.6)


@pytest.mark.slow
def test_bench_events_prints_shape_grid_size_and_step_time_per_event_data_set(tmp_path):
    out = _run(["benchmarks/bench_events.py", "--device", "cpu", "--batch", "2", "--repeats", "1",
                "--datasets", "n-mnist", "dvs128-gesture"], tmp_path)
    nmnist, gesture = _table_rows(out, "n-mnist")[0], _table_rows(out, "dvs128-gesture")[0]
    assert nmnist[2:5] == ["2 x 32 x 32", "6", "8 x 8"] and gesture[2:5] == ["2 x 128 x 128", "16", "8 x 8"]
    assert int(gesture[6].replace(",", "")) > 0 and float(gesture[7]) > 0


def _bench_train():
    sys.path.insert(0, str(ROOT / "benchmarks"))
    try:
        import bench_train
    finally:
        sys.path.remove(str(ROOT / "benchmarks"))
    return bench_train


def test_bench_train_times_each_step_right_after_an_untimed_one_of_the_same_run():
    keys = [("ours", "fp32"), ("theirs", "fp32"), ("ours", "bf16")]
    order = _bench_train().schedule(keys, repeats=3)
    timed = [i for i, (_, is_timed) in enumerate(order) if is_timed]
    assert [order[i][0] for i in timed] == keys * 3  # round-robin, every run timed once per round
    assert all(i > 0 and order[i - 1] == (order[i][0], False) for i in timed)
    assert len(order) == 2 * len(timed)


def test_bench_train_paper_order_reference_fires_before_it_pools():
    """The paper-order spikingjelly model runs each pooled stem stage as conv, BN, LIF, then max-pool."""
    import torch
    from spikingjelly.activation_based import functional

    from models import SupernetConfig

    bench_train = _bench_train()
    cfg = SupernetConfig(in_channels=3, img_size=16, patch_size=4, num_classes=10, max_depth=1, max_embed_dim=32,
                         max_num_heads=4, time_steps=2)
    torch.manual_seed(0)
    model = bench_train.spikingjelly_spikformer(cfg, paper_order=True, time_steps=2).eval()
    # No stage pools inside its conv-BN block any more (the built-in pools the last two there).
    assert all(isinstance(stage.conv_bn.block[-1], torch.nn.BatchNorm2d) for stage in model.patch_embed.stages)
    stage = model.patch_embed.stages[-1]
    x = (torch.rand(2, 3, cfg.max_embed_dim // 2, 8, 8) < 0.5).float()  # [T, B, C, H, W] spikes
    with torch.no_grad():
        conv, bn = stage.conv_bn.block
        torch.nn.init.normal_(conv.weight, std=0.5)  # at init the neurons would barely fire
        functional.reset_net(stage)
        spikes = stage.neuron[0](bn(conv(x.flatten(0, 1))).view(2, 3, -1, 8, 8))
        assert 0 < spikes.mean() < 1
        expected = torch.nn.functional.max_pool2d(spikes.flatten(0, 1), 3, 2, 1).view(2, 3, -1, 4, 4)
        functional.reset_net(stage)
        assert torch.equal(stage(x), expected)


@pytest.mark.slow
def test_bench_finetune_prints_inherited_and_fine_tuned_accuracy_of_baseline_knee_and_best(tmp_path,
                                                                                          digits_checkpoint):
    out = _run(["benchmarks/bench_finetune.py", "--checkpoint", str(digits_checkpoint.path), "--workdir",
                str(tmp_path), "--trials", "6", "--population-size", "4", "--epochs", "1"], tmp_path)
    rows = {name: _table_rows(out, name) for name in ("baseline (largest)", "knee", "best F_AEB")}
    assert all(len(found) == 1 for found in rows.values()), out
    baseline = rows["baseline (largest)"][0]
    assert baseline[1:3] == ["bench-pareto", "0"] and float(baseline[10]) == 1.0  # the largest subnet, its own energy
    assert rows["knee"][0][1] == "bench-pareto" and rows["best F_AEB"][0][1] == "bench-aeb"
    for (row,) in rows.values():
        before, after = (float(cell.rstrip("%")) for cell in row[5:7])
        assert 0 < before <= 100 and 0 < after <= 100
        assert float(row[7]) == pytest.approx(after - before, abs=0.011)
        assert float(row[8]) > 0 and float(row[9]) > 0
        assert (tmp_path / "exports" / f"{row[1]}-{row[2]}" / "finetuned" / "subnet.pt").exists()


@pytest.mark.slow
def test_bench_kernels_counts_operators_and_meets_the_cpu_gate(tmp_path):
    out = _run(["benchmarks/bench_kernels.py", "--precisions", "fp32", "bf16"], tmp_path)
    counts = {}
    for key in "abc":
        for row in _table_rows(out, key):
            cells = [re.fullmatch(r"(\d+) \((\d+)\)", cell) for cell in row[2:5]]
            assert all(cells), row
            kernels, ops = zip(*((int(m[1]), int(m[2])) for m in cells))
            assert all(0 < k <= o for k, o in zip(kernels, ops))  # views add dispatches, not kernels
            counts[(key, row[1])] = kernels
    assert set(counts) == {(k, p) for k in "abc" for p in ("fp32", "bf16")}
    for precision in ("fp32", "bf16"):
        train_a, train_b = counts[("a", precision)][0], counts[("b", precision)][0]
        assert train_a <= 1.1 * train_b, (precision, train_a, train_b)
        for key in "ac":  # our monitor: a few batched reductions per forward
            _, plain, monitored = counts[(key, precision)]
            assert plain < monitored <= 1.15 * plain
    # bf16 runs our neurons fused as in fp32: the step dispatches about as many operators
    assert counts[("a", "bf16")][0] <= 1.2 * counts[("a", "fp32")][0]
    assert re.search(r"fp32: training step a/b = [\d.]+ \(target <= 1.1\), c/a = [\d.]+", out)


@pytest.mark.slow
def test_bench_gpu_smoke_run_writes_every_section(tmp_path):
    out = _run(["benchmarks/bench_gpu.py", "--smoke", "--out", str(tmp_path)], tmp_path)
    saved = (tmp_path / "bench_gpu.md").read_text()
    titles = ["Device", "Training step", "GPU kernel time against wall time", "Evaluation",
              "Peak memory of a training step", "Search throughput", "torch.compile of a fine-tuning step",
              "Test suite"]
    assert re.findall(r"^## (.+)$", saved, flags=re.M) == titles
    assert all(section.strip() in out for section in saved.split("## ")[1:])  # printed as it was saved
    training = [r for r in _table_rows(saved, "2") if r[1] in ("fp32", "bf16")]
    assert [r[1] for r in training] == ["fp32", "bf16"] and all(float(v) > 0 for r in training for v in r[2:7])
    trials, images, precision, seconds, per_hour = _table_rows(saved, "2")[-1]
    assert (images, precision) == ("64", "fp32") and float(seconds) > 0 and int(per_hour.replace(",", "")) > 0
    assert "TF32 off for both matmul and cuDNN" in saved and "neurons: spikingjelly fused LIF operator" in saved
    eager, compiled = _table_rows(saved, "eager")[0], _table_rows(saved, "compiled")[0]
    assert float(eager[2]) > 0 and float(compiled[2]) > 0 and eager[3] == "1.00x"


@pytest.mark.slow
def test_bench_energy_models_prints_correlations_fronts_best_subnets_and_cost(tmp_path, digits_checkpoint):
    out = _run(["benchmarks/bench_energy_models.py", "--checkpoint", str(digits_checkpoint.path), "--subnets", "12",
                "--energy-images", "4", "--timed", "2", "--repeats", "1"], tmp_path)
    models = ["ops", "lemaire", "loihi", "spinnaker2"]
    correlations = [_table_rows(out, model)[0] for model in models]  # the correlation table comes first
    for i, row in enumerate(correlations):
        values = [float(v) for v in row[1:]]
        assert values[i] == 1.0 and all(-1 <= v <= 1 for v in values)
        assert values == [float(other[1 + i]) for other in correlations]  # symmetric
    fronts = {row[0]: row for row in (_table_rows(out, m)[1] for m in models)}
    assert fronts["ops"][2] == f"{fronts['ops'][1]} of {fronts['ops'][1]}"
    for model in models:
        assert int(fronts[model][1]) >= 1
    for model in models:
        best = _table_rows(out, model)[2]
        assert 0 <= float(best[2]) <= 100 and best[3].endswith("uJ")
    cost = {row[0]: row for row in (_table_rows(out, name)[0] for name in (
        "before energy models (ops report only)", "every per-trial model (ops, loihi, spinnaker2)",
        "every model, lemaire included"))}
    assert cost["before energy models (ops report only)"][2] == "1.00x"
    assert all(float(row[1]) > 0 for row in cost.values())
