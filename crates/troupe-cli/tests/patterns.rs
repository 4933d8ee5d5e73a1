//! The pattern commands as a user runs them: the real `troupe` binary
//! (`publish`, `subscribe`, `respond`, `request`) against a real `troupe
//! server` process, over loopback. Every wait is bounded; every process a
//! test starts is killed (by pid) and reaped, even when it fails.

mod common;

use common::{signal, write_config, Background, Running, ServerProcess, COMMAND_TIMEOUT};
use nix::sys::signal::Signal;
use std::time::{Duration, Instant};

/// What must happen "promptly": errors, and noticing a dead peer.
const QUICK: Duration = Duration::from_secs(5);

/// Applications for these tests: the troupe binary itself as a responder
/// and as a publisher fed by a pipe (both take their identity from the
/// environment the server gives them), the fixture's pattern modes, and an
/// idle instance.
fn config(dir: &std::path::Path) -> std::path::PathBuf {
    let text = r#"
[[app]]
name = "calc"
executable = "@BIN@"
args = ["respond", "calc", "--echo"]

[[app]]
name = "late"
executable = "sh"
args = ["-c", 'while [ ! -e "$GO" ]; do sleep 0.05; done; printf "one\ntwo\n" | "$TROUPE_BIN" publish greetings --subscribers 1']
env = { TROUPE_BIN = "@BIN@", GO = "@GO@" }

[[app]]
name = "fx"
executable = "@FIXTURE@"
args = ["respond", "calc"]

[[app]]
name = "kinds"
executable = "@FIXTURE@"
args = ["publish-kinds", "kinds"]

[[app]]
name = "idle"
executable = "sleep"
args = ["1000"]
"#
    .replace("@BIN@", common::troupe_bin())
    .replace("@FIXTURE@", &fixture())
    .replace("@GO@", &dir.join("go").display().to_string());
    write_config(dir, "troupe.toml", &text)
}

fn fixture() -> String {
    let fixture = troupe_testkit::fixture();
    assert!(
        std::path::Path::new(&fixture).exists(),
        "{fixture} is missing: run `cargo build -p troupe-testkit --bins` first"
    );
    fixture
}

/// A server on [`config`] (and the directory of its configuration).
fn server() -> (ServerProcess, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let server = ServerProcess::start(Some(&config(dir.path())));
    (server, dir)
}

/// The instance id from the line an attached command prints.
#[track_caller]
fn attached_id(proc: &mut Running) -> String {
    let line = proc.expect_stderr(" as instance ", COMMAND_TIMEOUT);
    line.split(" as instance ")
        .nth(1)
        .and_then(|rest| rest.split_whitespace().next())
        .unwrap_or_else(|| panic!("no id in {line:?}"))
        .to_string()
}

/// Writes `line` to a plain publisher until the subscriber prints a
/// message, which says it is subscribed; returns that message.
#[track_caller]
fn until_subscribed(publish: &mut Running, line: &str, sub: &Running) -> String {
    let deadline = Instant::now() + COMMAND_TIMEOUT;
    loop {
        assert!(Instant::now() < deadline, "the subscriber printed nothing");
        publish.write(&format!("{line}\n"));
        if let Some(got) = sub.line(Instant::now() + Duration::from_millis(200)) {
            return got;
        }
    }
}

/// The ids of the instances of `app`.
fn instances_of(server: &ServerProcess, app: &str) -> Vec<String> {
    server
        .ps()
        .iter()
        .filter(|i| i["app"] == app)
        .map(|i| i["id"].to_string())
        .collect()
}

#[test]
fn publish_from_stdin_reaches_a_subscriber_that_exits_0_at_the_end() {
    let (server, _dir) = server();
    let mut publish = Running::spawn(server.console(&[
        "publish",
        "greetings",
        "--subscribers",
        "1",
        "--app",
        "news",
    ]));
    let id = attached_id(&mut publish);
    let said = publish.expect_stderr(" as instance ", QUICK);
    assert!(
        said.contains(&format!("(news) on {}", server.name()))
            && said.contains(&format!("troupe subscribe {id} greetings")),
        "{said}"
    );
    // Synchronised: what is written before the subscriber comes waits.
    publish.write("hello\nwörld\n");
    let mut sub = Running::spawn(server.console(&["subscribe", "news", "greetings"]));
    assert_eq!(sub.expect_line("hello", COMMAND_TIMEOUT), "hello");
    assert_eq!(sub.expect_line("wörld", COMMAND_TIMEOUT), "wörld");
    publish.write("third\n");
    assert_eq!(sub.expect_line("third", COMMAND_TIMEOUT), "third");
    publish.close_stdin();
    let sub = sub.finish(COMMAND_TIMEOUT);
    assert_eq!(sub.code, Some(0), "{sub:#?}");
    assert!(sub.stdout.is_empty() && sub.stderr.is_empty(), "{sub:#?}");
    let publish = publish.finish(COMMAND_TIMEOUT);
    assert_eq!(publish.code, Some(0), "{publish:#?}");
    assert_eq!(server.state(&id), "success");
}

#[test]
fn a_plain_publisher_reaches_a_subscriber_from_when_it_joins_in_json() {
    let (server, _dir) = server();
    let mut publish = Running::spawn(server.console(&["publish", "plain", "--app", "plain"]));
    let id = attached_id(&mut publish);
    let sub = Running::spawn(server.console(&["subscribe", &id, "plain", "--json"]));
    let first = until_subscribed(&mut publish, "early", &sub);
    let early: serde_json::Value = serde_json::from_str(&first).unwrap();
    assert_eq!(
        early,
        serde_json::json!({"content": "text", "body": "early"})
    );
    publish.write("last line\n");
    publish.close_stdin();
    let sub = sub.finish(COMMAND_TIMEOUT);
    assert_eq!(sub.code, Some(0), "{sub:#?}");
    let bodies: Vec<serde_json::Value> = sub
        .stdout
        .iter()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap()["body"].clone())
        .collect();
    let (last, rest) = bodies.split_last().expect("at least the last line");
    assert_eq!(last, "last line", "{sub:#?}");
    assert!(rest.iter().all(|b| b == "early"), "{sub:#?}");
    publish.finish(COMMAND_TIMEOUT);
}

#[test]
fn subscribe_waits_for_a_publisher_that_an_app_declares_later() {
    let (server, dir) = server();
    // The app runs `troupe publish` under `sh`: it publishes as the
    // instance the server started, from the environment.
    let id = server.run(&["start", "late"]).ok().to_string();
    server.wait_state(&id, "running");
    let mut sub = Running::spawn(server.console(&["subscribe", &id, "greetings", "--wait", "20s"]));
    std::thread::sleep(Duration::from_millis(500));
    assert!(sub.running(), "subscribe did not wait");
    assert!(sub.line(Instant::now()).is_none());
    std::fs::write(dir.path().join("go"), "").unwrap();
    assert_eq!(sub.expect_line("one", COMMAND_TIMEOUT), "one");
    assert_eq!(sub.expect_line("two", COMMAND_TIMEOUT), "two");
    let sub = sub.finish(COMMAND_TIMEOUT);
    assert_eq!(sub.code, Some(0), "{sub:#?}");
    server.wait_state(&id, "success");
    // No instance was attached: the publisher was the app's own.
    let apps: Vec<String> = server
        .ps()
        .iter()
        .map(|i| i["app"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(apps, ["late"], "log: {}", server.log_text());
}

#[test]
fn a_publisher_killed_without_ending_fails_its_subscriber_promptly() {
    let (server, _dir) = server();
    let mut publish = Running::spawn(server.console(&["publish", "greetings", "--app", "doomed"]));
    let id = attached_id(&mut publish);
    let sub = Running::spawn(server.console(&["subscribe", &id, "greetings"]));
    assert_eq!(until_subscribed(&mut publish, "x", &sub), "x");
    signal(publish.pid(), Signal::SIGKILL);
    let sub = sub.finish(COMMAND_TIMEOUT);
    let error = sub.one_line_error(1);
    assert!(
        error.contains(&format!("publisher greetings of instance {id} (doomed)"))
            && error.contains("went away without ending its stream"),
        "{sub:#?}"
    );
    assert!(sub.elapsed < QUICK, "{sub:#?}");
    drop(publish);
}

#[test]
fn sigint_to_publish_ends_the_stream_cleanly() {
    let (server, _dir) = server();
    let mut publish = Running::spawn(server.console(&[
        "publish",
        "greetings",
        "--subscribers",
        "1",
        "--app",
        "intr",
    ]));
    let id = attached_id(&mut publish);
    let mut sub = Running::spawn(server.console(&["subscribe", &id, "greetings"]));
    publish.write("x\n");
    assert_eq!(sub.expect_line("x", COMMAND_TIMEOUT), "x");
    signal(publish.pid(), Signal::SIGINT);
    let sub = sub.finish(COMMAND_TIMEOUT);
    assert_eq!(sub.code, Some(0), "{sub:#?}");
    let publish = publish.finish(COMMAND_TIMEOUT);
    assert_eq!(publish.code, Some(0), "{publish:#?}");
    assert!(
        publish.stderr_has("interrupted: ending the stream of greetings after 1 message"),
        "{publish:#?}"
    );
    assert_eq!(server.state(&id), "success");
}

#[test]
fn a_subscriber_that_does_not_keep_up_warns_of_the_messages_it_missed() {
    const FLOOD: usize = 3000;
    let (server, _dir) = server();
    let mut publish = Running::spawn(server.console(&["publish", "flood", "--app", "flood"]));
    let id = attached_id(&mut publish);
    let sub = Running::spawn(server.console(&["subscribe", &id, "flood", "--queue", "10"]));
    until_subscribed(&mut publish, "warm", &sub);
    // From now on nobody reads the subscriber's stdout: once its pipe is
    // full, it stops taking messages and its queue of 10 overflows.
    let long = "m".repeat(200);
    let text: String = (0..FLOOD).map(|i| format!("{i:05} {long}\n")).collect();
    publish.write(&text);
    let publish = publish.finish(COMMAND_TIMEOUT);
    assert_eq!(publish.code, Some(0), "{publish:#?}");
    let sub = sub.finish(COMMAND_TIMEOUT);
    assert_eq!(sub.code, Some(0), "{sub:#?}");
    let received = sub.stdout.iter().filter(|l| l.ends_with(&long)).count();
    assert!(received < FLOOD, "nothing missed: {received}");
    let warning = sub
        .stderr
        .iter()
        .rfind(|l| l.starts_with("troupe: warning: "))
        .unwrap_or_else(|| panic!("no warning: {:#?}", sub.stderr));
    let missed: usize = warning
        .trim_start_matches("troupe: warning: ")
        .split_whitespace()
        .next()
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no count in {warning:?}"));
    assert!(
        warning.contains(&format!("publisher flood of instance {id} (flood) missed")),
        "{warning}"
    );
    assert_eq!(received + missed, FLOOD, "{warning}");
}

#[test]
fn respond_echo_answers_requests_until_ctrl_c() {
    let (server, _dir) = server();
    let mut respond = Running::spawn(server.console(&[
        "respond",
        "calc",
        "--echo",
        "--workers",
        "2",
        "--app",
        "svc",
    ]));
    let id = attached_id(&mut respond);
    let said = respond.expect_stderr(" as instance ", QUICK);
    assert!(
        said.contains(&format!("troupe request {id} calc MESSAGE")),
        "{said}"
    );

    let answer = server.run(&["request", "svc", "calc", "hello there"]);
    assert_eq!(answer.ok(), "hello there", "{answer:#?}");
    let answer = server.run(&["request", &id, "calc", "two\nlines", "--json"]);
    let json: serde_json::Value = serde_json::from_str(answer.ok()).unwrap();
    assert_eq!(
        json,
        serde_json::json!({"content": "text", "body": "two\nlines"})
    );
    let served = respond.expect_line("a served request", QUICK);
    assert!(
        served.starts_with("request 1 from ") && served.ends_with(": hello there"),
        "{served}"
    );
    let served = respond.expect_line("a served request", QUICK);
    assert!(
        served.starts_with("request 2 from ") && served.ends_with(": two\\nlines"),
        "{served}"
    );

    signal(respond.pid(), Signal::SIGINT);
    let respond = respond.finish(COMMAND_TIMEOUT);
    assert_eq!(respond.code, Some(0), "{respond:#?}");
    assert!(
        respond.stderr_has("interrupted: calc served 2 requests"),
        "{respond:#?}"
    );
    assert!(respond.elapsed < QUICK, "{respond:#?}");
    assert_eq!(server.state(&id), "success");
}

#[test]
fn respond_ends_cleanly_when_its_instance_is_stopped() {
    let (server, _dir) = server();
    let mut respond = Running::spawn(server.console(&["respond", "ping", "--reply", "pong"]));
    let id = attached_id(&mut respond);
    let answer = server.run(&["request", "console", "ping", "anything"]);
    assert_eq!(answer.ok(), "pong", "{answer:#?}");
    let stop = server.run(&["stop", &id]);
    assert!(
        stop.ok().starts_with(&format!("{id} console stopped")),
        "{stop:#?}"
    );
    let respond = respond.finish(COMMAND_TIMEOUT);
    assert_eq!(respond.code, Some(0), "{respond:#?}");
    assert_eq!(respond.stdout.len(), 1, "{respond:#?}");
}

#[test]
fn respond_inside_a_server_takes_its_identity_from_the_environment() {
    let (server, _dir) = server();
    // The app is the troupe binary itself: `troupe respond calc --echo`.
    let id = server.run(&["start", "calc"]).ok().to_string();
    let answer = server.run(&["request", "calc", "calc", "2+2", "--timeout", "15s"]);
    assert_eq!(
        answer.ok(),
        "2+2",
        "{answer:#?}; log: {}",
        server.log_text()
    );
    assert_eq!(instances_of(&server, "console"), Vec::<String>::new());
    assert_eq!(server.ps().len(), 1);

    let stop = server.run(&["stop", "calc"]);
    assert!(
        stop.ok().starts_with(&format!("{id} calc stopped")),
        "{stop:#?}"
    );
    // It ended by itself, at the stop signal or the stop event: exit code 0.
    assert_eq!(server.instance(&id)["exit_code"], 0);
    let output = server.run(&["connect", &id]);
    assert!(
        output.ok().starts_with("request 1 from ") && output.ok().ends_with(": 2+2"),
        "{output:#?}"
    );
}

#[test]
fn request_without_a_responder_times_out_within_its_bound() {
    let (server, _dir) = server();
    let id = server.run(&["start", "idle"]).ok().to_string();
    let out = server.run(&["request", &id, "nobody", "hi", "--timeout", "500ms"]);
    out.expect_code(2).expect_one_line_error();
    assert!(
        out.stderr.contains("timeout: responder nobody of instance")
            && out.stderr.contains("500ms"),
        "{out:#?}"
    );
    assert!(out.elapsed < Duration::from_secs(3), "{out:#?}");
}

#[test]
fn request_prints_every_part_and_reports_a_refusal() {
    let (server, _dir) = server();
    let id = server.run(&["start", "fx"]).ok().to_string();
    let parts = server.run(&["request", &id, "calc", "parts 3 10", "--timeout", "15s"]);
    assert_eq!(
        parts.ok().lines().collect::<Vec<_>>(),
        ["part 1", "part 2", "part 3"],
        "{parts:#?}"
    );
    let refused = server.run(&["request", &id, "calc", "fail not today"]);
    refused.expect_code(1).expect_one_line_error();
    assert!(
        refused
            .stderr
            .contains("refused: responder calc of instance")
            && refused.stderr.contains(": not today"),
        "{refused:#?}"
    );
}

#[test]
fn a_responder_killed_with_the_request_pending_fails_it_promptly() {
    let (server, _dir) = server();
    let id = server.run(&["start", "fx"]).ok().to_string();
    let output = Background::spawn(server.console(&["connect", &id]));
    let request =
        Running::spawn(server.console(&["request", &id, "calc", "hold", "--timeout", "20s"]));
    let deadline = Instant::now() + COMMAND_TIMEOUT;
    while output
        .next_line(deadline)
        .expect("the fixture holds the request")
        != "holding 1"
    {}
    let pid = server.instance(&id)["pid"].as_u64().expect("a pid") as u32;
    signal(pid, Signal::SIGKILL);
    let request = request.finish(COMMAND_TIMEOUT);
    let error = request.one_line_error(1);
    assert!(
        error.contains("its worker went away with the request pending"),
        "{request:#?}"
    );
    assert!(request.elapsed < QUICK, "{request:#?}");
}

#[test]
fn a_request_after_the_responder_was_killed_fails_at_once() {
    let (server, _dir) = server();
    let mut respond =
        Running::spawn(server.console(&["respond", "ping", "--reply", "pong", "--app", "svc"]));
    let id = attached_id(&mut respond);
    assert_eq!(server.run(&["request", &id, "ping", "1"]).ok(), "pong");
    signal(respond.pid(), Signal::SIGKILL);
    assert_eq!(respond.finish(COMMAND_TIMEOUT).code, None);
    server.wait_state(&id, "error");
    let out = server.run(&["request", &id, "ping", "2", "--timeout", "20s"]);
    let error = out.one_line_error(2);
    assert!(
        error.contains(&format!("instance {id} (svc) has ended (error")),
        "{out:#?}"
    );
    assert!(out.elapsed < QUICK, "{out:#?}");
}

#[test]
fn subscribe_json_shows_every_content_type() {
    let (server, _dir) = server();
    let id = server.run(&["start", "kinds"]).ok().to_string();
    let out = server.run(&["subscribe", &id, "kinds", "--json"]);
    let got: Vec<serde_json::Value> = out
        .ok()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let want = serde_json::json!([
        {"content": "bytes", "body_base64": "AAH/"},
        {"content": "text", "body": "héllo, wörld"},
        {"content": "json", "body": {"sensor": "t-1", "values": [20.5, -3.0], "ok": true}},
        {"content": "f64s", "body": [1.5, -2.25, f64::MAX]},
        {"content": "i32s", "body": [1, -2, i32::MIN]},
        {"content": "f64s", "header": "frame 7", "body": [0.5]},
    ]);
    assert_eq!(serde_json::Value::from(got), want, "{out:#?}");
    server.wait_state(&id, "success");
}

#[test]
fn bad_names_and_unknown_targets_exit_2_at_once() {
    let (server, _dir) = server();
    let idle = server.run(&["start", "idle"]).ok().to_string();
    for (args, needle) in [
        (vec!["publish", "a b"], "invalid publisher name \"a b\""),
        (vec!["publish", "ok", "--app", "x/y"], "invalid app name"),
        (vec!["respond", ".calc", "--echo"], "invalid responder name"),
        (vec!["subscribe", &idle, "a*"], "invalid publisher name"),
        (vec!["request", &idle, "", "hi"], "invalid responder name"),
        (vec!["subscribe", "999", "greetings"], "not found"),
        (
            vec!["subscribe", "nope", "greetings"],
            "no instance of app nope",
        ),
        (
            vec!["request", "nope", "calc", "hi"],
            "no instance of app nope",
        ),
        (vec!["request", "999", "calc", "hi"], "not found"),
    ] {
        let out = server.run(&args);
        out.expect_code(2).expect_one_line_error();
        assert!(out.stderr.contains(needle), "{args:?}: {out:#?}");
        assert!(out.elapsed < QUICK, "{args:?}: {out:#?}");
    }
    // None of them attached an instance.
    assert_eq!(server.ps().len(), 1);

    let out = server.run(&[
        "publish",
        "lonely",
        "--subscribers",
        "1",
        "--wait",
        "300ms",
        "--app",
        "lonely",
    ]);
    out.expect_code(2);
    assert!(
        out.stderr.contains("timeout: publisher lonely of instance")
            && out.stderr.contains("0 of 1 subscribers after 300ms"),
        "{out:#?}"
    );
    assert!(out.elapsed < QUICK, "{out:#?}");
    let lonely = instances_of(&server, "lonely");
    assert_eq!(lonely.len(), 1);
    assert_eq!(server.state(&lonely[0]), "error");
}
