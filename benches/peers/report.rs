//! Samples per row and column, medians and ranges, ratios, targets, and the markdown table.

use std::collections::HashMap;
use std::fmt::Write as _;

/// A column of the table: a peer, or the format floor.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Col {
    Raw,
    Commitlog,
    Okaywal,
    Topiclog,
    Floor,
}

/// What a row's numbers are. Samples are stored in base units: per second, nanoseconds, bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unit {
    /// Millions of records per second (higher is better).
    MPerSec,
    /// Thousands of records per second (higher is better).
    KPerSec,
    /// Megabytes (10^6) per second (higher is better).
    MBPerSec,
    /// Time per operation (lower is better).
    Time,
    /// Three latency percentiles (lower is better).
    Latency,
    /// Mebibytes (lower is better).
    MiB,
}

impl Unit {
    fn higher_is_better(self) -> bool {
        matches!(self, Unit::MPerSec | Unit::KPerSec | Unit::MBPerSec)
    }

    fn label(self) -> &'static str {
        match self {
            Unit::MPerSec => "M rec/s ↑",
            Unit::KPerSec => "k rec/s ↑",
            Unit::MBPerSec => "MB/s ↑",
            Unit::Time => "per read ↓",
            Unit::Latency => "p99 / p99.9 / p99.99 ↓",
            Unit::MiB => "MiB ↓",
        }
    }

    fn show(self, v: f64) -> String {
        match self {
            Unit::MPerSec => sig(v / 1e6),
            Unit::KPerSec => sig(v / 1e3),
            Unit::MBPerSec => sig(v / 1e6),
            Unit::Time | Unit::Latency => nanos(v),
            Unit::MiB => sig(v / f64::from(1 << 20)),
        }
    }
}

/// Three significant digits, at most one decimal above 100.
fn sig(v: f64) -> String {
    if v >= 100.0 {
        format!("{v:.0}")
    } else if v >= 10.0 {
        format!("{v:.1}")
    } else {
        format!("{v:.2}")
    }
}

fn nanos(ns: f64) -> String {
    if ns >= 1e6 {
        format!("{} ms", sig(ns / 1e6))
    } else if ns >= 1e3 {
        format!("{} µs", sig(ns / 1e3))
    } else {
        format!("{} ns", sig(ns))
    }
}

/// A target of issue 14 for topiclog's cell of a row, checked against the medians.
#[derive(Debug, Clone)]
pub enum Target {
    /// topiclog ÷ column at least (throughput) or at most (time, memory) this factor.
    Vs(Col, f64),
    /// topiclog at most this many base units (per percentile for latency rows).
    Max(Vec<f64>),
    /// Every one of these.
    All(Vec<Target>),
}

pub struct Row {
    pub title: String,
    pub unit: Unit,
    pub target: Option<(Target, &'static str)>,
    /// The peers' and the floor's cells come from this row (the same workload): this row
    /// measures topiclog only, another way.
    pub peers_from: Option<usize>,
    samples: HashMap<Col, Vec<Vec<f64>>>,
}

#[derive(Default)]
pub struct Table {
    pub rows: Vec<Row>,
}

impl Table {
    /// Adds a row; returns its id.
    pub fn row(
        &mut self,
        title: impl Into<String>,
        unit: Unit,
        target: Option<(Target, &'static str)>,
    ) -> usize {
        self.rows.push(Row {
            title: title.into(),
            unit,
            target,
            peers_from: None,
            samples: HashMap::new(),
        });
        self.rows.len() - 1
    }

    /// A row that measures topiclog only; the other cells repeat row `of`.
    pub fn variant(
        &mut self,
        of: usize,
        title: impl Into<String>,
        target: Option<(Target, &'static str)>,
    ) -> usize {
        let unit = self.rows[of].unit;
        let id = self.row(title, unit, target);
        self.rows[id].peers_from = Some(of);
        id
    }

    pub fn add(&mut self, row: usize, col: Col, sample: f64) {
        self.add_many(row, col, vec![sample]);
    }

    pub fn add_many(&mut self, row: usize, col: Col, sample: Vec<f64>) {
        self.rows[row].samples.entry(col).or_default().push(sample);
    }

    /// Median of each component of the samples of `col` in `row` (following `peers_from`).
    fn medians(&self, row: usize, col: Col) -> Option<Vec<f64>> {
        let r = &self.rows[row];
        let samples = match (r.peers_from, col) {
            (Some(of), c) if c != Col::Topiclog => return self.medians(of, c),
            _ => r.samples.get(&col)?,
        };
        let parts = samples.first()?.len();
        Some(
            (0..parts)
                .map(|i| median(samples.iter().map(|s| s[i]).collect()))
                .collect(),
        )
    }

    fn cell(&self, row: usize, col: Col) -> String {
        let r = &self.rows[row];
        if r.peers_from.is_some() && col != Col::Topiclog {
            return if self.medians(row, col).is_some() {
                "″".into()
            } else {
                String::new()
            };
        }
        let Some(samples) = r.samples.get(&col) else {
            return String::new();
        };
        let Some(medians) = self.medians(row, col) else {
            return String::new();
        };
        if r.unit == Unit::Latency {
            return medians
                .iter()
                .map(|&m| r.unit.show(m))
                .collect::<Vec<_>>()
                .join(" / ");
        }
        let values: Vec<f64> = samples.iter().map(|s| s[0]).collect();
        let (min, max) = values
            .iter()
            .fold((f64::MAX, f64::MIN), |(lo, hi), &v| (lo.min(v), hi.max(v)));
        if values.len() > 1 {
            format!(
                "{} ({}–{})",
                r.unit.show(medians[0]),
                r.unit.show(min),
                r.unit.show(max)
            )
        } else {
            r.unit.show(medians[0])
        }
    }

    /// topiclog's medians ÷ `col`'s, per component.
    fn ratios(&self, row: usize, col: Col) -> Option<Vec<f64>> {
        let t = self.medians(row, Col::Topiclog)?;
        let c = self.medians(row, col)?;
        Some(t.iter().zip(&c).map(|(t, c)| t / c).collect())
    }

    fn ratio_cell(&self, row: usize, col: Col) -> String {
        self.ratios(row, col)
            .map(|r| {
                r.iter()
                    .map(|r| format!("{r:.2}×"))
                    .collect::<Vec<_>>()
                    .join(" / ")
            })
            .unwrap_or_default()
    }

    fn met(&self, row: usize, target: &Target) -> Option<bool> {
        let higher = self.rows[row].unit.higher_is_better();
        match target {
            Target::Vs(col, factor) => {
                let ratios = self.ratios(row, *col)?;
                Some(
                    ratios
                        .iter()
                        .all(|&r| if higher { r >= *factor } else { r <= *factor }),
                )
            }
            Target::Max(limits) => {
                let t = self.medians(row, Col::Topiclog)?;
                Some(t.iter().zip(limits).all(|(t, l)| t <= l))
            }
            Target::All(all) => all
                .iter()
                .map(|t| self.met(row, t))
                .try_fold(true, |acc, m| Some(acc && m?)),
        }
    }

    /// The markdown table.
    pub fn markdown(&self) -> String {
        let mut out = String::new();
        out.push_str(
            "| workload | unit | raw | commitlog | okaywal | topiclog | format floor \
             | topiclog ÷ raw | ÷ commitlog | ÷ okaywal | ÷ floor | target for topiclog | met |\n",
        );
        out.push_str("|---|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|---|:-:|\n");
        for (i, r) in self.rows.iter().enumerate() {
            let (target, met) = match &r.target {
                Some((target, text)) => (
                    *text,
                    match self.met(i, target) {
                        Some(true) => "yes",
                        Some(false) => "no",
                        None => "",
                    },
                ),
                None => ("", ""),
            };
            let _ = writeln!(
                out,
                "| {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} |",
                r.title,
                r.unit.label(),
                self.cell(i, Col::Raw),
                self.cell(i, Col::Commitlog),
                self.cell(i, Col::Okaywal),
                self.cell(i, Col::Topiclog),
                self.cell(i, Col::Floor),
                self.ratio_cell(i, Col::Raw),
                self.ratio_cell(i, Col::Commitlog),
                self.ratio_cell(i, Col::Okaywal),
                self.ratio_cell(i, Col::Floor),
                target,
                met,
            );
        }
        out
    }
}

/// Records per second as the table prints a cell: the median in M rec/s, the range after it.
pub fn rate_summary(samples: &[f64]) -> String {
    let (lo, hi) = samples
        .iter()
        .fold((f64::MAX, f64::MIN), |(lo, hi), &v| (lo.min(v), hi.max(v)));
    format!(
        "{} ({}–{}) M rec/s",
        sig(median(samples.to_vec()) / 1e6),
        sig(lo / 1e6),
        sig(hi / 1e6)
    )
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

/// The `p` quantile (0..=1) of sorted nanoseconds, nearest rank.
pub fn percentile(sorted: &[u64], p: f64) -> f64 {
    let i = ((sorted.len() as f64 * p).ceil() as usize).clamp(1, sorted.len()) - 1;
    sorted[i] as f64
}

/// The 1-minute load average (`/proc/loadavg`): how busy the machine was beside the bench.
pub fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|l| l.split_whitespace().next().map(str::to_string))
        .unwrap_or_else(|| "unknown".to_string())
}

/// How often this thread is stopped: a loop that only reads the clock for `secs` seconds
/// counts the gaps of more than a microsecond between two reads (the host or the kernel ran
/// something else). Each stop lands in whatever a latency row is timing, so once stops come
/// more often than one timed call in a thousand, p99.9 measures them rather than the call.
pub fn stalls(secs: f64) -> String {
    let start = std::time::Instant::now();
    let (mut last, mut reads) = (start, 0u64);
    let mut gaps = Vec::new();
    while last.duration_since(start).as_secs_f64() < secs {
        let now = std::time::Instant::now();
        let gap = now.duration_since(last).as_nanos() as u64;
        if gap > 1_000 {
            gaps.push(gap);
        }
        (last, reads) = (now, reads + 1);
    }
    gaps.sort_unstable();
    let elapsed = last.duration_since(start).as_secs_f64();
    let median = gaps.get(gaps.len() / 2).map_or(0.0, |&g| g as f64 / 1e3);
    format!(
        "{:.0} stops of over 1 µs per second (median {median:.1} µs, {:.1}% of the time; one clock \
         read {:.0} ns)",
        gaps.len() as f64 / elapsed,
        gaps.iter().sum::<u64>() as f64 / elapsed / 1e7,
        elapsed * 1e9 / reads.max(1) as f64,
    )
}

/// The machine, from `/proc` and `/sys`: cores, CPU model, memory, kernel, and the filesystem
/// holding `dir`.
pub fn machine(dir: &std::path::Path) -> String {
    let cores = std::thread::available_parallelism().map_or(0, usize::from);
    let read = |p: &str| std::fs::read_to_string(p).unwrap_or_default();
    let cpuinfo = read("/proc/cpuinfo");
    let model = cpuinfo
        .lines()
        .find_map(|l| l.strip_prefix("model name"))
        .and_then(|l| l.split_once(':'))
        .map_or("unknown CPU", |(_, m)| m.trim())
        .to_string();
    let meminfo = read("/proc/meminfo");
    let mem_gib = meminfo
        .lines()
        .find_map(|l| l.strip_prefix("MemTotal:"))
        .and_then(|l| l.split_whitespace().next()?.parse::<f64>().ok())
        .map_or(0.0, |kib| kib / f64::from(1 << 20));
    let kernel = read("/proc/sys/kernel/osrelease").trim().to_string();
    let mounts = read("/proc/self/mounts");
    let dir = dir.canonicalize().unwrap_or_else(|_| dir.to_path_buf());
    let fs = mounts
        .lines()
        .filter_map(|l| {
            let mut f = l.split_whitespace();
            let (_, point, kind) = (f.next()?, f.next()?, f.next()?);
            dir.starts_with(point)
                .then(|| (point.len(), kind.to_string()))
        })
        .max()
        .map_or_else(|| "unknown".to_string(), |(_, kind)| kind);
    format!("{cores} cores ({model}), {mem_gib:.0} GiB, Linux {kernel}, scratch on {fs}",)
}
