//! Alerts: per-team rules with one condition each ([`model`]), the `AlertService` RPCs
//! ([`service`]), the periodic evaluator that records firings and queues alerts
//! ([`evaluate`]), and signed webhook delivery with retries ([`deliver`]).
//!
//! Owns: condition validation, the firing state that makes a rule fire once per crossing,
//! the webhook signature contract and the address checks in front of every webhook call.
//! Must not: call webhooks from a request handler other than TestWebhook, or let a signing
//! secret reach a response other than the one that issues it, a log or an audit row.

pub mod deliver;
pub mod evaluate;
pub mod model;
pub mod service;

pub use deliver::Allow;
pub use model::*;
pub use service::AlertApi;

use std::time::Duration;

/// How often rules are evaluated by default.
pub const DEFAULT_EVAL_INTERVAL: Duration = Duration::from_secs(60);

/// The alert settings of one control plane (`KEYGATE_ALERT_*`).
#[derive(Debug, Clone)]
pub struct AlertSettings {
    /// Private addresses webhooks may call anyway.
    pub allow: Allow,
    /// Time between evaluator runs.
    pub eval_interval: Duration,
}

impl Default for AlertSettings {
    fn default() -> Self {
        Self {
            allow: Allow::default(),
            eval_interval: DEFAULT_EVAL_INTERVAL,
        }
    }
}
