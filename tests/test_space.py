from __future__ import annotations

import random

import optuna
import pytest

from models import ConfigError, SubnetConfig
from nas.fitness import AEBSettings, f_aeb
from nas.space import GENES, SearchSpace, load_space, presets
from tests.conftest import TINY_SPACE


def test_presets_load_and_paper_space_matches_the_authors():
    assert {"paper", "digits"} <= set(presets())
    paper = load_space("paper")
    assert paper.genes["embed_dim"] == (192, 240, 336, 384)
    assert paper.genes["threshold"] == (0.6, 0.8, 1.0, 1.2, 1.4, 1.6, 1.8, 2.0)
    supernet_cfg = paper.supernet_config(in_channels=3, img_size=32, num_classes=10)
    assert (supernet_cfg.max_depth, supernet_cfg.max_embed_dim, supernet_cfg.max_num_heads,
            supernet_cfg.max_mlp_ratio) == (4, 384, 12, 4.0)
    assert supernet_cfg.stem_dims == (48, 96, 192) and supernet_cfg.num_tokens == 64
    assert paper.threshold_scope == "mlp"


def test_digits_large_preset_is_a_harder_space_on_the_same_data():
    large, small = load_space("digits-large"), load_space("digits")
    assert large.patch_size == small.patch_size == 2
    assert large.max_depth == 4 and large.threshold_scope == "block"
    supernet_cfg = large.supernet_config(in_channels=1, img_size=8, num_classes=10)
    assert (supernet_cfg.max_embed_dim, supernet_cfg.max_num_heads, supernet_cfg.time_steps) == (24, 4, 6)
    assert large.size() > 10**8 * small.size()


def test_genome_is_fixed_length_and_round_trips(tiny_space):
    names = tiny_space.param_names()
    assert names[:3] == ["depth", "embed_dim", "time_steps"]
    assert len(names) == 3 + 4 * tiny_space.max_depth
    rng = random.Random(0)
    for _ in range(20):
        cfg = tiny_space.sample(rng)
        params = tiny_space.params_from_config(cfg)
        assert set(params) == set(names)
        assert tiny_space.config_from_params(params) == cfg


def test_dormant_genes_do_not_change_the_architecture(tiny_space):
    params = tiny_space.params_from_config(tiny_space.smallest())
    other = {**params, "tau_1": 1.5, "num_heads_1": 2}
    assert params["depth"] == 1
    assert tiny_space.config_from_params(params).arch_id == tiny_space.config_from_params(other).arch_id


def test_suggest_maps_trial_params_one_to_one(tiny_space):
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=1))
    trial = study.ask()
    cfg = tiny_space.suggest(trial)
    assert trial.params == tiny_space.params_from_config(cfg)
    assert set(trial.distributions) == set(tiny_space.distributions())


def test_params_from_config_rejects_values_outside_the_space(tiny_space):
    cfg = SubnetConfig.uniform(depth=1, embed_dim=12, num_heads=1, mlp_ratio=1.0, time_steps=1, max_depth=2)
    with pytest.raises(ValueError, match=r"embed_dim=12 is not in the space 'tiny'; choose from \[8, 16\]"):
        tiny_space.params_from_config(cfg)


@pytest.mark.parametrize("change,message", [
    ({"colour": 1}, r"unknown entries \['colour'\]"),
    ({"genes": {**TINY_SPACE["genes"], "width": [1]}}, r"unknown genes \['width'\]"),
    ({"genes": {k: v for k, v in TINY_SPACE["genes"].items() if k != "tau"}}, r"missing genes \['tau'\]"),
    ({"genes": {**TINY_SPACE["genes"], "tau": [1.0, 2.0]}}, r"space 'tiny': tau=1.0 \(block 0\) must be > 1"),
    ({"genes": {**TINY_SPACE["genes"], "threshold": [float("inf"), 1.0]}},
     r"space 'tiny': threshold=inf \(block 0\) must be a finite number > 0"),
    ({"genes": {**TINY_SPACE["genes"], "depth": [0, 1]}}, r"space 'tiny': depth=0 is outside the supernet"),
    ({"genes": {**TINY_SPACE["genes"], "embed_dim": [8, 12]}}, r"max_embed_dim=12 must be a multiple of 8"),
    ({"patch_size": [2]}, r"patch_size=\[2\] must be one whole number"),
    ({"patch_size": 3}, r"patch_size=3 must be one of \[1, 2, 4, 8, 16\]"),
    ({"genes": {**TINY_SPACE["genes"], "num_heads": [3]}}, r"num_heads \[3\] do not divide embed_dim=8"),
    ({"genes": {**TINY_SPACE["genes"], "depth": []}}, r"genes.depth must be a non-empty list"),
    ({"genes": {**TINY_SPACE["genes"], "depth": [1.5]}}, r"genes.depth=\[1.5\] must hold whole numbers"),
    ({"threshold_scope": "all"}, r"threshold_scope='all'; choose from \['mlp', 'block'\]"),
])
def test_invalid_spaces_name_the_bad_entry(change, message):
    with pytest.raises(ConfigError, match=message):
        SearchSpace.from_dict({**TINY_SPACE, **change})


def test_load_space_errors(tmp_path):
    with pytest.raises(ValueError, match="unknown search space 'nope'; choose from"):
        load_space("nope")
    bad = tmp_path / "bad.toml"
    bad.write_text("genes = [")
    with pytest.raises(ValueError, match="is not valid TOML"):
        load_space(bad)
    good = tmp_path / "mine.toml"
    good.write_text("patch_size = 2\n[genes]\n" + "\n".join(f"{g} = {TINY_SPACE['genes'][g]}" for g in GENES))
    assert load_space(good).name == "mine"


def test_space_dict_round_trip_and_size(tiny_space):
    assert SearchSpace.from_dict(tiny_space.to_dict()) == tiny_space
    # 2 widths x 2 T x (16 one-block + 256 two-block genomes)
    assert tiny_space.size() == 2 * 2 * (16 + 16**2)


def test_f_aeb_weighted_product():
    s = AEBSettings(e_ref=2.0, alpha=-0.07, beta=-0.5)
    assert f_aeb(0.9, 2.0, s) == pytest.approx(0.9)
    assert f_aeb(0.9, 1.0, s) == pytest.approx(0.9 * 0.5 ** -0.07)
    assert f_aeb(0.9, 4.0, s) == pytest.approx(0.9 * 2.0 ** -0.5)
    assert f_aeb(0.9, 1.0, s) > f_aeb(0.9, 2.0, s) > f_aeb(0.9, 4.0, s)
    with pytest.raises(ValueError, match="e_ref=0 must be a finite number > 0"):
        AEBSettings(e_ref=0)
    with pytest.raises(ValueError, match="must be <= 0"):
        AEBSettings(e_ref=1, alpha=0.1)
