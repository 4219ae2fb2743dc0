"""Typed settings: one default each, a versioned round trip, and a command line that derives from them."""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys
from pathlib import Path

import optuna
import pytest

from models import ConfigError
from nas.fitness import AEBSettings
from nas.settings import Budgets, EvaluationSettings, SamplerSettings, settings_help
from studies.cli import build_parser
from studies.commands import _settings
from studies.errors import StudyError
from studies.settings import SETTINGS_ATTR, SETTINGS_VERSION, StudySettings
from studies.study import load

V1 = Path(__file__).parent / "data" / "settings_v1.json"
"""Settings as the first autospk release stored them (a real study's user attr)."""


def _v1() -> dict:
    return json.loads(V1.read_text())


def test_version_1_settings_read_into_the_typed_settings():
    stored = _v1()
    settings = StudySettings.from_dict(stored)
    # Every stored value is read back; fields added since (event input, attention scale, frames)
    # take their defaults, which are what the first release did.
    assert settings.supernet_cfg.to_dict() == {**settings.supernet_cfg.to_dict(), **stored["supernet"]}
    assert (settings.supernet_cfg.event_input, settings.supernet_cfg.attention_scale) == (False, 0.125)
    assert settings.space.to_dict() == {**settings.space.to_dict(), **stored["space"]}
    assert settings.dataset.to_dict() == {**settings.dataset.to_dict(), **stored["dataset"]}
    assert settings.space.attention_scale == 0.125 and settings.dataset.frames is None
    assert settings.sampler == SamplerSettings(**stored["sampler"])
    assert settings.sampler.swap_prob == SamplerSettings().swap_prob
    assert settings.aeb == AEBSettings(**stored["aeb"]) and settings.budgets.max_params == 5000
    assert settings.evaluation == EvaluationSettings(**stored["evaluation"])
    again = StudySettings.from_dict(settings.to_dict())
    assert again == settings and settings.to_dict()["version"] == SETTINGS_VERSION
    assert "supernet_cfg" in settings.to_dict() and "supernet" not in settings.to_dict()


def test_version_2_settings_read_without_a_data_fingerprint():
    current = StudySettings.from_dict(_v1()).to_dict()
    version_2 = {key: value for key, value in current.items() if key != "data_fingerprint"}
    assert StudySettings.from_dict({**version_2, "version": 2}).data_fingerprint is None
    with pytest.raises(ConfigError, match="study settings lack 'data_fingerprint'"):
        StudySettings.from_dict(version_2)
    with_fingerprint = StudySettings.from_dict({**current, "data_fingerprint": "0123456789abcdef"})
    assert StudySettings.from_dict(with_fingerprint.to_dict()) == with_fingerprint


def test_version_3_settings_read_without_an_artifact_folder():
    current = StudySettings.from_dict(_v1()).to_dict()
    version_3 = {key: value for key, value in current.items() if key != "artifact_dir"}
    assert StudySettings.from_dict({**version_3, "version": 3}).artifact_dir is None
    with pytest.raises(ConfigError, match="study settings lack 'artifact_dir'"):
        StudySettings.from_dict(version_3)
    with_folder = StudySettings.from_dict({**current, "artifact_dir": "/data/s.db.artifacts"})
    assert StudySettings.from_dict(with_folder.to_dict()) == with_folder
    with pytest.raises(ConfigError, match="artifact_dir='rel/dir' must be an absolute path or None"):
        StudySettings.from_dict({**current, "artifact_dir": "rel/dir"})


def test_a_version_1_study_still_loads(tmp_path):
    storage = f"sqlite:///{tmp_path}/old.db"
    study = optuna.create_study(storage=storage, study_name="old", directions=["maximize", "minimize"])
    study.set_user_attr(SETTINGS_ATTR, _v1())
    loaded, settings = load(storage, "old")
    assert settings == StudySettings.from_dict(_v1())
    assert loaded.sampler.settings == settings.sampler and loaded.sampler.space == settings.space


def test_version_4_settings_read_under_the_ops_energy_model():
    current = StudySettings.from_dict(_v1()).to_dict()
    evaluation = {k: v for k, v in current["evaluation"].items()
                  if k not in ("energy_model", "record_energy_models", "energy_images")}
    old = StudySettings.from_dict({**current, "evaluation": evaluation, "version": 4})
    assert (old.evaluation.energy_model, old.evaluation.record_energy_models) == ("ops", ())
    assert old.evaluation.energy_models == ("ops", "loihi", "spinnaker2")
    chosen = dataclasses.replace(old, evaluation=EvaluationSettings(energy_model="lemaire", energy_images=8))
    assert StudySettings.from_dict(json.loads(json.dumps(chosen.to_dict()))) == chosen
    assert chosen.evaluation.energy_models == ("ops", "loihi", "spinnaker2", "lemaire")
    with pytest.raises(ConfigError, match=r"unknown energy model 'truenorth'; choose from \['ops', 'lemaire', "):
        EvaluationSettings(energy_model="truenorth")
    with pytest.raises(ConfigError, match=r"only \['lemaire'\] can be asked for; \['ops', 'loihi', 'spinnaker2'\] "
                                          "are recorded for every trial anyway"):
        EvaluationSettings(record_energy_models=("loihi",))


@pytest.mark.parametrize("change,message", [
    ({"version": 0}, r"study settings version 0 is unknown; this autospk reads versions 1..6"),
    ({"version": 7, "written_by": "1.2.3"}, r"was written by autospk 1.2.3 \(settings version 7\); this is autospk .*, "
                                            r"which reads versions up to 6: upgrade autospk"),
    ({"objective": "fast"}, r"unknown objective 'fast'; choose from \['aeb', 'pareto', 'pareto3'\]"),
    ({"sampler": {"population_size": 4, "parents": 2}}, r"sampler: unknown settings \['parents'\]"),
    ({"budgets": {"max_params": -1}}, r"budget max_params=-1 must be a finite number > 0"),
])
def test_bad_stored_settings_name_what_is_wrong(tmp_path, change, message):
    with pytest.raises(ConfigError, match=message):
        StudySettings.from_dict({**_v1(), **change})
    storage = f"sqlite:///{tmp_path}/bad.db"
    optuna.create_study(storage=storage, study_name="bad").set_user_attr(SETTINGS_ATTR, {**_v1(), **change})
    joint = " " if message.startswith("was written") else ": "
    with pytest.raises(StudyError, match="study 'bad'" + joint + message):
        load(storage, "bad")


def test_settings_reject_out_of_range_values_with_one_error_type():
    for make in (lambda: EvaluationSettings(calib_batches=0), lambda: EvaluationSettings(profile="fp64"),
                 lambda: Budgets(max_energy_mj=float("inf")), lambda: AEBSettings(alpha=0.1),
                 lambda: SamplerSettings(candidates=0)):
        with pytest.raises(ConfigError):
            make()


def test_evaluation_settings_round_trip_and_older_studies_read_with_the_defaults():
    evaluation = EvaluationSettings(eval_images=500, loader_workers=2, early_rejection=True, rejection_min_images=64,
                                    rejection_confidence=0.99)
    settings = dataclasses.replace(StudySettings.from_dict(_v1()), evaluation=evaluation)
    assert StudySettings.from_dict(json.loads(json.dumps(settings.to_dict()))) == settings
    older = settings.to_dict()
    older["evaluation"] = {k: older["evaluation"][k] for k in ("calib_batches", "calib_batch_size", "batch_size",
                                                               "profile")}
    assert StudySettings.from_dict(older).evaluation == EvaluationSettings()
    assert EvaluationSettings().eval_images is None and not EvaluationSettings().early_rejection


@pytest.mark.parametrize("values,message", [
    ({"eval_images": 0}, r"eval_images=0 must be a positive number of images, or None"),
    ({"loader_workers": -1}, r"loader_workers=-1 must be >= 0"),
    ({"rejection_min_images": 0}, r"rejection_min_images=0 must be >= 1"),
    ({"early_rejection": True, "rejection_confidence": 1.0}, r"rejection_confidence=1.0 must be in \(0, 1\)"),
    ({"rejection_confidence": 0.9}, r"rejection_confidence=0.9 needs early_rejection=True"),
])
def test_bad_evaluation_settings_say_what_is_allowed(values, message):
    with pytest.raises(ConfigError, match=message):
        EvaluationSettings(**values)


def test_evaluation_flags_reach_the_settings_and_explain_themselves():
    args = build_parser().parse_args(["create", "--study-name", "s", "--objective", "pareto", "--checkpoint", "x.pt",
                                      "--eval-images", "2000", "--early-rejection", "--rejection-confidence", "0.99",
                                      "--eval-loader-workers", "4"])
    assert _settings(args, EvaluationSettings) == EvaluationSettings(
        eval_images=2000, early_rejection=True, rejection_confidence=0.99, loader_workers=4)
    text = " ".join(build_parser()._subparsers._group_actions[0].choices["create"].format_help().split())
    assert "--eval-images EVAL_IMAGES Score every subnet on this fixed, stratified subset of the validation" in text
    assert "export always scores the whole test split. (default: None)" in text
    assert "--early-rejection Stop scoring subnets that provably cannot reach the Pareto front (pareto)" in text
    assert "and record their trials as PRUNED. (default: False)" in text
    assert "--rejection-confidence REJECTION_CONFIDENCE None (default): reject only on bounds that hold" in text


def test_each_settings_flag_explains_itself_with_its_fields_docstring_written_once():
    """The help of every settings flag is the text of its field in the dataclass's docstring."""
    text = " ".join(build_parser()._subparsers._group_actions[0].choices["create"].format_help().split())
    for cls in (AEBSettings, Budgets, SamplerSettings, EvaluationSettings):
        helps = settings_help(cls)
        assert set(helps) == {f.name for f in dataclasses.fields(cls)}, cls.__name__
        for name, help_text in helps.items():
            assert " ".join(help_text.split()) in text, f"{cls.__name__}.{name}"

    @dataclasses.dataclass
    class Undocumented:
        """Settings.

        Args:
            a: Documented.
        """

        a: int = 1
        b: int = 2

    with pytest.raises(ValueError, match=r"Undocumented's docstring describes no \['b'\] under Args:"):
        settings_help(Undocumented)
    for bad in (["--eval-images", "0"], ["--rejection-confidence", "1.5"], ["--eval-loader-workers", "-1"]):
        with pytest.raises(SystemExit):
            build_parser().parse_args(["create", "--study-name", "s", "--objective", "aeb", "--checkpoint", "x", *bad])


def test_command_line_defaults_are_the_settings_defaults():
    args = build_parser().parse_args(["create", "--study-name", "s", "--objective", "aeb", "--checkpoint", "x.pt"])
    for cls in (AEBSettings, Budgets, SamplerSettings, EvaluationSettings):
        assert _settings(args, cls) == cls()
    args = build_parser().parse_args(["create", "--study-name", "s", "--objective", "aeb", "--checkpoint", "x.pt",
                                      "--population-size", "30", "--neighbour-mutation", "--eval-batch-size", "8"])
    assert _settings(args, SamplerSettings) == SamplerSettings(population_size=30, neighbour_mutation=True)
    assert _settings(args, SamplerSettings).num_parents == 6
    assert _settings(args, EvaluationSettings).batch_size == 8


def test_help_shows_each_default_and_imports_neither_torch_nor_optuna():
    text = build_parser()._subparsers._group_actions[0].choices["create"].format_help()
    defaults = SamplerSettings()
    for field in ("population_size", "crossover_fraction", "candidates"):
        flag = "--" + field.replace("_", "-")
        assert flag in text and f"(default: {getattr(defaults, field)})" in text, field
    assert f"(default: {dataclasses.fields(AEBSettings)[1].default})" in text
    code = ("import sys; from studies.cli import build_parser; build_parser(); "
            "print(sorted(m for m in ('torch', 'timm', 'optuna', 'spikingjelly') if m in sys.modules))")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert proc.stdout.strip() == "[]"
