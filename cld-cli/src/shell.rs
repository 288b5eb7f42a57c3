//! The interactive shell: line editing, history, completion of commands and paths, a prompt
//! with the user and the working directory. Fed from a pipe, it reads commands line by line
//! without prompts (a script of shell commands).

use std::collections::BTreeMap;
use std::io::{BufRead, IsTerminal};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use clap::Parser;
use cldc::Session;
use cldc::core::SessionEvent;
use rustyline::completion::{Completer, Pair};
use rustyline::error::ReadlineError;
use rustyline::highlight::Highlighter;
use rustyline::hint::Hinter;
use rustyline::history::DefaultHistory;
use rustyline::validate::Validator;
use rustyline::{Context, Editor, Helper};
use serde_json::json;
use tokio::runtime::Runtime;
use tokio::sync::broadcast;

use crate::args::{Command, GlobalArgs, SHELL_COMMANDS, ShellCommand, ShellLine, split_words};
use crate::commands::{self, Ctx, ShellState};
use crate::connect;
use crate::error::CliError;
use crate::path::resolve;

/// Prints a failure on stderr: one line, or one JSON object with `--json`.
pub fn report(json: bool, e: &CliError) {
    if json {
        eprintln!(
            "{}",
            json!({"error": e.to_string(), "exit": e.exit().code()})
        );
    } else {
        eprintln!("cldcli: {e}");
    }
}

/// The prompt: `user@cld:/cwd> `.
pub fn prompt(user: &str, cwd: &str) -> String {
    format!("{user}@cld:{cwd}> ")
}

/// Completes the word before `pos`: command names for the first word, otherwise the names in
/// the directory the word points into, listed by `list` (children with `/` for directories).
pub fn complete_word(
    line: &str,
    pos: usize,
    cwd: &str,
    list: impl FnOnce(&str) -> Vec<(String, bool)>,
) -> (usize, Vec<String>) {
    let before = &line[..pos];
    let start = before.rfind(char::is_whitespace).map_or(0, |i| i + 1);
    let word = &before[start..];
    if before[..start].trim().is_empty() {
        let names = SHELL_COMMANDS
            .iter()
            .filter(|c| c.starts_with(word))
            .map(|c| format!("{c} "))
            .collect();
        return (start, names);
    }
    if word.starts_with('-') {
        return (start, Vec::new());
    }
    let (dir_part, prefix) = match word.rfind('/') {
        Some(i) => (&word[..=i], &word[i + 1..]),
        None => ("", word),
    };
    let Ok(dir) = resolve(cwd, if dir_part.is_empty() { "." } else { dir_part }) else {
        return (start, Vec::new());
    };
    let names = list(&dir)
        .into_iter()
        .filter(|(name, _)| name.starts_with(prefix))
        .map(|(name, is_dir)| format!("{dir_part}{name}{}", if is_dir { "/" } else { " " }))
        .collect();
    (start, names)
}

struct ShellHelper {
    session: Arc<Session>,
    rt: tokio::runtime::Handle,
    cwd: Arc<Mutex<String>>,
}

impl Completer for ShellHelper {
    type Candidate = Pair;

    fn complete(
        &self,
        line: &str,
        pos: usize,
        _ctx: &Context<'_>,
    ) -> rustyline::Result<(usize, Vec<Pair>)> {
        let cwd = self
            .cwd
            .lock()
            .map(|c| c.clone())
            .unwrap_or_else(|_| "/".into());
        let (start, words) = complete_word(line, pos, &cwd, |dir| {
            // The timer must be made inside the runtime: build it in the async block.
            let listing = self.rt.block_on(async {
                tokio::time::timeout(Duration::from_secs(1), self.session.list(dir)).await
            });
            match listing {
                Ok(Ok(entries)) => entries
                    .into_iter()
                    .map(|e| {
                        let d = e.meta.flags.contains(cldc::proto::NodeFlags::DIRECTORY);
                        (e.name, d)
                    })
                    .collect(),
                _ => Vec::new(),
            }
        });
        let pairs = words
            .into_iter()
            .map(|w| Pair {
                display: w.trim_end().to_string(),
                replacement: w,
            })
            .collect();
        Ok((start, pairs))
    }
}

impl Hinter for ShellHelper {
    type Hint = String;
}
impl Highlighter for ShellHelper {}
impl Validator for ShellHelper {}
impl Helper for ShellHelper {}

fn history_file() -> Option<std::path::PathBuf> {
    if let Some(p) = std::env::var_os("CLDCLI_HISTORY") {
        return Some(p.into());
    }
    std::env::var_os("HOME").map(|h| std::path::Path::new(&h).join(".cldcli_history"))
}

enum Input {
    Editor(Box<Editor<ShellHelper, DefaultHistory>>),
    Lines(std::io::StdinLock<'static>),
}

impl Input {
    /// The next line; `None` at the end of input.
    fn next(&mut self, prompt: &str) -> Option<String> {
        match self {
            Input::Editor(ed) => loop {
                match ed.readline(prompt) {
                    Ok(line) => {
                        if !line.trim().is_empty() {
                            let _ = ed.add_history_entry(line.as_str());
                        }
                        return Some(line);
                    }
                    // Ctrl-C abandons the line, as in bash.
                    Err(ReadlineError::Interrupted) => continue,
                    Err(_) => return None,
                }
            },
            Input::Lines(stdin) => {
                let mut line = String::new();
                match stdin.read_line(&mut line) {
                    Ok(0) | Err(_) => None,
                    Ok(_) => Some(line),
                }
            }
        }
    }
}

/// Runs the shell until `exit` or the end of input. Returns the status of the last command
/// (so a piped script's failure shows in `$?`).
pub fn run(rt: &Runtime, g: &GlobalArgs) -> Result<i32, CliError> {
    let target = connect::target(g)?;
    let session = Arc::new(rt.block_on(connect::open(&target))?);
    let (tx, _) = broadcast::channel(1024);
    if let Some(mut events) = session.events() {
        let feed = tx.clone();
        rt.spawn(async move {
            while let Some(ev) = events.next().await {
                match ev {
                    SessionEvent::Jeopardy => eprintln!(
                        "cldcli: session in jeopardy: no answer from the cell; locks held by this shell may be lost"
                    ),
                    SessionEvent::Safe => eprintln!("cldcli: session safe again"),
                    SessionEvent::Expired => eprintln!(
                        "cldcli: session expired: this shell's locks and ephemeral files are gone; restart the shell"
                    ),
                    _ => {}
                }
                let _ = feed.send(ev);
            }
        });
    }
    let mut state = ShellState {
        locks: BTreeMap::new(),
        events: tx,
    };
    let cwd = Arc::new(Mutex::new("/".to_string()));
    let interactive = std::io::stdin().is_terminal();
    let history = history_file();
    let mut input = if interactive {
        let mut ed = Editor::<ShellHelper, DefaultHistory>::new()
            .map_err(|e| CliError::Usage(format!("cannot start the line editor: {e}")))?;
        ed.set_helper(Some(ShellHelper {
            session: session.clone(),
            rt: rt.handle().clone(),
            cwd: cwd.clone(),
        }));
        if let Some(h) = &history {
            let _ = ed.load_history(h);
        }
        Input::Editor(Box::new(ed))
    } else {
        Input::Lines(std::io::stdin().lock())
    };
    let mut status = 0;
    loop {
        let here = cwd.lock().map(|c| c.clone()).unwrap_or_else(|_| "/".into());
        let Some(line) = input.next(&prompt(&target.user, &here)) else {
            break;
        };
        let words = match split_words(&line) {
            Ok(w) => w,
            Err(e) => {
                report(g.json, &CliError::Usage(e));
                status = 2;
                continue;
            }
        };
        if words.is_empty() || words[0].starts_with('#') {
            continue;
        }
        let parsed = match ShellLine::try_parse_from(&words) {
            Ok(p) => p,
            Err(e) => {
                let _ = e.print();
                status = e.exit_code();
                continue;
            }
        };
        let result = match parsed.command {
            ShellCommand::Exit => break,
            ShellCommand::Pwd => {
                commands::emit(g.json, &here, json!({"cwd": here}));
                Ok(0)
            }
            ShellCommand::Common(Command::Bench(args)) => {
                rt.block_on(crate::bench::run(&target, &args, g.json))
            }
            ShellCommand::Common(cmd) => {
                let mut ctx = Ctx {
                    session: &session,
                    cwd: here,
                    json: g.json,
                    shell: Some(&mut state),
                    events: None,
                };
                let r = rt.block_on(commands::run(&mut ctx, cmd));
                if let Ok(mut c) = cwd.lock() {
                    *c = ctx.cwd;
                }
                r
            }
        };
        status = match result {
            Ok(code) => code,
            Err(e) => {
                report(g.json, &e);
                i32::from(e.exit().code())
            }
        };
    }
    if let (Input::Editor(ed), Some(h)) = (&mut input, &history) {
        let _ = ed.save_history(h);
    }
    drop(input);
    drop(state);
    if let Ok(session) = Arc::try_unwrap(session) {
        let limit = g.timeout.min(Duration::from_secs(2));
        let _ = rt.block_on(async { tokio::time::timeout(limit, session.close()).await });
    }
    Ok(status)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn listing(dir: &str) -> Vec<(String, bool)> {
        match dir {
            "/" => vec![("apps".into(), true), ("readme".into(), false)],
            "/apps" => vec![("db".into(), true), ("web".into(), true)],
            _ => Vec::new(),
        }
    }

    #[test]
    fn the_first_word_completes_command_names() {
        let (start, names) = complete_word("lo", 2, "/", |_| panic!("no listing"));
        assert_eq!(start, 0);
        assert_eq!(names, vec!["lock ", "locks "]);
    }

    #[test]
    fn later_words_complete_paths_relative_to_the_cwd() {
        let (start, names) = complete_word("cat r", 5, "/", listing);
        assert_eq!(start, 4);
        assert_eq!(names, vec!["readme "]);
        let (_, names) = complete_word("ls apps/w", 9, "/", listing);
        assert_eq!(names, vec!["apps/web/"]);
        let (_, names) = complete_word("ls ", 3, "/apps", listing);
        assert_eq!(names, vec!["db/", "web/"]);
        let (_, names) = complete_word("ls /apps/", 9, "/elsewhere", listing);
        assert_eq!(names, vec!["/apps/db/", "/apps/web/"]);
    }

    #[test]
    fn options_are_not_completed_as_paths() {
        let (_, names) = complete_word("ls -", 4, "/", |_| panic!("no listing"));
        assert!(names.is_empty());
    }

    #[test]
    fn the_prompt_shows_user_and_cwd() {
        assert_eq!(prompt("dev", "/a/b"), "dev@cld:/a/b> ");
    }
}
