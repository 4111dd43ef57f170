"""docs/benchmarks.md from the newest full run in benchmarks/history/, plus a table of every run.

Everything above the line ``HAND_WRITTEN`` is regenerated; what follows it is kept as written.
"""

from __future__ import annotations

import json
from pathlib import Path

HAND_WRITTEN = "<!-- Hand-written notes below this line are kept when the tables above are regenerated. -->"
PAPER_XXS_MS = 0.53  # MicroExpNet paper, Table V: XXS on an Intel i7 CPU, per image


def load_runs(history: Path) -> list[dict]:
    runs = []
    for path in sorted(history.glob("*.json")):
        run = json.loads(path.read_text())
        run["file"] = path.name
        runs.append(run)
    return runs


def is_full(run: dict) -> bool:
    return not run.get("quick") and all(key in run for key in ("model", "official_tf", "detection", "http"))


def _family(row: dict) -> str:
    return row.get("family", "microexpnet")  # runs from before other families were benchmarked


def _model_rows(run: dict, size: str, family: str) -> list[dict]:
    return [row for row in run.get("model", []) if row["size"] == size and _family(row) == family]


def _model_row(run: dict, size: str, threads: int | None = None, family: str = "microexpnet") -> dict | None:
    rows = [row for row in _model_rows(run, size, family) if threads is None or row["threads"] == threads]
    return rows[0] if rows else None


def best_throughput_row(run: dict, size: str, family: str = "microexpnet") -> dict | None:
    rows = _model_rows(run, size, family)
    return max(rows, key=lambda r: r["engines"]["onnxruntime"]["throughput"]["256"]) if rows else None


def model_speed(run: dict, size: str, family: str) -> tuple[float, float] | None:
    """(batch-1 median ms at one thread, best batch-256 images/s) of one model in onnxruntime."""
    one, best = _model_row(run, size, 1, family), best_throughput_row(run, size, family)
    if one is None or best is None:
        return None
    ort = "onnxruntime"
    return one["engines"][ort]["latency_ms"]["median"], best["engines"][ort]["throughput"]["256"]


def family_targets(run: dict) -> list[str]:
    """Issue 9's speed bar for every other family's model, beside MicroExpNet at the same size."""
    out = []
    others = sorted({(row["size"], _family(row)) for row in run.get("model", []) if _family(row) != "microexpnet"})
    for size, family in others:
        ms, rate = model_speed(run, size, family) or (None, None)
        if ms is None or rate is None:
            continue
        base = model_speed(run, size, "microexpnet")
        beside = f" (MicroExpNet-{size}: {base[0]:.3f} ms, {base[1]:,.0f} images/s)" if base else ""
        out.append(
            f"| {family} {size}: batch 256 ≥ 1,000 images/s and batch-1 median < 1 ms | {rate:,.0f} images/s, "
            f"{ms:.3f} ms{beside} | {_check(rate >= 1000 and ms < 1)} |"
        )
    return out


def _point(run: dict, workload: str, size: str, connections: int) -> dict | None:
    for point in run.get("http", {}).get("points", []):
        if (point["workload"], point["size"], point["connections"]) == (workload, size, connections):
            return point
    return None


def _tf_run(run: dict, threads: int) -> dict | None:
    return next((r for r in run.get("official_tf", {}).get("runs", []) if r["threads"] == threads), None)


def headline(run: dict) -> str:
    """The figures the README quotes, as one paragraph of text."""
    lines = [f"[{run['label']}] {run['machine']['cpu']}, {run['machine']['cores']} cores"]
    latency_row = _model_row(run, "XXS", 1)
    if latency_row:
        ort = latency_row["engines"]["onnxruntime"]["latency_ms"]
        lines.append(f"XXS batch-1 latency (1 thread): median {ort['median']:.3f} ms, p99 {ort['p99']:.3f} ms")
    row = best_throughput_row(run, "XXS")
    if row:
        engines = row["engines"]
        ort = engines["onnxruntime"]["throughput"]["256"]
        text = f"XXS batch 256 ({row['threads']} threads): {ort:,.0f} images/s"
        if "torch" in engines:
            text += f" = {ort / engines['torch']['throughput']['256']:.1f}x PyTorch eager"
        if "peak" in run:
            text += f", {ort * row['flops_per_image'] / run['peak']['flops']:.0%} of the measured FLOP/s peak"
        lines.append(text)
    for workload, label in (
        ("a_yunet", "640x480 JPEG + YuNet"),
        ("a_haar", "640x480 JPEG + Haar"),
        ("b_crop", "48x48 crop"),
    ):
        point = _point(run, workload, "XXS", 8)
        if point:
            lines.append(
                f"HTTP {label}, XXS, 8 connections: {point['requests_per_s']:.0f} req/s, "
                f"p99 {point['latency_ms']['p99']:.0f} ms, {point['error_count']} errors"
            )
    return "\n".join(lines)


def fmt(value: float | None, spec: str = ".2f") -> str:
    return "—" if value is None else format(value, spec)


def _check(ok: bool) -> str:
    return "yes" if ok else "**no**"


def targets(run: dict) -> list[str]:
    out = ["| target | measured | met |", "|---|---|---|"]
    row = best_throughput_row(run, "XXS")
    if row:
        engines = row["engines"]
        ort = engines["onnxruntime"]["throughput"]["256"]
        torch = engines.get("torch", {}).get("throughput", {}).get("256")
        out.append(
            f"| XXS batch 256 ≥ 5,000 images/s | {ort:,.0f} images/s ({row['threads']} threads) | "
            f"{_check(ort >= 5000)} |"
        )
        if torch:
            ratio = ort / torch
            out.append(
                f"| XXS batch 256 ≥ 3× PyTorch eager (same threads) | {ratio:.1f}× ({torch:,.0f} images/s eager) | "
                f"{_check(ratio >= 3)} |"
            )
        if "peak" in run:
            fraction = ort * row["flops_per_image"] / run["peak"]["flops"]
            out.append(
                f"| XXS batch 256 share of the FLOP/s peak (stated) | {fraction:.0%} of "
                f"{run['peak']['flops'] / 1e9:.0f} GFLOP/s | — |"
            )
    one = _model_row(run, "XXS", 1)
    if one:
        median = one["engines"]["onnxruntime"]["latency_ms"]["median"]
        out.append(f"| XXS batch-1 median latency < 0.2 ms | {median:.3f} ms (1 thread) | {_check(median < 0.2)} |")
        tf = _tf_run(run, 1)
        if tf:
            out.append(
                f"| the authors' TensorFlow XXS, same run (stated) | {tf['latency_ms']['median']:.3f} ms: "
                f"onnxruntime is {tf['latency_ms']['median'] / median:.1f}× faster | — |"
            )
        out.append(
            f"| paper's Table V XXS figure, 0.53 ms on an i7 (stated) | onnxruntime is {PAPER_XXS_MS / median:.1f}× "
            "faster (other CPU) | — |"
        )
    a = _point(run, "a_yunet", "XXS", 8)
    if a:
        ok = a["requests_per_s"] >= 80 and a["latency_ms"]["p99"] < 150 and a["error_count"] == 0
        out.append(
            f"| (a) 640x480 JPEG + YuNet, 8 connections: ≥ 80 req/s, p99 < 150 ms, 0 errors | "
            f"{a['requests_per_s']:.0f} req/s, p99 {a['latency_ms']['p99']:.0f} ms, {a['error_count']} errors | "
            f"{_check(ok)} |"
        )
    haar = _point(run, "a_haar", "XXS", 8)
    if haar:
        out.append(
            f"| (a) the same with Haar, the default without YuNet (stated) | {haar['requests_per_s']:.1f} req/s, "
            f"p99 {haar['latency_ms']['p99']:.0f} ms, {haar['error_count']} errors | — |"
        )
    b = _point(run, "b_crop", "XXS", 8)
    if b:
        ok = b["requests_per_s"] >= 400 and b["error_count"] == 0
        out.append(
            f"| (b) 48x48 crop, detect=false, 8 connections: ≥ 400 req/s, 0 errors | {b['requests_per_s']:.0f} req/s, "
            f"{b['error_count']} errors | {_check(ok)} |"
        )
    for comparison in run.get("http", {}).get("in_process", []):
        if comparison["workload"] == "a_yunet" and comparison["size"] == "XXS":
            share = comparison["http_share_of_in_process"]
            out.append(
                f"| HTTP costs ≤ 25% of in-process throughput, (a) | HTTP {comparison['http_per_s']:.0f} vs in-process "
                f"{comparison['in_process_per_s']:.0f} req/s: costs {1 - share:.0%} | {_check(share >= 0.75)} |"
            )
    return out + family_targets(run)


def machine_section(run: dict) -> list[str]:
    m = run["machine"]
    libs = ", ".join(f"{name} {ver}" for name, ver in m["libraries"].items() if ver)
    load = m["other_load"]
    busy = "; ".join(f"{p['command'][:60]} ({p['cpu_percent']:.0f}% CPU)" for p in load["busy_processes"]) or "none"
    out = [
        f"- Run: `{run['file']}` ({run['label']}), {m['date']}, {run.get('duration_s', 0):.0f} s",
        f"- CPU: {m['cpu']}, {m['cores']} cores ({', '.join(m['cpu_flags'])}); Python {m['python']}; {m['platform']}",
        f"- Libraries: {libs}; load generator: {m['wrk'] or 'wrk not installed'}",
        f"- Other load when the run started: load average {load['loadavg_1m']:.2f}; busy processes: {busy}"
        + (f"; paused (SIGSTOP): {len(load['stopped_processes'])} processes" if load.get("stopped_processes") else ""),
        f"- Models: `{run['store']}`, "
        + ("trained" if run["trained_models"] else "randomly initialised (same architecture and cost)"),
    ]
    if "peak" in run:
        peak = run["peak"]
        others = ", ".join(f"{k.removesuffix('_flops')} {v / 1e9:.0f}" for k, v in peak.items() if k.endswith("_flops"))
        out.append(
            f"- FLOP/s peak (float32 4096² matrix product, all cores): {peak['flops'] / 1e9:.0f} GFLOP/s ({others})"
        )
    return out


def row_model_name(row: dict) -> str:
    """The model a benchmark row timed (rows from before other families name only the size)."""
    return row.get("model", f"microexpnet_{row['size'].lower()}")


def model_section(run: dict) -> list[str]:
    out = [
        "| model | threads | engine | batch-1 median ms | batch-1 p99 ms | img/s @1 | img/s @32 | img/s @256 | "
        "@256 vs eager | floor img/s @256 | share of peak |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    peak = run.get("peak", {}).get("flops")
    for row in run["model"]:
        engines = row["engines"]
        eager = engines.get("torch", {}).get("throughput", {}).get("256")
        floor = peak / row["flops_per_image"] if peak else None
        for name, engine in engines.items():
            tp = engine["throughput"]
            ratio = tp["256"] / eager if eager else None
            share = tp["256"] * row["flops_per_image"] / peak if peak else None
            out.append(
                f"| {row_model_name(row)} | {row['threads']} | {name} | {engine['latency_ms']['median']:.3f} | "
                f"{engine['latency_ms']['p99']:.3f} | {tp['1']:,.0f} | {tp['32']:,.0f} | {tp['256']:,.0f} | "
                f"{fmt(ratio, '.1f')}× | {fmt(floor, ',.0f')} | {fmt(share, '.0%')} |"
            )
    sizes = {row_model_name(row): row for row in run["model"]}
    out += [
        "",
        "| model | parameters | ONNX bytes | MFLOP per image |",
        "|---|---|---|---|",
        *(
            f"| {s} | {r['parameters']:,} | {r['file_bytes']:,} | {r['flops_per_image'] / 1e6:.2f} |"
            for s, r in sizes.items()
        ),
    ]
    return out


def levels_section(run: dict) -> list[str]:
    rows = run.get("optimisation_levels")
    if not rows:
        return []
    out = [
        "",
        "onnxruntime graph optimisation level (XXS, one thread; the service uses ORT_ENABLE_ALL):",
        "",
        "| level | batch-1 median ms | img/s @256 |",
        "|---|---|---|",
    ]
    out += [f"| {r['level']} | {r['latency_ms_median']:.3f} | {r['throughput_256']:,.0f} |" for r in rows]
    return out


def tf_section(run: dict) -> list[str]:
    tf = run.get("official_tf", {})
    if "skipped" in tf:
        return [f"Skipped: {tf['skipped']}."]
    out = [
        "| threads | engine | batch-1 median ms | batch-1 p99 ms | img/s @1 | img/s @32 | img/s @256 | "
        "onnxruntime XXS is |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for tf_run in tf.get("runs", []):
        ours = _model_row(run, "XXS", tf_run["threads"])
        ratio = None
        if ours:
            ratio = tf_run["latency_ms"]["median"] / ours["engines"]["onnxruntime"]["latency_ms"]["median"]
        tp = tf_run["throughput"]
        out.append(
            f"| {tf_run['threads']} | TensorFlow {tf_run['tensorflow']}, authors' XXS + CK weights | "
            f"{tf_run['latency_ms']['median']:.3f} | {tf_run['latency_ms']['p99']:.3f} | {tp['1']:,.0f} | "
            f"{tp['32']:,.0f} | {tp['256']:,.0f} | {fmt(ratio, '.1f')}× faster at batch 1 |"
        )
    ours = _model_row(run, "XXS", 1)
    if ours:
        median = ours["engines"]["onnxruntime"]["latency_ms"]["median"]
        out.append(
            f"| — | paper, Table V (Intel i7, their TF) | {PAPER_XXS_MS:.2f} | | | | | "
            f"{PAPER_XXS_MS / median:.1f}× faster |"
        )
    parity = [r["parity_max_abs_diff"] for r in tf.get("runs", [])]
    if parity:
        out += [
            "",
            f"The TensorFlow formulation reproduces the original TF1 graph's logits (`parity_ck.npz`) to "
            f"{max(parity):.1e} before it is timed.",
        ]
    return out


def detection_section(run: dict) -> list[str]:
    det = run["detection"]
    sets = det["rate_sets"]
    frames = list(det["detectors"][0]["ms"])
    header = "| detector | working size | " + " | ".join(f"ms @ {f}" for f in frames)
    header += " | " + " | ".join(f"found, {k} ({n} photos)" for k, n in sets.items()) + " | false detections |"
    out = [header, "|" + "---|" * (3 + len(frames) + len(sets))]
    for row in det["detectors"]:
        mark = " (default)" if row["default"] else ""
        rates = " | ".join(f"{r['rate']:.0%}" for r in row["rates"].values())
        false = sum(r["false_positives"] for r in row["rates"].values())
        ms = " | ".join(f"{row['ms'][f]:.1f}" for f in frames)
        out.append(f"| {row['detector']} | {row['max_side']}{mark} | {ms} | {rates} | {false} |")
    out += [
        "",
        f"Detection rates on {det['rate_frame']} photos. In-process pipeline on the 640x480 one-face JPEG (XXS, "
        "medians, ms):",
        "",
        "| detector | decode | detect | crop + resize | inference | total | detection's share |",
        "|---|---|---|---|---|---|---|",
    ]
    for row in det["pipeline"]:
        out.append(
            f"| {row['detector']} | {row['decode_ms']:.2f} | {row['detect_ms']:.2f} | {row['preprocess_ms']:.2f} | "
            f"{row['inference_ms']:.2f} | {row['total_ms']:.2f} | {row['detect_share']:.0%} |"
        )
    return out


def layout_section(run: dict) -> list[str]:
    rows = run.get("layouts")
    if not rows:
        return ["Not measured in this run."]
    out = [
        "| workers × onnxruntime threads | (a) YuNet req/s | (a) p99 ms | (b) crop req/s | (b) p99 ms |",
        "|---|---|---|---|---|",
    ]
    for row in rows:
        a, b = row["a_yunet"], row["b_crop"]
        out.append(
            f"| {row['workers']} × {row['ort_threads']} | {a['requests_per_s']:.0f} | {a['latency_ms']['p99']:.0f} | "
            f"{b['requests_per_s']:.0f} | {b['latency_ms']['p99']:.0f} |"
        )
    return out


def http_section(run: dict) -> list[str]:
    http = run["http"]
    out = [
        f"Server: `python -m service` with {http['workers']} worker(s) × {http['ort_threads']} onnxruntime thread(s), "
        "multipart uploads, keep-alive connections, `wrk -t1` on the same machine (it shares the cores).",
        "",
        "| request | model | connections | req/s | p50 ms | p95 ms | p99 ms | errors |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for p in http["points"]:
        lat = p["latency_ms"]
        out.append(
            f"| {http['workloads'][p['workload']]} | {p['size']} | {p['connections']} | {p['requests_per_s']:.1f} | "
            f"{lat['p50']:.1f} | {lat['p95']:.1f} | {lat['p99']:.1f} | {p['error_count']} |"
        )
    out += [
        "",
        "Same bytes through the service's own `analyse` (decode, detect, crop, classify) in as many processes as "
        "the server has workers, without HTTP:",
        "",
        "| request | model | in-process req/s | HTTP req/s (8 connections) | HTTP keeps |",
        "|---|---|---|---|---|",
    ]
    for c in http["in_process"]:
        out.append(
            f"| {http['workloads'][c['workload']]} | {c['size']} | {c['in_process_per_s']:.0f} | "
            f"{c['http_per_s']:.0f} | {c['http_share_of_in_process']:.0%} |"
        )
    return out


def int8_section(run: dict) -> list[str]:
    q = run.get("int8")
    if not q:
        return ["Not measured in this run."]
    if "skipped" in q:
        return [f"Skipped: {q['skipped']}."]
    out = [
        f"Static quantisation (QDQ, per-channel int8 weights, uint8 activations; Conv and Gemm only), calibrated on "
        f"{q['calibration_split']}, method chosen on val; accuracy on {q['test_split']} with the shared preprocessing.",
        "",
        "| size | calibration | test acc float32 | test acc int8 | drop (points) | batch-1 ms f32 / int8 | "
        "img/s @256 f32 / int8 | bytes f32 / int8 | publish? |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in q["sizes"]:
        if "skipped" in r:
            out.append(f"| {r['size']} | skipped: {r['skipped']} | | | | | | | |")
            continue
        f32, i8 = r["float32"], r["int8"]
        out.append(
            f"| {r['size']} | {r['calibration']} | {r['test_accuracy']['float32']:.2%} | "
            f"{r['test_accuracy']['int8']:.2%} | {r['drop_points']:.2f} | "
            f"{f32['latency_ms_median']:.3f} / {i8['latency_ms_median']:.3f} | "
            f"{f32['throughput_256']:,.0f} / {i8['throughput_256']:,.0f} | "
            f"{f32['file_bytes']:,} / {i8['file_bytes']:,} | "
            f"{'yes' if r['publishable'] else 'no'} |"
        )
    return out


def history_section(runs: list[dict]) -> list[str]:
    out = [
        "| run | label | quick | other load (1-min avg) | XXS b1 median ms | XXS img/s @256 | vs eager | "
        "(a) YuNet req/s, p99 ms | (b) crop req/s | errors |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for run in runs:
        one = _model_row(run, "XXS", 1)
        best = best_throughput_row(run, "XXS")
        b1 = one["engines"]["onnxruntime"]["latency_ms"]["median"] if one else None
        tp = best["engines"]["onnxruntime"]["throughput"]["256"] if best else None
        eager = best["engines"].get("torch", {}).get("throughput", {}).get("256") if best else None
        a, b = _point(run, "a_yunet", "XXS", 8), _point(run, "b_crop", "XXS", 8)
        errors = sum(p["error_count"] for p in run.get("http", {}).get("points", [])) if "http" in run else None
        a_text = f"{a['requests_per_s']:.0f}, {a['latency_ms']['p99']:.0f}" if a else "—"
        out.append(
            f"| {run['file'].split('-')[0]} | {run['label']} | {'yes' if run.get('quick') else 'no'} | "
            f"{run['machine']['other_load']['loadavg_1m']:.1f} | {fmt(b1, '.3f')} | {fmt(tp, ',.0f')} | "
            f"{fmt(tp / eager if tp and eager else None, '.1f')} | {a_text} | "
            f"{fmt(b['requests_per_s'] if b else None, '.0f')} | {fmt(errors, 'd')} |"
        )
    return out


def render(runs: list[dict]) -> str:
    full = [run for run in runs if is_full(run)]
    out = [
        "# Benchmarks",
        "",
        "Generated by `make bench` (`python -m benchmarks`) from `benchmarks/history/`; rerun it to check any figure.",
        "Every claim is a ratio measured within one run: the machine is shared and absolute times drift.",
        "Needs the `dev`, `train` and `bench` extras (`pip install -e '.[train,dev,bench]'`) and Debian's `wrk`",
        "(`apt-get install -y wrk`); the TensorFlow comparison is skipped with a note without `tensorflow-cpu`.",
        "",
    ]
    if not full:
        out.append("No full run yet.")
    else:
        run = full[-1]
        out += ["## Machine", "", *machine_section(run), ""]
        out += ["## Targets (issue 6)", "", *targets(run), ""]
        out += ["## Model only", "", *model_section(run), *levels_section(run), ""]
        out += ["## The authors' TensorFlow XXS and the paper", "", *tf_section(run), ""]
        out += ["## Face detection", "", *detection_section(run), ""]
        out += ["## Worker and thread layout", "", *layout_section(run), ""]
        out += ["## End-to-end HTTP", "", *http_section(run), ""]
        out += ["## int8 quantisation", "", *int8_section(run), ""]
    out += ["## History", "", "Every run kept in `benchmarks/history/` (quick runs are shorter and noisier).", ""]
    out += [*history_section(runs), ""]
    return "\n".join(out)


def write(history: Path, target: Path) -> None:
    kept = ""
    if target.exists():
        text = target.read_text()
        if HAND_WRITTEN in text:
            kept = text.split(HAND_WRITTEN, 1)[1]
    target.write_text(render(load_runs(history)) + "\n" + HAND_WRITTEN + kept)
