//! What a signed-in user does with their browsers: trust this one ("don't ask again"), list and
//! end their sessions and saved sign-ins, and forget trusted browsers. Every revocation takes
//! effect on the next request of the browser it concerns (the session ends in the store and in
//! every gateway's cache), and is written to the audit trail.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;

use super::{audit, fault, Context, Fault};
use crate::amr::Amr;
use crate::auth::{Auth, Identity};
use crate::browsers::{self, Place, Trusted};
use crate::session::SessionKey;
use crate::store::SessionRecord;

/// Trusts the browser of `who` (just past the second factor) for the operator's lifetime:
/// the token for its cookie and the cookie's `Max-Age`. `None` when the feature is off.
pub async fn trust_this_browser(
    auth: &Auth,
    ctx: &Context<'_>,
    who: &str,
) -> Result<Option<(String, u64)>, Fault> {
    let Some(lifetime) = auth.two_factor.trusted_browser_lifetime else {
        return Ok(None);
    };
    let now = auth.clock.now_ms();
    let expires = now.saturating_add(lifetime.as_millis() as u64);
    let place = Place {
        browser: crate::user_agent::describe(ctx.user_agent),
        address: ctx.client.to_string(),
    };
    let (token, _) = browsers::trust(&auth.store, who, &place, now, expires)
        .await
        .map_err(|e| fault("could not trust a browser")(&e))?;
    audit(auth, ctx, who, "browser_trusted", &place.browser).await;
    Ok(Some((token, lifetime.as_secs())))
}

/// One of the user's sessions, as their list shows it.
#[derive(Debug, Clone)]
pub struct SessionView {
    /// What the end form posts (the store key in base64url: not the session ID).
    pub handle: String,
    pub this: bool,
    pub record: SessionRecord,
    pub level: &'static str,
}

fn handle(key: &SessionKey) -> String {
    URL_SAFE_NO_PAD.encode(key)
}

/// The user's sessions, this browser's first, then the most recently used.
pub async fn sessions(auth: &Auth, who: &Identity) -> Result<Vec<SessionView>, Fault> {
    let mine = auth
        .sessions
        .of_user(&who.user.name)
        .await
        .map_err(|e| fault("could not list sessions")(&e))?;
    let mut views: Vec<SessionView> = mine
        .into_iter()
        .map(|(key, record)| SessionView {
            handle: handle(&key),
            this: key == who.key,
            level: Amr::parse(&record.amr).map_or("1fa", |a| a.level().as_str()),
            record,
        })
        .collect();
    views.sort_by(|a, b| {
        b.this
            .cmp(&a.this)
            .then(b.record.last_seen_ms.cmp(&a.record.last_seen_ms))
    });
    Ok(views)
}

/// Ends one of the user's own sessions by its handle; `false` when there is no such session of
/// theirs (ended meanwhile, or someone else's).
pub async fn end_session(
    auth: &Auth,
    ctx: &Context<'_>,
    who: &Identity,
    handle_text: &str,
) -> Result<bool, Fault> {
    let mine = sessions(auth, who).await?;
    let Some(view) = mine.iter().find(|v| v.handle == handle_text) else {
        return Ok(false);
    };
    let Ok(key) = SessionKey::try_from(URL_SAFE_NO_PAD.decode(&view.handle).unwrap_or_default())
    else {
        return Ok(false);
    };
    auth.sessions
        .end(&key)
        .await
        .map_err(|e| fault("could not end a session")(&e))?;
    let what = if view.record.persistent {
        "saved sign-in"
    } else {
        "session"
    };
    audit(auth, ctx, &who.user.name, "session_ended", what).await;
    Ok(true)
}

/// "Sign out everywhere else": ends every session of the user but this one.
pub async fn end_others(auth: &Auth, ctx: &Context<'_>, who: &Identity) -> Result<usize, Fault> {
    let n = auth
        .sessions
        .end_others(&who.user.name, &who.key)
        .await
        .map_err(|e| fault("could not end sessions")(&e))?;
    audit(
        auth,
        ctx,
        &who.user.name,
        "sessions_ended",
        &format!("{n} others"),
    )
    .await;
    Ok(n)
}

/// The user's trusted browsers.
pub async fn trusted(auth: &Auth, who: &Identity) -> Result<Vec<Trusted>, Fault> {
    browsers::trusted(&auth.store, &who.user.name, auth.clock.now_ms())
        .await
        .map_err(|e| fault("could not list trusted browsers")(&e))
}

/// Forgets one trusted browser, and ends the sessions it stood in for (but this one: the user
/// is here).
pub async fn forget_trusted(
    auth: &Auth,
    ctx: &Context<'_>,
    who: &Identity,
    id: &str,
) -> Result<bool, Fault> {
    let user = &who.user.name;
    let found = browsers::forget(&auth.store, user, id)
        .await
        .map_err(|e| fault("could not forget a trusted browser")(&e))?;
    end_remembered(auth, user, Some(id), Some(&who.key)).await?;
    if found {
        audit(auth, ctx, user, "trusted_browser_removed", "").await;
    }
    Ok(found)
}

/// Forgets every trusted browser of the user ("remove all trusted browsers").
pub async fn forget_all_trusted(
    auth: &Auth,
    ctx: &Context<'_>,
    who: &Identity,
) -> Result<(), Fault> {
    revoke_trust(auth, &who.user.name, Some(&who.key)).await?;
    audit(auth, ctx, &who.user.name, "trusted_browsers_removed", "all").await;
    Ok(())
}

/// Forgets every trusted browser of `user` and ends the sessions they stood in for, but
/// `keep`: after a password change or reset, a second-factor reset, a lock, a disabled user.
pub async fn revoke_trust(auth: &Auth, user: &str, keep: Option<&SessionKey>) -> Result<(), Fault> {
    browsers::forget_all(&auth.store, user)
        .await
        .map_err(|e| fault("could not forget trusted browsers")(&e))?;
    end_remembered(auth, user, None, keep).await
}

/// Ends `user`'s sessions whose second factor was the trusted browser `id` (any, with `None`).
async fn end_remembered(
    auth: &Auth,
    user: &str,
    id: Option<&str>,
    keep: Option<&SessionKey>,
) -> Result<(), Fault> {
    let mine = auth
        .sessions
        .of_user(user)
        .await
        .map_err(|e| fault("could not list sessions")(&e))?;
    for (key, record) in mine {
        let stood_in = !record.trusted.is_empty() && id.is_none_or(|id| record.trusted == id);
        if stood_in && Some(&key) != keep {
            auth.sessions
                .end(&key)
                .await
                .map_err(|e| fault("could not end a session")(&e))?;
        }
    }
    Ok(())
}
