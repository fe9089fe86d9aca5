//! The reference's Python client (`llama-agents-client` 0.4.1, from PyPI) drives our server
//! through every client method: a whole human-in-the-loop run, a custom start event, listing,
//! cancelling, a failed run and its failure event, and the reference's error answers (an
//! undeclared event type, an unknown handler or workflow): `tests/python/client_flow.py`; and
//! a run with child workflows: `tests/python/child_flow.py`.
//!
//! The client is installed into a virtualenv under the target directory on first use (or
//! taken from `WORKFLOWS_PY_CLIENT`, a Python that has it).

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::*;
use workflows_server::storage::SqliteStorage;

/// A Python interpreter that can import `llama_agents.client`. Made once: the tests of this
/// file run at the same time, and two installs into one virtualenv break each other.
fn python_with_client() -> PathBuf {
    static PYTHON: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    PYTHON.get_or_init(install_client).clone()
}

fn install_client() -> PathBuf {
    if let Some(python) = std::env::var_os("WORKFLOWS_PY_CLIENT") {
        return PathBuf::from(python);
    }
    let venv = Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/py-client-venv");
    let python = venv.join("bin/python");
    let ready = venv.join(".installed-0.4.1");
    if !ready.exists() {
        let made = Command::new("python3")
            .args(["-m", "venv"])
            .arg(&venv)
            .status()
            .expect("python3 runs");
        assert!(made.success(), "python3 -m venv failed");
        let installed = Command::new(&python)
            .args([
                "-m",
                "pip",
                "install",
                "--quiet",
                "llama-agents-client==0.4.1",
                "llama-index-workflows==2.26.1",
            ])
            .status()
            .expect("pip runs");
        assert!(installed.success(), "installing llama-agents-client failed");
        std::fs::write(&ready, "").unwrap();
    }
    python
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_python_client_drives_a_human_in_the_loop_run() {
    let python = tokio::task::spawn_blocking(python_with_client)
        .await
        .unwrap();
    let (_server, client) = serve(SqliteStorage::in_memory().unwrap(), config()).await;
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/python/client_flow.py");
    let base = format!("http://{}", client.addr);
    let output = tokio::process::Command::new(&python)
        .arg(&script)
        .arg(&base)
        .output()
        .await
        .expect("the script runs");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "the client failed\nstdout:\n{stdout}\nstderr:\n{stderr}"
    );
    assert!(stdout.contains("all client checks passed"), "{stdout}");
}

/// A server that needs a token: the Python client gets a 401 without one, and drives a whole
/// run with the token in the headers of the httpx client it is given.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_python_client_passes_a_token_in_its_httpx_headers() {
    let python = tokio::task::spawn_blocking(python_with_client)
        .await
        .unwrap();
    let token = "python-token-0123456789abcdef";
    let config = workflows_server::Config {
        auth: workflows_server::Auth::Tokens(workflows_server::Tokens::new([token]).unwrap()),
        ..config()
    };
    let (_server, client) = serve(SqliteStorage::in_memory().unwrap(), config).await;
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/python/token_flow.py");
    let output = tokio::process::Command::new(&python)
        .arg(&script)
        .arg(format!("http://{}", client.addr))
        .arg(token)
        .output()
        .await
        .expect("the script runs");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "the client failed\nstdout:\n{stdout}\nstderr:\n{stderr}"
    );
    assert!(stdout.contains("all token checks passed"), "{stdout}");
}

/// A run whose step runs two child workflows: the Python client reads both children's prompts
/// on the parent's stream and answers them through the parent's handler
/// (`tests/python/child_flow.py`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_python_client_answers_child_runs_through_the_parent() {
    let python = tokio::task::spawn_blocking(python_with_client)
        .await
        .unwrap();
    let running = workflows_server::Server::new()
        .workflow("pair", workflows::Workflow::runner(Pair))
        .storage(SqliteStorage::in_memory().unwrap())
        .config(config())
        .start()
        .await
        .unwrap();
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/python/child_flow.py");
    let output = tokio::process::Command::new(&python)
        .arg(&script)
        .arg(format!("http://{}", running.local_addr()))
        .output()
        .await
        .expect("the script runs");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "the client failed\nstdout:\n{stdout}\nstderr:\n{stderr}"
    );
    assert!(stdout.contains("all child checks passed"), "{stdout}");
    running.shutdown().await.unwrap();
}
