//! The `codecrafter-worker` binary against the test broker.
