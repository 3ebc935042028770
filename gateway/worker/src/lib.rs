//! Keygate's gateway as a Cloudflare Worker: the native gateway's core and request pipeline
//! compiled to wasm, reading Workers KV.
//!
//! Owns: IO glue only — reading the request's parts, KV reads ([`kv`]), the route table
//! compiled once per isolate and revision, secrets ([`settings`]), forwarding with `fetch`
//! ([`forward`]), the rate-limit binding ladder ([`limits`]) and sending usage over grpc-web
//! ([`usage`]). Every rule (keys, routing, scopes, headers, error answers, usage attribution)
//! is the core's or the pipeline's, as in the native gateway.
//!
//! Must not: hold a rule of its own, buffer a body, or put a secret in a var, KV or a log.

pub mod forward;
pub mod grpc_web;
pub mod kv;
pub mod limits;
pub mod lookup;
pub mod settings;
pub mod usage;
#[cfg(feature = "vectors")]
mod vectors;

use forward::{HeaderList, JsHeaders, SendError};
use keygate_gateway_core::{self as core, EdgeToken, TokenHash};
use keygate_gateway_pipeline::{
    Admission, Admitted, DecisionHeaders, Exchange, Facts, Failure, LocalLimiter, OwnedSubject,
    RateLimiter, Started, Subject,
};
use settings::Settings;
use std::cell::Cell;
use std::rc::Rc;
use std::time::Duration;
use wasm_bindgen::JsCast;
use worker::{Context, Env, event};

/// One isolate's state: request ids, GCRA limits (when no binding applies) and usage.
struct Isolate {
    boot: String,
    seq: Cell<u64>,
    limiter: LocalLimiter,
    usage: usage::Usage,
    lookups: lookup::Lookups,
    /// Last time idle GCRA states were forgotten (ms).
    pruned_at: Cell<i64>,
}

thread_local! {
    static ISOLATE: &'static Isolate = Box::leak(Box::new(Isolate {
        boot: format!("{:08x}", (js_sys::Math::random() * f64::from(u32::MAX)) as u32),
        seq: Cell::new(0),
        limiter: LocalLimiter::default(),
        usage: usage::Usage::default(),
        lookups: lookup::Lookups::default(),
        pruned_at: Cell::new(0),
    }));
}

fn isolate() -> &'static Isolate {
    ISOLATE.with(|i| *i)
}

impl Isolate {
    /// `wk-` + this isolate's boot id + a counter: unique per isolate.
    fn request_id(&self) -> String {
        let n = self.seq.get() + 1;
        self.seq.set(n);
        format!("wk-{}{:012x}", self.boot, n & 0xffff_ffff_ffff)
    }
}

/// When a request arrived, by `Date.now()` (Workers advance it only across IO).
#[derive(Clone, Copy)]
struct Arrival(f64);

impl Started for Arrival {
    fn elapsed(&self) -> Duration {
        Duration::from_micros(((js_sys::Date::now() - self.0).max(0.0) * 1000.0) as u64)
    }
}

/// Decides with the one token KV returned for the presented key (none: unknown or revoked).
struct OneToken(Option<(TokenHash, EdgeToken)>);

impl core::TokenSource for OneToken {
    fn token(&self, hash: &TokenHash) -> Option<&EdgeToken> {
        self.0.as_ref().filter(|(h, _)| h == hash).map(|(_, t)| t)
    }
}

/// The request headers the decision reads. The runtime joins repeated headers with `, `; the
/// key headers are split back so that two keys are seen as two (`ambiguous_key`), as the
/// native gateway sees them.
fn decision_headers(headers: &HeaderList) -> DecisionHeaders<'_> {
    let mut d = DecisionHeaders::default();
    for (k, v) in headers.iter() {
        if k == "x-api-key" || k == "authorization" {
            for part in v.split(", ") {
                d.offer(k, part.as_bytes());
            }
        } else {
            d.offer(k, v.as_bytes());
        }
    }
    d
}

thread_local! {
    /// The isolate's settings, read from its environment at its first request (a new secret
    /// or var is a new deployment, hence new isolates).
    static SETTINGS: std::cell::RefCell<Option<Rc<Settings>>> = const { std::cell::RefCell::new(None) };
}

/// This isolate's settings; an error is not kept (the next request reads again).
fn settings(env: &Env) -> Result<Rc<Settings>, settings::Unconfigured> {
    if let Some(s) = SETTINGS.with(|s| s.borrow().clone()) {
        return Ok(s);
    }
    let s = Rc::new(Settings::from_env(env)?);
    SETTINGS.with(|slot| *slot.borrow_mut() = Some(s.clone()));
    Ok(s)
}

/// A gateway answer as a runtime `Response`.
fn to_response(a: core::Answer) -> worker::Result<web_sys::Response> {
    let headers = worker::Headers::new();
    a.put_headers(&mut JsHeaders(&headers));
    let init = web_sys::ResponseInit::new();
    init.set_status(a.status);
    init.set_headers(headers.as_ref());
    let r = if a.body.is_empty() {
        web_sys::Response::new_with_opt_str_and_init(None, &init)
    } else {
        let mut body = a.body.into_bytes();
        web_sys::Response::new_with_opt_u8_array_and_init(Some(&mut body), &init)
    };
    Ok(r?)
}

// The runtime's own `Request` and `Response` objects are used as they are (no conversion to
// `worker::Request`, which would read `request.cf` and re-parse the URL on every request):
// each runtime object or call made per request costs more than the gateway's rules do.
#[event(fetch)]
async fn fetch(req: web_sys::Request, env: Env, ctx: Context) -> worker::Result<web_sys::Response> {
    let arrival = js_sys::Date::now();
    let now = arrival as i64;
    let iso = isolate();
    let request_id = iso.request_id();

    let url = worker::Url::parse(&req.url())?;
    #[cfg(feature = "vectors")]
    if url.path() == vectors::PATH {
        return Ok(vectors::serve(worker::Request::from(req)).await?.into());
    }

    let method = req.method();
    let req_headers = req.headers();
    let headers = HeaderList::of(&req_headers);
    let user_agent = headers.get("user-agent").unwrap_or("");
    let client_ip = headers.get("cf-connecting-ip").unwrap_or("");
    let facts = Facts {
        method: &method,
        client_ip,
        user_agent: user_agent.as_bytes(),
        request_id: &request_id,
        revision: 0,
    };

    let settings = match settings(&env) {
        Ok(s) => s,
        Err(e) => {
            // Nothing is forwarded without the secrets; the binding is named, never a value.
            worker::console_error!("not configured: {e}");
            let sink = usage::Sink { usage: None };
            let ex = Exchange::start(&sink, Arrival(arrival), now);
            return to_response(ex.not_ready(&sink, &facts));
        }
    };
    let sink = usage::Sink {
        usage: settings.usage.as_ref().map(|_| &iso.usage),
    };
    let ex = Exchange::start(&sink, Arrival(arrival), now);
    // Usage leaves from `waitUntil`: the first request after a flush schedules the next one.
    if let Some(target) = settings.usage.clone()
        && iso.usage.claim_flush()
    {
        let colo = js_sys::Reflect::get(&req, &"cf".into())
            .and_then(|cf| js_sys::Reflect::get(&cf, &"colo".into()))
            .ok()
            .and_then(|c| c.as_string())
            .unwrap_or_else(|| "unknown".into());
        ctx.wait_until(async move {
            let iso = isolate();
            let gateway = format!("worker/{colo}");
            let boot = format!("{gateway}-{}", iso.boot);
            iso.usage.flush_later(&target, &gateway, &boot).await;
        });
    }
    let kv = env.kv(settings::KV_BINDING)?;

    let (path, query) = (url.path().to_owned(), url.query().map(str::to_owned));
    let dh = decision_headers(&headers);
    let incoming = dh.incoming(&method, &path, query.as_deref());

    // The route table (per isolate and revision) and the presented key's record, together.
    let hash = core::key_hash_of(&incoming, &settings.core).ok();
    let (table, token) = futures_util::join!(kv::routes(&kv, &settings.edge_key, now), async {
        match &hash {
            Some(h) => kv::token(&kv, h, now).await,
            None => Ok(None),
        }
    });
    let table = match table {
        Ok(t) => t,
        Err(e) => {
            worker::console_error!("no route table: {e:?}");
            return to_response(ex.not_ready(&sink, &facts));
        }
    };
    let mut token = match token {
        Ok(t) => t,
        Err(e) => {
            worker::console_error!("token lookup failed: {e}");
            return to_response(ex.not_ready(&sink, &facts));
        }
    };
    // A well-formed key KV does not know: optionally, ask the control plane (bounded).
    if token.is_none()
        && settings.lookup_on_miss
        && let (Some(h), Some(target)) = (&hash, &settings.usage)
    {
        token = match iso.lookups.plan(h, now) {
            lookup::Plan::Known(t) => t,
            lookup::Plan::Ask => iso.lookups.ask(target, h, now).await,
            lookup::Plan::Skip => None,
        };
    }
    iso.usage.revision.set(table.revision);
    let tokens = OneToken(hash.zip(token));
    let decision = core::decide_with(&incoming, &table.routes, &tokens, now, &settings.core);
    let facts = Facts {
        revision: table.revision,
        ..facts
    };

    // Refusals and preflights are answered here; a forward then has its rate limits charged:
    // at the binding ladder when every limit has a step, else in this isolate's GCRA.
    let admitted = match ex.screen(decision, &tokens, &facts, &sink) {
        Admission::Answer(a) => return to_response(a),
        Admission::Forward(a) => a,
    };
    let admitted = match admitted.limits() {
        None => admitted,
        Some((token_rpm, route_rpm)) => {
            let (hash, route_id) = (admitted.fwd.token_hash, admitted.fwd.route.id.as_str());
            let d = match limits::charge_bindings(&env, &hash, token_rpm, route_id, route_rpm).await
            {
                Some(d) => d,
                None => {
                    if now - iso.pruned_at.get() > 60_000 {
                        iso.limiter.prune(now);
                        iso.pruned_at.set(now);
                    }
                    iso.limiter
                        .charge(&hash, token_rpm, route_id, route_rpm, now)
                }
            };
            match admitted.rate(d, &facts, &sink) {
                Admission::Answer(a) => return to_response(a),
                Admission::Forward(a) => a,
            }
        }
    };
    let Admitted {
        fwd,
        rate_headers,
        exchange: mut ex,
    } = admitted;

    // The backend request: headers by the core's rules, the body streamed and counted.
    let host = url.host_str().unwrap_or("").to_owned();
    let host = match url.port() {
        Some(p) => format!("{host}:{p}"),
        None => host,
    };
    let client = core::Client {
        ip: client_ip,
        proto: url.scheme(),
        host: &host,
    };
    let out_headers = forward::outgoing_headers(
        &req_headers,
        &headers,
        fwd.credential(),
        &client,
        &request_id,
    )?;
    let sent = Rc::new(Cell::new(0u64));
    let body = req.body().map(|b| forward::counted(b, sent.clone(), None));
    let timeout = Duration::from_millis(u64::from(fwd.route.timeout_ms.max(1)));
    let backend = match forward::send(&fwd.url, &method, out_headers, body, timeout).await {
        Ok(r) => r,
        Err(e) => {
            let answer = match &e {
                SendError::Timeout => ex.failed(
                    &sink,
                    Failure::Timeout,
                    &fwd,
                    &rate_headers,
                    &facts,
                    sent.get(),
                ),
                SendError::Backend(text) => ex.failed(
                    &sink,
                    Failure::Backend(text),
                    &fwd,
                    &rate_headers,
                    &facts,
                    sent.get(),
                ),
            };
            return to_response(answer);
        }
    };
    let status = backend.status();

    // The answer: the backend's headers that pass, redirects made public, the gateway's own.
    let revision = table.revision.to_string();
    let answer = core::AnswerHeaders {
        request_id: &request_id,
        revision: Some(revision.as_bytes()),
        extra: &rate_headers,
        cors_origin: fwd.cors_origin.as_deref(),
    };
    let backend_headers = HeaderList::of(&backend.headers());
    let named = core::connection_named(
        backend_headers
            .iter()
            .filter(|(k, _)| *k == "connection")
            .map(|(_, v)| v.as_bytes()),
    );
    let public = core::public_base(settings.public_url.as_deref(), url.scheme(), &host);

    ex.head_done(&sink, status, Subject::forward(&fwd), &facts);
    let subject = OwnedSubject::of(Subject::forward(&fwd));
    let usage_on = settings.usage.is_some();
    let received = Rc::new(Cell::new(0u64));
    let finish: Box<dyn FnOnce()> = {
        let (sent, received) = (sent.clone(), received.clone());
        Box::new(move || {
            let sink = usage::Sink {
                usage: usage_on.then_some(&isolate().usage),
            };
            ex.finish(&sink, subject.subject(), sent.get(), received.get());
        })
    };
    // A body of declared length passes through untouched (the runtime streams it; nothing
    // crosses into wasm per chunk) and is counted by its `Content-Length`; any other body is
    // streamed through a counter.
    let declared = backend_headers
        .get("content-length")
        .and_then(|v| v.trim().parse::<u64>().ok());
    let body = match (backend.body(), declared) {
        (Some(b), Some(len)) => {
            received.set(len);
            finish();
            Some(b)
        }
        (Some(b), None) => Some(forward::counted(b, received, Some(finish))),
        (None, _) => {
            finish();
            None
        }
    };

    // The answer: the backend's status and headers (copied by the runtime in one step), less
    // those the core's rule drops, redirects made public, then the gateway's own headers.
    let response = web_sys::Response::new_with_opt_readable_stream_and_init(
        body.as_ref(),
        backend.unchecked_ref(),
    )?;
    let out = response.headers();
    for (k, v) in backend_headers.iter() {
        if !answer.passes(k, &named, false) {
            out.delete(k)?;
        } else if k == "location"
            && let Some(new) = core::rewrite_location(v, fwd.route, &public)
        {
            out.set(k, &new)?;
        }
    }
    answer.put(&mut JsHeaders(&worker::Headers(out)));
    Ok(response)
}
