//! Field rules from the seeds' models. Each failure names its field.

use super::ApiError;

pub const USERNAME_LEN: std::ops::RangeInclusive<usize> = 3..=30;
pub const MIN_PASSWORD_CHARS: usize = 8;
/// Longer passwords only cost hashing time.
pub const MAX_PASSWORD_BYTES: usize = 1024;
pub const MAX_TITLE_CHARS: usize = 100;
pub const MAX_DESCRIPTION_CHARS: usize = 500;
pub const MAX_NAME_CHARS: usize = 50;
/// Longest address RFC 5321 allows.
pub const MAX_EMAIL_BYTES: usize = 254;
pub const COLLABORATORS: std::ops::RangeInclusive<u32> = 1..=50;
pub const FONT_SIZE: std::ops::RangeInclusive<u32> = 6..=72;
pub const TAB_SIZE: std::ops::RangeInclusive<u32> = 1..=16;

pub fn username(value: &str) -> Result<String, ApiError> {
    let value = value.trim();
    let chars = value.chars().count();
    if !USERNAME_LEN.contains(&chars) {
        return Err(ApiError::bad_request("username", "must be 3 to 30 characters"));
    }
    if !value.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
        return Err(ApiError::bad_request("username", "may contain only letters, digits and underscores"));
    }
    Ok(value.to_owned())
}

/// Trimmed and lowercased, shaped like `name@host.tld` (the seeds' `^\S+@\S+\.\S+$`).
pub fn email(value: &str) -> Result<String, ApiError> {
    let value = value.trim().to_lowercase();
    let looks_right = value.len() <= MAX_EMAIL_BYTES
        && !value.chars().any(char::is_whitespace)
        && value.split_once('@').is_some_and(|(local, domain)| {
            !local.is_empty()
                && domain.split_once('.').is_some_and(|(host, tld)| !host.is_empty() && !tld.is_empty())
        });
    if !looks_right {
        return Err(ApiError::bad_request("email", "must look like name@example.com"));
    }
    Ok(value)
}

pub fn password(field: &str, value: &str) -> Result<(), ApiError> {
    if value.chars().count() < MIN_PASSWORD_CHARS {
        return Err(ApiError::bad_request(
            field,
            format!("must be at least {MIN_PASSWORD_CHARS} characters"),
        ));
    }
    if value.len() > MAX_PASSWORD_BYTES {
        return Err(ApiError::bad_request(field, format!("must be at most {MAX_PASSWORD_BYTES} bytes")));
    }
    Ok(())
}

/// Trimmed; `max` characters at most; empty allowed only if `allow_empty`.
pub fn text(field: &str, value: &str, max: usize, allow_empty: bool) -> Result<String, ApiError> {
    let value = value.trim();
    if value.is_empty() && !allow_empty {
        return Err(ApiError::missing_field(field, "is required"));
    }
    if value.chars().count() > max {
        return Err(ApiError::bad_request(field, format!("must be at most {max} characters")));
    }
    Ok(value.to_owned())
}

pub fn max_collaborators(value: u32) -> Result<u32, ApiError> {
    if !COLLABORATORS.contains(&value) {
        return Err(ApiError::bad_request("maxCollaborators", "must be between 1 and 50"));
    }
    Ok(value)
}

pub fn preferences(value: &storage::model::Preferences) -> Result<(), ApiError> {
    let editor = &value.editor_settings;
    if !FONT_SIZE.contains(&editor.font_size) {
        return Err(ApiError::bad_request("preferences.editorSettings.fontSize", "must be between 6 and 72"));
    }
    if !TAB_SIZE.contains(&editor.tab_size) {
        return Err(ApiError::bad_request("preferences.editorSettings.tabSize", "must be between 1 and 16"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn usernames() {
        assert_eq!(username(" ada_99 ").unwrap(), "ada_99");
        assert!(username("ab").is_err());
        assert!(username(&"a".repeat(31)).is_err());
        assert!(username(&"a".repeat(30)).is_ok());
        assert!(username("ada-lovelace").is_err());
    }

    #[test]
    fn emails() {
        assert_eq!(email(" Ada@Example.COM ").unwrap(), "ada@example.com");
        for bad in ["ada", "ada@", "@x.io", "ada@host", "a da@x.io", "ada@.io", "ada@x."] {
            assert!(email(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn passwords_and_text() {
        assert!(password("password", "1234567").is_err());
        assert!(password("password", "12345678").is_ok());
        assert!(text("title", "  ", 100, false).is_err());
        assert_eq!(text("title", &"é".repeat(100), 100, false).unwrap().chars().count(), 100);
        assert!(text("title", &"é".repeat(101), 100, false).is_err());
        assert!(max_collaborators(0).is_err() && max_collaborators(51).is_err());
        assert!(max_collaborators(1).is_ok() && max_collaborators(50).is_ok());
    }
}
