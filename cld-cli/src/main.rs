//! `cldcli`: see `cldcli --help` and docs/cldcli.md.

use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;
use cld_cli::args::{Cli, Command, shell_only};
use cld_cli::commands::{self, Ctx};
use cld_cli::error::CliError;
use cld_cli::{bench, connect, shell};

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(c) => c,
        Err(e) => {
            let _ = e.print();
            return ExitCode::from(u8::try_from(e.exit_code()).unwrap_or(2));
        }
    };
    let json = cli.global.json;
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("cldcli: cannot start the async runtime: {e}");
            return ExitCode::from(1);
        }
    };
    let result = match cli.command {
        None => shell::run(&rt, &cli.global),
        Some(Command::Bench(args)) => {
            connect::target(&cli.global).and_then(|t| rt.block_on(bench::run(&t, &args, json)))
        }
        Some(cmd) => match shell_only(&cmd) {
            Some(name) => Err(CliError::Usage(format!(
                "{name} works only in the shell (run cldcli without a command)"
            ))),
            None => rt.block_on(one_shot(&cli.global, cmd)),
        },
    };
    let code = match result {
        Ok(code) => code,
        Err(e) => {
            shell::report(json, &e);
            i32::from(e.exit().code())
        }
    };
    rt.shutdown_timeout(Duration::from_millis(100));
    ExitCode::from(u8::try_from(code).unwrap_or(1))
}

async fn one_shot(g: &cld_cli::args::GlobalArgs, cmd: Command) -> Result<i32, CliError> {
    let target = connect::target(g)?;
    let session = connect::open(&target).await?;
    let events = session.events();
    let mut ctx = Ctx {
        session: &session,
        cwd: "/".to_string(),
        json: g.json,
        shell: None,
        events,
    };
    let result = commands::run(&mut ctx, cmd).await;
    // End the session at once (its locks and ephemeral nodes go now, not at expiry), unless
    // the cell is out of reach, where that would only wait for the timeout.
    let reachable = match &result {
        Ok(_) => true,
        Err(e) => e.exit() != cld_cli::Exit::Unreachable && e.exit() != cld_cli::Exit::LockLost,
    };
    if reachable {
        let _ = tokio::time::timeout(g.timeout.min(Duration::from_secs(2)), session.close()).await;
    }
    result
}
