//! The JSON line each scenario prints, and memory readings.

use serde_json::{Map, Value, json};

/// Peak resident set size of this process, MiB (`VmHWM`; what `getrusage` reports).
pub fn peak_rss_mb() -> f64 {
    status_kb("VmHWM:").unwrap_or(0.0) / 1024.0
}

/// Current resident set size of this process, MiB.
pub fn current_rss_mb() -> f64 {
    status_kb("VmRSS:").unwrap_or(0.0) / 1024.0
}

fn status_kb(field: &str) -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with(field))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

pub fn round_to(x: f64, digits: i32) -> f64 {
    let f = 10f64.powi(digits);
    (x * f).round() / f
}

/// Prints the scenario's JSON line: the common fields, then `extra`.
pub fn report(scenario: &str, n: usize, ops: usize, seconds: f64, runtime: &str, extra: Value) {
    let mut line = Map::new();
    line.insert("scenario".into(), scenario.into());
    line.insert("n".into(), n.into());
    line.insert("ops".into(), ops.into());
    line.insert("seconds".into(), json!(round_to(seconds, 6)));
    line.insert(
        "per_op_us".into(),
        json!(round_to(seconds / ops as f64 * 1e6, 3)),
    );
    line.insert("ops_per_s".into(), json!(round_to(ops as f64 / seconds, 1)));
    line.insert("peak_rss_mb".into(), json!(round_to(peak_rss_mb(), 1)));
    line.insert("runtime".into(), runtime.into());
    if let Value::Object(extra) = extra {
        line.extend(extra);
    }
    println!("{}", Value::Object(line));
}
