//! Keygate's shared contracts: the rules that the control plane writes by and the gateway
//! reads by, in one place so they cannot drift apart.
//!
//! Owns: the token format ([`token`]), scope grammar ([`scope`]), route prefix and backend URL
//! rules ([`route`]), slugs and tags ([`names`]), the error-code table ([`error_code`]) and the
//! sealed-secret algorithm ([`seal`]).
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
