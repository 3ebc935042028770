//! Token scope grammar: `*` (every route), `<route-name>` (one route), `tag:<tag>` (every
//! route carrying the tag).

use crate::{FieldError, FieldErrors, names};

/// A parsed scope.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Scope {
    All,
    Route(String),
    Tag(String),
}

/// Most scopes one token may hold.
pub const MAX_SCOPES: usize = 50;

impl Scope {
    /// Parses one scope; `field` names it in the error (e.g. `scopes[1]`).
    pub fn parse(field: &str, s: &str) -> Result<Self, FieldError> {
        if s == "*" {
            return Ok(Self::All);
        }
        if let Some(tag) = s.strip_prefix("tag:") {
            names::validate_tag(field, tag).map_err(|_| {
                FieldError::new(
                    field,
                    "tag scope must be \"tag:\" followed by 1-40 characters of lowercase letters, digits, '.', '_' and '-'",
                )
            })?;
            return Ok(Self::Tag(tag.to_owned()));
        }
        names::validate_route_name(field, s).map_err(|_| {
            FieldError::new(
                field,
                "must be \"*\", a route name (lowercase letters, digits and '-') or \"tag:<tag>\"",
            )
        })?;
        Ok(Self::Route(s.to_owned()))
    }

    /// Whether this scope lets a token call the route named `route_name` with `route_tags`.
    pub fn grants(&self, route_name: &str, route_tags: &[String]) -> bool {
        match self {
            Self::All => true,
            Self::Route(n) => n == route_name,
            Self::Tag(t) => route_tags.iter().any(|rt| rt == t),
        }
    }
}

impl std::fmt::Display for Scope {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::All => f.write_str("*"),
            Self::Route(n) => f.write_str(n),
            Self::Tag(t) => write!(f, "tag:{t}"),
        }
    }
}

/// Parses and checks a whole scope list: 1..=[`MAX_SCOPES`] entries, no duplicates. Returns
/// them sorted, so equal sets compare equal.
pub fn parse_scopes(field: &str, raw: &[String]) -> Result<Vec<Scope>, FieldErrors> {
    if raw.is_empty() {
        return Err(FieldError::new(field, "at least one scope is required").into());
    }
    if raw.len() > MAX_SCOPES {
        return Err(
            FieldError::new(field, format!("at most {MAX_SCOPES} scopes are allowed")).into(),
        );
    }
    let mut errors = FieldErrors::new();
    let mut out = Vec::with_capacity(raw.len());
    for (i, s) in raw.iter().enumerate() {
        let Some(scope) = errors.check(Scope::parse(&format!("{field}[{i}]"), s)) else {
            continue;
        };
        if out.contains(&scope) {
            errors.push(FieldError::new(
                format!("{field}[{i}]"),
                format!("duplicate scope \"{scope}\""),
            ));
            continue;
        }
        out.push(scope);
    }
    errors.into_result()?;
    out.sort();
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grammar_table() {
        let cases: &[(&str, Option<Scope>)] = &[
            ("*", Some(Scope::All)),
            ("payments", Some(Scope::Route("payments".into()))),
            ("tag:billing", Some(Scope::Tag("billing".into()))),
            ("tag:", None),
            ("tag:Bad", None),
            ("**", None),
            ("Payments", None),
            ("pay ments", None),
            ("", None),
            ("tag:x:y", None),
        ];
        for (input, want) in cases {
            let got = Scope::parse("scopes[0]", input).ok();
            assert_eq!(&got, want, "input {input:?}");
        }
    }

    #[test]
    fn grants() {
        let tags = vec!["billing".to_string()];
        assert!(Scope::All.grants("x", &[]));
        assert!(Scope::Route("x".into()).grants("x", &[]));
        assert!(!Scope::Route("x".into()).grants("xy", &[]));
        assert!(Scope::Tag("billing".into()).grants("x", &tags));
        assert!(!Scope::Tag("bill".into()).grants("x", &tags));
    }

    #[test]
    fn list_rules() {
        assert!(parse_scopes("scopes", &[]).is_err());
        let e = parse_scopes("scopes", &["a".into(), "a".into()]).unwrap_err();
        assert_eq!(e.fields(), ["scopes[1]"]);
        let e = parse_scopes("scopes", &["a".into(), "B".into()]).unwrap_err();
        assert_eq!(e.fields(), ["scopes[1]"]);
        // Every bad entry is named, not only the first.
        let e = parse_scopes(
            "scopes",
            &["B".into(), "a".into(), "tag:".into(), "a".into()],
        )
        .unwrap_err();
        assert_eq!(e.fields(), ["scopes[0]", "scopes[2]", "scopes[3]"]);
        let many: Vec<String> = (0..51).map(|i| format!("r{i}")).collect();
        assert!(parse_scopes("scopes", &many).is_err());
        let sorted = parse_scopes("scopes", &["tag:z".into(), "*".into(), "b".into()]).unwrap();
        assert_eq!(sorted[0], Scope::All);
    }
}
