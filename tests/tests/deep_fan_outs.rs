//! Four levels of nested fan-outs over 25 steps: the binding rules, evaluated at compile time,
//! stay within the compiler's budget (the workflow compiles), and the run joins every level.

use serde::{Deserialize, Serialize};
use workflows::prelude::*;
#[derive(Clone, Debug, Serialize, Deserialize, Event)]
struct L1(u32);
#[derive(Clone, Debug, Serialize, Deserialize, Event)]
struct W1_1(u32);
#[derive(Clone, Debug, Serialize, Deserialize, Event)]
struct W1_2(u32);
#[derive(Clone, Debug, Serialize, Deserialize, Event)]
struct W1_3(u32);
#[derive(Clone, Debug, Serialize, Deserialize, Event)]
struct W1_4(u32);
#[derive(Clone, Debug, Serialize, Deserialize, Event)]
struct J1(u32);
#[derive(Clone, Debug, Serialize, Deserialize, Event)]
struct L2(u32);
#[derive(Clone, Debug, Serialize, Deserialize, Event)]
struct W2_1(u32);
#[derive(Clone, Debug, Serialize, Deserialize, Event)]
struct W2_2(u32);
#[derive(Clone, Debug, Serialize, Deserialize, Event)]
struct W2_3(u32);
#[derive(Clone, Debug, Serialize, Deserialize, Event)]
struct W2_4(u32);
#[derive(Clone, Debug, Serialize, Deserialize, Event)]
struct J2(u32);
#[derive(Clone, Debug, Serialize, Deserialize, Event)]
struct L3(u32);
#[derive(Clone, Debug, Serialize, Deserialize, Event)]
struct W3_1(u32);
#[derive(Clone, Debug, Serialize, Deserialize, Event)]
struct W3_2(u32);
#[derive(Clone, Debug, Serialize, Deserialize, Event)]
struct W3_3(u32);
#[derive(Clone, Debug, Serialize, Deserialize, Event)]
struct W3_4(u32);
#[derive(Clone, Debug, Serialize, Deserialize, Event)]
struct J3(u32);
#[derive(Clone, Debug, Serialize, Deserialize, Event)]
struct L4(u32);
#[derive(Clone, Debug, Serialize, Deserialize, Event)]
struct W4_1(u32);
#[derive(Clone, Debug, Serialize, Deserialize, Event)]
struct W4_2(u32);
#[derive(Clone, Debug, Serialize, Deserialize, Event)]
struct W4_3(u32);
#[derive(Clone, Debug, Serialize, Deserialize, Event)]
struct W4_4(u32);
#[derive(Clone, Debug, Serialize, Deserialize, Event)]
struct J4(u32);
struct Deep;
#[workflow]
impl Deep {
    #[step]
    async fn start(&self, _ev: StartEvent) -> Vec<L1> {
        vec![L1(1)]
    }
    #[step]
    async fn e1(&self, ev: L1) -> W1_1 {
        W1_1(ev.0)
    }
    #[step]
    async fn w1_1(&self, ev: W1_1) -> W1_2 {
        W1_2(ev.0)
    }
    #[step]
    async fn w1_2(&self, ev: W1_2) -> W1_3 {
        W1_3(ev.0)
    }
    #[step]
    async fn w1_3(&self, ev: W1_3) -> W1_4 {
        W1_4(ev.0)
    }
    #[step]
    async fn f1(&self, ev: W1_4) -> Vec<L2> {
        vec![L2(ev.0)]
    }
    #[step]
    async fn j1(&self, evs: Vec<J2>) -> J1 {
        J1(evs.len() as u32)
    }
    #[step]
    async fn e2(&self, ev: L2) -> W2_1 {
        W2_1(ev.0)
    }
    #[step]
    async fn w2_1(&self, ev: W2_1) -> W2_2 {
        W2_2(ev.0)
    }
    #[step]
    async fn w2_2(&self, ev: W2_2) -> W2_3 {
        W2_3(ev.0)
    }
    #[step]
    async fn w2_3(&self, ev: W2_3) -> W2_4 {
        W2_4(ev.0)
    }
    #[step]
    async fn f2(&self, ev: W2_4) -> Vec<L3> {
        vec![L3(ev.0)]
    }
    #[step]
    async fn j2(&self, evs: Vec<J3>) -> J2 {
        J2(evs.len() as u32)
    }
    #[step]
    async fn e3(&self, ev: L3) -> W3_1 {
        W3_1(ev.0)
    }
    #[step]
    async fn w3_1(&self, ev: W3_1) -> W3_2 {
        W3_2(ev.0)
    }
    #[step]
    async fn w3_2(&self, ev: W3_2) -> W3_3 {
        W3_3(ev.0)
    }
    #[step]
    async fn w3_3(&self, ev: W3_3) -> W3_4 {
        W3_4(ev.0)
    }
    #[step]
    async fn f3(&self, ev: W3_4) -> Vec<L4> {
        vec![L4(ev.0)]
    }
    #[step]
    async fn j3(&self, evs: Vec<J4>) -> J3 {
        J3(evs.len() as u32)
    }
    #[step]
    async fn e4(&self, ev: L4) -> W4_1 {
        W4_1(ev.0)
    }
    #[step]
    async fn w4_1(&self, ev: W4_1) -> W4_2 {
        W4_2(ev.0)
    }
    #[step]
    async fn w4_2(&self, ev: W4_2) -> W4_3 {
        W4_3(ev.0)
    }
    #[step]
    async fn w4_3(&self, ev: W4_3) -> W4_4 {
        W4_4(ev.0)
    }
    #[step]
    async fn f4(&self, ev: W4_4) -> J4 {
        J4(ev.0)
    }
    #[step]
    async fn end(&self, evs: Vec<J1>) -> StopEvent<usize> {
        StopEvent::new(evs.len())
    }
}
#[tokio::test]
async fn deep_nesting_runs() {
    assert_eq!(Deep.run(StartEvent::new()).await.unwrap(), 1);
}
