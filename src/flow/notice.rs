//! Security notices: who is told, and what they are told about where a change came from.

use crate::auth::Auth;
use crate::notify::{compose, Channel, MessageKind, Origin};
use crate::users::User;

use super::Context;

/// The addresses security notices go to now: the registered email and the emergency contact
/// email. A fault reading the contact is logged and leaves the registered email alone.
pub async fn addresses(auth: &Auth, user: &User) -> Vec<String> {
    let mut to: Vec<String> = user.email.iter().cloned().collect();
    match auth.factors.emergency_email(&user.name).await {
        Ok(Some(e)) if !to.iter().any(|t| t.eq_ignore_ascii_case(&e)) => to.push(e),
        Ok(_) => {}
        Err(e) => {
            tracing::error!(target: "stepgate::notify", error = %e, "could not read the emergency contact email")
        }
    }
    to
}

/// Sends a notice to the user's addresses and to `also`: the addresses registered *before* the
/// change it reports, so that whoever made the change cannot keep the notice from the owner by
/// changing where notices go (ASVS 5.0 6.4.5, NIST SP 800-63B §6.1.2.3). Best effort: the step it reports has already
/// happened, so a failure to send is logged (with the cause) and does not undo it.
pub async fn tell(
    auth: &Auth,
    ctx: &Context<'_>,
    user: &User,
    kind: MessageKind<'_>,
    also: &[String],
) {
    let mut to = addresses(auth, user).await;
    for a in also {
        if !to.iter().any(|t| t.eq_ignore_ascii_case(a)) {
            to.push(a.clone());
        }
    }
    send(auth, ctx, user, &user.display_name, &kind, &to, None).await;
}

/// A notice with a link the user is meant to open (the sign-in alert's "this wasn't me", the
/// reset page), to the user's addresses.
pub async fn tell_with_link(
    auth: &Auth,
    ctx: &Context<'_>,
    user: &User,
    kind: MessageKind<'_>,
    link: &str,
) {
    let to = addresses(auth, user).await;
    send(auth, ctx, user, &user.display_name, &kind, &to, Some(link)).await;
}

/// A notice to a phone by SMS (the old number of a changed 2FA phone). Best effort.
pub async fn text(auth: &Auth, ctx: &Context<'_>, user: &User, kind: MessageKind<'_>, phone: &str) {
    let msg = compose(
        &kind,
        ctx.lang.tag(),
        Channel::Sms,
        phone,
        ctx.service,
        &user.display_name,
        None,
    );
    if let Err(e) = auth.notifiers.send(&msg).await {
        tracing::error!(target: "stepgate::notify", user = %user.name, error = %e, "security notice by SMS not delivered");
    }
}

/// A notice about `user` to the operator (`notify.operator_email`), if one is configured.
pub async fn tell_operator(auth: &Auth, ctx: &Context<'_>, user: &User, kind: MessageKind<'_>) {
    let Some(operator) = auth.notifiers.operator().map(str::to_owned) else {
        return;
    };
    let about = format!("{} ({})", user.display_name, user.name);
    send(auth, ctx, user, &about, &kind, &[operator], None).await;
}

/// Sends `kind` about `user` to each of `to`, greeting `greeted`.
async fn send(
    auth: &Auth,
    ctx: &Context<'_>,
    user: &User,
    greeted: &str,
    kind: &MessageKind<'_>,
    to: &[String],
    link: Option<&str>,
) {
    for address in to {
        let msg = compose(
            kind,
            ctx.lang.tag(),
            Channel::Email,
            address,
            ctx.service,
            greeted,
            link,
        );
        if let Err(e) = auth.notifiers.send(&msg).await {
            tracing::error!(target: "stepgate::notify", user = %user.name, error = %e, "security notice not delivered");
        }
    }
}

/// When, from where and on which browser the step is made, for the notice of a change.
pub fn origin(auth: &Auth, ctx: &Context<'_>) -> Origin {
    Origin {
        at_ms: auth.clock.now_ms(),
        address: ctx.client.to_string(),
        browser: crate::user_agent::describe(ctx.user_agent),
    }
}
