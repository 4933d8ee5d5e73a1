//! What the throughput scenarios send besides data, the same on every
//! transport: a round ends with a marker, and each sink answers a marker
//! with an acknowledgement of what it received in that round.
//!
//! A marker is exactly [`MARKER_LEN`] bytes (the round number) and a data
//! message is any other length, 0 included, so a sink tells them apart by
//! length: no data message may be 4 bytes long.

/// The length of a marker, and the one length a data message may not have.
pub const MARKER_LEN: usize = 4;

/// Marker of the end of round `round`.
pub fn marker(round: u32) -> [u8; MARKER_LEN] {
    round.to_le_bytes()
}

/// The round of a marker, if `msg` is one.
pub fn parse_marker(msg: &[u8]) -> Option<u32> {
    <[u8; MARKER_LEN]>::try_from(msg)
        .ok()
        .map(u32::from_le_bytes)
}

/// A sink's answer to a marker.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ack {
    /// Which sink.
    pub sink: u32,
    /// The round it ends.
    pub round: u32,
    /// Data messages received in that round.
    pub count: u64,
}

impl Ack {
    /// Encoded length.
    pub const LEN: usize = 16;

    /// Encodes the acknowledgement.
    pub fn encode(&self) -> [u8; Self::LEN] {
        let mut b = [0u8; Self::LEN];
        b[..4].copy_from_slice(&self.sink.to_le_bytes());
        b[4..8].copy_from_slice(&self.round.to_le_bytes());
        b[8..].copy_from_slice(&self.count.to_le_bytes());
        b
    }

    /// Decodes an acknowledgement.
    pub fn decode(b: &[u8]) -> Option<Ack> {
        let b: &[u8; Self::LEN] = b.try_into().ok()?;
        Some(Ack {
            sink: u32::from_le_bytes(b[..4].try_into().ok()?),
            round: u32::from_le_bytes(b[4..8].try_into().ok()?),
            count: u64::from_le_bytes(b[8..].try_into().ok()?),
        })
    }
}

/// The counting state of a sink: data since the last marker, and the answer
/// to the last marker (a repeated marker gets the same answer).
#[derive(Debug)]
pub struct Counter {
    sink: u32,
    count: u64,
    last: Option<Ack>,
}

impl Counter {
    /// A sink's counter.
    pub fn new(sink: u32) -> Self {
        Counter {
            sink,
            count: 0,
            last: None,
        }
    }

    /// Takes one message of `len` bytes; returns the acknowledgement to
    /// send if it is a marker. `round` reads the marker's round, only when
    /// the length says it is one.
    pub fn take_len(&mut self, len: usize, round: impl FnOnce() -> Option<u32>) -> Option<Ack> {
        if len != MARKER_LEN {
            self.count += 1;
            return None;
        }
        let round = round()?;
        match self.last {
            Some(a) if a.round == round => Some(a),
            _ => {
                let a = Ack {
                    sink: self.sink,
                    round,
                    count: std::mem::take(&mut self.count),
                };
                self.last = Some(a);
                Some(a)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ack_round_trips() {
        let a = Ack {
            sink: 7,
            round: 3,
            count: 1 << 40,
        };
        assert_eq!(Ack::decode(&a.encode()), Some(a));
        assert_eq!(Ack::decode(&[0; 15]), None);
    }

    impl Counter {
        fn take(&mut self, msg: &[u8]) -> Option<Ack> {
            self.take_len(msg.len(), || parse_marker(msg))
        }
    }

    #[test]
    fn counter_counts_rounds_and_repeats_its_answer() {
        let mut c = Counter::new(1);
        assert_eq!(c.take(&[0; 8]), None);
        assert_eq!(c.take(&[0; 100]), None);
        let a = c.take(&marker(1)).unwrap();
        assert_eq!((a.sink, a.round, a.count), (1, 1, 2));
        assert_eq!(c.take(&marker(1)), Some(a), "a repeated marker");
        assert_eq!(c.take(&[0; 8]), None);
        assert_eq!(c.take(&[]), None, "empty data");
        assert_eq!(c.take(&[1, 2]), None, "short data");
        assert_eq!(c.take(&marker(2)).unwrap().count, 3);
    }
}
