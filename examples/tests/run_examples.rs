//! Runs each example binary as a user would and checks what it prints.

use std::io::Write;
use std::process::{Command, Output, Stdio};

fn run(bin: &str, args: &[&str], stdin: &str) -> Output {
    let mut child = Command::new(bin)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("example binary starts");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(stdin.as_bytes())
        .unwrap();
    child.wait_with_output().unwrap()
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[test]
fn human_in_the_loop_reads_the_answer_from_stdin() {
    let out = run(env!("CARGO_BIN_EXE_human_in_the_loop"), &[], "21\n");
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(
        text(&out.stdout),
        "Enter a number: You entered 21; twice that is 42.\n"
    );
}

#[test]
fn human_in_the_loop_reports_a_bad_answer() {
    let out = run(env!("CARGO_BIN_EXE_human_in_the_loop"), &[], "twelve\n");
    assert!(!out.status.success());
    assert_eq!(
        text(&out.stderr),
        "error: step `answer` failed after 1 attempt(s): `twelve` is not a number\n"
    );
}

#[test]
fn human_in_the_loop_without_input_fails_cleanly() {
    let out = run(env!("CARGO_BIN_EXE_human_in_the_loop"), &[], "");
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains("no input"),
        "{}",
        text(&out.stderr)
    );
}

#[test]
fn fan_out_counts_words_in_parallel_chunks() {
    let out = run(env!("CARGO_BIN_EXE_fan_out"), &[], "");
    assert!(out.status.success(), "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    assert!(
        stdout.starts_with("97 words in 4 chunks; most frequent:\n"),
        "{stdout}"
    );
    assert!(stdout.contains("  16  the\n"), "{stdout}");
}

#[test]
fn retries_succeed_on_the_third_attempt() {
    let out = run(env!("CARGO_BIN_EXE_retries"), &[], "");
    assert!(out.status.success(), "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    assert_eq!(stdout.matches("fetch: attempt").count(), 3, "{stdout}");
    assert!(stdout.ends_with("EUR→USD = 1.08 (live)\n"), "{stdout}");
}

#[test]
fn retries_fall_back_to_the_cache_when_the_service_is_down() {
    let out = run(env!("CARGO_BIN_EXE_retries"), &["down"], "");
    assert!(out.status.success(), "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    assert_eq!(stdout.matches("fetch: attempt").count(), 4, "{stdout}");
    assert!(
        stdout.contains("use_cache: `fetch` failed after 4 attempts"),
        "{stdout}"
    );
    assert!(
        stdout.ends_with("EUR→USD = 1.07 (cache (stale))\n"),
        "{stdout}"
    );
}

#[test]
fn wait_for_event_routes_each_answer_to_its_reviewer() {
    let out = run(
        env!("CARGO_BIN_EXE_wait_for_event"),
        &[],
        "Otters hold hands\ny\nn\n",
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    assert!(
        stdout.contains("legal: approve \"Otters hold hands\"? [y/n] "),
        "{stdout}"
    );
    assert!(stdout.contains("editor: approve"), "{stdout}");
    assert!(
        stdout.ends_with("The post is held back by editor.\n"),
        "{stdout}"
    );
    let out = run(env!("CARGO_BIN_EXE_wait_for_event"), &[], "T\ny\ny\n");
    assert!(text(&out.stdout).ends_with("The post is published.\n"));
}

/// The seed's web-app pattern across two processes: the second resumes what the first stored.
#[test]
fn snapshot_resume_hands_a_run_to_another_process() {
    let db = std::env::temp_dir().join(format!("workflows-example-{}.db", std::process::id()));
    let db = db.to_str().unwrap();
    let bin = env!("CARGO_BIN_EXE_snapshot_resume");

    let first = run(bin, &["--db", db, "start"], "");
    assert!(first.status.success(), "{}", text(&first.stderr));
    let stdout = text(&first.stdout);
    let run_id = stdout
        .strip_prefix("run ")
        .and_then(|rest| rest.split_whitespace().next())
        .expect("the run id is printed")
        .to_owned();
    assert!(stdout.contains("is waiting: Enter a number:"), "{stdout}");

    let second = run(bin, &["--db", db, "answer", &run_id, "21"], "");
    assert!(second.status.success(), "{}", text(&second.stderr));
    assert_eq!(text(&second.stdout), format!("run {run_id} finished: 42\n"));

    // The finished run left the store: answering again is a clear error.
    let third = run(bin, &["--db", db, "answer", &run_id, "21"], "");
    assert!(!third.status.success());
    assert!(
        text(&third.stderr).contains("no stored run with id"),
        "{}",
        text(&third.stderr)
    );
    let _ = std::fs::remove_file(db);
}

#[test]
fn draw_graph_writes_mermaid_and_dot() {
    let out = run(env!("CARGO_BIN_EXE_draw_graph"), &[], "");
    assert!(out.status.success(), "{}", text(&out.stderr));
    let mermaid = text(&out.stdout);
    assert!(mermaid.starts_with("flowchart TD\n"), "{mermaid}");
    assert!(
        mermaid.contains("    step_classify --> ev_Urgent\n"),
        "{mermaid}"
    );
    assert!(mermaid.contains("    ev_EscalationRequest -. answered by .-> ev_Decision\n"));
    let out = run(env!("CARGO_BIN_EXE_draw_graph"), &["--dot"], "");
    let dot = text(&out.stdout);
    assert!(
        dot.starts_with("digraph Support {\n") && dot.ends_with("}\n"),
        "{dot}"
    );
    assert!(dot.contains("\"Ticket\" -> \"step:classify\";"), "{dot}");
}

#[test]
fn failures_fall_back_to_the_cache_and_the_next_card() {
    let out = run(env!("CARGO_BIN_EXE_failures"), &[], "");
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(
        text(&out.stdout),
        "price: asking the pricing service\n\
         price: asking the pricing service\n\
         cached_price: the pricing service is down after 2 attempts\n\
         pay: using the cached price\n\
         charge: card #0 for 1250 cents\n\
         next_card: card #0 was declined; trying the next card\n\
         charge: card #1 for 1250 cents\n\
         paid 1250 cents with card #1\n"
    );
}

#[test]
fn failures_stop_at_the_recovery_budget() {
    let out = run(env!("CARGO_BIN_EXE_failures"), &["all-declined"], "");
    assert!(!out.status.success());
    let stdout = text(&out.stdout);
    assert_eq!(stdout.matches("charge: card").count(), 3, "{stdout}");
    assert_eq!(stdout.matches("next_card:").count(), 2, "{stdout}");
    assert_eq!(
        text(&out.stderr),
        "error: step `charge` failed after 1 attempt(s): card #2 was declined\n"
    );
}

#[test]
fn child_workflows_ask_through_the_parent_and_take_their_answers() {
    let out = run(env!("CARGO_BIN_EXE_child_workflows"), &[], "y\nn\n");
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(
        text(&out.stdout),
        "[Review/0] approve \"A short note on child workflows.\" (child workflows)? [y/n] \
         [Review/1] approve \"A short note on snapshots.\" (snapshots)? [y/n] \
         child workflows: published\nsnapshots: dropped\n"
    );
}

#[test]
fn child_workflows_without_answers_fail_cleanly() {
    let out = run(env!("CARGO_BIN_EXE_child_workflows"), &[], "y\n");
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains("no input"),
        "{}",
        text(&out.stderr)
    );
}
