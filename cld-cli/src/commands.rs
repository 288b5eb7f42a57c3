//! Running one command against an open session (one-shot or in the shell).

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::time::Duration;

use cldc::core::SessionEvent;
use cldc::proto::{Event, EventMask, LockMode, MAX_FILE_LIMIT, NodeFlags, OpenMode, Sequencer};
use cldc::{Events, Handle, Session};
use serde_json::{Value, json};
use tokio::sync::broadcast;

use crate::args::Command;
use crate::error::{CliError, Exit};
use crate::lockrun::{self, KILL_GRACE, RunOutcome};
use crate::output;
use crate::path::resolve;
use crate::sequencer::{format_sequencer, parse_sequencer};

/// Where a command runs.
pub struct Ctx<'a> {
    /// The session.
    pub session: &'a Session,
    /// The working directory (always `/` one-shot).
    pub cwd: String,
    /// `--json`.
    pub json: bool,
    /// The shell's own state; `None` one-shot.
    pub shell: Option<&'a mut ShellState>,
    /// One-shot: the session's events, for `watch` and `lock -- COMMAND`.
    pub events: Option<Events>,
}

/// What the shell keeps between lines: locks it holds and a feed of the session's events.
pub struct ShellState {
    /// Held locks by path.
    pub locks: BTreeMap<String, HeldLock>,
    /// Every event of the session (the shell's event task fans them out).
    pub events: broadcast::Sender<SessionEvent>,
}

/// A lock the shell holds.
pub struct HeldLock {
    /// The handle holding it.
    pub handle: Handle,
    /// Its sequencer at the grant.
    pub sequencer: Sequencer,
}

/// Prints a result: `text` for people, `value` as one JSON line with `--json`.
pub fn emit(json: bool, text: &str, value: Value) {
    let mut out = std::io::stdout().lock();
    let _ = if json {
        writeln!(out, "{value}")
    } else if text.is_empty() || text.ends_with('\n') {
        write!(out, "{text}")
    } else {
        writeln!(out, "{text}")
    };
    let _ = out.flush();
}

fn path_arg(ctx: &Ctx<'_>, arg: &str) -> Result<String, CliError> {
    resolve(&ctx.cwd, arg).map_err(|e| CliError::Usage(format!("{arg:?}: {e}")))
}

/// Reads at most one byte more than a file may hold, so that too large is detected.
fn read_limited(mut r: impl Read, what: &std::path::Path) -> Result<Vec<u8>, CliError> {
    let mut data = Vec::new();
    r.by_ref()
        .take(MAX_FILE_LIMIT as u64 + 1)
        .read_to_end(&mut data)
        .map_err(|source| CliError::Local {
            path: what.to_path_buf(),
            source,
        })?;
    if data.len() > MAX_FILE_LIMIT {
        return Err(CliError::Usage(format!(
            "{}: larger than the {MAX_FILE_LIMIT}-byte limit of a file",
            what.display()
        )));
    }
    Ok(data)
}

/// Runs `cmd`. Returns the exit status for success-like outcomes (0, or a child's status for
/// `lock -- COMMAND`).
pub async fn run(ctx: &mut Ctx<'_>, cmd: Command) -> Result<i32, CliError> {
    let s = ctx.session;
    match cmd {
        Command::Ls { long, dir } => {
            let path = path_arg(ctx, dir.as_deref().unwrap_or("."))?;
            let entries = s
                .list(&path)
                .await
                .map_err(|e| CliError::cell("ls", &path, e))?;
            emit(
                ctx.json,
                &output::ls_text(&entries, long),
                output::ls_json(&path, &entries),
            );
        }
        Command::Stat { path } => {
            let path = path_arg(ctx, &path)?;
            let meta = s
                .stat(&path)
                .await
                .map_err(|e| CliError::cell("stat", &path, e))?;
            let mut v = output::meta_json(&meta);
            v["path"] = json!(path);
            emit(ctx.json, &output::stat_text(&path, &meta), v);
        }
        Command::Cat { path } => {
            let path = path_arg(ctx, &path)?;
            let c = read(s, &path, "cat").await?;
            if ctx.json {
                emit(true, "", contents_json(&path, &c));
            } else {
                let mut out = std::io::stdout().lock();
                let _ = out.write_all(&c.data);
                let _ = out.flush();
            }
        }
        Command::Put {
            if_generation,
            path,
            value,
        } => {
            let path = path_arg(ctx, &path)?;
            let data = match value {
                Some(v) => v.into_bytes(),
                None if ctx.shell.is_some() => {
                    return Err(CliError::Usage(
                        "put: give the VALUE in the shell (stdin is the shell's input)".into(),
                    ));
                }
                None => read_limited(std::io::stdin().lock(), std::path::Path::new("stdin"))?,
            };
            write(ctx.json, s, &path, &data, if_generation, "put").await?;
        }
        Command::Cpin { local, path } => {
            let path = path_arg(ctx, &path)?;
            let file = std::fs::File::open(&local).map_err(|source| CliError::Local {
                path: local.clone(),
                source,
            })?;
            let data = read_limited(file, &local)?;
            write(ctx.json, s, &path, &data, None, "cpin").await?;
        }
        Command::Cpout { path, local } => {
            let path = path_arg(ctx, &path)?;
            let c = read(s, &path, "cpout").await?;
            std::fs::write(&local, &c.data).map_err(|source| CliError::Local {
                path: local.clone(),
                source,
            })?;
            emit(
                ctx.json,
                &format!(
                    "copied {} bytes from {path} to {}",
                    c.data.len(),
                    local.display()
                ),
                json!({"path": path, "local": local, "size": c.data.len()}),
            );
        }
        Command::Mkdir { parents, dir } => {
            let path = path_arg(ctx, &dir)?;
            mkdir(s, &path, parents).await?;
            emit(ctx.json, "", json!({"created": path}));
        }
        Command::Rm { path } => {
            let path = path_arg(ctx, &path)?;
            s.delete(&path)
                .await
                .map_err(|e| CliError::cell("rm", &path, e))?;
            if let Some(shell) = ctx.shell.as_deref_mut() {
                shell.locks.remove(&path);
            }
            emit(ctx.json, "", json!({"deleted": path}));
        }
        Command::Touch { ephemeral, path } => {
            let path = path_arg(ctx, &path)?;
            let mut mode = OpenMode::READ | OpenMode::CREATE;
            if ephemeral {
                mode = mode | OpenMode::EPHEMERAL;
            }
            let h = s
                .open_node(&path, mode)
                .await
                .map_err(|e| CliError::cell("touch", &path, e))?;
            let meta = h.meta_at_open().clone();
            let _ = h.close().await;
            if ephemeral && !meta.flags.contains(NodeFlags::EPHEMERAL) {
                return Err(CliError::Usage(format!(
                    "touch --ephemeral {path}: the file already exists and is not ephemeral"
                )));
            }
            emit(
                ctx.json,
                "",
                json!({"path": path, "meta": output::meta_json(&meta)}),
            );
        }
        Command::Lock {
            shared,
            try_only,
            lock_delay,
            path,
            command,
        } => {
            let path = path_arg(ctx, &path)?;
            let mode = if shared {
                LockMode::Shared
            } else {
                LockMode::Exclusive
            };
            if command.is_empty() {
                return shell_lock(ctx, &path, mode, !try_only, lock_delay).await;
            }
            return lock_and_run(ctx, &path, mode, try_only, lock_delay, &command).await;
        }
        Command::Trylock { shared, path } => {
            let path = path_arg(ctx, &path)?;
            let mode = if shared {
                LockMode::Shared
            } else {
                LockMode::Exclusive
            };
            return shell_lock(ctx, &path, mode, false, None).await;
        }
        Command::Unlock { path } => {
            let path = path_arg(ctx, &path)?;
            let shell = shell_state(ctx, "unlock")?;
            let held = shell.locks.remove(&path).ok_or_else(|| {
                CliError::Usage(format!("unlock {path}: this shell holds no lock on it"))
            })?;
            held.handle
                .unlock()
                .await
                .map_err(|e| CliError::cell("unlock", &path, e))?;
            let _ = held.handle.close().await;
            emit(ctx.json, "", json!({"unlocked": path}));
        }
        Command::Locks => {
            let json = ctx.json;
            let shell = shell_state(ctx, "locks")?;
            let mut text = String::new();
            let mut list = Vec::new();
            for (path, held) in &shell.locks {
                let mode = mode_name(held.sequencer.mode);
                text.push_str(&format!("{path} {mode}\n"));
                list.push(json!({"path": path, "mode": mode,
                                 "sequencer": format_sequencer(&held.sequencer)}));
            }
            emit(json, &text, json!({"locks": list}));
        }
        Command::Seq { path } => {
            let path = path_arg(ctx, &path)?;
            let json = ctx.json;
            let shell = shell_state(ctx, "seq")?;
            let held = shell.locks.get(&path).ok_or_else(|| {
                CliError::Usage(format!("seq {path}: this shell holds no lock on it"))
            })?;
            let seq = held
                .handle
                .sequencer()
                .await
                .map_err(|e| CliError::cell("seq", &path, e))?;
            let text = format_sequencer(&seq);
            emit(json, &text, json!({"path": path, "sequencer": text}));
        }
        Command::CheckSeq { sequencer } => {
            let seq = parse_sequencer(&sequencer)
                .map_err(|e| CliError::Usage(format!("check-seq: {e}")))?;
            match s.check_sequencer(&seq).await {
                Ok(()) => emit(
                    ctx.json,
                    &format!("valid: {} is still locked under this sequencer", seq.path),
                    json!({"path": seq.path, "valid": true}),
                ),
                Err(cldc::Error::StaleSequencer) => {
                    if ctx.json {
                        emit(true, "", json!({"path": seq.path, "valid": false}));
                    }
                    return Err(CliError::StaleSequencer(seq.path));
                }
                Err(e) => return Err(CliError::cell("check-seq", &seq.path, e)),
            }
        }
        Command::Watch { path } => {
            let path = path_arg(ctx, &path)?;
            watch(ctx, &path).await?;
        }
        Command::Cd { dir } => {
            let path = path_arg(ctx, dir.as_deref().unwrap_or("/"))?;
            let meta = s
                .stat(&path)
                .await
                .map_err(|e| CliError::cell("cd", &path, e))?;
            if !meta.flags.contains(NodeFlags::DIRECTORY) {
                return Err(CliError::cell("cd", &path, cldc::Error::NotADirectory));
            }
            ctx.cwd = path;
        }
        Command::Status => {
            let st = s
                .status()
                .await
                .map_err(|e| CliError::cell("status", "/", e))?;
            emit(
                ctx.json,
                &output::status_text(&st),
                output::status_json(&st),
            );
        }
        Command::Bench(_) => {
            return Err(CliError::Usage(
                "bench runs on its own sessions: see `bench --help`".into(),
            ));
        }
    }
    Ok(i32::from(Exit::Ok.code()))
}

fn shell_state<'b>(ctx: &'b mut Ctx<'_>, op: &str) -> Result<&'b mut ShellState, CliError> {
    ctx.shell
        .as_deref_mut()
        .ok_or_else(|| CliError::Usage(format!("{op} works only in the shell")))
}

fn mode_name(mode: LockMode) -> &'static str {
    match mode {
        LockMode::Exclusive => "exclusive",
        LockMode::Shared => "shared",
    }
}

fn contents_json(path: &str, c: &cldc::Contents) -> Value {
    json!({
        "path": path,
        "data": std::str::from_utf8(&c.data).ok(),
        "data_base64": cldc::proto::encode_base64(&c.data),
        "meta": output::meta_json(&c.meta),
    })
}

async fn read(s: &Session, path: &str, op: &'static str) -> Result<cldc::Contents, CliError> {
    let h = s
        .open_node(path, OpenMode::READ)
        .await
        .map_err(|e| CliError::cell(op, path, e))?;
    let c = h.get().await.map_err(|e| CliError::cell(op, path, e));
    let _ = h.close().await;
    c
}

async fn write(
    json: bool,
    s: &Session,
    path: &str,
    data: &[u8],
    cas: Option<u64>,
    op: &'static str,
) -> Result<(), CliError> {
    // A compare-and-swap names a generation of an existing file: never create one.
    let mode = match cas {
        Some(_) => OpenMode::WRITE,
        None => OpenMode::WRITE | OpenMode::CREATE,
    };
    let h = s
        .open_node(path, mode)
        .await
        .map_err(|e| CliError::cell(op, path, e))?;
    let result = match cas {
        Some(g) => h.put_if(cldc::proto::ContentGeneration(g), data).await,
        None => h.put(data).await,
    };
    let _ = h.close().await;
    let meta = result.map_err(|e| CliError::cell(op, path, e))?;
    emit(
        json,
        &format!(
            "wrote {} bytes to {path} (content generation {})",
            data.len(),
            meta.content_generation.0
        ),
        json!({"path": path, "meta": output::meta_json(&meta)}),
    );
    Ok(())
}

async fn mkdir(s: &Session, path: &str, parents: bool) -> Result<(), CliError> {
    let dir_mode = OpenMode::CREATE | OpenMode::DIRECTORY;
    if parents {
        let mut prefix = String::new();
        for component in path.split('/').filter(|c| !c.is_empty()) {
            prefix.push('/');
            prefix.push_str(component);
            let h = s
                .open_node(&prefix, dir_mode)
                .await
                .map_err(|e| CliError::cell("mkdir", &prefix, e))?;
            let _ = h.close().await;
        }
        return Ok(());
    }
    let h = s
        .open_node(path, dir_mode | OpenMode::EXCLUSIVE)
        .await
        .map_err(|e| CliError::cell("mkdir", path, e))?;
    let _ = h.close().await;
    Ok(())
}

/// Opens a node for locking, creating it if needed; a node this creates carries
/// `lock_delay` (an existing node keeps its own).
async fn open_for_lock(
    s: &Session,
    path: &str,
    lock_delay: Option<Duration>,
    events: EventMask,
) -> Result<Handle, CliError> {
    let mode = OpenMode::READ | OpenMode::LOCK | OpenMode::CREATE;
    let opened = match lock_delay {
        Some(delay) => {
            if delay > cldc::proto::MAX_LOCK_DELAY {
                return Err(CliError::Usage(format!(
                    "--lock-delay: at most {} (the protocol's limit)",
                    crate::duration::show_duration(cldc::proto::MAX_LOCK_DELAY)
                )));
            }
            s.open_node_with_lock_delay(path, mode, events, delay).await
        }
        None => s.open_node_with_events(path, mode, events).await,
    };
    opened.map_err(|e| CliError::cell("lock", path, e))
}

async fn take_lock(
    h: &Handle,
    path: &str,
    mode: LockMode,
    wait: bool,
) -> Result<Sequencer, CliError> {
    let r = if wait {
        h.lock(mode).await
    } else {
        h.try_lock(mode).await
    };
    match r {
        Ok(seq) => Ok(seq),
        Err(cldc::Error::LockConflict) => Err(CliError::LockHeld(path.to_string())),
        Err(e) => Err(CliError::cell("lock", path, e)),
    }
}

async fn shell_lock(
    ctx: &mut Ctx<'_>,
    path: &str,
    mode: LockMode,
    wait: bool,
    lock_delay: Option<Duration>,
) -> Result<i32, CliError> {
    let json = ctx.json;
    let session = ctx.session;
    let shell = ctx.shell.as_deref_mut().ok_or_else(|| {
        CliError::Usage(
            "lock: give the command to run while holding the lock: lock PATH -- COMMAND [ARGS...]"
                .into(),
        )
    })?;
    if shell.locks.contains_key(path) {
        return Err(CliError::Usage(format!(
            "lock {path}: this shell already holds it"
        )));
    }
    let h = open_for_lock(session, path, lock_delay, EventMask::NONE).await?;
    // Ctrl-C while queued gives the place in the queue up and returns to the prompt.
    let taken = tokio::select! {
        r = take_lock(&h, path, mode, wait) => r,
        _ = tokio::signal::ctrl_c() => Err(CliError::Usage(format!("lock {path}: interrupted"))),
    };
    let sequencer = match taken {
        Ok(s) => s,
        Err(e) => {
            let _ = h.close().await;
            return Err(e);
        }
    };
    let text = format_sequencer(&sequencer);
    emit(
        json,
        &format!("locked {path} ({}); sequencer {text}", mode_name(mode)),
        json!({"path": path, "mode": mode_name(mode), "sequencer": text}),
    );
    shell.locks.insert(
        path.to_string(),
        HeldLock {
            handle: h,
            sequencer,
        },
    );
    Ok(0)
}

/// What to watch for while COMMAND runs: anything that means the lock may be gone.
async fn lock_loss(mut events: Events, handle: cldc::proto::HandleId) -> String {
    while let Some(ev) = events.next().await {
        match ev {
            SessionEvent::Jeopardy => {
                return "session in jeopardy: the cell did not renew the lease in time".into();
            }
            SessionEvent::Expired => return "session expired".into(),
            SessionEvent::Server(Event::NodeDeleted { handle: h }) if h == handle => {
                return "the node was deleted".into();
            }
            _ => {}
        }
    }
    "the session ended".into()
}

async fn lock_and_run(
    ctx: &mut Ctx<'_>,
    path: &str,
    mode: LockMode,
    try_only: bool,
    lock_delay: Option<Duration>,
    command: &[String],
) -> Result<i32, CliError> {
    let events = ctx.events.take().ok_or_else(|| {
        CliError::Usage("lock PATH -- COMMAND runs one-shot only (not in the shell)".into())
    })?;
    let s = ctx.session;
    let h = open_for_lock(s, path, lock_delay, EventMask::NONE).await?;
    // Ctrl-C while queued gives the place in the queue up cleanly.
    let sequencer = tokio::select! {
        r = take_lock(&h, path, mode, !try_only) => r?,
        _ = tokio::signal::ctrl_c() => {
            let _ = h.close().await;
            return Ok(130);
        }
    };
    let seq_text = format_sequencer(&sequencer);
    let env = [("CLD_SEQUENCER", seq_text.clone())];
    let outcome =
        lockrun::run_while_held(command, &env, lock_loss(events, h.id()), KILL_GRACE).await?;
    match outcome {
        RunOutcome::Exited(code) => {
            if let Err(e) = h.unlock().await {
                eprintln!("cldcli: warning: unlock {path}: {e} (the session's end releases it)");
            }
            let _ = h.close().await;
            if ctx.json {
                emit(
                    true,
                    "",
                    json!({"path": path, "sequencer": seq_text, "command_status": code}),
                );
            }
            Ok(code)
        }
        RunOutcome::Lost { reason, .. } => Err(CliError::LockLost {
            path: path.to_string(),
            reason,
        }),
    }
}

/// A source of session events: the session's own stream (one-shot) or the shell's feed.
enum Feed {
    Direct(Events),
    Shared(broadcast::Receiver<SessionEvent>),
}

impl Feed {
    async fn next(&mut self) -> Option<Result<SessionEvent, u64>> {
        match self {
            Feed::Direct(e) => e.next().await.map(Ok),
            Feed::Shared(rx) => match rx.recv().await {
                Ok(ev) => Some(Ok(ev)),
                Err(broadcast::error::RecvError::Lagged(n)) => Some(Err(n)),
                Err(broadcast::error::RecvError::Closed) => None,
            },
        }
    }
}

async fn watch(ctx: &mut Ctx<'_>, path: &str) -> Result<(), CliError> {
    let s = ctx.session;
    let mut feed = match (ctx.events.take(), ctx.shell.as_deref()) {
        (Some(e), _) => Feed::Direct(e),
        (None, Some(shell)) => Feed::Shared(shell.events.subscribe()),
        (None, None) => return Err(CliError::Usage("watch: no event stream".into())),
    };
    let meta = s
        .stat(path)
        .await
        .map_err(|e| CliError::cell("watch", path, e))?;
    let mut mode = OpenMode::READ;
    if meta.flags.contains(NodeFlags::DIRECTORY) {
        mode = OpenMode::DIRECTORY;
    }
    let mask = EventMask::CONTENTS_MODIFIED
        | EventMask::CHILD_ADDED
        | EventMask::CHILD_REMOVED
        | EventMask::LOCK_CONFLICT;
    let h = s
        .open_node_with_events(path, mode, mask)
        .await
        .map_err(|e| CliError::cell("watch", path, e))?;
    if !ctx.json {
        eprintln!("watching {path} (Ctrl-C stops)");
    }
    let mine = h.id();
    let result = loop {
        let ev = tokio::select! {
            ev = feed.next() => ev,
            _ = tokio::signal::ctrl_c() => break Ok(()),
        };
        let ev = match ev {
            None => break Err(CliError::SessionLost(path.to_string())),
            Some(Err(lost)) => {
                emit(
                    ctx.json,
                    &format!("({lost} events lost: the shell fell behind)"),
                    json!({"event": "lagged", "lost": lost}),
                );
                continue;
            }
            Some(Ok(ev)) => ev,
        };
        let ours = match &ev {
            SessionEvent::Server(e) => match e {
                Event::ContentsModified { handle, .. }
                | Event::ChildAdded { handle, .. }
                | Event::ChildRemoved { handle, .. }
                | Event::NodeDeleted { handle }
                | Event::LockConflict { handle } => *handle == mine,
                Event::LockAcquired { .. } => false,
                Event::MasterFailover { .. } => true,
            },
            _ => true,
        };
        if !ours {
            continue;
        }
        let (text, value) = output::event_text(path, &ev);
        emit(ctx.json, &text, value);
        match ev {
            SessionEvent::Expired => break Err(CliError::SessionLost(path.to_string())),
            SessionEvent::Server(Event::NodeDeleted { .. }) => break Ok(()),
            _ => {}
        }
    };
    let _ = h.close().await;
    result
}
