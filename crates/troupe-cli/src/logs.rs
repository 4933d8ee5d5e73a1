//! The distributed logging commands: `troupe logs` prints the records the
//! servers keep (and, with `--follow`, the new ones as they come);
//! `troupe logdump` writes the new ones to rotated files.
//!
//! Both reach the whole realm through the server at `--endpoint` (a
//! client session): the kept records are asked of every server at once
//! and merged by time, and live records are followed from every server.
//! A record is one line: `TIME LEVEL server/app/id target: message
//! key=value ...`, or its JSON with `--json`. Records a source dropped, or
//! that were lost on the way, are reported on stderr (and in the dump).
//!
//! Every wait is bounded (the request timeout) or, when following, made of
//! bounded waits that end at Ctrl-C or SIGTERM, or when the server goes
//! away.

use crate::args::{Cli, LogFilterArgs, LogdumpArgs, LogsArgs};
use crate::console::{connect, fail, Failure, Outcome};
use crate::patterns::{one_line, print_line, Interrupts};
use futures::StreamExt;
use serde_json::Value;
use std::time::{Duration, Instant, UNIX_EPOCH};
use troupe::log::{LogEvent, LogFilter, LogGap, LogRecord};
use troupe::EventStream;
use troupe_server::LogFile;

/// The longest a follower waits in one call: a slice of its endless loop.
const SLICE: Duration = Duration::from_millis(200);
/// `logdump` writes its buffer out at least this often while records come.
const FLUSH_EVERY: Duration = Duration::from_secs(1);
/// The name of the current dump file in `--dir`.
const DUMP_FILE: &str = "troupe.log";

impl LogFilterArgs {
    fn filter(&self) -> LogFilter {
        LogFilter {
            level: self.level.unwrap_or(troupe::LogLevel::Trace),
            server: self.server.clone(),
            app: self.app.clone(),
            instance: self.instance,
        }
    }
}

/// A record as one line of text: `TIME LEVEL origin target: message
/// key=value ...`. Line breaks inside are shown as `\n`.
pub(crate) fn text_line(r: &LogRecord) -> String {
    let time = humantime::format_rfc3339_millis(UNIX_EPOCH + Duration::from_millis(r.time_ms));
    let mut line = format!(
        "{time} {:<5} {} {}: {}",
        r.level,
        r.origin(),
        r.target,
        one_line(&r.message)
    );
    for (key, value) in &r.fields {
        line.push(' ');
        line.push_str(key);
        line.push('=');
        line.push_str(&field_text(value));
    }
    line
}

/// A field's value as text: a plain string as it is, a string with spaces,
/// quotes or `=` in JSON quotes, anything else as compact JSON.
fn field_text(value: &Value) -> String {
    match value {
        Value::String(s)
            if !s.is_empty()
                && !s
                    .chars()
                    .any(|c| c.is_whitespace() || c.is_control() || c == '"' || c == '=') =>
        {
            s.clone()
        }
        other => other.to_string(),
    }
}

/// The record as the command prints it.
fn render(r: &LogRecord, json: bool) -> String {
    if json {
        serde_json::to_string(r).unwrap_or_default()
    } else {
        text_line(r)
    }
}

/// What a gap says, for people.
fn gap_text(g: &LogGap) -> String {
    let plural = |n: u64| if n == 1 { "" } else { "s" };
    match (g.dropped, g.lost) {
        (d, 0) => format!("{d} record{} dropped by {}", plural(d), g.origin),
        (0, l) => format!("{l} record{} of {} lost on the way", plural(l), g.origin),
        (d, l) => format!(
            "{d} record{} dropped by {}, and {l} lost on the way",
            plural(d),
            g.origin
        ),
    }
}

/// The gap before a record read from a server: what its source dropped.
fn kept_gap(r: &LogRecord) -> Option<LogGap> {
    (r.dropped > 0).then(|| LogGap {
        origin: r.origin(),
        source: r.source.clone(),
        dropped: r.dropped,
        lost: 0,
    })
}

/// Waits for the end of `events`: the server went away.
async fn server_gone(events: &mut EventStream) {
    while events.next().await.is_some() {}
}

/// `troupe logs`.
pub(crate) async fn logs(cli: &Cli, a: &LogsArgs) -> Outcome {
    let mut interrupts = Interrupts::catch()?;
    let server = connect(cli).await?;
    let session = server.session();
    let filter = a.filter.filter();
    if !a.follow {
        let records = troupe::log::recent(session, &filter, a.last, cli.request_timeout).await?;
        if records.is_empty() {
            eprintln!("troupe: no log records kept");
        }
        for r in &records {
            if let Some(g) = kept_gap(r) {
                eprintln!("troupe: {}", gap_text(&g));
            }
            if !print_line(&render(r, a.json))? {
                return Ok(0);
            }
        }
        return Ok(0);
    }
    // Subscribe first, then read what is kept: nothing falls between.
    let mut follower = troupe::log::follow(session, filter).await?;
    let mut events = server.watch().await?;
    for r in follower.recent(a.last, cli.request_timeout).await? {
        if let Some(g) = kept_gap(&r) {
            eprintln!("troupe: {}", gap_text(&g));
        }
        if !print_line(&render(&r, a.json))? {
            return Ok(0);
        }
    }
    loop {
        tokio::select! {
            event = follower.next(SLICE) => match event {
                Ok(LogEvent::Record(r)) => {
                    if !print_line(&render(&r, a.json))? {
                        return Ok(0);
                    }
                }
                Ok(LogEvent::Gap(g)) => eprintln!("troupe: {}", gap_text(&g)),
                Err(e) if e.is_timeout() => {}
                Err(e) => return Err(e.into()),
            },
            _ = interrupts.recv() => return Ok(0),
            () = server_gone(&mut events) => {
                return Err(fail(2, format!("server {} went away", server.name())));
            }
        }
    }
}

/// `troupe logdump`.
pub(crate) async fn logdump(cli: &Cli, a: &LogdumpArgs) -> Outcome {
    let mut interrupts = Interrupts::catch()?;
    let server = connect(cli).await?;
    let path = a.dir.join(DUMP_FILE);
    let file = LogFile::open(path.clone(), a.max_size as u64, a.max_files)
        .map_err(|e| fail(2, format!("cannot open {}: {e}", path.display())))?;
    let mut follower = troupe::log::follow(server.session(), a.filter.filter()).await?;
    let mut events = server.watch().await?;
    eprintln!("troupe: writing log records to {}", path.display());
    let mut dump = Dump {
        file,
        written: 0,
        dirty: false,
        flushed: Instant::now(),
    };
    let outcome = loop {
        tokio::select! {
            event = follower.next(SLICE) => match event {
                Ok(LogEvent::Record(r)) => {
                    if let Err(e) = dump.write(&render(&r, a.json), true) {
                        break Err(e);
                    }
                }
                Ok(LogEvent::Gap(g)) => {
                    let text = gap_text(&g);
                    eprintln!("troupe: {text}");
                    if !a.json {
                        if let Err(e) = dump.write(&format!("# {text}"), false) {
                            break Err(e);
                        }
                    }
                }
                Err(e) if e.is_timeout() => {
                    // Quiet: write out what is buffered.
                    if let Err(e) = dump.flush() {
                        break Err(e);
                    }
                }
                Err(e) => break Err(e.into()),
            },
            why = interrupts.recv() => {
                eprintln!(
                    "troupe: {why}: wrote {} record{}",
                    dump.written,
                    if dump.written == 1 { "" } else { "s" }
                );
                break Ok(0);
            }
            () = server_gone(&mut events) => {
                break Err(fail(2, format!("server {} went away", server.name())));
            }
        }
        if dump.flushed.elapsed() >= FLUSH_EVERY {
            if let Err(e) = dump.flush() {
                break Err(e);
            }
        }
    };
    let flushed = dump
        .file
        .flush()
        .map_err(|e| fail(2, format!("cannot write {}: {e}", path.display())));
    outcome.and_then(|code| flushed.map(|()| code))
}

/// The dump file and what was written to it.
struct Dump {
    file: LogFile,
    /// Records written.
    written: u64,
    dirty: bool,
    flushed: Instant,
}

impl Dump {
    /// Writes `line`, a record's when `record`.
    fn write(&mut self, line: &str, record: bool) -> Result<(), Failure> {
        self.file.write_line(line.as_bytes()).map_err(|e| {
            fail(
                2,
                format!("cannot write {}: {e}", self.file.path().display()),
            )
        })?;
        self.dirty = true;
        self.written += u64::from(record);
        Ok(())
    }

    fn flush(&mut self) -> Result<(), Failure> {
        self.flushed = Instant::now();
        if std::mem::take(&mut self.dirty) {
            self.file.flush().map_err(|e| {
                fail(
                    2,
                    format!("cannot write {}: {e}", self.file.path().display()),
                )
            })?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use troupe::LogLevel;

    fn record() -> LogRecord {
        let mut fields = serde_json::Map::new();
        fields.insert("frame".into(), 42.into());
        fields.insert("name".into(), "left".into());
        fields.insert("why".into(), "too late".into());
        fields.insert("ok".into(), true.into());
        LogRecord {
            time_ms: 1_763_779_200_123,
            level: LogLevel::Warn,
            target: "cam::grab".into(),
            message: "frame late\nagain".into(),
            fields,
            host: "h".into(),
            server: Some("lab1".into()),
            app: Some("cam".into()),
            instance: Some(3),
            source: "ab".into(),
            seq: 1,
            dropped: 0,
        }
    }

    #[test]
    fn a_record_is_one_line() {
        assert_eq!(
            text_line(&record()),
            "2025-11-22T02:40:00.123Z WARN  lab1/cam/3 cam::grab: frame late\\nagain \
             frame=42 name=left ok=true why=\"too late\""
        );
        let json: Value = serde_json::from_str(&render(&record(), true)).unwrap();
        assert_eq!(json["level"], "warn");
        assert_eq!(json["fields"]["frame"], 42);
    }

    #[test]
    fn gaps_are_told_plainly() {
        let g = |dropped, lost| LogGap {
            origin: "lab1/cam/3".into(),
            source: "ab".into(),
            dropped,
            lost,
        };
        assert_eq!(gap_text(&g(1, 0)), "1 record dropped by lab1/cam/3");
        assert_eq!(
            gap_text(&g(0, 5)),
            "5 records of lab1/cam/3 lost on the way"
        );
        assert_eq!(
            gap_text(&g(2, 1)),
            "2 records dropped by lab1/cam/3, and 1 lost on the way"
        );
        assert_eq!(kept_gap(&record()), None);
        let r = LogRecord {
            dropped: 7,
            ..record()
        };
        assert_eq!(kept_gap(&r), Some(g(7, 0)));
    }
}
