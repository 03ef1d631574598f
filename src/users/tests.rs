//! Tests of the user directory, name normalisation and password checks.
use super::*;

/// A cheap hash (m = 8 KiB) so tests stay fast; verification takes the cost from the hash.
fn cheap_hash(password: &str) -> String {
    let params = argon2::Params::new(8, 1, 1, None).expect("params");
    let argon = Argon2::new(argon2::Algorithm::Argon2id, argon2::Version::V0x13, params);
    let salt = SaltString::generate(&mut rand::thread_rng());
    argon
        .hash_password(password.as_bytes(), &salt)
        .expect("hash")
        .to_string()
}

fn users_text(hash: &str) -> String {
    format!(
        "[users.alice]\ndisplay_name = \"Alice\"\nemail = \"alice@example.test\"\n\
         phone = \"+821000000001\"\ngroups = [\"users\"]\npassword = \"{hash}\"\n\n\
         [users.carol]\ngroups = [\"users\", \"admins\"]\npassword = \"{hash}\"\ndisabled = true\n"
    )
}

fn users(password: &str) -> UserMap {
    validate_users(Path::new("u.toml"), &users_text(&cheap_hash(password))).expect("valid")
}

fn problems(text: &str) -> String {
    validate_users(Path::new("u.toml"), text)
        .expect_err("should fail")
        .to_string()
}

#[test]
fn normalisation_folds_width_case_and_compatibility_characters() {
    for raw in [
        "ALICE",
        "  ＡＬＩＣＥ ",
        "ａｌｉｃｅ",
        "\talice\n",
        "\u{3000}alice",
    ] {
        assert_eq!(normalize_username(raw).as_deref(), Some("alice"), "{raw:?}");
    }
    assert_eq!(normalize_username("ﬁona").as_deref(), Some("fiona")); // ligature
    assert_eq!(
        normalize_username("Ａｌｉｃｅ Ｓｍｉｔｈ").as_deref(),
        Some("alice smith")
    );
    // Lower-casing, not locale-aware folding: Turkish dotless/dotted i stay distinct from i.
    assert_eq!(normalize_username("I").as_deref(), Some("i"));
    assert_eq!(normalize_username("ı").as_deref(), Some("ı"));
    assert_eq!(normalize_username("İ").as_deref(), Some("i\u{307}"));
    let once = normalize_username(" ＢｏＢ ").expect("valid");
    assert_eq!(normalize_username(&once), Some(once));
    for raw in [
        "",
        "   ",
        "ali\u{0}ce",
        "ali\nce",
        "\u{7}",
        "ali\u{200B}ce",
        "\u{202E}ecila",
    ] {
        assert_eq!(normalize_username(raw), None, "{raw:?}");
    }
    assert!(normalize_username(&"a".repeat(MAX_NAME_CHARS)).is_some());
    assert_eq!(normalize_username(&"a".repeat(MAX_NAME_CHARS + 1)), None);
    assert_eq!(
        normalize_username(&" ".repeat(MAX_RAW_NAME_BYTES + 1)),
        None
    );
}

#[test]
fn good_files_give_users_by_normalised_name() {
    let users = users("pw");
    let (alice, carol) = (&users["alice"], &users["carol"]);
    assert_eq!(
        (alice.display_name.as_str(), alice.phone.as_deref()),
        ("Alice", Some("+821000000001"))
    );
    assert!(alice.in_group("users") && !alice.in_group("admins") && !alice.disabled);
    assert!(carol.disabled && carol.in_group("admins") && carol.email.is_none());
    assert_eq!(carol.display_name, "carol");
    let shown = format!("{alice:?}");
    assert!(
        shown.contains("alice") && !shown.contains("argon2"),
        "Debug shows the hash: {shown}"
    );

    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("config/quickstart-users.toml");
    let text = std::fs::read_to_string(&path).expect("quickstart users");
    assert!(looks_like_users_file(&text));
    let users = validate_users(&path, &text).expect("valid");
    assert_eq!(users.len(), 3);
    assert!(users["bob"].in_group("admins") && users["carol"].disabled);
    assert!(!looks_like_users_file(
        "[users]\n[[listener]]\naddress = \"127.0.0.1:1\"\n"
    ));
}

#[test]
fn every_problem_is_reported_with_its_line() {
    let hash = cheap_hash("pw");
    let text = format!(
        "[users.alice]\npassword = \"{hash}\"\npasword = \"x\"\n\n[users.Bob]\n\
         password = \"hunter2-plain\"\nemail = \"bob.example\"\nphone = \"+82 10\"\n\
         groups = [\"Admins\", \"users\", \"users\"]\n\n[users.\"ａｌｉｃｅ\"]\n\
         password = \"{hash}\"\n\n[users.dave]\n\n[users.DAVE]\npassword = \"{hash}\"\n\n\
         [users.erin]\npassword = \"{hash}\"\nemail = \"erin@evil.test@example.test\"\n"
    );
    let out = problems(&text);
    let expected = [
        "u.toml:3: users.alice.pasword: unknown key, remove it or check its spelling (found `pasword`)",
        "u.toml:6: users.Bob.password: not a usable argon2 PHC string",
        "u.toml:7: users.Bob.email: must be an email address",
        "u.toml:8: users.Bob.phone: must be an E.164 number",
        "u.toml:9: users.Bob.groups[0]: must be 1 to 64 of a-z",
        "u.toml:9: users.Bob.groups[2]: group \"users\" is listed twice",
        "u.toml:11: users.\"ａｌｉｃｅ\": `ａｌｉｃｅ` is the same user as `alice` on line 1",
        "u.toml:14: users.dave.password: this key is required",
        "u.toml:16: users.DAVE: `DAVE` is the same user as `dave` on line 14",
        "u.toml:21: users.erin.email: must be an email address",
    ];
    for e in expected {
        assert!(out.contains(e), "missing {e:?} in\n{out}");
    }
    assert_eq!(out.lines().count(), expected.len(), "{out}");
    assert!(
        !out.contains("hunter2"),
        "a password value was echoed:\n{out}"
    );
}

#[test]
fn type_errors_and_bad_hashes_name_the_key_and_hide_the_value() {
    let out = problems("[users.alice]\ndisabled = \"no\"\n");
    assert!(
        out.starts_with("u.toml:2: users.alice.disabled: invalid type"),
        "{out}"
    );
    let out = problems("[users.alice]\npassword = 12345678\n");
    assert!(
        out.starts_with("u.toml:2: users.alice.password: ") && !out.contains("1234"),
        "{out}"
    );
    for bad in [
        "plaintext",
        "$pbkdf2-sha256$i=1000$c2FsdHNhbHQ$aGFzaA",
        "$argon2id$v=19$m=19456,t=2,p=1$c2FsdA$aGFzaGhhc2hoYXNoaGFzaA", // 4-byte salt
        "$argon2id$v=19$m=19456,t=2,p=1$c2FsdHNhbHRzYWx0",              // no output
    ] {
        let out = problems(&format!("[users.a]\npassword = \"{bad}\"\n"));
        let want = "u.toml:2: users.a.password: not a usable argon2";
        assert!(out.starts_with(want) && !out.contains(bad), "{bad}: {out}");
    }
}

#[test]
fn reload_picks_up_changes_and_keeps_users_on_a_broken_file() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("users.toml");
    let hash = cheap_hash("pw");
    std::fs::write(&path, format!("[users.alice]\npassword = \"{hash}\"\n")).expect("write");
    let d = FileDirectory::load(&path).expect("load");
    assert_eq!((d.len(), d.get("bob").is_none()), (1, true));
    assert!(!d.reload_if_changed().expect("unchanged"));
    std::fs::write(&path, users_text(&hash).replace("carol", "bob")).expect("write");
    assert!(
        !d.reload_if_changed().expect("settling"),
        "a change is read once it stopped changing"
    );
    assert!(d.reload_if_changed().expect("reload"));
    assert!(d.get("bob").is_some_and(|b| b.disabled) && d.len() == 2);
    std::fs::write(&path, "[users.alice]\npasword = \"typo\"\n").expect("write");
    assert!(!d.reload_if_changed().expect("settling"));
    let err = d.reload_if_changed().expect_err("broken");
    assert!(err.to_string().contains("users.alice.pasword"), "{err}");
    assert_eq!(d.len(), 2, "a broken file keeps the old users");
    assert!(
        !d.reload_if_changed().expect("seen"),
        "a broken version is reported once"
    );
    std::fs::remove_file(&path).expect("remove");
    assert!(d.reload_if_changed().is_err() && d.len() == 2);
    assert!(!d.reload_if_changed().expect("still missing"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn verify_accepts_only_enabled_users_with_their_password() {
    let users = users("right");
    let v = PasswordVerifier::new(4);
    let (alice, carol) = (&users["alice"], &users["carol"]);
    let too_long = "r".repeat(MAX_PASSWORD_BYTES + 1);
    assert!(v.verify(Some(alice), "right").await.expect("verify"));
    for (user, password) in [(alice, "wrong"), (alice, &too_long), (carol, "right")] {
        assert!(
            !v.verify(Some(user), password).await.expect("verify"),
            "{}",
            user.name
        );
    }
    assert!(
        !v.verify(None, "right").await.expect("verify"),
        "unknown user"
    );
    let long = "x".repeat(MAX_PASSWORD_BYTES);
    let mut long_user = (**alice).clone();
    long_user.password_hash = cheap_hash(&long);
    assert!(v
        .verify(Some(&long_user), &long)
        .await
        .expect("1024 bytes are allowed"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_semaphore_bounds_concurrent_hashes() {
    let v = Arc::new(PasswordVerifier::new(1));
    // Dummy checks use the default (slow) parameters, so unbounded hashes would overlap.
    let tasks: Vec<_> = (0..6)
        .map(|_| {
            let v = Arc::clone(&v);
            tokio::spawn(async move { v.verify(None, "pw").await.expect("verify") })
        })
        .collect();
    for t in tasks {
        assert!(!t.await.expect("join"));
    }
    assert_eq!(
        v.peak.load(Ordering::SeqCst),
        1,
        "more than one hash ran at once"
    );
    assert_eq!((v.in_flight(), v.permits.available_permits()), (0, 1));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn waiting_checks_are_bounded_and_the_excess_is_refused_without_hashing() {
    let v = Arc::new(PasswordVerifier::new(1));
    // Hold the only permit so that every check has to wait.
    let held = Arc::clone(&v.permits).acquire_owned().await.unwrap();
    let waiters: Vec<_> = (0..WAITING_PER_PERMIT)
        .map(|_| {
            let v = Arc::clone(&v);
            tokio::spawn(async move { v.verify(None, "pw").await })
        })
        .collect();
    while v.waiting.load(Ordering::SeqCst) < WAITING_PER_PERMIT {
        tokio::task::yield_now().await;
    }
    assert!(matches!(
        v.verify(None, "pw").await,
        Err(VerifyError::Busy(_))
    ));
    drop(held);
    for w in waiters {
        assert!(!w
            .await
            .unwrap()
            .expect("a waiting check runs once a slot frees"));
    }
    assert_eq!(v.waiting.load(Ordering::SeqCst), 0);
    assert!(!v.verify(None, "pw").await.expect("room again"));
}

#[cfg(target_os = "linux")]
#[test]
fn hashing_threads_run_below_the_proxys_priority() {
    let nice = std::thread::spawn(|| {
        run_below_proxy_priority();
        run_below_proxy_priority(); // once per thread: a second call changes nothing
                                    // SAFETY: reads the calling thread's own priority.
        unsafe { libc::getpriority(libc::PRIO_PROCESS, libc::gettid() as libc::id_t) }
    })
    .join()
    .unwrap();
    // SAFETY: as above, for this thread, which was never lowered.
    let here = unsafe { libc::getpriority(libc::PRIO_PROCESS, libc::gettid() as libc::id_t) };
    assert_eq!(
        nice,
        (here + 10).min(19),
        "the hashing thread is at nice +10"
    );
}

#[test]
fn an_email_names_its_one_user_case_blind_and_an_ambiguous_one_none() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("users.toml");
    let hash = "$argon2id$v=19$m=19456,t=2,p=1$pqL2ud8we/QSYV1jNed9KQ$a+BUztkXLv7fI9I4I1GMpo2p6Juo5PMBmFRQXjR1Bo4";
    std::fs::write(
        &path,
        format!(
            "[users.alice]\npassword = \"{hash}\"\nemail = \"Alice@Example.test\"\n\
             [users.bob]\npassword = \"{hash}\"\nemail = \"shared@example.test\"\n\
             [users.carol]\npassword = \"{hash}\"\nemail = \"shared@example.test\"\n"
        ),
    )
    .unwrap();
    let dir = FileDirectory::load(&path).unwrap();
    assert_eq!(dir.find("alice@example.test").unwrap().name, "alice");
    assert_eq!(dir.find("alice").unwrap().name, "alice");
    assert!(
        dir.find("shared@example.test").is_none(),
        "two users: neither"
    );
    assert!(dir.find("nobody@example.test").is_none());
}

#[test]
fn a_file_still_being_written_is_not_read() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("users.toml");
    let hash = cheap_hash("pw");
    std::fs::write(&path, users_text(&hash)).expect("write");
    let d = FileDirectory::load(&path).expect("load");
    let before = d.len();
    // Truncated, as `cp` or an editor leaves it for a moment: seen, not read.
    std::fs::write(&path, "").expect("truncate");
    assert!(!d.reload_if_changed().expect("settling"));
    // Written again before the next look: still changing, still not read.
    std::fs::write(&path, users_text(&hash).replace("carol", "dave")).expect("write");
    assert!(!d.reload_if_changed().expect("settling again"));
    assert_eq!(d.len(), before, "the users in force never went missing");
    assert!(d.reload_if_changed().expect("now stable"));
    assert!(d.get("dave").is_some());
}
