//! `status`: the throughput of troupe's status updates (issue #6), side by
//! side with its floors in the same run.
//!
//! One emitter process sends a fixed number of updates of one path
//! ([`PATH`]) as fast as it can; one follower in the bench counts them.
//! The figure is **updates received by the follower per second**: the
//! updates of a round divided by the time from the bench's command to the
//! emitter until the follower has the last one; the median of
//! [`ROUNDS`] rounds after a warm-up round of a tenth of the count. Each
//! value carries a counter `n` (one more per update), so that the follower
//! checks that every update came once and in order, and knows the last.
//! Two values: a small one, `{"cpu":0.3,"n":N}`, 200,000 updates a round,
//! and one of 1 KiB of JSON (the same with a `text` of [`TEXT_1K`] bytes),
//! 50,000 a round. The emitter's own rate (emit calls per second, until the
//! last call returned) is a row of its own.
//!
//! Subjects, the floor first; every one crosses a router process twice
//! (emitter → router → follower), as a status update crosses its server:
//!
//! - raw TCP through a relay process that copies bytes from one connection
//!   to the other ([`crate::status_floor::StatusTcp`]): the floor;
//! - raw Zenoh through a router: the emitter's put routed to the follower's
//!   subscriber ([`crate::status_floor::StatusZenoh`], one hop through the
//!   router);
//! - raw Zenoh re-put by a router: a subscriber in the router's own session
//!   puts every sample again on the follower's key, from its callback (two
//!   hops: what a troupe server does with an update, without the JSON work;
//!   the fair floor);
//! - troupe: `StatusUpdater::emit` in the far end, through a troupe server,
//!   to `troupe::status::follow` in the bench
//!   ([`crate::troupe_status::StatusTroupe`]).
//!
//! The raw subjects carry the bytes the troupe emitter puts for the same
//! update (a JSON input, [`input`]). Issue #6 sets no target for this
//! figure.
//!
//! A subject is one implementation of [`StatusSubject`] and one line in
//! [`subjects`].

use crate::report::{figure, Report, Role, Row};
use futures::future::BoxFuture;
use serde::Serialize;
use std::time::Duration;
use troupe_protocol::status::{StatusInput, StatusOp};

/// The path every update sets.
pub const PATH: &str = "system.host0";

/// The mask the follower follows.
pub const MASK: &str = "system";

/// The counter of the first update measured: six digits up to 999,999, so
/// that every value of a case has the same size (smaller numbers are used
/// only to find out that a link works).
pub const FIRST_N: u64 = 100_000;

/// The length of the `text` of the 1 KiB value: its JSON is then 1024 bytes
/// (with a six-digit counter).
pub const TEXT_1K: usize = 992;

/// Counted rounds of every case.
pub const ROUNDS: usize = 3;

/// The fair floor, named in troupe's rows.
const FAIR: &str = crate::status_floor::RELAYED_NAME;

/// The value of an update: `{"cpu":0.3,"n":N}`, with `"text"` when it has
/// one.
#[derive(Debug, Serialize)]
pub struct Load<'a> {
    /// A constant.
    pub cpu: f64,
    /// The update's counter.
    pub n: u64,
    /// Padding, for the 1 KiB value.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub text: Option<&'a str>,
}

impl<'a> Load<'a> {
    /// The value of update `n`, with `text` (none when empty).
    pub fn new(n: u64, text: &'a str) -> Load<'a> {
        Load {
            cpu: 0.3,
            n,
            text: (!text.is_empty()).then_some(text),
        }
    }
}

/// A `text` of `len` bytes.
pub fn text(len: usize) -> String {
    "x".repeat(len)
}

/// The bytes the troupe emitter puts for update `n` (its JSON input, as
/// `StatusUpdater::emit` writes it), which the raw subjects carry.
///
/// # Errors
///
/// Encoding failed.
pub fn input(text: &str, n: u64) -> anyhow::Result<Vec<u8>> {
    let value = serde_json::to_value(Load::new(n, text))?;
    Ok(serde_json::to_vec(&StatusInput {
        op: StatusOp::Set,
        path: PATH.into(),
        value,
    })?)
}

/// One case: a value and the number of updates of a round.
#[derive(Debug, Clone, Copy)]
pub struct Case {
    /// `small value`, `1 KiB value`.
    pub label: &'static str,
    /// The length of the value's `text` (0: none).
    pub text: usize,
    /// Updates per counted round.
    pub count: u64,
}

/// The small value (200,000 updates a round), then the 1 KiB one (50,000);
/// quick: 2,000 and 500.
fn cases(quick: bool) -> [Case; 2] {
    let (small, large) = if quick {
        (2_000, 500)
    } else {
        (200_000, 50_000)
    };
    [
        Case {
            label: "small value",
            text: 0,
            count: small,
        },
        Case {
            label: "1 KiB value",
            text: TEXT_1K,
            count: large,
        },
    ]
}

/// What a link is asked to send: the updates `first..first + count`, with
/// a `text` of `text` bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Batch {
    /// The counter of the first update.
    pub first: u64,
    /// How many.
    pub count: u64,
    /// The length of every value's `text`.
    pub text: usize,
}

impl Batch {
    /// The counter of the last update.
    pub fn last(&self) -> u64 {
        self.first + self.count - 1
    }
}

/// What a round achieved.
#[derive(Debug, Clone, Copy)]
pub struct Round {
    /// Updates the follower received (all of them, unless it read the tree
    /// again after a gap).
    pub delivered: u64,
    /// From the command to the emitter until the follower had the last.
    pub elapsed: Duration,
    /// The emitter's time from its first emit (or put) until its last
    /// returned; `None` where the emitter does not time it (TCP).
    pub emit: Option<Duration>,
    /// troupe: the emitter's `flush` after its last emit.
    pub flush: Option<Duration>,
    /// troupe: how many times the follower read the tree again.
    pub gaps: u64,
}

/// One way of sending updates from an emitter process to a follower.
pub trait StatusSubject: Send + Sync {
    /// The row's subject.
    fn name(&self) -> &'static str;
    /// The floor, a peer, or troupe.
    fn role(&self) -> Role;
    /// The topology, in a few words (in every row's detail).
    fn topology(&self) -> &'static str;
    /// How it is measured (a note under the table).
    fn method(&self) -> String;
    /// Starts the far ends (unpinned) and returns once an update goes
    /// through.
    fn open(&self) -> BoxFuture<'_, anyhow::Result<Box<dyn StatusLink>>>;
}

/// An emitter and its follower, connected.
pub trait StatusLink: Send {
    /// Has the emitter send `batch` and waits (bounded) until the follower
    /// received its last update.
    fn round(&mut self, batch: Batch) -> BoxFuture<'_, anyhow::Result<Round>>;
}

/// Every subject, the floor first.
fn subjects() -> Vec<Box<dyn StatusSubject>> {
    vec![
        Box::new(crate::status_floor::StatusTcp),
        Box::new(crate::status_floor::StatusZenoh { relayed: false }),
        Box::new(crate::status_floor::StatusZenoh { relayed: true }),
        Box::new(crate::troupe_status::StatusTroupe),
    ]
}

/// The figures of one subject and case.
struct Measured {
    subject: &'static str,
    topology: &'static str,
    role: Role,
    case: Case,
    /// Median updates/s received by the follower.
    rate: f64,
    /// Lowest and highest of the rounds.
    range: (f64, f64),
    /// Share of the updates sent that the follower received, all rounds.
    delivered: f64,
    /// Median emit calls/s of the emitter, if it timed them.
    emit: Option<f64>,
    /// Median `flush` time, if any.
    flush: Option<Duration>,
    /// Times the follower read the tree again, all rounds.
    gaps: u64,
    /// Bytes of one input (what the emitter puts).
    input: usize,
}

/// The median of `v` (not empty), and its lowest and highest.
fn median(mut v: Vec<f64>) -> (f64, (f64, f64)) {
    v.sort_by(f64::total_cmp);
    (v[v.len() / 2], (v[0], v[v.len() - 1]))
}

/// Measures `subject` in every case (its updates counted from
/// [`FIRST_N`] on).
async fn measure(
    subject: &dyn StatusSubject,
    cases: &[Case],
    rounds: usize,
) -> anyhow::Result<Vec<Measured>> {
    let mut link = subject.open().await?;
    let mut first = FIRST_N;
    let mut batch = |text: usize, count: u64| {
        let b = Batch { first, count, text };
        first += count;
        b
    };
    let mut out = Vec::new();
    for &case in cases {
        link.round(batch(case.text, (case.count / 10).max(1)))
            .await?;
        let (mut rates, mut emits, mut flushes) = (Vec::new(), Vec::new(), Vec::new());
        let (mut delivered, mut gaps) = (0u64, 0u64);
        for _ in 0..rounds {
            let r = link.round(batch(case.text, case.count)).await?;
            anyhow::ensure!(r.delivered > 0, "{}: nothing delivered", subject.name());
            rates.push(r.delivered as f64 / r.elapsed.as_secs_f64());
            if let Some(e) = r.emit {
                emits.push(case.count as f64 / e.as_secs_f64());
            }
            if let Some(f) = r.flush {
                flushes.push(f.as_secs_f64());
            }
            delivered += r.delivered;
            gaps += r.gaps;
        }
        let (rate, range) = median(rates);
        let m = Measured {
            subject: subject.name(),
            topology: subject.topology(),
            role: subject.role(),
            case,
            rate,
            range,
            delivered: delivered as f64 / (case.count * rounds as u64) as f64,
            emit: (!emits.is_empty()).then(|| median(emits).0),
            flush: (!flushes.is_empty()).then(|| Duration::from_secs_f64(median(flushes).0)),
            gaps,
            input: input(&text(case.text), FIRST_N)?.len(),
        };
        println!(
            "  status   {:<36} {:>11}: {} updates/s{}",
            m.subject,
            case.label,
            figure(m.rate),
            m.emit
                .map(|e| format!(", emitter {} calls/s", figure(e)))
                .unwrap_or_default(),
        );
        out.push(m);
    }
    Ok(out)
}

/// The `status` scenario.
///
/// # Errors
///
/// A floor or peer subject failed (a troupe subject's failure leaves a note
/// in a full run).
pub async fn status(report: &mut Report, quick: bool) -> anyhow::Result<()> {
    let cases = cases(quick);
    let rounds = if quick { 2 } else { ROUNDS };
    let mut all = Vec::new();
    for subject in subjects()
        .into_iter()
        .filter(|s| crate::rtt::selected(s.name()))
    {
        report.note(format!("status, {}: {}", subject.name(), subject.method()));
        let measured = measure(subject.as_ref(), &cases, rounds).await;
        let what = format!("status, {}", subject.name());
        if let Some(m) = report.tolerate(quick, subject.role(), &what, measured)? {
            all.extend(m);
        }
    }
    if all.is_empty() {
        return Ok(());
    }
    report.note(format!(
        "status: one emitter process, one follower in the bench, every process unpinned; \
         `<value>, updates/s` = updates the follower received per second, from the command to \
         the emitter until the follower had the last update, the median of {rounds} rounds of \
         a fixed count (small value {{\"cpu\":0.3,\"n\":N}}: {}; 1 KiB value, the same with a \
         text of {TEXT_1K} B: {}) after a round of a tenth of it; `<value>, emit calls/s` = \
         the emitter's calls per second until its last returned (the same rounds); the raw \
         subjects carry the bytes of troupe's input for the same update; issue #6 sets no \
         target for this figure",
        cases[0].count, cases[1].count
    ));
    let mut rows = Vec::new();
    for m in &all {
        rows.push((m.role, follower_row(m, &all, rounds)));
        if let Some(emit) = m.emit {
            rows.push((
                m.role,
                Row {
                    scenario: "status".into(),
                    case: format!("{}, emit calls/s", m.case.label),
                    subject: m.subject.into(),
                    value: emit,
                    unit: "calls/s".into(),
                    floor: None,
                    detail: format!(
                        "{} calls a round, the emitter's own rate (its calls return once the \
                         update is handed to Zenoh); {}",
                        m.case.count, m.topology
                    ),
                    placement: Some("any cpu".into()),
                    peers: Vec::new(),
                },
            ));
        }
    }
    report.add_compared(rows);
    Ok(())
}

/// The row of the follower's rate.
fn follower_row(m: &Measured, all: &[Measured], rounds: usize) -> Row {
    let mut detail = format!(
        "{} MiB/s of inputs ({} B each), {}..{} updates/s over {rounds} rounds of {}",
        figure(m.rate * m.input as f64 / (1 << 20) as f64),
        m.input,
        figure(m.range.0),
        figure(m.range.1),
        m.case.count,
    );
    if m.delivered < 1.0 {
        detail.push_str(&format!(
            "; the follower got {:.1}% of the updates",
            m.delivered * 100.0
        ));
    }
    if let Some(f) = m.flush {
        detail.push_str(&format!(
            "; flush after the last emit {} ms",
            figure(f.as_secs_f64() * 1e3)
        ));
    }
    if m.role == Role::Troupe {
        detail.push_str(&format!("; {} gaps (follower resets)", m.gaps));
    }
    detail.push_str("; ");
    detail.push_str(m.topology);
    detail.push_str(&fair(m, all));
    Row {
        scenario: "status".into(),
        case: format!("{}, updates/s", m.case.label),
        subject: m.subject.into(),
        value: m.rate,
        unit: "updates/s".into(),
        floor: None,
        detail,
        placement: Some("any cpu".into()),
        peers: Vec::new(),
    }
}

/// For a troupe row: its ratio to the fair floor of its case, and that no
/// target is set; empty for other rows.
fn fair(m: &Measured, all: &[Measured]) -> String {
    if m.role != Role::Troupe {
        return String::new();
    }
    let floor = all
        .iter()
        .find(|o| o.subject == FAIR && o.case.label == m.case.label);
    match floor {
        Some(f) => format!(
            "; {:.2}x {FAIR} (the fair floor); no target (issue #6 sets none)",
            m.rate / f.rate
        ),
        None => "; no target (issue #6 sets none)".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inputs_are_what_the_emitter_puts_and_of_the_announced_sizes() {
        let small = input("", FIRST_N).unwrap();
        assert_eq!(
            std::str::from_utf8(&small).unwrap(),
            r#"{"op":"set","path":"system.host0","value":{"cpu":0.3,"n":100000}}"#
        );
        let value = serde_json::to_vec(&Load::new(999_999, &text(TEXT_1K))).unwrap();
        assert_eq!(value.len(), 1024);
        assert_eq!(
            input(&text(TEXT_1K), FIRST_N).unwrap().len(),
            input(&text(TEXT_1K), 999_999).unwrap().len()
        );
    }

    #[test]
    fn batches_end_at_their_last_update() {
        let b = Batch {
            first: FIRST_N,
            count: 10,
            text: 0,
        };
        assert_eq!(b.last(), FIRST_N + 9);
        assert_eq!(cases(false).map(|c| c.count), [200_000, 50_000]);
    }

    #[test]
    fn troupe_rows_name_the_fair_floor_and_no_target() {
        let m = |subject: &'static str, role: Role, label: &'static str, rate: f64| Measured {
            subject,
            topology: "",
            role,
            case: Case {
                label,
                text: 0,
                count: 1,
            },
            rate,
            range: (rate, rate),
            delivered: 1.0,
            emit: None,
            flush: None,
            gaps: 0,
            input: 1,
        };
        let all = [
            m(FAIR, Role::Peer, "small value", 400.0),
            m(FAIR, Role::Peer, "1 KiB value", 100.0),
            m("troupe", Role::Troupe, "small value", 100.0),
        ];
        assert_eq!(
            fair(&all[2], &all),
            format!("; 0.25x {FAIR} (the fair floor); no target (issue #6 sets none)")
        );
        assert_eq!(fair(&all[0], &all), "");
    }
}
