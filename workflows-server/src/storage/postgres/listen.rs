//! Telling servers of each other's changes. A write that a reader elsewhere waits for (a
//! run's events, its end, its replacement or deletion) notifies [`CHANNEL`] in its own
//! transaction, so the notification goes out when, and only if, the write commits. Each
//! server listens on a connection of its own, outside the pool, and passes the handler ids
//! on ([`ChangeFeed::Shared`](crate::storage::ChangeFeed::Shared)).
//!
//! A notification can go untold while the listening connection is cut: the listener says
//! so ([`Change::Missed`]) when it is back, and every second while it is not, so that the
//! readers look again.

use std::time::Duration;

use tokio::sync::mpsc;
use tokio_postgres::AsyncMessage;

use super::connect::Connector;
use crate::storage::{Change, ErrorChain};

/// The channel servers notify on, with the handler id as the payload.
pub(super) const CHANNEL: &str = "workflows_changes";

/// Notifies [`CHANNEL`] of the handler `$1`, at the commit of the calling transaction.
pub(super) const NOTIFY: &str = "SELECT pg_notify('workflows_changes', $1)";

/// How long a cut listener waits before it connects again.
const RECONNECT: Duration = Duration::from_secs(1);

/// How many changes may wait for the server to take them.
const BACKLOG: usize = 4096;

/// Starts listening; the changes come through the receiver. The listener stops when the
/// receiver is dropped.
pub(super) fn listen(connector: Connector) -> mpsc::Receiver<Change> {
    let (changes, received) = mpsc::channel(BACKLOG);
    tokio::spawn(async move {
        // Whether the present cut was logged: once a cut, not every second while it lasts.
        let mut cut_told = false;
        loop {
            tokio::select! {
                () = changes.closed() => return,
                heard = hear(&connector, &changes, &mut cut_told) => match heard {
                    Heard::ReceiverGone => return,
                    Heard::Cut(why) => {
                        if !cut_told {
                            tracing::warn!(
                                "not hearing other servers' changes ({why}); the readers of \
                                 their runs look every second until it is back"
                            );
                            cut_told = true;
                        }
                    }
                },
            }
            if changes.send(Change::Missed).await.is_err() {
                return;
            }
            tokio::select! {
                () = changes.closed() => return,
                () = tokio::time::sleep(RECONNECT) => {}
            }
        }
    });
    received
}

/// How hearing ended.
enum Heard {
    /// No one takes the changes any more.
    ReceiverGone,
    /// The connection failed or closed, for this reason.
    Cut(String),
}

/// Listens on a new connection and passes on what it hears, until the connection ends.
async fn hear(connector: &Connector, changes: &mpsc::Sender<Change>, cut_told: &mut bool) -> Heard {
    let (client, mut messages) = match connector.connect_alone().await {
        Ok(connected) => connected,
        Err(e) => return Heard::Cut(ErrorChain(&e).to_string()),
    };
    if let Err(e) = client.batch_execute(&format!("LISTEN {CHANNEL}")).await {
        return Heard::Cut(ErrorChain(&e).to_string());
    }
    if std::mem::take(cut_told) {
        tracing::info!("hearing other servers' changes again");
    }
    // What committed before the LISTEN took effect was told to no one here.
    if changes.send(Change::Missed).await.is_err() {
        return Heard::ReceiverGone;
    }
    while let Some(message) = messages.recv().await {
        if let AsyncMessage::Notification(n) = message
            && changes
                .send(Change::Handler(n.payload().to_owned()))
                .await
                .is_err()
        {
            return Heard::ReceiverGone;
        }
    }
    Heard::Cut("the connection closed".into())
}
