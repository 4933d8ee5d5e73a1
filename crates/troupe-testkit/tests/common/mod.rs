//! Helpers shared by the integration tests: every wait here is bounded.
#![allow(dead_code)] // each test binary uses its own part of this module

use std::future::Future;
use std::time::Duration;
use troupe::{EventStream, Instance, OutputLine, OutputStream, Server, State, StateEvent};
use troupe_testkit::{fixture, TestServer, TIMEOUT};

/// Connects a client to the test server.
pub async fn connect(s: &TestServer) -> Server {
    within(
        "connect",
        Server::connect(s.endpoint(), Duration::from_secs(5)),
    )
    .await
    .expect("connect")
}

/// A configuration text with `FIXTURE` replaced by the fixture's path.
pub fn config(text: &str) -> String {
    text.replace("FIXTURE", &fixture())
}

/// Awaits `fut`, at most [`TIMEOUT`].
pub async fn within<T>(what: &str, fut: impl Future<Output = T>) -> T {
    match tokio::time::timeout(TIMEOUT, fut).await {
        Ok(v) => v,
        Err(_) => panic!("{what}: not within {TIMEOUT:?}"),
    }
}

/// Polls `cond` until it holds, at most `limit`.
pub async fn eventually(what: &str, limit: Duration, mut cond: impl FnMut() -> bool) {
    let end = tokio::time::Instant::now() + limit;
    while !cond() {
        assert!(
            tokio::time::Instant::now() < end,
            "{what}: not within {limit:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Starts `app` with `args`.
pub async fn start(server: &Server, app: &str, args: &[&str]) -> Instance {
    within(&format!("start {app}"), server.start(app, args))
        .await
        .unwrap_or_else(|e| panic!("start {app}: {e}"))
}

/// Waits until the instance is terminal.
pub async fn ended(inst: &Instance) -> troupe::InstanceInfo {
    inst.wait_for(Some(TIMEOUT))
        .await
        .unwrap_or_else(|e| panic!("instance {} did not end: {e}", inst.id()))
}

/// Waits until the instance is in `state` (fails if it ends otherwise).
pub async fn reached(inst: &Instance, state: State) -> troupe::InstanceInfo {
    let info = inst
        .wait_for_state(&[state], Some(TIMEOUT))
        .await
        .unwrap_or_else(|e| panic!("instance {} not {state}: {e}", inst.id()));
    assert_eq!(
        info.state,
        state,
        "instance {} ended before {state}: {info:?}",
        inst.id()
    );
    info
}

/// The next event of instance `id` on a server-wide stream.
pub async fn next_event(events: &mut EventStream, id: u64) -> StateEvent {
    loop {
        let ev = events
            .next_timeout(TIMEOUT)
            .await
            .expect("a state event in time")
            .expect("the event stream ended");
        if ev.id == id {
            return ev;
        }
    }
}

/// The events of instance `id` up to and with its terminal one.
pub async fn events_until_end(events: &mut EventStream, id: u64) -> Vec<StateEvent> {
    let mut out = Vec::new();
    loop {
        let ev = next_event(events, id).await;
        let last = ev.state.is_terminal();
        out.push(ev);
        if last {
            return out;
        }
    }
}

/// Skips events of instance `id` until one in `state`, which is returned.
pub async fn event_in(events: &mut EventStream, id: u64, state: State) -> StateEvent {
    loop {
        let ev = next_event(events, id).await;
        if ev.state == state {
            return ev;
        }
        assert!(
            !ev.state.is_terminal(),
            "instance {id} ended ({ev:?}) before {state}"
        );
    }
}

/// The states of `events`.
pub fn states(events: &[StateEvent]) -> Vec<State> {
    events.iter().map(|e| e.state).collect()
}

/// The next output line, which must come in time.
pub async fn next_line(out: &mut OutputStream) -> Option<OutputLine> {
    out.next_timeout(TIMEOUT)
        .await
        .expect("an output line in time")
}

/// Reads output lines until one whose text is `text`.
pub async fn line_with(out: &mut OutputStream, text: &str) -> OutputLine {
    loop {
        match next_line(out).await {
            Some(l) if l.text == text => return l,
            Some(_) => {}
            None => panic!("the output ended without the line {text:?}"),
        }
    }
}

/// All the remaining lines, until the end of the output.
pub async fn rest_of(out: &mut OutputStream) -> Vec<OutputLine> {
    let mut lines = Vec::new();
    while let Some(l) = next_line(out).await {
        lines.push(l);
    }
    lines
}

/// The whole output of the instance (it must end in time).
pub async fn all_output(inst: &Instance) -> Vec<OutputLine> {
    let mut out = within("open the output", inst.output())
        .await
        .expect("output");
    rest_of(&mut out).await
}

/// The texts of `lines`.
pub fn texts(lines: &[OutputLine]) -> Vec<String> {
    lines.iter().map(|l| l.text.clone()).collect()
}

/// The state letter and parent of process `pid`, if it exists.
fn stat(pid: u32) -> Option<(char, u32)> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let (_, rest) = stat.rsplit_once(')')?;
    let mut fields = rest.split_whitespace();
    let state = fields.next()?.chars().next()?;
    let ppid = fields.next()?.parse().ok()?;
    Some((state, ppid))
}

/// Whether `pid` is a zombie child of this (the test's) process: ended, and
/// not reaped by the in-process server.
pub fn is_our_zombie(pid: u32) -> bool {
    matches!(stat(pid), Some(('Z', ppid)) if ppid == std::process::id())
}

/// The zombie children of this process.
pub fn our_zombies() -> Vec<u32> {
    troupe_testkit::children_of(std::process::id())
        .into_iter()
        .filter(|p| is_our_zombie(*p))
        .collect()
}

/// The pids in `pids` that are still alive.
pub fn alive(pids: &[u32]) -> Vec<u32> {
    pids.iter()
        .copied()
        .filter(|p| !troupe_testkit::process_gone(*p))
        .collect()
}

/// A process the test spawned itself: killed and waited when dropped.
#[derive(Debug)]
pub struct ChildGuard(pub std::process::Child);

impl ChildGuard {
    /// Its pid.
    pub fn pid(&self) -> u32 {
        self.0.id()
    }

    /// Waits (bounded, polling) for it to exit by itself.
    pub async fn exited(&mut self) -> std::process::ExitStatus {
        let end = tokio::time::Instant::now() + TIMEOUT;
        loop {
            if let Some(status) = self.0.try_wait().expect("try_wait") {
                return status;
            }
            assert!(
                tokio::time::Instant::now() < end,
                "process {} did not exit",
                self.pid()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

impl Drop for ChildGuard {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The applications of the pattern tests: each runs the fixture in one mode,
/// the start's arguments appended (see the table in troupe-fixture.rs).
pub const PATTERN_APPS: &str = r#"
[[app]]
name = "publisher"
executable = "FIXTURE"
args = ["publish"]
multiple = "unlimited"
[[app]]
name = "forever"
executable = "FIXTURE"
args = ["publish-forever"]
multiple = "unlimited"
[[app]]
name = "kinds"
executable = "FIXTURE"
args = ["publish-kinds"]
[[app]]
name = "twice"
executable = "FIXTURE"
args = ["publish-twice"]
[[app]]
name = "subscriber"
executable = "FIXTURE"
args = ["subscribe"]
multiple = "unlimited"
[[app]]
name = "client-subscriber"
executable = "FIXTURE"
args = ["subscribe"]
multiple = "unlimited"
mode = "client"
[[app]]
name = "responder"
executable = "FIXTURE"
args = ["respond"]
multiple = "unlimited"
stopping_time = "10s"
[[app]]
name = "requester"
executable = "FIXTURE"
args = ["request"]
multiple = "unlimited"
[[app]]
name = "starter"
executable = "FIXTURE"
args = ["starter", "sleeper"]
multiple = "unlimited"
[[app]]
name = "remote-starter"
executable = "FIXTURE"
args = ["starter-on"]
multiple = "unlimited"
[[app]]
name = "sleeper"
executable = "FIXTURE"
args = ["sleep"]
multiple = "unlimited"
[[app]]
name = "channel-owner"
executable = "FIXTURE"
args = ["channel-owner"]
multiple = "unlimited"
[[app]]
name = "channel-client"
executable = "FIXTURE"
args = ["channel-client"]
multiple = "unlimited"
[[app]]
name = "probe"
executable = "FIXTURE"
args = ["object"]
multiple = "unlimited"
"#;

/// A server running [`PATTERN_APPS`], and a client connected to it.
pub async fn pattern_server() -> (TestServer, Server) {
    let s = TestServer::start(&config(PATTERN_APPS)).expect("start the server");
    let server = connect(&s).await;
    (s, server)
}

/// A subscriber of `name` of `inst` that waits for its publisher at most
/// [`TIMEOUT`] (not the client's 5 s: fixtures start slowly on a loaded
/// machine).
pub async fn subscribe(inst: &Instance, name: &str) -> troupe::Subscriber {
    subscribe_with(inst, name, troupe::SubscriberOptions::default()).await
}

/// Like [`subscribe`], with options (their timeout replaced).
pub async fn subscribe_with(
    inst: &Instance,
    name: &str,
    opts: troupe::SubscriberOptions,
) -> troupe::Subscriber {
    let opts = troupe::SubscriberOptions {
        timeout: Some(TIMEOUT),
        ..opts
    };
    within("subscribe", inst.subscriber_with(name, opts))
        .await
        .unwrap_or_else(|e| panic!("subscribe to {name} of {}: {e}", inst.id()))
}

/// The number a fixture publisher sent as the text of `m`.
pub fn number(m: &troupe::Message) -> u64 {
    let text = m.as_text().unwrap_or_else(|e| panic!("{m:?}: {e}"));
    text.parse()
        .unwrap_or_else(|_| panic!("a number, not {text:?}"))
}

/// The next message's number; `None` at the end of the stream.
pub async fn next_number(sub: &mut troupe::Subscriber) -> troupe::Result<Option<u64>> {
    within("a message", sub.recv())
        .await
        .map(|m| m.as_ref().map(number))
}

/// The numbers of every message until the end of the stream.
pub async fn read_to_end(sub: &mut troupe::Subscriber) -> Vec<u64> {
    let mut out = Vec::new();
    while let Some(n) = next_number(sub)
        .await
        .unwrap_or_else(|e| panic!("after {} messages: {e}", out.len()))
    {
        out.push(n);
    }
    out
}

/// Reads output lines until one starting with `prefix`; the rest of it.
pub async fn line_after(out: &mut OutputStream, prefix: &str) -> String {
    loop {
        match next_line(out).await {
            Some(l) => {
                if let Some(rest) = l.text.strip_prefix(prefix) {
                    return rest.to_string();
                }
            }
            None => panic!("the output ended without a line starting with {prefix:?}"),
        }
    }
}

/// The instance's result as text (it must have one).
pub async fn result_text(inst: &Instance) -> String {
    let r = within("result", inst.result())
        .await
        .unwrap_or_else(|e| panic!("result of {}: {e}", inst.id()))
        .unwrap_or_else(|| panic!("instance {} has no result", inst.id()));
    String::from_utf8(r).expect("a text result")
}

/// The next message, which must come in time (not the end of the stream).
pub async fn next_message(sub: &mut troupe::Subscriber) -> troupe::Message {
    within("a message", sub.recv())
        .await
        .unwrap_or_else(|e| panic!("a message: {e}"))
        .expect("a message, not the end of the stream")
}
