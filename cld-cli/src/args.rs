//! The command line: global options (each also read from a `CLD_*` variable) and the
//! commands, shared by one-shot use and the interactive shell.

use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand, ValueEnum};

use crate::duration::parse_duration;

const AFTER_HELP: &str = "\
Without a COMMAND, cldcli starts an interactive shell (history, completion, `cd`).

Exit status: 0 success; 1 the cell answered with an error (or a local file failed);
2 usage error; 3 cell unreachable or timed out; 4 lock held elsewhere (`lock --try`);
5 stale sequencer (`check-seq`); 6 the lock was lost while COMMAND ran (`lock -- COMMAND`);
otherwise `lock -- COMMAND` exits with COMMAND's own status (128+N if signal N ended it).

`--secret` shows in the process list (`ps`) to every user of the machine: prefer
`--secret-file` (mode 0600). For a `cld dev --dir D` cell: --cell (the `client` addresses in
D/cell.toml) --cell-key \"$(cat D/cell.pub)\" --user dev --secret-file D/dev.secret.";

/// `cldcli`: look around a CLD cell, lock in scripts, see who is master, measure a cell.
#[derive(Parser, Debug)]
#[command(name = "cldcli", version, about, after_help = AFTER_HELP)]
pub struct Cli {
    /// How to reach the cell and who you are.
    #[command(flatten)]
    pub global: GlobalArgs,
    /// The command; none starts the shell.
    #[command(subcommand)]
    pub command: Option<Command>,
}

/// Options every command takes.
#[derive(Args, Debug, Clone)]
pub struct GlobalArgs {
    /// The cell's members' client addresses (HOST:PORT, comma-separated).
    #[arg(
        long,
        env = "CLD_CELL",
        value_delimiter = ',',
        value_name = "ADDR[,ADDR...]"
    )]
    pub cell: Vec<String>,
    /// Find the members from DNS SRV records `_cld._udp.DOMAIN` instead of --cell.
    #[arg(long, env = "CLD_DOMAIN", value_name = "DOMAIN")]
    pub domain: Option<String>,
    /// The DNS server for --domain (default: /etc/resolv.conf).
    #[arg(long, env = "CLD_DNS_SERVER", value_name = "IP:PORT")]
    pub dns_server: Option<std::net::SocketAddr>,
    /// The cell's public key (base64, as `cld keygen` or `cld dev` prints it).
    #[arg(long, env = "CLD_CELL_KEY", value_name = "BASE64")]
    pub cell_key: Option<String>,
    /// The user name.
    #[arg(long, env = "CLD_USER", value_name = "NAME")]
    pub user: Option<String>,
    /// The user's secret. Visible in the process list: prefer --secret-file.
    #[arg(
        long,
        env = "CLD_SECRET",
        hide_env_values = true,
        value_name = "SECRET"
    )]
    pub secret: Option<String>,
    /// A file holding the user's secret (must not be readable by group or others).
    #[arg(long, env = "CLD_SECRET_FILE", value_name = "FILE")]
    pub secret_file: Option<PathBuf>,
    /// How long to wait for the cell to answer one call (or to open the session).
    #[arg(long, env = "CLD_TIMEOUT", default_value = "10s", value_parser = parse_duration, value_name = "DURATION")]
    pub timeout: Duration,
    /// Print machine-readable JSON (one object per result or event; errors too, on stderr).
    #[arg(long, global = true)]
    pub json: bool,
}

/// A command, one-shot or typed in the shell.
#[derive(Subcommand, Debug, Clone, PartialEq)]
pub enum Command {
    /// List a directory (default: the current one).
    Ls {
        /// Long format: kind, size, generations, modify time.
        #[arg(short = 'l')]
        long: bool,
        /// The directory.
        dir: Option<String>,
    },
    /// Show a node's metadata.
    Stat {
        /// The node.
        path: String,
    },
    /// Print a file's contents.
    Cat {
        /// The file.
        path: String,
    },
    /// Write a file (created if missing) from VALUE, or from stdin without VALUE.
    Put {
        /// Write only if the file's content generation is still G (compare-and-swap).
        #[arg(long, value_name = "G")]
        if_generation: Option<u64>,
        /// The file.
        path: String,
        /// The new contents.
        value: Option<String>,
    },
    /// Copy a local file into the cell.
    Cpin {
        /// The local file.
        local: PathBuf,
        /// The cell path.
        path: String,
    },
    /// Copy a file out of the cell into a local file.
    Cpout {
        /// The cell path.
        path: String,
        /// The local file.
        local: PathBuf,
    },
    /// Create a directory.
    Mkdir {
        /// Create missing parents too, and do not fail if it exists.
        #[arg(short = 'p')]
        parents: bool,
        /// The directory.
        dir: String,
    },
    /// Delete a file or an empty directory.
    Rm {
        /// The node.
        path: String,
    },
    /// Create a file if missing; `--ephemeral` makes it live only as long as the session.
    Touch {
        /// Delete the file when this session ends (useful in the shell).
        #[arg(long)]
        ephemeral: bool,
        /// The file.
        path: String,
    },
    /// Take a lock. One-shot: `lock PATH -- COMMAND...` runs COMMAND while holding it.
    /// In the shell without COMMAND: hold it until `unlock`.
    ///
    /// `cldcli lock PATH -- COMMAND [ARGS...]` creates PATH if needed, waits for the lock
    /// (exclusive unless --shared; with --try exit 4 at once if it is held elsewhere), then
    /// runs COMMAND in its own process group with the lock's sequencer in CLD_SEQUENCER (one
    /// line; `cldcli check-seq` takes it). When COMMAND exits the lock is released and
    /// cldcli exits with COMMAND's status (128+N if signal N ended it). SIGINT, SIGTERM and
    /// SIGHUP are passed on to COMMAND's group.
    ///
    /// If the lock may be lost while COMMAND runs (the session is in jeopardy because the
    /// cell did not renew its lease in time, the session expired, or the node was deleted),
    /// COMMAND's whole process group gets SIGTERM at once and SIGKILL 500 ms later, both
    /// before the cell could grant the lock to anyone else (docs/cldcli.md derives the
    /// bound), and cldcli exits 6.
    Lock {
        /// A shared lock instead of an exclusive one.
        #[arg(long)]
        shared: bool,
        /// Do not wait: exit 4 if the lock is held elsewhere.
        #[arg(long = "try")]
        try_only: bool,
        /// The node's lock-delay (set when this command creates the node): after a holder's
        /// session expires, nobody gets the lock for D.
        #[arg(long, value_parser = parse_duration, value_name = "D")]
        lock_delay: Option<Duration>,
        /// The node (created if missing).
        path: String,
        /// The command to run while holding the lock (after `--`).
        #[arg(last = true, value_name = "COMMAND")]
        command: Vec<String>,
    },
    /// Shell: take a lock if it is free (fails if held elsewhere).
    Trylock {
        /// A shared lock instead of an exclusive one.
        #[arg(long)]
        shared: bool,
        /// The node (created if missing).
        path: String,
    },
    /// Shell: release a lock this shell holds.
    Unlock {
        /// The node.
        path: String,
    },
    /// Shell: the locks this shell holds.
    Locks,
    /// Shell: print the sequencer of a lock this shell holds.
    Seq {
        /// The node.
        path: String,
    },
    /// Check a sequencer: exit 0 if its lock is still held, 5 if stale.
    CheckSeq {
        /// The sequencer text (as in CLD_SEQUENCER).
        sequencer: String,
    },
    /// Print a node's events as they arrive, until interrupted.
    Watch {
        /// The node (a file or a directory).
        path: String,
    },
    /// Shell: change the working directory.
    Cd {
        /// The directory (default /).
        dir: Option<String>,
    },
    /// The cell's members, master, epoch, indexes, sessions and counters.
    Status,
    /// Measure the cell: N sessions run a workload for a duration.
    Bench(BenchArgs),
}

/// The benchmark's workloads.
#[derive(ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum Workload {
    /// Each session writes its own file.
    Put,
    /// Each session reads its own file.
    Get,
    /// Each session locks and unlocks its own node.
    Lock,
    /// Every session locks and unlocks one shared node (waiting in its queue).
    LockContended,
    /// Sessions that only keep alive (the cost of holding many sessions).
    IdleSessions,
}

impl Workload {
    /// The name as typed.
    pub fn name(self) -> &'static str {
        match self {
            Workload::Put => "put",
            Workload::Get => "get",
            Workload::Lock => "lock",
            Workload::LockContended => "lock-contended",
            Workload::IdleSessions => "idle-sessions",
        }
    }
}

/// `bench` options.
#[derive(Args, Debug, Clone, PartialEq)]
pub struct BenchArgs {
    /// What each session does.
    #[arg(long, value_enum)]
    pub workload: Workload,
    /// How many sessions.
    #[arg(long, default_value_t = 8, value_parser = clap::value_parser!(u32).range(1..=100_000))]
    pub sessions: u32,
    /// How long to run (after all sessions are open).
    #[arg(long, default_value = "10s", value_parser = parse_duration)]
    pub duration: Duration,
    /// File size for put/get.
    #[arg(long, default_value_t = 100, value_parser = clap::value_parser!(u32).range(0..=262_144))]
    pub size: u32,
    /// Where the benchmark's nodes go.
    #[arg(long, default_value = "/bench")]
    pub dir: String,
    /// Write a self-contained HTML page with the latency histogram and throughput over time.
    #[arg(long, value_name = "FILE.html")]
    pub report: Option<PathBuf>,
}

/// A line typed in the shell: a [`Command`] or a shell builtin.
#[derive(Parser, Debug)]
#[command(no_binary_name = true, disable_version_flag = true, name = "")]
pub struct ShellLine {
    /// What to do.
    #[command(subcommand)]
    pub command: ShellCommand,
}

/// The shell's commands.
#[derive(Subcommand, Debug, Clone, PartialEq)]
pub enum ShellCommand {
    /// A command that also works one-shot.
    #[command(flatten)]
    Common(Command),
    /// Print the working directory.
    Pwd,
    /// Leave the shell (ends the session: its locks and ephemeral nodes go).
    #[command(alias = "quit")]
    Exit,
}

/// The names the shell completes.
pub const SHELL_COMMANDS: &[&str] = &[
    "bench",
    "cat",
    "cd",
    "check-seq",
    "cpin",
    "cpout",
    "exit",
    "help",
    "lock",
    "locks",
    "ls",
    "mkdir",
    "put",
    "pwd",
    "quit",
    "rm",
    "seq",
    "stat",
    "status",
    "touch",
    "trylock",
    "unlock",
    "watch",
];

/// Commands that only make sense inside the shell.
pub fn shell_only(cmd: &Command) -> Option<&'static str> {
    match cmd {
        Command::Cd { .. } => Some("cd"),
        Command::Trylock { .. } => Some("trylock"),
        Command::Unlock { .. } => Some("unlock"),
        Command::Locks => Some("locks"),
        Command::Seq { .. } => Some("seq"),
        Command::Touch {
            ephemeral: true, ..
        } => Some("touch --ephemeral"),
        Command::Lock { command, .. } if command.is_empty() => Some("lock without -- COMMAND"),
        _ => None,
    }
}

/// Splits a shell line into words: whitespace separates; '...' and "..." quote; a backslash
/// escapes the next character (outside single quotes).
pub fn split_words(line: &str) -> Result<Vec<String>, String> {
    let mut words = Vec::new();
    let mut word = String::new();
    let mut in_word = false;
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        match c {
            '\'' => {
                in_word = true;
                loop {
                    match chars.next() {
                        Some('\'') => break,
                        Some(c) => word.push(c),
                        None => return Err("unterminated ' quote".into()),
                    }
                }
            }
            '"' => {
                in_word = true;
                loop {
                    match chars.next() {
                        Some('"') => break,
                        Some('\\') => match chars.next() {
                            Some(c) => word.push(c),
                            None => return Err("backslash at the end of the line".into()),
                        },
                        Some(c) => word.push(c),
                        None => return Err("unterminated \" quote".into()),
                    }
                }
            }
            '\\' => match chars.next() {
                Some(c) => {
                    in_word = true;
                    word.push(c);
                }
                None => return Err("backslash at the end of the line".into()),
            },
            c if c.is_whitespace() => {
                if in_word {
                    words.push(std::mem::take(&mut word));
                    in_word = false;
                }
            }
            c => {
                in_word = true;
                word.push(c);
            }
        }
    }
    if in_word {
        words.push(word);
    }
    Ok(words)
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    fn parse(args: &[&str]) -> Result<Cli, clap::Error> {
        Cli::try_parse_from(std::iter::once("cldcli").chain(args.iter().copied()))
    }

    #[test]
    fn the_clap_definition_is_consistent() {
        Cli::command().debug_assert();
        ShellLine::command().debug_assert();
    }

    #[test]
    fn global_options_parse_with_a_comma_separated_cell() {
        let cli = parse(&[
            "--cell",
            "127.0.0.1:1,127.0.0.1:2",
            "--user",
            "alice",
            "--timeout",
            "2s",
            "--json",
            "ls",
        ])
        .unwrap();
        assert_eq!(cli.global.cell, vec!["127.0.0.1:1", "127.0.0.1:2"]);
        assert_eq!(cli.global.user.as_deref(), Some("alice"));
        assert_eq!(cli.global.timeout, Duration::from_secs(2));
        assert!(cli.global.json);
        assert_eq!(
            cli.command,
            Some(Command::Ls {
                long: false,
                dir: None
            })
        );
    }

    #[test]
    fn json_is_accepted_after_the_command_too() {
        let cli = parse(&["status", "--json"]).unwrap();
        assert!(cli.global.json);
    }

    #[test]
    fn lock_takes_its_command_after_the_double_dash() {
        let cli = parse(&[
            "lock",
            "--try",
            "--shared",
            "--lock-delay",
            "2s",
            "/l",
            "--",
            "sh",
            "-c",
            "echo hi",
        ])
        .unwrap();
        assert_eq!(
            cli.command,
            Some(Command::Lock {
                shared: true,
                try_only: true,
                lock_delay: Some(Duration::from_secs(2)),
                path: "/l".into(),
                command: vec!["sh".into(), "-c".into(), "echo hi".into()],
            })
        );
    }

    #[test]
    fn put_takes_a_cas_generation_and_an_optional_value() {
        let cli = parse(&["put", "--if-generation", "3", "/f"]).unwrap();
        assert_eq!(
            cli.command,
            Some(Command::Put {
                if_generation: Some(3),
                path: "/f".into(),
                value: None
            })
        );
    }

    #[test]
    fn bad_usage_is_a_clap_error_with_status_2() {
        let e = parse(&["put"]).unwrap_err();
        assert_eq!(e.exit_code(), 2);
        let e = parse(&["bench", "--workload", "nope"]).unwrap_err();
        assert_eq!(e.exit_code(), 2);
        let e = parse(&["--timeout", "soon", "ls"]).unwrap_err();
        assert_eq!(e.exit_code(), 2);
    }

    #[test]
    fn bench_defaults_and_bounds() {
        let cli = parse(&["bench", "--workload", "lock-contended"]).unwrap();
        let Some(Command::Bench(b)) = cli.command else {
            panic!("bench")
        };
        assert_eq!(b.workload, Workload::LockContended);
        assert_eq!(b.sessions, 8);
        assert!(parse(&["bench", "--workload", "put", "--sessions", "0"]).is_err());
        assert!(parse(&["bench", "--workload", "put", "--size", "300000"]).is_err());
    }

    #[test]
    fn shell_lines_parse_builtins_and_common_commands() {
        let line = ShellLine::try_parse_from(["cd", ".."]).unwrap();
        assert_eq!(
            line.command,
            ShellCommand::Common(Command::Cd {
                dir: Some("..".into())
            })
        );
        let line = ShellLine::try_parse_from(["quit"]).unwrap();
        assert_eq!(line.command, ShellCommand::Exit);
        assert!(ShellLine::try_parse_from(["frobnicate"]).is_err());
    }

    #[test]
    fn shell_only_commands_are_named() {
        assert_eq!(shell_only(&Command::Locks), Some("locks"));
        assert_eq!(
            shell_only(&Command::Touch {
                ephemeral: true,
                path: "/x".into()
            }),
            Some("touch --ephemeral")
        );
        assert_eq!(shell_only(&Command::Status), None);
    }

    #[test]
    fn completion_list_names_every_subcommand() {
        for sub in ShellLine::command().get_subcommands() {
            assert!(
                SHELL_COMMANDS.contains(&sub.get_name()),
                "{} missing from SHELL_COMMANDS",
                sub.get_name()
            );
        }
    }

    #[test]
    fn words_split_on_whitespace_and_respect_quotes() {
        assert_eq!(
            split_words(r#"put /a "hello world"  'x y' a\ b"#).unwrap(),
            vec!["put", "/a", "hello world", "x y", "a b"]
        );
        assert_eq!(split_words("  ").unwrap(), Vec::<String>::new());
        assert_eq!(split_words("put /a ''").unwrap(), vec!["put", "/a", ""]);
        assert!(split_words("put 'x").is_err());
        assert!(split_words("put \\").is_err());
    }
}
