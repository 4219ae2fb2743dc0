"""What a worker builds from a study's settings: the evaluator (on the checkpoint, checked
against what the study stored) and the sampler."""

from __future__ import annotations

import dataclasses
from pathlib import Path

from nas.settings import EvaluationSettings

from .errors import StudyError
from .settings import StudySettings


def make_evaluator(checkpoint, evaluation: EvaluationSettings, *, path: str | Path, device: str | None = None):
    """The checkpoint's supernet and data, and an evaluator with these evaluation settings.

    The evaluator recalibrates BN on the ``train_eval`` split and scores the ``val`` split (or
    its ``evaluation.eval_images`` subset).

    Args:
        checkpoint: A loaded `nas.checkpoint.SupernetCheckpoint`.
        evaluation: How subnets are scored.
        path: Where `checkpoint` was read from, for messages.
        device: Where to run (default: cuda if available, else cpu).

    Returns:
        ``(evaluator, data)``: a `nas.SubnetEvaluator` and the data set's `nas.DataSplits`.

    Raises:
        ConfigError: if the data set no longer holds the data the supernet was trained on.
    """
    from nas.data import load_dataset
    from nas.device import default_device
    from nas.evaluate import SubnetEvaluator

    dev = default_device(device)
    data = load_dataset(checkpoint.dataset)
    checkpoint.check_data(path, checkpoint.dataset, data,
                          fix="restore the data it was trained on, or train a supernet on the data as it is now")
    evaluator = SubnetEvaluator(checkpoint.build_supernet(dev), data.train_eval, data.val, settings=evaluation,
                                device=dev)
    return evaluator, data


def check_checkpoint(settings: StudySettings, checkpoint=None, *, path: str | Path | None = None):
    """The study's supernet checkpoint, checked against the study before any work is spent on it.

    Workers and the parent that starts them call this first, so that a checkpoint that was
    moved, replaced or retrained is one clear error rather than one per worker.

    Args:
        settings: The study's settings.
        checkpoint: A loaded `nas.checkpoint.SupernetCheckpoint` to check instead of reading
            ``settings.checkpoint``.
        path: Where `checkpoint` was read from, for messages (default: ``settings.checkpoint``).

    Returns:
        The checkpoint.

    Raises:
        FileNotFoundError: if the checkpoint file is gone.
        ConfigError: if it is not a readable autospk checkpoint.
        StudyError: if it was trained for another search space, data shape or data than the
            study's supernet.
    """
    from nas.checkpoint import load_checkpoint

    path = settings.checkpoint if path is None else path
    checkpoint = load_checkpoint(path) if checkpoint is None else checkpoint
    fix = "put the study's checkpoint back, or create a new study on this one"
    if checkpoint.space != settings.space:
        other = "" if checkpoint.space.name != settings.space.name else " with other genes or patch size"
        raise StudyError(f"checkpoint {path} is not the supernet the study was created with: it was trained for "
                         f"search space '{checkpoint.space.name}'{other}, the study searches "
                         f"'{settings.space.name}'; {fix}")
    if checkpoint.supernet_cfg != settings.supernet_cfg:
        raise StudyError(f"checkpoint {path} is not the supernet the study was created with: its supernet has "
                         f"another shape (data shape, classes or maxima) than the study's; {fix}")
    if settings.data_fingerprint is not None and checkpoint.data_fingerprint != settings.data_fingerprint:
        raise StudyError(
            f"checkpoint {path} is not the supernet the study was created with: it was trained on "
            f"{checkpoint.dataset.describe()} with data fingerprint {checkpoint.data_fingerprint or 'unknown'}, the "
            f"study's on {settings.dataset.describe()} with data fingerprint {settings.data_fingerprint}; {fix}")
    return checkpoint


def load_evaluator(settings: StudySettings, *, device: str | None = None):
    """The study's supernet, data and evaluator, exactly as its search scores subnets.

    Raises:
        StudyError: if the checkpoint no longer matches the study (`check_checkpoint`).
        ConfigError: if the data set no longer holds the data the supernet was trained on.
    """
    checkpoint = check_checkpoint(settings)
    return make_evaluator(checkpoint, settings.evaluation, path=settings.checkpoint, device=device)


def make_sampler(settings: StudySettings, *, seed_offset: int = 0):
    """Our sampler from a study's settings; generation 0 is stratified by analytic energy."""
    from energy import analytic_energy
    from nas.sampler import SpikformerNSGAIISampler

    sampler_settings = dataclasses.replace(settings.sampler, seed=settings.sampler.seed + seed_offset)
    ev = settings.evaluation
    # (lemaire has no analytic estimate: analytic_energy gives the ops one for it.)
    return SpikformerNSGAIISampler(settings.space, settings=sampler_settings,
                                   cost=analytic_energy(settings.supernet_cfg, first_layer=ev.first_layer,
                                                        profile=ev.profile, model=ev.energy_model))


def gpu_memory(settings: StudySettings, devices: list[str]) -> tuple[int, dict[str, int]]:
    """What one worker needs on a GPU, and what each of `devices` has free: run it in a process
    of its own (it holds a CUDA context on each device until it ends).

    One evaluation batch of the space's largest subnet is scored on the first device; its peak
    reserved memory plus a CUDA context (`studies.hosts.CUDA_CONTEXT_BYTES`) is a worker's need.
    A device's free memory counts the context this process holds there, which ends with it.

    Returns:
        ``(worker_bytes, {device: free_bytes})``.
    """
    import torch

    from nas.checkpoint import load_checkpoint

    from .hosts import CUDA_CONTEXT_BYTES

    free = {device: torch.cuda.mem_get_info(torch.device(device))[0] + CUDA_CONTEXT_BYTES for device in devices}
    first = torch.device(devices[0])
    batch = settings.evaluation.batch_size
    evaluation = dataclasses.replace(settings.evaluation, eval_images=batch, early_rejection=False)
    evaluator, _ = make_evaluator(load_checkpoint(settings.checkpoint), evaluation, path=settings.checkpoint,
                                  device=str(first))
    torch.cuda.reset_peak_memory_stats(first)
    evaluator(settings.space.largest())
    return torch.cuda.max_memory_reserved(first) + CUDA_CONTEXT_BYTES, free
