"""Optuna studies on the supernet: settings, storage, create/load, workers, CLI, analysis.

The Python API: `studies.study` (create, load, open_study, select_trial), `studies.workers`
(run_worker, optimize), `studies.analysis` (pure frame functions), `studies.plots`,
`studies.export`, `studies.layer_artifacts` (each trial's per-layer energy, an Optuna artifact). Names
load on first use, so ``autospk-study --help`` starts fast.
"""

import lazy_loader

__getattr__, __dir__, __all__ = lazy_loader.attach(
    __name__,
    submodules=["analysis", "export", "layers", "plots", "study", "workers"],
    submod_attrs={
        "errors": ["StudyError"],
        "settings": ["StudySettings"],
        "storage": ["DEFAULT_STORAGE", "StorageError", "mask_url", "normalize_url", "open_storage"],
    },
)
