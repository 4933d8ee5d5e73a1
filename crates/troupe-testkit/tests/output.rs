//! Output: drained all the time, kept in a bounded ring for late readers,
//! streamed once and in order, ended after the terminal state, logged to
//! rotated files; standard input.

mod common;

use common::*;
use std::time::{Duration, Instant};
use troupe::{OutputKind, State};
use troupe_testkit::TestServer;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flood_with_nobody_reading_does_not_block_the_app() {
    let s = TestServer::start(&config(
        r#"
[[app]]
name = "flood"
executable = "FIXTURE"
args = ["flood", "100000000"]
"#,
    ))
    .unwrap();
    let server = connect(&s).await;
    let t = Instant::now();
    let inst = start(&server, "flood", &[]).await;
    let info = inst
        .wait_for(Some(Duration::from_secs(60)))
        .await
        .expect("the flood ends");
    assert_eq!(info.state, State::Success, "{info:?}");
    eprintln!("100 MB of output drained in {:?}", t.elapsed());
    // The ring kept the last lines: the last one is line 1_000_000.
    let mut out = within("output", inst.output()).await.unwrap();
    let lines = rest_of(&mut out).await;
    let last = lines.last().expect("kept lines");
    assert!(
        last.text.trim_start().starts_with("1000000 "),
        "{}",
        &last.text[..20]
    );
    assert_eq!(last.seq, 1_000_000);
    assert_eq!(lines.len(), 1000, "output_ring defaults to 1000 lines");
    assert_eq!(out.dropped(), 999_000);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_ring_keeps_the_last_lines_for_late_readers() {
    let s = TestServer::start(
        r#"
output_ring = 50
[[app]]
name = "count"
executable = "seq"
args = ["1", "200"]
"#,
    )
    .unwrap();
    let server = connect(&s).await;
    let inst = start(&server, "count", &[]).await;
    assert_eq!(ended(&inst).await.state, State::Success);
    let mut out = within("output", inst.output()).await.unwrap();
    let lines = rest_of(&mut out).await;
    let expected: Vec<String> = (151..=200).map(|i| i.to_string()).collect();
    assert_eq!(texts(&lines), expected);
    assert_eq!(
        lines.iter().map(|l| l.seq).collect::<Vec<_>>(),
        (151..=200).collect::<Vec<u64>>()
    );
    assert_eq!(out.dropped(), 150);
    assert_eq!(out.missed(), 0);
}

/// Checks that `lines` are numbered 1, 2, 3... with no gap nor repeat.
fn assert_numbered(lines: &[troupe::OutputLine]) {
    for (i, l) in lines.iter().enumerate() {
        assert_eq!(l.seq, i as u64 + 1, "line {i}: {l:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reader_gets_the_history_then_the_live_lines_once_each() {
    let s = TestServer::start(
        r#"
[[app]]
name = "ticker"
executable = "sh"
args = ["-c", 'i=1; while [ $i -le 40 ]; do echo "out $i"; if [ $((i % 5)) -eq 0 ]; then echo "err $i" >&2; fi; sleep 0.02; i=$((i + 1)); done']
"#,
    )
    .unwrap();
    let server = connect(&s).await;
    let inst = start(&server, "ticker", &[]).await;
    // A first reader waits for some lines, so that the second starts with a history.
    let mut first = within("output", inst.output()).await.unwrap();
    line_with(&mut first, "out 10").await;
    let mut second = within("output", inst.output()).await.unwrap();
    let lines = rest_of(&mut second).await;
    assert!(
        inst.info().await.unwrap().state.is_terminal(),
        "output ended before the instance"
    );
    let rest_first = rest_of(&mut first).await;

    assert_eq!(lines.len(), 48, "{:?}", texts(&lines));
    assert_numbered(&lines);
    assert_eq!(second.dropped(), 0);
    let outs: Vec<String> = lines
        .iter()
        .filter(|l| l.stream == OutputKind::Out)
        .map(|l| l.text.clone())
        .collect();
    let errs: Vec<String> = lines
        .iter()
        .filter(|l| l.stream == OutputKind::Err)
        .map(|l| l.text.clone())
        .collect();
    assert_eq!(
        outs,
        (1..=40).map(|i| format!("out {i}")).collect::<Vec<_>>()
    );
    assert_eq!(
        errs,
        (1..=8)
            .map(|i| format!("err {}", i * 5))
            .collect::<Vec<_>>()
    );
    // The first reader's lines are the same ones.
    assert_eq!(rest_first[..], lines[lines.len() - rest_first.len()..]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_line_comes_once_in_order_from_both_streams() {
    let s = TestServer::start(&config(
        r#"
output_ring = 5000
[[app]]
name = "lines"
executable = "FIXTURE"
args = ["lines", "3000"]
"#,
    ))
    .unwrap();
    let server = connect(&s).await;
    let inst = start(&server, "lines", &[]).await;
    let mut out = within("output", inst.output()).await.unwrap();
    let lines = rest_of(&mut out).await;
    assert_eq!(lines.len(), 3300);
    assert_numbered(&lines);
    let outs: Vec<&str> = lines
        .iter()
        .filter(|l| l.stream == OutputKind::Out)
        .map(|l| l.text.as_str())
        .collect();
    let errs: Vec<&str> = lines
        .iter()
        .filter(|l| l.stream == OutputKind::Err)
        .map(|l| l.text.as_str())
        .collect();
    assert_eq!(
        outs,
        (1..=3000).map(|i| format!("line {i}")).collect::<Vec<_>>()
    );
    assert_eq!(
        errs,
        (1..=300)
            .map(|i| format!("err {}", i * 10))
            .collect::<Vec<_>>()
    );
    assert_eq!((out.dropped(), out.missed()), (0, 0));
    assert_eq!(ended(&inst).await.state, State::Success);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_output_stream_ends_after_the_terminal_state() {
    let s = TestServer::start(
        r#"
[[app]]
name = "talker"
executable = "sh"
args = ["-c", 'echo one; sleep 0.3; echo two; echo three >&2; sleep 0.3; echo last; exit 2']
"#,
    )
    .unwrap();
    let server = connect(&s).await;
    let inst = start(&server, "talker", &[]).await;
    let mut out = within("output", inst.output()).await.unwrap();
    let lines = rest_of(&mut out).await;
    let info = inst.info().await.unwrap();
    assert_eq!(
        info.state,
        State::Error,
        "the output ended before the instance did"
    );
    // Each stream in order (the two pipes are read apart: they may interleave).
    let of = |kind| -> Vec<&str> {
        lines
            .iter()
            .filter(|l| l.stream == kind)
            .map(|l| l.text.as_str())
            .collect()
    };
    assert_eq!(of(OutputKind::Out), ["one", "two", "last"]);
    assert_eq!(of(OutputKind::Err), ["three"]);
    assert_numbered(&lines);
    // Ended for good: more reads say so at once.
    assert_eq!(
        out.next_timeout(Duration::from_millis(100)).await.unwrap(),
        None
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_log_file_has_the_output_and_is_rotated() {
    // The two pipes are read apart, so a line of standard error written
    // just after standard output may be logged before the end of it, and
    // then rotated away with it. The app writes its standard error line
    // once the last line of standard output is in the current file (it
    // waits at most 5 s), so the test knows where each line must be.
    let logs = tempfile::tempdir().unwrap();
    let dir = logs.path().to_path_buf();
    let s = TestServer::start(&format!(
        r#"
log_dir = "{dir}"
[[app]]
name = "logged"
executable = "sh"
args = ["-c", 'seq 1 2000; i=0; until grep -qx 2000 "$0"/logged.*.log || [ $i -ge 500 ]; do sleep 0.01; i=$((i+1)); done; echo oops >&2', "{dir}"]
log = {{ max_size = "1KB", max_files = 2 }}
"#,
        dir = dir.display()
    ))
    .unwrap();
    let server = connect(&s).await;
    let inst = start(&server, "logged", &[]).await;
    assert_eq!(ended(&inst).await.state, State::Success);
    let base = format!("logged.{}.log", inst.id());
    let mut names: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    names.sort();
    assert_eq!(
        names,
        [base.clone(), format!("{base}.1"), format!("{base}.2")],
        "at most 2 rotated files"
    );
    let read = |name: &str| std::fs::read_to_string(dir.join(name)).unwrap();
    let current = read(&base);
    // Both streams are logged, standard error tagged.
    assert_eq!(current.lines().last(), Some("[stderr] oops"), "{current}");
    // The files follow each other: .2, then .1, then the current one.
    let numbers =
        |text: &str| -> Vec<u32> { text.lines().filter_map(|l| l.parse().ok()).collect() };
    let (older, old, cur) = (
        numbers(&read(&format!("{base}.2"))),
        numbers(&read(&format!("{base}.1"))),
        numbers(&current),
    );
    assert_eq!(older.last().unwrap() + 1, old[0]);
    assert_eq!(old.last().unwrap() + 1, cur[0]);
    assert_eq!(cur.last(), Some(&2000));
    for name in [format!("{base}.1"), format!("{base}.2")] {
        let len = std::fs::metadata(dir.join(&name)).unwrap().len();
        assert!((900..=1100).contains(&len), "{name}: {len} bytes");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn standard_input_reaches_the_app() {
    let s = TestServer::start(&config(
        r#"
[[app]]
name = "echo"
executable = "FIXTURE"
args = ["echo"]
"#,
    ))
    .unwrap();
    let server = connect(&s).await;
    let inst = start(&server, "echo", &[]).await;
    let mut out = within("output", inst.output()).await.unwrap();
    within("write", inst.write_stdin(b"hello\n")).await.unwrap();
    assert_eq!(next_line(&mut out).await.unwrap().text, "hello");
    within("write", inst.write_stdin(b"two words\nand more\n"))
        .await
        .unwrap();
    within("close", inst.close_stdin()).await.unwrap();
    assert_eq!(texts(&rest_of(&mut out).await), ["two words", "and more"]);
    let info = ended(&inst).await;
    assert_eq!(info.state, State::Success, "it ends at end of input");
    let late = inst.write_stdin(b"late\n").await;
    assert!(matches!(late, Err(troupe::Error::Refused(_))), "{late:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_stream_the_output_is_still_kept_and_ends() {
    let s = TestServer::start(
        r#"
[[app]]
name = "quiet"
executable = "sh"
args = ["-c", "echo kept; sleep 0.5; echo also"]
stream = false
"#,
    )
    .unwrap();
    let server = connect(&s).await;
    let inst = start(&server, "quiet", &[]).await;
    // A reader from the start: the lines come from the ring, and the stream
    // ends with the instance.
    let mut out = within("output", inst.output()).await.unwrap();
    let lines = rest_of(&mut out).await;
    assert!(inst.info().await.unwrap().state.is_terminal());
    assert_eq!(texts(&lines).last().map(String::as_str), Some("also"));
    assert_eq!(texts(&all_output(&inst).await), ["kept", "also"]);
}
