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
    /// Where both ends ran, for the transport scenarios (`1 cpu`, `any cpu`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub placement: Option<String>,
    /// The figures of the peers measured for the same case and placement.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub peers: Vec<PeerFigure>,
}

/// A peer's figure for the same case, to compare a row with.
#[derive(Debug, Clone, Serialize)]
pub struct PeerFigure {
    /// The peer.
    pub subject: String,
    /// Its figure.
    pub value: f64,
}

/// What a subject is to the others measured in the same case.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// The floor (raw TCP): every other row gets its ratio to it.
    Floor,
    /// A peer (raw Zenoh, libzmq): rows get their ratio to each peer.
    Peer,
    /// troupe itself.
    Troupe,
}

/// All figures of a run.
#[derive(Debug, Serialize)]
pub struct Report {
    quick: bool,
    machine: String,
    rows: Vec<Row>,
    notes: Vec<String>,
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
            notes: Vec::new(),
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

    /// Adds the rows of one scenario that compares subjects: each row but
    /// the floor's gets the figure of the floor and of every peer measured
    /// for the same case and placement (itself excepted). Not printed: the
    /// scenario printed its progress.
    pub fn add_compared(&mut self, rows: Vec<(Role, Row)>) {
        let same = |a: &Row, b: &Row| {
            a.scenario == b.scenario && a.case == b.case && a.placement == b.placement
        };
        for (i, (own, row)) in rows.iter().enumerate() {
            let mut row = row.clone();
            for (j, (role, other)) in rows.iter().enumerate() {
                if i == j || *own == Role::Floor || !same(&row, other) {
                    continue;
                }
                match role {
                    Role::Floor => row.floor = Some(other.value),
                    Role::Peer => row.peers.push(PeerFigure {
                        subject: other.subject.clone(),
                        value: other.value,
                    }),
                    Role::Troupe => {}
                }
            }
            self.rows.push(row);
        }
    }

    /// The outcome of measuring one subject: its figures, or, for a troupe
    /// subject in a full run, `None` and a note saying that it failed and
    /// why (the run goes on, and the figures measured so far are kept; the
    /// floor, the peers and any quick run fail as they are).
    ///
    /// # Errors
    ///
    /// `measured`'s error, unless tolerated.
    pub fn tolerate<T>(
        &mut self,
        quick: bool,
        role: Role,
        what: &str,
        measured: anyhow::Result<T>,
    ) -> anyhow::Result<Option<T>> {
        match measured {
            Ok(m) => Ok(Some(m)),
            Err(e) if role == Role::Troupe && !quick => {
                eprintln!("troupe-bench: {what}: FAILED: {e:#}");
                self.note(format!("{what}: FAILED, no figures: {e:#}"));
                Ok(None)
            }
            Err(e) => Err(e.context(what.to_string())),
        }
    }

    /// Adds a note printed under the table (once, however often added).
    pub fn note(&mut self, note: impl Into<String>) {
        let note = note.into();
        if !self.notes.contains(&note) {
            self.notes.push(note);
        }
    }

    pub fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }

    /// Prints the table as Markdown, with the ratios to the floor and to
    /// the peers (figure ÷ theirs), then the notes.
    pub fn print(&self) {
        println!();
        println!("| scenario | case | where | subject | figure | vs floor | vs peers | detail |");
        println!("| --- | --- | --- | --- | ---: | ---: | --- | --- |");
        let ratio = |v: f64, of: f64| {
            if of > 0.0 {
                format!("{:.2}x", v / of)
            } else {
                "-".into()
            }
        };
        for r in &self.rows {
            let floor = r
                .floor
                .map(|f| ratio(r.value, f))
                .unwrap_or_else(|| "-".into());
            let peers = if r.peers.is_empty() {
                "-".to_string()
            } else {
                r.peers
                    .iter()
                    .map(|p| format!("{} {}", p.subject, ratio(r.value, p.value)))
                    .collect::<Vec<_>>()
                    .join(", ")
            };
            println!(
                "| {} | {} | {} | {} | {} {} | {} | {} | {} |",
                r.scenario,
                r.case,
                r.placement.as_deref().unwrap_or("-"),
                r.subject,
                figure(r.value),
                r.unit,
                floor,
                peers,
                r.detail
            );
        }
        if !self.notes.is_empty() {
            println!();
            for n in &self.notes {
                println!("- {n}");
            }
        }
    }

    pub fn json(&self) -> anyhow::Result<String> {
        Ok(serde_json::to_string_pretty(self)?)
    }
}

/// A figure with a precision that suits its size (`M` for millions, `k`
/// for thousands from 10,000).
pub fn figure(v: f64) -> String {
    if v.abs() >= 1e6 {
        format!("{:.2}M", v / 1e6)
    } else if v.abs() >= 1e4 {
        format!("{:.1}k", v / 1e3)
    } else if v.abs() >= 1000.0 {
        format!("{v:.0}")
    } else if v.abs() >= 10.0 {
        format!("{v:.1}")
    } else {
        format!("{v:.2}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(case: &str, subject: &str, value: f64) -> Row {
        Row {
            scenario: "rtt".into(),
            case: case.into(),
            subject: subject.into(),
            value,
            unit: "us".into(),
            floor: None,
            detail: String::new(),
            placement: Some("1 cpu".into()),
            peers: Vec::new(),
        }
    }

    #[test]
    fn compared_rows_get_the_floor_and_the_peers_of_their_case() {
        let mut r = Report::new(true);
        r.add_compared(vec![
            (Role::Floor, row("8 B", "tcp", 10.0)),
            (Role::Peer, row("8 B", "zenoh", 50.0)),
            (Role::Peer, row("8 B", "zmq", 30.0)),
            (Role::Troupe, row("8 B", "troupe", 60.0)),
            (Role::Peer, row("1 KiB", "zenoh", 70.0)),
        ]);
        let by = |s: &str, c: &str| {
            r.rows
                .iter()
                .find(|x| x.subject == s && x.case == c)
                .unwrap()
                .clone()
        };
        let tcp = by("tcp", "8 B");
        assert_eq!((tcp.floor, tcp.peers.len()), (None, 0));
        let troupe = by("troupe", "8 B");
        assert_eq!(troupe.floor, Some(10.0));
        let peers: Vec<_> = troupe.peers.iter().map(|p| p.subject.as_str()).collect();
        assert_eq!(peers, ["zenoh", "zmq"]);
        let zenoh = by("zenoh", "8 B");
        assert_eq!(zenoh.peers.len(), 1, "itself and troupe excepted");
        let other = by("zenoh", "1 KiB");
        assert_eq!((other.floor, other.peers.len()), (None, 0));
    }

    #[test]
    fn figures_are_short() {
        assert_eq!(figure(2.71), "2.71");
        assert_eq!(figure(18.33), "18.3");
        assert_eq!(figure(2527.4), "2527");
        assert_eq!(figure(41_258.0), "41.3k");
        assert_eq!(figure(107_756_500.0), "107.76M");
    }
}
