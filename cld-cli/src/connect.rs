//! From the global options to an open [`cldc::Session`].

use std::net::{SocketAddr, ToSocketAddrs};

use cldc::dns::SrvQuery;
use cldc::proto::CellPublicKey;
use cldc::{Cell, Credentials, Session, SessionOptions};

use crate::args::GlobalArgs;
use crate::duration::show_duration;
use crate::error::CliError;

/// Everything needed to open sessions, checked once (bench opens many).
#[derive(Clone)]
pub struct Target {
    /// Where the cell is.
    pub cell: Cell,
    /// Who we are.
    pub credentials: Credentials,
    /// Session tunables (cell key, call timeout).
    pub options: SessionOptions,
    /// The user name (for the shell's prompt).
    pub user: String,
}

/// Checks the global options: a cell (`--cell` or `--domain`), a cell key, a user and
/// exactly one secret. Every problem is a usage error naming the option.
pub fn target(g: &GlobalArgs) -> Result<Target, CliError> {
    let usage = |m: String| CliError::Usage(m);
    let cell = match (g.cell.is_empty(), &g.domain) {
        (false, Some(_)) => {
            return Err(usage(
                "give either --cell (CLD_CELL) or --domain (CLD_DOMAIN), not both".into(),
            ));
        }
        (true, None) => {
            return Err(usage(
                "no cell given: use --cell ADDR[,ADDR...] or --domain DOMAIN (or CLD_CELL / CLD_DOMAIN)"
                    .into(),
            ));
        }
        (false, None) => Cell::Members(members(&g.cell)?),
        (true, Some(domain)) => {
            let mut q = SrvQuery::new(domain);
            if let Some(ns) = g.dns_server {
                q = q.with_name_server(ns);
            }
            Cell::Srv(q)
        }
    };
    let key_text = g.cell_key.as_deref().ok_or_else(|| {
        usage(
            "no cell key given: use --cell-key BASE64 (or CLD_CELL_KEY; `cld keygen` prints it)"
                .into(),
        )
    })?;
    let cell_key =
        CellPublicKey::from_base64(key_text).map_err(|e| usage(format!("--cell-key: {e}")))?;
    let user = g
        .user
        .as_deref()
        .ok_or_else(|| usage("no user given: use --user NAME (or CLD_USER)".into()))?;
    let credentials = match (&g.secret, &g.secret_file) {
        (Some(_), Some(_)) => {
            return Err(usage(
                "give either --secret (CLD_SECRET) or --secret-file (CLD_SECRET_FILE), not both"
                    .into(),
            ));
        }
        (None, None) => {
            return Err(usage(
                "no secret given: use --secret-file FILE (or --secret, CLD_SECRET_FILE, CLD_SECRET)"
                    .into(),
            ));
        }
        (Some(s), None) => Credentials::new(user, s.as_bytes())
            .map_err(|e| usage(format!("--user/--secret: {e}")))?,
        (None, Some(file)) => {
            // read_secret checks the file's mode and the secret's length; cldc keeps the
            // bytes private, so the same text is read again for the credentials.
            cldc::keyfile::read_secret(file).map_err(|e| usage(format!("--secret-file: {e}")))?;
            let text = std::fs::read_to_string(file)
                .map_err(|e| usage(format!("--secret-file: {}: {e}", file.display())))?;
            let t = text.strip_suffix('\n').unwrap_or(&text);
            let t = t.strip_suffix('\r').unwrap_or(t);
            Credentials::new(user, t.as_bytes())
                .map_err(|e| usage(format!("--user/--secret-file: {e}")))?
        }
    };
    let options = SessionOptions {
        cell_key: Some(cell_key),
        call_timeout: g.timeout,
        ..SessionOptions::default()
    };
    Ok(Target {
        cell,
        credentials,
        options,
        user: user.to_string(),
    })
}

/// Resolves `HOST:PORT` words to addresses (each word's first address).
fn members(words: &[String]) -> Result<Vec<SocketAddr>, CliError> {
    let mut out = Vec::new();
    for w in words {
        let w = w.trim();
        if w.is_empty() {
            continue;
        }
        let addr = match w.parse::<SocketAddr>() {
            Ok(a) => a,
            Err(_) => w
                .to_socket_addrs()
                .ok()
                .and_then(|mut a| a.next())
                .ok_or_else(|| CliError::Usage(format!("--cell: {w:?} is not HOST:PORT")))?,
        };
        out.push(addr);
    }
    if out.is_empty() {
        return Err(CliError::Usage("--cell: no addresses given".into()));
    }
    Ok(out)
}

/// The cell for messages: its addresses, or the SRV name looked up.
pub fn describe(cell: &Cell) -> String {
    match cell {
        Cell::Members(m) => m
            .iter()
            .map(|a| a.to_string())
            .collect::<Vec<_>>()
            .join(","),
        Cell::Srv(q) => q.srv_name(),
    }
}

/// Opens a session, giving up after the call timeout (plus DNS time) with exit status 3.
pub async fn open(t: &Target) -> Result<Session, CliError> {
    // The session's own call timeout bounds the handshake; this outer bound also covers DNS
    // discovery and a cell that answers nothing at all.
    let limit = t.options.call_timeout + std::time::Duration::from_secs(5);
    match tokio::time::timeout(
        limit,
        Session::open(t.cell.clone(), t.credentials.clone(), t.options.clone()),
    )
    .await
    {
        Ok(Ok(s)) => Ok(s),
        Ok(Err(e)) => Err(CliError::Connect {
            cell: describe(&t.cell),
            source: e,
        }),
        Err(_) => Err(CliError::TimedOut {
            op: "open session",
            timeout: show_duration(limit),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    const KEY: &str = "1R2sOe2e6mmYq6cjMYCVswnEC9v8R/cTYJGvKZfG+R4=";
    const SECRET: &str = "Yx3m0PqzV6cXW1bq8f2nT5rJ9kLhA4sDgE7uZoNiRtc";

    fn global(args: &[&str]) -> GlobalArgs {
        crate::args::Cli::try_parse_from(std::iter::once("cldcli").chain(args.iter().copied()))
            .unwrap()
            .global
    }

    fn message(r: Result<Target, CliError>) -> String {
        match r {
            Ok(_) => panic!("accepted"),
            Err(e) => {
                assert_eq!(e.exit().code(), 2, "{e}");
                e.to_string()
            }
        }
    }

    #[test]
    fn a_complete_command_line_gives_a_target() {
        let g = global(&[
            "--cell",
            "127.0.0.1:7001,localhost:7002",
            "--cell-key",
            KEY,
            "--user",
            "dev",
            "--secret",
            SECRET,
            "--timeout",
            "3s",
        ]);
        let t = target(&g).unwrap();
        match t.cell {
            Cell::Members(m) => assert_eq!(m.len(), 2),
            other => panic!("{other:?}"),
        }
        assert_eq!(t.options.call_timeout, std::time::Duration::from_secs(3));
        assert_eq!(t.user, "dev");
    }

    #[test]
    fn a_domain_gives_an_srv_query_through_the_given_server() {
        let g = global(&[
            "--domain",
            "cell.example",
            "--dns-server",
            "127.0.0.1:5353",
            "--cell-key",
            KEY,
            "--user",
            "dev",
            "--secret",
            SECRET,
        ]);
        match target(&g).unwrap().cell {
            Cell::Srv(q) => {
                assert_eq!(q.srv_name(), "_cld._udp.cell.example.");
                assert_eq!(q.name_server, Some("127.0.0.1:5353".parse().unwrap()));
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn each_missing_or_bad_option_is_named() {
        let m = message(target(&global(&["--user", "dev"])));
        assert!(m.contains("no cell given"), "{m}");
        let m = message(target(&global(&["--cell", "nonsense", "--cell-key", KEY])));
        assert!(m.contains("--cell: \"nonsense\""), "{m}");
        let m = message(target(&global(&["--cell", "127.0.0.1:1"])));
        assert!(m.contains("no cell key"), "{m}");
        let m = message(target(&global(&[
            "--cell",
            "127.0.0.1:1",
            "--cell-key",
            "abc",
        ])));
        assert!(m.contains("--cell-key"), "{m}");
        let m = message(target(&global(&[
            "--cell",
            "127.0.0.1:1",
            "--cell-key",
            KEY,
        ])));
        assert!(m.contains("no user"), "{m}");
        let m = message(target(&global(&[
            "--cell",
            "127.0.0.1:1",
            "--cell-key",
            KEY,
            "--user",
            "dev",
        ])));
        assert!(m.contains("no secret"), "{m}");
        let m = message(target(&global(&[
            "--cell",
            "127.0.0.1:1",
            "--cell-key",
            KEY,
            "--user",
            "dev",
            "--secret",
            "short",
        ])));
        assert!(m.contains("--secret"), "{m}");
        let m = message(target(&global(&[
            "--cell",
            "127.0.0.1:1",
            "--domain",
            "x",
            "--cell-key",
            KEY,
        ])));
        assert!(m.contains("not both"), "{m}");
        let m = message(target(&global(&[
            "--cell",
            "127.0.0.1:1",
            "--cell-key",
            KEY,
            "--user",
            "dev",
            "--secret-file",
            "/nonexistent/secret",
        ])));
        assert!(m.contains("--secret-file"), "{m}");
    }
}
