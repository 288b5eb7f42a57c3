//! `bench`: N sessions run a workload against a cell for a duration, with a progress bar;
//! then ops/s and latency percentiles (HdrHistogram), as text, JSON or an HTML page.

pub mod report;
pub mod stats;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use cldc::proto::{LockMode, OpenMode};
use cldc::{Handle, Session};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use tokio::sync::Semaphore;
use tokio::time::Instant;

use crate::args::{BenchArgs, Workload};
use crate::connect::{self, Target};
use crate::error::CliError;
use crate::path::resolve;
use stats::{Recorder, RunInfo};

/// Sessions being opened at once (the cell allows 16 pending handshakes per user).
const OPEN_CONCURRENCY: usize = 8;

/// Raises the open-file limit to its hard maximum (one UDP socket per session) and returns
/// the new soft limit.
pub fn raise_open_file_limit() -> u64 {
    // SAFETY: getrlimit/setrlimit read and write the rlimit struct passed in, nothing else.
    unsafe {
        let mut lim: libc::rlimit = std::mem::zeroed();
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) != 0 {
            return 0;
        }
        if lim.rlim_cur < lim.rlim_max {
            let wanted = libc::rlimit {
                rlim_cur: lim.rlim_max,
                rlim_max: lim.rlim_max,
            };
            if libc::setrlimit(libc::RLIMIT_NOFILE, &wanted) == 0 {
                return wanted.rlim_cur;
            }
        }
        lim.rlim_cur
    }
}

/// Sessions of a run whose event stream said `Expired`.
type ExpiredCount = Arc<AtomicU64>;

async fn open_sessions(
    t: &Target,
    n: u32,
    rec: &mut Recorder,
    expired: &ExpiredCount,
) -> Result<Vec<Session>, CliError> {
    // Session::open is not Send (DNS discovery holds a thread-local rng), so the opens run
    // concurrently on this thread.
    let local = tokio::task::LocalSet::new();
    local
        .run_until(open_sessions_here(t, n, rec, expired))
        .await
}

async fn open_sessions_here(
    t: &Target,
    n: u32,
    rec: &mut Recorder,
    expired: &ExpiredCount,
) -> Result<Vec<Session>, CliError> {
    let gate = Arc::new(Semaphore::new(OPEN_CONCURRENCY));
    let start = Instant::now();
    let mut tasks = Vec::with_capacity(n as usize);
    for _ in 0..n {
        let gate = gate.clone();
        let t = t.clone();
        tasks.push(tokio::task::spawn_local(async move {
            let _permit = gate.acquire_owned().await;
            let began = Instant::now();
            let s = connect::open(&t).await;
            (s, began.elapsed(), began.duration_since(start))
        }));
    }
    let mut sessions = Vec::with_capacity(n as usize);
    let mut first_error = None;
    for task in tasks {
        match task.await {
            Ok((Ok(s), took, at)) => {
                rec.record(took, at);
                // Nobody reads these events, but an unread stream fills up and then holds
                // back the lock grants that arrive as events: drain it.
                if let Some(mut events) = s.events() {
                    let expired = expired.clone();
                    tokio::spawn(async move {
                        while let Some(ev) = events.next().await {
                            if matches!(ev, cldc::core::SessionEvent::Expired) {
                                expired.fetch_add(1, Ordering::Relaxed);
                            }
                        }
                    });
                }
                sessions.push(s);
            }
            Ok((Err(e), _, _)) => {
                first_error.get_or_insert(e);
            }
            Err(_) => {}
        }
    }
    match first_error {
        Some(e) => {
            close_all(sessions).await;
            Err(e)
        }
        None => Ok(sessions),
    }
}

async fn close_all(sessions: Vec<Session>) {
    let closes: Vec<_> = sessions
        .into_iter()
        .map(|s| tokio::spawn(tokio::time::timeout(Duration::from_secs(5), s.close())))
        .collect();
    for c in closes {
        let _ = c.await;
    }
}

fn progress(hidden: bool, total: Duration) -> ProgressBar {
    if hidden {
        ProgressBar::hidden()
    } else {
        let b = ProgressBar::with_draw_target(
            Some(total.as_millis() as u64),
            ProgressDrawTarget::stderr(),
        );
        if let Ok(style) =
            ProgressStyle::with_template("{spinner} [{bar:40}] {elapsed}/{duration} {msg}")
        {
            b.set_style(style.progress_chars("=> "));
        }
        b
    }
}

/// One worker: repeats the workload's operation on its handle until `stop`.
async fn worker(
    workload: Workload,
    h: Handle,
    data: Arc<Vec<u8>>,
    start: Instant,
    stop: Arc<AtomicBool>,
    done: Arc<AtomicU64>,
) -> (Recorder, Handle) {
    let mut rec = Recorder::new();
    while !stop.load(Ordering::Relaxed) {
        let began = Instant::now();
        let r = match workload {
            Workload::Put => h.put(&data).await.map(|_| ()),
            Workload::Get => h.get().await.map(|_| ()),
            Workload::Lock | Workload::LockContended => match h.lock(LockMode::Exclusive).await {
                Ok(_) => h.unlock().await,
                Err(e) => Err(e),
            },
            Workload::IdleSessions => Ok(()),
        };
        match r {
            Ok(()) => {
                let now = Instant::now();
                rec.record(now - began, now - start);
                done.fetch_add(1, Ordering::Relaxed);
            }
            Err(e) => {
                rec.error();
                if crate::error::classify(&e) == crate::error::Exit::Unreachable {
                    break;
                }
            }
        }
    }
    (rec, h)
}

/// Runs the benchmark and prints its report; `--report` also writes the HTML page.
pub async fn run(t: &Target, a: &BenchArgs, json: bool) -> Result<i32, CliError> {
    let dir = resolve("/", &a.dir).map_err(|e| CliError::Usage(format!("--dir: {e}")))?;
    let info = RunInfo {
        workload: a.workload.name().to_string(),
        sessions: a.sessions,
        size: a.size,
        duration_s: a.duration.as_secs_f64(),
    };
    if a.workload == Workload::IdleSessions {
        let limit = raise_open_file_limit();
        let needed = u64::from(a.sessions) + 64;
        if limit != 0 && limit < needed {
            return Err(CliError::Usage(format!(
                "bench: {} sessions need about {needed} open files; the limit is {limit} (ulimit -n)",
                a.sessions
            )));
        }
    }
    let hidden = json || !std::io::IsTerminal::is_terminal(&std::io::stderr());
    if !hidden {
        eprintln!("opening {} sessions...", a.sessions);
    }
    let mut open_rec = Recorder::new();
    let expired = ExpiredCount::default();
    let sessions = open_sessions(t, a.sessions, &mut open_rec, &expired).await?;
    let run_id = format!(
        "{}-{}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_millis())
            .unwrap_or(0)
    );
    let summary = match a.workload {
        Workload::IdleSessions => idle(&sessions, a, info, open_rec, hidden, &expired).await,
        w => busy(w, &sessions, &dir, &run_id, a, info, hidden).await?,
    };
    close_all(sessions).await;
    if json {
        println!(
            "{}",
            serde_json::to_string(&summary).unwrap_or_else(|e| format!("{{\"error\":\"{e}\"}}"))
        );
    } else {
        print!("{}", summary.text());
    }
    if let Some(path) = &a.report {
        std::fs::write(path, report::html(&summary)).map_err(|source| CliError::Local {
            path: path.clone(),
            source,
        })?;
        if !json {
            println!("report written to {}", path.display());
        }
    }
    Ok(0)
}

/// idle-sessions: the "operations" are the session opens; then the sessions are held for
/// the duration and the ones still alive at the end are counted.
async fn idle(
    sessions: &[Session],
    a: &BenchArgs,
    info: RunInfo,
    open_rec: Recorder,
    hidden: bool,
    expired: &ExpiredCount,
) -> stats::Summary {
    let bar = progress(hidden, a.duration);
    bar.set_message(format!("{} sessions held", sessions.len()));
    let start = Instant::now();
    while start.elapsed() < a.duration {
        tokio::time::sleep(Duration::from_millis(200).min(a.duration)).await;
        bar.set_position(start.elapsed().as_millis() as u64);
    }
    bar.finish_and_clear();
    let mut s = open_rec.summary(info, a.duration);
    // A session that lost its lease counts as an error.
    let stats: Vec<_> = sessions.iter().map(|s| s.stats().core).collect();
    let lost = stats.iter().filter(|c| c.jeopardies > 0).count() as u64;
    s.errors += lost;
    s.idle = Some(stats::IdleOutcome {
        jeopardy: lost,
        expired: expired.load(Ordering::Relaxed),
        handshake_restarts: stats.iter().map(|c| c.handshake_restarts).sum(),
    });
    s
}

async fn busy(
    w: Workload,
    sessions: &[Session],
    dir: &str,
    run_id: &str,
    a: &BenchArgs,
    info: RunInfo,
    hidden: bool,
) -> Result<stats::Summary, CliError> {
    let Some(first) = sessions.first() else {
        return Err(CliError::Usage("bench: no session could be opened".into()));
    };
    let h = first
        .open_node(dir, OpenMode::CREATE | OpenMode::DIRECTORY)
        .await
        .map_err(|e| CliError::cell("bench", dir, e))?;
    let _ = h.close().await;
    let data = Arc::new(vec![b'x'; a.size as usize]);
    let mut handles = Vec::with_capacity(sessions.len());
    let mut paths = Vec::new();
    for (i, s) in sessions.iter().enumerate() {
        let (path, mode) = match w {
            Workload::Put | Workload::Get => (
                format!("{dir}/{run_id}-{i}"),
                OpenMode::READ | OpenMode::WRITE | OpenMode::CREATE,
            ),
            Workload::Lock => (
                format!("{dir}/{run_id}-lock-{i}"),
                OpenMode::LOCK | OpenMode::CREATE,
            ),
            _ => (
                format!("{dir}/{run_id}-contended"),
                OpenMode::LOCK | OpenMode::CREATE,
            ),
        };
        let h = s
            .open_node(&path, mode)
            .await
            .map_err(|e| CliError::cell("bench", &path, e))?;
        if w == Workload::Get {
            h.put(&data)
                .await
                .map_err(|e| CliError::cell("bench", &path, e))?;
        }
        if !paths.contains(&path) {
            paths.push(path);
        }
        handles.push(h);
    }
    let stop = Arc::new(AtomicBool::new(false));
    let done = Arc::new(AtomicU64::new(0));
    let start = Instant::now();
    let workers: Vec<_> = handles
        .into_iter()
        .map(|h| {
            tokio::spawn(worker(
                w,
                h,
                data.clone(),
                start,
                stop.clone(),
                done.clone(),
            ))
        })
        .collect();
    let bar = progress(hidden, a.duration);
    while start.elapsed() < a.duration {
        tokio::time::sleep(Duration::from_millis(200).min(a.duration)).await;
        let elapsed = start.elapsed();
        let n = done.load(Ordering::Relaxed);
        bar.set_position(elapsed.as_millis() as u64);
        bar.set_message(format!(
            "{n} ops, {:.0} ops/s",
            n as f64 / elapsed.as_secs_f64().max(1e-3)
        ));
    }
    stop.store(true, Ordering::Relaxed);
    let elapsed = start.elapsed();
    bar.finish_and_clear();
    let mut total = Recorder::new();
    let mut open = Vec::new();
    for wk in workers {
        if let Ok((rec, h)) = wk.await {
            total.merge(&rec);
            open.push(h);
        }
    }
    for h in open {
        let _ = h.close().await;
    }
    for p in &paths {
        let _ = first.delete(p).await;
    }
    Ok(total.summary(info, elapsed))
}
