//! Retries and a failure step: a flaky "exchange-rate service" is called with exponential
//! back-off; when it keeps failing, a failure step answers from a stale cache instead of
//! failing the run.
//!
//! ```text
//! cargo run -p workflows-examples --bin retries            # succeeds on the third attempt
//! cargo run -p workflows-examples --bin retries -- down    # never succeeds: the cache answers
//! ```

use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use workflows::prelude::*;

/// Pretends to be a remote service that fails its first `failures` calls.
struct RateService {
    calls: AtomicU32,
    failures: u32,
}

#[derive(Debug)]
struct Unavailable {
    attempt: u32,
}

impl std::fmt::Display for Unavailable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "service unavailable (call {})", self.attempt)
    }
}

impl std::error::Error for Unavailable {}

impl RateService {
    async fn rate(&self, from: &str, to: &str) -> Result<f64, Unavailable> {
        tokio::time::sleep(Duration::from_millis(5)).await;
        let attempt = self.calls.fetch_add(1, Ordering::SeqCst) + 1;
        if attempt <= self.failures {
            return Err(Unavailable { attempt });
        }
        Ok(if (from, to) == ("EUR", "USD") {
            1.08
        } else {
            1.0
        })
    }
}

#[derive(Clone, Debug, Serialize, Deserialize)]
struct Quote {
    rate: f64,
    source: String,
}

struct Exchange {
    service: RateService,
}

#[workflow]
impl Exchange {
    #[step(retry = RetryPolicy::attempts(4)
        .exponential(Duration::from_millis(20), 2.0, Duration::from_millis(200))
        .jitter(0.1))]
    async fn fetch(&self, ctx: &Context, ev: StartEvent) -> Result<StopEvent<Quote>, Unavailable> {
        let info = ctx.retry_info();
        println!("fetch: attempt {} of {}", info.attempt, info.max_attempts);
        let from: String = ev.get("from").unwrap_or_else(|| "EUR".into());
        let to: String = ev.get("to").unwrap_or_else(|| "USD".into());
        let rate = self.service.rate(&from, &to).await?;
        Ok(StopEvent::new(Quote {
            rate,
            source: "live".into(),
        }))
    }

    /// Runs when `fetch` has failed for good; answering recovers the run.
    #[step]
    async fn use_cache(&self, failed: StepFailed) -> StopEvent<Quote> {
        println!(
            "use_cache: `{}` failed after {} attempts ({}); using the cached rate",
            failed.step, failed.attempts, failed.error
        );
        StopEvent::new(Quote {
            rate: 1.07,
            source: "cache (stale)".into(),
        })
    }
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    match run().await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("error: {err}");
            std::process::ExitCode::FAILURE
        }
    }
}

async fn run() -> Result<(), WorkflowError> {
    let down = std::env::args().nth(1).as_deref() == Some("down");
    let failures = if down { u32::MAX } else { 2 };
    let workflow = Exchange {
        service: RateService {
            calls: AtomicU32::new(0),
            failures,
        },
    };
    let quote = workflow
        .run(StartEvent::new().with("from", "EUR").with("to", "USD"))
        .await?;
    println!("EUR→USD = {} ({})", quote.rate, quote.source);
    Ok(())
}
