"""GPU offload as the user sees it: what this llama.cpp build runs on, and where each model went.

llama-cpp-python builds for the CPU unless it is compiled with a GPU backend
(``CMAKE_ARGS="-DGGML_CUDA=on"`` and the like); a CPU-only build ignores any
number of GPU layers.  :func:`system_report` says what the build can do (for
``specsearch info --system``), :class:`Offload` what one loaded model got (each
Engine has one, the app shows its :meth:`Offload.label`), and
:func:`offload_warning` is the one line the CLI and the app show when GPU
layers were asked for on a build that cannot offload (automatic stays silent).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass

from . import llama_adapter as lla
from .llama_adapter import BackendDevice

GPU_KINDS = ("GPU", "iGPU")
"""ggml device kinds that take offloaded layers."""


@dataclass(frozen=True)
class Offload:
    """Where one model's layers are: ``layers`` of ``total`` on the GPU (``total`` counts the
    output layer, as llama.cpp does: block count + 1)."""

    backend: str
    """"CPU", or the GPU device(s) holding layers ("CUDA0", "Metal", "CUDA0+CUDA1")."""
    layers: int
    total: int
    requested: int | None = None
    """GPU layers asked for (None: automatic, -1: all)."""

    def label(self) -> str:
        """"CPU · 0/25 layers on GPU": one line for the app and the CLI."""
        return f"{self.backend} · {self.layers}/{self.total} layers on GPU"

    def to_dict(self) -> dict:
        return {**asdict(self), "label": self.label()}


def offloaded_layers(asked: int, n_layer: int, supported: bool, reported: tuple[int, int] | None = None) -> int:
    """Layers llama.cpp puts on the GPU for ``asked`` (-1 or more than there are: all):
    what it reported after loading, else min(asked, n_layer + 1); 0 without GPU offload."""
    if not supported:
        return 0
    if reported is not None:
        return reported[0]
    total = n_layer + 1
    return total if asked < 0 else min(asked, total)


def gpu_devices(devices: list[BackendDevice] | None = None) -> list[BackendDevice]:
    return [d for d in (lla.backend_devices() if devices is None else devices) if d.kind in GPU_KINDS]


def model_offload(requested: int | None, asked: int, n_layer: int, reported: tuple[int, int] | None) -> Offload:
    """The Offload of a model loaded with ``asked`` GPU layers (``requested``: as the user gave
    it; ``reported``: llama_adapter.reported_offload() right after the load)."""
    supported = lla.supports_gpu_offload()
    return _offload(requested, offloaded_layers(asked, n_layer, supported, reported), n_layer)


def planned_offload(requested: int | None, n_layer: int) -> Offload:
    """The Offload a model with ``n_layer`` blocks would get, without loading it
    (None: automatic, all layers when the build can offload, as the engine does)."""
    supported = lla.supports_gpu_offload()
    return _offload(requested, offloaded_layers(-1 if requested is None else requested, n_layer, supported), n_layer)


def _offload(requested: int | None, layers: int, n_layer: int) -> Offload:
    gpus = "+".join(d.name for d in gpu_devices()) if layers else ""
    return Offload(gpus or ("GPU" if layers else "CPU"), layers, n_layer + 1, requested)


def gpu_layers_asked(specs: Mapping[str, object]) -> dict[str, int | None]:
    """role -> the GPU layers each local model spec asks for; served models (no such setting:
    their server places them) and absent roles are left out."""
    return {role: spec.n_gpu_layers for role, spec in specs.items() if hasattr(spec, "n_gpu_layers")}


def offload_warning(requested: Mapping[str, int | None]) -> str | None:
    """One line when GPU layers were asked for (``what -> n``; None and 0 ask for none) on a
    build without GPU offload; None otherwise."""
    asked = {what: n for what, n in requested.items() if n is not None and n != 0}
    if not asked or lla.supports_gpu_offload():
        return None
    which = ", ".join(f"{what} {'all' if n < 0 else n}" for what, n in asked.items())
    return (f"GPU layers asked for ({which}) but this llama.cpp build has no GPU offload: the models run on "
            "the CPU (`specsearch info --system` shows the build; the README's GPU section says how to rebuild)")


@dataclass(frozen=True)
class SystemReport:
    """What this llama.cpp build runs on."""

    llama_cpp_python: str
    system_info: str
    gpu_offload: bool
    devices: tuple[BackendDevice, ...]

    def to_dict(self) -> dict:
        return {**asdict(self), "devices": [asdict(d) for d in self.devices]}


def system_report() -> SystemReport:
    return SystemReport(lla.bindings_version(), lla.system_info(), lla.supports_gpu_offload(),
                        tuple(lla.backend_devices()))
