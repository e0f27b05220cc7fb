"""Native int8 against ONNX Runtime's and OpenVINO's own post-training int8, side by side (run by
compare-int8.sh).

Each engine quantizes the same model with its own quantizer on the same calibration inputs:
N seeded inputs (uniform in [-2, 2], numpy's default_rng(1000 + i)), written as .npy files for
`harness quantize --calibration` (native: min/max, per-channel symmetric int8 weights, uint8
activations, batch norms folded; saved with --save), and fed to ONNX Runtime's
`quantize_static` (static QDQ, per-channel int8 weights, uint8 activations, MinMax) and to
NNCF's `nncf.quantize` (OpenVINO's post-training quantizer, MIXED preset: symmetric weights,
asymmetric activations; its other defaults, fast bias correction included) on the fp32 ONNX
export of the same graph and weights (`harness export --format onnx`).

Error: the relative L2 of each int8 model's logits against the float64 reference (`harness
infer --backend reference`) on a held-out input; native's int8 logits come from the saved model
(`harness infer --precision int8 --quantized`). A model off by more than 0.3 (the suite's int8
tolerance) stops the script before anything is timed.

Latency: ONNX Runtime (all graph optimizations, intra-op threads = the thread count) and
OpenVINO (latency hint, one stream, INFERENCE_NUM_THREADS = the thread count, precision hint
f32 so only what NNCF quantized runs int8) on their own int8 models, then native (`harness
run` at int8, whose cells quantize on seeded inputs of their own: the same kernels and the
same work), one engine after the other, model by model. Results go to OUT/comparison.json and
OUT/comparison.md.
"""

import argparse
import os
import platform
import statistics
import sys
from pathlib import Path

import numpy as np
import onnxruntime as ort
import openvino as ov
from onnxruntime.quantization import (
    CalibrationDataReader,
    CalibrationMethod,
    QuantFormat,
    QuantType,
    quantize_static,
)

from compare_openvino import compile_ov, logits, rel_l2, time_ov
from compare_ort import export_onnx, harness, native_cells, session, time_ort, write_comparison, write_npy

# The suite's tolerance for an int8 cell against float64 (backends::reduced_precision_tolerance).
INT8_TOLERANCE = 0.3


class Arrays(CalibrationDataReader):
    """ONNX Runtime's calibration reader over a list of inputs."""

    def __init__(self, arrays):
        self.feeds = iter([{"input": a} for a in arrays])

    def get_next(self):
        return next(self.feeds, None)


def calibration(work, count):
    """The calibration inputs, and the folder of .npy files `harness quantize` reads."""
    folder = work / "calibration"
    folder.mkdir(parents=True, exist_ok=True)
    arrays = []
    for i in range(count):
        a = np.random.default_rng(1000 + i).uniform(-2, 2, size=(1, 3, 224, 224)).astype(np.float32)
        write_npy(folder / f"input-{i:03}.npy", a)
        arrays.append(a)
    return folder, arrays


def quantize_all(args, core, model, form, work, calib_dir, arrays):
    """Each engine's int8 model of one model and form and its error against float64:
    (ONNX Runtime session bytes, OpenVINO model, errors by engine)."""
    folder, _ = export_onnx(args, model, form, work)
    held_out = str(work / "input.npy")
    harness(args, "infer", "--model", model, "--form", form, "--backend", "reference", "--input", held_out, "--output", str(folder / "reference.npy"))
    reference = np.load(folder / "reference.npy")
    saved = folder / "native.int8.safetensors"
    harness(args, "quantize", "--model", model, "--forms", form, "--calibration", str(calib_dir), "--held-out", "0", "--save", str(saved))
    harness(args, "infer", "--model", model, "--form", form, "--backend", "native", "--precision", "int8", "--quantized", str(saved), "--input", held_out, "--output", str(folder / "native-int8.npy"))
    ort_path = folder / "ort-int8.onnx"
    quantize_static(str(folder / "model.onnx"), str(ort_path), Arrays(arrays), quant_format=QuantFormat.QDQ, per_channel=True, activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8, calibrate_method=CalibrationMethod.MinMax)
    ort_bytes = ort_path.read_bytes()
    import nncf

    nncf_model = nncf.quantize(core.read_model(str(folder / "model.onnx")), nncf.Dataset(arrays), preset=nncf.QuantizationPreset.MIXED, subset_size=len(arrays))
    x = np.load(held_out)
    errors = {
        "native": rel_l2(np.load(folder / "native-int8.npy"), reference),
        "ort": rel_l2(session(ort_bytes, 1).run(None, {"input": x})[0], reference),
        "openvino": rel_l2(logits(compile_int8(core, nncf_model, 1), x), reference),
    }
    print(f"{model} {form}: int8 error against float64: " + ", ".join(f"{k} {v:.1e}" for k, v in errors.items()), flush=True)
    bad = {k: v for k, v in errors.items() if not v < INT8_TOLERANCE}
    if bad:
        sys.exit(f"{model} {form}: int8 logits off by more than {INT8_TOLERANCE} against float64: {bad}")
    return ort_bytes, nncf_model, errors


def compile_int8(core, model, threads):
    config = {"PERFORMANCE_HINT": "LATENCY", "NUM_STREAMS": "1", "INFERENCE_NUM_THREADS": str(threads), "INFERENCE_PRECISION_HINT": "f32"}
    return core.compile_model(model, "CPU", config)


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--harness", required=True, help="path to the built harness binary")
    p.add_argument("--models", nargs="+", default=[f"mobileone-s{i}" for i in range(5)])
    p.add_argument("--forms", nargs="+", default=["reparameterized"])
    p.add_argument("--threads", nargs="+", type=int, default=[1, 2])
    p.add_argument("--budget-s", type=float, default=2.0, help="measuring time per cell and engine")
    p.add_argument("--min-runs", type=int, default=10)
    p.add_argument("--calibration-inputs", type=int, default=8)
    p.add_argument("--out", type=Path, default=Path("results/int8-vs-peers"))
    args = p.parse_args()
    work = args.out / "work"
    work.mkdir(parents=True, exist_ok=True)
    x = np.random.default_rng(0).uniform(-2, 2, size=(1, 3, 224, 224)).astype(np.float32)
    write_npy(work / "input.npy", x)
    calib_dir, arrays = calibration(work, args.calibration_inputs)
    core = ov.Core()
    if "INT8" not in core.get_property("CPU", "OPTIMIZATION_CAPABILITIES"):
        sys.exit("OpenVINO's CPU plugin has no INT8 here")
    rows = []
    for model in args.models:
        quantized = {form: quantize_all(args, core, model, form, work, calib_dir, arrays) for form in args.forms}
        samples = {}
        for form, (ort_bytes, nncf_model, _) in quantized.items():
            for t in args.threads:
                samples[(form, t, "ort")] = time_ort(session(ort_bytes, t), x, args.budget_s, args.min_runs)
                samples[(form, t, "openvino")] = time_ov(compile_int8(core, nncf_model, t), x, args.budget_s, args.min_runs)
        native = native_cells(args, model, work, ("int8",))
        for form in args.forms:
            for t in args.threads:
                cell = native.get((form, t, "int8"))
                row = {"model": model, "form": form, "threads": t, "native_ms": cell["median_ms"] if cell else float("nan")}
                for engine in ("ort", "openvino"):
                    row[f"{engine}_ms"] = statistics.median(samples[(form, t, engine)])
                    row[f"ratio_{engine}"] = row["native_ms"] / row[f"{engine}_ms"]
                row.update({f"error_{k}": v for k, v in quantized[form][2].items()})
                rows.append(row)
                print(f"{model:13} {form:16} t={t}  native {row['native_ms']:7.3f}  ORT {row['ort_ms']:7.3f} ({row['ratio_ort']:.2f})  OpenVINO+NNCF {row['openvino_ms']:7.3f} ({row['ratio_openvino']:.2f})", flush=True)
    import nncf

    machine = {"cpu": platform.processor() or platform.machine(), "cores": os.cpu_count(), "onnxruntime": ort.__version__, "openvino": ov.__version__, "nncf": nncf.__version__, "python": platform.python_version(), "calibration_inputs": args.calibration_inputs}
    lines = [
        f"Native int8 vs ONNX Runtime {ort.__version__} (quantize_static) and OpenVINO {ov.__version__.split('-')[0]} (NNCF {nncf.__version__}), each quantized by its own tool on the same {args.calibration_inputs} calibration inputs (median ms, batch 1, 3x224x224; ratio = native / peer, below 1 is faster; error = relative L2 of the logits against float64 on a held-out input)",
        "",
        "| model | form | threads | native int8 | ORT int8 | OpenVINO int8 (NNCF) | native / ORT | native / OpenVINO | error native / ORT / OpenVINO |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    lines += [f"| {r['model']} | {r['form']} | {r['threads']} | {r['native_ms']:.3f} | {r['ort_ms']:.3f} | {r['openvino_ms']:.3f} | {r['ratio_ort']:.2f} | {r['ratio_openvino']:.2f} | {r['error_native']:.1e} / {r['error_ort']:.1e} / {r['error_openvino']:.1e} |" for r in rows]
    write_comparison(args.out, machine, rows, lines)


if __name__ == "__main__":
    main()
