//! The signed assertion apps receive, verified the way an app would: against the published
//! JWKS, with a library of its own (ed25519-dalek), not stepgate's signer.

mod common;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use common::*;
use ed25519_dalek::{Signature, Verifier, VerifyingKey};

fn decode_json(part: &str) -> serde_json::Value {
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(part).expect("base64url")).expect("json")
}

#[test]
fn the_assertion_verifies_against_the_published_jwks() {
    let up = Upstream::start("app");
    let gw = Gateway::start(&signin_config(
        up.addr,
        "[assertion]\nissuer = \"https://sso.example.test\"\n",
    ));
    let mut b = Browser::new(gw.addr);
    b.sign_in("bob", "bob-password-1", "/");
    assert_eq!(b.get("/1fa/").status, 200);
    let jwt = up
        .last()
        .header("x-stepgate-assertion")
        .expect("assertion")
        .to_owned();

    let jwks = Response::parse(&get(gw.addr, "/_stepgate/jwks.json", &[]));
    assert_eq!(jwks.status, 200);
    let jwks: serde_json::Value = serde_json::from_str(&jwks.body).unwrap();

    let parts: Vec<&str> = jwt.split('.').collect();
    let header = decode_json(parts[0]);
    assert_eq!(header["alg"], "EdDSA");
    assert_eq!(header["typ"], "JWT");
    for forbidden in ["jku", "x5u", "jwk", "x5c"] {
        assert!(header.get(forbidden).is_none(), "{forbidden} in header");
    }
    let kid = header["kid"].as_str().unwrap();
    let key = jwks["keys"]
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["kid"] == kid)
        .expect("kid published");
    assert_eq!(key["kty"], "OKP");
    assert_eq!(key["crv"], "Ed25519");
    let x: [u8; 32] = URL_SAFE_NO_PAD
        .decode(key["x"].as_str().unwrap())
        .unwrap()
        .try_into()
        .unwrap();
    let verifying = VerifyingKey::from_bytes(&x).unwrap();
    let sig: [u8; 64] = URL_SAFE_NO_PAD
        .decode(parts[2])
        .unwrap()
        .try_into()
        .unwrap();
    verifying
        .verify(
            format!("{}.{}", parts[0], parts[1]).as_bytes(),
            &Signature::from_bytes(&sig),
        )
        .expect("signature verifies with the published key");

    let claims = decode_json(parts[1]);
    assert_eq!(claims["iss"], "https://sso.example.test");
    assert_eq!(claims["sub"], "bob");
    assert_eq!(claims["aud"], "app");
    assert_eq!(claims["email"], "bob@example.test");
    assert_eq!(claims["groups"], serde_json::json!(["users", "admins"]));
    assert_eq!(claims["amr"], serde_json::json!(["pwd"]));
    assert_eq!(claims["auth_level"], "1fa");
    let (iat, nbf, exp) = (
        claims["iat"].as_u64().unwrap(),
        claims["nbf"].as_u64().unwrap(),
        claims["exp"].as_u64().unwrap(),
    );
    assert!(
        nbf <= iat + 1 && exp > iat && exp - iat <= 300,
        "iat {iat} nbf {nbf} exp {exp}"
    );
    assert!(claims["jti"].as_str().is_some_and(|j| j.len() >= 16));

    // A tampered payload does not verify.
    let forged =
        URL_SAFE_NO_PAD.encode(serde_json::to_vec(&serde_json::json!({"sub": "admin"})).unwrap());
    assert!(verifying
        .verify(
            format!("{}.{forged}", parts[0]).as_bytes(),
            &Signature::from_bytes(&sig)
        )
        .is_err());

    // The same session and app reuse the signed assertion (signing is off the hot path).
    assert_eq!(b.get("/1fa/again").status, 200);
    assert_eq!(up.last().header("x-stepgate-assertion"), Some(jwt.as_str()));
}
