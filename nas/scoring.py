"""Scoring one network: BN statistics recomputed on a few batches, and accuracy with energy
measured in one pass over a stream of batches."""

from __future__ import annotations

import ctypes
from collections.abc import Callable, Iterable, Iterator

import torch
from torch import nn

from energy import EnergyMonitor, EnergyProfile, EnergyReport


def _heap_trimmer() -> Callable[[int], int] | None:
    """glibc's ``malloc_trim``, or None where the C library has none (macOS, musl, Windows)."""
    try:
        return ctypes.CDLL(None).malloc_trim
    except (AttributeError, OSError, TypeError):
        return None


_MALLOC_TRIM = _heap_trimmer()


@torch.no_grad()
def recalibrate_bn(model: nn.Module, batches: list[tuple[torch.Tensor, torch.Tensor]], device: torch.device) -> None:
    """Recompute every BatchNorm's running statistics as a plain average over `batches`."""
    norms = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    saved = [(m.momentum, m.training) for m in norms]
    for m in norms:
        m.reset_running_stats()
        m.momentum = None
        m.train()
    try:
        for x, _ in batches:
            model(x.to(device, non_blocking=True))
    finally:
        for m, (momentum, training) in zip(norms, saved):
            m.momentum = momentum
            m.train(training)


def running_counts(model: nn.Module, batches: Iterable[tuple[torch.Tensor, torch.Tensor]],
                    device: torch.device) -> Iterator[tuple[int, int]]:
    """Run `model` on `batches`; after each batch, yield (correct, scored) so far."""
    correct = scored = 0
    for x, y in batches:
        if _MALLOC_TRIM is not None:
            # glibc raises its mmap threshold to the largest block freed, so after the first
            # batch the decoded images come from the heap, whose freed pages it keeps: about a
            # batch more than is in use. Handing them back before each forward pass keeps the
            # peak at the model plus one batch (bench_eval_memory.py).
            _MALLOC_TRIM(0)
        pred = model(x.to(device, non_blocking=True)).argmax(dim=1).cpu()
        correct += int((pred == y).sum())
        scored += len(y)
        # Let go of this batch before the loader builds the next one.
        del x, y, pred
        yield correct, scored


@torch.no_grad()
def score_model(
    model: nn.Module,
    batches: Iterable[tuple[torch.Tensor, torch.Tensor]],
    *,
    params: int,
    profile: str | EnergyProfile | None = None,
    device: torch.device | str | None = None,
    first_layer: str = "once",
) -> tuple[float, EnergyReport]:
    """Top-1 accuracy of `model` on `batches` and its energy per image, measured in one pass.

    The model runs in the mode it is in: put it in eval mode first.

    Args:
        model: Any classifier of images; its synaptic layers are measured by `energy.EnergyMonitor`.
        batches: ``(images, labels)`` pairs, e.g. a `DataLoader`; the labels stay on the CPU.
        params: Parameter count written into the report.
        profile: Energy per operation (see `energy.get_profile`).
        device: Where the images go; defaults to the model's device.
        first_layer: First-layer energy convention, ``once`` or ``per_step``.

    Returns:
        Accuracy in [0, 1] and the energy report (``ops``; `score_energies` prices the same
        pass under other energy models too).
    """
    accuracy, reports = score_energies(model, batches, params=params, profile=profile, device=device,
                                       first_layer=first_layer)
    return accuracy, reports["ops"]


@torch.no_grad()
def score_energies(
    model: nn.Module,
    batches: Iterable[tuple[torch.Tensor, torch.Tensor]],
    *,
    params: int,
    profile: str | EnergyProfile | None = None,
    device: torch.device | str | None = None,
    first_layer: str = "once",
    models: tuple[str, ...] = ("ops",),
) -> tuple[float, dict[str, EnergyReport]]:
    """`score_model`, with the energy report under each of `models`, priced from the same pass
    (``ops`` and the devices of `energy.DEVICES`)."""
    device = torch.device(device) if device is not None else next(model.parameters()).device
    correct = scored = 0
    with EnergyMonitor(model, profile=profile, first_layer=first_layer) as monitor:
        for correct, scored in running_counts(model, batches, device):  # noqa: B007 (the last counts are the totals)
            pass
    return correct / scored, monitor.reports(params=params, models=models)
