//! The Poller actor: the poll2 long poll of one account (WEBQQ.md §5).
//!
//! One loop spawned into the actor's context (never `ctx.wait`, which would block the
//! mailbox for the whole 60 s hold). Every answer goes to the Account with `send().await`:
//! events reach the handler in order, and the Account decides whether polling goes on.
//! Stopping the actor drops the poll in flight.

use std::sync::Arc;
use std::time::{Duration, Instant};

use actix::prelude::*;

use super::account::Account;
use super::handler;
use super::messages::{PollDirective, PollReport, Stop};
use super::webqq::WebQq;
use crate::events::{emit, PollCompleted, PollRetried, RetcodeReceived};
use crate::protocol::PollResult;

/// Transport errors in a row before the Poller gives up and the Account reconnects
/// (clients retried 2-3 times, §5.2).
pub const POLL_RETRIES: u32 = 3;

/// The poll2 loop of one account.
pub struct Poller {
    pub gen: u64,
    pub id: String,
    pub client: Arc<dyn WebQq>,
    pub account: Addr<Account>,
}

impl Actor for Poller {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        let fut = poll_loop(
            self.gen,
            self.id.clone(),
            self.client.clone(),
            self.account.clone(),
        );
        ctx.spawn(fut.into_actor(self).map(|_, _, ctx| ctx.stop()));
    }
}

impl Handler<Stop> for Poller {
    type Result = ();
    fn handle(&mut self, _: Stop, ctx: &mut Context<Self>) {
        ctx.stop();
    }
}

async fn poll_loop(gen: u64, id: String, client: Arc<dyn WebQq>, account: Addr<Account>) {
    let mut errors = 0u32;
    loop {
        let started = Instant::now();
        let res = client.poll().await;
        let elapsed = started.elapsed();
        let report = match res {
            Ok(PollResult::Idle) => {
                errors = 0;
                emit(PollCompleted {
                    account: &id,
                    outcome: "idle",
                    elapsed,
                });
                PollReport::Idle { gen }
            }
            Ok(PollResult::Events(events)) => {
                errors = 0;
                emit(PollCompleted {
                    account: &id,
                    outcome: "events",
                    elapsed,
                });
                PollReport::Events {
                    gen,
                    events: events.iter().map(handler::decode).collect(),
                    at: started + elapsed,
                }
            }
            Ok(PollResult::Retcode { retcode, action }) => {
                errors = 0;
                emit(PollCompleted {
                    account: &id,
                    outcome: "retcode",
                    elapsed,
                });
                emit(RetcodeReceived {
                    account: &id,
                    endpoint: "poll2",
                    retcode,
                });
                PollReport::Retcode {
                    gen,
                    retcode,
                    action,
                }
            }
            Err(e) => {
                errors += 1;
                emit(PollCompleted {
                    account: &id,
                    outcome: if e.is_transient() {
                        "transport"
                    } else {
                        "decode"
                    },
                    elapsed,
                });
                if errors < POLL_RETRIES {
                    let pause = Duration::from_millis(500) * errors;
                    emit(PollRetried {
                        account: &id,
                        attempt: errors,
                        error: &e.to_string(),
                        pause,
                    });
                    tokio::time::sleep(pause).await;
                    continue;
                }
                PollReport::Failed {
                    gen,
                    reason: e.to_string(),
                }
            }
        };
        match account.send(report).await {
            Ok(PollDirective::Continue(pause)) => {
                if !pause.is_zero() {
                    tokio::time::sleep(pause).await;
                }
            }
            Ok(PollDirective::Stop) | Err(_) => return,
        }
    }
}
