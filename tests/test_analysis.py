"""Study analysis: tables, Pareto front, hypervolume, report, export, dashboard and notebook."""

from __future__ import annotations

import base64
import dataclasses
import io
import json
import math
import os
import re
import wsgiref.util
from pathlib import Path

import nbformat
import numpy as np
import optuna
import pandas as pd
import pytest
import torch
from optuna.trial import TrialState

from energy import ann_energy
from models import count_params, load_exported
from nas import SamplerSettings, SearchSpace
from nas.fitness import AEBSettings, energy_for_accuracy, f_aeb
from studies import analysis, formatting, hypervolume, layer_artifacts, plots, report
from studies.builders import load_evaluator
from studies.cli import main
from studies.errors import StudyError
from studies.export import export_trial
from studies.results import measure_trial, select_trial, trials_frame
from studies.results import trial_layers as studies_trial_layers
from studies.settings import StudySettings
from studies.study import create, load
from studies.workers import run_worker
from tests.conftest import TINY_SPACE

optuna.logging.set_verbosity(optuna.logging.WARNING)
ROOT = Path(__file__).resolve().parents[1]
NOTEBOOK = ROOT / "notebooks" / "pareto.ipynb"
N_TRIALS = 8


# ----------------------------------------------------------------------------- hand-made frames


def frame_of(points: list[tuple[float, float]], *, feasible: list[bool] | None = None,
             f_aeb: list[float] | None = None) -> pd.DataFrame:
    """A trials frame of (accuracy, energy_mj) points, numbered in order."""
    return pd.DataFrame({
        "number": range(len(points)),
        "accuracy": [p[0] for p in points],
        "energy_mj": [p[1] for p in points],
        "f_aeb": f_aeb if f_aeb is not None else [a for a, _ in points],
        "feasible": feasible if feasible is not None else [True] * len(points),
    })


def test_pareto_front_keeps_feasible_non_dominated_points_sorted_by_energy():
    frame = frame_of(
        [(0.5, 1.0), (0.8, 2.0), (0.7, 3.0), (0.9, 4.0), (0.95, 0.5), (0.8, 2.0), (0.9, 6.0)],
        feasible=[True, True, True, True, False, True, True],
    )
    front = analysis.pareto_front(frame)
    # 2 is beaten by 1, 4 is over budget, 5 repeats 1 (a duplicate), 6 is beaten by 3.
    assert list(front["number"]) == [0, 1, 3]
    assert list(front["energy_mj"]) == sorted(front["energy_mj"])
    # Without budgets, 4 beats every other point.
    assert list(analysis.pareto_front(frame.drop(columns="feasible"))["number"]) == [4]
    assert analysis.pareto_front(frame.iloc[:0]).empty


def test_knee_is_the_point_bulging_furthest_towards_the_ideal():
    convex = frame_of([(0.5, 1.0), (0.8, 2.0), (0.85, 3.0), (0.9, 4.0)])
    assert analysis.knee(convex)["number"] == 1
    # On a concave front every inner point is a poor trade-off: the tie between the
    # extremes goes to the more accurate one (an unsigned distance would pick point 2).
    concave = frame_of([(0.5, 1.0), (0.55, 2.0), (0.6, 3.0), (0.9, 4.0)])
    assert analysis.knee(concave)["number"] == 3
    assert analysis.knee(frame_of([(0.7, 2.0)]))["number"] == 0
    with pytest.raises(ValueError, match="front is empty"):
        analysis.knee(convex.iloc[:0])


def test_best_aeb_ignores_infeasible_trials():
    frame = frame_of([(0.5, 1.0), (0.8, 2.0), (0.9, 3.0)], feasible=[True, True, False], f_aeb=[0.6, 0.7, 0.9])
    assert analysis.best_aeb(frame)["number"] == 1
    with pytest.raises(ValueError, match="no feasible complete trial"):
        analysis.best_aeb(frame.assign(feasible=False))


def test_hypervolume_history_known_areas():
    frame = frame_of([(0.5, 2.0), (0.8, 4.0), (0.4, 5.0), (0.99, 1.0)], feasible=[True, True, True, False])
    history = hypervolume.hypervolume_history(frame, ref_point=(1.0, 10.0))
    # (1 - 0.5) x (10 - 2) = 4; adding (0.2, 4) adds (1 - 0.2) x (10 - 4) - 0.5 x 6 = 1.8;
    # the dominated third point and the infeasible fourth add nothing.
    assert history["hypervolume"].tolist() == pytest.approx([4.0, 5.8, 5.8, 5.8])
    assert history["n_trials"].tolist() == [1, 2, 3, 4]
    assert history.attrs["ref_point"] == (1.0, 10.0)
    assert hypervolume.hypervolume_history(frame).attrs["ref_point"] == pytest.approx((1.0, 5.5))
    with pytest.raises(ValueError, match="two numbers"):
        hypervolume.hypervolume_history(frame, ref_point=(1.0,))


def test_hypervolume_history_never_decreases():
    rng = np.random.default_rng(0)
    frame = frame_of([(a, e) for a, e in zip(rng.uniform(0, 1, 60), rng.uniform(0.1, 5, 60))],
                     feasible=list(rng.uniform(size=60) > 0.2))
    volumes = hypervolume.hypervolume_history(frame)["hypervolume"].to_numpy()
    assert volumes[-1] > 0
    assert (np.diff(volumes) >= 0).all()


def frame3_of(points: list[tuple[float, float, int]], *, feasible: list[bool] | None = None) -> pd.DataFrame:
    """A trials frame of (accuracy, energy_mj, params) points, numbered in order."""
    frame = frame_of([(a, e) for a, e, _ in points], feasible=feasible)
    return frame.assign(params=[p for _, _, p in points])


def test_pareto_front_in_three_objectives():
    frame = frame3_of(
        [(0.9, 2.0, 100), (0.8, 1.0, 200), (0.75, 3.0, 50), (0.8, 2.5, 250), (0.7, 1.5, 300), (0.95, 0.5, 10),
         (0.9, 2.0, 100), (0.8, 1.0, 300)],
        feasible=[True, True, True, True, True, False, True, True],
    )
    # 2 is beaten on accuracy and energy but has the fewest parameters; 3 is beaten by 0, 4
    # and 7 by 1; 5 is over budget; 6 repeats 0.
    front = analysis.pareto_front(frame, objective="pareto3")
    assert list(front["number"]) == [1, 0, 2]
    assert list(analysis.pareto_front(frame)["number"]) == [1, 0]
    assert list(analysis.shown_trials(frame, "pareto3", top=1)["number"]) == [1, 0, 2]
    assert list(analysis.shown_trials(frame, "pareto", top=1)["number"]) == [1, 0]
    assert analysis.front_columns("pareto3") == ["accuracy", "energy_mj", "params"]
    assert analysis.front_columns("aeb") == analysis.front_columns("pareto") == ["accuracy", "energy_mj"]
    with pytest.raises(ValueError, match=r"unknown objective 'pareto4'; choose from \['aeb', 'pareto', 'pareto3'\]"):
        analysis.pareto_front(frame, objective="pareto4")


def test_knee_in_three_objectives_is_nearest_the_utopia_point():
    # Three extremes (best accuracy, least energy, fewest parameters), a balanced point D and a
    # point E that is good on accuracy and energy but has as many parameters as the largest.
    front = frame3_of([(0.9, 4.0, 400), (0.5, 1.0, 400), (0.5, 4.0, 100), (0.8, 2.0, 200), (0.85, 1.5, 400)])
    # Scaled sums: 1, 1, 1, 0.75 + 2/3 + 2/3, 0.875 + 5/6 + 0: D is nearest (1, 1, 1) in L1.
    assert analysis.knee(front, objective="pareto3")["number"] == 3
    # In the accuracy-energy plane E bulges further: 0.75 + 2/3 < 0.875 + 5/6.
    assert analysis.knee(front)["number"] == 4
    # Equal sums go to the more accurate point.
    assert analysis.knee(front.iloc[:3], objective="pareto3")["number"] == 0
    # An objective without spread counts for nothing: the 2-D knee again.
    assert analysis.knee(front.assign(params=7), objective="pareto3")["number"] == 4


def test_hypervolume_history_in_three_objectives():
    frame = frame3_of([(0.5, 2.0, 100), (0.8, 4.0, 500), (0.4, 5.0, 600), (0.99, 1.0, 10)],
                      feasible=[True, True, True, False])
    history = hypervolume.hypervolume_history(frame, ref_point=(1.0, 10.0, 1000.0), objective="pareto3")
    # (1 - 0.5) x (10 - 2) x (1000 - 100) = 3600; (0.2, 4, 500) adds 0.8 x 6 x 500 less the
    # overlap 0.5 x 6 x 500: 900; the dominated third point and the infeasible fourth add nothing.
    assert history["hypervolume"].tolist() == pytest.approx([3600.0, 4500.0, 4500.0, 4500.0])
    assert history.attrs["columns"] == ("accuracy", "energy_mj", "params")
    default = hypervolume.hypervolume_history(frame, objective="pareto3")
    assert default.attrs["ref_point"] == pytest.approx((1.0, 5.5, 660.0))
    assert (np.diff(default["hypervolume"]) >= 0).all() and default["hypervolume"].iloc[-1] > 0
    with pytest.raises(ValueError, match=r"must be three numbers: \(error, energy_mj, params\)"):
        hypervolume.hypervolume_history(frame, ref_point=(1.0, 10.0), objective="pareto3")


def test_energy_unit_reads_the_highest_value_between_1_and_1000():
    assert formatting.energy_unit([1.364e-4, 1.2e-6]) == ("nJ", 1e6)
    assert formatting.energy_unit(pd.Series([0.5, 0.002])) == ("µJ", 1e3)
    assert formatting.energy_unit([7.734, 21.477]) == ("mJ", 1.0)
    assert formatting.energy_unit([3e-10]) == ("pJ", 1e9)
    assert formatting.energy_unit([math.nan, 0.0]) == ("mJ", 1.0)
    assert formatting.format_energy(1.364e-4) == "136.4 nJ"
    assert formatting.format_energy(2e-6, ("nJ", 1e6)) == "2 nJ"


def baseline_frame() -> pd.DataFrame:
    """Trial 0 is the baseline; trial 2 is off the front (beaten by trial 1)."""
    frame = frame_of([(0.96, 4e-4), (0.95, 1e-4), (0.90, 2e-4), (0.91, 1e-5)])
    return frame.assign(baseline=[True, False, False, False], ann_energy_mj=[4e-3, 1e-3, 2e-3, 5e-4],
                        params=[400, 100, 200, 50], sops=[1e3, 5e2, 6e2, 1e2], depth=1, embed_dim=8, time_steps=2,
                        num_heads_0=1, mlp_ratio_0=1.0, tau_0=2.0, threshold_0=1.0)


def test_compare_to_baseline_states_each_trial_against_the_baseline_and_the_ann():
    compared = analysis.compare_to_baseline(baseline_frame())
    assert analysis.baseline(compared)["number"] == 0
    assert compared["accuracy_vs_baseline"].tolist() == pytest.approx([0.0, -0.01, -0.06, -0.05])
    assert compared["energy_vs_baseline"].tolist() == pytest.approx([1.0, 0.25, 0.5, 0.025])
    assert compared["energy_vs_ann"].tolist() == pytest.approx([0.1, 0.1, 0.1, 0.02])
    without = analysis.compare_to_baseline(baseline_frame().assign(baseline=False))
    assert analysis.baseline(without) is None
    assert without["accuracy_vs_baseline"].isna().all() and without["energy_vs_baseline"].isna().all()
    assert without["energy_vs_ann"].tolist() == pytest.approx([0.1, 0.1, 0.1, 0.02])


def test_front_table_marks_the_baseline_and_prints_energy_in_one_unit():
    compared = analysis.compare_to_baseline(baseline_frame())
    front = analysis.pareto_front(compared)
    assert list(front["number"]) == [3, 1, 0]
    table = formatting.front_table(analysis.with_baseline_row(front.iloc[:2], compared), baseline_columns=True)
    assert list(table.columns[:8]) == ["trial", "note", "accuracy %", "energy nJ", "acc - baseline pp",
                                       "E / E_baseline", "E / E_ANN", "F_AEB"]
    assert table["trial"].tolist() == [3, 1, 0] and table["note"].tolist() == ["", "", "baseline"]
    assert table["energy nJ"].tolist() == pytest.approx([10.0, 100.0, 400.0])
    assert table["acc - baseline pp"].tolist() == pytest.approx([-5.0, -1.0, 0.0])
    formats = formatting.display_formats(table)
    assert formats["acc - baseline pp"](-5.0) == "-5.00" and formats["energy nJ"](math.nan) == "-"
    # The baseline is in the rows already: not added twice.
    assert len(analysis.with_baseline_row(front, compared)) == 3
    plain = formatting.front_table(front, unit=("µJ", 1e3))
    assert "acc - baseline pp" not in plain and plain["energy µJ"].tolist() == pytest.approx([0.01, 0.1, 0.4])
    with pytest.raises(ValueError, match="apply compare_to_baseline to the whole trials frame first"):
        formatting.front_table(baseline_frame(), baseline_columns=True)


def test_f_aeb_exchange_rate_keeps_f_aeb_unchanged():
    settings = AEBSettings(e_ref=1e-4)
    for change in (0.01, -0.01, 0.2):
        x = energy_for_accuracy(-0.07, change)
        assert f_aeb(0.9 * (1 + change), 5e-5 * (1 + x), settings) == pytest.approx(f_aeb(0.9, 5e-5, settings))
    text = formatting.exchange_rate_text(settings)
    assert ("At w = -0.07, 1% more accuracy (relative) is worth 15.3% more energy, and 1% less accuracy is made up "
            "by 13.4% less energy; a tenth of the energy is worth as much as 17.5% more accuracy.") in text
    assert "create the study with --e-ref E_t" in text and "MnasNet's hard target is alpha = 0, beta = -1" in text
    hard = formatting.exchange_rate_text(AEBSettings(e_ref=1e-4, alpha=0.0, beta=-1.0))
    assert ("Below E_ref (w = alpha = 0) energy is not weighed at all; above it (w = beta = -1) 1% more accuracy "
            "(relative) is worth 1.0% more energy") in hard
    with pytest.raises(ValueError, match="only with a negative exponent"):
        energy_for_accuracy(0.0, 0.01)


def test_study_reference_point_is_the_benchmarks_and_the_volume_a_share_of_its_box():
    assert hypervolume.study_ref_point(2e-4) == (0.2, 2e-4)
    assert hypervolume.study_ref_point(2e-4, baseline_accuracy=0.96) == (0.2, 2e-4)
    # A baseline under 80% accurate would leave the box empty: the whole error range then.
    assert hypervolume.study_ref_point(2e-4, baseline_accuracy=0.7) == (1.0, 2e-4)
    assert hypervolume.study_ref_point(2e-4, params_ref=400, objective="pareto3") == (0.2, 2e-4, 400.0)
    with pytest.raises(ValueError, match="needs params_ref"):
        hypervolume.study_ref_point(2e-4, objective="pareto3")
    frame = frame_of([(0.9, 1.0), (0.7, 0.5), (0.95, 3.0)])
    history = hypervolume.hypervolume_history(frame, (0.2, 2.0), normalise=True)
    # (0.2 - 0.1) x (2 - 1) over the box 0.2 x 2; the 70% trial is outside the box, the third costs too much.
    assert history["hypervolume"].tolist() == pytest.approx([0.25, 0.25, 0.25])
    assert history.attrs["normalised"] is True


# ----------------------------------------------------------------------------- in-memory studies


@pytest.fixture
def space() -> SearchSpace:
    return SearchSpace.from_dict(TINY_SPACE)


def memory_study(space: SearchSpace) -> tuple[optuna.Study, StudySettings]:
    stored = json.loads((Path(__file__).parent / "data" / "settings_v1.json").read_text())
    settings = dataclasses.replace(StudySettings.from_dict(stored), space=space)
    return optuna.create_study(directions=["maximize", "minimize"], study_name="mem"), settings


def test_trials_frame_marks_dormant_genes_and_infeasible_trials(space):
    study, settings = memory_study(space)
    shallow = space.params_from_config(space.smallest())
    deep = space.params_from_config(space.largest())
    for params, energy, over in ((shallow, 1.0, -1.0), (deep, 3.0, 2.0)):
        study.add_trial(optuna.trial.create_trial(
            values=[0.5, energy], params=params, distributions=space.distributions(),
            user_attrs={"accuracy": 0.5, "energy_mj": energy, "f_aeb": 0.5, "arch_id": "x"},
            constraints={"energy_mj": over}))
    study.tell(study.ask(), state=TrialState.FAIL)
    frame = trials_frame(study, settings)
    ann = ann_energy(settings.supernet_cfg, profile=settings.evaluation.profile)
    assert frame.equals(analysis.compare_to_baseline(
        analysis.trials_frame(study.get_trials(states=(TrialState.COMPLETE,)), space, ann_energy=ann)))
    assert list(frame.columns) == [*analysis.frame_columns(space), *analysis.BASELINE_COLUMNS]
    assert frame["ann_energy_mj"].tolist() == [ann(space.smallest()), ann(space.largest())]
    assert not frame["baseline"].any(), "no trial recorded the largest subnet's arch_id"
    assert frame["feasible"].tolist() == [True, False]
    assert frame.loc[0, "depth"] == 1 and math.isnan(frame.loc[0, "num_heads_1"])
    assert frame.loc[1, "num_heads_1"] == max(TINY_SPACE["genes"]["num_heads"])
    assert frame["duplicate_of"].isna().all() and math.isnan(frame.loc[0, "sops"])
    assert list(analysis.pareto_front(frame)["number"]) == [0]


def test_empty_and_unknown_trials_are_clear_errors(space, tmp_path):
    study, settings = memory_study(space)
    assert trials_frame(study, settings).empty
    assert list(trials_frame(study, settings).columns) == [*analysis.frame_columns(space),
                                                           *analysis.BASELINE_COLUMNS]
    with pytest.raises(StudyError, match="no complete trials yet"):
        export_trial(study, settings, tmp_path, trial="best")
    study.tell(study.ask(), state=TrialState.FAIL)
    study.ask()
    with pytest.raises(StudyError, match=r"trial 0 of study 'mem' is FAIL, not COMPLETE"):
        export_trial(study, settings, tmp_path, trial=0)
    with pytest.raises(StudyError, match=r"trial 1 of study 'mem' is RUNNING"):
        select_trial(study, settings, 1)
    with pytest.raises(StudyError, match=r"has no trial 7; its trials are numbered 0..1"):
        export_trial(study, settings, tmp_path, trial=7)
    with pytest.raises(ValueError, match="choose 'best', 'knee' or a trial number"):
        export_trial(study, settings, tmp_path, trial="worst")
    assert not list(tmp_path.iterdir())
    storage = f"sqlite:///{tmp_path}/plain.db"
    optuna.create_study(storage=storage, study_name="plain").add_trial(optuna.trial.create_trial(value=0.0))
    with pytest.raises(StudyError, match="study 'plain' was not created by autospk-study create"):
        load(storage, "plain")


# ----------------------------------------------------------------------------- a real small study


@pytest.fixture(scope="module")
def real_study(tmp_path_factory, digits_checkpoint):
    storage = f"sqlite:///{tmp_path_factory.mktemp('analysis')}/s.db"
    create(storage, "p", objective="pareto", checkpoint=digits_checkpoint.path,
           sampler=SamplerSettings(population_size=4, num_parents=2))
    run_worker(storage, "p", n_trials=N_TRIALS, device="cpu")
    study, settings = load(storage, "p")
    return storage, study, settings


def test_trials_frame_of_a_real_study(real_study):
    _, study, settings = real_study
    space = settings.space
    frame = trials_frame(study, settings)
    # Every complete trial records its energy under the models priced from its evaluation pass.
    energies = [f"energy_mj_{model}" for model in ("ops", "loihi", "spinnaker2")]
    assert list(frame.columns) == [*analysis.frame_columns(space), *energies, *analysis.BASELINE_COLUMNS]
    assert analysis.recorded_energy_models(frame) == ["ops", "loihi", "spinnaker2"]
    complete = study.get_trials(states=(TrialState.COMPLETE,))
    assert len(frame) == len(complete) == N_TRIALS
    for trial, (_, row) in zip(complete, frame.iterrows()):
        config = space.config_from_params(trial.params)
        assert row["number"] == trial.number and row["arch_id"] == config.arch_id
        assert row["accuracy"] == trial.user_attrs["accuracy"] and 0 <= row["accuracy"] <= 1
        assert row["energy_mj"] == trial.user_attrs["energy_mj"] == row["energy_mj_ops"] > 0
        assert trial.user_attrs["energy_model"] == "ops"
        # A chip charges every neuron at every step: far above the 45 nm operation count.
        assert row["energy_mj_loihi"] > row["energy_mj_ops"] and row["energy_mj_spinnaker2"] > row["energy_mj_loihi"]
        for block in range(space.max_depth):
            assert math.isnan(row[f"tau_{block}"]) == (block >= config.depth)
        assert formatting.block_values(row, "tau") == list(config.tau[: config.depth])
    assert frame["feasible"].all()
    unit, factor = formatting.energy_unit(frame["energy_mj"])
    table = formatting.front_table(analysis.pareto_front(frame), baseline_columns=True)
    assert {"accuracy %", f"energy {unit}", "E / E_ANN", "num_heads", "threshold"} <= set(table.columns)
    assert (table["accuracy %"] > 1).all() and 1 <= table[f"energy {unit}"].max() < 1000

    # The largest subnet, enqueued by create, is the baseline; every trial is stated against it and the ANN.
    assert study.trials[0].user_attrs["baseline"] is True
    assert frame.loc[frame["baseline"], "number"].tolist() == [0]
    base = frame.iloc[0]
    assert base["arch_id"] == space.largest().arch_id and base["accuracy_vs_baseline"] == 0
    ann = ann_energy(settings.supernet_cfg, profile=settings.evaluation.profile)
    for trial, (_, row) in zip(complete, frame.iterrows()):
        config = space.config_from_params(trial.params)
        assert row["ann_energy_mj"] == ann(config)
        assert row["energy_vs_ann"] == row["energy_mj"] / ann(config)
        assert row["energy_vs_baseline"] == row["energy_mj"] / base["energy_mj"]
        assert row["accuracy_vs_baseline"] == row["accuracy"] - base["accuracy"]


def test_show_marks_the_baseline_and_states_every_front_trial_against_it(real_study, capsys):
    storage, study, settings = real_study
    frame = trials_frame(study, settings)
    front = analysis.pareto_front(frame)
    base = frame.iloc[0]
    unit = formatting.energy_unit(frame["energy_mj"])
    capsys.readouterr()
    assert main(["show", "--storage", storage, "--study-name", "p", "--baseline"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == (f"p: Pareto front (digits, E_ref {formatting.format_energy(settings.aeb.e_ref, unit)}; "
                        "energy model ops (45 nm operation prices, fp32 profile), first layer once)")
    assert lines[1] == (f"baseline: trial 0, the largest subnet: {100 * base['accuracy']:.2f} %, "
                        f"{formatting.format_energy(base['energy_mj'], unit)}; as an ANN (E_MAC x dense MACs) "
                        f"{formatting.format_energy(base['ann_energy_mj'], unit)}, {base['energy_vs_ann']:.3g} x its "
                        "energy")
    header = lines[2].split()
    assert header[:10] == ["trial", "note", "accuracy", "%", "energy", unit[0], "acc", "-", "baseline", "pp"]
    assert header[10:16] == ["E", "/", "E_baseline", "E", "/", "E_ANN"]
    rows = {int(line.split()[0]): line.split() for line in lines[3:3 + len(analysis.with_baseline_row(front, frame))]}
    assert set(rows) == set(front["number"]) | {0} and rows[0][1].startswith("baseline")
    # The notes mark the baseline, the knee (export --trial knee) and the best F_AEB (--trial best).
    knee = int(analysis.knee(front)["number"])
    best_number = int(analysis.best_aeb(frame)["number"])
    notes = {number: "+".join(mark for mark, on in (("baseline", number == 0), ("knee", number == knee),
                                                    ("best", number == best_number)) if on) for number in rows}
    for _, row in analysis.with_baseline_row(front, frame).iterrows():
        number = int(row["number"])
        cells = rows[number][2:] if notes[number] else rows[number][1:]
        if notes[number]:
            assert rows[number][1] == notes[number]
        assert cells[:5] == [f"{100 * row['accuracy']:.2f}", f"{unit[1] * row['energy_mj']:.4g}",
                             f"{100 * row['accuracy_vs_baseline']:+.2f}", f"{row['energy_vs_baseline']:.3g}",
                             f"{row['energy_vs_ann']:.3g}"]
    best = analysis.best_aeb(frame)
    assert lines[-1].startswith(f"best F_AEB: trial {int(best['number'])} ({100 * best['accuracy']:.2f} %, ")
    assert "1% more accuracy (relative) is worth 15.3% more energy" in lines[-1]

    # Without --baseline: the baseline is marked where it is shown, and no comparison columns.
    assert main(["show", "--storage", storage, "--study-name", "p"]) == 0
    plain = capsys.readouterr().out.splitlines()
    assert plain[:2] == lines[:2] and "E_ANN" not in plain[2]
    assert plain[-2] == ("notes: knee = the knee of the front (export --trial knee), best = the highest F_AEB "
                         "(export --trial best)")
    assert main(["show", "--storage", storage, "--study-name", "p", "--format", "json", "--baseline"]) == 0
    shown = json.loads(capsys.readouterr().out)
    # Every row carries what its figures were measured with, and which rows export picks.
    for row in shown:
        assert (row["e_ref_mj"], row["energy_model"], row["energy_profile"], row["first_layer"]) == (
            settings.aeb.e_ref, "ops", "fp32", "once")
        assert row["knee"] == (row["number"] == knee) and row["best_f_aeb"] == (row["number"] == best_number)
    assert select_trial(study, settings, "knee").number == knee
    (stored,) = [row for row in shown if row["baseline"]]
    assert stored["number"] == 0 and stored["energy_vs_baseline"] == 1.0
    assert stored["accuracy"] == pytest.approx(base["accuracy"], rel=1e-14)
    assert [row["number"] for row in shown] == analysis.with_baseline_row(front, frame)["number"].tolist()


def plotly_figures(page: str) -> list[dict]:
    """The figures of an HTML page, decoded from its ``Plotly.newPlot(id, data, layout, config)`` calls.

    Read as JSON, not as text: plotly writes non-ASCII characters as ``\\uXXXX`` escapes, or
    not, depending on whether orjson is installed.
    """
    decoder = json.JSONDecoder()
    figures = []
    for call in re.finditer(r"Plotly\.newPlot\(", page):
        args, pos = [], call.end()
        for i in range(4):
            pos = re.compile(r"\s*" + (r"" if i == 0 else r",\s*")).match(page, pos).end()
            value, pos = decoder.raw_decode(page, pos)
            args.append(value)
        div, data, layout, config = args
        assert isinstance(div, str) and f'id="{div}"' in page, "newPlot draws into a div of the page"
        figures.append({"data": data, "layout": layout, "config": config})
    return figures


def trace_values(values) -> list:
    """A trace's x or y as a list: a plain JSON list, or plotly's base64 typed array."""
    if isinstance(values, dict):
        return np.frombuffer(base64.b64decode(values["bdata"]), dtype=values["dtype"]).tolist()
    return list(values)


def test_report_is_one_self_contained_file_with_five_figures(real_study, tmp_path):
    _, study, settings = real_study
    path = report.write_report(study, settings, tmp_path / "out" / "report.html", device="cpu")
    text = path.read_text()
    assert not re.search(r"<script[^>]*\ssrc=", text), "the report must not load scripts from elsewhere"
    assert len(re.findall(r"\* plotly\.js v\d", text)) == 1
    assert "Study</dt><dd>p</dd>" in text
    assert [p.name for p in path.parent.iterdir()] == ["report.html"]

    figures = plotly_figures(text)
    assert len(figures) == 5 and text.count("Plotly.newPlot(") == 5
    pareto, volume, breakdown, models, genes = (fig["layout"] for fig in figures)
    best = int(analysis.best_aeb(trials_frame(study, settings))["number"])
    assert [layout["title"]["text"] for layout in (pareto, volume, genes)] == [
        plots.PARETO_TITLE, plots.HYPERVOLUME_TITLE, plots.GENES_TITLE]
    assert breakdown["title"]["text"].startswith(f"{plots.BREAKDOWN_TITLE} of trial {best} (the F_AEB-best trial")
    assert breakdown["title"]["text"].endswith("; stored with the trial)")
    assert pareto["yaxis"]["title"]["text"].endswith("accuracy (%)")
    frame = trials_frame(study, settings)
    unit, factor = formatting.energy_unit(frame["energy_mj"])
    assert pareto["xaxis"]["title"]["text"] == f"energy per image ({unit})"
    assert breakdown["xaxis"]["title"]["text"].startswith("energy per image (")
    # Every energy axis offers a log scale.
    for layout in (pareto, breakdown):
        (menu,) = layout["updatemenus"]
        assert [b["label"] for b in menu["buttons"]] == ["energy: linear", "energy: log"]
        assert menu["buttons"][1]["args"] == [{"xaxis.type": "log"}]
    # The hypervolume is bench_search's: a share of the box up to (0.2, E_ref), stated on the figure;
    # (1, E_ref) where the largest subnet itself is under 80% accurate, as on this briefly trained supernet.
    error = 0.2 if frame.iloc[0]["accuracy"] > 0.8 else 1.0
    accurate = "subnets at least 80 % accurate" if error < 1 else "any subnet"
    assert volume["yaxis"]["title"]["text"] == plots.HYPERVOLUME_SHARE_LABEL
    assert volume["title"]["subtitle"]["text"] == (
        f"reference point (error {error:g}, energy {formatting.format_energy(settings.aeb.e_ref)}): the box of "
        f"{accurate} and no costlier than E_ref, as in benchmarks/bench_search.py; share of that box covered")
    assert volume["xaxis"]["title"]["text"] == "complete trials"
    assert all(fig["config"]["displaylogo"] is False for fig in figures)

    # the red line is Optuna's own Pareto front of the study, accuracy in percent
    front = next(trace for trace in figures[0]["data"] if trace["name"].startswith("Pareto front"))
    drawn = sorted(zip(trace_values(front["x"]), trace_values(front["y"])))
    expected = sorted({(factor * t.values[1], 100 * t.values[0]) for t in study.best_trials})
    assert len(drawn) == len(expected) and np.array(drawn) == pytest.approx(np.array(expected))
    assert front["name"] == f"Pareto front ({len(expected)} trials)"
    every = [point for trace in figures[0]["data"] if trace["name"].split()[0] in ("dominated", "Pareto")
             for point in zip(trace_values(trace["x"]), trace_values(trace["y"]))]
    complete = study.get_trials(states=(TrialState.COMPLETE,))
    assert np.array(sorted(every)) == pytest.approx(np.array(sorted((factor * t.values[1], 100 * t.values[0])
                                                                    for t in complete)))
    (base,) = [trace for trace in figures[0]["data"] if trace["name"].startswith("baseline")]
    assert base["name"] == "baseline: largest subnet (trial 0)"
    assert (trace_values(base["x"]), trace_values(base["y"])) == (
        [factor * complete[0].values[1]], [100 * complete[0].values[0]])
    assert "baseline trial 0 (largest subnet)" in pareto["title"]["subtitle"]["text"]
    trace = figures[1]["data"][0]
    assert trace_values(trace["x"]) == list(range(1, N_TRIALS + 1))
    volumes = trace_values(trace["y"])
    assert np.all(np.diff(volumes) >= 0) and 0 < volumes[-1] <= 1
    assert volumes == pytest.approx(hypervolume.hypervolume_history(
        frame, (error, settings.aeb.e_ref), normalise=True)["hypervolume"].tolist())
    bars = figures[2]["data"]
    assert {bar["name"].split()[0] for bar in bars} == {"MAC", "AC"}
    assert all(energy > 0 for bar in bars for energy in trace_values(bar["x"]))
    (parcoords,) = figures[4]["data"]
    labels = [dimension["label"] for dimension in parcoords["dimensions"]]
    evaluated = [t for t in complete if "duplicate_of" not in t.user_attrs]
    genes_unit, genes_factor = formatting.energy_unit([t.values[1] for t in evaluated])
    assert labels[-2:] == ["accuracy (%)", f"energy ({genes_unit})"]
    assert sorted(trace_values(parcoords["dimensions"][-1]["values"])) == pytest.approx(
        sorted(genes_factor * t.values[1] for t in evaluated))

    # The summary and the front table state the baseline, the ANN and what F_AEB weighs.
    assert "<dt>Baseline</dt><dd>trial 0, the space&#x27;s largest subnet" in text
    assert "<dt>What F_AEB weighs</dt><dd>F_AEB = Acc x (E / E_ref)^w trades accuracy for energy" in text
    assert "<th>E / E_ANN</th>" in text and "<td>baseline</td>" in text

    # The front under the study's energy model (ops) beside loihi's, from the energies the trials recorded.
    changes = analysis.front_changes(frame, ["ops", "loihi"])
    stays = int((changes["on_ops"] & changes["on_loihi"]).sum())
    assert models["title"]["text"] == plots.MODELS_TITLE
    assert models["title"]["subtitle"]["text"] == (
        f"{stays} of the {int(changes['on_ops'].sum())} trials on the ops front stay on the loihi front; "
        f"{int(changes['on_loihi'].sum())} trials on the loihi front")
    for panel, (model, other) in enumerate((("ops", "loihi"), ("loihi", "ops"))):
        axis = "x" if panel == 0 else "x2"
        traces = {t["name"].split(" (")[0]: t for t in figures[3]["data"] if t.get("xaxis", "x") == axis}
        marked = {n for name in ("on both fronts", "on this model's front only")
                  for n in trace_values(traces[name]["customdata"]) if name in traces}
        under, _ = analysis.under_energy_model(frame, model, settings.aeb)
        assert marked == set(analysis.pareto_front(under)["number"])
        if "on both fronts" in traces:
            assert all(changes.set_index("number").loc[n, f"on_{other}"]
                       for n in trace_values(traces["on both fronts"]["customdata"]))
    assert "<h2>Fronts under every recorded energy model</h2>" in text
    assert "<dt>Energy model</dt><dd>ops (45 nm operation prices, fp32 profile)</dd>" in text

    chosen = plotly_figures(report.write_report(study, settings, path, breakdown_trial=0, device="cpu").read_text())
    assert chosen[2]["layout"]["title"]["text"].startswith(f"{plots.BREAKDOWN_TITLE} of trial 0 (the chosen trial")
    with pytest.raises(StudyError, match="has no trial 99"):
        report.write_report(study, settings, tmp_path / "x.html", breakdown_trial=99)


def test_export_writes_a_safe_checkpoint_that_matches_the_supernet(real_study, tmp_path):
    _, study, settings = real_study
    result = export_trial(study, settings, tmp_path / "subnet", trial="knee", device="cpu")
    frame = trials_frame(study, settings)
    knee = analysis.knee(analysis.pareto_front(frame))
    assert result["trial"] == knee["number"] and result["arch_id"] == knee["arch_id"]
    assert 0.0 <= result["test_accuracy"] <= 1.0 and result["test_energy_mj"] > 0
    assert result["val_accuracy"] == pytest.approx(knee["accuracy"])
    state = torch.load(tmp_path / "subnet" / "subnet.pt", weights_only=True)
    assert set(state) == {"format", "supernet", "config", "model", "transform", "info"} and state["format"] == 2
    saved = json.loads((tmp_path / "subnet" / "subnet.json").read_text())
    assert saved["trial"] == result["trial"] and saved["config"] == result["config"]
    assert saved["test_accuracy"] == result["test_accuracy"] and saved["search"]["accuracy"] == knee["accuracy"]

    model = load_exported(tmp_path / "subnet").model
    config = settings.space.config_from_params(study.trials[result["trial"]].params)
    assert model.config == config.active() and not model.training
    evaluator, data = load_evaluator(settings, device="cpu")
    evaluator(config)  # recalibrates the supernet's BN for this subnet, as the export did
    x = torch.stack([data.test[i][0] for i in range(32)])
    with torch.no_grad():
        diff = (model(x) - evaluator.net.eval()(x)).abs().max().item()
    assert diff < 1e-5
    with pytest.raises(ValueError, match="not an autospk subnet export"):
        load_exported(settings.checkpoint)
    with pytest.raises(FileNotFoundError, match="subnet export .* does not exist"):
        load_exported(tmp_path / "nothing")


# ----------------------------------------------------------------------------- a real pareto3 study


@pytest.fixture(scope="module")
def real_study3(tmp_path_factory, digits_checkpoint):
    """A pareto3 study made and run through the command line, as a user would."""
    storage = f"sqlite:///{tmp_path_factory.mktemp('analysis3')}/s.db"
    assert main(["create", "--storage", storage, "--study-name", "p3", "--objective", "pareto3", "--checkpoint",
                 str(digits_checkpoint.path), "--population-size", "4", "--num-parents", "2"]) == 0
    assert main(["optimize", "--storage", storage, "--study-name", "p3", "--n-trials", str(N_TRIALS),
                 "--device", "cpu", "--no-progress"]) == 0
    study, settings = load(storage, "p3")
    return storage, study, settings


@pytest.fixture(scope="module")
def loihi_study(tmp_path_factory, digits_checkpoint):
    """A pareto study searched under the loihi energy model, lemaire recorded on request."""
    storage = f"sqlite:///{tmp_path_factory.mktemp('loihi')}/s.db"
    assert main(["create", "--storage", storage, "--study-name", "l", "--objective", "pareto", "--checkpoint",
                 str(digits_checkpoint.path), "--population-size", "4", "--num-parents", "2", "--energy-model",
                 "loihi", "--record-energy-models", "lemaire", "--energy-images", "4"]) == 0
    assert main(["optimize", "--storage", storage, "--study-name", "l", "--n-trials", "5", "--device", "cpu",
                 "--no-progress"]) == 0
    study, settings = load(storage, "l")
    return storage, study, settings


@pytest.mark.slow
def test_a_study_searches_under_its_energy_model_and_shows_the_front_under_any_recorded_one(loihi_study, capsys):
    storage, study, settings = loihi_study
    assert settings.evaluation.energy_model == "loihi"
    assert settings.evaluation.energy_models == ("ops", "loihi", "spinnaker2", "lemaire")
    complete = study.get_trials(states=(TrialState.COMPLETE,))
    for trial in complete:
        attrs = trial.user_attrs
        assert set(attrs["energies_mj"]) == {"ops", "loihi", "spinnaker2", "lemaire"}
        assert trial.values == [attrs["accuracy"], attrs["energies_mj"]["loihi"]] and attrs["energy_model"] == "loihi"
    # E_ref is the largest subnet's energy under the study's model, measured by `create` in this
    # process (one thread) and again by a worker (two): a spike may cross its threshold in one
    # summation order and not the other, so the two agree to a few spikes, not to the last bit.
    assert settings.aeb.e_ref == pytest.approx(complete[0].user_attrs["energies_mj"]["loihi"], rel=1e-4)
    from optuna_dashboard import get_note

    note = get_note(study)
    assert "Energy model: **loihi (Intel Loihi's published costs)**, first layer once" in note
    assert "records its energy under ops, loihi, spinnaker2, lemaire" in note

    frame = trials_frame(study, settings)
    for model in ("ops", "lemaire"):
        capsys.readouterr()
        assert main(["show", "--storage", storage, "--study-name", "l", "--energy-model", model, "--format",
                     "json"]) == 0
        shown = json.loads(capsys.readouterr().out)
        under, aeb = analysis.under_energy_model(frame, model, settings.aeb)
        front = analysis.pareto_front(under)
        assert [row["number"] for row in shown] == front["number"].tolist()
        for row in shown:
            trial = study.trials[row["number"]]
            assert row["energy_mj"] == pytest.approx(trial.user_attrs["energies_mj"][model], rel=1e-14)
            assert row["f_aeb"] == pytest.approx(f_aeb(row["accuracy"], row["energy_mj"], aeb), rel=1e-12)
        assert aeb.e_ref == pytest.approx(complete[0].user_attrs["energies_mj"][model], rel=1e-4)  # as above
    assert main(["show", "--storage", storage, "--study-name", "l", "--energy-model", "ops"]) == 0
    header = capsys.readouterr().out.splitlines()[0]
    assert "energy model ops (45 nm operation prices, fp32 profile), re-read from the study's loihi search" in header
    assert main(["show", "--storage", storage, "--study-name", "l"]) == 0
    assert "energy model loihi (Intel Loihi's published costs), first layer once" in capsys.readouterr().out


def test_show_under_a_model_no_trial_recorded_is_one_line(real_study, capsys):
    storage, _, _ = real_study
    capsys.readouterr()
    assert main(["show", "--storage", storage, "--study-name", "p", "--energy-model", "lemaire"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "no trial recorded energy model 'lemaire'" in err[0]
    assert "['ops', 'loihi', 'spinnaker2']" in err[0] and "--record-energy-models lemaire" in err[0]
    with pytest.raises(SystemExit) as exit_info:
        main(["show", "--storage", storage, "--study-name", "p", "--energy-model", "truenorth"])
    assert exit_info.value.code == 2
    assert ("argument --energy-model: invalid choice: 'truenorth' (choose from 'ops', 'lemaire', 'loihi', 'spinnaker2')"
            in capsys.readouterr().err)


def _optuna_front(study: optuna.Study) -> set[tuple[float, ...]]:
    """Optuna's own Pareto front of a study, as (accuracy, energy_mj, params) values."""
    return {tuple(t.values) for t in study.best_trials}


@pytest.mark.slow
def test_a_pareto3_study_records_three_objectives_and_shows_its_3d_front(real_study3, capsys, tmp_path):
    storage, study, settings = real_study3
    assert settings.objective == "pareto3"
    assert study.metric_names == ["accuracy", "energy_mj", "params"]
    assert [d.name for d in study.directions] == ["MAXIMIZE", "MINIMIZE", "MINIMIZE"]
    complete = study.get_trials(states=(TrialState.COMPLETE,))
    assert len(complete) == N_TRIALS
    for trial in complete:
        attrs = trial.user_attrs
        assert trial.values == [attrs["accuracy"], attrs["energy_mj"], attrs["params"]]
    generations = {t.system_attrs.get("SpikformerNSGAIISampler:generation") for t in complete}
    assert 1 in generations, "the sampler bred a second generation from three-objective parents"

    frame = trials_frame(study, settings)
    front = analysis.pareto_front(frame, objective="pareto3")
    assert {tuple(row) for row in front[["accuracy", "energy_mj", "params"]].to_numpy()} == _optuna_front(study)
    capsys.readouterr()
    assert main(["show", "--storage", storage, "--study-name", "p3"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("p3: 3-D Pareto front of accuracy, energy and parameters (digits")
    assert main(["show", "--storage", storage, "--study-name", "p3", "--format", "json"]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert [row["number"] for row in shown] == front["number"].tolist()

    knee = analysis.knee(front, objective="pareto3")
    assert select_trial(study, settings, "knee").number == knee["number"]
    assert main(["export", "--storage", storage, "--study-name", "p3", "--trial", "knee", "--output",
                 str(tmp_path / "knee"), "--device", "cpu"]) == 0
    assert json.loads(capsys.readouterr().out)["trial"] == knee["number"]


def test_report_of_a_pareto3_study_shows_the_3d_front_and_its_projections(real_study3, tmp_path):
    _, study, settings = real_study3
    text = report.write_report(study, settings, tmp_path / "report3.html", device="cpu").read_text()
    assert "on the 3-D Pareto front" in text and "<h2>Trials on the 3-D Pareto front</h2>" in text
    figures = plotly_figures(text)
    titles = [fig["layout"]["title"]["text"] for fig in figures]
    assert titles[:3] == [plots.PARETO3_TITLE, plots.PROJECTIONS_TITLE, plots.HYPERVOLUME_TITLE]
    assert titles[3].startswith(plots.BREAKDOWN_TITLE) and titles[4:] == [plots.MODELS_TITLE, plots.GENES_TITLE]
    expected = _optuna_front(study)
    complete = study.get_trials(states=(TrialState.COMPLETE,))

    # The 3-D scatter: energy, parameters, accuracy (%); every trial once, the front in red.
    scatter = figures[0]
    assert {trace["type"] for trace in scatter["data"]} == {"scatter3d"}
    scene = scatter["layout"]["scene"]
    unit = formatting.energy_unit([t.values[1] for t in complete])
    factor = unit[1]
    assert [scene[axis]["title"]["text"] for axis in ("xaxis", "yaxis", "zaxis")] == [
        plots.energy_label(unit), plots.PARAMS_LABEL, plots.ACCURACY_LABEL]
    assert scatter["layout"]["updatemenus"][0]["buttons"][1]["args"] == [{"scene.xaxis.type": "log"}]

    def points(trace) -> list[tuple[float, ...]]:
        return list(zip(*(trace_values(trace[axis]) for axis in "xyz")))

    front = next(trace for trace in scatter["data"] if trace["name"].startswith("Pareto front"))
    drawn = sorted((acc / 100, energy / factor, params) for energy, params, acc in points(front))
    assert np.array(drawn) == pytest.approx(np.array(sorted(expected)))
    assert front["name"] == f"Pareto front ({len(expected)} trials)"
    every = [p for trace in scatter["data"] if trace["name"].split()[0] in ("dominated", "Pareto")
             for p in points(trace)]
    assert np.array(sorted(every)) == pytest.approx(
        np.array(sorted((factor * t.values[1], t.values[2], 100 * t.values[0]) for t in complete)))
    assert any(trace["name"] == "baseline: largest subnet (trial 0)" for trace in scatter["data"])
    knee = analysis.knee(analysis.pareto_front(trials_frame(study, settings), objective="pareto3"),
                         objective="pareto3")
    assert any(trace["name"] == f"knee of the front (trial {int(knee['number'])})" for trace in scatter["data"])

    # The projections: three planes, each showing the same 3-D front.
    projections = figures[1]
    pairs = {(trace["xaxis"], trace["yaxis"]) for trace in projections["data"]}
    assert pairs == {("x", "y"), ("x2", "y2"), ("x3", "y3")}
    layout = projections["layout"]
    assert [(layout[f"xaxis{i}"]["title"]["text"], layout[f"yaxis{i}"]["title"]["text"]) for i in ("", "2", "3")] == [
        (plots.energy_label(unit), plots.ACCURACY_LABEL), (plots.PARAMS_LABEL, plots.ACCURACY_LABEL),
        (plots.energy_label(unit), plots.PARAMS_LABEL)]
    assert layout["updatemenus"][0]["buttons"][1]["args"] == [{"xaxis.type": "log", "xaxis3.type": "log"}]
    fronts = [trace for trace in projections["data"] if trace["name"].startswith("3-D Pareto front")]
    assert len(fronts) == 3 and [trace["showlegend"] for trace in fronts] == [True, False, False]
    by_axis = {"accuracy": 0, "energy_mj": 1, "params": 2}
    for trace, (x, y) in zip(fronts, (("energy_mj", "accuracy"), ("params", "accuracy"), ("energy_mj", "params"))):
        scale = [100 if column == "accuracy" else factor if column == "energy_mj" else 1 for column in (x, y)]
        projected = sorted((scale[0] * v[by_axis[x]], scale[1] * v[by_axis[y]]) for v in expected)
        assert np.array(sorted(zip(trace_values(trace["x"]), trace_values(trace["y"])))) == pytest.approx(
            np.array(projected))

    # The hypervolume is a volume of three objectives, up to the largest subnet's parameters.
    volume = figures[2]
    assert volume["layout"]["yaxis"]["title"]["text"] == plots.HYPERVOLUME_SHARE_LABEL
    largest = count_params(settings.supernet_cfg, settings.space.largest())
    error = 0.2 if trials_frame(study, settings).iloc[0]["accuracy"] > 0.8 else 1.0
    assert volume["layout"]["title"]["subtitle"]["text"].startswith(
        f"reference point (error {error:g}, energy {formatting.format_energy(settings.aeb.e_ref)}, {largest:,} "
        "parameters)")
    assert trace_values(volume["data"][0]["y"])[-1] > 0


def _get(app, path: str) -> tuple[str, dict]:
    environ: dict = {"REQUEST_METHOD": "GET", "PATH_INFO": path, "wsgi.input": io.BytesIO()}
    wsgiref.util.setup_testing_defaults(environ)
    answer: dict = {}

    def start_response(status: str, headers: list, exc_info=None) -> None:
        answer["status"] = status

    body = b"".join(app(environ, start_response))
    return answer["status"], json.loads(body)


def _get_bytes(app, path: str) -> tuple[str, dict, bytes]:
    environ: dict = {"REQUEST_METHOD": "GET", "PATH_INFO": path, "wsgi.input": io.BytesIO()}
    wsgiref.util.setup_testing_defaults(environ)
    answer: dict = {}

    def start_response(status: str, headers: list, exc_info=None) -> None:
        answer["status"], answer["headers"] = status, dict(headers)

    body = b"".join(app(environ, start_response))
    return answer["status"], answer["headers"], body


def test_each_trial_stores_its_per_layer_energy_as_an_optuna_artifact(real_study):
    storage, study, settings = real_study
    assert settings.artifact_dir == storage[len("sqlite:///"):] + ".artifacts"
    evaluated = [t for t in study.get_trials(states=(TrialState.COMPLETE,)) if "duplicate_of" not in t.user_attrs]
    for trial in evaluated:
        (meta,) = optuna.artifacts.get_all_artifact_meta(trial, storage=study._storage)
        assert (meta.filename, meta.mimetype) == (layer_artifacts.FILENAME, "text/csv")
        assert trial.user_attrs[layer_artifacts.ARTIFACT_ATTR] == meta.artifact_id
        table = layer_artifacts.stored_layers(settings, trial)
        models = ("ops", "loihi", "spinnaker2")
        assert tuple(table.columns) == (*layer_artifacts.LAYER_COLUMNS, *(f"energy_mj_{m}" for m in models))
        assert table["energy_mj"].sum() == pytest.approx(trial.user_attrs["energy_mj"], rel=1e-12)
        for model in models:  # one table, every model that prices layers
            assert table[f"energy_mj_{model}"].sum() == pytest.approx(trial.user_attrs["energies_mj"][model], rel=1e-12)
        neurons = table[table["kind"] == "NEURON"]
        assert len(neurons) and (neurons["energy_mj_ops"] == 0).all() and (neurons["energy_mj_loihi"] > 0).all()
    # Measured again, the last trial's table is the one it stored, number for number.
    trial = evaluated[-1]
    measured = measure_trial(settings, trial, device="cpu").layer_table()
    pd.testing.assert_frame_equal(layer_artifacts.stored_layers(settings, trial), measured,
                                  check_dtype=False, check_exact=True)


def test_optuna_dashboard_lists_and_serves_a_trials_per_layer_artifact(real_study):
    from optuna.artifacts import FileSystemArtifactStore
    from optuna_dashboard import wsgi

    storage, study, settings = real_study
    app = wsgi(storage, artifact_store=FileSystemArtifactStore(settings.artifact_dir))
    study_id = study._study_id
    status, detail = _get(app, f"/api/studies/{study_id}")
    assert status.startswith("200") and detail["name"] == "p"
    baseline = next(t for t in detail["trials"] if t["number"] == 0)
    (artifact,) = baseline["artifacts"]
    assert artifact["filename"] == "energy_layers.csv" and artifact["mimetype"] == "text/csv"
    assert {"key": "baseline", "value": "True"} in baseline["user_attrs"]
    status, headers, body = _get_bytes(app, f"/artifacts/{study_id}/{baseline['trial_id']}/{artifact['artifact_id']}")
    assert status.startswith("200") and headers["Content-Type"] == "text/csv"
    served = pd.read_csv(io.BytesIO(body))
    pd.testing.assert_frame_equal(served, layer_artifacts.stored_layers(settings, study.trials[0]), check_exact=True)
    note = detail["note"]["body"]
    assert "**Baseline: trial 0**, the space's largest subnet" in note
    assert "accuracy as a fraction in [0, 1] and energy in mJ per image" in note
    assert f"--artifact-dir {settings.artifact_dir}" in note


def test_plot_of_a_trial_draws_its_stored_table_without_measuring(real_study, tmp_path, monkeypatch, capsys):
    import studies.results

    storage, study, settings = real_study
    trial = study.trials[3]
    stored = layer_artifacts.stored_layers(settings, trial)

    def no_measuring(*args, **kwargs):
        raise AssertionError("the report measured a trial that stored its table")

    monkeypatch.setattr(studies.results, "load_evaluator", no_measuring)
    out = tmp_path / "r.html"
    assert main(["plot", "--storage", storage, "--study-name", "p", "--trial", "3", "--output", str(out)]) == 0
    assert capsys.readouterr().out == f"report: {out.resolve()}\n"
    breakdown = plotly_figures(out.read_text())[2]
    assert breakdown["layout"]["title"]["text"].startswith(f"{plots.BREAKDOWN_TITLE} of trial 3 (the chosen trial")
    assert breakdown["layout"]["title"]["text"].endswith("; stored with the trial)")
    unit, factor = formatting.energy_unit(stored["energy_mj"])
    drawn = {layer: energy for bar in breakdown["data"]
             for layer, energy in zip(bar["y"], trace_values(bar["x"]))}
    # Neuron layers cost nothing under ops: the figure leaves them out.
    charged = stored[(stored["kind"] != "NEURON") | (stored["energy_mj"] > 0)]
    assert len(charged) < len(stored)
    assert drawn == pytest.approx(dict(zip(charged["layer"], factor * charged["energy_mj"])))


def test_a_trial_whose_table_is_gone_is_measured_again_and_says_so(real_study, tmp_path):
    _, study, settings = real_study
    trial = study.trials[1]
    path = Path(settings.artifact_dir) / trial.user_attrs[layer_artifacts.ARTIFACT_ATTR]
    saved = path.read_bytes()
    path.unlink()
    try:
        with pytest.raises(StudyError, match=rf"trial 1's per-layer energy table \(artifact [0-9a-f-]+\) is not in "
                                             rf"{re.escape(settings.artifact_dir)}; restore that folder"):
            layer_artifacts.stored_layers(settings, trial)
        table, source = studies_trial_layers(settings, trial, device="cpu")
        assert source == "measured again: its stored table is missing"
        assert table["energy_mj"].sum() == pytest.approx(trial.user_attrs["energy_mj"], rel=1e-9)
    finally:
        path.write_bytes(saved)


def test_optuna_dashboard_serves_the_study(real_study):
    from optuna_dashboard import wsgi

    storage, study, _ = real_study
    app = wsgi(storage)
    status, listing = _get(app, "/api/studies")
    assert status.startswith("200")
    summary = next(s for s in listing["study_summaries"] if s["study_name"] == "p")
    assert summary["directions"] == ["maximize", "minimize"]
    status, detail = _get(app, f"/api/studies/{summary['study_id']}")
    assert status.startswith("200")
    assert detail["name"] == "p" and detail["objective_names"] == ["accuracy", "energy_mj"]
    assert len(detail["trials"]) == len(study.trials)
    complete = [t for t in detail["trials"] if t["state"] == "Complete"]
    assert len(complete) == N_TRIALS
    assert {"accuracy", "energy_mj", "f_aeb", "arch_id"} <= {a["key"] for a in complete[0]["user_attrs"]}
    assert "F_AEB" in detail["note"]["body"]
    assert detail["best_trials"], "the Pareto front is listed"


def run_notebook(storage: str, study_name: str, tmp_path: Path, monkeypatch) -> tuple[list, list[dict]]:
    """Run the notebook on a study: its outputs, and the Plotly figures among them."""
    from nbclient import NotebookClient

    monkeypatch.setenv("OMP_NUM_THREADS", "1")  # the kernel inherits it; see conftest._one_thread
    # the kernel starts in tmp_path: make it import the code under test, not an installed copy
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])))
    notebook = nbformat.read(NOTEBOOK, as_version=4)
    code = [cell for cell in notebook.cells if cell.cell_type == "code"]
    assert "parameters" in code[0].metadata.get("tags", [])
    assert 'STORAGE = "sqlite:///autospk.db"' in code[0].source and "STUDY = None" in code[0].source
    code[0].source = f'STORAGE = "{storage}"\nSTUDY = "{study_name}"'
    NotebookClient(notebook, kernel_name="python3", timeout=180,
                   resources={"metadata": {"path": str(tmp_path)}}).execute()
    outputs = [out for cell in code for out in cell.get("outputs", [])]
    assert not [out for out in outputs if out.output_type == "error"]
    shown = [out for out in outputs if "application/vnd.plotly.v1+json" in out.get("data", {})]
    # Outside a live JupyterLab (nbconvert's HTML, a viewer that keeps outputs) each figure
    # needs a copy that is not plotly's JSON: an HTML page that draws it, or an image.
    for out in shown:
        assert {"text/html", "image/png"} & set(out["data"]), f"a figure without a static copy: {set(out['data'])}"
        if "text/html" in out["data"]:
            html_copy = out["data"]["text/html"]
            assert "Plotly.newPlot(" in html_copy and 'class="plotly-graph-div"' in html_copy
    # plotly.js itself is in the notebook once, so its HTML copies draw offline.
    assert sum("text/html" in out.get("data", {}) and "* plotly.js v" in out["data"]["text/html"]
               for out in outputs) == 1
    figures = [out["data"]["application/vnd.plotly.v1+json"] for out in shown]
    return outputs, figures


@pytest.mark.slow
def test_notebook_runs_end_to_end(real_study, tmp_path, monkeypatch):
    storage, _, _ = real_study
    outputs, figures = run_notebook(storage, "p", tmp_path, monkeypatch)
    titles = [fig["layout"]["title"]["text"] for fig in figures]
    assert titles[:2] == [plots.PARETO_TITLE, plots.HYPERVOLUME_TITLE]
    assert titles[2].startswith(plots.BREAKDOWN_TITLE) and titles[3:] == [plots.MODELS_TITLE, plots.GENES_TITLE]
    assert any("best F_AEB" in trace.get("name", "") for trace in figures[0]["data"])
    assert any(trace.get("name") == "baseline: largest subnet (trial 0)" for trace in figures[0]["data"])
    study, settings = load(storage, "p")
    unit, _ = formatting.energy_unit(trials_frame(study, settings)["energy_mj"])
    assert any(f"<th>energy {unit}</th>" in out.get("data", {}).get("text/html", "") and "<th>E / E_ANN</th>"
               in out["data"]["text/html"] for out in outputs)
    text = "".join("".join(out.get("text", "")) for out in outputs)
    assert "baseline: trial 0, the space's largest subnet" in text and "1% more accuracy (relative)" in text
    best = select_trial(study, settings, "best").number
    assert f"trial {best}: per-layer energy stored with the trial" in text
    assert "searched under ops (45 nm operation prices, fp32 profile); recorded: ops, loihi, spinnaker2" in text


@pytest.mark.slow
def test_notebook_shows_a_pareto3_study_in_3d(real_study3, tmp_path, monkeypatch):
    storage, study, settings = real_study3
    outputs, figures = run_notebook(storage, "p3", tmp_path, monkeypatch)
    titles = [fig["layout"]["title"]["text"] for fig in figures]
    assert titles[:3] == [plots.PARETO3_TITLE, plots.PROJECTIONS_TITLE, plots.HYPERVOLUME_TITLE]
    assert titles[3].startswith(plots.BREAKDOWN_TITLE) and titles[4:] == [plots.MODELS_TITLE, plots.GENES_TITLE]
    front = len(analysis.pareto_front(trials_frame(study, settings), objective="pareto3"))
    assert any(f"{front} on the Pareto front" in "".join(out.get("text", "")) for out in outputs)
