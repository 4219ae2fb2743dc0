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

from models import load_exported
from nas import SamplerSettings, SearchSpace
from studies import analysis, plots
from studies.errors import StudyError
from studies.cli import main
from studies.export import export_trial
from studies.settings import StudySettings
from studies.study import create, load, load_evaluator, select_trial, trials_frame
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
    history = analysis.hypervolume_history(frame, ref_point=(1.0, 10.0))
    # (1 - 0.5) x (10 - 2) = 4; adding (0.2, 4) adds (1 - 0.2) x (10 - 4) - 0.5 x 6 = 1.8;
    # the dominated third point and the infeasible fourth add nothing.
    assert history["hypervolume"].tolist() == pytest.approx([4.0, 5.8, 5.8, 5.8])
    assert history["n_trials"].tolist() == [1, 2, 3, 4]
    assert history.attrs["ref_point"] == (1.0, 10.0)
    assert analysis.hypervolume_history(frame).attrs["ref_point"] == pytest.approx((1.0, 5.5))
    with pytest.raises(ValueError, match="two numbers"):
        analysis.hypervolume_history(frame, ref_point=(1.0,))


def test_hypervolume_history_never_decreases():
    rng = np.random.default_rng(0)
    frame = frame_of([(a, e) for a, e in zip(rng.uniform(0, 1, 60), rng.uniform(0.1, 5, 60))],
                     feasible=list(rng.uniform(size=60) > 0.2))
    volumes = analysis.hypervolume_history(frame)["hypervolume"].to_numpy()
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
    history = analysis.hypervolume_history(frame, ref_point=(1.0, 10.0, 1000.0), objective="pareto3")
    # (1 - 0.5) x (10 - 2) x (1000 - 100) = 3600; (0.2, 4, 500) adds 0.8 x 6 x 500 less the
    # overlap 0.5 x 6 x 500: 900; the dominated third point and the infeasible fourth add nothing.
    assert history["hypervolume"].tolist() == pytest.approx([3600.0, 4500.0, 4500.0, 4500.0])
    assert history.attrs["columns"] == ("accuracy", "energy_mj", "params")
    default = analysis.hypervolume_history(frame, objective="pareto3")
    assert default.attrs["ref_point"] == pytest.approx((1.0, 5.5, 660.0))
    assert (np.diff(default["hypervolume"]) >= 0).all() and default["hypervolume"].iloc[-1] > 0
    with pytest.raises(ValueError, match=r"must be three numbers: \(error, energy_mj, params\)"):
        analysis.hypervolume_history(frame, ref_point=(1.0, 10.0), objective="pareto3")


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
    assert frame.equals(analysis.trials_frame(study.get_trials(states=(TrialState.COMPLETE,)), space))
    assert list(frame.columns) == analysis.frame_columns(space)
    assert frame["feasible"].tolist() == [True, False]
    assert frame.loc[0, "depth"] == 1 and math.isnan(frame.loc[0, "num_heads_1"])
    assert frame.loc[1, "num_heads_1"] == max(TINY_SPACE["genes"]["num_heads"])
    assert frame["duplicate_of"].isna().all() and math.isnan(frame.loc[0, "sops"])
    assert list(analysis.pareto_front(frame)["number"]) == [0]


def test_empty_and_unknown_trials_are_clear_errors(space, tmp_path):
    study, settings = memory_study(space)
    assert trials_frame(study, settings).empty
    assert list(trials_frame(study, settings).columns) == analysis.frame_columns(space)
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
    assert list(frame.columns) == analysis.frame_columns(space)
    complete = study.get_trials(states=(TrialState.COMPLETE,))
    assert len(frame) == len(complete) == N_TRIALS
    for trial, (_, row) in zip(complete, frame.iterrows()):
        config = space.config_from_params(trial.params)
        assert row["number"] == trial.number and row["arch_id"] == config.arch_id
        assert row["accuracy"] == trial.user_attrs["accuracy"] and 0 <= row["accuracy"] <= 1
        assert row["energy_mj"] == trial.user_attrs["energy_mj"] > 0
        for block in range(space.max_depth):
            assert math.isnan(row[f"tau_{block}"]) == (block >= config.depth)
        assert analysis.block_values(row, "tau") == list(config.tau[: config.depth])
    assert frame["feasible"].all()
    table = analysis.front_table(analysis.pareto_front(frame))
    assert {"accuracy %", "energy mJ", "num_heads", "threshold"} <= set(table.columns)
    assert (table["accuracy %"] > 1).all()


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


def test_report_is_one_self_contained_file_with_four_figures(real_study, tmp_path):
    _, study, settings = real_study
    path = plots.write_report(study, settings, tmp_path / "out" / "report.html", device="cpu")
    text = path.read_text()
    assert not re.search(r"<script[^>]*\ssrc=", text), "the report must not load scripts from elsewhere"
    assert len(re.findall(r"\* plotly\.js v\d", text)) == 1
    assert "Study</dt><dd>p</dd>" in text
    assert [p.name for p in path.parent.iterdir()] == ["report.html"]

    figures = plotly_figures(text)
    assert len(figures) == 4 and text.count("Plotly.newPlot(") == 4
    pareto, volume, breakdown, genes = (fig["layout"] for fig in figures)
    best = int(analysis.best_aeb(trials_frame(study, settings))["number"])
    assert [layout["title"]["text"] for layout in (pareto, volume, genes)] == [
        plots.PARETO_TITLE, plots.HYPERVOLUME_TITLE, plots.GENES_TITLE]
    assert breakdown["title"]["text"].startswith(f"{plots.BREAKDOWN_TITLE} of trial {best} (the F_AEB-best trial")
    assert pareto["yaxis"]["title"]["text"].endswith("accuracy (%)")
    assert pareto["xaxis"]["title"]["text"].endswith("(mJ)") and breakdown["xaxis"]["title"]["text"].endswith("(mJ)")
    assert volume["yaxis"]["title"]["text"] == plots.HYPERVOLUME_LABEL
    assert volume["xaxis"]["title"]["text"] == "complete trials"
    assert all(fig["config"]["displaylogo"] is False for fig in figures)

    # the red line is Optuna's own Pareto front of the study, accuracy in percent
    front = next(trace for trace in figures[0]["data"] if trace["name"].startswith("Pareto front"))
    drawn = sorted(zip(trace_values(front["x"]), trace_values(front["y"])))
    expected = sorted({(t.values[1], 100 * t.values[0]) for t in study.best_trials})
    assert len(drawn) == len(expected) and np.array(drawn) == pytest.approx(np.array(expected))
    assert front["name"] == f"Pareto front ({len(expected)} trials)"
    every = [point for trace in figures[0]["data"] if trace["name"].split()[0] in ("dominated", "Pareto")
             for point in zip(trace_values(trace["x"]), trace_values(trace["y"]))]
    complete = study.get_trials(states=(TrialState.COMPLETE,))
    assert np.array(sorted(every)) == pytest.approx(np.array(sorted((t.values[1], 100 * t.values[0])
                                                                    for t in complete)))
    hypervolume = figures[1]["data"][0]
    assert trace_values(hypervolume["x"]) == list(range(1, N_TRIALS + 1))
    assert np.all(np.diff(trace_values(hypervolume["y"])) >= 0) and trace_values(hypervolume["y"])[-1] > 0
    bars = figures[2]["data"]
    assert {bar["name"].split()[0] for bar in bars} == {"MAC", "AC"}
    assert all(energy > 0 for bar in bars for energy in trace_values(bar["x"]))
    (parcoords,) = figures[3]["data"]
    labels = [dimension["label"] for dimension in parcoords["dimensions"]]
    assert labels[-2:] == ["accuracy (%)", "energy (mJ)"]
    evaluated = [t for t in complete if "duplicate_of" not in t.user_attrs]
    assert sorted(trace_values(parcoords["dimensions"][-1]["values"])) == pytest.approx(
        sorted(t.values[1] for t in evaluated))

    chosen = plotly_figures(plots.write_report(study, settings, path, breakdown_trial=0, device="cpu").read_text())
    assert chosen[2]["layout"]["title"]["text"].startswith(f"{plots.BREAKDOWN_TITLE} of trial 0 (the chosen trial")
    with pytest.raises(StudyError, match="has no trial 99"):
        plots.write_report(study, settings, tmp_path / "x.html", breakdown_trial=99)


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


def _optuna_front(study: optuna.Study) -> set[tuple[float, ...]]:
    """Optuna's own Pareto front of a study, as (accuracy, energy_mj, params) values."""
    return {tuple(t.values) for t in study.best_trials}


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
    text = plots.write_report(study, settings, tmp_path / "report3.html", device="cpu").read_text()
    assert "on the 3-D Pareto front" in text and "<h2>Trials on the 3-D Pareto front</h2>" in text
    figures = plotly_figures(text)
    titles = [fig["layout"]["title"]["text"] for fig in figures]
    assert titles[:3] == [plots.PARETO3_TITLE, plots.PROJECTIONS_TITLE, plots.HYPERVOLUME_TITLE]
    assert titles[3].startswith(plots.BREAKDOWN_TITLE) and titles[4] == plots.GENES_TITLE
    expected = _optuna_front(study)
    complete = study.get_trials(states=(TrialState.COMPLETE,))

    # The 3-D scatter: energy, parameters, accuracy (%); every trial once, the front in red.
    scatter = figures[0]
    assert {trace["type"] for trace in scatter["data"]} == {"scatter3d"}
    scene = scatter["layout"]["scene"]
    assert [scene[axis]["title"]["text"] for axis in ("xaxis", "yaxis", "zaxis")] == [
        plots.ENERGY_LABEL, plots.PARAMS_LABEL, plots.ACCURACY_LABEL]

    def points(trace) -> list[tuple[float, ...]]:
        return list(zip(*(trace_values(trace[axis]) for axis in "xyz")))

    front = next(trace for trace in scatter["data"] if trace["name"].startswith("Pareto front"))
    drawn = sorted((acc / 100, energy, params) for energy, params, acc in points(front))
    assert np.array(drawn) == pytest.approx(np.array(sorted(expected)))
    assert front["name"] == f"Pareto front ({len(expected)} trials)"
    every = [p for trace in scatter["data"] if trace["name"].split()[0] in ("dominated", "Pareto")
             for p in points(trace)]
    assert np.array(sorted(every)) == pytest.approx(
        np.array(sorted((t.values[1], t.values[2], 100 * t.values[0]) for t in complete)))
    knee = analysis.knee(analysis.pareto_front(trials_frame(study, settings), objective="pareto3"),
                         objective="pareto3")
    assert any(trace["name"] == f"knee of the front (trial {int(knee['number'])})" for trace in scatter["data"])

    # The projections: three planes, each showing the same 3-D front.
    projections = figures[1]
    pairs = {(trace["xaxis"], trace["yaxis"]) for trace in projections["data"]}
    assert pairs == {("x", "y"), ("x2", "y2"), ("x3", "y3")}
    layout = projections["layout"]
    assert [(layout[f"xaxis{i}"]["title"]["text"], layout[f"yaxis{i}"]["title"]["text"]) for i in ("", "2", "3")] == [
        (plots.ENERGY_LABEL, plots.ACCURACY_LABEL), (plots.PARAMS_LABEL, plots.ACCURACY_LABEL),
        (plots.ENERGY_LABEL, plots.PARAMS_LABEL)]
    fronts = [trace for trace in projections["data"] if trace["name"].startswith("3-D Pareto front")]
    assert len(fronts) == 3 and [trace["showlegend"] for trace in fronts] == [True, False, False]
    by_axis = {"accuracy": 0, "energy_mj": 1, "params": 2}
    for trace, (x, y) in zip(fronts, (("energy_mj", "accuracy"), ("params", "accuracy"), ("energy_mj", "params"))):
        scale = [100 if column == "accuracy" else 1 for column in (x, y)]
        projected = sorted((scale[0] * v[by_axis[x]], scale[1] * v[by_axis[y]]) for v in expected)
        assert np.array(sorted(zip(trace_values(trace["x"]), trace_values(trace["y"])))) == pytest.approx(
            np.array(projected))

    # The hypervolume is a volume of three objectives.
    volume = figures[2]
    assert volume["layout"]["yaxis"]["title"]["text"] == plots.HYPERVOLUME3_LABEL
    assert "parameters" in volume["layout"]["title"]["subtitle"]["text"]
    assert trace_values(volume["data"][0]["y"])[-1] > 0


def _get(app, path: str) -> tuple[str, dict]:
    environ: dict = {"REQUEST_METHOD": "GET", "PATH_INFO": path, "wsgi.input": io.BytesIO()}
    wsgiref.util.setup_testing_defaults(environ)
    answer: dict = {}

    def start_response(status: str, headers: list, exc_info=None) -> None:
        answer["status"] = status

    body = b"".join(app(environ, start_response))
    return answer["status"], json.loads(body)


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
    figures = [out["data"]["application/vnd.plotly.v1+json"] for out in outputs
               if "application/vnd.plotly.v1+json" in out.get("data", {})]
    return outputs, figures


def test_notebook_runs_end_to_end(real_study, tmp_path, monkeypatch):
    storage, _, _ = real_study
    outputs, figures = run_notebook(storage, "p", tmp_path, monkeypatch)
    titles = [fig["layout"]["title"]["text"] for fig in figures]
    assert titles[:2] == [plots.PARETO_TITLE, plots.HYPERVOLUME_TITLE]
    assert titles[2].startswith(plots.BREAKDOWN_TITLE) and titles[3] == plots.GENES_TITLE
    assert any("best F_AEB" in trace.get("name", "") for trace in figures[0]["data"])
    assert any("energy mJ" in out.get("data", {}).get("text/html", "") for out in outputs)


def test_notebook_shows_a_pareto3_study_in_3d(real_study3, tmp_path, monkeypatch):
    storage, study, settings = real_study3
    outputs, figures = run_notebook(storage, "p3", tmp_path, monkeypatch)
    titles = [fig["layout"]["title"]["text"] for fig in figures]
    assert titles[:3] == [plots.PARETO3_TITLE, plots.PROJECTIONS_TITLE, plots.HYPERVOLUME_TITLE]
    assert titles[3].startswith(plots.BREAKDOWN_TITLE) and titles[4] == plots.GENES_TITLE
    front = len(analysis.pareto_front(trials_frame(study, settings), objective="pareto3"))
    assert any(f"{front} on the Pareto front" in "".join(out.get("text", "")) for out in outputs)
