//! Test builds only (`--features vectors`): `POST /__keygate/vectors` runs one test-vector
//! file of `gateway/core/vectors/` inside workerd with the core's own runner, so the rules are
//! checked in the runtime the Worker is deployed to. The body is the file; the answer is
//! `{"ok": true, "summary": ...}` or `{"ok": false, "failures": [...]}`.

use keygate_gateway_core::vectors;
use worker::{Request, Response};

pub const PATH: &str = "/__keygate/vectors";

pub async fn serve(mut req: Request) -> worker::Result<Response> {
    let text = req.text().await?;
    let body = match vectors::run(&text) {
        Ok(summary) => {
            serde_json::json!({ "ok": true, "cases": summary.cases(), "summary": format!("{summary:?}") })
        }
        Err(failures) => serde_json::json!({ "ok": false, "failures": failures }),
    };
    Response::from_json(&body)
}
