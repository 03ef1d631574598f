//! Passkeys over HTTP, with a software authenticator written here (an ES256 key from `ring`,
//! "none" attestation, CBOR by hand): registration behind a fresh proof, the second factor with
//! a passkey (`hwk` reaches the app), and every refusal: no session, a one-factor session, no
//! fresh proof, a wrong CSRF token, a replayed or expired ceremony, a wrong origin, a signature
//! counter that goes backwards.

mod common;

use std::time::Duration;

use common::two_factor::*;
use common::*;
use ring::rand::SystemRandom;
use ring::signature::{EcdsaKeyPair, KeyPair, ECDSA_P256_SHA256_ASN1_SIGNING};
use serde_json::{json, Value};

/// `[passkeys]` for a gateway whose port `{port}` is.
const PASSKEYS: &str = r#"
[passkeys]
enabled = true
rp_id = "localhost"
origins = ["http://localhost:{port}"]
"#;

fn b64u(bytes: &[u8]) -> String {
    data_encoding::BASE64URL_NOPAD.encode(bytes)
}

fn unb64u(text: &str) -> Vec<u8> {
    data_encoding::BASE64URL_NOPAD
        .decode(text.trim_end_matches('=').as_bytes())
        .expect("base64url")
}

fn sha256(data: &[u8]) -> Vec<u8> {
    ring::digest::digest(&ring::digest::SHA256, data)
        .as_ref()
        .to_vec()
}

/// The little CBOR an authenticator writes: unsigned and negative integers, byte and text
/// strings, maps.
enum Cbor {
    Int(i64),
    Bytes(Vec<u8>),
    Text(&'static str),
    Map(Vec<(Cbor, Cbor)>),
}

impl Cbor {
    fn head(out: &mut Vec<u8>, major: u8, n: u64) {
        let m = major << 5;
        match n {
            0..=23 => out.push(m | n as u8),
            24..=0xff => out.extend([m | 24, n as u8]),
            0x100..=0xffff => {
                out.push(m | 25);
                out.extend((n as u16).to_be_bytes());
            }
            _ => {
                out.push(m | 26);
                out.extend((n as u32).to_be_bytes());
            }
        }
    }

    fn encode(&self, out: &mut Vec<u8>) {
        match self {
            Cbor::Int(i) if *i >= 0 => Cbor::head(out, 0, *i as u64),
            Cbor::Int(i) => Cbor::head(out, 1, (-1 - *i) as u64),
            Cbor::Bytes(b) => {
                Cbor::head(out, 2, b.len() as u64);
                out.extend(b);
            }
            Cbor::Text(t) => {
                Cbor::head(out, 3, t.len() as u64);
                out.extend(t.as_bytes());
            }
            Cbor::Map(entries) => {
                Cbor::head(out, 5, entries.len() as u64);
                for (k, v) in entries {
                    k.encode(out);
                    v.encode(out);
                }
            }
        }
    }

    fn bytes(&self) -> Vec<u8> {
        let mut out = Vec::new();
        self.encode(&mut out);
        out
    }
}

/// A platform authenticator with one ES256 credential, user verification always done.
struct SoftAuthenticator {
    key: EcdsaKeyPair,
    id: Vec<u8>,
    /// The user handle given at registration (kept: the credential is discoverable).
    user_handle: String,
    counter: u32,
    rng: SystemRandom,
}

/// Flags: user present, user verified, attested credential data.
const UP_UV: u8 = 0x01 | 0x04;
const AT: u8 = 0x40;

impl SoftAuthenticator {
    fn new() -> SoftAuthenticator {
        let rng = SystemRandom::new();
        let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_ASN1_SIGNING, &rng).unwrap();
        let key = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_ASN1_SIGNING, pkcs8.as_ref(), &rng)
            .unwrap();
        let id = sha256(pkcs8.as_ref())[..16].to_vec();
        SoftAuthenticator {
            key,
            id,
            user_handle: String::new(),
            counter: 0,
            rng,
        }
    }

    fn client_data(kind: &str, challenge: &str, origin: &str) -> Vec<u8> {
        json!({ "type": kind, "challenge": challenge, "origin": origin, "crossOrigin": false })
            .to_string()
            .into_bytes()
    }

    /// The answer to `navigator.credentials.create(options)` from `origin`, as the portal's
    /// script would send it.
    fn create(&mut self, options: &Value, origin: &str) -> String {
        let pk = &options["publicKey"];
        let rp_id = pk["rp"]["id"].as_str().unwrap();
        let challenge = pk["challenge"].as_str().unwrap();
        self.user_handle = pk["user"]["id"].as_str().unwrap().to_owned();
        let public = self.key.public_key().as_ref();
        let cose = Cbor::Map(vec![
            (Cbor::Int(1), Cbor::Int(2)),
            (Cbor::Int(3), Cbor::Int(-7)),
            (Cbor::Int(-1), Cbor::Int(1)),
            (Cbor::Int(-2), Cbor::Bytes(public[1..33].to_vec())),
            (Cbor::Int(-3), Cbor::Bytes(public[33..65].to_vec())),
        ]);
        self.counter += 1;
        let mut auth_data = sha256(rp_id.as_bytes());
        auth_data.push(UP_UV | AT);
        auth_data.extend(self.counter.to_be_bytes());
        auth_data.extend([0u8; 16]);
        auth_data.extend((self.id.len() as u16).to_be_bytes());
        auth_data.extend(&self.id);
        auth_data.extend(cose.bytes());
        let attestation = Cbor::Map(vec![
            (Cbor::Text("fmt"), Cbor::Text("none")),
            (Cbor::Text("attStmt"), Cbor::Map(vec![])),
            (Cbor::Text("authData"), Cbor::Bytes(auth_data)),
        ]);
        json!({
            "id": b64u(&self.id),
            "rawId": b64u(&self.id),
            "type": "public-key",
            "response": {
                "attestationObject": b64u(&attestation.bytes()),
                "clientDataJSON": b64u(&Self::client_data("webauthn.create", challenge, origin)),
            },
            "extensions": {},
        })
        .to_string()
    }

    /// The answer to `navigator.credentials.get(options)` from `origin`, with the signature
    /// counter at `counter`.
    fn get_with_counter(&mut self, options: &Value, origin: &str, counter: u32) -> String {
        let pk = &options["publicKey"];
        let rp_id = pk["rpId"].as_str().unwrap();
        let challenge = pk["challenge"].as_str().unwrap();
        let mut auth_data = sha256(rp_id.as_bytes());
        auth_data.push(UP_UV);
        auth_data.extend(counter.to_be_bytes());
        let client_data = Self::client_data("webauthn.get", challenge, origin);
        let mut signed = auth_data.clone();
        signed.extend(sha256(&client_data));
        let signature = self.key.sign(&self.rng, &signed).unwrap();
        json!({
            "id": b64u(&self.id),
            "rawId": b64u(&self.id),
            "type": "public-key",
            "response": {
                "authenticatorData": b64u(&auth_data),
                "clientDataJSON": b64u(&client_data),
                "signature": b64u(signature.as_ref()),
                "userHandle": self.user_handle,
            },
            "extensions": {},
        })
        .to_string()
    }

    fn get(&mut self, options: &Value, origin: &str) -> String {
        self.counter += 1;
        self.get_with_counter(options, origin, self.counter)
    }
}

/// The value of the first field `name` in the page's forms.
fn field(page: &Response, name: &str) -> String {
    forms(&page.body)
        .into_iter()
        .flat_map(|f| f.fields)
        .find(|(n, _)| n == name)
        .map(|(_, v)| v)
        .unwrap_or_else(|| panic!("no field {name} on the page:\n{}", page.body))
}

fn post(b: &mut Browser, path: &str, form: &[(&str, &str)]) -> Response {
    let body: String = url::form_urlencoded::Serializer::new(String::new())
        .extend_pairs(form.iter())
        .finish();
    b.request("POST", path, Some(&body))
}

fn json_of(r: &Response) -> Value {
    serde_json::from_str(&r.body).unwrap_or_else(|e| panic!("{e}: {r:?}"))
}

/// The ceremony options a page carries for its script (`data-options`).
fn options_on(page: &Response) -> Value {
    let start = page
        .body
        .find("data-options=\"")
        .expect("options on the page")
        + 14;
    let end = page.body[start..].find('"').unwrap() + start;
    serde_json::from_str(&unescape(&page.body[start..end])).expect("options are JSON")
}

fn origin(gw: &Gateway) -> String {
    format!("http://localhost:{}", gw.addr.port())
}

/// Alice with an authenticator app, in a fresh two-factor session, and a passkey added through
/// the page; returns the authenticator.
fn alice_with_a_passkey(
    b: &mut Browser,
    gw: &Gateway,
    clock: &stepgate::clock::ManualClock,
) -> SoftAuthenticator {
    full_enrolment(b, gw, clock, ALICE);
    let page = b.get("/_stepgate/passkeys");
    assert_eq!(page.status, 200, "{page:?}");
    assert!(page.body.contains("/assets/passkeys.js"), "{}", page.body);
    // The ceremony began with the page: its options are in the form (the script reads them).
    let options = options_on(&page);
    assert_eq!(options["publicKey"]["rp"]["id"], "localhost");
    assert_eq!(
        options["publicKey"]["authenticatorSelection"]["userVerification"],
        "required"
    );
    let user_id = options["publicKey"]["user"]["id"].as_str().unwrap();
    let handle = unb64u(user_id);
    assert_eq!(handle.len(), 16, "a UUID");
    assert!(
        !String::from_utf8_lossy(&handle).contains("alice"),
        "the user handle names nobody"
    );
    let mut authn = SoftAuthenticator::new();
    let credential = authn.create(&options, &origin(gw));
    let added = b.submit(
        &page,
        "/passkeys/add",
        &[("name", "Laptop"), ("credential", &credential)],
    );
    assert_eq!(added.status, 303, "{added:?}");
    assert_eq!(
        added.header("location"),
        Some("/_stepgate/passkeys?done=added")
    );
    // The same answer again: its ceremony was used up.
    let again = b.submit(
        &page,
        "/passkeys/add",
        &[("name", "Laptop"), ("credential", &credential)],
    );
    assert_eq!(again.status, 400, "{again:?}");
    authn
}

fn sign_out(b: &mut Browser) {
    let account = b.get("/_stepgate/account");
    let out = b.submit(&account, "/logout", &[]);
    assert!(out.status < 400, "{out:?}");
}

/// Signs alice out and in again with her password: the browser stands at the challenge.
fn at_the_challenge(b: &mut Browser) -> Response {
    sign_out(b);
    let done = b.sign_in("alice", "alice-password-1", "http://127.0.0.1/app");
    assert_eq!(done.status, 303, "{done:?}");
    let page = b.get("/_stepgate/2fa?rd=http%3A%2F%2F127.0.0.1%2Fapp&method=passkey");
    assert_eq!(page.status, 200, "{page:?}");
    page
}

fn verify_options(b: &mut Browser, page: &Response) -> Value {
    let csrf = field(page, "csrf");
    let begun = post(b, "/_stepgate/passkeys/verify/begin", &[("csrf", &csrf)]);
    assert_eq!(begun.status, 200, "{begun:?}");
    json_of(&begun)
}

#[test]
fn a_passkey_is_added_named_and_then_passes_the_second_factor() {
    let (up, gw, clock) = start(PASSKEYS);
    let mut b = Browser::new(gw.addr);
    let mut authn = alice_with_a_passkey(&mut b, &gw, &clock);

    let list = b.get("/_stepgate/passkeys?done=added");
    assert!(list.body.contains("Laptop"), "{}", list.body);
    assert!(
        list.body.contains("The passkey was added."),
        "{}",
        list.body
    );
    let told = mail_to(&gw, "alice@example.test");
    let last = told.last().expect("a notice");
    assert!(
        last["text"].as_str().unwrap().contains("passkey"),
        "the notice names the passkey: {last}"
    );
    let renamed = b.submit(&list, "/passkeys/rename", &[("name", "  Work laptop \n")]);
    assert_eq!(renamed.status, 303, "{renamed:?}");
    assert!(b.get("/_stepgate/passkeys").body.contains("Work laptop"));

    // The challenge offers the passkey, and works without the script for the other methods.
    let page = at_the_challenge(&mut b);
    assert!(
        page.body.contains("data-passkey=\"verify\""),
        "{}",
        page.body
    );
    assert_eq!(
        options_on(&page)["publicKey"]["allowCredentials"][0]["id"],
        b64u(&authn.id),
        "the page began a ceremony for alice's passkey"
    );
    assert!(page.body.contains("method=totp"), "{}", page.body);
    assert!(!page.body.contains("<script>"), "no inline script");
    let options = verify_options(&mut b, &page);
    let allowed = options["publicKey"]["allowCredentials"].as_array().unwrap();
    assert_eq!(allowed.len(), 1);
    assert_eq!(options["publicKey"]["userVerification"], "required");
    let answer = authn.get(&options, &origin(&gw));
    let old_session = b.cookie("stepgate_session").map(str::to_owned);
    let passed = b.submit(&page, "/passkeys/verify", &[("credential", &answer)]);
    assert_eq!(passed.status, 303, "{passed:?}");
    assert_eq!(passed.header("location"), Some("http://127.0.0.1/app"));
    assert_ne!(
        b.cookie("stepgate_session").map(str::to_owned),
        old_session,
        "a new session ID"
    );
    let app = b.get("/app");
    assert_eq!(app.status, 200, "{app:?}");
    assert_eq!(up.last().header("remote-auth-level"), Some("2fa"));
    assert_eq!(up.last().header("remote-auth-methods"), Some("pwd,hwk"));
    let list = b.get("/_stepgate/passkeys");
    assert!(!list.body.contains("not used yet"), "{}", list.body);

    // The same answer again, in a new sign-in: it answers a challenge that is gone.
    let page = at_the_challenge(&mut b);
    let refused = b.submit(&page, "/passkeys/verify", &[("credential", &answer)]);
    assert_eq!(refused.status, 401, "{refused:?}");
    assert!(refused.body.contains("did not confirm"), "{}", refused.body);
    // Begun, and answered with the counter going backwards (a cloned key): refused.
    let options = verify_options(&mut b, &page);
    let cloned = authn.get_with_counter(&options, &origin(&gw), 1);
    let refused = b.submit(&page, "/passkeys/verify", &[("credential", &cloned)]);
    assert_eq!(refused.status, 401, "{refused:?}");
    // From another origin: refused.
    let options = verify_options(&mut b, &page);
    let phished = authn.get(&options, "http://localhost.evil.test");
    let refused = b.submit(&page, "/passkeys/verify", &[("credential", &phished)]);
    assert_eq!(refused.status, 401, "{refused:?}");
    // Garbage: refused, no panic.
    let _ = verify_options(&mut b, &page);
    let refused = b.submit(&page, "/passkeys/verify", &[("credential", "{not json")]);
    assert_eq!(refused.status, 401, "{refused:?}");
    // A ceremony answered after five minutes: refused.
    let options = verify_options(&mut b, &page);
    clock.advance(Duration::from_secs(6 * 60));
    let late = authn.get(&options, &origin(&gw));
    let refused = b.submit(&page, "/passkeys/verify", &[("credential", &late)]);
    assert_eq!(refused.status, 401, "{refused:?}");
    assert!(
        refused.body.contains("ran out or was already used"),
        "{}",
        refused.body
    );
    assert_eq!(b.get("/app").status, 302, "still one factor");
    // Five failures: passkeys are banned like codes.
    let csrf = field(&page, "csrf");
    let banned = post(
        &mut b,
        "/_stepgate/passkeys/verify/begin",
        &[("csrf", &csrf)],
    );
    assert_eq!(banned.status, 429, "{banned:?}");
    assert!(banned.header("retry-after").is_some());
    // And after the ban, in time: passed.
    clock.advance(Duration::from_secs(6 * 60));
    let options = verify_options(&mut b, &page);
    let answer = authn.get(&options, &origin(&gw));
    let passed = b.submit(&page, "/passkeys/verify", &[("credential", &answer)]);
    assert_eq!(passed.status, 303, "{passed:?}");
}

#[test]
fn passkey_changes_are_refused_without_a_fresh_two_factor_session() {
    let (_up, gw, clock) = start(PASSKEYS);
    // No session at all.
    let mut nobody = Browser::new(gw.addr);
    let r = post(
        &mut nobody,
        "/_stepgate/passkeys/add/begin",
        &[("csrf", "x")],
    );
    assert_eq!(r.status, 303, "{r:?}");
    assert!(r.header("location").unwrap().contains("/login"), "{r:?}");
    assert_eq!(nobody.get("/_stepgate/passkeys").status, 302);

    let mut b = Browser::new(gw.addr);
    let mut authn = alice_with_a_passkey(&mut b, &gw, &clock);
    let page = b.get("/_stepgate/passkeys");
    let csrf = field(&page, "csrf");
    // A wrong CSRF token.
    let r = post(
        &mut b,
        "/_stepgate/passkeys/add/begin",
        &[("csrf", "forged")],
    );
    assert_eq!(r.status, 403, "{r:?}");
    let r = post(
        &mut b,
        "/_stepgate/passkeys/remove",
        &[("csrf", "forged"), ("id", &field(&page, "id"))],
    );
    assert_eq!(r.status, 403, "{r:?}");

    // A proof that is no longer fresh: the list stays, changes are not offered or made.
    clock.advance(Duration::from_secs(10 * 60));
    let stale = b.get("/_stepgate/passkeys");
    assert_eq!(stale.status, 200);
    assert!(!stale.body.contains("/passkeys/remove"), "{}", stale.body);
    assert!(
        stale.body.contains("/account/verify?next=/passkeys"),
        "{}",
        stale.body
    );
    let r = post(&mut b, "/_stepgate/passkeys/add/begin", &[("csrf", &csrf)]);
    assert_eq!(r.status, 403, "{r:?}");
    assert!(json_of(&r)["error"].as_str().unwrap().contains("Confirm"));
    let r = post(
        &mut b,
        "/_stepgate/passkeys/remove",
        &[("csrf", &csrf), ("id", &field(&page, "id"))],
    );
    assert_eq!(r.status, 403, "{r:?}");
    assert!(b.get("/_stepgate/passkeys").body.contains("Laptop"));

    // A one-factor session (password only): the page sends it to the challenge, the endpoints
    // refuse.
    let page = at_the_challenge(&mut b);
    let csrf = field(&page, "csrf");
    let list = b.get("/_stepgate/passkeys");
    assert_eq!(list.status, 302, "{list:?}");
    assert!(list.header("location").unwrap().contains("/2fa"));
    let r = post(&mut b, "/_stepgate/passkeys/add/begin", &[("csrf", &csrf)]);
    assert_eq!(r.status, 403, "{r:?}");
    let r = post(
        &mut b,
        "/_stepgate/passkeys/rename",
        &[("csrf", &csrf), ("id", "x"), ("name", "y")],
    );
    assert_eq!(r.status, 403, "{r:?}");

    // After the passkey: fresh, and the passkey can be removed (the app remains).
    let options = verify_options(&mut b, &page);
    let answer = authn.get(&options, &origin(&gw));
    assert_eq!(
        b.submit(&page, "/passkeys/verify", &[("credential", &answer)])
            .status,
        303
    );
    let page = b.get("/_stepgate/passkeys");
    let removed = b.submit(&page, "/passkeys/remove", &[]);
    assert_eq!(removed.status, 303, "{removed:?}");
    let page = b.get("/_stepgate/passkeys?done=removed");
    assert!(page.body.contains("no passkeys yet"), "{}", page.body);
    let subjects: Vec<String> = mail_to(&gw, "alice@example.test")
        .iter()
        .map(|m| m["text"].as_str().unwrap_or_default().to_owned())
        .collect();
    assert!(
        subjects.iter().filter(|t| t.contains("passkey")).count() >= 2,
        "added and removed are both told: {subjects:?}"
    );
}

#[test]
fn without_the_passkeys_table_there_is_no_passkey_page() {
    let (_up, gw, clock) = start("");
    let mut b = Browser::new(gw.addr);
    full_enrolment(&mut b, &gw, &clock, ALICE);
    assert_eq!(b.get("/_stepgate/passkeys").status, 404);
    let account = b.get("/_stepgate/account");
    assert!(!account.body.contains("/passkeys"), "{}", account.body);
    assert_eq!(b.get("/_stepgate/assets/passkeys.js").status, 200);
}

/// `[passkeys]` with passwordless sign-in.
const PASSWORDLESS: &str = r#"
[passkeys]
enabled = true
rp_id = "localhost"
origins = ["http://localhost:{port}"]
passwordless = true
"#;

#[test]
fn with_passwordless_on_a_passkey_signs_in_without_the_password() {
    let (up, gw, clock) = start(PASSWORDLESS);
    let mut b = Browser::new(gw.addr);
    let mut authn = alice_with_a_passkey(&mut b, &gw, &clock);
    sign_out(&mut b);
    let login = b.get("/_stepgate/login?rd=http%3A%2F%2F127.0.0.1%2Fapp");
    assert_eq!(login.status, 200);
    assert!(login.body.contains("/passkeys/sign-in"), "{}", login.body);
    let options = options_on(&login);
    assert_eq!(options["publicKey"]["userVerification"], "required");
    assert!(
        options["publicKey"]["allowCredentials"]
            .as_array()
            .is_none_or(|a| a.is_empty()),
        "any passkey of the site: {options}"
    );
    let answer = authn.get(&options, &origin(&gw));
    let done = b.submit(&login, "/passkeys/sign-in", &[("credential", &answer)]);
    assert_eq!(done.status, 303, "{done:?}");
    assert_eq!(done.header("location"), Some("http://127.0.0.1/app"));
    assert_eq!(b.get("/app").status, 200);
    assert_eq!(up.last().header("remote-auth-level"), Some("2fa"));
    assert_eq!(up.last().header("remote-auth-methods"), Some("hwk"));

    // The same answer again: its ceremony is gone; one generic failure, no session.
    sign_out(&mut b);
    let login = b.get("/_stepgate/login?rd=%2Fapp");
    let refused = b.submit(&login, "/passkeys/sign-in", &[("credential", &answer)]);
    assert_eq!(refused.status, 401, "{refused:?}");
    assert!(
        refused.body.contains("name=\"password\"")
            && refused.body.contains("<p class=\"error\" role=\"alert\">"),
        "the sign-in form again, with its failure: {}",
        refused.body
    );
    assert_eq!(b.get("/app").status, 302);
    // Another browser's ceremony (another form cookie): refused.
    let mut other = Browser::new(gw.addr);
    let theirs = other.get("/_stepgate/login");
    let login = b.get("/_stepgate/login");
    let stolen = authn.get(&options_on(&theirs), &origin(&gw));
    let refused = b.submit(&login, "/passkeys/sign-in", &[("credential", &stolen)]);
    assert_eq!(refused.status, 401, "{refused:?}");
    // A wrong CSRF token: refused before anything.
    let refused = b.submit(
        &login,
        "/passkeys/sign-in",
        &[("csrf", "forged"), ("credential", "{}")],
    );
    assert_eq!(refused.status, 403, "{refused:?}");
    // A locked account: the right passkey gets the same generic failure.
    admin(&gw, &["lock", "alice"]);
    let login = b.get("/_stepgate/login");
    let answer = authn.get(&options_on(&login), &origin(&gw));
    let refused = b.submit(&login, "/passkeys/sign-in", &[("credential", &answer)]);
    assert_eq!(refused.status, 401, "{refused:?}");
    assert_eq!(b.get("/app").status, 302);
    admin(&gw, &["unlock", "alice"]);
    let login = b.get("/_stepgate/login");
    let answer = authn.get(&options_on(&login), &origin(&gw));
    let done = b.submit(&login, "/passkeys/sign-in", &[("credential", &answer)]);
    assert_eq!(done.status, 303, "{done:?}");
}

#[test]
fn without_passwordless_the_sign_in_page_asks_for_the_password_only() {
    let (_up, gw, _clock) = start(PASSKEYS);
    let mut b = Browser::new(gw.addr);
    let login = b.get("/_stepgate/login");
    assert!(!login.body.contains("/passkeys/sign-in"), "{}", login.body);
    assert!(!login.body.contains("passkeys.js"), "{}", login.body);
    let r = b.submit(&login, "/login", &[("username", "x"), ("password", "y")]);
    assert_eq!(r.status, 401);
    let r = post(
        &mut b,
        "/_stepgate/passkeys/sign-in",
        &[("csrf", &field(&login, "csrf")), ("credential", "{}")],
    );
    assert_eq!(r.status, 404, "{r:?}");
}
