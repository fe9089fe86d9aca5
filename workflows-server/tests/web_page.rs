//! The web page the server binary serves, driven in headless Chromium through WebDriver
//! (Debian's `chromium` and `chromium-driver`): a person starts the number workflow, sees the
//! prompt, types an answer and sees the result.
//!
//! Without Chromium and ChromeDriver installed the test says so and passes, except under CI
//! (`CI` set), where `.ci/run` installs them and the test fails without them.

mod common;

use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};

use common::*;
use serde_json::{Value, json};

const ELEMENT: &str = "element-6066-11e4-a52e-4f735466cecf";

fn tool(env: &str, default: &str) -> Option<PathBuf> {
    let path = std::env::var_os(env).map_or_else(|| PathBuf::from(default), PathBuf::from);
    path.exists().then_some(path)
}

struct Driver {
    child: Child,
    client: Client,
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A WebDriver session in headless Chromium.
struct Session {
    driver: Driver,
    id: String,
}

impl Session {
    async fn start(chromedriver: &PathBuf, chromium: &PathBuf) -> Session {
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let child = Command::new(chromedriver)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("chromedriver starts");
        let client = Client::new(([127, 0, 0, 1], port).into());
        let driver = Driver { child, client };
        until(PATIENCE, || async {
            tokio::net::TcpStream::connect(client.addr).await.is_ok()
        })
        .await;
        // A profile per session: two browsers cannot share one.
        static SESSIONS: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let n = SESSIONS.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        let profile = std::env::temp_dir().join(format!("wf-chromium-{}-{n}", std::process::id()));
        let created = client
            .post(
                "/session",
                &json!({"capabilities": {"alwaysMatch": {"goog:chromeOptions": {
                    "binary": chromium,
                    "args": [
                        "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                        "--disable-quic", "--no-first-run", "--disable-background-networking",
                        "--disable-component-update", "--disable-sync",
                        format!("--user-data-dir={}", profile.display()),
                    ],
                }}}}),
            )
            .await;
        assert_eq!(created.status, 200, "no session: {}", created.body);
        let id = created.json()["value"]["sessionId"]
            .as_str()
            .unwrap()
            .to_owned();
        Session { driver, id }
    }

    async fn command(&self, path: &str, body: Value) -> Value {
        let reply = self
            .driver
            .client
            .post(&format!("/session/{}{path}", self.id), &body)
            .await;
        assert_eq!(reply.status, 200, "{path}: {}", reply.body);
        reply.json()["value"].clone()
    }

    async fn element(&self, css: &str) -> String {
        let found = self
            .command("/element", json!({"using": "css selector", "value": css}))
            .await;
        found[ELEMENT].as_str().unwrap().to_owned()
    }

    async fn text(&self, css: &str) -> String {
        let element = self.element(css).await;
        let reply = self
            .driver
            .client
            .get(&format!("/session/{}/element/{element}/text", self.id))
            .await;
        reply.json()["value"]
            .as_str()
            .unwrap_or_default()
            .to_owned()
    }

    async fn displayed(&self, css: &str) -> bool {
        let element = self.element(css).await;
        let reply = self
            .driver
            .client
            .get(&format!("/session/{}/element/{element}/displayed", self.id))
            .await;
        reply.json()["value"] == json!(true)
    }

    async fn click(&self, css: &str) {
        let element = self.element(css).await;
        self.command(&format!("/element/{element}/click"), json!({}))
            .await;
    }

    async fn type_into(&self, css: &str, text: &str) {
        let element = self.element(css).await;
        self.command(&format!("/element/{element}/value"), json!({"text": text}))
            .await;
    }

    /// Waits until the element's visible text satisfies `check`; the text.
    async fn until_text(&self, css: &str, check: impl Fn(&str) -> bool) -> String {
        let last = std::cell::RefCell::new(String::new());
        let shown = until(PATIENCE, || async {
            let text = self.text(css).await;
            let ok = check(&text);
            *last.borrow_mut() = text;
            ok
        })
        .await;
        let last = last.into_inner();
        assert!(
            shown,
            "`{css}` never showed the expected text; last: {last:?}"
        );
        last
    }

    async fn close(self) {
        let _ = self
            .driver
            .client
            .send("DELETE", &format!("/session/{}", self.id), None)
            .await;
    }
}

/// Chromium and ChromeDriver, if installed (under CI they must be).
fn browser() -> Option<(PathBuf, PathBuf)> {
    let (Some(chromedriver), Some(chromium)) = (
        tool("CHROMEDRIVER", "/usr/bin/chromedriver"),
        tool("CHROMIUM", "/usr/bin/chromium"),
    ) else {
        assert!(
            std::env::var_os("CI").is_none(),
            "chromium and chromedriver are missing: .ci/run installs them"
        );
        eprintln!("chromium or chromedriver is not installed: skipping the browser test");
        return None;
    };
    Some((chromedriver, chromium))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_person_starts_the_number_workflow_answers_and_sees_the_result() {
    let Some((chromedriver, chromium)) = browser() else {
        return;
    };
    let db = std::env::temp_dir().join(format!("wf-web-{}.db", std::process::id()));
    let _ = std::fs::remove_file(&db);
    let server = Binary::start(&db);
    let api = Client::new(server.addr);
    let session = Session::start(&chromedriver, &chromium).await;

    session
        .command("/url", json!({"url": format!("http://{}/", server.addr)}))
        .await;
    assert_eq!(session.text("h1").await, "Number workflow");
    assert!(
        !session.displayed("#answer-form").await,
        "no prompt before a run"
    );
    assert!(!session.displayed("#result").await);
    session.click("#start").await;
    let prompt = session.until_text("#prompt", |t| !t.is_empty()).await;
    assert_eq!(prompt, "Enter a number:");
    assert!(session.displayed("#answer").await);

    // Reloading the page (its address holds the run's id) finds the waiting run again.
    let here = session
        .driver
        .client
        .get(&format!("/session/{}/url", session.id))
        .await
        .json()["value"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(here.contains('#'), "{here}");
    session.command("/refresh", json!({})).await;
    let prompt = session.until_text("#prompt", |t| !t.is_empty()).await;
    assert_eq!(prompt, "Enter a number:");
    session.type_into("#answer", "42").await;
    session.click("#send").await;
    let result = session.until_text("#result-value", |t| !t.is_empty()).await;
    assert_eq!(result, "42");
    assert_eq!(session.text("#status").await, "The run completed.");

    // The server agrees: one completed run, with the answer typed in the page.
    let handlers = api.get("/handlers?workflow_name=number").await.json();
    let runs = handlers["handlers"].as_array().unwrap();
    assert_eq!(runs.len(), 1);
    assert_eq!(runs[0]["status"], "completed");
    assert_eq!(runs[0]["result"]["value"]["result"], "42");
    session.close().await;
    let _ = std::fs::remove_file(&db);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_page_asks_for_the_token_a_server_needs_and_uses_it_for_every_call() {
    let Some((chromedriver, chromium)) = browser() else {
        return;
    };
    let token = "page-token-0123456789abcdef";
    let db = std::env::temp_dir().join(format!("wf-web-token-{}.db", std::process::id()));
    let _ = std::fs::remove_file(&db);
    let server = Binary::start_with(&db, &["--auth-tokens", token]);
    let session = Session::start(&chromedriver, &chromium).await;
    session
        .command("/url", json!({"url": format!("http://{}/", server.addr)}))
        .await;
    assert!(!session.displayed("#token-form").await);
    session.click("#start").await;
    until(PATIENCE, || session.displayed("#token-form")).await;
    assert!(
        !session.displayed("#answer-form").await,
        "no run without a token"
    );
    session.type_into("#token", token).await;
    session.click("#token-form button").await;
    // The start is retried with the token; the stream and the answer carry it too.
    let prompt = session.until_text("#prompt", |t| !t.is_empty()).await;
    assert_eq!(prompt, "Enter a number:");
    session.type_into("#answer", "7").await;
    session.click("#send").await;
    let result = session.until_text("#result-value", |t| !t.is_empty()).await;
    assert_eq!(result, "7");
    assert!(!session.displayed("#token-form").await);
    session.close().await;
    let _ = std::fs::remove_file(&db);
}
