//! A pseudo-terminal for the shell's line-editing tests: the test types on the master end
//! and reads the screen; cldcli gets the slave end as stdin, stdout and stderr.

use std::io::{Read, Write};
use std::os::fd::{FromRawFd, OwnedFd};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// A pseudo-terminal pair: the master end for the test, the slave end for cldcli.
pub fn open_pty() -> (OwnedFd, OwnedFd) {
    // SAFETY: plain libc calls on fds this function owns; ptsname's buffer is copied at once.
    unsafe {
        let master = libc::posix_openpt(libc::O_RDWR | libc::O_NOCTTY);
        assert!(master >= 0, "posix_openpt");
        assert_eq!(libc::grantpt(master), 0);
        assert_eq!(libc::unlockpt(master), 0);
        let name = std::ffi::CStr::from_ptr(libc::ptsname(master)).to_owned();
        let slave = libc::open(name.as_ptr(), libc::O_RDWR | libc::O_NOCTTY);
        assert!(slave >= 0, "open slave");
        (OwnedFd::from_raw_fd(master), OwnedFd::from_raw_fd(slave))
    }
}

/// The test's side of a terminal cldcli runs on.
pub struct Terminal {
    writer: std::fs::File,
    screen: Arc<Mutex<String>>,
    /// The cldcli process.
    pub child: super::Reaped,
}

impl Terminal {
    /// Starts `cmd` on a fresh pseudo-terminal (TERM=xterm).
    pub fn spawn(mut cmd: Command) -> Terminal {
        let (master, slave) = open_pty();
        let child = super::Reaped(
            cmd.env("TERM", "xterm")
                .stdin(Stdio::from(slave.try_clone().expect("dup slave")))
                .stdout(Stdio::from(slave.try_clone().expect("dup slave")))
                .stderr(Stdio::from(slave))
                .spawn()
                .expect("cldcli starts"),
        );
        let screen = Arc::new(Mutex::new(String::new()));
        let mut reader = std::fs::File::from(master.try_clone().expect("dup master"));
        let shown = screen.clone();
        std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            while let Ok(n) = reader.read(&mut buf) {
                if n == 0 {
                    break;
                }
                shown
                    .lock()
                    .unwrap()
                    .push_str(&String::from_utf8_lossy(&buf[..n]));
            }
        });
        Terminal {
            writer: std::fs::File::from(master),
            screen,
            child,
        }
    }

    /// Types `keys` (raw bytes: `\r` is Enter, `\x7f` backspace, `\x1b[A` arrow up).
    pub fn type_keys(&mut self, keys: &str) {
        self.writer.write_all(keys.as_bytes()).unwrap();
        self.writer.flush().unwrap();
    }

    /// Everything shown so far.
    pub fn screen(&self) -> String {
        self.screen.lock().unwrap().clone()
    }

    /// Waits until the screen has shown `text` `times` times.
    #[track_caller]
    pub fn wait_for(&self, text: &str, times: usize) {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let screen = self.screen();
            if screen.matches(text).count() >= times {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "{text:?} x{times} never shown:\n{screen}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Waits for the shell to exit and returns its status.
    pub fn wait_exit(&mut self) -> std::process::ExitStatus {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Some(s) = self.child.0.try_wait().unwrap() {
                return s;
            }
            assert!(Instant::now() < deadline, "shell did not exit");
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}
