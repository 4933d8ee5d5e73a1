//! The pattern commands: `publish` and `respond` speak as an instance,
//! `subscribe` and `request` from outside.
//!
//! `publish` and `respond` need a [`This`]. In a process a server started
//! (the `TROUPE_*` environment) it is that instance; elsewhere the console
//! attaches itself to the server at `--endpoint` under `--app` (default
//! `console`), says on stderr which instance it is, and detaches when done,
//! so that the instance ends `success` (or `error`) rather than "connection
//! ended".
//!
//! Every wait is bounded (`--wait`, `--timeout`, the server's request
//! timeout) or ends at Ctrl-C.

use crate::args::{Cli, Identity, PublishArgs, RequestArgs, RespondArgs, SubscribeArgs};
use crate::console::{connect, fail, Failure, Outcome};
use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine as _;
use serde_json::Value;
use std::io::{BufRead, Write};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::signal::unix::{signal, Signal, SignalKind};
use tokio::sync::mpsc;
use troupe::{
    Content, Error, Message, PublisherOptions, SessionOptions, State, Subscriber,
    SubscriberOptions, This,
};

/// The application name the console attaches under by default.
const DEFAULT_APP: &str = "console";

/// The shortest time between two warnings of missed messages.
const WARN_EVERY: Duration = Duration::from_secs(1);

/// SIGINT and SIGTERM, caught from the start of a command so that one that
/// comes during a bounded call is seen by the next wait instead of killing
/// the process half-way.
pub(crate) struct Interrupts {
    int: Signal,
    term: Signal,
}

impl Interrupts {
    pub(crate) fn catch() -> Result<Self, Failure> {
        let catch = |kind| signal(kind).map_err(|e| fail(2, format!("cannot catch signals: {e}")));
        Ok(Self {
            int: catch(SignalKind::interrupt())?,
            term: catch(SignalKind::terminate())?,
        })
    }

    /// Waits for either signal; what happened, for people.
    pub(crate) async fn recv(&mut self) -> &'static str {
        tokio::select! {
            _ = self.int.recv() => "interrupted",
            _ = self.term.recv() => "terminated",
        }
    }
}

/// The failure of the other side of a pattern (exit status 1), or an error.
fn other_side(e: Error) -> Failure {
    let code = if matches!(e, Error::Gone(_) | Error::Refused(_)) {
        1
    } else {
        2
    };
    fail(code, e.to_string())
}

pub(crate) fn check_name(kind: &str, name: &str) -> Result<(), Failure> {
    troupe_protocol::validate_name(kind, name).map_err(|e| fail(2, e.to_string()))
}

/// Whether a server started this process: its identity is in the
/// environment. (`TROUPE_ENDPOINT` alone is a user's setting, not one.)
pub(crate) fn managed() -> bool {
    use troupe_protocol::env;
    [env::SERVER, env::APP, env::INSTANCE]
        .iter()
        .any(|k| std::env::var_os(k).is_some_and(|v| !v.is_empty()))
}

/// The instance `publish` and `respond` speak as.
struct Me {
    this: This,
    attached: bool,
}

impl Me {
    /// The instance this process is, or a new one attached under `--app`.
    /// `doing` and `hint` complete what is printed for an attached one.
    async fn new(cli: &Cli, id: &Identity, doing: &str, hint: &str) -> Result<Me, Failure> {
        if id.app.is_none() && managed() {
            let this = This::init().await?;
            return Ok(Me {
                this,
                attached: false,
            });
        }
        let app = id.app.as_deref().unwrap_or(DEFAULT_APP);
        let opts = SessionOptions {
            timeout: cli.request_timeout,
            ..SessionOptions::default()
        };
        let this = This::attach_with(&cli.endpoint, app, opts).await?;
        eprintln!(
            "troupe: {doing} as instance {id} ({app}) on {server}: troupe {hint}",
            id = this.id(),
            app = this.app(),
            server = this.server_name(),
            hint = hint.replace("ID", &this.id().to_string()),
        );
        Ok(Me {
            this,
            attached: true,
        })
    }

    /// Ends an attached instance as the outcome says (bounded by the
    /// server's timeout; a failure only loses the nicer terminal state).
    async fn finish(self, outcome: &Outcome) {
        if self.attached {
            let state = match outcome {
                Ok(0) => State::Success,
                _ => State::Error,
            };
            if let Err(e) = self.this.detach(state).await {
                tracing::debug!(error = %e, "detach failed");
            }
        }
    }
}

/// `troupe publish NAME`.
pub(crate) async fn publish(cli: &Cli, a: &PublishArgs) -> Outcome {
    check_name("publisher", &a.name)?;
    let mut interrupts = Interrupts::catch()?;
    let doing = format!("publishing {}", a.name);
    let hint = format!("subscribe ID {}", a.name);
    let me = Me::new(cli, &a.identity, &doing, &hint).await?;
    let outcome = publish_as(&me.this, a, &mut interrupts).await;
    me.finish(&outcome).await;
    outcome
}

async fn publish_as(this: &This, a: &PublishArgs, interrupts: &mut Interrupts) -> Outcome {
    let opts = PublisherOptions {
        synchronised: a.subscribers.map(|n| n as usize),
        send_timeout: a.wait,
        ..PublisherOptions::default()
    };
    let publisher = this.publisher_with(&a.name, opts).await?;
    let mut stop = this.stop_notifier();
    let mut lines = stdin_lines();
    let mut sent = 0u64;
    let mut why = None;
    if let Some(n) = a.subscribers {
        tokio::select! {
            r = publisher.wait_for_subscribers(n as usize, a.wait) => { r?; }
            w = interrupts.recv() => why = Some(w),
            () = stop.wait() => why = Some("asked to stop"),
        }
    }
    while why.is_none() {
        let line = tokio::select! {
            line = lines.recv() => line,
            w = interrupts.recv() => { why = Some(w); break; }
            () = stop.wait() => { why = Some("asked to stop"); break; }
        };
        let line = match line {
            Some(Ok(line)) => line,
            Some(Err(e)) => return Err(fail(2, format!("cannot read standard input: {e}"))),
            None => break,
        };
        let message = match String::from_utf8(line) {
            Ok(text) => Message::text(text),
            Err(e) => Message::bytes(e.into_bytes()),
        };
        tokio::select! {
            r = publisher.send(message) => { r?; sent += 1; }
            w = interrupts.recv() => why = Some(w),
            () = stop.wait() => why = Some("asked to stop"),
        }
    }
    if let Some(why) = why {
        eprintln!(
            "troupe: {why}: ending the stream of {} after {sent} message{}",
            a.name,
            if sent == 1 { "" } else { "s" }
        );
    }
    tokio::select! {
        r = publisher.end() => r?,
        w = interrupts.recv() => {
            return Err(fail(
                2,
                format!("{w} before every subscriber confirmed the end of {}", a.name),
            ))
        }
    }
    Ok(0)
}

/// The lines of standard input without their line ends, read by a thread
/// of their own: a pending read must not keep the runtime from shutting
/// down, as one in tokio's blocking pool would.
fn stdin_lines() -> mpsc::Receiver<std::io::Result<Vec<u8>>> {
    let (tx, rx) = mpsc::channel(64);
    std::thread::spawn(move || {
        let mut stdin = std::io::stdin().lock();
        loop {
            let mut line = Vec::new();
            let sent = match stdin.read_until(b'\n', &mut line) {
                Ok(0) => return,
                Ok(_) => {
                    if line.last() == Some(&b'\n') {
                        line.pop();
                        if line.last() == Some(&b'\r') {
                            line.pop();
                        }
                    }
                    tx.blocking_send(Ok(line))
                }
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    let _ = tx.blocking_send(Err(e));
                    return;
                }
            };
            if sent.is_err() {
                return;
            }
        }
    });
    rx
}

/// `troupe subscribe TARGET NAME`.
pub(crate) async fn subscribe(cli: &Cli, a: &SubscribeArgs) -> Outcome {
    check_name("publisher", &a.name)?;
    let mut interrupts = Interrupts::catch()?;
    let server = connect(cli).await?;
    // An instance that has ended fails at once (`Gone`), not after --wait.
    let inst = server.find(&a.target).await?;
    let label = format!(
        "publisher {} of instance {} ({})",
        a.name,
        inst.id(),
        inst.app()
    );
    let opts = SubscriberOptions {
        timeout: Some(a.wait),
        queue: a.queue as usize,
    };
    let mut sub = tokio::select! {
        s = inst.subscriber_with(&a.name, opts) => s?,
        _ = interrupts.recv() => return Ok(0),
    };
    let mut missed = Missed::default();
    loop {
        let next = tokio::select! {
            m = sub.recv() => m,
            _ = interrupts.recv() => {
                missed.warn(&sub, &label, true);
                return Ok(0);
            }
        };
        let message = match next {
            Ok(Some(m)) => m,
            Ok(None) => {
                missed.warn(&sub, &label, true);
                return Ok(0);
            }
            Err(e) => {
                missed.warn(&sub, &label, true);
                return Err(other_side(e));
            }
        };
        missed.warn(&sub, &label, false);
        let line = if a.json {
            message_json(&message).to_string()
        } else {
            one_line(&message.display())
        };
        if !print_line(&line)? {
            return Ok(0);
        }
    }
}

/// The warnings of missed messages a subscriber gave so far.
#[derive(Debug, Default)]
struct Missed {
    reported: u64,
    last: Option<Instant>,
}

impl Missed {
    /// Warns when more messages were missed, at most once per
    /// [`WARN_EVERY`] unless `last`.
    fn warn(&mut self, sub: &Subscriber, label: &str, last: bool) {
        let total = sub.missed();
        if total <= self.reported || !(last || self.last.is_none_or(|t| t.elapsed() >= WARN_EVERY))
        {
            return;
        }
        eprintln!(
            "troupe: warning: {total} message{} of {label} missed{}: this subscriber did not keep up (see --queue)",
            if total == 1 { "" } else { "s" },
            if last { "" } else { " so far" },
        );
        self.reported = total;
        self.last = Some(Instant::now());
    }
}

/// `troupe respond NAME`.
pub(crate) async fn respond(cli: &Cli, a: &RespondArgs) -> Outcome {
    check_name("responder", &a.name)?;
    let mut interrupts = Interrupts::catch()?;
    let doing = format!("serving {}", a.name);
    let hint = format!("request ID {} MESSAGE", a.name);
    let me = Me::new(cli, &a.identity, &doing, &hint).await?;
    let outcome = respond_as(&me.this, a, &mut interrupts).await;
    me.finish(&outcome).await;
    outcome
}

async fn respond_as(this: &This, a: &RespondArgs, interrupts: &mut Interrupts) -> Outcome {
    let answer = a.answer.reply.clone().map(Message::text);
    let served = Arc::new(AtomicU64::new(0));
    let mut workers = tokio::task::JoinSet::new();
    for _ in 0..a.workers {
        let mut responder = this.responder(&a.name).await?;
        let (answer, served) = (answer.clone(), served.clone());
        workers.spawn(async move {
            // A worker ends only when its session does.
            loop {
                let request = match responder.recv().await {
                    Ok(request) => request,
                    Err(e) => return e,
                };
                let n = served.fetch_add(1, Ordering::Relaxed) + 1;
                let line = format!(
                    "request {n} from {}: {}",
                    request.from(),
                    one_line(&request.message().display())
                );
                let reply = answer.clone().unwrap_or_else(|| request.message().clone());
                match request.reply(reply).await {
                    Ok(()) => {
                        let _ = print_line(&line);
                    }
                    Err(e) => eprintln!("troupe: {line}: not answered: {e}"),
                }
            }
        });
    }
    let mut stop = this.stop_notifier();
    let why = tokio::select! {
        w = interrupts.recv() => w,
        () = stop.wait() => "asked to stop",
        Some(ended) = workers.join_next() => {
            let why = match ended {
                Ok(e) => e.to_string(),
                Err(join) => join.to_string(),
            };
            return Err(fail(2, format!("a worker of {} stopped: {why}", a.name)));
        }
    };
    workers.abort_all();
    let n = served.load(Ordering::Relaxed);
    eprintln!(
        "troupe: {why}: {} served {n} request{}",
        a.name,
        if n == 1 { "" } else { "s" }
    );
    Ok(0)
}

/// `troupe request TARGET NAME MESSAGE`.
pub(crate) async fn request(cli: &Cli, a: &RequestArgs) -> Outcome {
    check_name("responder", &a.name)?;
    let server = connect(cli).await?;
    // An instance that has ended fails at once (`Gone`), not after
    // --timeout.
    let inst = server.find(&a.target).await?;
    let requester = inst.requester(&a.name).await?;
    let mut answer = requester
        .request_stream(Message::text(a.message.clone()), a.timeout)
        .await?;
    while let Some(part) = answer.next().await.map_err(other_side)? {
        let line = if a.json {
            message_json(&part).to_string()
        } else {
            part.display()
        };
        if !print_line(&line)? {
            break;
        }
    }
    Ok(0)
}

/// Writes one line to stdout; `false` when nobody reads it any more (a
/// reader such as `head` went away).
pub(crate) fn print_line(line: &str) -> Result<bool, Failure> {
    let mut out = std::io::stdout().lock();
    match writeln!(out, "{line}").and_then(|()| out.flush()) {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(false),
        Err(e) => Err(fail(2, format!("cannot write to standard output: {e}"))),
    }
}

/// `text` on one line: its line breaks as `\n` and `\r`.
pub(crate) fn one_line(text: &str) -> String {
    text.replace('\r', "\\r").replace('\n', "\\n")
}

/// A message as a JSON object: its content type, its header if any, and its
/// body as text, a JSON value or an array; bytes that are not UTF-8 (and a
/// body that is not what its content type says) in base64, under
/// `header_base64` and `body_base64`.
fn message_json(m: &Message) -> Value {
    let mut o = serde_json::Map::new();
    o.insert("content".into(), m.content().as_str().into());
    if let Some(h) = m.header() {
        match std::str::from_utf8(h) {
            Ok(text) => o.insert("header".into(), text.into()),
            Err(_) => o.insert("header_base64".into(), BASE64.encode(h).into()),
        };
    }
    let body: Option<Value> = match m.content() {
        Content::Json => serde_json::from_slice(m.body()).ok(),
        Content::F64s => m.to_f64s().ok().map(Value::from),
        Content::I32s => m.to_i32s().ok().map(Value::from),
        Content::Text | Content::Bytes => std::str::from_utf8(m.body()).ok().map(Value::from),
    };
    match body {
        Some(body) => o.insert("body".into(), body),
        None => o.insert("body_base64".into(), BASE64.encode(m.body()).into()),
    };
    Value::Object(o)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn messages_as_json() {
        let text = Message::text("héllo");
        assert_eq!(
            message_json(&text),
            json!({"content": "text", "body": "héllo"})
        );
        let doc = Message::json(&json!({"x": [1, 2]})).unwrap();
        assert_eq!(
            message_json(&doc),
            json!({"content": "json", "body": {"x": [1, 2]}})
        );
        let f = Message::f64s(&[1.5, -2.0]).with_header(b"frame 7".to_vec());
        assert_eq!(
            message_json(&f),
            json!({"content": "f64s", "header": "frame 7", "body": [1.5, -2.0]})
        );
        let i = Message::i32s(&[1, i32::MIN]);
        assert_eq!(
            message_json(&i),
            json!({"content": "i32s", "body": [1, i32::MIN]})
        );
        let b = Message::bytes(vec![0u8, 1, 255]).with_header(vec![0xffu8]);
        assert_eq!(
            message_json(&b),
            json!({"content": "bytes", "header_base64": "/w==", "body_base64": "AAH/"})
        );
        assert_eq!(
            message_json(&Message::bytes("ok")),
            json!({"content": "bytes", "body": "ok"})
        );
    }

    #[test]
    fn one_message_one_line() {
        assert_eq!(one_line("a\nb\r\nc"), "a\\nb\\r\\nc");
        assert_eq!(one_line("plain"), "plain");
    }

    #[test]
    fn the_other_sides_failures_exit_1() {
        assert_eq!(other_side(Error::Gone("x".into())).code, 1);
        assert_eq!(other_side(Error::Refused("x".into())).code, 1);
        assert_eq!(other_side(Error::Timeout("x".into())).code, 2);
    }
}
