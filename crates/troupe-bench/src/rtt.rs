//! `rtt`: request/reply round trips, one after the other, between the bench
//! and a far end in another process; p50, p90 and p99 per message size, both
//! ends on one CPU and then unpinned.
//!
//! A subject is one way of making round trips ([`RttSubject`]); adding one
//! is one implementation and one line in [`subjects`].

use crate::pin::Placement;
use crate::report::{figure, Report, Role, Row};
use crate::stats::Latency;
use futures::future::BoxFuture;
use std::time::Duration;

/// One way of making request/reply round trips with a far end that runs as
/// a separate process.
pub trait RttSubject: Send + Sync {
    /// The row's subject (`raw TCP`, `raw Zenoh get/queryable`, ...).
    fn name(&self) -> &'static str;
    /// The floor, a peer, or troupe.
    fn role(&self) -> Role;
    /// The topology, in a few words (in every row's detail).
    fn topology(&self) -> &'static str;
    /// How it is measured: topology and settings (a note under the table).
    fn method(&self) -> String;
    /// Starts the far end placed as `placement` and connects to it. Called
    /// while the bench is not pinned; the bench pins itself afterwards.
    fn open(&self, placement: Placement) -> BoxFuture<'_, anyhow::Result<Box<dyn RttLink>>>;
}

/// A connection to a far end that answers every request.
pub trait RttLink: Send {
    /// Makes `n` round trips of `size`-byte messages one after the other
    /// and returns the duration of each; every wait is bounded.
    fn round_trips(
        &mut self,
        size: usize,
        n: usize,
    ) -> BoxFuture<'_, anyhow::Result<Vec<Duration>>>;
}

/// Every subject of the scenario, the floor first.
fn subjects() -> Vec<Box<dyn RttSubject>> {
    vec![
        Box::new(crate::tcp::RttTcp),
        Box::new(crate::zenoh_raw::RttGet),
        Box::new(crate::zenoh_raw::RttPingPong { routed: false }),
        Box::new(crate::zenoh_raw::RttPingPong { routed: true }),
        #[cfg(feature = "zmq")]
        Box::new(crate::zmq_peer::RttReqRep),
        Box::new(crate::troupe_patterns::RttReqRep { served: false }),
        Box::new(crate::troupe_patterns::RttReqRep { served: true }),
        Box::new(crate::troupe_channel::RttChannel),
        Box::new(crate::troupe_object::RttObject),
    ]
}

/// Whether the subject `name` is to be measured: all of them, unless
/// `TROUPE_BENCH_ONLY` is set, then those whose name contains one of its
/// comma-separated parts (to profile one subject, or compare two; the
/// ratios need the floor and the peers).
pub fn selected(name: &str) -> bool {
    match std::env::var("TROUPE_BENCH_ONLY") {
        Ok(only) if !only.is_empty() => only
            .split(',')
            .any(|part| !part.is_empty() && name.contains(part)),
        _ => true,
    }
}

/// Message sizes: 8 B, 1 KiB, 64 KiB, 1 MiB (quick: 8 B and 64 KiB), or
/// those of `TROUPE_BENCH_SIZES` (bytes, comma-separated: to profile one
/// case); a part that is not a number is left out.
pub fn sizes(quick: bool) -> Vec<usize> {
    if let Ok(list) = std::env::var("TROUPE_BENCH_SIZES") {
        let sizes: Vec<usize> = list
            .split(',')
            .filter_map(|s| s.trim().parse().ok())
            .collect();
        if !sizes.is_empty() {
            return sizes;
        }
    }
    if quick {
        vec![8, 64 << 10]
    } else {
        vec![8, 1 << 10, 64 << 10, 1 << 20]
    }
}

/// Warm-up round trips and measured ones for a size: 10,000 samples after
/// 1,000 (1 MiB: 1,000 after 100); quick: 300 after 30.
fn samples(quick: bool, size: usize) -> (usize, usize) {
    match (quick, size >= 1 << 20) {
        (true, _) => (30, 300),
        (false, false) => (1_000, 10_000),
        (false, true) => (100, 1_000),
    }
}

/// `8 B`, `1 KiB`, `64 KiB`, `1 MiB`.
pub fn size_label(size: usize) -> String {
    match size {
        s if s >= 1 << 20 && s % (1 << 20) == 0 => format!("{} MiB", s >> 20),
        s if s >= 1 << 10 && s % (1 << 10) == 0 => format!("{} KiB", s >> 10),
        s => format!("{s} B"),
    }
}

struct Measured {
    subject: &'static str,
    topology: &'static str,
    role: Role,
    placement: Placement,
    size: usize,
    latency: Latency,
}

/// Measures `subject` placed as `placement` at every size.
async fn measure(
    subject: &dyn RttSubject,
    placement: Placement,
    quick: bool,
) -> anyhow::Result<Vec<Measured>> {
    let mut out = Vec::new();
    let mut link = subject.open(placement).await?;
    let _pinned = placement.apply()?;
    for size in sizes(quick) {
        let (warm, n) = samples(quick, size);
        link.round_trips(size, warm).await?;
        let mut s = link.round_trips(size, n).await?;
        anyhow::ensure!(
            s.len() == n,
            "{}: {} samples of {n}",
            subject.name(),
            s.len()
        );
        let latency = Latency::of(&mut s);
        println!(
            "  rtt      {:<30} {:<8} {:>7}: p50 {} us, p99 {} us",
            subject.name(),
            placement.to_string(),
            size_label(size),
            figure(latency.p50_us),
            figure(latency.p99_us),
        );
        out.push(Measured {
            subject: subject.name(),
            topology: subject.topology(),
            role: subject.role(),
            placement,
            size,
            latency,
        });
    }
    Ok(out)
}

/// The `rtt` scenario.
///
/// # Errors
///
/// A subject failed to start or to answer in time.
pub async fn rtt(report: &mut Report, quick: bool) -> anyhow::Result<()> {
    let mut all = Vec::new();
    for subject in subjects().into_iter().filter(|s| selected(s.name())) {
        report.note(format!("rtt, {}: {}", subject.name(), subject.method()));
        for placement in Placement::both()? {
            let measured = measure(subject.as_ref(), placement, quick).await;
            let what = format!("rtt, {}, {placement}", subject.name());
            if let Some(m) = report.tolerate(quick, subject.role(), &what, measured)? {
                all.extend(m);
            }
        }
    }
    if !cfg!(feature = "zmq") {
        report.note(ZMQ_ABSENT);
    }
    report.note(
        "rtt: figure = p50 of one round trip; ratios are to p50s (p99 vs floor in the detail); \
         `1 cpu`: the bench and the far end, every thread of both, pinned to one CPU",
    );
    let rows = all
        .iter()
        .map(|m| {
            let floor = all
                .iter()
                .find(|f| f.role == Role::Floor && f.size == m.size && f.placement == m.placement);
            let p99_vs = match floor {
                Some(f) if m.role != Role::Floor && f.latency.p99_us > 0.0 => {
                    format!(" ({:.2}x floor)", m.latency.p99_us / f.latency.p99_us)
                }
                _ => String::new(),
            };
            let target = match (m.role, floor) {
                (Role::Troupe, Some(f)) => target(m, f, &all),
                _ => String::new(),
            };
            let l = &m.latency;
            let row = Row {
                scenario: "rtt".into(),
                case: format!("{} round trip, p50", size_label(m.size)),
                subject: m.subject.into(),
                value: l.p50_us,
                unit: "us".into(),
                floor: None,
                detail: format!(
                    "p90 {} us, p99 {} us{p99_vs}, n={}; {}{target}",
                    figure(l.p90_us),
                    figure(l.p99_us),
                    l.n,
                    m.topology
                ),
                placement: Some(m.placement.to_string()),
                peers: Vec::new(),
            };
            (m.role, row)
        })
        .collect();
    report.add_compared(rows);
    Ok(())
}

/// The target of a troupe row, against the floor `f` and the peers of the
/// same case. Issue 4's, for the patterns: "p50 within 1.3x of the best raw
/// Zenoh round trip and within 3x of raw TCP". Issue 5's, for the channel:
/// a synchronous rate at least 0.8x the raw Zenoh request (get/queryable)
/// rate, read here as a p50 within 1.25x of get/queryable's (the rate
/// itself is measured by the `channel` scenario). Issue 6's, for the remote
/// call: a p50 within 1.3x of raw Zenoh get/queryable; here its payload is
/// the bare bytes, not JSON-RPC (the `object` scenario compares with
/// get/queryable carrying the same JSON-RPC bytes).
fn target(m: &Measured, f: &Measured, all: &[Measured]) -> String {
    let raw = |name: &str| {
        all.iter()
            .filter(|z| {
                z.role == Role::Peer
                    && z.subject.starts_with(name)
                    && z.size == m.size
                    && z.placement == m.placement
            })
            .map(|z| z.latency.p50_us)
            .min_by(f64::total_cmp)
    };
    let met = |ok: bool| if ok { "met" } else { "not met" };
    if m.subject == crate::troupe_object::OBJECT_NAME {
        let Some(get) = raw("raw Zenoh get/queryable") else {
            return String::new();
        };
        let limit = 1.3 * get;
        return format!(
            "; issue 6 target ≤ 1.3x raw Zenoh get/queryable (bare bytes; JSON-RPC bytes in \
             `object`) = {} us ({})",
            figure(limit),
            met(m.latency.p50_us <= limit),
        );
    }
    if m.subject == crate::troupe_channel::SYNC_NAME {
        let Some(get) = raw("raw Zenoh get/queryable") else {
            return String::new();
        };
        let limit = get / 0.8;
        return format!(
            "; issue 5 target (rate ≥ 0.8x raw Zenoh get/queryable, as a p50) ≤ {} us ({})",
            figure(limit),
            met(m.latency.p50_us <= limit),
        );
    }
    let Some(best) = raw("raw Zenoh") else {
        return String::new();
    };
    let (zenoh, tcp) = (1.3 * best, 3.0 * f.latency.p50_us);
    format!(
        "; target ≤ 1.3x best raw Zenoh = {} us ({}), ≤ 3x TCP = {} us ({})",
        figure(zenoh),
        met(m.latency.p50_us <= zenoh),
        figure(tcp),
        met(m.latency.p50_us <= tcp),
    )
}

/// The note when the libzmq rows are absent.
pub const ZMQ_ABSENT: &str = "libzmq rows absent: troupe-bench was built without its `zmq` \
     feature (apt-get install libzmq3-dev pkg-config; cargo run --release -p troupe-bench \
     --features zmq)";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_have_short_labels() {
        assert_eq!(size_label(8), "8 B");
        assert_eq!(size_label(1024), "1 KiB");
        assert_eq!(size_label(64 << 10), "64 KiB");
        assert_eq!(size_label(1 << 20), "1 MiB");
        assert_eq!(size_label(1000), "1000 B");
    }
}
