"""Native backend vs OpenVINO at fp32, bf16 and fp16, side by side on the same graphs (run by
compare-openvino.sh).

For each model and form: `harness export --format onnx` writes our graph and seeded weights as
an ONNX model, and OpenVINO reads that file. OpenVINO's fp32
logits must equal the native backend's (`harness infer`); at bf16 and fp16 each engine's error
against the fp32 logits is printed, since the two round differently. Then OpenVINO (latency hint,
one stream, `INFERENCE_NUM_THREADS` = the thread count, `INFERENCE_PRECISION_HINT` f32, bf16 or
f16) and the native backend (`harness run` with those `precisions`, interleaved) are measured one
after the other, model by model, and the ratio table is printed. `--precisions fp32 bf16` where
the CPU has no fp16 arithmetic (native refuses fp16 there). Results go to OUT/comparison.json and
OUT/comparison.md.
"""

import argparse
import os
import platform
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import openvino as ov

from compare_ort import export_onnx, harness, native_cells, write_comparison, write_npy

OV_PRECISION = {"fp32": "f32", "bf16": "bf16", "fp16": "f16"}


def compile_ov(core, path, threads, precision):
    config = {
        "PERFORMANCE_HINT": "LATENCY",
        "NUM_STREAMS": "1",
        "INFERENCE_NUM_THREADS": str(threads),
        "INFERENCE_PRECISION_HINT": OV_PRECISION[precision],
    }
    return core.compile_model(core.read_model(str(path)), "CPU", config)


def time_ov(compiled, x, budget_s, min_runs):
    request = compiled.create_infer_request()
    for _ in range(5):
        request.infer({0: x})
    samples, start = [], time.perf_counter()
    while len(samples) < min_runs or time.perf_counter() - start < budget_s:
        t0 = time.perf_counter()
        request.infer({0: x})
        samples.append((time.perf_counter() - t0) * 1e3)
    return samples


def logits(compiled, x):
    return next(iter(compiled.create_infer_request().infer({0: x}).values()))


def rel_l2(a, b):
    return float(np.linalg.norm(a - b) / np.linalg.norm(b))


def check(args, core, model, form, folder, work, x):
    """OpenVINO's fp32 logits equal native's; each engine's error at each 16-bit precision."""
    native = {}
    for precision in args.precisions:
        out = folder / f"native-{precision}.npy"
        harness(args, "infer", "--model", model, "--form", form, "--backend", "native", "--precision", precision, "--input", str(work / "input.npy"), "--output", str(out))
        native[precision] = np.load(out)
    ov32 = logits(compile_ov(core, folder / "model.onnx", 1, "fp32"), x)
    rel = rel_l2(native["fp32"], ov32)
    if rel > 1e-4:
        sys.exit(f"{model} {form}: native and OpenVINO disagree at fp32 (relative L2 {rel:.2e} > 1e-4)")
    errors = {}
    for precision in args.precisions[1:]:
        ov16 = logits(compile_ov(core, folder / "model.onnx", 1, precision), x)
        errors[precision] = {"native": rel_l2(native[precision], ov32), "openvino": rel_l2(ov16, ov32)}
    said = ", ".join(f"{p}: native {e['native']:.1e}, OpenVINO {e['openvino']:.1e}" for p, e in errors.items())
    print(f"{model} {form}: fp32 logits agree ({rel:.1e}); error against fp32 at {said}", flush=True)
    return errors


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--harness", required=True, help="path to the built harness binary")
    p.add_argument("--models", nargs="+", default=[f"mobileone-s{i}" for i in range(5)])
    p.add_argument("--forms", nargs="+", default=["reparameterized"])
    p.add_argument("--threads", nargs="+", type=int, default=[1, 2])
    p.add_argument("--budget-s", type=float, default=2.0, help="measuring time per cell and engine")
    p.add_argument("--min-runs", type=int, default=10)
    p.add_argument("--precisions", nargs="+", default=list(OV_PRECISION), choices=list(OV_PRECISION), help="fp32 first")
    p.add_argument("--out", type=Path, default=Path("results/native-vs-openvino"))
    args = p.parse_args()
    if args.precisions[0] != "fp32":
        sys.exit("--precisions must start with fp32 (the 16-bit errors are measured against it)")
    work = args.out / "work"
    work.mkdir(parents=True, exist_ok=True)
    x = np.random.default_rng(0).uniform(-2, 2, size=(1, 3, 224, 224)).astype(np.float32)
    write_npy(work / "input.npy", x)
    core = ov.Core()
    capabilities = core.get_property("CPU", "OPTIMIZATION_CAPABILITIES")
    for precision in args.precisions:
        if precision.upper() not in capabilities:
            sys.exit(f"OpenVINO's CPU plugin has no {precision} here (it has {', '.join(capabilities)})")
    rows = []
    for model in args.models:
        errors = {}
        for form in args.forms:
            folder, _ = export_onnx(args, model, form, work)
            errors[form] = check(args, core, model, form, folder, work, x)
        ov_samples = {}
        for form in args.forms:
            for t in args.threads:
                for precision in args.precisions:
                    compiled = compile_ov(core, work / f"{model}-{form}" / "model.onnx", t, precision)
                    ov_samples[(form, t, precision)] = time_ov(compiled, x, args.budget_s, args.min_runs)
        native = native_cells(args, model, work, tuple(args.precisions))
        for form in args.forms:
            for t in args.threads:
                row = {"model": model, "form": form, "threads": t}
                for precision in args.precisions:
                    cell = native.get((form, t, precision))
                    row[f"ov_{precision}_ms"] = statistics.median(ov_samples[(form, t, precision)])
                    row[f"native_{precision}_ms"] = cell["median_ms"] if cell else float("nan")
                    row[f"ratio_{precision}"] = row[f"native_{precision}_ms"] / row[f"ov_{precision}_ms"]
                    row[f"native_{precision}_plan"] = cell["plan"].splitlines()[0] if cell else ""
                for precision, e in errors[form].items():
                    row[f"{precision}_error_native"] = e["native"]
                    row[f"{precision}_error_openvino"] = e["openvino"]
                rows.append(row)
                said = "  ".join(f"{p}: OV {row[f'ov_{p}_ms']:7.2f} native {row[f'native_{p}_ms']:7.2f} ({row[f'ratio_{p}']:.2f})" for p in args.precisions)
                print(f"{model:13} {form:16} t={t}  {said}", flush=True)
    machine = {"cpu": platform.processor() or platform.machine(), "cores": os.cpu_count(), "openvino": ov.__version__, "python": platform.python_version()}
    lines = table(ov.__version__, args.precisions, rows)
    write_comparison(args.out, machine, rows, lines)


def table(version, precisions, rows):
    """The Markdown table: per precision OpenVINO's and native's medians and their ratio, then
    each 16-bit precision's error of both engines."""
    reduced = precisions[1:]
    head = ["model", "form", "threads"]
    for p in precisions:
        head += [f"OV {p}", f"native {p}", "ratio"]
    head += [f"{p} error OV / native" for p in reduced]
    lines = [f"Native vs OpenVINO {version} (median ms, batch 1, 3x224x224; ratio = native / OpenVINO at the same precision, below 1 is faster; error = relative L2 of the logits against fp32)", "", "| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in rows:
        cells = [r["model"], r["form"], str(r["threads"])]
        for p in precisions:
            cells += [f"{r[f'ov_{p}_ms']:.2f}", f"{r[f'native_{p}_ms']:.2f}", f"{r[f'ratio_{p}']:.2f}"]
        cells += [f"{r[f'{p}_error_openvino']:.1e} / {r[f'{p}_error_native']:.1e}" for p in reduced]
        lines.append("| " + " | ".join(cells) + " |")
    return lines


if __name__ == "__main__":
    main()
