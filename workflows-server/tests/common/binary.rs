//! The `workflows-server` binary, run as a newcomer runs it.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};

/// The server binary, started on a free port with the database at `path`.
pub struct Binary {
    child: Child,
    pub addr: SocketAddr,
}

impl Binary {
    pub fn start(path: &std::path::Path) -> Binary {
        Self::start_with(path, &[])
    }

    /// Started with more flags.
    pub fn start_with(path: &std::path::Path, flags: &[&str]) -> Binary {
        let path = path.to_str().expect("a UTF-8 path");
        Self::spawn(&[&["--db", path], flags].concat())
    }

    /// Started on any free port of loopback with these flags only (the store among them).
    pub fn spawn(flags: &[&str]) -> Binary {
        Self::spawn_at("127.0.0.1:0", flags)
    }

    /// Started listening on `bind` (a server started again where the last one was).
    pub fn spawn_at(bind: &str, flags: &[&str]) -> Binary {
        let mut child = Command::new(env!("CARGO_BIN_EXE_workflows-server"))
            .args(["--bind", bind])
            .args(flags)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("the server binary starts");
        let mut stdout = BufReader::new(child.stdout.take().unwrap());
        let mut line = String::new();
        while !line.contains("http://") {
            line.clear();
            assert!(
                stdout.read_line(&mut line).unwrap() > 0,
                "the server exited"
            );
        }
        let addr = line
            .trim()
            .rsplit("http://")
            .next()
            .and_then(|a| a.parse().ok())
            .unwrap_or_else(|| panic!("no address in {line:?}"));
        Binary { child, addr }
    }

    /// Sends the process `signal` (`STOP`, `CONT`, ...).
    pub fn signal(&self, signal: &str) {
        let sent = Command::new("kill")
            .args(["-s", signal, &self.child.id().to_string()])
            .status()
            .expect("kill runs");
        assert!(sent.success(), "kill -s {signal} failed");
    }

    pub fn kill(mut self) {
        // SIGKILL: no clean shutdown.
        self.child.kill().unwrap();
        self.child.wait().unwrap();
    }
}

impl Drop for Binary {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
