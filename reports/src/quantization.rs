//! The int8 study: what structural reparameterization does to post-training quantization.
//! Per model and form, the int8 error against float64, how unevenly the weight channels share
//! int8 and how wide the widest activation range is (why the error differs), and the int8
//! latency beside fp32 on the same engine.

use crate::results::{CellResult, CellStatus};
use crate::summary::ms;

pub const HEADER: [&str; 9] = [
    "model",
    "form",
    "threads",
    "int8 error vs f64",
    "codes from int8 reference",
    "fewest weight codes used",
    "widest activation range",
    "int8 ms / fp32 ms",
    "int8 / fp32",
];

/// The engine whose int8 cells carry the study (its quantization is the quantized
/// reference's, code for code).
const STUDIED: &str = "native";

/// One row per native int8 cell that verified and carries its layers.
pub fn rows(cells: &[CellResult]) -> Vec<[String; 9]> {
    let studied = cells.iter().filter(|c| {
        c.key.backend == STUDIED
            && c.key.precision == "int8"
            && c.status == CellStatus::Ok
            && !c.quantization.is_empty()
    });
    studied.map(|c| row(c, fp32_twin(cells, c))).collect()
}

/// The fp32 cell of the same engine, model, form, threads and input.
fn fp32_twin<'a>(cells: &'a [CellResult], int8: &CellResult) -> Option<&'a CellResult> {
    cells.iter().find(|c| {
        c.key.precision == "fp32"
            && c.status == CellStatus::Ok
            && (
                &c.key.model,
                &c.key.form,
                &c.key.backend,
                c.key.threads,
                c.key.batch,
            ) == (
                &int8.key.model,
                &int8.key.form,
                &int8.key.backend,
                int8.key.threads,
                int8.key.batch,
            )
            && (c.key.height, c.key.width) == (int8.key.height, int8.key.width)
    })
}

fn row(c: &CellResult, fp32: Option<&CellResult>) -> [String; 9] {
    let (spread, range) = widest(c);
    let median = |c: &CellResult| c.latency.as_ref().map(|l| l.median_ms);
    let (int8_ms, fp32_ms) = (median(c), fp32.and_then(median));
    let verification = c.verification.as_ref();
    [
        c.key.model.clone(),
        c.key.form.clone(),
        c.key.threads.to_string(),
        verification.map_or("-".into(), |v| format!("{:.1e}", v.relative_l2)),
        verification
            .and_then(|v| v.integer_codes_off)
            .map_or("-".into(), |off| off.to_string()),
        spread,
        range,
        format!(
            "{} / {}",
            int8_ms.map_or("-".into(), ms),
            fp32_ms.map_or("-".into(), ms)
        ),
        match (int8_ms, fp32_ms) {
            (Some(a), Some(b)) if b > 0.0 => format!("{:.2}", a / b),
            _ => "-".into(),
        },
    ]
}

/// The layer whose typical weight uses the fewest int8 codes (median channel RMS, of 127) and
/// the one with the widest output range, each as "value (layer)".
fn widest(c: &CellResult) -> (String, String) {
    let by_codes = c
        .quantization
        .iter()
        .min_by(|a, b| a.weight_rms_code.total_cmp(&b.weight_rms_code));
    let width = |l: &models::quantized::LayerQuant| l.output_range[1] - l.output_range[0];
    let by_range = c
        .quantization
        .iter()
        .max_by(|a, b| width(a).total_cmp(&width(b)));
    (
        by_codes.map_or("-".into(), |l| {
            format!("{:.1} of 127 ({})", l.weight_rms_code, l.name)
        }),
        by_range.map_or("-".into(), |l| {
            format!(
                "{:.3}..{:.3} ({})",
                l.output_range[0], l.output_range[1], l.name
            )
        }),
    )
}

/// For each model measured in both forms at int8: how the reparameterized form's int8 error
/// compares with the unfused one's.
pub fn findings(cells: &[CellResult]) -> Vec<String> {
    let rows = rows(cells);
    let error_of = |model: &str, form: &str| {
        rows.iter()
            .find(|r| r[0] == model && r[1] == form)
            .and_then(|r| r[3].parse::<f64>().ok())
    };
    let models: std::collections::BTreeSet<&String> = rows.iter().map(|r| &r[0]).collect();
    models
        .into_iter()
        .filter_map(|m| {
            let (unfused, fused) = (error_of(m, "unfused")?, error_of(m, "reparameterized")?);
            Some(format!(
                "{m} at int8: the reparameterized form's error is {:.1}x the unfused form's ({fused:.1e} against {unfused:.1e}, both quantized the same way: min/max ranges, per-channel weights)",
                fused / unfused
            ))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::results::{CellKey, LatencySummary, Verification};
    use models::quantized::LayerQuant;

    fn cell(form: &str, precision: &str, median: f64, error: f64, spread: f32) -> CellResult {
        let key = CellKey {
            model: "mobileone-s1".into(),
            form: form.into(),
            backend: "native".into(),
            precision: precision.into(),
            threads: 1,
            batch: 1,
            height: 224,
            width: 224,
        };
        let mut c = CellResult::unmeasured(key, Default::default());
        c.status = CellStatus::Ok;
        c.latency = Some(LatencySummary {
            samples: 10,
            median_ms: median,
            mean_ms: median,
            min_ms: median,
            max_ms: median,
            p10_ms: median,
            p90_ms: median,
            p99_ms: median,
            iqr_ms: 0.0,
            std_dev_ms: 0.0,
            ci95_ms: [median, median],
            ci95_relative: 0.0,
            outliers_mild: 0,
            outliers_severe: 0,
        });
        c.verification = Some(Verification {
            relative_l2: error,
            max_abs_diff: 0.0,
            tolerance: 0.3,
            integer_codes_off: (precision == "int8").then_some(0),
        });
        if precision == "int8" {
            let layer = |name: &str, spread: f32, high: f32| LayerQuant {
                name: name.into(),
                op: "conv2d".into(),
                weight_scales: [0.01, 0.01 * spread],
                weight_rms_code: 600.0 / spread,
                output_range: [0.0, high],
            };
            c.quantization = vec![layer("a", spread, 4.0), layer("b", 2.0, 9.0)];
        }
        c
    }

    #[test]
    fn each_int8_cell_is_a_row_beside_its_fp32_twin_and_the_forms_are_compared() {
        let cells = vec![
            cell("unfused", "fp32", 8.0, 1e-6, 1.0),
            cell("unfused", "int8", 4.0, 0.02, 30.0),
            cell("reparameterized", "fp32", 6.0, 1e-6, 1.0),
            cell("reparameterized", "int8", 2.4, 0.06, 300.0),
        ];
        let rows = rows(&cells);
        assert_eq!(rows.len(), 2);
        let fused = rows.iter().find(|r| r[1] == "reparameterized").unwrap();
        assert_eq!(fused[3], "6.0e-2");
        assert_eq!(fused[4], "0");
        assert_eq!(fused[5], "2.0 of 127 (a)");
        assert_eq!(fused[6], "0.000..9.000 (b)");
        assert_eq!(fused[8], "0.40");
        let findings = findings(&cells);
        assert_eq!(findings.len(), 1);
        assert!(findings[0].contains("3.0x the unfused"), "{}", findings[0]);
        // No int8 cell, or one without layers: no row.
        assert!(super::rows(&cells[..1]).is_empty());
    }
}
