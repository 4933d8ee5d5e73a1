//! The floor: raw TCP with std sockets over loopback. A message is a 4-byte
//! little-endian length and its bytes.

use crate::peer::{Peers, IDLE};
use crate::pin::Placement;
use crate::report::Role;
use crate::rtt::{RttLink, RttSubject};
use crate::thr::{collect_acks, send_for, Round, ThrLink, ThrSubject};
use crate::wire::{self, Ack, Counter};
use futures::future::BoxFuture;
use std::io::{BufWriter, ErrorKind, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::time::{Duration, Instant};

/// Bound of every wait of the bench on a socket.
const WAIT: Duration = Duration::from_secs(60);

/// A zeroed buffer whose byte `lead` lies 64 bytes past a page boundary,
/// where the payload read from a socket goes.
///
/// Large `Vec`s come from mmap and start 16 bytes past a page boundary. On
/// this machine's AMD CPU the kernel's copy to user space (`rep movsb`) into
/// such a buffer runs at about a third of its speed (4 KiB aliasing with the
/// page-aligned socket buffers): a 1 MiB echo took 0.86 ms, against 0.34 ms
/// at 64 bytes past the boundary. The floor should not pay for that.
struct Buf {
    v: Vec<u8>,
    start: usize,
    len: usize,
}

impl Buf {
    const PAGE: usize = 4096;

    fn new(lead: usize, len: usize) -> Buf {
        let v = vec![0u8; lead + len + 2 * Self::PAGE];
        let at = v.as_ptr() as usize + lead;
        let start = (Self::PAGE + 64 - at % Self::PAGE) % Self::PAGE;
        Buf {
            v,
            start,
            len: lead + len,
        }
    }

    fn get(&mut self) -> &mut [u8] {
        &mut self.v[self.start..self.start + self.len]
    }
}

/// A frame: length, then `size` bytes.
fn frame(size: usize) -> anyhow::Result<Vec<u8>> {
    let mut f = Vec::with_capacity(4 + size);
    f.extend_from_slice(&u32::try_from(size)?.to_le_bytes());
    f.resize(4 + size, 0x5a);
    Ok(f)
}

/// Reads a frame's length; `None` at a clean end of stream.
fn read_len(r: &mut impl Read) -> std::io::Result<Option<usize>> {
    let mut h = [0u8; 4];
    match r.read_exact(&mut h) {
        Ok(()) => Ok(Some(u32::from_le_bytes(h) as usize)),
        Err(e) if e.kind() == ErrorKind::UnexpectedEof => Ok(None),
        Err(e) => Err(e),
    }
}

/// A loopback listener on a free port, and its address.
pub(crate) fn listen() -> anyhow::Result<(TcpListener, String)> {
    let l = TcpListener::bind("127.0.0.1:0")?;
    let addr = l.local_addr()?.to_string();
    Ok((l, addr))
}

/// Accepts `n` connections from the peers, bounded; fails early if a peer
/// exits.
pub(crate) fn accept(
    l: &TcpListener,
    n: usize,
    peers: &mut Peers,
) -> anyhow::Result<Vec<TcpStream>> {
    l.set_nonblocking(true)?;
    let end = Instant::now() + WAIT;
    let mut out = Vec::with_capacity(n);
    while out.len() < n {
        match l.accept() {
            Ok((s, _)) => {
                s.set_nonblocking(false)?;
                s.set_nodelay(true)?;
                s.set_read_timeout(Some(WAIT))?;
                s.set_write_timeout(Some(WAIT))?;
                out.push(s);
            }
            Err(e) if e.kind() == ErrorKind::WouldBlock => {
                peers.check()?;
                anyhow::ensure!(
                    Instant::now() < end,
                    "{} of {n} peers connected within {WAIT:?}",
                    out.len()
                );
                std::thread::sleep(Duration::from_millis(1));
            }
            Err(e) => return Err(e.into()),
        }
    }
    Ok(out)
}

/// Connects a peer to the bench.
pub(crate) fn connect(addr: &str) -> anyhow::Result<TcpStream> {
    let s = TcpStream::connect(addr)?;
    s.set_nodelay(true)?;
    s.set_read_timeout(Some(IDLE))?;
    s.set_write_timeout(Some(IDLE))?;
    Ok(s)
}

/// `rtt` floor: a length-prefixed message echoed whole.
pub struct RttTcp;

impl RttSubject for RttTcp {
    fn name(&self) -> &'static str {
        "raw TCP"
    }

    fn topology(&self) -> &'static str {
        "1 TCP connection"
    }

    fn role(&self) -> Role {
        Role::Floor
    }

    fn method(&self) -> String {
        "std blocking sockets, TCP_NODELAY, one connection over 127.0.0.1 (the far end \
         connects to the bench); 4-byte length + payload in one write, echoed whole; \
         payloads read into buffers 64 bytes past a page boundary (see tcp.rs: at the \
         boundary, kernel copies on this AMD CPU run ~2.5x slower)"
            .into()
    }

    fn open(&self, placement: Placement) -> BoxFuture<'_, anyhow::Result<Box<dyn RttLink>>> {
        Box::pin(async move {
            let (l, addr) = listen()?;
            let mut peers = Peers::default();
            peers.spawn("tcp-echo", placement, &[addr])?;
            let stream = tokio::task::block_in_place(|| accept(&l, 1, &mut peers))?
                .pop()
                .ok_or_else(|| anyhow::anyhow!("no connection"))?;
            Ok(Box::new(TcpRtt {
                stream,
                _peers: peers,
            }) as Box<dyn RttLink>)
        })
    }
}

struct TcpRtt {
    stream: TcpStream,
    _peers: Peers,
}

impl RttLink for TcpRtt {
    fn round_trips(
        &mut self,
        size: usize,
        n: usize,
    ) -> BoxFuture<'_, anyhow::Result<Vec<Duration>>> {
        Box::pin(async move {
            tokio::task::block_in_place(|| {
                let f = frame(size)?;
                let mut buf = Buf::new(0, size);
                let mut out = Vec::with_capacity(n);
                for _ in 0..n {
                    let t = Instant::now();
                    self.stream.write_all(&f)?;
                    let len = read_len(&mut self.stream)?
                        .ok_or_else(|| anyhow::anyhow!("the echo peer closed"))?;
                    anyhow::ensure!(len == size, "echo of {len} bytes for {size}");
                    self.stream.read_exact(buf.get())?;
                    out.push(t.elapsed());
                }
                Ok(out)
            })
        })
    }
}

/// Peer `tcp-echo ADDR`: echoes every frame until the bench closes.
///
/// # Errors
///
/// Connection failed or idle for [`IDLE`].
pub fn echo(addr: &str) -> anyhow::Result<()> {
    let mut s = connect(addr)?;
    let mut buf = Buf::new(4, 0);
    while let Some(len) = read_len(&mut s)? {
        if buf.len != 4 + len {
            buf = Buf::new(4, len);
        }
        let frame = buf.get();
        frame[..4].copy_from_slice(&u32::try_from(len)?.to_le_bytes());
        s.read_exact(&mut frame[4..])?;
        s.write_all(frame)?;
    }
    Ok(())
}

/// `thr` floor: the bench writes length-prefixed frames to one connection
/// per sink, in turn, through a buffer.
pub struct ThrTcp;

impl ThrSubject for ThrTcp {
    fn name(&self) -> &'static str {
        "raw TCP"
    }

    fn topology(&self) -> &'static str {
        "1 TCP connection per subscriber"
    }

    fn role(&self) -> Role {
        Role::Floor
    }

    fn method(&self) -> String {
        "std blocking sockets over 127.0.0.1, one connection per subscriber (each far end \
         connects to the bench); 4-byte length + payload written to each connection in turn \
         through a 64 KiB BufWriter, read 256 KiB at a time"
            .into()
    }

    fn open(&self, sinks: usize) -> BoxFuture<'_, anyhow::Result<Box<dyn ThrLink>>> {
        Box::pin(async move {
            let (l, addr) = listen()?;
            let mut peers = Peers::default();
            for id in 0..sinks {
                peers.spawn("tcp-sink", Placement::Any, &[addr.clone(), id.to_string()])?;
            }
            let streams = tokio::task::block_in_place(|| accept(&l, sinks, &mut peers))?;
            let mut writers = Vec::with_capacity(sinks);
            let mut readers = Vec::with_capacity(sinks);
            for s in streams {
                readers.push(s.try_clone()?);
                writers.push(BufWriter::with_capacity(64 << 10, s));
            }
            Ok(Box::new(TcpThr {
                writers,
                readers,
                _peers: peers,
            }) as Box<dyn ThrLink>)
        })
    }
}

struct TcpThr {
    writers: Vec<BufWriter<TcpStream>>,
    readers: Vec<TcpStream>,
    _peers: Peers,
}

impl ThrLink for TcpThr {
    fn round(
        &mut self,
        round: u32,
        size: usize,
        duration: Duration,
    ) -> BoxFuture<'_, anyhow::Result<Round>> {
        Box::pin(async move {
            tokio::task::block_in_place(|| {
                let f = frame(size)?;
                let start = Instant::now();
                let writers = &mut self.writers;
                let sent = send_for(size, duration, || {
                    for w in writers.iter_mut() {
                        w.write_all(&f)?;
                    }
                    Ok(())
                })?;
                let mut m = 4u32.to_le_bytes().to_vec();
                m.extend_from_slice(&wire::marker(round));
                for w in writers.iter_mut() {
                    w.write_all(&m)?;
                    w.flush()?;
                }
                let sinks = self.readers.len();
                let mut next = self.readers.iter_mut();
                let delivered = collect_acks(
                    round,
                    sinks,
                    WAIT,
                    || {
                        let r = next
                            .next()
                            .ok_or_else(|| anyhow::anyhow!("more acknowledgements than sinks"))?;
                        let mut b = [0u8; Ack::LEN];
                        r.read_exact(&mut b)?;
                        Ok(Some(Ack::decode(&b).expect("16 bytes")))
                    },
                    || Ok(()),
                )?;
                Ok(Round {
                    sent,
                    delivered,
                    elapsed: start.elapsed(),
                    missed: None,
                })
            })
        })
    }
}

/// Peer `tcp-sink ADDR ID`: counts frames, acknowledges markers.
///
/// # Errors
///
/// Connection failed or idle for [`IDLE`].
pub fn sink(addr: &str, id: u32) -> anyhow::Result<()> {
    let mut s = connect(addr)?;
    let mut ack_to = s.try_clone()?;
    let mut frames = Frames::default();
    let mut counter = Counter::new(id);
    let mut buf = Buf::new(0, 256 << 10);
    loop {
        let n = s.read(buf.get())?;
        if n == 0 {
            return Ok(());
        }
        frames.feed(&buf.get()[..n], |len, small| {
            if let Some(ack) = counter.take_len(len, || wire::parse_marker(small)) {
                ack_to.write_all(&ack.encode())?;
            }
            Ok(())
        })?;
    }
}

/// Splits a byte stream into frames without copying data messages: only
/// the length of a frame, and the bytes of a frame of
/// [`wire::MARKER_LEN`] bytes (a marker), are kept.
#[derive(Debug, Default)]
pub(crate) struct Frames {
    header: Vec<u8>,
    /// Bytes of the current frame still to come, once its header is read.
    left: Option<usize>,
    len: usize,
    small: Vec<u8>,
}

impl Frames {
    /// Takes the next bytes; calls `frame(len, bytes of a short frame)` at
    /// the end of every frame.
    pub(crate) fn feed(
        &mut self,
        mut data: &[u8],
        mut frame: impl FnMut(usize, &[u8]) -> anyhow::Result<()>,
    ) -> anyhow::Result<()> {
        loop {
            match self.left {
                None => {
                    let take = (4 - self.header.len()).min(data.len());
                    self.header.extend_from_slice(&data[..take]);
                    data = &data[take..];
                    if self.header.len() < 4 {
                        return Ok(());
                    }
                    let h: [u8; 4] = self.header[..].try_into()?;
                    self.header.clear();
                    self.len = u32::from_le_bytes(h) as usize;
                    self.small.clear();
                    self.left = Some(self.len);
                }
                Some(0) => {
                    self.left = None;
                    frame(self.len, &self.small)?;
                }
                Some(left) => {
                    if data.is_empty() {
                        return Ok(());
                    }
                    let take = left.min(data.len());
                    if self.len == wire::MARKER_LEN {
                        self.small.extend_from_slice(&data[..take]);
                    }
                    data = &data[take..];
                    self.left = Some(left - take);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buffers_start_past_a_page_boundary() {
        for (lead, len) in [(0, 8), (4, 1 << 20), (0, 256 << 10)] {
            let mut b = Buf::new(lead, len);
            let s = b.get();
            assert_eq!(s.len(), lead + len);
            assert_eq!((s.as_ptr() as usize + lead) % Buf::PAGE, 64);
        }
    }

    #[test]
    fn frames_are_found_across_reads() {
        let mut stream = Vec::new();
        for f in [
            frame(8).unwrap(),
            frame(0).unwrap(),
            frame(100_000).unwrap(),
        ] {
            stream.extend_from_slice(&f);
        }
        stream.extend_from_slice(&4u32.to_le_bytes());
        stream.extend_from_slice(&wire::marker(9));
        for chunk in [1, 3, 7, 4096, stream.len()] {
            let mut frames = Frames::default();
            let mut seen = Vec::new();
            for part in stream.chunks(chunk) {
                frames
                    .feed(part, |len, small| {
                        seen.push((len, small.to_vec()));
                        Ok(())
                    })
                    .unwrap();
            }
            assert_eq!(
                seen,
                vec![
                    (8, vec![]),
                    (0, vec![]),
                    (100_000, vec![]),
                    (4, wire::marker(9).to_vec())
                ],
                "chunks of {chunk}"
            );
        }
    }
}
