//! `stepgate admin devices USER [--remove ID | --remove-all]`: the user's approver devices
//! (docs/devices.md), as a table or `--json`; an operator removes one (a lost phone) or all.

use anyhow::Result;
use serde::Serialize;

use super::{record, table, when, Ctx, Output};
use stepgate::audit::rfc3339;
use stepgate::devices::{self, Approver};

/// One approver device as `devices --json` shows it.
#[derive(Serialize)]
struct DeviceView {
    #[serde(flatten)]
    device: Approver,
    added: String,
    last_used: String,
}

#[derive(Serialize)]
struct DevicesDoc<'a> {
    user: &'a str,
    devices: Vec<DeviceView>,
    /// The devices this command removed (empty when it only listed).
    removed: Vec<String>,
}

/// Which devices to remove.
pub(super) enum Remove {
    None,
    One(String),
    All,
}

pub(super) async fn devices(ctx: &Ctx, remove: Remove, out: Output) -> Result<()> {
    let user = &ctx.user;
    let list = devices::approvers(&ctx.store, user).await?;
    let removed: Vec<String> = match &remove {
        Remove::None => Vec::new(),
        Remove::One(id) => list
            .iter()
            .filter(|d| &d.id == id)
            .map(|d| d.id.clone())
            .collect(),
        Remove::All => list.iter().map(|d| d.id.clone()).collect(),
    };
    if let Remove::One(id) = &remove {
        if removed.is_empty() {
            anyhow::bail!(
                "{user} has no approver device {id:?} (see `stepgate admin devices {user}`)"
            );
        }
    }
    for id in &removed {
        devices::remove(&ctx.store, user, id).await?;
        record(ctx, "approver_removed_by_operator", id.clone()).await?;
    }
    let views: Vec<DeviceView> = list
        .into_iter()
        .filter(|d| !removed.contains(&d.id))
        .map(|d| DeviceView {
            added: rfc3339(d.added_ms),
            last_used: rfc3339(d.last_used_ms),
            device: d,
        })
        .collect();
    let mut text = match removed.len() {
        0 => String::new(),
        n => format!("removed {n} approver device(s) of {user}\n"),
    };
    if views.is_empty() {
        text.push_str(&format!("{user} has no approver devices\n"));
    } else {
        let rows = views.iter().map(|v| {
            let d = &v.device;
            vec![
                d.id.clone(),
                d.browser.clone(),
                d.address.clone(),
                when(d.added_ms),
                when(d.last_used_ms),
            ]
        });
        text.push_str(&table(
            &["ID", "BROWSER", "ADDRESS", "ADDED", "LAST USED"],
            rows,
        ));
    }
    out.print(
        &text,
        &DevicesDoc {
            user,
            devices: views,
            removed,
        },
    )
}
