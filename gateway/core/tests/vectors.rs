//! L1: every JSON vector file in `gateway/core/vectors/` through the shared runner. The
//! Worker runs the same files with the same runner.

use keygate_gateway_core::vectors;
use std::path::Path;

#[test]
fn every_vector_file_passes() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("vectors");
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .expect("vectors directory")
        .map(|e| e.expect("directory entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "json"))
        .collect();
    files.sort();
    assert!(!files.is_empty(), "no vector files in {}", dir.display());
    let mut failures = Vec::new();
    let mut total = vectors::Summary::default();
    for path in &files {
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        let text = std::fs::read_to_string(path).expect("readable vector file");
        match vectors::run(&text) {
            Ok(s) => {
                println!("{name}: {} cases ({s:?})", s.cases());
                total.compile += s.compile;
                total.decide += s.decide;
                total.headers += s.headers;
                total.redirects += s.redirects;
                total.gcra += s.gcra;
            }
            Err(errors) => failures.extend(errors.into_iter().map(|e| format!("{name}: {e}"))),
        }
    }
    assert!(
        failures.is_empty(),
        "{} vector failures:\n{}",
        failures.len(),
        failures.join("\n")
    );
    println!("total: {} cases ({total:?})", total.cases());
    // Every kind of case is exercised somewhere.
    for (kind, n) in [
        ("compile", total.compile),
        ("decide", total.decide),
        ("headers", total.headers),
        ("redirects", total.redirects),
        ("gcra", total.gcra),
    ] {
        assert!(n > 0, "no {kind} cases in any vector file");
    }
}

/// The runner must notice a wrong expectation of every kind, an unknown field and a missing
/// one: a runner that checks nothing would pass every file.
#[test]
fn the_runner_catches_wrong_expectations() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("vectors");
    let load = |name: &str| -> serde_json::Value {
        serde_json::from_str(&std::fs::read_to_string(dir.join(name)).unwrap()).unwrap()
    };
    type Mutation = (&'static str, fn(&mut serde_json::Value));
    let mutations: [Mutation; 12] = [
        ("decide.json", |v| {
            v["decide"][0]["expect"]["forward"]["url"] = "http://x.internal:8080/other".into()
        }),
        ("decide.json", |v| {
            v["decide"][0]["expect"]["forward"]["credential"] = serde_json::Value::Null
        }),
        ("decide.json", |v| {
            let c = v["decide"].as_array_mut().unwrap().iter_mut();
            let c = c
                .filter(|c| c["expect"].get("reject").is_some())
                .nth(3)
                .unwrap();
            let l = c["expect"]["reject"]["lookups"].as_u64().unwrap();
            c["expect"]["reject"]["lookups"] = (1 - l).into();
        }),
        ("decide.json", |v| {
            let mut c = v["decide"].as_array_mut().unwrap().iter_mut();
            let c = c.find(|c| c["expect"].get("preflight").is_some()).unwrap();
            c["expect"]["preflight"]["headers"][3][1] = "86400".into();
        }),
        ("decide.json", |v| {
            v["fixture"]["tokens"][0]["record"]["scopes"] = serde_json::json!(["web"])
        }),
        ("decide.json", |v| {
            v["decide"][0]["expect"]["forward"]["urll"] = "x".into()
        }),
        ("decide.json", |v| {
            v["decide"][0]["expect"]["forward"]
                .as_object_mut()
                .unwrap()
                .remove("cors_origin");
        }),
        ("decide.json", |v| {
            v["fixture"]["routes"]["routes"][0]["cors_origin"] = serde_json::json!(["*"])
        }),
        ("forwarding.json", |v| {
            v["headers"][0]["expect"].as_array_mut().unwrap().pop();
        }),
        ("forwarding.json", |v| {
            v["redirects"][0]["expect"] = serde_json::Value::Null
        }),
        ("compile.json", |v| {
            v["compile"][3]["expect"]["problems"][0]["field"] = "x".into()
        }),
        ("gcra.json", |v| {
            v["gcra"][0]["steps"][1]["expect"]["remaining"] = 9.into()
        }),
    ];
    for (i, (file, mutate)) in mutations.into_iter().enumerate() {
        let mut v = load(file);
        assert!(
            vectors::run(&v.to_string()).is_ok(),
            "{file} before mutation {i}"
        );
        mutate(&mut v);
        let r = vectors::run(&v.to_string());
        assert!(r.is_err(), "mutation {i} of {file} went unnoticed");
    }
}
