//! `servicemock control ADDR [KEY=VALUE…] [--reset]`: show or change a
//! running service's `/control`.

use std::process::ExitCode;

use servicemock::client::{self, ControlRequest};

use crate::emit;

/// Shows the state (no changes), resets it, or applies `changes`; exit 2
/// for a change that is no `KEY=VALUE`, 1 when the service refused.
pub(crate) async fn run(addr: &str, changes: &[String], reset: bool) -> ExitCode {
    let request = if reset {
        ControlRequest::Reset
    } else if changes.is_empty() {
        ControlRequest::Show
    } else {
        let mut pairs = Vec::new();
        for change in changes {
            let Some((key, value)) = change.split_once('=') else {
                eprintln!(
                    "\"{change}\" is not a change: write KEY=VALUE, e.g. status=503 or ready=false"
                );
                return ExitCode::from(2);
            };
            pairs.push((key.to_owned(), value.to_owned()));
        }
        ControlRequest::Change(pairs)
    };
    match client::control(addr, &request).await {
        Ok(state) => {
            emit(&state);
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("{e}");
            ExitCode::FAILURE
        }
    }
}
