//! Test fixtures shared by the unit tests of both front ends: one compiled route `echo`
//! (`/echo` -> `http://127.0.0.1:9/`, prefix stripped) and one token with every scope.

use keygate_gateway_core as core;
use keygate_kv_record as rec;

/// The edge key the fixtures seal with.
pub fn edge_key() -> core::EdgeKey {
    core::EdgeKey::from_bytes(&[7; 32])
}

/// The route table with `echo` and, unless `kind` is `none`, a credential `s3cret` of that
/// kind sent in `header`.
pub fn routes(kind: &str, header: &str) -> core::Routes {
    let sealed = if kind == "none" {
        String::new()
    } else {
        edge_key()
            .seal_key()
            .seal_with_nonce(&format!("rte_1/{kind}"), "s3cret", &[1; 12])
    };
    let table = rec::RouteTable {
        v: 1,
        routes: vec![rec::RouteRecord {
            id: "rte_1".into(),
            name: "echo".into(),
            team: "alpha".into(),
            prefix: "/echo".into(),
            backend: "http://127.0.0.1:9/".into(),
            tags: vec![],
            methods: vec![],
            strip: true,
            timeout_ms: 1000,
            auth: rec::BackendAuth {
                kind: kind.into(),
                header: header.into(),
                username: String::new(),
                sealed,
            },
            allowed_teams: vec![],
            cors_origins: vec![],
            rpm: 0,
        }],
    };
    core::Routes::compile(&table, &edge_key()).expect("the fixture route table compiles")
}

/// A token of team `alpha` with scope `*`.
pub fn token() -> core::EdgeToken {
    core::EdgeToken::from_record(&rec::TokenRecord {
        v: 1,
        id: "tok".into(),
        team: "alpha".into(),
        scopes: vec!["*".into()],
        exp: None,
        rpm: 0,
    })
}

/// `token` forwarded on `echo` to `http://127.0.0.1:9/x`.
pub fn forward<'r>(
    routes: &'r core::Routes,
    token: &'r core::EdgeToken,
    cors_origin: Option<&str>,
) -> core::Forward<'r> {
    core::Forward {
        route: routes.by_name("echo").expect("the fixture route"),
        token,
        token_hash: core::TokenHash::of("kg_secret"),
        url: "http://127.0.0.1:9/x".into(),
        cors_origin: cors_origin.map(str::to_owned),
    }
}
