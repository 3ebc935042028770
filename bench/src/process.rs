//! Child processes the benchmarks start (kv-sync, the gateway): stopping them by their PID.

use std::time::Duration;

/// SIGTERM to `child`'s PID (the Keygate binaries' clean stop), up to `grace` for it to exit,
/// then SIGKILL. Only this child is signalled.
pub async fn terminate(child: &mut tokio::process::Child, grace: Duration) {
    if let Some(pid) = child.id() {
        let _ = tokio::process::Command::new("kill")
            .arg("-TERM")
            .arg(pid.to_string())
            .status()
            .await;
    }
    if tokio::time::timeout(grace, child.wait()).await.is_err() {
        let _ = child.kill().await;
    }
}
