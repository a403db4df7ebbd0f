//! `verify`: everything a writable open checks, read-only and with the same code (registries,
//! group offsets, checkpoints, markers, durable data, producer snapshots), and every batch and
//! index entry of every partition checked against the data.

use std::path::Path;

use topiclog::inspect::{self, StoreVerifyReport};

use crate::output::{Failure, Out};

pub(crate) fn run(dir: &Path, topic: Option<&str>, out: &mut Out) -> Result<(), Failure> {
    if !dir.is_dir() {
        return Err(Failure::Usage(format!(
            "{}: no such store directory",
            dir.display()
        )));
    }
    let report = inspect::verify_store(dir, topic)?;
    let problems = report.all_problems().count();
    match print(&report, problems, out) {
        Ok(()) if problems == 0 => Ok(()),
        // Problems found are exit 1 even if stdout was closed before they were all printed.
        Ok(()) | Err(Failure::StdoutClosed) if problems > 0 => Err(Failure::ProblemsFound),
        other => other,
    }
}

fn print(report: &StoreVerifyReport, problems: usize, out: &mut Out) -> Result<(), Failure> {
    let (mut segments, mut batches, mut records, mut torn_tails) = (0usize, 0u64, 0u64, 0usize);
    for problem in &report.problems {
        out.line(format_args!("problem: {problem}"))?;
    }
    for repairable in &report.repairable {
        out.line(format_args!(
            "repairable (not a failure: an open repairs it): {repairable}"
        ))?;
    }
    for (_, partition) in &report.partitions {
        segments += partition.segments;
        batches += partition.batches;
        records += partition.records;
        for problem in &partition.problems {
            out.line(format_args!("problem: {problem}"))?;
        }
        if let Some(tail) = &partition.torn_tail {
            out.line(format_args!(
                "torn tail (not a failure: what a crash or a running writer leaves): {tail}"
            ))?;
            torn_tails += 1;
        }
    }
    let partitions = report.partitions.len();
    out.line(format_args!(
        "{}: {} topic{}, {partitions} partition{}, {segments} segment{}, {batches} batch{}, \
         {records} record{}; {problems} problem{}, {torn_tails} torn tail{}",
        if problems == 0 { "OK" } else { "FAILED" },
        report.topics,
        plural(report.topics as u64),
        plural(partitions as u64),
        plural(segments as u64),
        if batches == 1 { "" } else { "es" },
        plural(records),
        plural(problems as u64),
        plural(torn_tails as u64),
    ))
}

/// `"s"` unless `n` is 1.
fn plural(n: u64) -> &'static str {
    if n == 1 { "" } else { "s" }
}
