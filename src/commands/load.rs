//! `servicemock load`: the run, a live line, the tables and the verdict.

use std::process::ExitCode;
use std::time::Duration;

use crate::cli::LoadArgs;
use crate::emit;

/// `servicemock load`: the run, a live line on a terminal (plain lines
/// otherwise), then the table or JSON; the exit code is the verdict.
pub(crate) async fn run(args: LoadArgs) -> anyhow::Result<ExitCode> {
    use std::io::IsTerminal;
    let options = args.options()?;
    let what = format!(
        "servicemock load {} {}{}",
        args.target,
        args.path.as_deref().unwrap_or("(--plan)"),
        match options.protocol {
            servicemock::plan::Protocol::Grpc => " over gRPC",
            servicemock::plan::Protocol::H2c => " over h2c",
            servicemock::plan::Protocol::Https => " over https",
            servicemock::plan::Protocol::Grpcs => " over grpcs",
            servicemock::plan::Protocol::Tcp => " over tcp",
            servicemock::plan::Protocol::Http => "",
        }
    );
    let terminal = std::io::stderr().is_terminal();
    let bar = indicatif::ProgressBar::new_spinner();
    if terminal {
        bar.enable_steady_tick(Duration::from_millis(200));
    } else {
        bar.set_draw_target(indicatif::ProgressDrawTarget::hidden());
    }
    let line = bar.clone();
    let run = servicemock::load::run(options, move |progress| {
        if terminal {
            line.set_message(progress.to_string());
        } else {
            eprintln!("load: {progress}");
        }
    })
    .await;
    bar.finish_and_clear();
    if args.json {
        emit(&format!("{}\n", servicemock::load::render::json(&run)));
    } else {
        emit(&servicemock::load::render::table(&run, &what));
    }
    use servicemock::load::expect::Verdict;
    if let Some(why) = run.tally.nothing_answered() {
        eprintln!("servicemock load: no call was answered: {why}");
        return Ok(ExitCode::from(2));
    }
    let verdicts: Vec<Verdict> = run.judgements.iter().map(|j| j.verdict).collect();
    Ok(if verdicts.contains(&Verdict::Fail) {
        ExitCode::from(1)
    } else if verdicts.contains(&Verdict::CannotJudge) {
        ExitCode::from(2)
    } else {
        ExitCode::SUCCESS
    })
}
