//! Fan-out by returning a list, joins that know the fan-out (`Vec<E>` parameters), `take`.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use workflows::prelude::*;
use workflows::{RunStatus, Snapshot};

#[derive(Clone, Debug, Serialize, Deserialize, Event)]
struct Item {
    n: u32,
}

#[derive(Clone, Debug, Serialize, Deserialize, Event)]
struct Checked {
    n: u32,
}

#[derive(Clone, Debug, Serialize, Deserialize, Event)]
struct Done {
    n: u32,
}

/// Splits `count` items, checks and finishes each (two steps per branch, the later items
/// faster than the earlier ones), drops the multiples of `skip`, and fails on the multiples of
/// `fail` (a failure step handles those: it recovers with `Skipped`, which ends the branch).
/// The join counts its firings.
#[derive(Clone, Default)]
struct Pipeline {
    count: u32,
    skip: Option<u32>,
    fail: Option<u32>,
    joins: Arc<AtomicUsize>,
    handled: Arc<AtomicUsize>,
}

#[workflow]
impl Pipeline {
    #[step]
    async fn split(&self, _ev: StartEvent) -> Vec<Item> {
        (1..=self.count).map(|n| Item { n }).collect()
    }

    #[step(num_workers = 100)]
    async fn check(&self, item: Item) -> Result<Option<Checked>, String> {
        // Later items finish first: arrivals come in reverse order.
        tokio::time::sleep(Duration::from_millis(u64::from(10_000 - item.n))).await;
        if self.fail.is_some_and(|f| item.n.is_multiple_of(f)) {
            return Err(format!("item {} is broken", item.n));
        }
        let kept = self.skip.is_none_or(|s| !item.n.is_multiple_of(s));
        Ok(kept.then_some(Checked { n: item.n }))
    }

    #[step(num_workers = 100)]
    async fn finish(&self, ev: Checked) -> Done {
        Done { n: ev.n * 10 }
    }

    #[step]
    async fn collect(&self, done: Vec<Done>) -> StopEvent<Vec<u32>> {
        self.joins.fetch_add(1, Ordering::SeqCst);
        StopEvent::new(done.into_iter().map(|d| d.n).collect())
    }

    #[step]
    async fn handle(&self, failed: StepFailed) -> Skipped {
        assert_eq!(failed.step, "check");
        self.handled.fetch_add(1, Ordering::SeqCst);
        Skipped
    }

    #[step]
    async fn skip(&self, _ev: Skipped) {}
}

#[derive(Clone, Debug, Serialize, Deserialize, Event)]
struct Skipped;

async fn run_pipeline(pipeline: &Pipeline) -> Vec<u32> {
    let out = pipeline.clone().run(StartEvent::new()).await.unwrap();
    assert_eq!(
        pipeline.joins.load(Ordering::SeqCst),
        1,
        "the join fires once"
    );
    out
}

#[tokio::test(start_paused = true)]
async fn a_join_fires_once_with_every_branch_in_element_order_through_two_steps() {
    for count in [1, 3, 1000] {
        let pipeline = Pipeline {
            count,
            ..Pipeline::default()
        };
        let out = run_pipeline(&pipeline).await;
        let expected: Vec<u32> = (1..=count).map(|n| n * 10).collect();
        assert_eq!(out, expected, "fan-out of {count}");
    }
}

#[tokio::test(start_paused = true)]
async fn an_empty_fan_out_joins_with_nothing_at_once() {
    let pipeline = Pipeline::default();
    assert_eq!(run_pipeline(&pipeline).await, Vec::<u32>::new());
}

#[tokio::test(start_paused = true)]
async fn branches_that_end_without_the_event_or_fail_and_are_handled_are_left_out() {
    let pipeline = Pipeline {
        count: 10,
        skip: Some(3),
        fail: Some(4),
        ..Pipeline::default()
    };
    let out = run_pipeline(&pipeline).await;
    assert_eq!(out, [10, 20, 50, 70, 100]);
    assert_eq!(pipeline.handled.load(Ordering::SeqCst), 2, "items 4 and 8");
}

/// Asks three sources; the first answer wins; the others still run and are ignored.
#[derive(Clone, Default)]
struct Fastest {
    fired: Arc<AtomicUsize>,
    answered: Arc<AtomicUsize>,
}

#[workflow]
impl Fastest {
    #[step]
    async fn ask(&self, _ev: StartEvent) -> Vec<Item> {
        vec![Item { n: 300 }, Item { n: 100 }, Item { n: 200 }]
    }

    #[step(num_workers = 3)]
    async fn source(&self, item: Item) -> Done {
        tokio::time::sleep(Duration::from_millis(u64::from(item.n))).await;
        self.answered.fetch_add(1, Ordering::SeqCst);
        Done { n: item.n }
    }

    #[step(take = 1)]
    async fn first(&self, done: Vec<Done>) -> Checked {
        self.fired.fetch_add(1, Ordering::SeqCst);
        assert_eq!(done.len(), 1);
        Checked { n: done[0].n }
    }

    #[step]
    async fn end(&self, ev: Checked) -> StopEvent<u32> {
        // Let the slower sources finish: the join must not fire again.
        tokio::time::sleep(Duration::from_millis(500)).await;
        StopEvent::new(ev.n)
    }
}

#[tokio::test(start_paused = true)]
async fn a_take_join_fires_at_the_first_arrival_and_ignores_the_rest() {
    let fastest = Fastest::default();
    assert_eq!(fastest.clone().run(StartEvent::new()).await.unwrap(), 100);
    assert_eq!(fastest.fired.load(Ordering::SeqCst), 1);
    assert_eq!(fastest.answered.load(Ordering::SeqCst), 3);
}

#[derive(Clone, Debug, Serialize, Deserialize, Event)]
struct Chapter {
    book: u32,
    chapter: u32,
}

#[derive(Clone, Debug, Serialize, Deserialize, Event)]
struct Words {
    book: u32,
    count: u32,
}

#[derive(Clone, Debug, Serialize, Deserialize, Event)]
struct Book {
    book: u32,
}

#[derive(Clone, Debug, Serialize, Deserialize, Event)]
struct BookWords {
    book: u32,
    count: u32,
}

/// Nested fan-outs: books, then each book's chapters; an inner join per book, an outer join
/// over the books.
struct Library;

#[workflow]
impl Library {
    #[step]
    async fn books(&self, _ev: StartEvent) -> Vec<Book> {
        (1..=3).map(|book| Book { book }).collect()
    }

    #[step(num_workers = 3)]
    async fn chapters(&self, ev: Book) -> Vec<Chapter> {
        // Book 2 has no chapters: its inner join fires with nothing.
        let chapters = if ev.book == 2 { 0 } else { ev.book + 1 };
        (1..=chapters)
            .map(|chapter| Chapter {
                book: ev.book,
                chapter,
            })
            .collect()
    }

    #[step(num_workers = 8)]
    async fn count(&self, ev: Chapter) -> Words {
        tokio::time::sleep(Duration::from_millis(u64::from(100 - ev.chapter))).await;
        Words {
            book: ev.book,
            count: ev.chapter * 100,
        }
    }

    #[step]
    async fn per_book(&self, words: Vec<Words>) -> Option<BookWords> {
        let book = words.first()?.book;
        assert!(words.iter().all(|w| w.book == book), "one book per join");
        Some(BookWords {
            book,
            count: words.iter().map(|w| w.count).sum(),
        })
    }

    #[step]
    async fn total(&self, books: Vec<BookWords>) -> StopEvent<Vec<(u32, u32)>> {
        StopEvent::new(books.iter().map(|w| (w.book, w.count)).collect())
    }
}

#[tokio::test(start_paused = true)]
async fn nested_fan_outs_join_inside_out() {
    // Book 1: chapters 1-2 (300 words); book 2: none (its inner join returns nothing); book 3:
    // chapters 1-4 (1,000 words). `total` is bound to `books` (what `per_book` returns counts
    // at the books' level), `per_book` to `chapters`.
    let got = Library.run(StartEvent::new()).await.unwrap();
    assert_eq!(got, [(1, 300), (3, 1000)]);
}

/// Emits an `Item` without a fan-out: only the join takes it.
struct Stray;

#[workflow(unchecked)]
impl Stray {
    #[step]
    async fn start(&self, _ev: StartEvent) -> Item {
        Item { n: 1 }
    }

    #[step]
    async fn join(&self, items: Vec<Item>) -> StopEvent<usize> {
        StopEvent::new(items.len())
    }
}

#[tokio::test]
async fn an_event_reaching_a_join_outside_any_fan_out_fails_the_run_with_what_to_do() {
    let err = Stray.run(StartEvent::new()).await.unwrap_err();
    match &err {
        WorkflowError::OutsideFanOut { step, event, join } => {
            assert_eq!(step.as_deref(), Some("start"));
            assert_eq!(event, "Item");
            assert_eq!(join, "join");
        }
        other => panic!("unexpected {other:?}"),
    }
    assert!(
        err.to_string()
            .contains("return the events to join in a `Vec`"),
        "{err}"
    );
}

/// A fan-out whose branches wait for a person; a snapshot is taken while some have answered.
#[derive(Clone, Default)]
struct Approvals {
    joins: Arc<AtomicUsize>,
}

#[derive(Clone, Debug, Serialize, Deserialize, Event)]
#[event(response)]
struct Vote {
    n: u32,
    yes: bool,
}

#[workflow]
impl Approvals {
    #[step]
    async fn split(&self, _ev: StartEvent) -> Vec<Item> {
        (0..4).map(|n| Item { n }).collect()
    }

    #[step(num_workers = 4)]
    async fn ask(&self, ctx: &Context, item: Item) -> Result<Option<Done>, WaitError> {
        let vote = ctx
            .wait_for_event(
                WaitFor::<Vote>::new()
                    .prompt(InputRequiredEvent::new(format!("approve {}?", item.n)))
                    .id(format!("vote-{}", item.n))
                    .require(workflows::field!(Vote, n), item.n),
            )
            .await?;
        Ok(vote.yes.then_some(Done { n: item.n }))
    }

    #[step]
    async fn tally(&self, done: Vec<Done>) -> StopEvent<Vec<u32>> {
        self.joins.fetch_add(1, Ordering::SeqCst);
        StopEvent::new(done.iter().map(|d| d.n).collect())
    }
}

async fn prompts<T>(handler: &Handler<T>, count: usize) {
    let mut events = handler.stream_events();
    let mut seen = 0;
    while seen < count {
        let ev = events.next().await.expect("the run publishes its prompts");
        if ev.is::<InputRequiredEvent>() {
            seen += 1;
        }
    }
}

#[tokio::test]
async fn a_fan_out_snapshotted_half_way_resumes_and_joins_once() {
    let first = Approvals::default();
    let handler = first.clone().run(StartEvent::new());
    prompts(&handler, 4).await;
    handler.send_event(Vote { n: 2, yes: true }).unwrap();
    handler.send_event(Vote { n: 1, yes: false }).unwrap();
    // The answered steps end when they next run: wait until both have.
    let snapshot = loop {
        let snapshot = handler.snapshot().await.unwrap();
        if snapshot.invocations.len() == 2 {
            break snapshot;
        }
        tokio::task::yield_now().await;
    };
    handler.cancel_run();
    let _ = handler.await;
    assert_eq!(first.joins.load(Ordering::SeqCst), 0);

    // The branch of item 2 has ended with its `Done` collected, that of item 1 without one.
    let text = snapshot.to_json();
    let snapshot = Snapshot::from_json(&text).unwrap();
    assert_eq!(snapshot.status, RunStatus::Running);
    assert_eq!(snapshot.fan_outs.len(), 1);
    let join = &snapshot.fan_outs[0].joins[0];
    assert_eq!(join.step, "tally");
    assert_eq!(
        join.events.iter().map(|e| e.element).collect::<Vec<_>>(),
        [2]
    );
    assert_eq!(snapshot.invocations.len(), 2, "items 0 and 3 still wait");
    assert!(snapshot.invocations.iter().all(|i| i.scope.len() == 1));

    let second = Approvals::default();
    let handler = second.clone().runner().resume(snapshot).unwrap();
    handler.send_event(Vote { n: 3, yes: true }).unwrap();
    handler.send_event(Vote { n: 0, yes: true }).unwrap();
    assert_eq!(handler.await.unwrap(), [0, 2, 3]);
    assert_eq!(second.joins.load(Ordering::SeqCst), 1);
}

#[derive(Clone, Debug, Serialize, Deserialize, Event)]
#[event(external)]
struct Vote2 {
    n: u32,
}

/// A join whose event may also be sent from outside.
struct Ballot;

#[workflow]
impl Ballot {
    #[step]
    async fn split(&self, _ev: StartEvent) -> Vec<Item> {
        vec![Item { n: 1 }]
    }

    #[step]
    async fn vote(&self, ctx: &Context, item: Item) -> Result<Vote2, WaitError> {
        ctx.wait_for_event(
            WaitFor::<HumanResponseEvent>::new().prompt(InputRequiredEvent::new("vote?")),
        )
        .await?;
        Ok(Vote2 { n: item.n })
    }

    #[step]
    async fn count(&self, votes: Vec<Vote2>) -> StopEvent<usize> {
        StopEvent::new(votes.len())
    }
}

#[tokio::test]
async fn an_event_only_joins_take_is_refused_when_sent_in_from_outside() {
    let handler = Ballot.run(StartEvent::new());
    let err = handler.send_event(Vote2 { n: 9 }).unwrap_err();
    assert_eq!(
        err,
        workflows::SendError::OnlyJoins {
            event: "Vote2".into(),
            joins: vec!["count".into()]
        }
    );
    assert!(
        err.to_string()
            .contains("send it from a step inside the fan-out"),
        "{err}"
    );
    let err = handler.send_event_to("count", Vote2 { n: 9 }).unwrap_err();
    assert!(
        matches!(err, workflows::SendError::OnlyJoins { .. }),
        "{err}"
    );
    // The run goes on: the branch's own vote is collected.
    prompts(&handler, 1).await;
    handler.send_event(HumanResponseEvent::new("yes")).unwrap();
    assert_eq!(handler.await.unwrap(), 1);
}

#[tokio::test]
async fn a_snapshot_whose_fan_outs_do_not_add_up_is_refused_as_malformed() {
    let handler = Approvals::default().run(StartEvent::new());
    prompts(&handler, 4).await;
    let snapshot = handler.snapshot().await.unwrap();
    handler.cancel_run();
    let _ = handler.await;
    assert_eq!(snapshot.next_fan_out, 1);

    let mut numbered_ahead = snapshot.clone();
    numbered_ahead.next_fan_out = 0;
    let mut twice = snapshot.clone();
    twice.fan_outs.push(twice.fan_outs[0].clone());
    twice.next_fan_out = 2;
    let mut inside_itself = snapshot.clone();
    inside_itself.fan_outs[0].scope = vec![workflows::BranchRecord {
        fan_out: 0,
        element: 0,
    }];
    for (what, bad) in [
        ("numbered ahead", numbered_ahead),
        ("numbered twice", twice),
        ("inside itself", inside_itself),
    ] {
        match Approvals::default().runner().resume(bad) {
            Err(workflows::ResumeError::Malformed { message }) => {
                assert!(message.contains("fan-out"), "{what}: {message}")
            }
            other => panic!("{what}: {:?}", other.map(|_| ())),
        }
    }
}
