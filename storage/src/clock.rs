//! Wall-clock time, in the units the records and the pure crates use. The one clock of the
//! workspace: the server, the workers and the stores read the time here, so a test or a change of
//! unit has one place to look.

use std::time::{SystemTime, UNIX_EPOCH};

use crate::model::Millis;

/// Milliseconds since the Unix epoch (0 if the clock is before it).
pub fn unix_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64)
}

/// [`unix_ms`] as a record timestamp.
pub fn now_millis() -> Millis {
    Millis::try_from(unix_ms()).unwrap_or(Millis::MAX)
}

/// Seconds since the Unix epoch, as JWT claims count time.
pub fn unix_secs() -> u64 {
    unix_ms() / 1000
}
