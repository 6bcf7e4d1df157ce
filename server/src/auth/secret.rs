//! Where the JWT signing secret comes from: the operator (flag / env var) or, on the embedded
//! default, a file generated once in the data dir so tokens stay valid across restarts.

use std::io::Write;
use std::path::Path;

use anyhow::{Context, bail};

/// Shortest secret accepted: HS256 wants at least as many bytes as its output.
pub const MIN_SECRET_BYTES: usize = 32;

/// File name of the generated secret inside `--data-dir`.
pub const SECRET_FILE: &str = "jwt-secret";

/// The configured secret, or (only when no other node needs to agree on it) the one kept in
/// `data_dir`, generated on first start.
pub fn load(configured: Option<&str>, data_dir: &Path, scaled_out: bool) -> anyhow::Result<Vec<u8>> {
    if let Some(secret) = configured {
        if secret.len() < MIN_SECRET_BYTES {
            bail!("JWT_SECRET must be at least {MIN_SECRET_BYTES} bytes");
        }
        return Ok(secret.as_bytes().to_vec());
    }
    if scaled_out {
        bail!(
            "JWT_SECRET is required with MONGO_URL or REDIS_URL: every node must verify the \
             tokens the others issue"
        );
    }
    load_or_generate(&data_dir.join(SECRET_FILE))
}

fn load_or_generate(path: &Path) -> anyhow::Result<Vec<u8>> {
    match std::fs::read_to_string(path) {
        Ok(text) if text.trim().len() >= MIN_SECRET_BYTES => return Ok(text.trim().as_bytes().to_vec()),
        Ok(_) => {
            bail!("{} is shorter than {MIN_SECRET_BYTES} bytes; delete it to regenerate", path.display())
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(e).with_context(|| format!("reading {}", path.display())),
    }
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    let bytes: [u8; 48] = rand::random();
    let secret: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    match options.open(path) {
        Ok(mut file) => {
            file.write_all(secret.as_bytes())
                .and_then(|()| file.sync_all())
                .with_context(|| format!("writing {}", path.display()))?;
            tracing::info!(path = %path.display(), "generated a JWT secret");
            Ok(secret.into_bytes())
        }
        // Another process created it first: use theirs.
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => load_or_generate(path),
        Err(e) => Err(e).with_context(|| format!("creating {}", path.display())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_once_then_reused() {
        let dir = tempfile::tempdir().unwrap();
        let first = load(None, dir.path(), false).unwrap();
        let second = load(None, dir.path(), false).unwrap();
        assert_eq!(first, second);
        assert!(first.len() >= MIN_SECRET_BYTES);
    }

    #[test]
    fn scaled_out_needs_a_configured_secret() {
        let dir = tempfile::tempdir().unwrap();
        assert!(load(None, dir.path(), true).is_err());
        assert!(load(Some("short"), dir.path(), false).is_err());
        let long = "x".repeat(MIN_SECRET_BYTES);
        assert_eq!(load(Some(&long), dir.path(), true).unwrap(), long.as_bytes());
    }
}
