"""Frozen requests and results of model management (status, download, verify, remove, budgets).

Requests carry everything their engine needs (the card itself, the assets folder, the policy), so a
CPU-lane engine never reads the GPU lane's manager. `LoadModelRequest` stays in studio.core.requests.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from studio.catalog.cards import ModelCard


@dataclass(frozen=True)
class ModelPolicy:
    """What the user decided about models: device, memory budgets (MB, 0 = automatic) and consents."""

    device: str = "auto"
    vram_budget_mb: int = 0
    ram_budget_mb: int = 0
    allow_pickle: frozenset[str] = frozenset()
    trust_remote_code: frozenset[str] = frozenset()
    offline: bool = True

    @classmethod
    def from_settings(cls, settings) -> "ModelPolicy":
        return cls(
            device=settings.get("device"),
            vram_budget_mb=int(settings.get("models.vram_budget_mb")),
            ram_budget_mb=int(settings.get("models.ram_budget_mb")),
            allow_pickle=frozenset(settings.get("models.allow_pickle")),
            trust_remote_code=frozenset(settings.get("models.trust_remote_code")),
            offline=bool(settings.get("offline")),
        )


# -- GPU lane: the manager's state -----------------------------------------------------------
@dataclass(frozen=True)
class LoadedInfo:
    model_id: str
    name: str
    device: str
    placement: str  # "device", "offload" (weights in RAM, one component at a time on the GPU), "cpu"
    memory_mb: float
    dtype: str = ""
    seconds: float = 0.0
    pinned: bool = False
    shared_with: tuple[str, ...] = ()


@dataclass(frozen=True)
class ModelsSnapshot:
    device: str
    label: str
    note: str = ""
    loaded: tuple[LoadedInfo, ...] = ()
    vram_used_mb: float = 0.0
    vram_budget_mb: float = 0.0
    vram_total_mb: float = 0.0
    ram_used_mb: float = 0.0
    ram_budget_mb: float = 0.0
    ram_total_mb: float = 0.0
    process_mb: float = 0.0  # what the device reports: allocated VRAM on CUDA, RSS otherwise


@dataclass(frozen=True)
class ModelsSnapshotRequest:
    """Ask the GPU lane what is loaded and how much memory it takes (also starts the engines)."""


@dataclass(frozen=True)
class ConfigureModelsRequest:
    """Apply a new policy (device, budgets, consents); models that no longer fit are unloaded."""

    policy: ModelPolicy


@dataclass(frozen=True)
class UnloadModelRequest:
    """Unload one model (or every model when `model_id` is empty) and free its memory."""

    model_id: str = ""


@dataclass(frozen=True)
class RemoveModelRequest:
    """Unload, then delete what the studio added for the card: its hub download and/or its user card."""

    card: ModelCard
    delete_download: bool = True
    user_catalog: str = ""  # the user's models.toml, when the card is to leave it


@dataclass(frozen=True)
class RemoveModelResult:
    model_id: str
    freed_bytes: int
    card_removed: bool
    snapshot: ModelsSnapshot


# -- CPU lane: files on disk and downloads ---------------------------------------------------
@dataclass(frozen=True)
class DiskStatusRequest:
    cards: tuple[ModelCard, ...]
    assets: str
    allow_pickle: frozenset[str] = frozenset()


@dataclass(frozen=True)
class VerifyModelRequest:
    card: ModelCard
    assets: str
    allow_pickle: bool = False


@dataclass(frozen=True)
class DownloadModelRequest:
    card: ModelCard
    allow_pickle: bool = False
    offline_env: bool = False  # HF_HUB_OFFLINE as the main thread saw it


@dataclass(frozen=True)
class DownloadResult:
    model_id: str
    path: str
    bytes_total: int
    seconds: float


@dataclass(frozen=True)
class HubInfoRequest:
    """Look a repo up on the hub (add-model dialog, only when the user is online)."""

    repo_id: str
    revision: str = "main"


@dataclass(frozen=True)
class HubInfo:
    repo_id: str
    library: str = ""
    task: str = ""
    gated: bool = False
    size_bytes: int = 0
    license: str = ""
    files: tuple[str, ...] = field(default_factory=tuple)
