//! Where the test binaries find the `codecrafter` server (shared with `#[path]`: each test target is
//! its own crate).

use std::path::{Path, PathBuf};

/// The server binary, built by the same cargo invocation into the same directory as ours.
pub fn codecrafter() -> PathBuf {
    let path = Path::new(env!("CARGO_BIN_EXE_loadtest")).with_file_name("codecrafter");
    assert!(
        path.is_file(),
        "{} is missing: build the workspace first (`cargo build -p server` with the same \
         CARGO_TARGET_DIR and profile), or run scripts/test.sh",
        path.display()
    );
    path
}
