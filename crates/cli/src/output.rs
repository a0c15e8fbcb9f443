//! What a scan prints: clamscan-like lines or JSON lines per file, and the closing summary.

use std::io::Write;
use std::time::Duration;

use scan_core::{Outcome, Report, Tally, Verdict};

/// How a whole run went, for the exit code.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Summary {
    /// Files and objects tried, each counted once by its outcome.
    pub outcomes: Tally,
    /// Bytes read.
    pub bytes: u64,
    /// Stopped by Ctrl-C before the end.
    pub interrupted: bool,
}

impl Summary {
    /// Counts one file or object, and the bytes read of it.
    pub fn count(&mut self, outcome: Outcome, bytes: u64) {
        self.outcomes.add(outcome);
        self.bytes += bytes;
    }

    /// 130 when interrupted (as a shell reports Ctrl-C), else 1 when anything was infected,
    /// else 2 when anything was not fully examined or not read, else 0.
    pub fn exit_code(&self) -> u8 {
        if self.interrupted {
            130
        } else if self.outcomes.infected > 0 {
            1
        } else if self.outcomes.not_examined > 0 || self.outcomes.unread > 0 {
            2
        } else {
            0
        }
    }
}

pub(crate) fn print_report(
    out: &mut (dyn Write + Send),
    report: &Report,
    json: bool,
    quiet: bool,
) -> std::io::Result<()> {
    if json {
        let line = serde_json::to_string(report).map_err(std::io::Error::other)?;
        return writeln!(out, "{line}");
    }
    match report.verdict {
        Verdict::Clean if quiet => {}
        Verdict::Clean => writeln!(out, "{}: OK", report.name)?,
        _ => {
            for d in &report.detections {
                writeln!(out, "{}: {} FOUND", d.path, d.name)?;
            }
            let label = if report.verdict == Verdict::Error {
                "ERROR"
            } else {
                "NOT EXAMINED"
            };
            for p in &report.problems {
                writeln!(out, "{}: {label} {}", p.path, p.message)?;
            }
        }
    }
    Ok(())
}

pub(crate) fn print_input_error(
    out: &mut (dyn Write + Send),
    name: &str,
    error: &anyhow::Error,
    json: bool,
) -> std::io::Result<()> {
    if json {
        let line = serde_json::json!({ "name": name, "error": format!("{error:#}") });
        writeln!(out, "{line}")
    } else {
        writeln!(out, "{name}: ERROR {error:#}")
    }
}

pub(crate) fn print_summary(
    out: &mut (dyn Write + Send),
    summary: &Summary,
    elapsed: Duration,
) -> std::io::Result<()> {
    let mb = summary.bytes as f64 / 1e6;
    let secs = elapsed.as_secs_f64();
    writeln!(out, "\n----------- SCAN SUMMARY -----------")?;
    let counts = &summary.outcomes;
    writeln!(out, "Scanned files: {}", counts.total())?;
    writeln!(out, "Infected files: {}", counts.infected)?;
    writeln!(out, "Not fully examined: {}", counts.not_examined)?;
    writeln!(out, "Not read: {}", counts.unread)?;
    writeln!(out, "Data scanned: {mb:.2} MB")?;
    writeln!(out, "Time: {secs:.3} s ({:.1} MB/s)", mb / secs.max(1e-9))
}
