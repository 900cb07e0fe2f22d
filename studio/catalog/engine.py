"""CPU-lane engines of the catalog: what is on disk, and full verification. No torch, no network."""
from __future__ import annotations

from pathlib import Path

from studio.catalog import integrity, store
from studio.catalog.requests import DiskStatusRequest, VerifyModelRequest
from studio.core.context import TaskContext
from studio.core.errors import ModelError


def run_disk_status(request: DiskStatusRequest, ctx: TaskContext, models) -> tuple[store.DiskStatus, ...]:
    out = []
    assets = Path(request.assets)
    for i, card in enumerate(request.cards):
        ctx.check()
        try:
            out.append(store.status(card, assets, card.id in request.allow_pickle))
        except OSError as exc:
            out.append(store.DiskStatus(card.id, store.MISSING, detail=f"cannot read: {exc}"))
        ctx.progress((i + 1) / max(1, len(request.cards)), "Looking at model files")
    return tuple(out)


def run_verify(request: VerifyModelRequest, ctx: TaskContext, models) -> integrity.VerifyReport:
    card = request.card
    if card.source_kind == "builtin":
        return integrity.VerifyReport(card.id, True, 0, 0)
    st = store.status(card, Path(request.assets), request.allow_pickle)
    if not st.path or not Path(st.path).exists():
        raise ModelError(f"{card.name} has nothing on disk to verify ({st.detail}).")
    path = Path(st.path)
    expected = store.expected_files(card, path, request.allow_pickle) if card.is_hub else None
    ctx.progress(0.0, f"Verifying {card.name}…")
    return integrity.verify(card, path, expected, ctx.progress, ctx.check)
