//! `servicemock requests`: what a service received (its `GET /requests`),
//! and with `--follow` what it receives.

use std::process::ExitCode;
use std::time::Duration;

use servicemock::client;

use crate::emit;

/// `servicemock requests`: what `addr` received, then (`--follow`) what
/// it receives, polled twice a second; exit 2 when it cannot be asked.
pub(crate) async fn run(addr: &str, follow: bool, tree: bool) -> ExitCode {
    let mut after = 0;
    loop {
        let (json, entries) = match client::requests(addr, after).await {
            Ok(answer) => answer,
            Err(e) => {
                eprintln!("servicemock: {e}");
                return ExitCode::from(2);
            }
        };
        after = entries
            .iter()
            .filter_map(|e| e["Seq"].as_u64())
            .max()
            .unwrap_or(after);
        if !follow {
            let text = if tree {
                entries.iter().map(request_line).collect::<String>()
            } else {
                json
            };
            emit(&text);
            return ExitCode::SUCCESS;
        }
        // Oldest first when following, as a log reads.
        for entry in entries.iter().rev() {
            emit(&if tree {
                request_line(entry)
            } else {
                serde_json::to_string(entry).unwrap_or_default() + "\n"
            });
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// One received request as a text line.
fn request_line(entry: &serde_json::Value) -> String {
    let word = |key: &str| entry[key].as_str().unwrap_or("-").to_owned();
    let mirrored = if entry["Mirrored"] == true {
        "  (mirrored)"
    } else {
        ""
    };
    format!(
        "{} {} {} {} {} {} -> {}{mirrored}\n",
        entry["Seq"],
        word("ReceivedDate"),
        word("Protocol"),
        word("Method"),
        word("Authority"),
        word("Path"),
        entry["Status"]
    )
}
