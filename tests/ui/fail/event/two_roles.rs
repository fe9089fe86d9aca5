use serde::{Deserialize, Serialize};
use workflows::Event;

#[derive(Clone, Debug, Serialize, Deserialize, Event)]
#[event(start, stop)]
struct Both;

fn main() {}
