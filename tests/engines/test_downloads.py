"""Downloads: refused offline without a network call, progress and cancel through the tqdm adapter,
pinned revision and safetensors-only patterns, clear messages for gated and missing repos."""
from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import pytest

from studio.catalog import store
from studio.catalog.requests import DownloadModelRequest, HubInfoRequest
from studio.core.cancel import CancelToken
from studio.core.context import TaskContext
from studio.core.errors import Cancelled, ModelError
from studio.engines import downloads
from tests.helpers.offline import block_network
from tests.helpers.tiny_models import card, hub_snapshot

REPO = "org/tiny"


@pytest.fixture
def online(monkeypatch, tmp_path):
    """As if the studio ran without HF_HUB_OFFLINE, with a private HF cache."""
    import huggingface_hub.constants as consts

    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.setattr(consts, "HF_HUB_OFFLINE", False)
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hf"))
    return tmp_path / "hf"


def hub_card(**options):
    return card("tiny", "transformers", "clip", source=f"hub:{REPO}", **options)


def test_offline_refuses_before_any_network_call(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    attempts = block_network(monkeypatch)
    for request in (DownloadModelRequest(hub_card()), DownloadModelRequest(hub_card(), offline_env=True)):
        with pytest.raises(ModelError, match="HF_HUB_OFFLINE"):
            downloads.run_download(request, TaskContext(), None)
    with pytest.raises(ModelError, match="HF_HUB_OFFLINE"):
        downloads.run_hub_info(HubInfoRequest(REPO), TaskContext(), None)
    assert attempts == []


def test_progress_adapter_reports_bytes_and_cancels():
    seen, token = [], CancelToken()
    bar_cls = downloads.progress_class(seen.append, lambda: token.cancelled)
    files = bar_cls(total=2, unit="it")
    transfer = bar_cls(total=100, unit="B", desc="Downloading bytes")
    written = bar_cls(total=100, unit="B", initial=10, desc="Reconstructing")
    written.update(30)
    transfer.update(5)
    files.update(1)
    written.set_postfix_str("12 MB/s")  # any other tqdm method is accepted and ignored
    assert written.format_dict["n"] == 40 and seen == [10, 40, 40]
    token.cancel()
    with pytest.raises(Cancelled):
        written.update(1)


def fake_hub(monkeypatch, src: Path, cache: Path, *, gated=False, calls=None):
    """Replace HfApi().model_info and snapshot_download with fakes that behave like the hub's."""
    import huggingface_hub as hf

    names = sorted(p.relative_to(src).as_posix() for p in src.rglob("*") if p.is_file())
    siblings = [SimpleNamespace(rfilename=n, size=(src / n).stat().st_size) for n in names]
    calls = calls if calls is not None else []

    class Api:
        def model_info(self, repo_id, revision=None, files_metadata=False):
            calls.append(("model_info", repo_id, revision))
            return SimpleNamespace(siblings=siblings, gated="manual" if gated else False,
                                   library_name="transformers", pipeline_tag="zero-shot-image-classification",
                                   card_data=SimpleNamespace(license="mit"))

    def snapshot_download(repo_id, revision, allow_patterns, ignore_patterns, max_workers, tqdm_class):
        calls.append(("snapshot_download", repo_id, revision, allow_patterns, ignore_patterns))
        total = sum(s.size for s in siblings if store.wanted(s.rfilename, allow_patterns, ignore_patterns))
        bar = tqdm_class(total=total, unit="B")
        for _ in range(4):
            bar.update(total // 4)
        return str(hub_snapshot(cache, repo_id, src, revision))

    monkeypatch.setattr(hf, "HfApi", Api)
    monkeypatch.setattr(hf, "snapshot_download", snapshot_download)
    monkeypatch.setattr(hf, "get_token", lambda: None)
    return calls


@pytest.fixture
def repo_files(tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    (src / "config.json").write_text("{}")
    (src / "model.safetensors").write_bytes(b"\x02\x00\x00\x00\x00\x00\x00\x00{}" + b"\0" * 1000)
    return src


def test_download_pins_revision_skips_pickles_and_reports_progress(online, monkeypatch, repo_files, tmp_path):
    calls = fake_hub(monkeypatch, repo_files, online)
    progress = []
    ctx = TaskContext(on_progress=lambda f, t: progress.append((f, t)), min_interval=0)
    c = card("tiny", "transformers", "clip", source=f"hub:{REPO}")
    result = downloads.run_download(DownloadModelRequest(c), ctx, None)
    assert result.bytes_total == 1012 and Path(result.path).is_dir()
    kind, repo, revision, allow, ignore = calls[1]
    assert (kind, repo, revision, allow) == ("snapshot_download", REPO, "main", None)
    assert "*.bin" in ignore and "*.pth" in ignore
    assert progress[-1] == (1.0, "tiny downloaded")
    assert any("Downloading tiny:" in t for _, t in progress)
    assert store.status(c, tmp_path).state == store.INSTALLED
    calls = fake_hub(monkeypatch, repo_files, online)
    downloads.run_download(DownloadModelRequest(c, allow_pickle=True), TaskContext(), None)
    assert "*.bin" not in calls[1][4]


def test_cancel_stops_the_download(online, monkeypatch, repo_files):
    fake_hub(monkeypatch, repo_files, online)
    token = CancelToken()
    token.cancel()
    with pytest.raises(Cancelled):
        downloads.run_download(DownloadModelRequest(hub_card()), TaskContext(token), None)


def test_gated_repo_without_login_says_how_to_log_in(online, monkeypatch, repo_files):
    fake_hub(monkeypatch, repo_files, online, gated=True)
    with pytest.raises(ModelError) as err:
        downloads.run_download(DownloadModelRequest(hub_card()), TaskContext(), None)
    msg = err.value.user_message
    assert "gated" in msg and "https://huggingface.co/org/tiny" in msg
    assert "hf auth login" in msg and "huggingface-cli login" in msg and "HF_TOKEN" in msg


def test_hub_errors_become_sentences():
    import httpx2
    from huggingface_hub import errors

    response = httpx2.Response(404, request=httpx2.Request("GET", "https://huggingface.co/api/models/x"))
    gated = downloads._hub_error("X", "o/x", "main", errors.GatedRepoError("gated", response=response))
    assert "accept its conditions" in gated.user_message
    missing = downloads._hub_error("X", "o/x", "main", errors.RepositoryNotFoundError("nope", response=response))
    assert "was not found on Hugging Face" in missing.user_message
    rev = downloads._hub_error("X", "o/x", "v9", errors.RevisionNotFoundError("nope", response=response))
    assert "revision 'v9' does not exist" in rev.user_message
    net = downloads._hub_error("X", "o/x", "main", OSError("connection reset"))
    assert "Could not reach huggingface.co" in net.user_message and "resumes" in net.user_message


def test_non_hub_cards_have_nothing_to_download(online):
    with pytest.raises(ModelError, match="nothing to download"):
        downloads.run_download(DownloadModelRequest(card("l", "timm", "cnn", source="local:/x")),
                               TaskContext(), None)


def test_hub_lookup_for_the_add_dialog(online, monkeypatch, repo_files):
    fake_hub(monkeypatch, repo_files, online)
    info = downloads.run_hub_info(HubInfoRequest(REPO), TaskContext(), None)
    assert (info.library, info.task, info.license, info.size_bytes) == ("transformers", "clip", "mit", 1012)


def test_a_damaged_download_is_reported(online, monkeypatch, repo_files):
    (repo_files / "model.safetensors").write_bytes(b"\xff" * 20)
    fake_hub(monkeypatch, repo_files, online)
    with pytest.raises(ModelError, match="was downloaded but is damaged: model.safetensors is not a valid"):
        downloads.run_download(DownloadModelRequest(hub_card()), TaskContext(), None)
