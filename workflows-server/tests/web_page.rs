//! The console the server binary serves, driven in headless Chromium through WebDriver
//! (Debian's `chromium` and `chromium-driver`), one test per flow: a run started through the
//! form generated from its start event, a structured request answered through its form, the
//! inbox across workflows, the graph marking the waiting step, the server going away and
//! coming back, and a server that needs a token. Screenshots of each screen go to
//! `target/console-screenshots/` when `CONSOLE_SCREENSHOTS` is set.
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
        let session = Session { driver, id };
        if std::env::var_os("CONSOLE_SCREENSHOTS").is_some() {
            session
                .command("/window/rect", json!({"width": 1000, "height": 860}))
                .await;
        }
        session
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

    /// The element's visible text; empty when no element matches.
    async fn text(&self, css: &str) -> String {
        if !self.exists(css).await {
            return String::new();
        }
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

    /// Whether the element is shown; false when no element matches.
    async fn displayed(&self, css: &str) -> bool {
        if !self.exists(css).await {
            return false;
        }
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

    /// Whether an element matches `css` now.
    async fn exists(&self, css: &str) -> bool {
        let reply = self
            .driver
            .client
            .post(
                &format!("/session/{}/elements", self.id),
                &json!({"using": "css selector", "value": css}),
            )
            .await;
        reply.json()["value"]
            .as_array()
            .is_some_and(|found| !found.is_empty())
    }

    /// Waits until an element matches `css`.
    async fn until_exists(&self, css: &str) {
        let found = until(PATIENCE, || self.exists(css)).await;
        assert!(found, "no `{css}` appeared");
    }

    /// Runs `script` in the page and gives its result.
    async fn eval(&self, script: &str) -> Value {
        self.command("/execute/sync", json!({"script": script, "args": []}))
            .await
    }

    async fn open(&self, addr: std::net::SocketAddr, hash: &str) {
        self.command("/url", json!({"url": format!("http://{addr}/{hash}")}))
            .await;
    }

    /// Saves a screenshot as `name.png` when `CONSOLE_SCREENSHOTS` is set.
    async fn screenshot(&self, name: &str) {
        if std::env::var_os("CONSOLE_SCREENSHOTS").is_none() {
            return;
        }
        use base64::Engine as _;
        let png = self
            .driver
            .client
            .get(&format!("/session/{}/screenshot", self.id))
            .await
            .json()["value"]
            .as_str()
            .map(|b| base64::engine::general_purpose::STANDARD.decode(b).unwrap())
            .unwrap_or_default();
        let dir =
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/console-screenshots");
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join(format!("{name}.png")), png).unwrap();
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

fn db(name: &str) -> PathBuf {
    let path = std::env::temp_dir().join(format!("wf-web-{name}-{}.db", std::process::id()));
    let _ = std::fs::remove_file(&path);
    path
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_person_starts_the_number_workflow_answers_and_sees_the_result() {
    let Some((chromedriver, chromium)) = browser() else {
        return;
    };
    let path = db("number");
    let server = Binary::start(&path);
    let api = Client::new(server.addr);
    let session = Session::start(&chromedriver, &chromium).await;
    session.open(server.addr, "").await;
    assert_eq!(session.text("h1").await, "Workflows console");
    session.until_exists("[data-workflow=number]").await;
    session.until_exists("[data-workflow=release]").await;
    session.screenshot("workflows").await;
    session.click("[data-workflow=number] .start-link").await;
    // The free-form start event gets a JSON editor, `{}` by default.
    session.until_exists("form.generated textarea").await;
    session
        .until_exists(".graph svg [data-node='step:ask']")
        .await;
    session.click("form.generated button[type=submit]").await;
    session
        .until_exists("[data-request] input[name=response]")
        .await;
    let prompt = session.text("[data-request] .prompt").await;
    assert_eq!(prompt, "Enter a number:");
    session.screenshot("number-run-waiting").await;

    // Reloading the page (its address holds the run's id) finds the waiting run again.
    let here = session.eval("return location.href").await;
    assert!(here.as_str().unwrap().contains("#/runs/"), "{here}");
    session.command("/refresh", json!({})).await;
    session
        .until_exists("[data-request] input[name=response]")
        .await;
    session
        .type_into("[data-request] input[name=response]", "42")
        .await;
    session.click("[data-request] button[type=submit]").await;
    let result = session.until_text("#result-value", |t| !t.is_empty()).await;
    assert_eq!(result, "42");
    assert!(session.text("#status").await.contains("completed"));
    let handlers = api.get("/handlers?workflow_name=number").await.json();
    let runs = handlers["handlers"].as_array().unwrap();
    assert_eq!(runs.len(), 1);
    assert_eq!(runs[0]["result"]["value"]["result"], "42");
    session.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_structured_start_event_is_sent_through_its_generated_form() {
    let Some((chromedriver, chromium)) = browser() else {
        return;
    };
    let path = db("expense-start");
    let server = Binary::start(&path);
    let api = Client::new(server.addr);
    let session = Session::start(&chromedriver, &chromium).await;
    session.open(server.addr, "#/workflows/expense").await;
    session
        .until_exists("form.generated input[name=amount]")
        .await;
    // Typed fields: a number for the amount, a select for the category (defaulted), the
    // required ones marked.
    assert_eq!(
        session
            .eval("return document.querySelector('input[name=amount]').type")
            .await,
        "number"
    );
    assert!(session.exists("select[name=category]").await);
    assert!(session.exists("label.req[for]").await);
    // Sending it empty is refused before anything is sent.
    session.click("form.generated button[type=submit]").await;
    session
        .until_text("form.generated .error", |t| t.contains("Fill in"))
        .await;
    assert!(
        api.get("/handlers").await.json()["handlers"]
            .as_array()
            .unwrap()
            .is_empty()
    );
    session.type_into("input[name=employee]", "Ada").await;
    session.type_into("input[name=amount]", "12.5").await;
    session.type_into("textarea[name=reason]", "lunch").await;
    session.eval("const s = document.querySelector('select[name=category]'); s.value = '\"meals\"'; return s.value").await;
    session.screenshot("expense-start-form").await;
    session.click("form.generated button[type=submit]").await;
    let result = session.until_text("#result-value", |t| !t.is_empty()).await;
    assert!(result.contains("decided_by: policy"), "{result}");
    let runs = api.get("/handlers?workflow_name=expense").await.json();
    assert_eq!(runs["handlers"][0]["status"], "completed");
    session.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_start_form_holds_a_list_with_its_defaults_and_a_nested_object() {
    let Some((chromedriver, chromium)) = browser() else {
        return;
    };
    let path = db("release-start");
    let server = Binary::start(&path);
    let api = Client::new(server.addr);
    let session = Session::start(&chromedriver, &chromium).await;
    session.open(server.addr, "#/workflows/release").await;
    session
        .until_exists("[data-field=teams] .items input")
        .await;
    // The list comes with its default entries; one more is added.
    let teams = session
        .eval("return [...document.querySelectorAll('[data-field=teams] .items input')].map(i => i.value)")
        .await;
    assert_eq!(teams, json!(["legal", "security", "docs"]));
    session.click("[data-field=teams] > button").await;
    session
        .type_into("[data-field=teams] .items .row:last-child input", "ops")
        .await;
    // The nested owner is a group of its own fields.
    assert!(
        session
            .exists("fieldset[data-field=owner] input[name='owner.name']")
            .await
    );
    session.type_into("input[name=version]", "4.0").await;
    session.type_into("input[name='owner.name']", "Grace").await;
    session.screenshot("release-start-form").await;
    session
        .click("form.generated > .row button[type=submit]")
        .await;
    let started = until(PATIENCE, || async {
        session.exists("#requests [data-request]").await
    })
    .await;
    assert!(
        started,
        "no request; the form says: {:?}; the runs: {}; the inbox: {}; the page: {}",
        session.text("form.generated .error").await,
        api.get("/handlers?workflow_name=release").await.body,
        api.get("/inbox").await.body,
        session.eval("return location.hash").await,
    );
    let asked = until(PATIENCE, || async {
        session
            .eval("return document.querySelectorAll('#requests [data-request]').length")
            .await
            == 4
    })
    .await;
    assert!(asked, "four teams asked");
    let runs = api.get("/handlers?workflow_name=release").await.json();
    assert_eq!(runs["handlers"].as_array().unwrap().len(), 1);
    session.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_custom_structured_request_is_answered_through_its_form() {
    let Some((chromedriver, chromium)) = browser() else {
        return;
    };
    let path = db("expense-answer");
    let server = Binary::start(&path);
    let api = Client::new(server.addr);
    let id = api
        .post(
            "/workflows/expense/run-nowait",
            &json!({"start_event": {"employee": "Ada", "amount": 900, "category": "equipment", "reason": "a laptop"}}),
        )
        .await
        .json()["handler_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let session = Session::start(&chromedriver, &chromium).await;
    session.open(server.addr, &format!("#/runs/{id}")).await;
    // The request names its answer: an `ExpenseDecision` form (a checkbox, a comment).
    session
        .until_exists("[data-request] input[type=checkbox][name=approve]")
        .await;
    assert!(
        session
            .text("[data-request] h3")
            .await
            .starts_with("ApprovalRequest")
    );
    assert!(
        session
            .text("[data-request] .prompt")
            .await
            .contains("amount: 900")
    );
    // The graph marks the request the run waits to have answered.
    session
        .until_exists(".graph [data-node='event:ApprovalRequest'].waiting")
        .await;
    session.screenshot("expense-request").await;
    if std::env::var_os("CONSOLE_SCREENSHOTS").is_some() {
        // The README's picture: the request, its form and the graph.
        session
            .command("/window/rect", json!({"width": 900, "height": 1180}))
            .await;
        session.screenshot("readme-console").await;
    }
    // A phone's width: the same page in one column, nothing wider than the screen.
    session
        .command("/window/rect", json!({"width": 390, "height": 844}))
        .await;
    let fits = until(PATIENCE, || async {
        let widths = session
            .eval("return [window.innerWidth, document.documentElement.scrollWidth]")
            .await;
        widths[0].as_u64() <= Some(390) && widths[1].as_u64() <= widths[0].as_u64()
    })
    .await;
    assert!(fits, "the page is wider than a 390 px screen");
    session.screenshot("expense-request-390").await;
    session.click("[data-request] input[name=approve]").await;
    session
        .type_into("[data-request] textarea[name=comment]", "fine")
        .await;
    session.click("[data-request] button[type=submit]").await;
    let result = session.until_text("#result-value", |t| !t.is_empty()).await;
    assert!(
        result.contains("approved: true") && result.contains("comment: fine"),
        "{result}"
    );
    session.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_inbox_lists_waiting_runs_of_two_workflows_and_drops_one_answered_elsewhere() {
    let Some((chromedriver, chromium)) = browser() else {
        return;
    };
    let path = db("inbox");
    let server = Binary::start(&path);
    let api = Client::new(server.addr);
    let start = |workflow: &'static str, body: Value| async move {
        api.post(
            &format!("/workflows/{workflow}/run-nowait"),
            &json!({ "start_event": body }),
        )
        .await
        .json()["handler_id"]
            .as_str()
            .unwrap()
            .to_owned()
    };
    let number = start("number", json!({})).await;
    let release = start("release", json!({"version": "3.1"})).await;
    let session = Session::start(&chromedriver, &chromium).await;
    session.open(server.addr, "#/inbox").await;
    session
        .until_exists(&format!("[data-inbox-run='{number}'] [data-request]"))
        .await;
    session
        .until_exists(&format!("[data-inbox-run='{release}'] [data-request]"))
        .await;
    let order = session
        .eval("return [...document.querySelectorAll('[data-inbox-run]')].map(e => e.dataset.inboxRun)")
        .await;
    assert_eq!(order, json!([number, release]), "the longest waiting first");
    assert!(
        session
            .exists(&format!(
                "[data-inbox-run='{release}'] [data-request] input[name=team][readonly]"
            ))
            .await,
        "a wait's requirement is filled in and fixed"
    );
    // Typed into one form, then the other run is answered through the HTTP API: a poll takes
    // it out of the inbox, and the field being typed in keeps its focus and its text across
    // that change, so typing goes on where it was.
    session
        .type_into(&format!("[data-inbox-run='{release}'] [name=note]"), "half")
        .await;
    let reply = api
        .post(
            &format!("/events/{number}"),
            &json!({"event": {"type": "HumanResponseEvent", "value": {"response": "7"}}}),
        )
        .await;
    assert_eq!(reply.status, 200);
    let gone = until(PATIENCE, || async {
        !session
            .exists(&format!("[data-inbox-run='{number}']"))
            .await
    })
    .await;
    assert!(gone, "the answered run left the inbox");
    let focused = session
        .eval("return document.activeElement && document.activeElement.name")
        .await;
    assert_eq!(focused, "note", "the field being typed in kept its focus");
    session
        .type_into(
            &format!("[data-inbox-run='{release}'] [name=note]"),
            " typed",
        )
        .await;
    session.screenshot("inbox").await;
    let kept = session
        .eval(&format!(
            "return document.querySelector(\"[data-inbox-run='{release}'] [name=note]\").value"
        ))
        .await;
    assert_eq!(kept, "half typed");
    // The release's page: its graph marks the step its three branches wait in.
    session
        .open(server.addr, &format!("#/runs/{release}"))
        .await;
    session
        .until_exists(".graph [data-node='step:ask'].waiting")
        .await;
    session.until_exists("[data-request] [name=note]").await;
    session.screenshot("release-run").await;
    session.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_page_says_when_the_server_is_gone_keeps_what_was_typed_and_recovers() {
    let Some((chromedriver, chromium)) = browser() else {
        return;
    };
    let path = db("down");
    let server = Binary::start(&path);
    let addr = server.addr;
    let api = Client::new(addr);
    let id = api
        .post("/workflows/number/run-nowait", &json!({"start_event": {}}))
        .await
        .json()["handler_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let session = Session::start(&chromedriver, &chromium).await;
    session.open(addr, &format!("#/runs/{id}")).await;
    session
        .until_exists("[data-request] input[name=response]")
        .await;
    session.until_exists("#timeline li").await;
    let events_before = session
        .eval("return document.querySelectorAll('#timeline li').length")
        .await;
    session
        .type_into("[data-request] input[name=response]", "5")
        .await;
    server.kill();
    until(PATIENCE, || session.displayed("#offline")).await;
    assert!(
        session.displayed("#offline").await,
        "the page says the server is gone"
    );
    session.screenshot("offline").await;
    // Back where it was, on the same store: the page recovers by itself, what was typed is
    // still there, and the timeline is neither lost nor repeated.
    let path_text = path.to_str().unwrap().to_owned();
    let _again = Binary::spawn_at(&addr.to_string(), &["--db", &path_text]);
    let back = until(PATIENCE, || async { !session.displayed("#offline").await }).await;
    assert!(back, "the page noticed the server is back");
    let typed = session
        .eval("return document.querySelector('[data-request] input[name=response]').value")
        .await;
    assert_eq!(typed, "5");
    session.click("[data-request] button[type=submit]").await;
    let result = session.until_text("#result-value", |t| !t.is_empty()).await;
    assert_eq!(result, "5");
    let seqs = session
        .eval("return [...document.querySelectorAll('#timeline li')].map(li => Number(li.dataset.seq))")
        .await;
    let seqs: Vec<u64> = serde_json::from_value(seqs).unwrap();
    assert!(
        seqs.windows(2).all(|w| w[0] < w[1]),
        "no event twice: {seqs:?}"
    );
    assert!(
        seqs.len() as u64 > events_before.as_u64().unwrap(),
        "{seqs:?}"
    );
    session.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_page_asks_for_the_token_a_server_needs_and_uses_it_for_every_call() {
    let Some((chromedriver, chromium)) = browser() else {
        return;
    };
    let token = "page-token-0123456789abcdef";
    let path = db("token");
    let server = Binary::start_with(&path, &["--auth-tokens", token]);
    let session = Session::start(&chromedriver, &chromium).await;
    session.open(server.addr, "#/workflows/number").await;
    until(PATIENCE, || session.displayed("#token-form")).await;
    assert!(session.displayed("#token-form").await);
    session.type_into("#token", token).await;
    session.click("#token-form button").await;
    // The calls are retried with the token; the stream and the answer carry it too.
    session.until_exists("form.generated textarea").await;
    session.click("form.generated button[type=submit]").await;
    session
        .until_exists("[data-request] input[name=response]")
        .await;
    session
        .type_into("[data-request] input[name=response]", "7")
        .await;
    session.click("[data-request] button[type=submit]").await;
    let result = session.until_text("#result-value", |t| !t.is_empty()).await;
    assert_eq!(result, "7");
    assert!(!session.displayed("#token-form").await);
    session.close().await;
}
