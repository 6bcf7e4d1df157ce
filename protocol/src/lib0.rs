//! lib0 binary primitives (npm `lib0/encoding` and `lib0/decoding`): var-uint, var-bytes, var-string.
//!
//! Only what y-protocols framing needs. Yjs update payloads are opaque bytes here; the `crdt` crate
//! owns their contents.

use crate::error::{DecodeError, Result};

/// Largest integer a JS client can hold exactly (`Number.MAX_SAFE_INTEGER`, 2^53 - 1).
pub const MAX_SAFE_INTEGER: u64 = (1 << 53) - 1;

/// 8 groups of 7 bits (56 bits) are the fewest that hold every safe integer, so a 9th byte can only
/// encode an overflow: stopping at 8 bounds the work per var-uint.
const MAX_VAR_UINT_BYTES: u32 = 8;

const CONTINUE: u8 = 0x80;
const LOW_BITS: u8 = 0x7f;

/// Appends `n` as a lib0 var-uint: 7 bits per byte, least significant group first, high bit set on
/// every byte but the last. Like lib0, values above [`MAX_SAFE_INTEGER`] are written but a JS
/// client (and [`Reader::read_var_uint`]) cannot read them back.
pub fn write_var_uint(out: &mut Vec<u8>, mut n: u64) {
    while n > u64::from(LOW_BITS) {
        // Truncation is the point: keep the low 7 bits.
        out.push(CONTINUE | (n as u8 & LOW_BITS));
        n >>= 7;
    }
    out.push(n as u8);
}

/// Appends a var-uint length prefix and then the bytes (lib0 `writeVarUint8Array`).
pub fn write_var_bytes(out: &mut Vec<u8>, bytes: &[u8]) {
    write_var_uint(out, bytes.len() as u64);
    out.extend_from_slice(bytes);
}

/// Appends a string as var-bytes of its UTF-8 (lib0 `writeVarString`).
pub fn write_var_string(out: &mut Vec<u8>, s: &str) {
    write_var_bytes(out, s.as_bytes());
}

/// How many bytes [`write_var_uint`] writes for `n`, so callers can size buffers exactly.
pub fn var_uint_len(n: u64) -> usize {
    let bits = 64 - n.leading_zeros() as usize;
    // Zero still takes one byte.
    bits.div_ceil(7).max(1)
}

/// Encoded size of var-bytes holding `len` bytes.
pub(crate) fn var_bytes_len(len: usize) -> usize {
    var_uint_len(len as u64).saturating_add(len)
}

/// A cursor over untrusted bytes. Every read either advances past a complete value or returns an
/// error; slices borrow from the input, so decoding copies nothing.
#[derive(Debug, Clone)]
pub struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    /// Starts reading at the first byte of `buf`.
    pub fn new(buf: &'a [u8]) -> Self {
        Self { buf, pos: 0 }
    }

    /// Reads one byte.
    pub fn read_u8(&mut self) -> Result<u8> {
        let byte = *self.buf.get(self.pos).ok_or(DecodeError::UnexpectedEof)?;
        self.pos += 1;
        Ok(byte)
    }

    /// Borrows the next `len` bytes (fixed-width values such as lib0's float64).
    pub fn read_bytes(&mut self, len: usize) -> Result<&'a [u8]> {
        let rest = self.remaining();
        let bytes = rest.get(..len).ok_or(DecodeError::UnexpectedEof)?;
        self.pos += len;
        Ok(bytes)
    }

    /// Reads a lib0 var-int (sign in the first byte's 0x40 bit, 6 bits there, then 7 per byte)
    /// with the same bounds as [`Reader::read_var_uint`]: at most 8 bytes, magnitude within 2^53 - 1.
    pub fn read_var_int(&mut self) -> Result<i64> {
        let first = self.read_u8()?;
        let negative = first & 0x40 != 0;
        let mut magnitude = u64::from(first & 0x3f);
        let mut byte = first;
        let mut shift = 6;
        while byte & CONTINUE != 0 {
            if shift > 6 + 7 * (MAX_VAR_UINT_BYTES - 2) {
                return Err(DecodeError::VarUintOverflow);
            }
            byte = self.read_u8()?;
            magnitude |= u64::from(byte & LOW_BITS) << shift;
            shift += 7;
        }
        if magnitude > MAX_SAFE_INTEGER {
            return Err(DecodeError::VarUintOverflow);
        }
        // magnitude <= 2^53 - 1 fits an i64 either way.
        let value = magnitude as i64;
        Ok(if negative { -value } else { value })
    }

    /// Reads a lib0 var-uint. Stricter than lib0 in two ways, both of which a lib0 writer never
    /// triggers: more than 8 bytes or a value above 2^53 - 1 is [`DecodeError::VarUintOverflow`]
    /// (lib0 throws too, only later), and a redundant trailing zero group such as `80 00` is
    /// [`DecodeError::NonCanonicalVarUint`] (lib0 accepts it), so each value has one spelling and
    /// anything we accept re-encodes to the same bytes.
    pub fn read_var_uint(&mut self) -> Result<u64> {
        let mut value: u64 = 0;
        for group in 0..MAX_VAR_UINT_BYTES {
            let byte = self.read_u8()?;
            // group <= 7, so the shift is at most 49 and 7 + 49 bits fit in a u64.
            value |= u64::from(byte & LOW_BITS) << (7 * group);
            if byte & CONTINUE == 0 {
                if byte == 0 && group > 0 {
                    return Err(DecodeError::NonCanonicalVarUint);
                }
                if value > MAX_SAFE_INTEGER {
                    return Err(DecodeError::VarUintOverflow);
                }
                return Ok(value);
            }
        }
        Err(DecodeError::VarUintOverflow)
    }

    /// Reads a var-uint length and borrows that many bytes.
    pub fn read_var_bytes(&mut self) -> Result<&'a [u8]> {
        let len = self.read_var_uint()?;
        let rest = self.remaining();
        // A length that does not fit usize is certainly longer than the input.
        let len =
            usize::try_from(len).ok().filter(|len| *len <= rest.len()).ok_or(DecodeError::UnexpectedEof)?;
        let (bytes, _) = rest.split_at(len);
        self.pos += len;
        Ok(bytes)
    }

    /// Reads var-bytes and checks they are UTF-8. lib0's `TextDecoder` would substitute U+FFFD;
    /// we refuse instead, because re-broadcasting a silently altered string hides client bugs.
    pub fn read_var_string(&mut self) -> Result<&'a str> {
        std::str::from_utf8(self.read_var_bytes()?).map_err(|_| DecodeError::InvalidUtf8)
    }

    /// The bytes not read yet.
    pub fn remaining(&self) -> &'a [u8] {
        // pos only advances past bytes that exist, so it never exceeds len; `get` keeps that an
        // invariant rather than a panic.
        self.buf.get(self.pos..).unwrap_or_default()
    }

    /// True when every byte has been read.
    pub fn is_empty(&self) -> bool {
        self.remaining().is_empty()
    }

    /// How many bytes have been read from the start of the input.
    pub fn position(&self) -> usize {
        self.pos
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check_write(n: u64, expected: &[u8]) {
        let mut out = Vec::new();
        write_var_uint(&mut out, n);
        assert_eq!(out, expected, "write {n}");
        assert_eq!(var_uint_len(n), expected.len(), "len {n}");
    }

    #[test]
    fn writes_var_uints_like_lib0() {
        check_write(0, &[0x00]);
        check_write(1, &[0x01]);
        check_write(127, &[0x7f]);
        check_write(128, &[0x80, 0x01]);
        check_write(300, &[0xac, 0x02]);
        check_write(16_383, &[0xff, 0x7f]);
        check_write(16_384, &[0x80, 0x80, 0x01]);
        check_write(u64::from(u32::MAX), &[0xff, 0xff, 0xff, 0xff, 0x0f]);
        check_write(MAX_SAFE_INTEGER, &[0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x0f]);
        check_write(u64::MAX, &[0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01]);
    }

    fn check_read(input: &[u8], expected: Result<u64>) {
        let mut reader = Reader::new(input);
        assert_eq!(reader.read_var_uint(), expected, "read {input:02x?}");
    }

    #[test]
    fn reads_var_uints() {
        check_read(&[0x00], Ok(0));
        check_read(&[0x7f], Ok(127));
        check_read(&[0xac, 0x02], Ok(300));
        check_read(&[0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x0f], Ok(MAX_SAFE_INTEGER));
        check_read(&[], Err(DecodeError::UnexpectedEof));
        check_read(&[0x80], Err(DecodeError::UnexpectedEof));
        check_read(&[0xff, 0xff, 0xff], Err(DecodeError::UnexpectedEof));
        // 2^53 needs 54 bits: representable in 8 bytes, but not in a JS number.
        check_read(&[0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x10], Err(DecodeError::VarUintOverflow));
        check_read(&[0xff; 10], Err(DecodeError::VarUintOverflow));
        check_read(&[0xff; 8], Err(DecodeError::VarUintOverflow));
        check_read(&[0x80, 0x00], Err(DecodeError::NonCanonicalVarUint));
        check_read(&[0x81, 0x80, 0x00], Err(DecodeError::NonCanonicalVarUint));
    }

    #[test]
    fn var_uint_round_trips_at_every_width() {
        for shift in 0..53 {
            for n in [(1u64 << shift) - 1, 1u64 << shift, (1u64 << shift) + 1] {
                let mut out = Vec::new();
                write_var_uint(&mut out, n);
                let mut reader = Reader::new(&out);
                assert_eq!(reader.read_var_uint(), Ok(n));
                assert!(reader.is_empty());
                assert_eq!(reader.position(), out.len());
            }
        }
    }

    #[test]
    fn var_bytes_and_strings() {
        let mut out = Vec::new();
        write_var_bytes(&mut out, b"");
        write_var_string(&mut out, "héllo");
        assert_eq!(out, b"\x00\x06h\xc3\xa9llo");
        let mut reader = Reader::new(&out);
        assert_eq!(reader.read_var_bytes(), Ok(&b""[..]));
        assert_eq!(reader.read_var_string(), Ok("héllo"));
        assert!(reader.is_empty());

        assert_eq!(Reader::new(&[3, 1, 2]).read_var_bytes(), Err(DecodeError::UnexpectedEof));
        assert_eq!(Reader::new(&[1, 0xff]).read_var_string(), Err(DecodeError::InvalidUtf8));
        // A huge but safe length must fail cleanly, not allocate or overflow.
        let huge = [0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x0f, 1];
        assert_eq!(Reader::new(&huge).read_var_bytes(), Err(DecodeError::UnexpectedEof));
    }

    #[test]
    fn var_ints_and_fixed_bytes() {
        let cases: &[(&[u8], Result<i64>)] = &[
            (&[0x00], Ok(0)),
            (&[0x05], Ok(5)),
            (&[0x45], Ok(-5)),
            (&[0x80, 0x01], Ok(64)),
            (&[0xc0, 0x01], Ok(-64)),
            (&[0xbf, 0x7f], Ok(64 * 128 - 1)),
            (&[0x80], Err(DecodeError::UnexpectedEof)),
            (&[0xff; 12], Err(DecodeError::VarUintOverflow)),
        ];
        for (input, expected) in cases {
            assert_eq!(Reader::new(input).read_var_int(), *expected, "{input:02x?}");
        }
        let mut reader = Reader::new(&[1, 2, 3]);
        assert_eq!(reader.read_bytes(2), Ok(&[1u8, 2][..]));
        assert_eq!(reader.read_bytes(2), Err(DecodeError::UnexpectedEof));
        assert_eq!(reader.read_u8(), Ok(3));
    }

    #[test]
    fn remaining_tracks_position() {
        let mut reader = Reader::new(&[0x01, 0x02, 0x03]);
        assert_eq!(reader.read_var_uint(), Ok(1));
        assert_eq!(reader.remaining(), &[0x02, 0x03]);
        assert_eq!(reader.position(), 1);
        assert!(!reader.is_empty());
    }
}
