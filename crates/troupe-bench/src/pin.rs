//! Where a latency scenario runs: both ends pinned to one CPU, or wherever
//! the scheduler puts them.
//!
//! On one CPU every hop between the two processes (and between the threads
//! of each) is a context switch on the same core: it shows what a transport
//! costs when the machine is busy. Unpinned, the two ends run on different
//! cores and the figures show wake-up latencies across cores.

use nix::sched::{sched_getaffinity, sched_setaffinity, CpuSet};
use nix::unistd::Pid;
use std::fmt;

/// The placement of both ends of a measurement.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Placement {
    /// The bench process and its peer, every thread of each, on this CPU.
    Cpu(usize),
    /// Wherever the scheduler puts them (the mask the bench was started
    /// with).
    Any,
}

impl Placement {
    /// The two placements of a latency scenario: one CPU (the first one
    /// this process may use), then unpinned.
    pub fn both() -> anyhow::Result<[Placement; 2]> {
        let mask = sched_getaffinity(Pid::from_raw(0))?;
        let first = (0..CpuSet::count())
            .find(|&c| mask.is_set(c).unwrap_or(false))
            .ok_or_else(|| anyhow::anyhow!("this process may run on no CPU"))?;
        Ok([Placement::Cpu(first), Placement::Any])
    }

    /// The form passed to a peer on its command line (`cpu0`, `any`).
    pub fn arg(self) -> String {
        match self {
            Placement::Cpu(c) => format!("cpu{c}"),
            Placement::Any => "any".into(),
        }
    }

    /// Parses [`Placement::arg`].
    pub fn parse(s: &str) -> anyhow::Result<Placement> {
        if s == "any" {
            return Ok(Placement::Any);
        }
        s.strip_prefix("cpu")
            .and_then(|c| c.parse().ok())
            .map(Placement::Cpu)
            .ok_or_else(|| anyhow::anyhow!("bad placement {s:?} (cpuN or any)"))
    }

    /// Pins every thread of this process to the placement's CPU (threads
    /// created later inherit it) until the guard drops, which puts back
    /// the mask each thread had. `Any` changes nothing.
    pub fn apply(self) -> anyhow::Result<PinGuard> {
        let Placement::Cpu(cpu) = self else {
            return Ok(PinGuard { saved: None });
        };
        let saved = sched_getaffinity(Pid::from_raw(0))?;
        let mut one = CpuSet::new();
        one.set(cpu)?;
        set_all_threads(&one)?;
        Ok(PinGuard { saved: Some(saved) })
    }
}

impl fmt::Display for Placement {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Placement::Cpu(_) => f.write_str("1 cpu"),
            Placement::Any => f.write_str("any cpu"),
        }
    }
}

/// Restores the CPU mask of every thread of this process on drop.
#[must_use = "the process is unpinned when the guard drops"]
pub struct PinGuard {
    saved: Option<CpuSet>,
}

impl Drop for PinGuard {
    fn drop(&mut self) {
        if let Some(saved) = &self.saved {
            if let Err(e) = set_all_threads(saved) {
                eprintln!("troupe-bench: cannot restore the CPU mask: {e}");
            }
        }
    }
}

/// Sets the mask of every thread of this process (a thread that ends
/// meanwhile is skipped). Two passes, for threads started during the first.
fn set_all_threads(mask: &CpuSet) -> anyhow::Result<()> {
    for _ in 0..2 {
        for entry in std::fs::read_dir("/proc/self/task")? {
            let tid: i32 = match entry?.file_name().to_str().and_then(|s| s.parse().ok()) {
                Some(t) => t,
                None => continue,
            };
            match sched_setaffinity(Pid::from_raw(tid), mask) {
                Ok(()) | Err(nix::errno::Errno::ESRCH) => {}
                Err(e) => anyhow::bail!("sched_setaffinity of thread {tid}: {e}"),
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placement_round_trips_through_its_argument() {
        for p in [Placement::Cpu(0), Placement::Cpu(3), Placement::Any] {
            assert_eq!(Placement::parse(&p.arg()).unwrap(), p);
        }
        assert!(Placement::parse("cpu").is_err());
        assert!(Placement::parse("all").is_err());
    }

    #[test]
    fn pinning_is_undone_by_the_guard() {
        let [one, _] = Placement::both().unwrap();
        let before = sched_getaffinity(Pid::from_raw(0)).unwrap();
        {
            let _g = one.apply().unwrap();
            let now = sched_getaffinity(Pid::from_raw(0)).unwrap();
            let n = (0..CpuSet::count())
                .filter(|&c| now.is_set(c).unwrap())
                .count();
            assert_eq!(n, 1);
        }
        assert_eq!(sched_getaffinity(Pid::from_raw(0)).unwrap(), before);
    }
}
