//! The status commands as a user runs them: the real `troupe` binary
//! (`status`, `status set`, `status rm`, `status --follow`) against a real
//! `troupe server` process, over loopback. Every wait is bounded; every
//! process a test starts is killed (by pid) and reaped, even when the test
//! fails.

mod common;

use common::{signal, Running, ServerProcess, COMMAND_TIMEOUT};
use nix::sys::signal::Signal;
use std::time::Duration;

/// What must happen promptly.
const QUICK: Duration = Duration::from_secs(5);

#[test]
fn set_then_status_prints_the_tree_as_lines_or_json_and_rm_removes() {
    let server = ServerProcess::start(None);
    let out = server.run(&["status"]);
    assert_eq!(out.ok(), "", "{out:#?}");
    assert_eq!(out.stderr.trim(), "troupe: nothing in the status tree");

    let set = |path: &str, json: &str| {
        let out = server.run(&["status", "set", path, json]);
        assert_eq!(out.ok(), "", "{out:#?}");
    };
    set("system.foo", r#"{"cpu": 0.3, "memory": 0.7}"#);
    set("system.foo", r#"{"cpu": 0.4}"#);
    set("system.name", r#""lab 1""#);
    set("apps.x.up", "true");
    // Each set waited until applied: the next read shows it.
    let out = server.run(&["status"]);
    assert_eq!(
        out.ok(),
        "apps.x.up = true\n\
         system.foo.cpu = 0.4\n\
         system.foo.memory = 0.7\n\
         system.name = \"lab 1\"",
        "{out:#?}"
    );
    let out = server.run(&["status", "system.foo", "apps"]);
    assert_eq!(
        out.ok(),
        "apps.x.up = true\nsystem.foo.cpu = 0.4\nsystem.foo.memory = 0.7",
        "{out:#?}"
    );
    let out = server.run(&["status", "system", "--json"]);
    let tree: serde_json::Value = serde_json::from_str(out.ok()).expect("JSON");
    assert_eq!(
        tree,
        serde_json::json!({"system": {"foo": {"cpu": 0.4, "memory": 0.7}, "name": "lab 1"}})
    );
    assert!(out.stdout.lines().count() > 1, "pretty JSON: {out:#?}");

    let out = server.run(&["status", "rm", "system.foo"]);
    assert_eq!(out.ok(), "", "{out:#?}");
    let out = server.run(&["status", "remove", "nothing.there"]);
    assert_eq!(out.ok(), "", "{out:#?}");
    let out = server.run(&["status", "system"]);
    assert_eq!(out.ok(), "system.name = \"lab 1\"", "{out:#?}");
    let out = server.run(&["status", "nothing"]);
    assert_eq!(out.ok(), "", "{out:#?}");
    assert_eq!(
        out.stderr.trim(),
        "troupe: nothing in the status tree under nothing"
    );
}

#[test]
fn follow_prints_the_tree_then_each_update_until_sigint() {
    let server = ServerProcess::start(None);
    server
        .run(&["status", "set", "system.foo", r#"{"cpu": 0.3}"#])
        .ok();
    server.run(&["status", "set", "other", "1"]).ok();
    let mut follow =
        Running::spawn_keeping_stdin(server.console(&["status", "system", "apps.a", "--follow"]));
    assert_eq!(
        follow.expect_line("the tree", COMMAND_TIMEOUT),
        "system.foo.cpu = 0.3"
    );
    follow.expect_stderr(
        "troupe: following the status tree under system, apps.a through server ",
        COMMAND_TIMEOUT,
    );
    server
        .run(&["status", "set", "system.foo", r#"{"cpu": 0.5, "mem": 1}"#])
        .ok();
    server.run(&["status", "set", "other", "2"]).ok();
    // Set above a mask: cut to it.
    server
        .run(&["status", "set", "apps", r#"{"a": {"up": true}, "b": 1}"#])
        .ok();
    server.run(&["status", "rm", "system.foo"]).ok();
    assert_eq!(
        follow.expect_line("an update", QUICK),
        r#"set system.foo = {"cpu":0.5,"mem":1}"#
    );
    assert_eq!(
        follow.expect_line("an update", QUICK),
        r#"set apps.a = {"up":true}"#
    );
    assert_eq!(follow.expect_line("an update", QUICK), "remove system.foo");
    signal(follow.pid(), Signal::SIGINT);
    let ended = follow.finish(COMMAND_TIMEOUT);
    assert_eq!(ended.code, Some(0), "{ended:#?}");
    assert!(ended.stdout.is_empty(), "{ended:#?}");
    assert!(
        ended.stderr_has("troupe: interrupted: 3 status updates"),
        "{ended:#?}"
    );
}

#[test]
fn follow_json_prints_one_object_per_line_and_sigterm_ends_it() {
    let server = ServerProcess::start(None);
    server.run(&["status", "set", "a.b", "1"]).ok();
    let mut follow =
        Running::spawn_keeping_stdin(server.console(&["status", "a", "--follow", "--json"]));
    let first: serde_json::Value =
        serde_json::from_str(&follow.expect_line("the snapshot", COMMAND_TIMEOUT)).expect("JSON");
    assert_eq!(
        first,
        serde_json::json!({"op": "snapshot", "path": "", "value": {"a": {"b": 1}}})
    );
    follow.expect_stderr("troupe: following ", COMMAND_TIMEOUT);
    server.run(&["status", "set", "a.c", r#"[1, "x"]"#]).ok();
    let line: serde_json::Value =
        serde_json::from_str(&follow.expect_line("an update", QUICK)).expect("JSON");
    assert_eq!(line["op"], "set", "{line}");
    assert_eq!(line["path"], "a.c", "{line}");
    assert_eq!(line["value"], serde_json::json!([1, "x"]), "{line}");
    assert!(
        line["origin"]
            .as_str()
            .is_some_and(|o| o.starts_with(&format!("{}-", server.name()))),
        "{line}"
    );
    assert!(line["seq"].as_u64().is_some_and(|s| s >= 2), "{line}");
    signal(follow.pid(), Signal::SIGTERM);
    let ended = follow.finish(COMMAND_TIMEOUT);
    assert_eq!(ended.code, Some(0), "{ended:#?}");
    assert!(
        ended.stderr_has("troupe: terminated: 1 status update"),
        "{ended:#?}"
    );
}

#[test]
fn bad_paths_json_and_masks_exit_2_with_one_line() {
    let server = ServerProcess::start(None);
    let out = server.run(&["status", "set", "a..b", "1"]);
    let e = out.one_line_error(2);
    assert!(e.contains("invalid status path \"a..b\""), "{e}");
    let out = server.run(&["status", "set", "a.b", "lab1"]);
    let e = out.one_line_error(2);
    assert!(
        e.contains("\"lab1\" is not a JSON value") && e.contains(r#"'"lab1"'"#),
        "{e}"
    );
    let out = server.run(&["status", "set", "a", r#"{"b.c": 1}"#]);
    let e = out.one_line_error(2);
    assert!(e.contains("\"a.b.c\""), "{e}");
    let out = server.run(&["status", "rm", ""]);
    let e = out.one_line_error(2);
    assert!(e.contains("root"), "{e}");
    let out = server.run(&["status", "a b"]);
    out.one_line_error(2);
    let out = server.run(&["status", "x/y", "--follow"]);
    out.one_line_error(2);
    // Nothing of it reached the tree.
    let out = server.run(&["status", "--json"]);
    assert_eq!(out.ok(), "{}", "{out:#?}");
}

#[test]
fn no_server_is_an_error_at_once() {
    let endpoint = format!("tcp/127.0.0.1:{}", troupe_testkit::free_port());
    for args in [
        vec!["status"],
        vec!["status", "set", "a", "1"],
        vec!["status", "--follow"],
    ] {
        let mut cmd = common::troupe_command();
        cmd.args(["-e", &endpoint]).args(&args);
        let out = common::run_with(cmd, None, COMMAND_TIMEOUT);
        let e = out.one_line_error(2);
        assert!(e.contains("server unreachable"), "{args:?}: {e}");
        assert!(out.elapsed < QUICK, "{args:?}: {out:#?}");
    }
}
