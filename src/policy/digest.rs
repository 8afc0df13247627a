//! `digest: TAG`: the policy follows one mutable tag (`latest`, `stable`). Its only
//! candidate is that tag, when the registry lists it; whether its digest moved is
//! decided by the registry stage, not here.

use super::PolicyError;

/// Checks `tag` against the OCI distribution spec's tag grammar,
/// `[a-zA-Z0-9_][a-zA-Z0-9._-]{0,127}`.
pub fn validate_tag(tag: &str) -> Result<(), PolicyError> {
    let err = |reason: &str| PolicyError::InvalidDigestTag {
        tag: tag.to_string(),
        reason: reason.to_string(),
    };
    let mut bytes = tag.bytes();
    match bytes.next() {
        None => return Err(err("the tag is empty")),
        Some(b) if b.is_ascii_alphanumeric() || b == b'_' => {}
        Some(_) => return Err(err("a tag starts with a letter, a digit or '_'")),
    }
    if !bytes.all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-')) {
        return Err(err("a tag has only letters, digits, '_', '.' and '-'"));
    }
    if tag.len() > 128 {
        return Err(err("a tag has at most 128 characters"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tags_follow_the_oci_grammar() {
        for ok in ["latest", "stable", "_x", "1.2.3-rc.1", &"a".repeat(128)] {
            assert!(validate_tag(ok).is_ok(), "{ok:?}");
        }
        for bad in ["", "-x", ".x", "a b", "a:b", "a@b", &"a".repeat(129)] {
            let e = validate_tag(bad).unwrap_err().to_string();
            assert!(
                e.starts_with(&format!("invalid digest tag {bad:?}: ")),
                "{e}"
            );
        }
    }
}
