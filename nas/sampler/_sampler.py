"""Our NSGA-II sampler: Auto-Spikformer's evolution on Optuna's GA sampler base."""

from __future__ import annotations

import random
import threading
import warnings
from collections import Counter
from collections.abc import Callable, Sequence
from typing import Any

import optuna
from optuna.distributions import BaseDistribution
from optuna.samplers import BaseGASampler
from optuna.trial import FrozenTrial, TrialState

from models import SubnetConfig

from .._optuna_private import set_trial_system_attr
from ..settings import SamplerSettings
from ..space import SearchSpace
from ..study_index import ARCH_KEY, PARAMS_KEY, StudyIndex
from ._selection import select_top
from ._surrogate import GenomeEncoder, Observed, screen
from ._variation import mutate, uniform_crossover

_FRESH_READ = 0.05
"""Seconds for which a read of the study serves the start of a proposal."""

_STRATA_POOL = 8
"""Random candidates per slot of the first generation when it is stratified by cost."""


class SpikformerNSGAIISampler(BaseGASampler):
    """Evolutionary search over architecture and neuron genes (ESNN), one genome per trial.

    Each generation holds `population_size` trials. Its parents are the `num_parents`
    best of the previous generation and its parents: by F_AEB for one objective, by
    non-dominated rank and crowding distance for two or three, feasible trials first
    (``trial.set_constraint``). A child is, with probability `crossover_fraction`, the
    uniform crossover of two random parents, otherwise a mutation of one; every gene of a
    child may then mutate (`global_mutation_prob` for depth, embed_dim and T,
    `block_mutation_prob` for each per-block gene).

    The first generation is uniform random or, given `cost`, stratified: slot i draws
    from the i-th cost quantile of a random pool, so it spans cheap to costly subnets.
    Enqueued trials (``study.enqueue_trial``) take precedence.

    Screening (given `cost` and ``candidates > 1``): after the first generation, each
    proposal draws `candidates` distinct new children and keeps the one a surrogate
    expects to add the most hypervolume to the current front (the most F_AEB improvement
    for one objective), its leave-one-out error counted as uncertainty. The surrogate is a
    ridge regression per objective on the one-hot genome and the log of `cost`, refitted
    at every proposal on the most recent completed trials and the front; an evaluation is
    worth far more than the fit. ``candidates=1`` is plain NSGA-II.

    No architecture is proposed twice: before proposing, the sampler reads every arch id
    in storage (other workers' proposals included) and draws again on a clash. It then
    claims the architecture under a lock (threads of one process): it reads storage again,
    skips children claimed meanwhile, and writes the arch id to the trial at once.

    Args:
        space: The search space.
        settings: Population, parents, variation, screening and seed (see `SamplerSettings`).
        cost: Optional cost of a subnet (e.g. `energy.analytic_energy`): stratifies
            generation 0 and feeds the screening surrogate (see `_surrogate`); without it,
            generation 0 is uniform and there is no screening.
        max_retries: Draws before giving up on finding a new architecture from parents.
    """

    def __init__(
        self,
        space: SearchSpace,
        *,
        settings: SamplerSettings = SamplerSettings(),
        cost: Callable[[SubnetConfig], float] | None = None,
        max_retries: int = 200,
    ) -> None:
        super().__init__(population_size=settings.population_size)
        self.space = space
        self.settings = settings
        self.cost = cost
        self.max_retries = max_retries
        self._encoder = GenomeEncoder(space, cost) if cost is not None else None
        self._strata: list[list[dict[str, Any]]] | None = None
        self._claim_lock = threading.Lock()
        self._states: dict[int, _StudyState] = {}

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        del state["_claim_lock"]
        state["_states"] = {}
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._claim_lock = threading.Lock()

    def reseed_rng(self) -> None:
        """Optuna reseeds samplers per worker thread; draws are seeded per trial already."""

    def infer_relative_search_space(self, study: optuna.Study, trial: FrozenTrial) -> dict[str, BaseDistribution]:
        return dict(self.space.distributions())

    def select_parent(self, study: optuna.Study, generation: int) -> list[FrozenTrial]:
        candidates = self.get_population(study, generation - 1) + self.get_parent_population(study, generation - 1)
        return select_top(candidates, study.directions, self.settings.num_parents)

    def get_trial_generation(self, study: optuna.Study, trial: FrozenTrial) -> int:
        """The trial's generation: the newest one until it holds `population_size` complete trials.

        `BaseGASampler`'s rule, counted incrementally instead of over every trial.
        """
        key = self._get_generation_key()
        generation = trial.system_attrs.get(key)
        if generation is not None:
            return generation
        # A read made for this trial a moment ago (the worker's dead-trial sweep) will do: the
        # architecture is claimed on a fresh read in any case.
        state = self._state(study, max_age=_FRESH_READ)
        newest = max(state.generations, default=0)
        generation = newest if state.generations.get(newest, 0) < self.population_size else newest + 1
        set_trial_system_attr(study, trial, key, generation)
        return generation

    def get_parent_population(self, study: optuna.Study, generation: int) -> list[FrozenTrial]:
        """`BaseGASampler`'s parents of a generation (selected once per study), kept in memory.

        In trial-number order, as every worker reads them back from the study, so that a
        child does not depend on which worker selected its parents.
        """
        if generation == 0:
            return []
        state = self._state(study)
        if generation not in state.parents:
            parents = super().get_parent_population(study, generation)
            state.parents[generation] = sorted(parents, key=lambda t: t.number)
        return state.parents[generation]

    def sample_relative(
        self, study: optuna.Study, trial: FrozenTrial, search_space: dict[str, BaseDistribution]
    ) -> dict[str, Any]:
        fixed = trial.system_attrs.get("fixed_params")
        if fixed is not None and set(self.space.param_names()) <= set(fixed):
            # An enqueued architecture (the baseline, a retry): claim it, unless its trial already does.
            if ARCH_KEY not in trial.system_attrs:
                set_trial_system_attr(study, trial, ARCH_KEY, self.space.config_from_params(fixed).arch_id)
            return {}
        rng = random.Random(f"{self.settings.seed}:{trial.number}")
        generation = self.get_trial_generation(study, trial)
        parents = self.get_parent_population(study, generation)
        index = StudyIndex.of(study)
        seen = index.known(self.space, exclude_number=trial.number)
        ranked = [self._propose(trial.number, parents, seen, rng)]
        observed = self._state(study).observed
        if parents and self.settings.candidates > 1 and observed is not None:
            ranked = self._screened(observed, ranked[0], parents, seen, rng)
        with self._claim_lock:
            # Claim the architecture: re-read storage, since other workers may have claimed
            # some while we screened, and write the arch id before anyone else proposes.
            index.refresh(study)
            seen = index.known(self.space, exclude_number=trial.number)
            ids = [self.space.config_from_params(p).arch_id for p in ranked]
            free = [i for i, arch in enumerate(ids) if arch not in seen]
            if free:
                params, arch = ranked[free[0]], ids[free[0]]
            else:
                params = self._propose(trial.number, parents, seen, rng)
                arch = self.space.config_from_params(params).arch_id
                if arch in seen:
                    warnings.warn(
                        f"trial {trial.number} repeats an architecture already evaluated or claimed: no new one "
                        f"was found ({len(seen)} known of {self.space.size()} in the space). The search space is "
                        "nearly exhausted; run fewer trials or search a larger space.",
                        stacklevel=2,
                    )
            # The genome first: a claim always comes with it (a retry of this trial needs it).
            set_trial_system_attr(study, trial, PARAMS_KEY, params)
            set_trial_system_attr(study, trial, ARCH_KEY, arch)
        return params

    def _state(self, study: optuna.Study, *, max_age: float | None = None) -> _StudyState:
        """This sampler's incremental view of `study`, brought up to date with its index.

        Args:
            study: The study.
            max_age: Read the study first unless the index's last read is younger than this
                (None: no read).
        """
        index = StudyIndex.of(study)
        if max_age is not None:
            index.refresh(study, max_age=max_age)
        key = id(index)
        with self._claim_lock:
            state = self._states.get(key)
            if state is None or state.completed is not index.completed:
                # A new study, or one deleted and created again under the same name.
                screening = self._encoder is not None and self.settings.candidates > 1
                observed = Observed(study.directions, self._encoder) if screening else None
                state = self._states[key] = _StudyState(index.completed, observed)
            state.catch_up(self._get_generation_key())
        return state

    def after_trial(self, study: optuna.Study, trial: FrozenTrial, state: TrialState,
                    values: Sequence[float] | None) -> None:
        # Optuna calls this before it stores the trial's end: the next proposal must read it.
        StudyIndex.of(study).mark_stale()

    def sample_independent(
        self, study: optuna.Study, trial: FrozenTrial, param_name: str, param_distribution: BaseDistribution
    ) -> Any:
        rng = random.Random(f"{self.settings.seed}:{trial.number}:{param_name}")
        return rng.choice(param_distribution.choices)

    def _propose(
        self, number: int, parents: Sequence[FrozenTrial], seen: set[str], rng: random.Random
    ) -> dict[str, Any]:
        params: dict[str, Any] = {}
        for attempt in range(self.max_retries):
            params = self._child(parents, rng) if parents else self._first_generation(number, attempt, rng)
            if self.space.config_from_params(params).arch_id not in seen:
                return params
        for _ in range(10 * self.max_retries):
            # Parents hemmed in by known architectures: explore at random instead.
            params = self.space.params_from_config(self.space.sample(rng))
            if self.space.config_from_params(params).arch_id not in seen:
                return params
        return params

    def _screened(self, observed: Observed, first: dict[str, Any], parents: Sequence[FrozenTrial],
                  seen: set[str], rng: random.Random) -> list[dict[str, Any]]:
        """Draw up to `candidates` distinct new children, most promising first."""
        pool = [first]
        ids = seen | {self.space.config_from_params(first).arch_id}
        for _ in range(self.max_retries):
            if len(pool) == self.settings.candidates:
                break
            child = self._child(parents, rng)
            arch = self.space.config_from_params(child).arch_id
            if arch not in ids:
                ids.add(arch)
                pool.append(child)
        return [pool[i] for i in screen(pool, observed)]

    def _child(self, parents: Sequence[FrozenTrial], rng: random.Random) -> dict[str, Any]:
        names = self.space.param_names()
        if len(parents) >= 2 and rng.random() < self.settings.crossover_fraction:
            a, b = rng.sample(list(parents), 2)
            child = uniform_crossover({n: a.params[n] for n in names}, {n: b.params[n] for n in names}, rng,
                                      swap_prob=self.settings.swap_prob)
        else:
            child = dict(rng.choice(list(parents)).params)
        return mutate({n: child[n] for n in names}, self.space, rng, global_prob=self.settings.global_mutation_prob,
                      block_prob=self.settings.block_mutation_prob, neighbour=self.settings.neighbour_mutation)

    def _first_generation(self, number: int, attempt: int, rng: random.Random) -> dict[str, Any]:
        if self.cost is None:
            return self.space.params_from_config(self.space.sample(rng))
        if self._strata is None:
            self._strata = self._make_strata()
        stratum = self._strata[(number + attempt // 20) % len(self._strata)]
        return dict(rng.choice(stratum))

    def _make_strata(self) -> list[list[dict[str, Any]]]:
        pool_rng = random.Random(f"{self.settings.seed}:strata")
        slots = self.population_size
        pool = [self.space.sample(pool_rng) for _ in range(slots * _STRATA_POOL)]
        pool.sort(key=self.cost)
        return [[self.space.params_from_config(c) for c in pool[i * _STRATA_POOL:(i + 1) * _STRATA_POOL]]
                for i in range(slots)]


class _StudyState:
    """What the sampler keeps of one study between proposals, fed by the study's index.

    Args:
        completed: The index's list of complete trials (appended to as trials finish).
        observed: What screening keeps of the complete trials (None without screening).
    """

    def __init__(self, completed: list[FrozenTrial], observed: Observed | None) -> None:
        self.completed = completed
        self.seen = 0
        self.generations: Counter[int] = Counter()
        self.parents: dict[int, list[FrozenTrial]] = {}
        self.observed = observed

    def catch_up(self, generation_key: str) -> None:
        """Take in the trials completed since the last call."""
        for trial in self.completed[self.seen:]:
            generation = trial.system_attrs.get(generation_key, -1)
            if generation >= 0:
                self.generations[generation] += 1
            if self.observed is not None:
                self.observed.add(trial)
        self.seen = len(self.completed)
