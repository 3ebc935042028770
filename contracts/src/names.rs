//! Slugs (team ids, route names), tags, and free-text fields.

use crate::FieldError;

/// Team id: 2-40 chars, `[a-z][a-z0-9-]*`, no trailing or doubled `-`.
pub fn validate_team_id(field: &str, v: &str) -> Result<(), FieldError> {
    validate_slug(field, v, 2, 40, true)
}

/// Route name (also a token scope): 1-63 chars, `[a-z0-9][a-z0-9-]*`, no trailing `-`.
pub fn validate_route_name(field: &str, v: &str) -> Result<(), FieldError> {
    validate_slug(field, v, 1, 63, false)
}

fn validate_slug(
    field: &str,
    v: &str,
    min: usize,
    max: usize,
    letter_first: bool,
) -> Result<(), FieldError> {
    let rule = if letter_first {
        format!(
            "must be {min}-{max} characters of lowercase letters, digits and '-', starting with a letter and not ending with '-'"
        )
    } else {
        format!(
            "must be {min}-{max} characters of lowercase letters, digits and '-', starting with a letter or digit and not ending with '-'"
        )
    };
    let bad = || Err(FieldError::new(field, rule.clone()));
    if v.len() < min || v.len() > max {
        return bad();
    }
    let first = v.as_bytes()[0];
    let first_ok = if letter_first {
        first.is_ascii_lowercase()
    } else {
        first.is_ascii_lowercase() || first.is_ascii_digit()
    };
    if !first_ok || v.ends_with('-') || v.contains("--") {
        return bad();
    }
    if !v
        .bytes()
        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
    {
        return bad();
    }
    Ok(())
}

/// Tag: 1-40 chars of `[a-z0-9._-]`, starting with a letter or digit.
pub fn validate_tag(field: &str, v: &str) -> Result<(), FieldError> {
    let ok = !v.is_empty()
        && v.len() <= 40
        && v.as_bytes()[0].is_ascii_alphanumeric()
        && v.bytes().all(|b| {
            b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_' || b == b'.'
        });
    if ok {
        Ok(())
    } else {
        Err(FieldError::new(
            field,
            "must be 1-40 characters of lowercase letters, digits, '.', '_' and '-', starting with a letter or digit",
        ))
    }
}

/// Free text: at most `max` characters (Unicode scalar values), no control characters except
/// newline and tab when `multiline`; `required` rejects empty or whitespace-only.
pub fn validate_text(
    field: &str,
    v: &str,
    max: usize,
    required: bool,
    multiline: bool,
) -> Result<(), FieldError> {
    if required && v.trim().is_empty() {
        return Err(FieldError::new(field, "is required"));
    }
    if v.chars().count() > max {
        return Err(FieldError::new(
            field,
            format!("must be at most {max} characters"),
        ));
    }
    if v.chars()
        .any(|c| c.is_control() && !(multiline && (c == '\n' || c == '\t')))
    {
        return Err(FieldError::new(
            field,
            "must not contain control characters",
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slugs() {
        for ok in ["ab", "payments", "team-1", "a1-b2"] {
            assert!(validate_team_id("id", ok).is_ok(), "{ok}");
        }
        for bad in [
            "a",
            "1team",
            "Team",
            "team-",
            "te--am",
            "te_am",
            "",
            &"a".repeat(41),
        ] {
            assert!(validate_team_id("id", bad).is_err(), "{bad}");
        }
        assert!(validate_route_name("name", "1api").is_ok());
        assert!(validate_route_name("name", "x").is_ok());
        assert!(validate_route_name("name", "a/b").is_err());
    }

    #[test]
    fn tags_and_text() {
        assert!(validate_tag("tags[0]", "billing.v2").is_ok());
        assert!(validate_tag("tags[0]", "-x").is_err());
        assert!(validate_tag("tags[0]", "Upper").is_err());
        assert!(validate_text("name", "  ", 10, true, false).is_err());
        assert!(validate_text("name", "ok", 10, true, false).is_ok());
        assert!(validate_text("name", "a\nb", 10, true, false).is_err());
        assert!(validate_text("description", "a\nb", 10, false, true).is_ok());
        let e = validate_text("name", &"é".repeat(11), 10, true, false).unwrap_err();
        assert_eq!(e.to_string(), "name: must be at most 10 characters");
    }
}
