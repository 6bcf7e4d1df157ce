//! Splitting a valid update where it would integrate behind a hole: Yjs keeps every struct that
//! follows a missing clock pending, while yrs integrates such a struct at once behind a
//! placeholder that hides it from the state vector. So the room hands yrs only what precedes the
//! first uncovered hole of each client and keeps the rest as bytes, as Yjs would.
//!
//! v1 structs carry no clock of their own (a client section gives its first clock and each struct
//! follows the one before), and every reference in a struct is an explicit id, so a section can be
//! cut between two structs by rewriting only its header.

use protocol::lib0::{Reader, write_var_uint};

use super::{Invalid, count, read_struct};

/// An update cut in two.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Split {
    /// What integrates now: each client's structs up to its first uncovered hole, and the delete
    /// set.
    pub(crate) now: Vec<u8>,
    /// The rest, and per client the clock it must reach first.
    pub(crate) later: Vec<u8>,
    pub(crate) waits: Vec<(u64, u32)>,
}

struct Section<'a> {
    client: u64,
    /// Structs before the cut, their clock and bytes.
    head: (u64, u64, &'a [u8]),
    /// Structs from the cut on, their clock and bytes.
    tail: (u64, u64, &'a [u8]),
}

/// Cuts `bytes` (already validated) where a struct would start past the clock its client has in
/// the document (`clock_of`) with nothing before it. `None` when nothing needs to wait.
pub(crate) fn split_at_holes(bytes: &[u8], clock_of: impl Fn(u64) -> u32) -> Result<Option<Split>, Invalid> {
    let mut r = Reader::new(bytes);
    let mut sections = Vec::new();
    for _ in 0..count(&mut r)? {
        let structs = count(&mut r)?;
        let client = r.read_var_uint()?;
        let start = r.read_var_uint()?;
        let begin = r.position();
        let mut reach = u64::from(clock_of(client));
        let mut clock = start;
        let mut cut = None;
        // Where the run of Skip structs before the current one began: a cut there leaves no
        // trailing placeholder in what integrates now.
        let mut skips_from = None;
        for i in 0..structs {
            let at = r.position();
            let (len, skip) = read_struct(&mut r, client, clock)?;
            if cut.is_none() {
                if skip {
                    skips_from = skips_from.or(Some((i, at, clock)));
                } else if clock > reach {
                    cut = Some(skips_from.unwrap_or((i, at, clock)));
                } else {
                    reach = reach.max(clock + len);
                    skips_from = None;
                }
            }
            clock += len;
        }
        let end = r.position();
        let (n, at, cut_clock) = cut.unwrap_or((structs, end, clock));
        sections.push(Section {
            client,
            head: (n, start, &bytes[begin..at]),
            tail: (structs - n, cut_clock, &bytes[at..end]),
        });
    }
    let delete_set = r.remaining();
    if sections.iter().all(|s| s.tail.0 == 0) {
        return Ok(None);
    }
    let mut now = Vec::with_capacity(bytes.len());
    let mut later = Vec::with_capacity(bytes.len());
    let mut waits = Vec::new();
    write_sections(&mut now, sections.iter().map(|s| (s.client, s.head)));
    now.extend_from_slice(delete_set);
    write_sections(&mut later, sections.iter().map(|s| (s.client, s.tail)));
    later.push(0); // empty delete set
    for section in sections.iter().filter(|s| s.tail.0 > 0) {
        waits.push((section.client, needs(section)));
    }
    Ok(Some(Split { now, later, waits }))
}

/// The clock a client must reach before its tail can integrate: the first struct after the
/// placeholders the tail may begin with.
fn needs(section: &Section<'_>) -> u32 {
    let (n, mut clock, bytes) = section.tail;
    let mut r = Reader::new(bytes);
    for _ in 0..n {
        // Re-reading structs this module already read: they parse.
        let Ok((len, skip)) = read_struct(&mut r, section.client, clock) else { break };
        if !skip {
            break;
        }
        clock += len;
    }
    // Within the section, which validation bounded by u32::MAX.
    clock as u32
}

/// Writes the client sections that have structs.
fn write_sections<'a>(
    out: &mut Vec<u8>,
    sections: impl Iterator<Item = (u64, (u64, u64, &'a [u8]))> + Clone,
) {
    let present = sections.clone().filter(|(_, (n, _, _))| *n > 0);
    write_var_uint(out, present.clone().count() as u64);
    for (client, (n, clock, structs)) in present {
        write_var_uint(out, n);
        write_var_uint(out, client);
        write_var_uint(out, clock);
        out.extend_from_slice(structs);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::validate::validate_update;

    #[test]
    fn cuts_at_the_first_uncovered_hole_of_each_client() {
        let updates = crate::ydoc::typing(4, "ab");
        // Client's clocks 0..2, 4..6, 6..8 in one update: a hole at 2..4.
        let merged =
            yrs::merge_updates_v1([updates[0].as_slice(), updates[2].as_slice(), updates[3].as_slice()])
                .unwrap();
        let client = validate_update(&merged).unwrap().clients[0].client;
        // Nothing known yet: the first two characters integrate, the rest waits for clock 4.
        let split = split_at_holes(&merged, |_| 0).unwrap().expect("a hole");
        let now = validate_update(&split.now).unwrap();
        assert_eq!((now.clients[0].start, now.clients[0].end), (0, 2));
        let later = validate_update(&split.later).unwrap();
        assert_eq!(
            (later.clients[0].start, later.clients[0].end),
            (2, 8),
            "the hole's placeholder goes with it"
        );
        assert_eq!(later.clients[0].needs, 4);
        assert_eq!(split.waits, vec![(client, 4)]);
        // With clock 4 known the hole is covered: nothing to cut.
        assert_eq!(split_at_holes(&merged, |_| 4).unwrap(), None);
        // A section starting past the clock waits whole.
        let split = split_at_holes(&updates[3], |_| 2).unwrap().expect("a hole");
        assert_eq!(validate_update(&split.now).unwrap().clients, vec![]);
        assert_eq!(split.waits, vec![(client, 6)]);
        assert_eq!(split.later, updates[3]);
    }
}
