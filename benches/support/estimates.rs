//! Reading back what criterion measured in this run, so a bench can print
//! (and write as JSON) a summary of its medians.

use std::path::{Path, PathBuf};
use std::time::SystemTime;

/// `<target>/criterion`, where criterion writes its estimates: the bench
/// binary lives in `<target>/<profile>/deps/`. `CRITERION_HOME` wins, as in
/// criterion itself.
pub fn criterion_dir() -> PathBuf {
    if let Some(home) = std::env::var_os("CRITERION_HOME") {
        return PathBuf::from(home);
    }
    std::env::current_exe()
        .ok()
        .and_then(|exe| Some(exe.parent()?.parent()?.parent()?.join("criterion")))
        .unwrap_or_else(|| PathBuf::from("target/criterion"))
}

/// The median of one benchmark in nanoseconds per iteration, if this run
/// measured it (estimates older than `since` are from an earlier run).
pub fn median_ns(dir: &Path, id: &str, since: SystemTime) -> Option<f64> {
    let path = dir.join(id).join("new/estimates.json");
    let fresh = std::fs::metadata(&path).ok()?.modified().ok()? >= since;
    if !fresh {
        return None;
    }
    let json: serde_json::Value = serde_json::from_slice(&std::fs::read(&path).ok()?).ok()?;
    json["median"]["point_estimate"].as_f64()
}
