"""The markdown report (docs/benchmarks.md) built from bench/results.json: machine info, then one table
row per headline figure with its goal, its same-run baseline and the ratio to it.

Figures are read, never typed in: a benchmark that did not run shows as "not run". Ratios are
studio / baseline for times (lower is better) and baseline / studio for rates, so a ratio above 1
always means "the studio is slower than its baseline".
Run alone: python -m bench.report [results.json] [out.md]
"""
from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

Row = tuple[str, str, str, str, str, str]  # figure, value, goal, baseline, ratio, status


def _g(d: dict, *path, default=None):
    for p in path:
        if not isinstance(d, dict) or p not in d:
            return default
        d = d[p]
    return d


def _n(x: Any, unit: str = "", digits: int = 2) -> str:
    if x is None:
        return "—"
    if isinstance(x, bool):
        return "yes" if x else "no"
    if isinstance(x, (int, float)):
        return f"{x:.{digits}f}{unit}" if isinstance(x, float) else f"{x}{unit}"
    return str(x)


def _met(ok: bool | None) -> str:
    return "—" if ok is None else ("met" if ok else "**NOT met**")


def _ratio(x: Any) -> str:
    return "—" if x is None else f"{x:.3f}"


def rows_startup(r: dict) -> list[Row]:
    fastest = f" (fastest {_n(r['shown_s_min'], ' s', 3)})" if "shown_s_min" in r else ""
    return [("window shown and painted, median", _n(r.get("shown_s"), " s", 3) + fastest, "<= 1.0 s",
             f"bare Qt window {_n(r.get('bare_qt_shown_s'), ' s', 3)}", _ratio(r.get("ratio_to_bare_qt")),
             _met(r.get("shown_s", 99) <= 1.0)),
            ("CPU time of the process until painted", _n(r.get("cpu_s_at_show"), " s", 3),
             "(wall time on an idle machine is close to this)", f"bare Qt window {_n(r.get('bare_qt_cpu_s_at_show'), ' s', 3)}",
             _ratio(r["cpu_s_at_show"] / r["bare_qt_cpu_s_at_show"]) if r.get("bare_qt_cpu_s_at_show") else "—",
             _met(r["cpu_s_at_show"] <= 1.0) if "cpu_s_at_show" in r else "—"),
            ("torch imported when shown", _n(r.get("torch_imported_at_show")), "no", "—", "—",
             _met(not r.get("torch_imported_at_show", True))),
            ("window shown, torch+diffusers preimported", _n(r.get("heavy_preimported_shown_s"), " s", 3),
             "(what eager imports would cost)", "—", "—", "—")]


def rows_manager(r: dict) -> list[Row]:
    return [("load tiny SD pipeline through the manager", _n(r.get("manager_median_s", 0) * 1000, " ms", 1),
             "ratio <= 1.05", f"direct from_pretrained {_n(r.get('direct_median_s', 0) * 1000, ' ms', 1)}",
             _ratio(r.get("ratio_manager_to_direct")), _met(r.get("goal_met")))]


def rows_label(r: dict) -> list[Row]:
    ratio = r.get("ratio_studio_to_direct")
    return [("CLIP (transformers): 1 image vs 1000 cached labels", _n(r.get("one_image_1000_cached_labels_ms"), " ms"),
             "<= 100 ms; ratio <= 1.05", f"direct CLIPModel {_n(r.get('direct_library_ms'), ' ms')}", _ratio(ratio),
             _met(r.get("goal_met") and ratio is not None and ratio <= 1.05)),
            ("CLIP batch labelling (folder of PNGs)", _n(r.get("batch_images_per_s"), " img/s", 1), "ratio <= 1.05",
             f"direct batched calls {_n(r.get('direct_batch_images_per_s'), ' img/s', 1)}",
             _ratio(r.get("batch_ratio_studio_to_direct")),
             _met(r.get("batch_ratio_studio_to_direct") is not None and r["batch_ratio_studio_to_direct"] <= 1.05))]


def rows_chat(r: dict) -> list[Row]:
    s, d = r.get("studio", {}), r.get("direct_generate", {})
    tps = r.get("ratio_tokens_per_s")
    time_ratio = round(1.0 / tps, 3) if tps else None
    extra = ""
    if s.get("tokens_per_s") and d.get("tokens_per_s"):  # the cost in absolute terms: what a big model would see
        extra = f" (+{1000.0 / s['tokens_per_s'] - 1000.0 / d['tokens_per_s']:.2f} ms per token)"
    return [("VLM answer, tokens/s (runtime + streamer)", _n(s.get("tokens_per_s"), " tok/s", 1) + extra,
             "time ratio <= 1.05", f"direct generate {_n(d.get('tokens_per_s'), ' tok/s', 1)}", _ratio(time_ratio),
             _met(time_ratio is not None and time_ratio <= 1.05)),
            ("VLM time to first token", _n(s.get("ttft_ms"), " ms", 1), "—",
             f"direct generate, 1 token {_n(d.get('ttft_ms'), ' ms', 1)}", _ratio(r.get("ratio_ttft")), "—")]


def rows_inspect(r: dict) -> list[Row]:
    out: list[Row] = [("worst redraw (layer/head/rollout/channel), median", _n(r.get("worst_redraw_median_ms"), " ms"),
                       "<= 50 ms", f"ready-made overlay + repaint {_n(r.get('baseline_set_overlay_ms'), ' ms')}",
                       _ratio(r.get("worst_redraw_ratio_to_baseline")), _met(r.get("goal_met")))]
    for key in ("starter_vit", "vit_s16"):
        d = r.get(key)
        if isinstance(d, dict):
            out.append((f"attention probe job, warm ({d.get('model')})", _n(d.get("probe_warm_s", 0) * 1000, " ms", 1),
                        "(hooks + eager attention: not an overhead figure)",
                        f"direct forward {_n(d.get('direct_forward_ms'), ' ms', 1)}",
                        _ratio(d.get("ratio_probe_job_to_direct_forward")), "—"))
    for key in ("starter_cnn", "resnet18"):
        d = r.get(key)
        if isinstance(d, dict):
            out.append((f"Grad-CAM job, warm ({d.get('model')})", _n(d.get("grad_cam_warm_s", 0) * 1000, " ms", 1),
                        "(forward + backward: not an overhead figure)",
                        f"direct forward {_n(d.get('direct_forward_ms'), ' ms', 1)}",
                        _ratio(d.get("ratio_grad_cam_job_to_direct_forward")), "—"))
    return out


def rows_overhead(r: dict) -> list[Row]:
    out: list[Row] = []
    for key, d in r.items():
        if isinstance(d, dict) and "ratio" in d:
            diff = (d.get("studio_ms") or 0) - (d.get("direct_ms") or 0)
            out.append((d.get("figure", key), _n(d.get("studio_ms"), " ms") + f" ({diff:+.2f} ms)",
                        f"ratio <= {d.get('goal_ratio', 1.05)}",
                        f"{d.get('baseline', 'direct')} {_n(d.get('direct_ms'), ' ms')}", _ratio(d.get("ratio")),
                        _met(d.get("goal_met"))))
        elif isinstance(d, dict) and "skipped" in d:
            out.append((d.get("figure", key), "skipped", "—", "—", "—", d["skipped"]))
    return out


def rows_paint(r: dict) -> list[Row]:
    return [(f"txt2img {r.get('size')}, {r.get('steps')} steps (runtime+engine+PNG+gallery)",
             _n(r.get("studio_median_s"), " s", 3), "ratio <= 1.05",
             f"direct pipeline call {_n(r.get('direct_median_s'), ' s', 3)}", _ratio(r.get("ratio_studio_to_direct")),
             _met(r.get("goal_met"))),
            ("time to first live preview", _n(r.get("time_to_first_preview_s"), " s", 3), "—", "—", "—", "—")]


def rows_tape(r: dict) -> list[Row]:
    tl, gen = r.get("timeline", {}), r.get("generation", {})
    base_key = next((k for k in tl if k.startswith("baseline_") and k.endswith("_ms")), None)
    ratio_key = next((k for k in tl if k.startswith("ratio_")), None)
    out: list[Row] = [(f"tape scrub, {tl.get('frames')} frames (warm)", _n(tl.get("scrub_fps"), " fps", 1), ">= 30 fps",
                       f"{(base_key or 'baseline').replace('_', ' ').replace(' ms', '')} "
                       f"{_n(tl.get(base_key) if base_key else None, ' ms')} per paint",
                       _ratio(tl.get(ratio_key) if ratio_key else None), _met(tl.get("goal_met"))),
                      ("tape scrub, first pass (thumbnails made)", _n(tl.get("first_pass_paint_ms_median"), " ms/paint"),
                       "<= 33 ms", "—", "—", _met(tl.get("first_pass_paint_ms_median", 99) <= 33.3))]
    if gen:
        ratio = gen.get("ratio_studio_to_direct")
        out.append((f"AnimateDiff clip {gen.get('frames')}x{gen.get('size')}, {gen.get('steps')} steps",
                    _n(gen.get("clip_s"), " s", 3), "ratio <= 1.05",
                    f"direct diffusers {_n(gen.get('direct_diffusers_s'), ' s', 3)}", _ratio(ratio),
                    _met(ratio is not None and ratio <= 1.05)))
    return out


def rows_responsiveness(r: dict) -> list[Row]:
    idle = r.get("idle", {})
    out: list[Row] = [("main-thread heartbeat gap, idle window", f"p99 {_n(idle.get('p99_ms'), ' ms', 1)}, "
                       f"max {_n(idle.get('max_ms'), ' ms', 1)}", "(baseline)", "—", "—", "—")]
    labels = {"load_cold": "first model load (GPU lane imports torch)", "load_warm": "model load, warm",
              "generate": "generating (paint panel, previews)"}
    for key, label in labels.items():
        d = r.get(key, {})
        if d.get("beats"):
            out.append((f"heartbeat gap: {label}", f"p99 {_n(d.get('p99_ms'), ' ms', 1)}, max {_n(d.get('max_ms'), ' ms', 1)}",
                        "p99 <= 33 ms, max <= 100 ms", f"idle p99 {_n(idle.get('p99_ms'), ' ms', 1)}",
                        f"p99 x{d.get('ratio_p99_to_idle')}, max x{d.get('ratio_max_to_idle')}", _met(d.get("goal_met"))))
    return out


def rows_memory(r: dict) -> list[Row]:
    out: list[Row] = []
    for key, d in r.items():
        if isinstance(d, dict) and "peak_rss_mb" in d:
            out.append((f"peak RSS, {key}: {d.get('job')}", _n(d.get("peak_rss_mb"), " MB", 0), "(no goal)",
                        f"libraries imported + model loaded {_n(d.get('loaded_rss_mb'), ' MB', 0)}",
                        _ratio(d.get("ratio_peak_to_loaded")), "—"))
        elif isinstance(d, dict) and "error" in d:
            out.append((f"peak RSS, {key}", "failed", "—", "—", "—", d["error"][:80]))
    return out


def rows_gpu(r: dict) -> list[Row]:
    if "skipped" in r:
        return [("SD 1.5 512x512, 50 steps, fp16: studio vs bare diffusers", "skipped", "ratio <= 1.02", "—", "—",
                 r["skipped"])]
    out: list[Row] = []
    base = r.get("bare_diffusers", {})
    for key, d in r.get("variants", {}).items():
        ratio = d.get("ratio_time_to_bare")
        goal, baseline, status = "(speed option)", f"bare diffusers {_n(base.get('it_per_s'), ' it/s')}", "—"
        if key == "studio":
            goal, status = "ratio <= 1.02", _met(ratio is not None and ratio <= 1.02)
        elif key.startswith("studio, "):  # compared with the bare call carrying the same options
            ref = r["variants"].get(key.replace("studio, ", "bare, "), {})
            goal, baseline, ratio = "ratio <= 1.02", f"bare, same options {_n(ref.get('it_per_s'), ' it/s')}", \
                d.get("ratio_time_to_same_options_bare")
            status = _met(ratio is not None and ratio <= 1.02)
        elif key == "studio_saving":
            goal = "(writes PNG + gallery row)"
        out.append((f"SD 1.5 {r.get('size')}, {r.get('steps')} steps fp16: {key}", _n(d.get("it_per_s"), " it/s"),
                    goal, baseline, _ratio(ratio), status))
    if "peak_vram_mb" in r:
        out.append(("peak VRAM (studio path)", _n(r.get("peak_vram_mb"), " MB", 0), "<= manager budget",
                    f"budget {_n(r.get('vram_budget_mb'), ' MB', 0)}", _ratio(r.get("ratio_peak_vram_to_budget")),
                    _met(r.get("peak_vram_mb", 0) <= r.get("vram_budget_mb", 0))))
        out.append(("peak VRAM vs the manager's preflight estimate", _n(r.get("peak_vram_mb"), " MB", 0),
                    "<= estimate (the preflight must not under-estimate)",
                    f"estimate {_n(r.get('preflight_estimate_mb'), ' MB', 0)}",
                    _ratio(r.get("ratio_peak_vram_to_preflight_estimate")),
                    _met(r.get("ratio_peak_vram_to_preflight_estimate", 9) <= 1.0)))
    return out


SECTIONS = [("startup", "Startup", rows_startup), ("responsiveness", "Main-thread responsiveness", rows_responsiveness),
            ("manager", "Model manager", rows_manager), ("paint", "Paint (diffusers pipeline call)", rows_paint),
            ("label", "Label (CLIP encode)", rows_label), ("chat", "Chat (transformers generate)", rows_chat),
            ("overhead", "Overhead: feature maps, open_clip", rows_overhead), ("inspect", "Inspect", rows_inspect),
            ("tape", "Tape", rows_tape), ("memory", "Peak resident memory per workspace job", rows_memory),
            ("gpu", "GPU: Stable Diffusion 1.5, full size, random weights", rows_gpu)]


def _notes(key: str, r: dict) -> list[str]:
    notes = []
    for k in ("model_note", "model"):
        if isinstance(r.get(k), str) and "MISSING" in r[k]:
            notes.append(r[k])
            break
    for n in r.get("model_notes", []) or []:
        notes.append(n)
    gen = r.get("generation")
    if isinstance(gen, dict) and "MISSING" in str(gen.get("model_note", "")):
        notes.append(gen["model_note"])
    if r.get("quick") and "skipped" not in r:
        notes.append("measured with --quick (few repetitions): rough")
    return notes


def markdown(data: dict) -> str:
    m = data.get("machine", {})
    lines = ["# Benchmarks", "",
             "Generated by `python -m bench` (`make bench`) from `bench/results.json`; do not edit by hand.",
             "Each figure is compared with a baseline measured in the same process and run (the bare library call, "
             "an empty Qt window, an idle main thread). Ratio > 1 means the studio is slower than its baseline.",
             "", "## Machine", "",
             f"- CPU: {m.get('cpu', m.get('processor', '?'))}, {m.get('cpu_count')} logical cores, "
             f"{m.get('ram_gb')} GB RAM",
             f"- Device: {m.get('device_name', m.get('device', '?'))}",
             f"- Python {m.get('python')}, torch {m.get('torch')}, diffusers {m.get('diffusers')}, "
             f"transformers {m.get('transformers')}, open_clip {m.get('open_clip_torch')}, timm {m.get('timm')}, "
             f"PySide6 {m.get('PySide6')}",
             f"- Platform: {m.get('platform')}",
             f"- Load average at start {m.get('load_average_at_start')}, at end {m.get('load_average_at_end')}"]
    last = data.get("last_run", {})
    if last:
        lines.append(f"- Last run: {', '.join(last.get('benchmarks', []))}{' (--quick)' if last.get('quick') else ''}, "
                     f"finished {last.get('finished_at')}"
                     + (f"; FAILED: {', '.join(last['failed'])}" if last.get("failed") else ""))
    load = m.get("load_average_at_start") or [0]
    cores = m.get("cpu_count") or 1
    if load and load[0] > 0.5 * cores:
        lines += ["", f"> **Shared machine.** The load average ({load[0]}) was above half the core count ({cores}) when "
                      "this run started: other processes (model trainings) competed for the CPU, so absolute times are "
                      "noisy and inflated. Ratios interleave the studio and its baseline to spread that load over both, "
                      "but they too carry noise of several percent."]
    lines += ["", "## Figures", "", "| benchmark | figure | value | goal | baseline (same run) | ratio | status |",
              "|---|---|---|---|---|---|---|"]
    notes: list[str] = []
    for key, title, fn in SECTIONS:
        r = data.get(key)
        if not isinstance(r, dict):
            lines.append(f"| {title} | — | not run | | | | |")
            continue
        try:
            rows = fn(r)
        except Exception as exc:  # noqa: BLE001 - a malformed record shows, it does not hide the others
            rows = [("(could not read the figures)", "—", "—", "—", "—", type(exc).__name__)]
        when = r.get("measured_at", "")
        host = r.get("host", "")
        if host and not host.startswith(str(m.get("cpu", m.get("processor", "?")))):
            when = f"{when}, on {host}"  # measured on another machine than the header's
        for i, row in enumerate(rows):
            head = f"{title}" + (f"<br><sub>{when}</sub>" if when else "") if i == 0 else ""
            lines.append("| " + " | ".join([head, *[c.replace("|", "/") for c in row]]) + " |")
        notes += [f"{title}: {n}" for n in _notes(key, r)]
    if notes:
        lines += ["", "## Notes on the models", ""] + [f"- {n}" for n in dict.fromkeys(notes)]
    resp = data.get("responsiveness", {})
    if resp.get("stall_samples"):
        lines += ["", "## Where the main thread stalled", "",
                  "A watchdog thread noted where the threads were when the heartbeat had been silent for over 100 ms:", ""]
        for smp in resp["stall_samples"][:5]:
            lane = {k: v for k, v in smp.get("threads", {}).items() if k != "MainThread"}
            lines.append(f"- gap {smp.get('gap_ms')} ms so far; GPU lane at: `{'; '.join(lane.values()) or '?'}`")
    return "\n".join(lines) + "\n"


def write_markdown(data: dict, path: Path) -> None:
    from studio.core.atomic import atomic_write_text

    atomic_write_text(path, markdown(data) + _appendix(path))


APPENDIX = "<!-- hand-written notes below this line are kept when the table is regenerated -->"


def _appendix(path: Path) -> str:
    """Keep what people wrote under the APPENDIX marker."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError:
        return "\n" + APPENDIX + "\n"
    i = text.find(APPENDIX)
    return "\n" + (text[i:] if i >= 0 else APPENDIX + "\n")


if __name__ == "__main__":
    import json

    src = Path(sys.argv[1]) if len(sys.argv) > 1 else Path(__file__).resolve().parent / "results.json"
    dst = Path(sys.argv[2]) if len(sys.argv) > 2 else Path(__file__).resolve().parents[1] / "docs" / "benchmarks.md"
    write_markdown(json.loads(src.read_text()), dst)
    print(f"wrote {dst}")
