//! `troupe server` refuses bad configurations at once, naming the file, the
//! line and the key, and never starts listening.

mod common;

use common::{run_with, troupe_command, write_config, Output};
use std::net::TcpListener;
use std::time::Duration;

/// Runs `troupe server` on `text` (written to a temporary `troupe.toml`) and
/// checks it fails fast without serving; returns the file path and the output.
fn refused(text: &str) -> (String, Output) {
    let dir = tempfile::tempdir().unwrap();
    let path = write_config(dir.path(), "troupe.toml", text);
    let port = troupe_testkit::free_port();
    let mut cmd = troupe_command();
    cmd.arg("server").arg("--config").arg(&path).args([
        "--listen",
        &format!("tcp/127.0.0.1:{port}"),
        "--name",
        "refused",
    ]);
    let out = run_with(cmd, None, Duration::from_secs(20));
    assert_eq!(out.code, Some(2), "{out:#?}");
    assert!(
        out.elapsed < Duration::from_secs(5),
        "slow refusal: {out:#?}"
    );
    assert!(!out.stderr.contains("server started"), "{out:#?}");
    assert!(
        TcpListener::bind(("127.0.0.1", port)).is_ok(),
        "the port was left bound: {out:#?}"
    );
    (path.display().to_string(), out)
}

#[track_caller]
fn assert_names(out: &Output, file: &str, line: usize, key: &str) {
    let place = format!("{file}:{line}: {key}: ");
    assert!(
        out.stderr.contains(&place),
        "stderr lacks {place:?}: {out:#?}"
    );
    out.expect_one_line_error();
}

#[test]
fn unknown_app_key_is_refused_with_file_line_and_key() {
    let (file, out) = refused("[[app]]\nname = \"a\"\nexecutable = \"sh\"\nbogus = 1\n");
    assert_names(&out, &file, 4, "app[0].bogus");
    assert!(out.stderr.contains("unknown key"), "{out:#?}");
}

#[test]
fn wrong_type_is_refused_with_file_line_and_key() {
    let (file, out) = refused("[[app]]\nname = \"a\"\nexecutable = 3\n");
    assert_names(&out, &file, 3, "app[0].executable");
    assert!(out.stderr.contains("expected a string"), "{out:#?}");
}

#[test]
fn duplicate_app_name_is_refused_with_file_line_and_key() {
    let (file, out) = refused(
        "[[app]]\nname = \"a\"\nexecutable = \"sh\"\n\n[[app]]\nname = \"a\"\nexecutable = \"sh\"\n",
    );
    assert_names(&out, &file, 6, "app[1].name");
    assert!(out.stderr.contains("duplicate"), "{out:#?}");
}

#[test]
fn invalid_app_name_is_refused_with_file_line_and_key() {
    let (file, out) = refused("# apps\n[[app]]\nname = \"a/b\"\nexecutable = \"sh\"\n");
    assert_names(&out, &file, 3, "app[0].name");
    assert!(out.stderr.contains("\"a/b\""), "{out:#?}");
}

#[test]
fn duration_without_unit_is_refused_with_file_line_and_key() {
    let (file, out) = refused(
        "[[app]]\nname = \"a\"\nexecutable = \"sh\"\n\n[[app]]\nname = \"b\"\nexecutable = \"sh\"\nstopping_time = \"10\"\n",
    );
    assert_names(&out, &file, 8, "app[1].stopping_time");
    assert!(out.stderr.contains("duration"), "{out:#?}");
}

#[test]
fn missing_config_file_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("missing.toml");
    let mut cmd = troupe_command();
    cmd.arg("server").arg("--config").arg(&path);
    let out = run_with(cmd, None, Duration::from_secs(20));
    out.expect_code(2).expect_one_line_error();
    assert!(out.elapsed < Duration::from_secs(5), "{out:#?}");
    assert!(out.stderr.contains(&path.display().to_string()), "{out:#?}");
    assert!(out.stderr.contains("cannot read"), "{out:#?}");
}

#[test]
fn check_of_the_embedded_example_prints_a_summary() {
    let mut cmd = troupe_command();
    cmd.args(["server", "--check"]);
    let out = run_with(cmd, None, Duration::from_secs(20));
    let summary = out.ok();
    assert!(summary.starts_with("<embedded>: server "), "{out:#?}");
    // The example's first applications need only /bin/sh; more may follow.
    assert!(
        summary.contains(" applications: hello, ticker, sleeper, failing, cat, env"),
        "{out:#?}"
    );
}

#[test]
fn check_of_a_file_names_it_and_its_apps() {
    let dir = tempfile::tempdir().unwrap();
    let path = write_config(
        dir.path(),
        "one.toml",
        "name = \"checked\"\n[[app]]\nname = \"solo\"\nexecutable = \"true\"\n",
    );
    let mut cmd = troupe_command();
    cmd.arg("server").arg("--check").arg("--config").arg(&path);
    let out = run_with(cmd, None, Duration::from_secs(20));
    let summary = out.ok();
    assert!(
        summary.starts_with(&format!("{}: server checked ", path.display())),
        "{out:#?}"
    );
    assert!(summary.ends_with("1 application: solo"), "{out:#?}");
}

#[test]
fn bad_device_setting_is_refused_with_file_line_and_key() {
    let (file, out) = refused(
        "[[app]]\nname = \"ps\"\nexecutable = \"sh\"\n[app.device]\nname = \"power\"\nfirst_update = \"sometimes\"\n",
    );
    assert_names(&out, &file, 6, "app[0].device.first_update");
    assert!(
        out.stderr.contains("expected \"none\" or \"current\""),
        "{out:#?}"
    );
}
