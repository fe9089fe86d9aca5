use workflows::prelude::*;

struct W;

// Only the mistake is reported: the workflow's uses below still type-check.
#[workflow]
impl W {
    #[step]
    fn ask(&self, _ev: StartEvent) -> InputRequiredEvent {
        InputRequiredEvent::new("?")
    }

    #[step]
    async fn answer(&self, ev: HumanResponseEvent) -> StopEvent<String> {
        StopEvent::new(ev.response)
    }
}

#[tokio::main]
async fn main() {
    let handler = W.run(StartEvent::new());
    handler.send_event(HumanResponseEvent::new("1")).unwrap();
    let answer: String = handler.await.unwrap();
    println!("{answer}");
}
