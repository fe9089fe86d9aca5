//! The workflows the binary serves besides the number workflow, to show what the console does
//! with structured requests and with parallel branches.

use serde::{Deserialize, Serialize};
use workflows::prelude::*;
// Each event type also derives `JsonSchema`, so that its schema (and the console's form) is
// exact: the category an enum, defaults given.
use schemars::JsonSchema;

/// What an expense is for.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Category {
    /// Tickets, hotels.
    #[default]
    Travel,
    /// Meals with customers.
    Meals,
    /// Hardware, books.
    Equipment,
    /// Anything else.
    Other,
}

/// An expense claim: how much, what for, and why.
#[derive(Clone, Debug, Serialize, Deserialize, Event, JsonSchema)]
#[event(start)]
pub struct ExpenseClaim {
    /// Who spent it.
    pub employee: String,
    /// The amount, in euros.
    pub amount: f64,
    /// What it was for.
    #[serde(default)]
    pub category: Category,
    /// Why it was needed.
    pub reason: String,
}

/// The question a manager answers about a claim over the limit.
#[derive(Clone, Debug, Serialize, Deserialize, Event, JsonSchema)]
#[event(input_required(response = ExpenseDecision))]
pub struct ApprovalRequest {
    /// Who spent it.
    pub employee: String,
    /// The amount, in euros.
    pub amount: f64,
    /// What it was for.
    pub category: Category,
    /// Why it was needed.
    pub reason: String,
}

/// A manager's answer.
#[derive(Clone, Debug, Serialize, Deserialize, Event, JsonSchema)]
#[event(response)]
pub struct ExpenseDecision {
    /// Whether the claim is paid.
    pub approve: bool,
    /// Why, for the employee.
    #[serde(default)]
    pub comment: String,
}

/// How a claim ended.
#[derive(Clone, Debug, Serialize, Deserialize, Event, JsonSchema)]
#[event(stop)]
pub struct ExpenseOutcome {
    /// Whether it is paid.
    pub approved: bool,
    /// Who decided: `policy` under the limit, else `manager`.
    pub decided_by: String,
    /// The manager's comment.
    pub comment: String,
}

/// Claims up to `limit` euros are approved at once; a manager decides the others. The
/// request is returned, and the decision taken by a step of its own, so the graph shows the
/// pair.
pub struct ExpenseApproval {
    /// The most a claim may be without a manager.
    pub limit: f64,
}

/// The claim a manager is deciding.
#[derive(Default, Serialize, Deserialize)]
pub struct Pending {
    /// Who asked for how much.
    pub claim: Option<(String, f64)>,
}

/// What `review` does with a claim.
#[derive(OneOf)]
pub enum Review {
    /// Approved under the limit.
    Approved(ExpenseOutcome),
    /// Asks a manager.
    Ask(ApprovalRequest),
}

#[workflow(state = Pending)]
impl ExpenseApproval {
    #[step]
    async fn review(&self, ctx: &Context<Pending>, claim: ExpenseClaim) -> Review {
        if claim.amount <= self.limit {
            return Review::Approved(ExpenseOutcome {
                approved: true,
                decided_by: "policy".into(),
                comment: format!("at most {} euros: approved without review", self.limit),
            });
        }
        ctx.edit_state(|s| s.claim = Some((claim.employee.clone(), claim.amount)));
        Review::Ask(ApprovalRequest {
            employee: claim.employee,
            amount: claim.amount,
            category: claim.category,
            reason: claim.reason,
        })
    }

    #[step]
    async fn decide(&self, ctx: &Context<Pending>, decision: ExpenseDecision) -> ExpenseOutcome {
        let claim = ctx.edit_state(|s| s.claim.take());
        let comment = match (claim, decision.comment.is_empty()) {
            (Some((employee, amount)), true) => format!("{employee}, {amount} euros"),
            _ => decision.comment,
        };
        ExpenseOutcome {
            approved: decision.approve,
            decided_by: "manager".into(),
            comment,
        }
    }
}

/// A release to sign off: its version, who to ask, who owns it.
#[derive(Clone, Debug, Serialize, Deserialize, Event, JsonSchema)]
#[event(start)]
pub struct Release {
    /// The version being released.
    pub version: String,
    /// The teams that sign it off, each asked at once.
    #[serde(default = "default_teams")]
    pub teams: Vec<String>,
    /// Who to tell when it ships.
    #[serde(default)]
    pub owner: Owner,
}

/// Who owns a release.
#[derive(Clone, Debug, Default, Serialize, Deserialize, JsonSchema)]
pub struct Owner {
    /// Their name.
    pub name: String,
    /// Where to write to them.
    #[serde(default)]
    pub email: Option<String>,
}

fn default_teams() -> Vec<String> {
    ["legal", "security", "docs"].map(String::from).to_vec()
}

/// One team's part of a release's checks: a branch of the fan-out.
#[derive(Clone, Debug, Serialize, Deserialize, Event, JsonSchema)]
pub struct TeamCheck {
    /// The team.
    pub team: String,
    /// The version.
    pub version: String,
}

/// The question one team answers.
#[derive(Clone, Debug, Serialize, Deserialize, Event, JsonSchema)]
#[event(input_required(response = SignOff))]
pub struct SignOffRequest {
    /// The team asked.
    pub team: String,
    /// What it signs off.
    pub question: String,
}

/// A team's answer.
#[derive(Clone, Debug, Serialize, Deserialize, Event, JsonSchema)]
#[event(response)]
pub struct SignOff {
    /// The team answering.
    pub team: String,
    /// Whether it agrees.
    pub ok: bool,
    /// A note for the others.
    #[serde(default)]
    pub note: String,
}

/// One team's verdict, joined with the others'.
#[derive(Clone, Debug, Serialize, Deserialize, Event, JsonSchema)]
pub struct Verdict {
    /// The team.
    pub team: String,
    /// Whether it agreed.
    pub ok: bool,
    /// Its note.
    pub note: String,
}

/// Asks each of a release's teams at once, in branches of their own, to sign it off;
/// releases when all agree.
pub struct ReleaseSignOff;

#[workflow]
impl ReleaseSignOff {
    #[step]
    async fn split(&self, release: Release) -> Vec<TeamCheck> {
        release
            .teams
            .iter()
            .map(|team| TeamCheck {
                team: team.clone(),
                version: release.version.clone(),
            })
            .collect()
    }

    #[step(num_workers = 32)]
    async fn ask(&self, ctx: &Context, check: TeamCheck) -> Result<Verdict, WaitError> {
        let answer = ctx
            .wait_for_event(
                WaitFor::<SignOff>::new()
                    .id(format!("sign-off-{}", check.team))
                    .prompt(SignOffRequest {
                        team: check.team.clone(),
                        question: format!(
                            "Can {} ship as far as {} is concerned?",
                            check.version, check.team
                        ),
                    })
                    .require(workflows::field!(SignOff, team), check.team.clone()),
            )
            .await?;
        Ok(Verdict {
            team: check.team,
            ok: answer.ok,
            note: answer.note,
        })
    }

    #[step]
    async fn decide(&self, verdicts: Vec<Verdict>) -> StopEvent<serde_json::Value> {
        let held: Vec<&str> = verdicts
            .iter()
            .filter(|v| !v.ok)
            .map(|v| v.team.as_str())
            .collect();
        StopEvent::new(serde_json::json!({
            "released": held.is_empty(),
            "held_by": held,
            "notes": verdicts.iter().map(|v| (v.team.clone(), v.note.clone())).collect::<std::collections::BTreeMap<_, _>>(),
        }))
    }
}
