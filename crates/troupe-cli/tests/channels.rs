//! The channel commands as a user runs them: the real `troupe` binary
//! (`channel listen`, `send`, `ping`, `ls`) against a real `troupe server`
//! process, over loopback. Every wait is bounded; every process a test
//! starts is killed (by pid) and reaped, even when the test fails.

mod common;

use common::{signal, Running, ServerProcess, COMMAND_TIMEOUT};
use nix::sys::signal::Signal;
use std::time::{Duration, Instant};

/// What must happen "promptly": errors, a clean stop.
const QUICK: Duration = Duration::from_secs(5);

/// Starts `troupe channel listen ARGS...` in the background and waits
/// (bounded) until it says that it listens.
#[track_caller]
fn start_listener(server: &ServerProcess, args: &[&str]) -> Running {
    let mut listener = spawn_listener(server, args);
    listener.expect_stderr("troupe: listening on channel ", COMMAND_TIMEOUT);
    listener
}

/// `troupe channel listen ARGS...` in the background (no stdin).
fn spawn_listener(server: &ServerProcess, args: &[&str]) -> Running {
    let mut cmd = server.console(&["channel", "listen"]);
    cmd.args(args);
    Running::spawn_keeping_stdin(cmd)
}

#[test]
fn send_gets_the_reply_and_listen_prints_sync_and_async_messages() {
    let server = ServerProcess::start(None);
    let mut listen = start_listener(&server, &["echoes", "--echo"]);

    let out = server.run(&["channel", "send", "echoes", "hello there"]);
    assert_eq!(out.ok(), "hello there", "{out:#?}");
    let line = listen.expect_line_starting("sync from ", QUICK);
    assert!(line.ends_with(": hello there"), "{line}");

    let out = server.run(&["channel", "send", "echoes", "two\nlines", "--async"]);
    assert_eq!(out.ok(), "", "{out:#?}");
    assert!(out.stderr.is_empty(), "{out:#?}");
    let line = listen.expect_line_starting("async from ", QUICK);
    assert!(line.ends_with(": two\\nlines"), "{line}");

    signal(listen.pid(), Signal::SIGINT);
    let ended = listen.finish(COMMAND_TIMEOUT);
    assert_eq!(ended.code, Some(0), "{ended:#?}");
    assert!(ended.elapsed < QUICK, "{ended:#?}");
    assert!(
        ended.stderr.iter().any(|l| {
            l
            == "troupe: interrupted: channel echoes took 2 messages (1 synchronous, 1 asynchronous)"
        }),
        "{ended:#?}"
    );
}

#[test]
fn ls_and_ping_show_a_listening_channel_that_sigterm_ends() {
    let server = ServerProcess::start(None);
    let mut listen = start_listener(
        &server,
        &[
            "status",
            "--reply",
            "ok",
            "--async-bound",
            "8",
            "--max-message",
            "64KiB",
        ],
    );
    let owner = listen
        .expect_stderr("listening on channel status as ", QUICK)
        .split(" as ")
        .nth(1)
        .and_then(|rest| rest.split(':').next())
        .expect("an owner")
        .to_string();

    let ls = server.run(&["channel", "ls"]);
    let table: Vec<&str> = ls.ok().lines().collect();
    assert_eq!(table.len(), 2, "{ls:#?}");
    assert!(table[0].starts_with("NAME "), "{ls:#?}");
    let row: Vec<&str> = table[1].split_whitespace().collect();
    assert_eq!(row[0], "status", "{ls:#?}");
    assert_eq!(row[1], owner, "{ls:#?}");
    assert_eq!(row[4..], ["8", "64KiB", "holds"], "{ls:#?}");

    let json = server.run(&["channel", "ls", "--json"]);
    let list: serde_json::Value = serde_json::from_str(json.ok()).unwrap();
    assert_eq!(list[0]["name"], "status", "{json:#?}");
    assert_eq!(list[0]["max_message"], 65536, "{json:#?}");
    assert_eq!(list[0]["losing"], false, "{json:#?}");

    let ping = server.run(&["channel", "ping", "status"]);
    let said = ping.ok();
    assert!(
        said.starts_with("status: alive (") && said.ends_with(" ms)"),
        "{ping:#?}"
    );
    // The reply of --reply; then one too large for the channel is refused
    // before it goes out.
    assert_eq!(server.run(&["channel", "send", "status", "?"]).ok(), "ok");
    let big = "x".repeat(70 * 1024);
    let out = server.run(&["channel", "send", "status", &big]);
    let error = out.one_line_error(2);
    assert!(
        error.contains("too large: a message of 71680 bytes is larger than the 65536 bytes"),
        "{error}"
    );

    signal(listen.pid(), Signal::SIGTERM);
    let ended = listen.finish(COMMAND_TIMEOUT);
    assert_eq!(ended.code, Some(0), "{ended:#?}");
    assert!(
        ended
            .stderr
            .iter()
            .any(|l| l.starts_with("troupe: terminated: channel status took 1 message")),
        "{ended:#?}"
    );
}

#[test]
fn a_taken_name_fails_a_second_listen_until_its_owner_dies() {
    let server = ServerProcess::start(None);
    let first = start_listener(&server, &["solo"]);
    let second = spawn_listener(&server, &["solo", "--echo"]);
    let ended = second.finish(COMMAND_TIMEOUT);
    assert_eq!(ended.code, Some(2), "{ended:#?}");
    assert_eq!(ended.stderr.len(), 1, "{ended:#?}");
    assert!(
        ended.stderr[0].starts_with("troupe: error: name taken: channel solo is already owned by "),
        "{ended:#?}"
    );
    assert!(ended.stdout.is_empty(), "{ended:#?}");

    // A dead owner frees the name: a new listen gets it and answers.
    signal(first.pid(), Signal::SIGKILL);
    assert_eq!(first.finish(COMMAND_TIMEOUT).code, None);
    let deadline = Instant::now() + COMMAND_TIMEOUT;
    let mut third = loop {
        let mut l = spawn_listener(&server, &["solo", "--reply", "again"]);
        let said = l.expect_stderr("troupe: ", COMMAND_TIMEOUT);
        if said.starts_with("troupe: listening on channel solo") {
            break l;
        }
        assert!(Instant::now() < deadline, "the name stays taken: {said}");
        drop(l);
        std::thread::sleep(Duration::from_millis(100));
    };
    let out = server.run(&["channel", "send", "solo", "hi"]);
    assert_eq!(out.ok(), "again", "{out:#?}");
    third.expect_line_starting("sync from ", QUICK);
}

#[test]
fn an_unknown_channel_fails_send_and_ping_within_their_bound() {
    let server = ServerProcess::start(None);
    let out = server.run(&["channel", "send", "nobody", "hi", "--timeout", "500ms"]);
    let error = out.one_line_error(2);
    assert_eq!(
        error,
        "troupe: error: not found: no channel named nobody (waited 500ms)"
    );
    assert!(out.elapsed < Duration::from_secs(3), "{out:#?}");

    let out = server.run(&["channel", "ping", "nobody", "--timeout", "300ms"]);
    let error = out.one_line_error(1);
    assert!(error.contains("no channel named nobody"), "{out:#?}");
    assert!(out.stdout.is_empty(), "{out:#?}");
    assert!(out.elapsed < Duration::from_secs(3), "{out:#?}");

    let out = server.run(&["channel", "send", "a b", "hi"]);
    let error = out.one_line_error(2);
    assert!(error.contains("invalid channel name"), "{out:#?}");
    assert!(out.elapsed < QUICK, "{out:#?}");

    // No channel at all: nothing on stdout, a note on stderr.
    let ls = server.run(&["channel", "ls"]);
    assert_eq!(ls.ok(), "", "{ls:#?}");
    assert_eq!(ls.stderr.trim(), "troupe: no channels", "{ls:#?}");
    let json = server.run(&["channel", "ls", "--json"]);
    assert_eq!(json.ok(), "[]", "{json:#?}");
}
