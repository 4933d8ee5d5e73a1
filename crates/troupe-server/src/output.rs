//! Output of instances: the bounded ring kept for late attachers, the pumps
//! that drain a child's pipes all the time, and the rotated log files.

use crate::instance::Instance;
use std::collections::VecDeque;
use std::fs::File;
use std::io::Write;
use std::path::PathBuf;
use std::sync::Arc;
use tokio::io::{AsyncRead, AsyncReadExt};
use tokio::sync::mpsc;
use troupe_protocol::{OutputBatch, OutputLine, Stream};

/// A line longer than this is cut into several lines.
pub(crate) const MAX_LINE: usize = 16 * 1024;
/// The ring never holds more than this many bytes of text, whatever its line count.
const RING_MAX_BYTES: usize = 1024 * 1024;
/// Batches waiting to be published; beyond this, batches are dropped from
/// the live stream (they stay in the ring and subscribers see the gap in `seq`).
pub(crate) const PUBLISH_QUEUE: usize = 256;

/// The output kept for one instance.
#[derive(Debug)]
pub(crate) struct OutputRing {
    id: u64,
    lines: VecDeque<OutputLine>,
    bytes: usize,
    cap_lines: usize,
    next_seq: u64,
    dropped_upto: u64,
    ended: bool,
    publish: Option<mpsc::Sender<OutputBatch>>,
    log: Option<LogFile>,
}

impl OutputRing {
    pub(crate) fn new(
        id: u64,
        cap_lines: usize,
        publish: Option<mpsc::Sender<OutputBatch>>,
        log: Option<LogFile>,
    ) -> Self {
        Self {
            id,
            lines: VecDeque::new(),
            bytes: 0,
            cap_lines: cap_lines.max(1),
            next_seq: 1,
            dropped_upto: 0,
            ended: false,
            publish,
            log,
        }
    }

    /// Adds lines from one stream, writes them to the log, and queues them for
    /// publication, all under one lock so that sequence order is publication order.
    pub(crate) fn push_lines(&mut self, stream: Stream, raw: Vec<Vec<u8>>) {
        if raw.is_empty() {
            return;
        }
        let mut batch = Vec::with_capacity(raw.len());
        for bytes in raw {
            if let Some(log) = &mut self.log {
                log.write_output(stream, &bytes);
            }
            let line = OutputLine {
                seq: self.next_seq,
                stream,
                text: String::from_utf8_lossy(&bytes).into_owned(),
            };
            self.next_seq += 1;
            self.bytes += line.text.len();
            self.lines.push_back(line.clone());
            batch.push(line);
        }
        while self.lines.len() > self.cap_lines || self.bytes > RING_MAX_BYTES {
            match self.lines.pop_front() {
                Some(old) => {
                    self.bytes -= old.text.len();
                    self.dropped_upto = old.seq;
                }
                None => break,
            }
        }
        if let Some(log) = &mut self.log {
            let _ = log.flush();
        }
        if let Some(tx) = &self.publish {
            // A full queue means publication cannot keep up: the batch is
            // dropped from the live stream only; it stays in the ring.
            let _ = tx.try_send(OutputBatch {
                id: self.id,
                lines: batch,
                end: false,
                dropped_upto: 0,
            });
        }
    }

    /// Lines with a sequence number above `after`.
    pub(crate) fn since(&self, after: u64) -> OutputBatch {
        OutputBatch {
            id: self.id,
            lines: self
                .lines
                .iter()
                .filter(|l| l.seq > after)
                .cloned()
                .collect(),
            end: self.ended,
            dropped_upto: self.dropped_upto,
        }
    }

    /// Marks the output complete; returns the publication queue so that the
    /// caller can send the end marker without holding the lock.
    pub(crate) fn end(&mut self) -> Option<mpsc::Sender<OutputBatch>> {
        self.ended = true;
        self.publish.take()
    }
}

/// Reads a pipe until its end, cutting it into lines for the ring.
pub(crate) async fn pump(inst: Arc<Instance>, stream: Stream, mut pipe: impl AsyncRead + Unpin) {
    let mut buf = vec![0u8; 64 * 1024];
    let mut carry: Vec<u8> = Vec::new();
    loop {
        let n = match pipe.read(&mut buf).await {
            Ok(0) | Err(_) => 0,
            Ok(n) => n,
        };
        if n == 0 {
            if !carry.is_empty() {
                inst.output
                    .lock()
                    .expect("output lock")
                    .push_lines(stream, vec![std::mem::take(&mut carry)]);
            }
            return;
        }
        let mut lines = Vec::new();
        let mut start = 0;
        let chunk = &buf[..n];
        for (i, b) in chunk.iter().enumerate() {
            if *b == b'\n' {
                carry.extend_from_slice(&chunk[start..i]);
                if carry.last() == Some(&b'\r') {
                    carry.pop();
                }
                lines.push(std::mem::take(&mut carry));
                start = i + 1;
            }
        }
        carry.extend_from_slice(&chunk[start..]);
        while carry.len() > MAX_LINE {
            let rest = carry.split_off(MAX_LINE);
            lines.push(std::mem::replace(&mut carry, rest));
        }
        inst.output
            .lock()
            .expect("output lock")
            .push_lines(stream, lines);
    }
}

/// A file of lines rotated by size: `name.log`, then `name.log.1` (the
/// newest rotated) up to `name.log.N`. The server writes each instance's
/// output to one; `troupe logdump` writes log records to one.
#[derive(Debug)]
pub struct LogFile {
    path: PathBuf,
    file: Option<std::io::BufWriter<File>>,
    size: u64,
    max_size: u64,
    max_files: u32,
}

impl LogFile {
    /// Opens (appending) the log file at `path`, creating its directory.
    /// Once it has reached `max_size` bytes, the next write first rotates
    /// it; `max_files` rotated files are kept.
    ///
    /// # Errors
    /// When the directory or the file cannot be created or opened.
    pub fn open(path: PathBuf, max_size: u64, max_files: u32) -> std::io::Result<Self> {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)?;
        }
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)?;
        let size = file.metadata()?.len();
        Ok(Self {
            path,
            file: Some(std::io::BufWriter::new(file)),
            size,
            max_size: max_size.max(1),
            max_files: max_files.max(1),
        })
    }

    /// The path of the current file.
    pub fn path(&self) -> &std::path::Path {
        &self.path
    }

    /// Writes `line` and an end of line, rotating the file first when it
    /// is full. Writes are buffered: see [`LogFile::flush`].
    ///
    /// # Errors
    /// When the file cannot be written; it is then closed, and every later
    /// write fails too.
    pub fn write_line(&mut self, line: &[u8]) -> std::io::Result<()> {
        self.write_parts(&[line])
    }

    /// Writes a line of an instance's output, tagged with its stream.
    fn write_output(&mut self, stream: Stream, line: &[u8]) {
        if self.file.is_none() {
            return;
        }
        let tag: &[u8] = match stream {
            Stream::Out => b"",
            Stream::Err => b"[stderr] ",
        };
        if self.write_parts(&[tag, line]).is_err() {
            // A full disk must not stop the instance: stop logging it.
            tracing::warn!(path = %self.path.display(), "cannot write the log file; logging stops");
        }
    }

    fn write_parts(&mut self, parts: &[&[u8]]) -> std::io::Result<()> {
        if self.size >= self.max_size {
            self.rotate();
        }
        let Some(f) = &mut self.file else {
            return Err(std::io::Error::other(format!(
                "{} is closed after an error",
                self.path.display()
            )));
        };
        let mut written = 0;
        let result = parts
            .iter()
            .copied()
            .chain(std::iter::once(&b"\n"[..]))
            .try_for_each(|part| {
                written += part.len();
                f.write_all(part)
            });
        self.size += written as u64;
        if result.is_err() {
            self.file = None;
        }
        result
    }

    /// Writes out what is buffered.
    ///
    /// # Errors
    /// When the file cannot be written.
    pub fn flush(&mut self) -> std::io::Result<()> {
        match &mut self.file {
            Some(f) => f.flush(),
            None => Ok(()),
        }
    }

    fn rotated(&self, n: u32) -> PathBuf {
        let mut p = self.path.clone().into_os_string();
        p.push(format!(".{n}"));
        p.into()
    }

    fn rotate(&mut self) {
        let _ = self.flush();
        self.file = None;
        let _ = std::fs::remove_file(self.rotated(self.max_files));
        for n in (1..self.max_files).rev() {
            let _ = std::fs::rename(self.rotated(n), self.rotated(n + 1));
        }
        let _ = std::fs::rename(&self.path, self.rotated(1));
        match File::create(&self.path) {
            Ok(f) => self.file = Some(std::io::BufWriter::new(f)),
            Err(e) => {
                tracing::warn!(path = %self.path.display(), "cannot reopen the log file: {e}")
            }
        }
        self.size = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lines(r: &OutputRing) -> Vec<(u64, String)> {
        r.since(0)
            .lines
            .into_iter()
            .map(|l| (l.seq, l.text))
            .collect()
    }

    #[test]
    fn ring_is_bounded_and_numbered() {
        let mut r = OutputRing::new(1, 3, None, None);
        r.push_lines(
            Stream::Out,
            (1..=5).map(|i| format!("l{i}").into_bytes()).collect(),
        );
        assert_eq!(
            lines(&r),
            [(3, "l3".into()), (4, "l4".into()), (5, "l5".into())]
        );
        assert_eq!(r.since(0).dropped_upto, 2);
        assert_eq!(r.since(4).lines.len(), 1);
        assert!(!r.since(0).end);
        r.end();
        assert!(r.since(0).end);
    }

    #[test]
    fn full_publication_queue_never_blocks() {
        let (tx, mut rx) = mpsc::channel(1);
        let mut r = OutputRing::new(1, 10, Some(tx), None);
        r.push_lines(Stream::Out, vec![b"a".to_vec()]);
        r.push_lines(Stream::Err, vec![b"b".to_vec()]);
        assert_eq!(rx.try_recv().unwrap().lines[0].text, "a");
        assert!(rx.try_recv().is_err());
        assert_eq!(lines(&r).len(), 2);
    }

    #[test]
    fn log_files_rotate_by_size_and_count() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("app.1.log");
        let mut log = LogFile::open(path.clone(), 100, 2).unwrap();
        for i in 0..50 {
            log.write_output(Stream::Out, format!("line {i:03}").as_bytes());
        }
        log.flush().unwrap();
        let mut names: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        names.sort();
        assert_eq!(names, ["app.1.log", "app.1.log.1", "app.1.log.2"]);
        let last = std::fs::read_to_string(&path).unwrap();
        assert!(last.ends_with("line 049\n"), "{last}");
        assert!(
            std::fs::metadata(dir.path().join("app.1.log.1"))
                .unwrap()
                .len()
                <= 110
        );
    }
}
