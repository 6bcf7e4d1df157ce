//! Test-only fault injection (feature `fault-injection`): markers that make yrs look broken, so
//! tests can prove a yrs panic stays inside its own room. No release build compiles this module.
//!
//! - [`PANIC_ON_APPLY`] typed into Y.Text `code` panics inside the transaction that integrates
//!   it, after yrs changed the document: the journal must roll the document back.
//! - [`PANIC_ON_ENCODE`] in Y.Text `code` makes every later encode of the document panic, as a
//!   store left broken by an update once did (issue 9): the document must be poisoned and the
//!   room reloaded.

use yrs::{GetString, ReadTxn};

pub const PANIC_ON_APPLY: &str = "\u{1f4a5}panic-on-apply\u{1f4a5}";
pub const PANIC_ON_ENCODE: &str = "\u{1f4a5}panic-on-encode\u{1f4a5}";

pub(crate) fn on_integrate(txn: &impl ReadTxn) {
    if code_contains(txn, PANIC_ON_APPLY) {
        panic!("fault injection: {PANIC_ON_APPLY} integrated");
    }
}

pub(crate) fn on_encode(doc: &yrs::Doc) {
    use yrs::Transact;
    if code_contains(&doc.transact(), PANIC_ON_ENCODE) {
        panic!("fault injection: {PANIC_ON_ENCODE} in the document");
    }
}

fn code_contains(txn: &impl ReadTxn, marker: &str) -> bool {
    txn.get_text("code").is_some_and(|text| text.get_string(txn).contains(marker))
}
