//! `servicemock plan PATH`: the hop tree of a path as a CallRequest in
//! proto3 JSON (what `grpcurl -d` takes), or where the path is wrong.

use std::process::ExitCode;

use servicemock::client;
use servicemock::plan::path::parse_path;
use servicemock::plan::Limits;

use crate::emit;

pub(crate) fn run(typed: &str) -> ExitCode {
    let path = match client::request_path(typed) {
        Ok(path) => path,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::from(2);
        }
    };
    match parse_path(&path, &Limits::default()) {
        Ok(plan) => {
            if plan.parallel.is_empty() && path.contains('@') {
                eprintln!(
                    "note: {path} calls nobody: an @-command is read only as the first segment of the path"
                );
            }
            match serde_json::to_string_pretty(&servicemock::plan::proto::request_for(&plan)) {
                Ok(json) => {
                    emit(&format!("{json}\n"));
                    ExitCode::SUCCESS
                }
                Err(e) => {
                    eprintln!("cannot print the plan: {e}");
                    ExitCode::FAILURE
                }
            }
        }
        Err(e) => {
            eprintln!("{e}");
            ExitCode::from(2)
        }
    }
}
