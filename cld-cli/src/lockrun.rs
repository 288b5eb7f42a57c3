//! `lock PATH -- COMMAND`: run COMMAND in its own process group while the lock is held, and
//! stop the whole group, quickly and for sure, when the lock may be lost.
//!
//! # The bound (docs/cldcli.md)
//!
//! The client counts its lease from when it *sent* the keepalive the master answered, minus
//! `lease_margin` (250 ms); the master expires the session only `lease + expiry_margin`
//! (12 s + 1 s) after it *received* that keepalive. With clock rates differing by at most
//! ρ = 1 %, the client's jeopardy fires at most `(12 s − 0.25 s) × 1.01 = 11.87 s` of the
//! master's time after the send, and the master cannot expire the session (let alone commit
//! the expiry and grant the lock to a waiter) before 13 s after it. That leaves
//! `13 − 11.87 = 1.13 s` (1.12 s of the client's clock). cldcli sends SIGTERM to COMMAND's
//! process group as soon as it sees jeopardy and SIGKILL [`KILL_GRACE`] (500 ms) later (or as
//! soon as COMMAND's main process exits, if sooner), which leaves more than 0.6 s for the
//! event to reach cldcli and for the kernel to deliver the signals.

use std::future::Future;
use std::process::ExitStatus;
use std::time::Duration;

use tokio::signal::unix::{SignalKind, signal};
use tokio::time::Instant;

use crate::error::CliError;

/// Time between SIGTERM and SIGKILL to COMMAND's process group after the lock is lost.
pub const KILL_GRACE: Duration = Duration::from_millis(500);

/// How COMMAND ended.
#[derive(Debug, PartialEq, Eq)]
pub enum RunOutcome {
    /// It exited by itself with this shell-style status (128 + N for signal N).
    Exited(i32),
    /// The lock was lost; the group got SIGTERM, then SIGKILL.
    Lost {
        /// Why the lock counts as lost.
        reason: String,
        /// How long from the loss until SIGKILL went out.
        killed_after: Duration,
    },
}

/// A shell-style status: the exit code, or 128 + N for a process ended by signal N.
pub fn status_code(status: ExitStatus) -> i32 {
    use std::os::unix::process::ExitStatusExt;
    match (status.code(), status.signal()) {
        (Some(c), _) => c,
        (None, Some(sig)) => 128 + sig,
        (None, None) => 1,
    }
}

/// Runs `argv` with `env` added, in a new process group, until it exits or `lost` resolves.
/// SIGINT, SIGTERM and SIGHUP sent to cldcli meanwhile are passed on to the whole group (the
/// group is not the terminal's foreground group, so it would not see Ctrl-C otherwise).
pub async fn run_while_held(
    argv: &[String],
    env: &[(&str, String)],
    lost: impl Future<Output = String>,
    grace: Duration,
) -> Result<RunOutcome, CliError> {
    let program = argv
        .first()
        .ok_or_else(|| CliError::Usage("lock: no COMMAND after --".into()))?;
    let mut cmd = tokio::process::Command::new(program);
    cmd.args(&argv[1..]).process_group(0);
    for (k, v) in env {
        cmd.env(k, v);
    }
    let spawn_err = |source| CliError::Spawn {
        command: program.clone(),
        source,
    };
    let mut child = cmd.spawn().map_err(spawn_err)?;
    let Some(pid) = child.id().and_then(|p| i32::try_from(p).ok()) else {
        // Already reaped: it can only have exited.
        let status = child.wait().await.map_err(spawn_err)?;
        return Ok(RunOutcome::Exited(status_code(status)));
    };
    let mut sigint = signal(SignalKind::interrupt()).map_err(spawn_err)?;
    let mut sigterm = signal(SignalKind::terminate()).map_err(spawn_err)?;
    let mut sighup = signal(SignalKind::hangup()).map_err(spawn_err)?;
    tokio::pin!(lost);
    loop {
        tokio::select! {
            // Loss first: if both are ready, the group is stopped anyway.
            biased;
            reason = &mut lost => {
                let lost_at = Instant::now();
                let killed_after = terminate_group(pid, grace, lost_at).await;
                let _ = child.wait().await;
                return Ok(RunOutcome::Lost { reason, killed_after });
            }
            status = child.wait() => {
                let status = status.map_err(spawn_err)?;
                return Ok(RunOutcome::Exited(status_code(status)));
            }
            _ = sigint.recv() => signal_group(pid, libc::SIGINT),
            _ = sigterm.recv() => signal_group(pid, libc::SIGTERM),
            _ = sighup.recv() => signal_group(pid, libc::SIGHUP),
        }
    }
}

/// SIGTERM to the group now; SIGKILL once the leader has exited or `grace` has passed,
/// whichever is first. The leader is not reaped here, so its pid (the group id) cannot be
/// reused by another process before the SIGKILL goes out. Returns the time from `since` to
/// the SIGKILL.
async fn terminate_group(pgid: i32, grace: Duration, since: Instant) -> Duration {
    signal_group(pgid, libc::SIGTERM);
    let deadline = since + grace;
    while Instant::now() < deadline && !has_exited(pgid) {
        tokio::time::sleep(Duration::from_millis(5).min(deadline - Instant::now())).await;
    }
    signal_group(pgid, libc::SIGKILL);
    since.elapsed()
}

fn signal_group(pgid: i32, sig: i32) {
    // SAFETY: kill(2) with a negative pid signals the process group; it touches no memory.
    // Failure (ESRCH: the group is gone) needs no handling.
    unsafe {
        libc::kill(-pgid, sig);
    }
}

/// Whether process `pid` (our child) has exited, without reaping it.
fn has_exited(pid: i32) -> bool {
    // SAFETY: siginfo_t is plain data; waitid writes into it and nothing else.
    unsafe {
        let mut info: libc::siginfo_t = std::mem::zeroed();
        let r = libc::waitid(
            libc::P_PID,
            pid as libc::id_t,
            &mut info,
            libc::WEXITED | libc::WNOHANG | libc::WNOWAIT,
        );
        // r < 0 (ECHILD): already reaped, so certainly exited.
        r < 0 || info.si_pid() != 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sh(script: &str) -> Vec<String> {
        vec!["sh".into(), "-c".into(), script.into()]
    }

    fn tmp(name: &str) -> std::path::PathBuf {
        let p = std::env::temp_dir().join(format!("cldcli-lockrun-{}-{name}", std::process::id()));
        let _ = std::fs::remove_file(&p);
        p
    }

    fn alive(pid: i32) -> bool {
        // A zombie still answers kill(pid, 0); read its state instead.
        match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
            Ok(stat) => !stat
                .rsplit(')')
                .next()
                .is_some_and(|rest| rest.trim_start().starts_with('Z')),
            Err(_) => false,
        }
    }

    async fn never() -> String {
        std::future::pending().await
    }

    #[tokio::test]
    async fn the_commands_own_status_comes_back() {
        let out = run_while_held(&sh("exit 3"), &[], never(), KILL_GRACE)
            .await
            .unwrap();
        assert_eq!(out, RunOutcome::Exited(3));
        let out = run_while_held(&sh("kill -KILL $$"), &[], never(), KILL_GRACE)
            .await
            .unwrap();
        assert_eq!(out, RunOutcome::Exited(128 + 9));
    }

    #[tokio::test]
    async fn the_environment_reaches_the_command() {
        let file = tmp("env");
        let script = format!("printf %s \"$CLD_SEQUENCER\" > {}", file.display());
        let env = [("CLD_SEQUENCER", "cldseq1:x:1:1:/l".to_string())];
        let out = run_while_held(&sh(&script), &env, never(), KILL_GRACE)
            .await
            .unwrap();
        assert_eq!(out, RunOutcome::Exited(0));
        assert_eq!(std::fs::read_to_string(&file).unwrap(), "cldseq1:x:1:1:/l");
        let _ = std::fs::remove_file(&file);
    }

    #[tokio::test]
    async fn a_missing_program_is_a_spawn_error() {
        let argv = vec!["/nonexistent/program".to_string()];
        let err = run_while_held(&argv, &[], never(), KILL_GRACE)
            .await
            .unwrap_err();
        assert!(matches!(err, CliError::Spawn { .. }), "{err}");
        assert_eq!(err.exit().code(), 1);
    }

    #[tokio::test]
    async fn a_loss_terminates_a_cooperative_command_at_once() {
        let file = tmp("term");
        // The trap proves SIGTERM arrived (not only the SIGKILL that follows).
        let script = format!(
            "trap 'echo term > {}; exit 0' TERM; while :; do sleep 0.05; done",
            file.display()
        );
        let lost = async {
            tokio::time::sleep(Duration::from_millis(300)).await;
            "fake loss".to_string()
        };
        let started = Instant::now();
        let out = run_while_held(&sh(&script), &[], lost, Duration::from_secs(5))
            .await
            .unwrap();
        let RunOutcome::Lost {
            reason,
            killed_after,
        } = out
        else {
            panic!("{out:?}")
        };
        assert_eq!(reason, "fake loss");
        // The leader exited on SIGTERM, so SIGKILL followed well before the 5 s grace.
        assert!(killed_after < Duration::from_secs(4), "{killed_after:?}");
        assert!(started.elapsed() < Duration::from_secs(4));
        assert_eq!(std::fs::read_to_string(&file).unwrap().trim(), "term");
        let _ = std::fs::remove_file(&file);
    }

    #[tokio::test]
    async fn a_group_ignoring_sigterm_is_killed_after_the_grace() {
        let file = tmp("stubborn");
        // The shell and a background child both ignore SIGTERM; the child records its pid.
        let script = format!(
            "trap '' TERM; sleep 30 & echo $! > {}; wait; wait",
            file.display()
        );
        let path = file.clone();
        let lost = async move {
            while std::fs::read_to_string(&path).map_or(true, |s| !s.ends_with('\n')) {
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            "fake loss".to_string()
        };
        let grace = Duration::from_millis(300);
        let out = run_while_held(&sh(&script), &[], lost, grace)
            .await
            .unwrap();
        let RunOutcome::Lost { killed_after, .. } = out else {
            panic!("{out:?}")
        };
        assert!(
            killed_after >= grace,
            "SIGKILL only after the grace: {killed_after:?}"
        );
        let bg: i32 = std::fs::read_to_string(&file)
            .unwrap()
            .trim()
            .parse()
            .unwrap();
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        while alive(bg) && std::time::Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(10));
        }
        assert!(!alive(bg), "the background member of the group survived");
        let _ = std::fs::remove_file(&file);
    }
}
