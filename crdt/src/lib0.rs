//! The lib0 primitives the awareness payload needs (var-uint and var-string), private to this crate.
//!
//! `protocol` owns the wire framing; this copy exists so the awareness registry does not depend on
//! that crate's progress, and only covers what an awareness update contains. Like lib0 in JS, a
//! var-uint above 2^53 - 1 is refused: a JS client could not read it back.

use crate::{Error, Result};

/// `Number.MAX_SAFE_INTEGER`: the largest integer a JS peer holds exactly.
pub(crate) const MAX_SAFE_INTEGER: u64 = (1 << 53) - 1;

/// Eight 7-bit groups (56 bits) hold every safe integer, so stopping there bounds the work.
const MAX_VAR_UINT_BYTES: usize = 8;

pub(crate) fn write_var_uint(out: &mut Vec<u8>, mut n: u64) {
    while n >= 0x80 {
        // Truncation is the point: keep the low 7 bits, flag that more follow.
        out.push(0x80 | (n as u8 & 0x7f));
        n >>= 7;
    }
    out.push(n as u8);
}

pub(crate) fn write_var_string(out: &mut Vec<u8>, s: &str) {
    write_var_uint(out, s.len() as u64);
    out.extend_from_slice(s.as_bytes());
}

/// A cursor over untrusted bytes: every read advances past a whole value or fails.
pub(crate) struct Reader<'a> {
    buf: &'a [u8],
}

impl<'a> Reader<'a> {
    pub(crate) fn new(buf: &'a [u8]) -> Self {
        Self { buf }
    }

    #[cfg(test)]
    pub(crate) fn is_empty(&self) -> bool {
        self.buf.is_empty()
    }

    pub(crate) fn read_var_uint(&mut self) -> Result<u64> {
        let mut n = 0u64;
        for (i, &byte) in self.buf.iter().take(MAX_VAR_UINT_BYTES).enumerate() {
            n |= u64::from(byte & 0x7f) << (7 * i);
            if byte & 0x80 == 0 {
                if n > MAX_SAFE_INTEGER {
                    return Err(Error::MalformedAwareness("integer above 2^53 - 1"));
                }
                self.buf = &self.buf[i + 1..];
                return Ok(n);
            }
        }
        if self.buf.len() >= MAX_VAR_UINT_BYTES {
            Err(Error::MalformedAwareness("var-uint longer than 8 bytes"))
        } else {
            Err(Error::MalformedAwareness("truncated var-uint"))
        }
    }

    pub(crate) fn read_var_string(&mut self) -> Result<&'a str> {
        let len = self.read_var_uint()?;
        let len = usize::try_from(len)
            .ok()
            .filter(|&len| len <= self.buf.len())
            .ok_or(Error::MalformedAwareness("string longer than the payload"))?;
        let (bytes, rest) = self.buf.split_at(len);
        let s = std::str::from_utf8(bytes)
            .map_err(|_| Error::MalformedAwareness("string is not UTF-8"))?;
        self.buf = rest;
        Ok(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn roundtrip(n: u64) -> u64 {
        let mut out = Vec::new();
        write_var_uint(&mut out, n);
        let mut r = Reader::new(&out);
        let back = r.read_var_uint().unwrap();
        assert!(r.is_empty());
        back
    }

    #[test]
    fn var_uint_round_trips_at_group_edges() {
        for n in [0, 1, 0x7f, 0x80, 0x3fff, 0x4000, u64::from(u32::MAX), MAX_SAFE_INTEGER] {
            assert_eq!(roundtrip(n), n);
        }
    }

    #[test]
    fn var_uint_matches_lib0_bytes() {
        // lib0: encoding.writeVarUint(e, 300) -> [0xac, 0x02]
        let mut out = Vec::new();
        write_var_uint(&mut out, 300);
        assert_eq!(out, [0xac, 0x02]);
    }

    #[test]
    fn bad_var_uints_are_errors() {
        let cases: &[&[u8]] = &[
            &[],
            &[0x80],
            &[0xff; 8],
            &[0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f],
        ];
        for bytes in cases {
            assert!(Reader::new(bytes).read_var_uint().is_err(), "{bytes:?}");
        }
    }

    #[test]
    fn bad_strings_are_errors() {
        let cases: &[&[u8]] = &[&[3, b'a', b'b'], &[1, 0xff], &[0x80]];
        for bytes in cases {
            assert!(Reader::new(bytes).read_var_string().is_err(), "{bytes:?}");
        }
        assert_eq!(Reader::new(&[2, b'o', b'k']).read_var_string().unwrap(), "ok");
    }
}
