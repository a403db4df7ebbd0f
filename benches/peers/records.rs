//! The records every peer writes: a shape (value size, with or without a key and headers), a
//! pool of values and keys to cycle through, and the plain payload encoding the peers without
//! keys or headers store instead.

use topiclog::Header;

use super::common;

/// The two headers of the keyed shape, the same on every record.
pub const HEADERS: [Header<'static>; 2] = [
    Header::new(b"content-type", Some(b"application/json")),
    Header::new(b"trace-id", Some(b"4bf92f3577b34da6")),
];

/// What each record holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Shape {
    /// Bytes in each value.
    pub value_len: usize,
    /// A 16-byte key and the two [`HEADERS`] on every record.
    pub keyed: bool,
}

impl Shape {
    /// 100-byte values, no key, no headers: the default.
    pub const PLAIN: Shape = Shape {
        value_len: 100,
        keyed: false,
    };
    /// 100-byte values with a 16-byte key and two headers.
    pub const KEYED: Shape = Shape {
        value_len: 100,
        keyed: true,
    };
    /// 1 KiB values, no key, no headers.
    pub const KIB: Shape = Shape {
        value_len: 1024,
        keyed: false,
    };

    /// Bytes of the payload the byte-oriented peers store per record (see [`encode`]).
    pub fn payload_len(self) -> usize {
        if self.keyed {
            let headers: usize = HEADERS
                .iter()
                .map(|h| 2 + h.key.len() + h.value.map_or(0, <[u8]>::len))
                .sum();
            1 + 16 + 1 + headers + self.value_len
        } else {
            self.value_len
        }
    }
}

/// One record as the workloads hand it to a peer.
#[derive(Debug, Clone, Copy)]
pub struct Rec<'a> {
    /// The key, for the keyed shape.
    pub key: Option<&'a [u8]>,
    /// The headers ([`HEADERS`] or none).
    pub headers: &'a [Header<'a>],
    /// The value.
    pub value: &'a [u8],
}

impl Rec<'_> {
    /// The record as topiclog takes it.
    pub fn topiclog(&self) -> topiclog::Record<'_> {
        let record = match self.key {
            Some(key) => topiclog::Record::keyed(key, self.value),
            None => topiclog::Record::new(self.value),
        };
        record.with_headers(self.headers)
    }

    /// The payload a byte-oriented peer stores: the value itself when there is no key and no
    /// headers (no copy), else `scratch` filled as `[u8 key len][key][u8 header count]` then
    /// `[u8 len][header key][u8 len][header value]` per header, then the value.
    pub fn payload<'s>(&'s self, scratch: &'s mut Vec<u8>) -> &'s [u8] {
        let Some(key) = self.key else {
            return self.value;
        };
        scratch.clear();
        scratch.push(key.len() as u8);
        scratch.extend_from_slice(key);
        scratch.push(self.headers.len() as u8);
        for header in self.headers {
            let value = header.value.unwrap_or(&[]);
            scratch.push(header.key.len() as u8);
            scratch.extend_from_slice(header.key);
            scratch.push(value.len() as u8);
            scratch.extend_from_slice(value);
        }
        scratch.extend_from_slice(self.value);
        scratch
    }
}

/// The value inside a payload written by [`Rec::payload`]; `None` if it does not parse.
pub fn value_of(payload: &[u8], keyed: bool) -> Option<&[u8]> {
    if !keyed {
        return Some(payload);
    }
    let mut rest = payload;
    let skip = |rest: &mut &[u8]| -> Option<()> {
        let (&len, tail) = rest.split_first()?;
        *rest = tail.get(usize::from(len)..)?;
        Some(())
    };
    skip(&mut rest)?;
    let (&count, tail) = rest.split_first()?;
    rest = tail;
    for _ in 0..count {
        skip(&mut rest)?;
        skip(&mut rest)?;
    }
    Some(rest)
}

/// A pool of distinct records of one shape, cycled through by the workloads.
pub struct Pool {
    shape: Shape,
    values: Vec<Vec<u8>>,
    keys: Vec<Vec<u8>>,
}

impl Pool {
    /// `count` distinct values (and keys, for the keyed shape), seeded.
    pub fn new(shape: Shape, count: usize, seed: u64) -> Pool {
        let values = common::values(count, shape.value_len, seed);
        let keys = if shape.keyed {
            common::values(count, 16, seed ^ 0x6b65_7973)
        } else {
            Vec::new()
        };
        Pool {
            shape,
            values,
            keys,
        }
    }

    /// The shape of every record in the pool.
    pub fn shape(&self) -> Shape {
        self.shape
    }

    /// Reads every value and key once (not timed), so the appends that follow find them
    /// resident: a host may take back guest memory left idle for a while.
    pub fn touch(&self) {
        let sum = |v: &Vec<Vec<u8>>| v.iter().flatten().fold(0u8, |acc, &b| acc ^ b);
        std::hint::black_box((sum(&self.values), sum(&self.keys)));
    }

    /// The `i`th record, cycling.
    pub fn get(&self, i: u64) -> Rec<'_> {
        let i = (i % self.values.len() as u64) as usize;
        Rec {
            key: self.keys.get(i).map(Vec::as_slice),
            headers: if self.shape.keyed { &HEADERS } else { &[] },
            value: &self.values[i],
        }
    }

    /// The records `from..from + n` (cycling), as a batch.
    pub fn batch(&self, from: u64, n: usize) -> Vec<Rec<'_>> {
        (0..n as u64).map(|i| self.get(from + i)).collect()
    }
}
