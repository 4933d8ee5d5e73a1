//! The logging commands as a user runs them: the real `troupe` binary
//! (`logs`, `logs --follow`, `logdump`) against a real `troupe server`
//! process whose instances log (the fixture's `log` mode), over loopback.
//! Every wait is bounded; every process a test starts is killed (by pid)
//! and reaped, even when it fails.

mod common;

use common::{signal, write_config, Running, ServerProcess, COMMAND_TIMEOUT};
use nix::sys::signal::Signal;
use std::path::Path;
use std::time::Duration;

/// What must happen "promptly": a clean stop.
const QUICK: Duration = Duration::from_secs(5);

/// A server with `logger` (the fixture's `log N LEVEL` mode) and `other`
/// (the same, another name), and the directory of its configuration.
fn server() -> (ServerProcess, tempfile::TempDir) {
    let fixture = troupe_testkit::fixture();
    assert!(
        Path::new(&fixture).exists(),
        "{fixture} is missing: run `cargo build -p troupe-testkit --bins` first"
    );
    let text = r#"
[[app]]
name = "logger"
executable = "@FIXTURE@"
args = ["log"]
multiple = "unlimited"

[[app]]
name = "other"
executable = "@FIXTURE@"
args = ["log"]
multiple = "unlimited"
"#
    .replace("@FIXTURE@", &fixture);
    let dir = tempfile::tempdir().unwrap();
    let server = ServerProcess::start(Some(&write_config(dir.path(), "troupe.toml", &text)));
    (server, dir)
}

/// Starts `app` with ARGS and waits until it succeeded; its id.
#[track_caller]
fn run_app(server: &ServerProcess, app: &str, args: &[&str]) -> String {
    let mut cmd = vec!["start", app];
    cmd.extend_from_slice(args);
    let id = server.run(&cmd).ok().to_string();
    let out = server.run(&["wait", &id]);
    assert!(out.ok().contains("success"), "{out:#?}");
    id
}

/// The fixture's lines of `text` (the others are the server's own).
fn fixture_lines(text: &str) -> Vec<&str> {
    text.lines()
        .filter(|l| l.contains(" troupe_fixture: "))
        .collect()
}

#[test]
fn logs_prints_what_the_servers_keep_filtered() {
    let (server, _dir) = server();
    let a = run_app(&server, "logger", &["3", "warn"]);
    let b = run_app(&server, "other", &["2", "error"]);

    let out = server.run(&["logs"]);
    let lines = fixture_lines(out.ok());
    assert_eq!(lines.len(), 5, "{out:#?}");
    let origin = format!(" {}/logger/{a} troupe_fixture: ", server.name());
    for (i, line) in lines[..3].iter().enumerate() {
        let n = i + 1;
        // TIME LEVEL server/app/id target: message key=value
        let (time, rest) = line.split_once(' ').unwrap();
        assert!(time.ends_with('Z') && time.len() == 24, "{line}");
        assert!(rest.starts_with("WARN "), "{line}");
        assert!(
            rest.ends_with(&format!("{origin}record {n} n={n}")),
            "{line}"
        );
    }
    assert!(lines[3].contains(&format!("ERROR {}/other/{b} ", server.name())));

    let out = server.run(&["logs", "--level", "error"]);
    let lines = fixture_lines(out.ok());
    assert_eq!(lines.len(), 2, "{out:#?}");
    let out = server.run(&["logs", "--app", "logger", "--last", "2"]);
    let lines = fixture_lines(out.ok());
    assert_eq!(lines.len(), 2, "{out:#?}");
    assert!(lines[1].ends_with("record 3 n=3"), "{out:#?}");
    let out = server.run(&["logs", "--instance", &b, "--json"]);
    let records: Vec<serde_json::Value> = out
        .ok()
        .lines()
        .map(|l| serde_json::from_str(l).expect("a JSON record"))
        .filter(|r: &serde_json::Value| r["target"] == "troupe_fixture")
        .collect();
    assert_eq!(records.len(), 2, "{out:#?}");
    assert_eq!(records[0]["app"], "other");
    assert_eq!(records[0]["level"], "error");
    assert_eq!(records[1]["fields"]["n"], 2);

    let out = server.run(&["logs", "--app", "nobody"]);
    assert_eq!(out.ok(), "");
    assert!(out.stderr.contains("no log records kept"), "{out:#?}");
    let e = server.run(&["logs", "--app", "a/b"]);
    assert!(e.one_line_error(2).contains("app"), "{e:#?}");
    let e = server.run(&["logs", "--level", "loud"]);
    e.expect_code(2);
    assert!(e.stderr.contains("unknown log level"), "{e:#?}");
}

#[test]
fn logs_follow_prints_the_kept_records_then_the_new_ones_once() {
    let (server, _dir) = server();
    let first = run_app(&server, "logger", &["2", "info"]);
    let mut follow =
        Running::spawn_keeping_stdin(server.console(&["logs", "--follow", "--app", "logger"]));
    let kept: Vec<String> = (0..2)
        .map(|_| follow.expect_line_starting("", COMMAND_TIMEOUT))
        .collect();
    for (i, line) in kept.iter().enumerate() {
        assert!(line.contains(&format!("/logger/{first} ")), "{line}");
        assert!(
            line.ends_with(&format!("record {} n={}", i + 1, i + 1)),
            "{line}"
        );
    }
    let second = run_app(&server, "logger", &["3", "info"]);
    // Records of another app meanwhile, which --app leaves out.
    run_app(&server, "other", &["1", "info"]);
    for n in 1..=3 {
        let line = follow.expect_line("a new record", COMMAND_TIMEOUT);
        assert!(line.contains(&format!("/logger/{second} ")), "{line}");
        assert!(line.ends_with(&format!("record {n} n={n}")), "{line}");
    }
    signal(follow.pid(), Signal::SIGINT);
    let ended = follow.finish(COMMAND_TIMEOUT);
    assert_eq!(ended.code, Some(0), "{ended:#?}");
    assert!(ended.elapsed < QUICK, "{ended:#?}");
    // Nothing twice, nothing of the other app.
    assert!(ended.stdout.is_empty(), "{ended:#?}");
}

/// Reads `dir`'s dump files, oldest first: (name, text).
fn dump_files(dir: &Path) -> Vec<(String, String)> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    // troupe.log.N (older first: higher N), then troupe.log.
    names.sort_by_key(|n| {
        std::cmp::Reverse(
            n.strip_prefix("troupe.log.")
                .and_then(|k| k.parse::<u32>().ok())
                .unwrap_or(0),
        )
    });
    names
        .into_iter()
        .map(|n| {
            let text = std::fs::read_to_string(dir.join(&n)).unwrap();
            (n, text)
        })
        .collect()
}

#[test]
fn logdump_writes_rotated_files_and_stops_on_a_signal() {
    let (server, dir) = server();
    let text_dir = dir.path().join("dump");
    let json_dir = dir.path().join("json");
    let mut dump = Running::spawn_keeping_stdin(server.console(&[
        "logdump",
        "--dir",
        text_dir.to_str().unwrap(),
        "--app",
        "logger",
        "--max-size",
        "2KiB",
        "--max-files",
        "2",
    ]));
    let mut json = Running::spawn_keeping_stdin(server.console(&[
        "logdump",
        "--dir",
        json_dir.to_str().unwrap(),
        "--level",
        "warn",
        "--json",
    ]));
    dump.expect_stderr("troupe: writing log records to ", COMMAND_TIMEOUT);
    json.expect_stderr("troupe: writing log records to ", COMMAND_TIMEOUT);

    let id = run_app(&server, "logger", &["100", "info", "quiet"]);
    run_app(&server, "other", &["3", "warn", "quiet"]);
    // Written within a second of the last record (quiet: at once).
    let current = text_dir.join("troupe.log");
    troupe_testkit::wait_until("the last record in the dump", COMMAND_TIMEOUT, || {
        std::fs::read_to_string(&current).is_ok_and(|t| t.contains("record 100 n=100"))
    })
    .unwrap();
    troupe_testkit::wait_until("the json dump", COMMAND_TIMEOUT, || {
        std::fs::read_to_string(json_dir.join("troupe.log")).is_ok_and(|t| t.lines().count() >= 3)
    })
    .unwrap();

    signal(dump.pid(), Signal::SIGTERM);
    let ended = dump.finish(COMMAND_TIMEOUT);
    assert_eq!(ended.code, Some(0), "{ended:#?}");
    assert!(ended.elapsed < QUICK, "{ended:#?}");
    assert!(
        ended.stderr_has("terminated: wrote 100 records"),
        "{ended:#?}"
    );
    signal(json.pid(), Signal::SIGINT);
    let ended = json.finish(COMMAND_TIMEOUT);
    assert_eq!(ended.code, Some(0), "{ended:#?}");

    // Rotated by size, two old files kept: the newest records, in order.
    let files = dump_files(&text_dir);
    let names: Vec<&str> = files.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(
        names,
        ["troupe.log.2", "troupe.log.1", "troupe.log"],
        "{names:?}"
    );
    let mut numbers = Vec::new();
    for (name, text) in &files {
        // One record past the size at most.
        assert!(text.len() <= 2048 + 200, "{name}: {} bytes", text.len());
        for line in text.lines() {
            assert!(
                line.contains(&format!("/logger/{id} troupe_fixture: record ")),
                "{line}"
            );
            let n: u64 = line.rsplit("n=").next().unwrap().parse().unwrap();
            numbers.push(n);
        }
    }
    assert_eq!(numbers.last(), Some(&100));
    assert!(numbers.len() > 20, "{numbers:?}");
    assert!(numbers.windows(2).all(|w| w[1] == w[0] + 1), "{numbers:?}");

    // The JSON dump: only warnings, of both apps, one record a line.
    let (_, text) = &dump_files(&json_dir)[0];
    let records: Vec<serde_json::Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).expect("a JSON record"))
        .collect();
    let mine: Vec<_> = records
        .iter()
        .filter(|r| r["target"] == "troupe_fixture")
        .collect();
    assert_eq!(mine.len(), 3, "{records:#?}");
    assert!(mine
        .iter()
        .all(|r| r["app"] == "other" && r["level"] == "warn"));
}
