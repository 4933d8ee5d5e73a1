//! The report: figures, their ratio to the floor, the machine.

use serde::Serialize;

/// One measured figure.
#[derive(Debug, Clone, Serialize)]
pub struct Row {
    /// Scenario name.
    pub scenario: String,
    /// What was measured.
    pub case: String,
    /// Who: `troupe`, or the floor/peer it is compared with.
    pub subject: String,
    /// The figure.
    pub value: f64,
    /// Its unit (`us`, `ms`, `ops/s`, `MiB`).
    pub unit: String,
    /// The figure of the floor for the same case, if any.
    pub floor: Option<f64>,
    /// Extra detail (p90, p99, counts).
    pub detail: String,
}

/// All figures of a run.
#[derive(Debug, Serialize)]
pub struct Report {
    quick: bool,
    machine: String,
    rows: Vec<Row>,
}

fn read(path: &str) -> String {
    std::fs::read_to_string(path).unwrap_or_default()
}

impl Report {
    pub fn new(quick: bool) -> Self {
        let cpus = std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(0);
        let model = read("/proc/cpuinfo")
            .lines()
            .find(|l| l.starts_with("model name"))
            .and_then(|l| l.split(':').nth(1))
            .map(|s| s.trim().to_string())
            .unwrap_or_else(|| "unknown cpu".into());
        let mem_kb: u64 = read("/proc/meminfo")
            .lines()
            .find(|l| l.starts_with("MemTotal"))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse().ok())
            .unwrap_or(0);
        let kernel = read("/proc/sys/kernel/osrelease").trim().to_string();
        Self {
            quick,
            machine: format!(
                "{cpus} cpus ({model}), {:.1} GiB, Linux {kernel}{}",
                mem_kb as f64 / 1024.0 / 1024.0,
                if quick {
                    ", QUICK RUN (figures not meaningful)"
                } else {
                    ""
                }
            ),
            rows: Vec::new(),
        }
    }

    pub fn machine_line(&self) -> String {
        format!("machine: {}", self.machine)
    }

    pub fn add(&mut self, row: Row) {
        println!(
            "  {:<8} {:<34} {:<22} {:>12.1} {}",
            row.scenario, row.case, row.subject, row.value, row.unit
        );
        self.rows.push(row);
    }

    pub fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }

    /// Prints the table as Markdown, with the ratio to the floor.
    pub fn print(&self) {
        println!();
        println!("| scenario | case | subject | figure | vs floor | detail |");
        println!("| --- | --- | --- | ---: | ---: | --- |");
        for r in &self.rows {
            let ratio = r
                .floor
                .filter(|f| *f > 0.0)
                .map(|f| format!("{:.2}x", r.value / f))
                .unwrap_or_else(|| "-".into());
            println!(
                "| {} | {} | {} | {:.1} {} | {} | {} |",
                r.scenario, r.case, r.subject, r.value, r.unit, ratio, r.detail
            );
        }
    }

    pub fn json(&self) -> anyhow::Result<String> {
        Ok(serde_json::to_string_pretty(self)?)
    }
}
