//! cldc's async-API test bodies (`cldc/tests/support/api_bodies.rs`, the list in
//! `session_api_bodies!`) against a real in-process cell: three members with the client
//! front end on loopback UDP, on the real clock. The same bodies run against cldc's scripted
//! fake cell in `cldc/tests/session_api.rs`; the tests that script that cell's faults stay
//! there only (its header lists them and why).
//!
//! One cell serves every body (each works in a directory of its own), one body after the
//! other so that a body's request count is its own; a failing body is named and the others
//! still run.

mod fe_support;

#[path = "../../cldc/tests/support/api_bodies.rs"]
mod api_bodies;

use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, Instant};

use api_bodies::TestCell;
use cldc::{Credentials, SessionOptions};
use fe_support::{Cell, USER, USER_SECRET};

/// A real cell as the bodies see it.
struct RealCell(Cell);

impl TestCell for RealCell {
    fn members(&self) -> Vec<SocketAddr> {
        self.0.clients.clone()
    }

    fn options(&self) -> SessionOptions {
        self.0.options()
    }

    fn credentials(&self) -> Credentials {
        Credentials::new(USER, USER_SECRET.as_bytes()).expect("valid credentials")
    }

    fn requests_handled(&self) -> u64 {
        self.0.counter("requests_proposed") + self.0.counter("reads_answered")
    }
}

type Body = fn(Arc<RealCell>) -> Pin<Box<dyn Future<Output = ()> + Send>>;

/// Every shared body, by name.
macro_rules! on_the_real_cell {
    ($($body:ident),* $(,)?) => {
        fn bodies() -> Vec<(&'static str, Body)> {
            vec![$((stringify!($body), |cell: Arc<RealCell>| {
                Box::pin(async move { api_bodies::$body(&*cell).await })
                    as Pin<Box<dyn Future<Output = ()> + Send>>
            })),*]
        }
    };
}

session_api_bodies!(on_the_real_cell);

#[test]
fn the_session_api_bodies_pass_against_a_real_three_member_cell() {
    let cell = Arc::new(RealCell(Cell::start("cldc-api", 3, "")));
    cell.0.wait_master(Duration::from_secs(10));
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let mut failed = Vec::new();
    let bodies = bodies();
    assert!(bodies.len() >= 13, "the shared bodies: {}", bodies.len());
    for (name, body) in bodies {
        let started = Instant::now();
        // A body runs as a task, so a failing one (a panic) is reported and the rest run.
        let outcome = rt.block_on(rt.spawn(body(cell.clone())));
        eprintln!(
            "{name}: {} in {:?}",
            if outcome.is_ok() { "ok" } else { "FAILED" },
            started.elapsed()
        );
        if outcome.is_err() {
            failed.push(name);
        }
    }
    assert!(
        failed.is_empty(),
        "failed against the real cell: {failed:?}"
    );
}
