//! Approval on one of the user's approver devices as a second factor: the answer is the secret
//! ID of the request the browser made (`devices::Request::id`, given to that browser only), and
//! it is accepted once the request was approved, exactly once (`devices::use_approval`).
//! Making requests, deciding them and their limits are the flow's (`flow::approvals`).

use std::sync::Arc;

use async_trait::async_trait;

use super::{Begun, FactorError, FactorKind, SecondFactor, Shared, Verdict};
use crate::devices::{self, Outcome};

pub struct Approval {
    shared: Arc<Shared>,
}

impl Approval {
    pub(crate) fn new(shared: Arc<Shared>) -> Approval {
        Approval { shared }
    }
}

#[async_trait]
impl SecondFactor for Approval {
    fn kind(&self) -> FactorKind {
        FactorKind::Approve
    }

    async fn enrolled(&self, user: &str) -> Result<bool, FactorError> {
        Ok(!devices::approvers(&self.shared.store, user)
            .await?
            .is_empty())
    }

    async fn begin(&self, _user: &str) -> Result<Begun, FactorError> {
        // A request needs the requesting session and where it comes from: `flow::approvals`.
        Ok(Begun::Ready)
    }

    async fn verify(&self, user: &str, answer: &str) -> Result<Verdict, FactorError> {
        if crate::browsers::token_key(answer).is_none() {
            return Ok(Verdict::Malformed);
        }
        let now = self.shared.clock.now_ms();
        Ok(
            match devices::use_approval(&self.shared.store, user, answer, now).await? {
                Outcome::Approved => Verdict::Accepted {
                    kind: FactorKind::Approve,
                    remaining: None,
                },
                Outcome::Pending => Verdict::Pending,
                Outcome::Denied => Verdict::Denied,
                Outcome::Gone => Verdict::Expired,
            },
        )
    }

    async fn remove(&self, user: &str) -> Result<bool, FactorError> {
        let had = self.enrolled(user).await?;
        devices::remove_all(&self.shared.store, user).await?;
        Ok(had)
    }
}
