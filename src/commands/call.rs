//! `servicemock call`: one call to a running servicemock over any hop
//! protocol (a path, or a plan with `--plan`), or with `--stream` one
//! `CallStream` printed report by report.

use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context as _;
use servicemock::client;

use crate::cli::{self, CallArgs};
use crate::emit;

/// Runs `servicemock call` with its arguments.
pub(crate) async fn run(args: CallArgs) -> anyhow::Result<ExitCode> {
    let CallArgs {
        via,
        addr,
        path,
        plan,
        timeout,
        tree,
        flat,
        headers,
        stream,
        interval,
        stop_on_failure,
    } = args;
    // A call that cannot be made exits 2, as `call` documents.
    let headers = match cli::parse_headers(&headers) {
        Ok(headers) => headers,
        Err(e) => {
            eprintln!("servicemock: {e}");
            return Ok(ExitCode::from(2));
        }
    };
    let what = match (plan, path) {
        (Some(file), _) => match cli::read_plan_file(&file) {
            Ok(plan) => Asked::Plan(plan),
            Err(e) => {
                eprintln!("servicemock: {e:#}");
                return Ok(ExitCode::from(2));
            }
        },
        (None, Some(path)) => Asked::Path(path),
        (None, None) => unreachable!("clap requires a path or --plan"),
    };
    let view = match (tree, flat) {
        (true, _) => client::View::Tree,
        (_, true) => client::View::Flat,
        _ => client::View::Json,
    };
    let tls = via.tls()?;
    if let Some(count) = stream {
        let streaming = Streaming {
            count,
            interval: interval.unwrap_or_default(),
            stop_on_failure,
        };
        let over = client::Over {
            protocol: via.protocol(),
            tls,
            timeout,
            headers,
        };
        let whole = timeout + streaming.interval * count;
        return tokio::time::timeout(whole, call_stream(&addr, what, streaming, over, view))
            .await
            .with_context(|| format!("the stream from {addr} did not end within {whole:?}"));
    }
    let how = Calling {
        protocol: via.protocol(),
        tls,
        timeout,
        headers,
    };
    tokio::time::timeout(timeout, call(how, &addr, what, view))
        .await
        .with_context(|| format!("no answer from {addr} within {timeout:?}"))
}

/// How `servicemock call` calls.
struct Calling {
    protocol: servicemock::plan::Protocol,
    tls: servicemock::exec::tls::HopTls,
    timeout: Duration,
    /// `-H`: with any, the call goes through the hop client, which sends them.
    headers: std::collections::BTreeMap<String, String>,
}

/// `call --stream`: how many runs, how far apart, and whether to stop at
/// the first failure.
struct Streaming {
    count: u32,
    interval: Duration,
    stop_on_failure: bool,
}

/// `servicemock call --stream`: prints each report of one CallStream as it
/// comes; exit 0 when the stream ended OK and every run succeeded, 1 when
/// one failed or the stream ended with a failure, 2 when it could not be
/// made.
async fn call_stream(
    addr: &str,
    what: Asked,
    streaming: Streaming,
    mut over: client::Over,
    view: client::View,
) -> ExitCode {
    use servicemock::plan::Protocol;
    over.protocol = match over.protocol {
        Protocol::Http | Protocol::Grpc => Protocol::Grpc,
        Protocol::Https | Protocol::Grpcs => Protocol::Grpcs,
        other => {
            eprintln!(
                "servicemock: --stream is a gRPC stream: use --protocol grpc or grpcs, not {other}"
            );
            return ExitCode::from(2);
        }
    };
    let call = match what {
        Asked::Path(path) => match client::request_path(&path) {
            Ok(path) => servicemock::pb::CallRequest {
                request: Some(servicemock::pb::call_request::Request::Path(path)),
            },
            Err(e) => {
                eprintln!("servicemock: {e}");
                return ExitCode::from(2);
            }
        },
        Asked::Plan(plan) => servicemock::plan::proto::request_for(&plan),
    };
    let request = servicemock::pb::CallStreamRequest {
        call: Some(call),
        count: streaming.count,
        interval: if streaming.interval.is_zero() {
            String::new()
        } else {
            format!("{}ms", streaming.interval.as_millis())
        },
        stop_on_failure: streaming.stop_on_failure,
    };
    let mut failed_runs = 0;
    let ended = client::call_stream(addr, request, over, |mut report| {
        if report.deepest_failure().is_some() {
            failed_runs += 1;
        }
        emit(&servicemock::report::render_line(&mut report, view));
    })
    .await;
    match ended {
        Ok(ended) => match ended.failure {
            None if failed_runs == 0 => ExitCode::SUCCESS,
            None => {
                eprintln!(
                    "servicemock: {failed_runs} of {} run(s) failed",
                    ended.messages
                );
                ExitCode::FAILURE
            }
            Some(why) => {
                eprintln!(
                    "servicemock: the stream ended after {} message(s) with {why}",
                    ended.messages
                );
                ExitCode::FAILURE
            }
        },
        Err(e) => {
            eprintln!("servicemock: {e}");
            ExitCode::from(2)
        }
    }
}

/// What `servicemock call` asks the target to run.
enum Asked {
    /// An @-path, sent as it was typed.
    Path(String),
    /// A plan from `--plan`, sent as the hop client sends any plan.
    Plan(servicemock::plan::Plan),
}

/// `servicemock call`: prints the report in the asked view; exit 0 when the
/// call succeeded, 1 when it answered a failure, 2 when it could not be made.
async fn call(how: Calling, addr: &str, what: Asked, view: client::View) -> ExitCode {
    use servicemock::plan::Protocol;
    let plain = how.headers.is_empty();
    let over = client::Over {
        protocol: how.protocol,
        tls: how.tls,
        timeout: how.timeout,
        headers: how.headers,
    };
    let answer = match (what, how.protocol) {
        (Asked::Path(path), Protocol::Http) if plain => client::call_http(addr, &path, view).await,
        (Asked::Path(path), Protocol::Grpc) if plain => client::call_grpc(addr, &path, view).await,
        (Asked::Path(path), _) => client::call_over(addr, &path, view, over).await,
        (Asked::Plan(plan), _) => client::call_plan(addr, plan, view, over).await,
    };
    match answer {
        Ok(answer) => {
            emit(&answer.body);
            if answer.ok {
                ExitCode::SUCCESS
            } else {
                eprintln!("servicemock: {addr} answered {}", answer.status);
                ExitCode::FAILURE
            }
        }
        Err(e) => {
            eprintln!("servicemock: {e}");
            ExitCode::from(2)
        }
    }
}
