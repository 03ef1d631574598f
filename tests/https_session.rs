//! Over HTTPS the session cookie is `__Host-` prefixed and `Secure; HttpOnly; SameSite=Lax;
//! Path=/` with no `Domain`, and the sign-in form's own cookie is `__Host-`, `SameSite=Strict`.

mod common;

use common::{forms, free_port, signin_config, Gateway, Upstream};

#[test]
fn https_cookies_carry_the_host_prefix_and_secure_attributes() {
    let dir = tempfile::tempdir().unwrap();
    let ck = rcgen::generate_simple_self_signed(vec!["app.test".to_owned()]).unwrap();
    let (cert, key) = (dir.path().join("c.pem"), dir.path().join("k.pem"));
    std::fs::write(&cert, ck.cert.pem()).unwrap();
    std::fs::write(&key, ck.key_pair.serialize_pem()).unwrap();
    let https_port = free_port();
    let up = Upstream::start("app");
    let cfg = signin_config(up.addr, "")
        + &format!(
            "\n[[listener]]\naddress = \"127.0.0.1:{https_port}\"\nprotocol = \"https\"\n\n[[listener.certificate]]\ncert_file = '{}'\nkey_file = '{}'\n",
            cert.display(),
            key.display()
        );
    let gw = Gateway::start(&cfg);
    let _ = &gw;

    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let client = reqwest::Client::builder()
            .add_root_certificate(reqwest::Certificate::from_der(ck.cert.der()).unwrap())
            .resolve("app.test", ([127, 0, 0, 1], https_port).into())
            .redirect(reqwest::redirect::Policy::none())
            .no_proxy()
            .build()
            .unwrap();
        let base = format!("https://app.test:{https_port}");
        let page = client
            .get(format!("{base}/_stepgate/login?rd=%2F1fa%2F"))
            .header("accept", "text/html")
            .send()
            .await
            .unwrap();
        let form_cookie = page
            .headers()
            .get("set-cookie")
            .unwrap()
            .to_str()
            .unwrap()
            .to_owned();
        assert!(
            form_cookie.starts_with("__Host-stepgate_csrf="),
            "{form_cookie}"
        );
        assert!(
            form_cookie.ends_with("; Path=/; HttpOnly; SameSite=Strict; Secure"),
            "{form_cookie}"
        );
        let binding = form_cookie.split(';').next().unwrap().to_owned();
        let html = page.text().await.unwrap();
        let form = forms(&html)
            .into_iter()
            .find(|f| f.action.ends_with("/login"))
            .unwrap();
        let mut fields = form.fields.clone();
        fields.retain(|(name, _)| name != "username" && name != "password");
        fields.push(("username".into(), "alice".into()));
        fields.push(("password".into(), "alice-password-1".into()));
        let done = client
            .post(format!("{base}{}", form.action))
            .header("cookie", &binding)
            .form(&fields)
            .send()
            .await
            .unwrap();
        assert_eq!(done.status(), 303);
        let session = done
            .headers()
            .get("set-cookie")
            .unwrap()
            .to_str()
            .unwrap()
            .to_owned();
        assert!(session.starts_with("__Host-stepgate_session="), "{session}");
        assert!(
            session.ends_with("; Path=/; HttpOnly; SameSite=Lax; Secure"),
            "{session}"
        );
        assert!(
            !session.to_ascii_lowercase().contains("domain="),
            "{session}"
        );
        assert!(
            !session.to_ascii_lowercase().contains("expires") && !session.contains("Max-Age"),
            "not persistent: {session}"
        );

        let session_pair = session.split(';').next().unwrap().to_owned();
        let app = client
            .get(format!("{base}/1fa/"))
            .header("cookie", &session_pair)
            .send()
            .await
            .unwrap();
        assert_eq!(app.status(), 200);
        // The plain-HTTP name is not accepted over HTTPS (the prefix is what makes it safe).
        let plain_name = session_pair.replacen("__Host-", "", 1);
        let wrong = client
            .get(format!("{base}/1fa/"))
            .header("cookie", &plain_name)
            .header("accept", "text/html")
            .send()
            .await
            .unwrap();
        assert_eq!(wrong.status(), 302);
    });
    assert_eq!(up.last().header("remote-user"), Some("alice"));
    assert_eq!(up.last().header("x-forwarded-proto"), Some("https"));
}
