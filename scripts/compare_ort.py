"""Native backend vs ONNX Runtime, side by side on the same graphs (run by compare-ort.sh).

For each model and form: `harness export --format onnx` writes our graph with its seeded
weights as an ONNX model (the same graph, node for node; onnx's checker checks it), this script
checks that ONNX Runtime's logits equal the native backend's (`harness infer`), then measures
ONNX Runtime (all graph optimizations, intra-op threads = the thread count) and the native
backend (`harness run` on a one-model scenario) one after the other, model by model, and prints
the ratio table. Results go to OUT/comparison.json and OUT/comparison.md.
"""

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort


def session(model_bytes, threads):
    so = ort.SessionOptions()
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    so.intra_op_num_threads = threads
    so.inter_op_num_threads = 1
    so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    return ort.InferenceSession(model_bytes, so, providers=["CPUExecutionProvider"])


def time_ort(sess, x, budget_s, min_runs):
    name = sess.get_inputs()[0].name
    for _ in range(5):
        sess.run(None, {name: x})
    samples, start = [], time.perf_counter()
    while len(samples) < min_runs or time.perf_counter() - start < budget_s:
        t0 = time.perf_counter()
        sess.run(None, {name: x})
        samples.append((time.perf_counter() - t0) * 1e3)
    return samples


def harness(args, *cmd):
    result = subprocess.run([args.harness, *cmd], capture_output=True, text=True)
    if result.returncode != 0:
        sys.exit(f"harness {' '.join(cmd)} failed:\n{result.stderr}")
    return result


def write_npy(path, array):
    np.save(path, array.astype(np.float32))


def export_onnx(args, model, form, work):
    """`harness export --format onnx` of one model and form: its folder and the model bytes."""
    folder = work / f"{model}-{form}"
    harness(args, "export", "--model", model, "--form", form, "--format", "onnx", "--out", str(folder))
    model_bytes = (folder / "model.onnx").read_bytes()
    onnx.checker.check_model(model_bytes, full_check=True)
    return folder, model_bytes


def write_comparison(out, machine, rows, lines):
    """OUT/comparison.json (the machine and every row) and OUT/comparison.md (`lines`), printed."""
    (out / "comparison.json").write_text(json.dumps({"machine": machine, "rows": rows}, indent=2))
    (out / "comparison.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


def native_cells(args, model, work, precisions=("fp32",)):
    """Measures the native backend on one model (every form, thread count and precision): the
    ok cells by (form, threads, precision)."""
    scenario = work / f"{model}.yaml"
    scenario.write_text(
        f"""name: native-{model}
models: [{model}]
forms: [{', '.join(args.forms)}]
backends: [native]
threads: [{', '.join(str(t) for t in args.threads)}]
precisions: [{', '.join(precisions)}]
batch: 1
input_size: 224
weights:
  seed: 0
warmup:
  runs: 5
  min_time_ms: 100
measurement:
  min_runs: {args.min_runs}
  max_runs: 100000
  min_time_ms: {int(args.budget_s * 1000)}
  max_time_ms: {int(args.budget_s * 1000)}
  target_ci: 0.001
cooldown_ms: 0
order: interleaved
seed: 0
"""
    )
    out = work / f"native-{model}"
    harness(args, "run", str(scenario), "--out", str(out))
    results = json.loads((out / "results.json").read_text())
    return {(c["form"], c["threads"], c["precision"]): c for c in results["cells"] if c["status"] == "ok"}


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--harness", required=True, help="path to the built harness binary")
    p.add_argument("--models", nargs="+", default=[f"mobileone-s{i}" for i in range(5)])
    p.add_argument("--forms", nargs="+", default=["reparameterized", "unfused"])
    p.add_argument("--threads", nargs="+", type=int, default=[1, 2])
    p.add_argument("--budget-s", type=float, default=2.0, help="measuring time per cell and engine")
    p.add_argument("--min-runs", type=int, default=10)
    p.add_argument("--out", type=Path, default=Path("results/native-vs-ort"))
    args = p.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    work = args.out / "work"
    work.mkdir(exist_ok=True)
    rng = np.random.default_rng(0)
    x = rng.uniform(-2, 2, size=(1, 3, 224, 224)).astype(np.float32)
    write_npy(work / "input.npy", x)
    rows = []
    for model in args.models:
        onnx_models = {}
        for form in args.forms:
            folder, onnx_models[form] = export_onnx(args, model, form, work)
            # Same graph, same weights, same input: the logits must agree.
            harness(args, "infer", "--model", model, "--form", form, "--backend", "native", "--input", str(work / "input.npy"), "--output", str(folder / "native.npy"))
            ours = np.load(folder / "native.npy")
            theirs = session(onnx_models[form], 1).run(None, {"input": x})[0]
            rel = float(np.linalg.norm(ours - theirs) / np.linalg.norm(theirs))
            print(f"{model} {form}: native vs onnxruntime logits, relative L2 {rel:.2e}", flush=True)
            if rel > 1e-4:
                sys.exit(f"{model} {form}: native and ONNX Runtime disagree (relative L2 {rel:.2e} > 1e-4)")
        ort_samples = {}
        for form in args.forms:
            for t in args.threads:
                ort_samples[(form, t)] = time_ort(session(onnx_models[form], t), x, args.budget_s, args.min_runs)
        native = native_cells(args, model, work)
        for form in args.forms:
            for t in args.threads:
                ort_ms = statistics.median(ort_samples[(form, t)])
                cell = native.get((form, t, "fp32"))
                native_ms = cell["median_ms"] if cell else float("nan")
                rows.append({"model": model, "form": form, "threads": t, "ort_ms": ort_ms, "native_ms": native_ms, "ratio": native_ms / ort_ms, "ort_runs": len(ort_samples[(form, t)]), "native_runs": cell["samples"] if cell else 0})
                r = rows[-1]
                print(f"{model:13} {form:16} t={t}  ort {ort_ms:8.3f} ms  native {native_ms:8.3f} ms  ratio {r['ratio']:.2f}", flush=True)
    machine = {"cpu": platform.processor() or platform.machine(), "cores": os.cpu_count(), "onnxruntime": ort.__version__, "python": platform.python_version()}
    lines = [f"Native vs ONNX Runtime {ort.__version__} (median ms, batch 1, 3x224x224; ratio = native / ORT, below 1 is faster)", "", "| model | form | threads | ORT | native | ratio |", "|---|---|---|---|---|---|"]
    lines += [f"| {r['model']} | {r['form']} | {r['threads']} | {r['ort_ms']:.2f} | {r['native_ms']:.2f} | {r['ratio']:.2f} |" for r in rows]
    write_comparison(args.out, machine, rows, lines)


if __name__ == "__main__":
    main()
