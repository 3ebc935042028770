//! Keygate's shared contracts: the rules that the control plane writes by and the gateway
//! reads by, in one place so they cannot drift apart.
//!
//! Owns: the token format ([`token`]), scope grammar ([`scope`]), route prefix and backend URL
//! rules ([`route`]), slugs and tags ([`names`]), the error-code table ([`error_code`]), the
//! sealed-secret algorithm ([`seal`]) and the shape of validation errors ([`FieldError`],
//! [`FieldErrors`]).
//! Must not do IO or depend on async runtimes, databases or HTTP stacks: it builds for
//! `wasm32-unknown-unknown` and is shared by both gateway front ends. The default `generate`
//! feature adds what needs an RNG (token generation, sealing with a random nonce); readers
//! build without it.

pub mod error_code;
pub mod names;
pub mod route;
pub mod scope;
pub mod seal;
pub mod token;

/// A rule that an input broke: which field, and what the rule is. Rendered as
/// `<field>: <rule>`, the message clients see.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {rule}")]
pub struct FieldError {
    /// Request field path, e.g. `scopes[2]` or `backend_url`.
    pub field: String,
    /// Human-readable rule, e.g. `must start with "/"`.
    pub rule: String,
}

impl FieldError {
    pub fn new(field: impl Into<String>, rule: impl Into<String>) -> Self {
        Self {
            field: field.into(),
            rule: rule.into(),
        }
    }
}

impl From<FieldError> for FieldErrors {
    fn from(e: FieldError) -> Self {
        Self(vec![e])
    }
}

/// Every rule an input broke, in the order the fields were checked: validation of a request
/// collects them all (a form marks each field), and clients see them as one
/// `google.rpc.BadRequest` with a field violation each. Never empty when returned as an error.
///
/// Rendered as the first violation, plus `(and N more)` when there are others.
///
/// ```
/// use keygate_contracts::{FieldError, FieldErrors};
/// let mut v = FieldErrors::new();
/// let name = v.check(Err::<String, _>(FieldError::new("name", "is required")));
/// let scopes = v.check(Err::<Vec<String>, _>(FieldError::new("scopes[0]", "is not a scope")));
/// assert!(name.is_none() && scopes.is_none());
/// let e = v.into_result().unwrap_err();
/// assert_eq!(e.to_string(), "name: is required (and 1 more)");
/// assert_eq!(e.len(), 2);
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FieldErrors(Vec<FieldError>);

impl FieldErrors {
    pub fn new() -> Self {
        Self::default()
    }

    /// Records the error of `result`, if any, and returns its value otherwise.
    pub fn check<T>(&mut self, result: Result<T, impl Into<FieldErrors>>) -> Option<T> {
        match result {
            Ok(v) => Some(v),
            Err(e) => {
                self.0.extend(e.into().0);
                None
            }
        }
    }

    /// Records one violation.
    pub fn push(&mut self, e: FieldError) {
        self.0.push(e);
    }

    /// The field paths, in order (for tests and logs).
    pub fn fields(&self) -> Vec<&str> {
        self.0.iter().map(|e| e.field.as_str()).collect()
    }

    /// `Ok(())` when nothing was recorded, else these errors.
    pub fn into_result(self) -> Result<(), FieldErrors> {
        if self.0.is_empty() { Ok(()) } else { Err(self) }
    }
}

/// The violations, in order (`len`, `iter`, `first`, `[i]`).
impl std::ops::Deref for FieldErrors {
    type Target = [FieldError];

    fn deref(&self) -> &[FieldError] {
        &self.0
    }
}

impl IntoIterator for FieldErrors {
    type Item = FieldError;
    type IntoIter = std::vec::IntoIter<FieldError>;

    fn into_iter(self) -> Self::IntoIter {
        self.0.into_iter()
    }
}

impl std::fmt::Display for FieldErrors {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.0.split_first() {
            None => f.write_str("invalid input"),
            Some((first, [])) => write!(f, "{first}"),
            Some((first, rest)) => write!(f, "{first} (and {} more)", rest.len()),
        }
    }
}

impl std::error::Error for FieldErrors {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn field_errors_collect_in_order_and_render_the_first() {
        let mut v = FieldErrors::new();
        assert_eq!(v.check(Ok::<u8, FieldError>(1)), Some(1));
        assert!(v.clone().into_result().is_ok());
        v.push(FieldError::new("name", "is required"));
        assert_eq!(v.to_string(), "name: is required");
        let mut inner = FieldErrors::new();
        inner.push(FieldError::new("a", "x"));
        inner.push(FieldError::new("b", "y"));
        assert_eq!(v.check(Err::<(), _>(inner)), None);
        assert_eq!(v.fields(), ["name", "a", "b"]);
        assert_eq!(v.to_string(), "name: is required (and 2 more)");
        assert_eq!(FieldErrors::new().to_string(), "invalid input");
    }
}
