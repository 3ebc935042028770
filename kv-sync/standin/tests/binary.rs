//! The `keygate-kv-standin` binary: starts on a free port, prints its URL first, serves the
//! API with the given credentials, and exits cleanly on SIGTERM.

use std::process::Stdio;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::Command;

#[tokio::test]
async fn binary_prints_its_url_and_serves() {
    let mut child = Command::new(env!("CARGO_BIN_EXE_keygate-kv-standin"))
        .args(["--listen", "127.0.0.1:0", "--token", "bin-token"])
        .args(["--account", "aaaabbbbccccddddaaaabbbbccccdddd"])
        .args(["--namespace", "11112222333344441111222233334444"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("binary starts");
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    // The URL line is printed once the port is bound: no waiting needed beyond reading it.
    let url = tokio::time::timeout(Duration::from_secs(30), lines.next_line())
        .await
        .expect("prints its URL in time")
        .unwrap()
        .expect("a first line");
    assert!(
        url.starts_with("http://127.0.0.1:") && url.ends_with("/client/v4"),
        "{url}"
    );

    let keys = format!(
        "{url}/accounts/aaaabbbbccccddddaaaabbbbccccdddd/storage/kv/namespaces/\
         11112222333344441111222233334444/keys"
    );
    let http = reqwest::Client::new();
    let ok = http
        .get(&keys)
        .bearer_auth("bin-token")
        .send()
        .await
        .unwrap();
    assert_eq!(ok.status(), 200);
    let body: serde_json::Value = ok.json().await.unwrap();
    assert_eq!(body["result_info"]["cursor"], "");
    let denied = http.get(&keys).bearer_auth("other").send().await.unwrap();
    assert_eq!(denied.status(), 403);

    let pid = child.id().expect("running").to_string();
    let status = Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .await
        .unwrap();
    assert!(status.success());
    let exit = tokio::time::timeout(Duration::from_secs(30), child.wait())
        .await
        .expect("exits after SIGTERM")
        .unwrap();
    assert!(exit.success(), "{exit:?}");
}
