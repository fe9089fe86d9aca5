//! Failure steps with a scope and a budget: a checkout whose price lookup falls back to a cache
//! when the pricing service is down, and whose payment tries the customer's other cards, at
//! most twice, when a card is declined.
//!
//! ```text
//! cargo run -p workflows-examples --bin failures                 # the first card is declined
//! cargo run -p workflows-examples --bin failures -- all-declined # every card is: the run fails
//! ```

use serde::{Deserialize, Serialize};
use workflows::prelude::*;

#[derive(Clone, Debug, Serialize, Deserialize, Event)]
struct Priced {
    cents: u64,
    cached: bool,
}

#[derive(Clone, Debug, Serialize, Deserialize, Event)]
struct Charge {
    cents: u64,
    card: usize,
}

/// The pricing service's error.
#[derive(Debug)]
struct ServiceDown;

impl std::fmt::Display for ServiceDown {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("the pricing service is down")
    }
}

impl std::error::Error for ServiceDown {}

/// The payment provider's error, with what the handler needs to try again.
#[derive(Debug)]
struct Declined {
    cents: u64,
    card: usize,
}

impl std::fmt::Display for Declined {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "card #{} was declined", self.card)
    }
}

impl std::error::Error for Declined {}

struct Checkout {
    /// Cards numbered below this are declined.
    first_good_card: usize,
}

#[workflow]
impl Checkout {
    #[step(retry = RetryPolicy::attempts(2))]
    async fn price(&self, _ev: StartEvent) -> Result<Priced, ServiceDown> {
        println!("price: asking the pricing service");
        Err(ServiceDown)
    }

    #[step]
    async fn pay(&self, priced: Priced) -> Charge {
        if priced.cached {
            println!("pay: using the cached price");
        }
        Charge {
            cents: priced.cents,
            card: 0,
        }
    }

    #[step]
    async fn charge(&self, charge: Charge) -> Result<StopEvent<String>, Declined> {
        println!("charge: card #{} for {} cents", charge.card, charge.cents);
        if charge.card < self.first_good_card {
            return Err(Declined {
                cents: charge.cents,
                card: charge.card,
            });
        }
        Ok(StopEvent::new(format!(
            "paid {} cents with card #{}",
            charge.cents, charge.card
        )))
    }

    /// Handles the pricing step's failures only: the last known price.
    #[step(catch(price))]
    async fn cached_price(&self, failed: StepFailed) -> Priced {
        println!(
            "cached_price: {} after {} attempts",
            failed.error, failed.attempts
        );
        Priced {
            cents: 1250,
            cached: true,
        }
    }

    /// Handles declined payments: the next card, twice at most on one checkout (a third
    /// decline ends the run with it).
    #[step(catch(charge), max_recoveries = 2)]
    async fn next_card(&self, failed: StepFailed) -> Option<Charge> {
        let declined = failed.error_as::<Declined>()?;
        println!("next_card: {declined}; trying the next card");
        Some(Charge {
            cents: declined.cents,
            card: declined.card + 1,
        })
    }
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let first_good_card = match std::env::args().nth(1).as_deref() {
        Some("all-declined") => usize::MAX,
        _ => 1,
    };
    match (Checkout { first_good_card }).run(StartEvent::new()).await {
        Ok(receipt) => {
            println!("{receipt}");
            std::process::ExitCode::SUCCESS
        }
        Err(err) => {
            eprintln!("error: {err}");
            std::process::ExitCode::FAILURE
        }
    }
}
