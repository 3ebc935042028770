//! Rate limits on the Worker: Cloudflare's rate-limiting binding, a ladder of bindings (one
//! fixed limit per minute each, declared in `wrangler.toml`), else the core's GCRA in this
//! isolate.
//!
//! A token's (or route's) limit of `n` per minute uses the binding of the largest step not
//! above `n`: never looser than configured, at most one step tighter. A limit below the
//! smallest step, or a step whose binding is not declared, falls back to the per-isolate GCRA
//! for both limits of the request. The binding counts per Cloudflare location and is
//! approximate (README "Rate limits"); the GCRA counts per isolate.

use keygate_gateway_core::{RateDecision, TokenHash};
use worker::Env;

/// The ladder's steps, requests per minute; binding `KEYGATE_RL_<step>` each.
pub const LADDER: [u32; 12] = [
    10, 30, 60, 120, 300, 600, 1_200, 3_000, 6_000, 12_000, 30_000, 60_000,
];

/// The binding name of a ladder step.
pub fn binding_name(step: u32) -> String {
    format!("KEYGATE_RL_{step}")
}

/// The step a limit of `rpm` per minute uses: the largest not above it.
pub fn step_for(rpm: u32) -> Option<u32> {
    LADDER.iter().rev().copied().find(|&s| s <= rpm)
}

/// One limit to charge at a binding: its step and key.
struct Charge {
    step: u32,
    key: String,
}

fn plan(rpm: u32, key: impl FnOnce() -> String, env: &Env) -> Result<Option<Charge>, ()> {
    if rpm == 0 {
        return Ok(None);
    }
    let step = step_for(rpm).ok_or(())?;
    env.rate_limiter(&binding_name(step)).map_err(|_| ())?;
    Ok(Some(Charge { step, key: key() }))
}

/// Charges a request's limits at the bindings: `None` when a limit has no usable binding
/// (then the caller uses the per-isolate GCRA for both). Both limits are asked; a refusal by
/// either refuses the request (the binding cannot un-charge the other). On success no
/// `RateLimit-*` headers are given (the binding does not say what remains); a refusal says
/// the enforced step and retry after its period.
pub async fn charge_bindings(
    env: &Env,
    token: &TokenHash,
    token_rpm: u32,
    route_id: &str,
    route_rpm: u32,
) -> Option<RateDecision> {
    let hex = token.hex();
    let token_charge = plan(token_rpm, || format!("t:{hex}"), env).ok()?;
    let route_charge = plan(route_rpm, || format!("r:{route_id}:{hex}"), env).ok()?;
    let mut refused_step = None;
    for c in [token_charge, route_charge].into_iter().flatten() {
        let limiter = env.rate_limiter(&binding_name(c.step)).ok()?;
        match limiter.limit(c.key).await {
            Ok(outcome) if outcome.success => {}
            Ok(_) => {
                refused_step.get_or_insert(c.step);
            }
            Err(e) => {
                // A binding that fails does not refuse traffic; it is logged.
                worker::console_error!("rate-limit binding {} failed: {e}", c.step);
            }
        }
    }
    Some(match refused_step {
        None => RateDecision::UNLIMITED,
        Some(step) => RateDecision {
            allowed: false,
            limit: step,
            remaining: 0,
            reset_secs: 60,
            retry_after_secs: 60,
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_limit_uses_the_largest_step_not_above_it() {
        assert_eq!(step_for(9), None);
        assert_eq!(step_for(10), Some(10));
        assert_eq!(step_for(59), Some(30));
        assert_eq!(step_for(60), Some(60));
        assert_eq!(step_for(100_000), Some(60_000));
        for rpm in 1..200_000 {
            if let Some(s) = step_for(rpm) {
                assert!(s <= rpm, "step {s} looser than {rpm}");
            }
        }
    }
}
