//! `verify`: every partition's batches, offsets and indexes checked against the data.

use std::path::Path;

use topiclog::Store;
use topiclog::inspect::{self, VerifyReport};

use crate::output::{Failure, Out};

pub(crate) fn run(dir: &Path, topic: Option<&str>, out: &mut Out) -> Result<(), Failure> {
    let store = Store::open_read_only(dir)?;
    let topics = match topic {
        Some(name) => vec![store.topic(name)?],
        None => store
            .topics()
            .iter()
            .map(|name| store.topic(name))
            .collect::<Result<Vec<_>, _>>()?,
    };
    let mut reports = Vec::new();
    for topic in &topics {
        for partition in topic.partitions() {
            reports.push(inspect::verify_partition(partition.dir())?);
        }
    }
    let problems: usize = reports.iter().map(|r| r.problems.len()).sum();
    match print(topics.len(), &reports, problems, out) {
        Ok(()) if problems == 0 => Ok(()),
        // Problems found are exit 1 even if stdout was closed before they were all printed.
        Ok(()) | Err(Failure::StdoutClosed) if problems > 0 => Err(Failure::ProblemsFound),
        other => other,
    }
}

fn print(
    topics: usize,
    reports: &[VerifyReport],
    problems: usize,
    out: &mut Out,
) -> Result<(), Failure> {
    let (mut segments, mut batches, mut records, mut torn_tails) = (0usize, 0u64, 0u64, 0usize);
    for report in reports {
        segments += report.segments;
        batches += report.batches;
        records += report.records;
        for problem in &report.problems {
            out.line(format_args!("problem: {problem}"))?;
        }
        if let Some(tail) = &report.torn_tail {
            out.line(format_args!(
                "torn tail (not a failure: what a crash or a running writer leaves): {tail}"
            ))?;
            torn_tails += 1;
        }
    }
    out.line(format_args!(
        "{}: {topics} topic{}, {} partition{}, {segments} segment{}, {batches} batch{}, \
         {records} record{}; {problems} problem{}, {torn_tails} torn tail{}",
        if problems == 0 { "OK" } else { "FAILED" },
        plural(topics as u64),
        reports.len(),
        plural(reports.len() as u64),
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
