//! The frames of the communication patterns (publish/subscribe,
//! request/reply, named channels).
//!
//! Every Zenoh sample of a pattern carries its message body as the payload,
//! untouched, and a small binary *frame header* as the attachment. All
//! integers are little-endian:
//!
//! ```text
//! offset  size  field
//! 0       1     version, 1
//! 1       1     frame type (see FrameType)
//! 2       1     content type of the body (see Content)
//! 3       1     flags: 1 = synchronised publisher, 2 = header part follows,
//!               4 = request addressing follows
//! 4       8     sequence number (messages, acknowledgements) or request id
//! [12     4     header length H, then H bytes: the first part of a two-part message]
//! [..     2     reply key length R, then R bytes: where replies go (UTF-8)
//!  ..     2     sender length S, then S bytes: who sent the request (UTF-8)]
//! ```
//!
//! Readers ignore bytes after the fields they know, so later versions can
//! append fields.
//!
//! A publisher under load packs several small messages into one sample: a
//! *batch*. Its attachment is a frame of type `Batch` (sequence number: the
//! first message's), and its payload is the messages one after another,
//! each as
//!
//! ```text
//! size  field
//! 2     frame header length F, then F bytes: the message's own frame header
//! 4     body length B, then B bytes: the message's body
//! ```
//!
//! A receiver handles a batch exactly as the samples of its messages, in
//! order ([`BatchReader`]).

use thiserror::Error;

/// The version written in byte 0.
pub const FRAME_VERSION: u8 = 1;

/// Flag: the publisher is synchronised (subscribers acknowledge what they
/// consumed, and the publisher waits for slow ones).
pub const FLAG_SYNC: u8 = 1;
const FLAG_HEADER: u8 = 2;
const FLAG_ADDRESS: u8 = 4;

/// What a frame is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum FrameType {
    /// A message of a publisher.
    Data = 0,
    /// The end of a publisher's stream (no body).
    End = 1,
    /// A request to a worker of a responder; carries the reply key and the
    /// sender.
    Request = 2,
    /// A reply that is not the last of its answer.
    Part = 3,
    /// The last (or only) reply of an answer.
    Final = 4,
    /// The request failed on the responder's side; the body is the reason
    /// (UTF-8). Ends the answer.
    Failure = 5,
    /// A subscriber consumed every message up to `seq` (to a synchronised
    /// publisher).
    Ack = 6,
    /// A subscriber received the end of the stream, of sequence `seq`.
    EndAck = 7,
    /// A channel's owner consumed `seq` asynchronous messages of the client
    /// it is sent to, in all (the client's credit; no body).
    Credit = 8,
    /// A channel's owner closed without answering the synchronous message
    /// `seq` (no body, or a reason in UTF-8).
    Dropped = 9,
    /// Several messages of a publisher in one sample (see the module
    /// documentation); `seq` is the first one's.
    Batch = 10,
}

impl FrameType {
    fn from_u8(b: u8) -> Option<Self> {
        Some(match b {
            0 => FrameType::Data,
            1 => FrameType::End,
            2 => FrameType::Request,
            3 => FrameType::Part,
            4 => FrameType::Final,
            5 => FrameType::Failure,
            6 => FrameType::Ack,
            7 => FrameType::EndAck,
            8 => FrameType::Credit,
            9 => FrameType::Dropped,
            10 => FrameType::Batch,
            _ => return None,
        })
    }
}

/// How a message body is encoded, so that a receiver can decode it without
/// an agreement made elsewhere.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[repr(u8)]
pub enum Content {
    /// Opaque bytes.
    #[default]
    Bytes = 0,
    /// UTF-8 text.
    Text = 1,
    /// A JSON document (UTF-8).
    Json = 2,
    /// An array of IEEE 754 doubles, 8 bytes each, little-endian.
    F64s = 3,
    /// An array of 32-bit signed integers, 4 bytes each, little-endian.
    I32s = 4,
}

impl Content {
    fn from_u8(b: u8) -> Option<Self> {
        Some(match b {
            0 => Content::Bytes,
            1 => Content::Text,
            2 => Content::Json,
            3 => Content::F64s,
            4 => Content::I32s,
            _ => return None,
        })
    }

    /// The name of the content type, as the console prints it.
    pub fn as_str(self) -> &'static str {
        match self {
            Content::Bytes => "bytes",
            Content::Text => "text",
            Content::Json => "json",
            Content::F64s => "f64s",
            Content::I32s => "i32s",
        }
    }
}

/// A decoded frame header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Frame {
    /// What the frame is.
    pub kind: FrameType,
    /// The content type of the body.
    pub content: Content,
    /// Flags ([`FLAG_SYNC`]).
    pub flags: u8,
    /// The sequence number or the request id.
    pub seq: u64,
    /// The first part of a two-part message.
    pub header: Option<Vec<u8>>,
    /// For a request: the key its replies go to, and who sent it.
    pub address: Option<Address>,
}

/// Where the replies to a request go and who sent it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Address {
    /// The key the worker puts its replies on.
    pub reply_key: String,
    /// Who sent the request: `server/app/id` for an instance, else the
    /// member id of the requester.
    pub from: String,
}

/// A frame header that cannot be decoded.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum FrameError {
    /// Shorter than its fields say.
    #[error("truncated frame header ({0} bytes)")]
    Truncated(usize),
    /// An unknown version.
    #[error("frame version {0} is not supported (this build speaks {FRAME_VERSION})")]
    Version(u8),
    /// An unknown frame type.
    #[error("unknown frame type {0}")]
    Type(u8),
    /// An unknown content type.
    #[error("unknown content type {0}")]
    Content(u8),
    /// A string field that is not UTF-8.
    #[error("frame field is not UTF-8")]
    Utf8,
    /// A field too long to encode.
    #[error("frame field too long ({0} bytes)")]
    TooLong(usize),
}

impl Frame {
    /// A frame of `kind` with sequence `seq`, bytes content, no flags.
    pub fn new(kind: FrameType, seq: u64) -> Frame {
        Frame {
            kind,
            content: Content::Bytes,
            flags: 0,
            seq,
            header: None,
            address: None,
        }
    }

    /// Encodes the frame header.
    ///
    /// # Errors
    /// [`FrameError::TooLong`] when the header part is 4 GiB or more, or an
    /// address field 64 KiB or more.
    pub fn encode(&self) -> Result<Vec<u8>, FrameError> {
        let mut out = Vec::with_capacity(self.encoded_len());
        self.encode_into(&mut out)?;
        Ok(out)
    }

    /// The length of the encoded frame header.
    pub fn encoded_len(&self) -> usize {
        let mut len = 12;
        if let Some(h) = &self.header {
            len += 4 + h.len();
        }
        if let Some(a) = &self.address {
            len += 4 + a.reply_key.len() + a.from.len();
        }
        len
    }

    /// Appends the encoded frame header to `out` (nothing on error).
    ///
    /// # Errors
    /// As [`Frame::encode`].
    pub fn encode_into(&self, out: &mut Vec<u8>) -> Result<(), FrameError> {
        let mut flags = self.flags & FLAG_SYNC;
        if let Some(h) = &self.header {
            flags |= FLAG_HEADER;
            u32::try_from(h.len()).map_err(|_| FrameError::TooLong(h.len()))?;
        }
        if let Some(a) = &self.address {
            flags |= FLAG_ADDRESS;
            for s in [&a.reply_key, &a.from] {
                u16::try_from(s.len()).map_err(|_| FrameError::TooLong(s.len()))?;
            }
        }
        out.reserve(self.encoded_len());
        out.extend_from_slice(&[FRAME_VERSION, self.kind as u8, self.content as u8, flags]);
        out.extend_from_slice(&self.seq.to_le_bytes());
        if let Some(h) = &self.header {
            out.extend_from_slice(&(h.len() as u32).to_le_bytes());
            out.extend_from_slice(h);
        }
        if let Some(a) = &self.address {
            for s in [&a.reply_key, &a.from] {
                out.extend_from_slice(&(s.len() as u16).to_le_bytes());
                out.extend_from_slice(s.as_bytes());
            }
        }
        Ok(())
    }

    /// Decodes a frame header.
    ///
    /// # Errors
    /// A [`FrameError`] saying what is wrong.
    pub fn decode(b: &[u8]) -> Result<Frame, FrameError> {
        if b.len() < 12 {
            return Err(FrameError::Truncated(b.len()));
        }
        if b[0] != FRAME_VERSION {
            return Err(FrameError::Version(b[0]));
        }
        let kind = FrameType::from_u8(b[1]).ok_or(FrameError::Type(b[1]))?;
        let content = Content::from_u8(b[2]).ok_or(FrameError::Content(b[2]))?;
        let flags = b[3];
        let seq = u64::from_le_bytes(b[4..12].try_into().expect("8 bytes"));
        let mut rest = &b[12..];
        let mut take = |n: usize| -> Result<&[u8], FrameError> {
            if rest.len() < n {
                return Err(FrameError::Truncated(b.len()));
            }
            let (head, tail) = rest.split_at(n);
            rest = tail;
            Ok(head)
        };
        let header = if flags & FLAG_HEADER != 0 {
            let n = u32::from_le_bytes(take(4)?.try_into().expect("4 bytes")) as usize;
            Some(take(n)?.to_vec())
        } else {
            None
        };
        let address = if flags & FLAG_ADDRESS != 0 {
            let mut field = || -> Result<String, FrameError> {
                let n = u16::from_le_bytes(take(2)?.try_into().expect("2 bytes")) as usize;
                String::from_utf8(take(n)?.to_vec()).map_err(|_| FrameError::Utf8)
            };
            let reply_key = field()?;
            let from = field()?;
            Some(Address { reply_key, from })
        } else {
            None
        };
        Ok(Frame {
            kind,
            content,
            flags: flags & FLAG_SYNC,
            seq,
            header,
            address,
        })
    }

    /// Whether the frame comes from a synchronised publisher.
    pub fn is_sync(&self) -> bool {
        self.flags & FLAG_SYNC != 0
    }
}

/// Appends one message (its frame header and body) to the payload of a
/// batch.
///
/// # Errors
/// [`FrameError::TooLong`] for a frame header of 64 KiB or more or a body
/// of 4 GiB or more; `out` is then unchanged.
pub fn batch_push(out: &mut Vec<u8>, frame: &Frame, body: &[u8]) -> Result<(), FrameError> {
    let flen = frame.encoded_len();
    let f = u16::try_from(flen).map_err(|_| FrameError::TooLong(flen))?;
    let b = u32::try_from(body.len()).map_err(|_| FrameError::TooLong(body.len()))?;
    let start = out.len();
    out.reserve(2 + flen + 4 + body.len());
    out.extend_from_slice(&f.to_le_bytes());
    if let Err(e) = frame.encode_into(out) {
        out.truncate(start);
        return Err(e);
    }
    out.extend_from_slice(&b.to_le_bytes());
    out.extend_from_slice(body);
    Ok(())
}

/// The messages of a batch's payload, in order: each frame header with its
/// body. It stops at the first malformed entry, which it yields as an
/// error.
#[derive(Debug, Clone)]
pub struct BatchReader<'a> {
    rest: &'a [u8],
    failed: bool,
}

impl<'a> BatchReader<'a> {
    /// Reads `payload`, the payload of a `Batch` sample.
    pub fn new(payload: &'a [u8]) -> Self {
        Self {
            rest: payload,
            failed: false,
        }
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8], FrameError> {
        if self.rest.len() < n {
            return Err(FrameError::Truncated(self.rest.len()));
        }
        let (head, tail) = self.rest.split_at(n);
        self.rest = tail;
        Ok(head)
    }

    fn entry(&mut self) -> Result<(Frame, &'a [u8]), FrameError> {
        let f = u16::from_le_bytes(self.take(2)?.try_into().expect("2 bytes")) as usize;
        let frame = Frame::decode(self.take(f)?)?;
        let b = u32::from_le_bytes(self.take(4)?.try_into().expect("4 bytes")) as usize;
        Ok((frame, self.take(b)?))
    }
}

impl<'a> Iterator for BatchReader<'a> {
    type Item = Result<(Frame, &'a [u8]), FrameError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.failed || self.rest.is_empty() {
            return None;
        }
        let entry = self.entry();
        self.failed = entry.is_err();
        Some(entry)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips() {
        let plain = Frame::new(FrameType::Data, 7);
        let b = plain.encode().unwrap();
        assert_eq!(b, [1, 0, 0, 0, 7, 0, 0, 0, 0, 0, 0, 0]);
        assert_eq!(Frame::decode(&b).unwrap(), plain);

        let full = Frame {
            kind: FrameType::Request,
            content: Content::Json,
            flags: FLAG_SYNC,
            seq: u64::MAX - 1,
            header: Some(b"hdr".to_vec()),
            address: Some(Address {
                reply_key: "troupe/@/reply/q-1".into(),
                from: "h/app/3".into(),
            }),
        };
        let b = full.encode().unwrap();
        let back = Frame::decode(&b).unwrap();
        assert_eq!(back, full);
        assert!(back.is_sync());
        // Later versions may append fields.
        let mut longer = b.clone();
        longer.extend_from_slice(b"future");
        assert_eq!(Frame::decode(&longer).unwrap(), full);
    }

    #[test]
    fn bad_headers_are_errors() {
        assert_eq!(Frame::decode(&[1, 0, 0]), Err(FrameError::Truncated(3)));
        let mut b = Frame::new(FrameType::End, 1).encode().unwrap();
        b[0] = 9;
        assert_eq!(Frame::decode(&b), Err(FrameError::Version(9)));
        b[0] = 1;
        b[1] = 99;
        assert_eq!(Frame::decode(&b), Err(FrameError::Type(99)));
        b[1] = 1;
        b[2] = 42;
        assert_eq!(Frame::decode(&b), Err(FrameError::Content(42)));
        // A header flag without the header.
        let mut b = Frame::new(FrameType::Data, 1).encode().unwrap();
        b[3] = 2;
        assert!(matches!(Frame::decode(&b), Err(FrameError::Truncated(_))));
        b.extend_from_slice(&[10, 0, 0, 0, 1]);
        assert!(matches!(Frame::decode(&b), Err(FrameError::Truncated(_))));
    }

    #[test]
    fn batches_round_trip_and_stop_at_damage() {
        let mut payload = Vec::new();
        let mut a = Frame::new(FrameType::Data, 5);
        a.flags = FLAG_SYNC;
        let mut b = Frame::new(FrameType::Data, 6);
        b.content = Content::Text;
        b.header = Some(b"two-part".to_vec());
        batch_push(&mut payload, &a, b"").unwrap();
        batch_push(&mut payload, &b, b"hello").unwrap();
        let got: Vec<_> = BatchReader::new(&payload).map(Result::unwrap).collect();
        assert_eq!(got, [(a.clone(), &b""[..]), (b.clone(), &b"hello"[..])]);
        // A cut payload: the whole entries, then one error, then nothing.
        let cut = &payload[..payload.len() - 2];
        let mut r = BatchReader::new(cut);
        assert_eq!(r.next().unwrap().unwrap(), (a, &b""[..]));
        assert!(matches!(r.next(), Some(Err(FrameError::Truncated(_)))));
        assert!(r.next().is_none());
        // A frame header too long for its 2-byte length leaves `out` as it was.
        let mut huge = Frame::new(FrameType::Data, 1);
        huge.header = Some(vec![0; 70_000]);
        let before = payload.len();
        assert!(matches!(
            batch_push(&mut payload, &huge, b"x"),
            Err(FrameError::TooLong(_))
        ));
        assert_eq!(payload.len(), before);
        assert_eq!(FrameType::from_u8(10), Some(FrameType::Batch));
    }
}
