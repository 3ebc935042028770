//! Byte format of [`LatencySketch`], version 1 (described in the [`sketch`](super) module doc).

use super::LatencySketch;
use super::mapping::BUCKETS;

/// The only format version this crate writes and reads.
pub const FORMAT_VERSION: u8 = 1;

/// Why bytes are not a valid sketch. Decoding never panics and never allocates more than the
/// bucket cap (1253 counts).
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum DecodeError {
    #[error("unknown sketch format version {0}")]
    UnknownVersion(u8),
    #[error("truncated: the input ends inside the sketch")]
    Truncated,
    #[error("varint does not fit in 64 bits")]
    VarintOverflow,
    #[error("bucket index {index} out of range (buckets are 0..{BUCKETS})")]
    BucketIndexOutOfRange { index: i64 },
    #[error("bucket range too wide: {len} buckets from index {first} (buckets are 0..{BUCKETS})")]
    RangeTooWide { first: u64, len: u64 },
    #[error("bucket counts add up to {actual} but the header says {declared}")]
    CountMismatch { declared: u64, actual: u64 },
    #[error("non-canonical encoding: {0}")]
    NonCanonical(&'static str),
    #[error("{0} trailing bytes after the sketch")]
    TrailingBytes(usize),
}

fn put_varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8 & 0x7f) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

fn zigzag(v: i64) -> u64 {
    ((v << 1) ^ (v >> 63)) as u64
}

fn unzigzag(v: u64) -> i64 {
    ((v >> 1) as i64) ^ -((v & 1) as i64)
}

struct Reader<'a> {
    bytes: &'a [u8],
    pos: usize,
}

impl Reader<'_> {
    fn byte(&mut self) -> Result<u8, DecodeError> {
        let b = *self.bytes.get(self.pos).ok_or(DecodeError::Truncated)?;
        self.pos += 1;
        Ok(b)
    }

    /// LEB128, minimal form only (one encoding per value keeps the format canonical).
    fn varint(&mut self) -> Result<u64, DecodeError> {
        let mut value = 0u64;
        for shift in (0..64).step_by(7) {
            let b = self.byte()?;
            let bits = u64::from(b & 0x7f);
            if shift == 63 && bits > 1 {
                return Err(DecodeError::VarintOverflow);
            }
            value |= bits << shift;
            if b & 0x80 == 0 {
                if b == 0 && shift > 0 {
                    return Err(DecodeError::NonCanonical("overlong varint"));
                }
                return Ok(value);
            }
        }
        Err(DecodeError::VarintOverflow)
    }

    fn finish(&self) -> Result<(), DecodeError> {
        match self.bytes.len() - self.pos {
            0 => Ok(()),
            n => Err(DecodeError::TrailingBytes(n)),
        }
    }
}

impl LatencySketch {
    /// The sketch's bytes (format version 1, see the [`sketch`](super) module doc).
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::new();
        self.encode_into(&mut out);
        out
    }

    /// Appends the sketch's bytes to `out`.
    pub fn encode_into(&self, out: &mut Vec<u8>) {
        out.push(FORMAT_VERSION);
        put_varint(out, self.zero_count);
        let in_buckets = self
            .counts
            .iter()
            .fold(0u64, |sum, &c| sum.saturating_add(c));
        put_varint(out, in_buckets);
        if in_buckets == 0 {
            return;
        }
        put_varint(out, zigzag(self.offset as i64));
        put_varint(out, self.counts.len() as u64);
        // `counts` has non-zero ends (LatencySketch's invariant); each maximal run of empty
        // buckets inside is written as 0 followed by its length.
        let mut i = 0;
        while i < self.counts.len() {
            let c = self.counts[i];
            if c == 0 {
                let run = self.counts[i..].iter().take_while(|&&c| c == 0).count();
                out.push(0);
                put_varint(out, run as u64);
                i += run;
            } else {
                put_varint(out, c);
                i += 1;
            }
        }
    }

    /// Parses bytes written by [`encode`](Self::encode). Refuses anything else: an unknown
    /// version, truncated or trailing bytes, indices outside the bucket table, counts that do
    /// not add up, and non-canonical forms (so a decoded sketch re-encodes to the same bytes).
    pub fn decode(bytes: &[u8]) -> Result<Self, DecodeError> {
        let mut r = Reader { bytes, pos: 0 };
        let version = r.byte()?;
        if version != FORMAT_VERSION {
            return Err(DecodeError::UnknownVersion(version));
        }
        let zero_count = r.varint()?;
        let declared = r.varint()?;
        let mut sketch = LatencySketch {
            zero_count,
            count: zero_count.saturating_add(declared),
            offset: 0,
            counts: Vec::new(),
        };
        if declared == 0 {
            r.finish()?;
            return Ok(sketch);
        }
        let first = unzigzag(r.varint()?);
        let first = match usize::try_from(first) {
            Ok(first) if first < BUCKETS => first,
            _ => return Err(DecodeError::BucketIndexOutOfRange { index: first }),
        };
        let len = r.varint()?;
        if len == 0 {
            return Err(DecodeError::CountMismatch {
                declared,
                actual: 0,
            });
        }
        let len = match usize::try_from(len) {
            Ok(len) if len <= BUCKETS - first => len,
            _ => {
                return Err(DecodeError::RangeTooWide {
                    first: first as u64,
                    len,
                });
            }
        };
        // Bounded by BUCKETS above: at most 1253 counts, whatever the input claims.
        let mut counts = Vec::with_capacity(len);
        let mut previous_was_run = false;
        while counts.len() < len {
            let c = r.varint()?;
            if c != 0 {
                counts.push(c);
                previous_was_run = false;
                continue;
            }
            let run = r.varint()?;
            if counts.is_empty() {
                return Err(DecodeError::NonCanonical("leading empty buckets"));
            }
            if previous_was_run {
                return Err(DecodeError::NonCanonical("adjacent runs of empty buckets"));
            }
            if run == 0 {
                return Err(DecodeError::NonCanonical("empty run of empty buckets"));
            }
            match usize::try_from(run) {
                Ok(run) if run < len - counts.len() => counts.resize(counts.len() + run, 0),
                _ => return Err(DecodeError::NonCanonical("trailing empty buckets")),
            }
            previous_was_run = true;
        }
        let actual = counts.iter().fold(0u64, |sum, &c| sum.saturating_add(c));
        if actual != declared {
            return Err(DecodeError::CountMismatch { declared, actual });
        }
        r.finish()?;
        sketch.offset = first;
        sketch.counts = counts;
        Ok(sketch)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sketch_of(values: &[u64]) -> LatencySketch {
        let mut s = LatencySketch::new();
        for &v in values {
            s.add(v);
        }
        s
    }

    #[test]
    fn varints_round_trip() {
        for v in [
            0,
            1,
            127,
            128,
            300,
            16_383,
            16_384,
            u64::from(u32::MAX),
            u64::MAX - 1,
            u64::MAX,
        ] {
            let mut out = Vec::new();
            put_varint(&mut out, v);
            let mut r = Reader {
                bytes: &out,
                pos: 0,
            };
            assert_eq!(r.varint(), Ok(v), "{v} -> {out:?}");
            assert_eq!(r.finish(), Ok(()));
        }
        for v in [0, 1, -1, 63, -64, 1_000, i64::MAX, i64::MIN] {
            assert_eq!(unzigzag(zigzag(v)), v);
        }
        assert_eq!([zigzag(0), zigzag(-1), zigzag(1), zigzag(-2)], [0, 1, 2, 3]);
    }

    #[test]
    fn known_encodings() {
        // Bucket of v is v - 1 for v <= 98.
        let cases: &[(&[u64], &[u8])] = &[
            (&[], &[1, 0, 0]),
            (&[0, 0, 0], &[1, 3, 0]),
            (&[1], &[1, 0, 1, 0, 1, 1]),
            (&[5, 5], &[1, 0, 2, 8, 1, 2]),
            // 3 and 7: buckets 2 and 6, three empty buckets between them.
            (&[0, 3, 7, 7], &[1, 1, 3, 4, 5, 1, 0, 3, 2]),
            // 3, 4 and 6: one empty bucket (index 4).
            (&[3, 4, 6], &[1, 0, 3, 4, 4, 1, 1, 0, 1, 1]),
        ];
        for &(values, bytes) in cases {
            let s = sketch_of(values);
            assert_eq!(s.encode(), bytes, "{values:?}");
            assert_eq!(LatencySketch::decode(bytes), Ok(s), "{values:?}");
        }
    }

    #[test]
    fn encode_into_appends() {
        let s = sketch_of(&[1, 2, 3]);
        let mut out = vec![0xAA];
        s.encode_into(&mut out);
        assert_eq!(out[0], 0xAA);
        assert_eq!(&out[1..], s.encode().as_slice());
    }

    #[test]
    fn malformed_input_is_refused() {
        let top = BUCKETS as u64;
        let zz = |i: i64| {
            let mut v = Vec::new();
            put_varint(&mut v, zigzag(i));
            v
        };
        let with = |head: &[u8], index: &[u8], tail: &[u8]| [head, index, tail].concat();
        let cases: Vec<(Vec<u8>, DecodeError)> = vec![
            (vec![], DecodeError::Truncated),
            (vec![7, 0, 0], DecodeError::UnknownVersion(7)),
            (vec![0], DecodeError::UnknownVersion(0)),
            (vec![1], DecodeError::Truncated),
            (vec![1, 0], DecodeError::Truncated),
            (vec![1, 0x80], DecodeError::Truncated),
            (vec![1, 0, 1], DecodeError::Truncated),
            (vec![1, 0, 1, 0], DecodeError::Truncated),
            (vec![1, 0, 1, 0, 1], DecodeError::Truncated),
            (vec![1, 0, 2, 0, 2, 1], DecodeError::Truncated),
            (vec![1, 0, 0, 0], DecodeError::TrailingBytes(1)),
            (vec![1, 0, 1, 0, 1, 1, 9, 9], DecodeError::TrailingBytes(2)),
            (
                vec![1, 0x80, 0x00, 0],
                DecodeError::NonCanonical("overlong varint"),
            ),
            (
                [&[1u8][..], &[0xff; 9], &[0x02]].concat(),
                DecodeError::VarintOverflow,
            ),
            (
                [&[1u8][..], &[0xff; 10], &[0x01]].concat(),
                DecodeError::VarintOverflow,
            ),
            (
                vec![1, 0, 1, 1, 1, 1],
                DecodeError::BucketIndexOutOfRange { index: -1 },
            ),
            (
                with(&[1, 0, 1], &zz(BUCKETS as i64), &[1, 1]),
                DecodeError::BucketIndexOutOfRange {
                    index: BUCKETS as i64,
                },
            ),
            (
                with(&[1, 0, 1], &zz(i64::MIN), &[1, 1]),
                DecodeError::BucketIndexOutOfRange { index: i64::MIN },
            ),
            // Oversize ranges: refused before anything is allocated for them.
            (
                vec![
                    1, 0, 1, 0, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01,
                ],
                DecodeError::RangeTooWide {
                    first: 0,
                    len: u64::MAX,
                },
            ),
            (
                with(
                    &[1, 0, 1, 0],
                    &{
                        let mut v = Vec::new();
                        put_varint(&mut v, top + 1);
                        v
                    },
                    &[],
                ),
                DecodeError::RangeTooWide {
                    first: 0,
                    len: top + 1,
                },
            ),
            (
                with(&[1, 0, 1], &zz(BUCKETS as i64 - 1), &[2, 1, 1]),
                DecodeError::RangeTooWide {
                    first: top - 1,
                    len: 2,
                },
            ),
            (
                vec![1, 0, 1, 0, 0],
                DecodeError::CountMismatch {
                    declared: 1,
                    actual: 0,
                },
            ),
            (
                vec![1, 0, 5, 0, 1, 1],
                DecodeError::CountMismatch {
                    declared: 5,
                    actual: 1,
                },
            ),
            (
                vec![1, 0, 1, 0, 2, 1, 1],
                DecodeError::CountMismatch {
                    declared: 1,
                    actual: 2,
                },
            ),
            (
                vec![1, 0, 1, 0, 2, 0, 1, 1],
                DecodeError::NonCanonical("leading empty buckets"),
            ),
            (
                vec![1, 0, 1, 0, 2, 1, 0, 1],
                DecodeError::NonCanonical("trailing empty buckets"),
            ),
            (
                vec![1, 0, 1, 0, 3, 1, 0, 5],
                DecodeError::NonCanonical("trailing empty buckets"),
            ),
            (
                vec![1, 0, 2, 0, 3, 1, 0, 0, 1],
                DecodeError::NonCanonical("empty run of empty buckets"),
            ),
            (
                vec![1, 0, 2, 0, 4, 1, 0, 1, 0, 1, 1],
                DecodeError::NonCanonical("adjacent runs of empty buckets"),
            ),
        ];
        for (bytes, want) in cases {
            assert_eq!(LatencySketch::decode(&bytes), Err(want), "{bytes:?}");
        }
    }

    #[test]
    fn error_messages_say_what_is_wrong() {
        assert_eq!(
            DecodeError::UnknownVersion(7).to_string(),
            "unknown sketch format version 7"
        );
        assert!(DecodeError::Truncated.to_string().starts_with("truncated"));
        assert!(
            DecodeError::RangeTooWide {
                first: 0,
                len: 5000
            }
            .to_string()
            .starts_with("bucket range too wide")
        );
    }

    #[test]
    fn every_prefix_of_a_valid_encoding_is_truncated() {
        let bytes = sketch_of(&[0, 1, 50, 51, 1_000, 99_999, 300_000_000, u64::MAX]).encode();
        for end in 0..bytes.len() {
            assert_eq!(
                LatencySketch::decode(&bytes[..end]),
                Err(DecodeError::Truncated),
                "{end}"
            );
        }
        assert!(LatencySketch::decode(&bytes).is_ok());
    }

    #[test]
    fn saturated_counts_round_trip() {
        let mut s = LatencySketch::new();
        s.add_n(10, u64::MAX);
        s.add_n(20, u64::MAX);
        s.add_n(0, 3);
        assert_eq!(s.count(), u64::MAX);
        assert_eq!(LatencySketch::decode(&s.encode()), Ok(s));
    }
}
