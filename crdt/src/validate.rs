//! Structural validation of untrusted v1 updates, before yrs sees them: clock ranges, lengths,
//! references, and every spot where yrs and JS Yjs would read the same bytes differently.
//!
//! yrs trusts what it decodes: clock arithmetic is `u32` (a range past 2^32 wraps in release
//! builds and later panics inside the block store), nested `Any` values are decoded by recursion
//! (a deep enough nesting overflows the thread's stack, which aborts the process), and a few
//! encodings mean one thing to yrs and another to Yjs (content refs above 15, a client listed twice,
//! legacy JSON content). A server that relays what it accepted to JS clients must refuse all of
//! that, so this walks the whole update once, allocating nothing, and says what it found:
//! per-client clock ranges, which the room uses to tell an update that only extends the document
//! (relayed byte for byte) from one that overlaps what is known (re-encoded, `room.rs`).
//!
//! The layout (lib0 v1, as Yjs's `writeStructs`/`writeDeleteSet` write it):
//! `clients: var_uint, { structs: var_uint, client: var_uint, clock: var_uint, struct* }*,
//! delete set: var_uint, { client, ranges: var_uint, { clock, len }* }*`.

use protocol::DecodeError;
use protocol::lib0::Reader;

/// Deepest nesting of `Any` arrays and maps accepted in an update. yrs (and lib0 in the browser)
/// decode them by recursion; 64 levels is far beyond any editor's data and far below what a
/// thread's stack holds.
pub const MAX_NESTING: usize = 64;

/// The highest clock a range may reach: yrs keeps clocks in a `u32`.
const MAX_CLOCK: u64 = u32::MAX as u64;

const INFO_GC: u8 = 0;
const INFO_SKIP: u8 = 10;
const HAS_ORIGIN: u8 = 0x80;
const HAS_RIGHT_ORIGIN: u8 = 0x40;
const HAS_PARENT_SUB: u8 = 0x20;
/// Yjs reads the content ref from the low five bits (`BITS5`), yrs from the low four.
const CONTENT_REF: u8 = 0x1f;

/// Why an update was refused. Each names what a well-behaved Yjs encoder never writes.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Invalid {
    #[error("not a v1 update: {0}")]
    Decode(#[from] DecodeError),
    #[error("client {client}: range {clock}+{len} runs past the 32-bit clock")]
    ClockOverflow { client: u64, clock: u64, len: u64 },
    #[error("reference {client}:{clock} is past the 32-bit clock")]
    ReferenceOverflow { client: u64, clock: u64 },
    #[error("client {0} has two struct sections (Yjs keeps the last, yrs both)")]
    DuplicateClient(u64),
    #[error("client {client}: struct at clock {clock} has length 0")]
    EmptyStruct { client: u64, clock: u64 },
    #[error("client {client}: struct at clock {clock} has info byte {info:#04x}")]
    BadInfo { client: u64, clock: u64, info: u8 },
    #[error("client {client}: item at clock {clock} refers to {ref_clock}, not before it")]
    ForwardReference { client: u64, clock: u64, ref_clock: u64 },
    #[error("legacy JSON content (yrs and Yjs decode it differently)")]
    LegacyJson,
    #[error("unknown type ref {0}")]
    UnknownTypeRef(u64),
    #[error("unknown any tag {0}")]
    UnknownAnyTag(u8),
    #[error("values nested deeper than {MAX_NESTING} levels")]
    TooDeep,
    #[error("a count of {count} with {remaining} bytes left")]
    CountTooLarge { count: u64, remaining: usize },
    #[error("{0} bytes after the delete set")]
    TrailingBytes(usize),
}

/// The clock range one client's structs cover in an update.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClientRange {
    pub client: u64,
    pub start: u32,
    pub end: u32,
    /// The range has holes (Skip structs): parts of it are not in the update.
    pub has_skip: bool,
    /// The clock this client must have reached in a document before the update can integrate
    /// without leaving a hole: `start`, or where the structs after the last hole begin.
    pub needs: u32,
}

/// What a valid update holds.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Shape {
    /// In the order of the update.
    pub clients: Vec<ClientRange>,
    pub has_deletes: bool,
}

/// Walks `bytes` as a v1 update and refuses anything yrs or Yjs would choke on or disagree about.
pub fn validate_update(bytes: &[u8]) -> Result<Shape, Invalid> {
    walk(bytes).map(|(shape, _)| shape)
}

/// Where the delete set of a valid update begins.
pub(crate) fn struct_section_len(bytes: &[u8]) -> Result<usize, Invalid> {
    walk(bytes).map(|(_, structs)| structs)
}

fn walk(bytes: &[u8]) -> Result<(Shape, usize), Invalid> {
    let mut r = Reader::new(bytes);
    let mut shape = Shape::default();
    let clients = count(&mut r)?;
    shape.clients.reserve(clients.min(16) as usize);
    for _ in 0..clients {
        let structs = count(&mut r)?;
        let client = r.read_var_uint()?;
        let start = r.read_var_uint()?;
        let mut clock = start;
        let mut has_skip = false;
        let mut needs = start;
        let mut after_skip = false;
        for _ in 0..structs {
            let (len, skip) = read_struct(&mut r, client, clock)?;
            if after_skip && !skip {
                needs = clock;
            }
            after_skip = skip;
            has_skip |= skip;
            clock = clock.checked_add(len).filter(|end| *end <= MAX_CLOCK).ok_or(Invalid::ClockOverflow {
                client,
                clock,
                len,
            })?;
        }
        if start > MAX_CLOCK {
            return Err(Invalid::ClockOverflow { client, clock: start, len: 0 });
        }
        // All fit: checked against MAX_CLOCK above.
        let (start, end, needs) = (start as u32, clock as u32, needs as u32);
        shape.clients.push(ClientRange { client, start, end, has_skip, needs });
    }
    refuse_duplicates(&shape.clients)?;
    let structs_len = r.position();
    let delete_clients = count(&mut r)?;
    for _ in 0..delete_clients {
        let client = r.read_var_uint()?;
        let ranges = count(&mut r)?;
        for _ in 0..ranges {
            let clock = r.read_var_uint()?;
            let len = r.read_var_uint()?;
            if clock.checked_add(len).is_none_or(|end| end > MAX_CLOCK) {
                return Err(Invalid::ClockOverflow { client, clock, len });
            }
            shape.has_deletes = true;
        }
    }
    match r.remaining().len() {
        0 => Ok((shape, structs_len)),
        n => Err(Invalid::TrailingBytes(n)),
    }
}

/// Yjs keeps only the last section of a client listed twice, yrs keeps both: refused. Sorted
/// copy rather than pairwise checks, so a many-client update stays O(n log n).
fn refuse_duplicates(clients: &[ClientRange]) -> Result<(), Invalid> {
    if clients.len() < 2 {
        return Ok(());
    }
    let mut ids: Vec<u64> = clients.iter().map(|c| c.client).collect();
    ids.sort_unstable();
    match ids.windows(2).find(|pair| pair[0] == pair[1]) {
        Some(pair) => Err(Invalid::DuplicateClient(pair[0])),
        None => Ok(()),
    }
}

/// A count of things that each take at least one byte: larger than the input left, it can only be
/// there to make a decoder reserve memory.
fn count(r: &mut Reader<'_>) -> Result<u64, Invalid> {
    let n = r.read_var_uint()?;
    let remaining = r.remaining().len();
    if n > remaining as u64 {
        return Err(Invalid::CountTooLarge { count: n, remaining });
    }
    Ok(n)
}

/// Reads one struct at `client:clock`; returns its length in clock units and whether it is a Skip.
fn read_struct(r: &mut Reader<'_>, client: u64, clock: u64) -> Result<(u64, bool), Invalid> {
    let info = r.read_u8()?;
    let content_ref = info & CONTENT_REF;
    if content_ref == INFO_GC || content_ref == INFO_SKIP {
        // Yjs tests the low five bits, yrs the whole byte: flags on a GC or Skip split them.
        if info != content_ref {
            return Err(Invalid::BadInfo { client, clock, info });
        }
        let len = r.read_var_uint()?;
        if len == 0 {
            return Err(Invalid::EmptyStruct { client, clock });
        }
        return Ok((len, content_ref == INFO_SKIP));
    }
    if info & HAS_ORIGIN != 0 {
        read_reference(r, client, clock)?;
    }
    if info & HAS_RIGHT_ORIGIN != 0 {
        read_reference(r, client, clock)?;
    }
    if info & (HAS_ORIGIN | HAS_RIGHT_ORIGIN) == 0 {
        // Parent: 1 = a root type's name, anything else = the id of a type item.
        if r.read_var_uint()? == 1 {
            r.read_var_string()?;
        } else {
            read_reference(r, client, clock)?;
        }
        if info & HAS_PARENT_SUB != 0 {
            r.read_var_string()?;
        }
    }
    let len = read_content(r, content_ref).map_err(|e| match e {
        Invalid::BadInfo { .. } => Invalid::BadInfo { client, clock, info },
        other => other,
    })?;
    if len == 0 {
        return Err(Invalid::EmptyStruct { client, clock });
    }
    Ok((len, false))
}

/// Reads an id an item points at (origin, right origin, parent). One of the item's own client must
/// come before it: that client created it earlier. A later one could only close a cycle.
fn read_reference(r: &mut Reader<'_>, client: u64, clock: u64) -> Result<(), Invalid> {
    let ref_client = r.read_var_uint()?;
    let ref_clock = r.read_var_uint()?;
    if ref_clock >= MAX_CLOCK {
        return Err(Invalid::ReferenceOverflow { client: ref_client, clock: ref_clock });
    }
    if ref_client == client && ref_clock >= clock {
        return Err(Invalid::ForwardReference { client, clock, ref_clock });
    }
    Ok(())
}

/// Reads an item's content; returns its length in clock units (Yjs's `getLength`).
fn read_content(r: &mut Reader<'_>, content_ref: u8) -> Result<u64, Invalid> {
    Ok(match content_ref {
        // Deleted: just a length.
        1 => r.read_var_uint()?,
        // ContentJSON: Yjs reads `len` strings, yrs `len + 1`. Yjs 13 never writes it.
        2 => return Err(Invalid::LegacyJson),
        // Binary.
        3 => {
            r.read_var_bytes()?;
            1
        }
        // String: its length is counted in UTF-16 code units, as JS strings are.
        4 => r.read_var_string()?.encode_utf16().count() as u64,
        // Embed: a JSON string.
        5 => {
            r.read_var_string()?;
            1
        }
        // Format: a key and a JSON string.
        6 => {
            r.read_var_string()?;
            r.read_var_string()?;
            1
        }
        // A shared type.
        7 => {
            match r.read_var_uint()? {
                // Array, Map, Text, XmlFragment, XmlText.
                0 | 1 | 2 | 4 | 6 => {}
                // XmlElement (tag name), XmlHook (hook name).
                3 | 5 => {
                    r.read_var_string()?;
                }
                other => return Err(Invalid::UnknownTypeRef(other)),
            }
            1
        }
        // Any values.
        8 => {
            let n = count(r)?;
            for _ in 0..n {
                read_any(r, 0)?;
            }
            n
        }
        // A subdocument: its guid and options.
        9 => {
            r.read_var_string()?;
            read_any(r, 0)?;
            1
        }
        _ => return Err(Invalid::BadInfo { client: 0, clock: 0, info: content_ref }),
    })
}

/// Reads one lib0 `Any` value, refusing nesting deeper than [`MAX_NESTING`].
fn read_any(r: &mut Reader<'_>, depth: usize) -> Result<(), Invalid> {
    if depth >= MAX_NESTING {
        return Err(Invalid::TooDeep);
    }
    match r.read_u8()? {
        // undefined, null, false, true.
        127 | 126 | 121 | 120 => {}
        125 => {
            r.read_var_int()?;
        }
        124 => {
            r.read_bytes(4)?;
        }
        123 | 122 => {
            r.read_bytes(8)?;
        }
        119 => {
            r.read_var_string()?;
        }
        118 => {
            for _ in 0..count(r)? {
                r.read_var_string()?;
                read_any(r, depth + 1)?;
            }
        }
        117 => {
            for _ in 0..count(r)? {
                read_any(r, depth + 1)?;
            }
        }
        116 => {
            r.read_var_bytes()?;
        }
        tag => return Err(Invalid::UnknownAnyTag(tag)),
    }
    Ok(())
}

mod split;
#[cfg(test)]
mod tests;

pub(crate) use split::split_at_holes;
