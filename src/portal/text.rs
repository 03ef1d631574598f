//! The template functions that put the catalogue's texts (`crate::i18n`) into pages, in the
//! language of the page being rendered (`lang` in its context):
//!
//! - `{{ t("account-fresh", until=fresh_until) }}`: a plain text. Like any value it is escaped
//!   by the environment's auto-escaping, arguments and all.
//! - `{{ t_html("code-sent-html", email=masked_email) }}`: a text whose wording carries markup
//!   (`<strong>` around a placeable, where the languages put it in different places). Only ids
//!   ending in `-html` are accepted; every argument is HTML-escaped before it goes in, and the
//!   result is marked safe. The markup comes from the compiled-in catalogue, never from a value.
//!
//! Numbers stay numbers, so that plural selectors can choose on them.

use minijinja::value::{Kwargs, ValueKind};
use minijinja::{Environment, Error, ErrorKind, HtmlEscape, State, Value};

use crate::i18n::{Arg, Lang};

/// Adds `t` and `t_html` to the environment.
pub(crate) fn register(env: &mut Environment<'_>) {
    env.add_function("t", t);
    env.add_function("t_html", t_html);
}

fn t(state: &State, id: &str, kwargs: Kwargs) -> Result<String, Error> {
    let args = fluent_args(&kwargs, false)?;
    Ok(page_lang(state)?.text_with(id, &args))
}

fn t_html(state: &State, id: &str, kwargs: Kwargs) -> Result<Value, Error> {
    if !id.ends_with("-html") {
        return Err(Error::new(
            ErrorKind::InvalidOperation,
            format!("t_html({id:?}): only texts whose id ends in -html carry markup"),
        ));
    }
    let args = fluent_args(&kwargs, true)?;
    Ok(Value::from_safe_string(
        page_lang(state)?.text_with(id, &args),
    ))
}

/// The language of the page being rendered.
fn page_lang(state: &State) -> Result<Lang, Error> {
    state
        .lookup("lang")
        .and_then(|v| v.as_str().and_then(Lang::from_tag))
        .ok_or_else(|| {
            Error::new(
                ErrorKind::UndefinedError,
                "a page that uses t() needs `lang` in its context",
            )
        })
}

/// The keyword arguments as Fluent arguments: numbers as numbers, anything else as its text
/// (HTML-escaped when `escape`, unless the value is already marked safe). A missing value is a
/// template defect: it is logged and shows as nothing rather than as "none".
fn fluent_args(kwargs: &Kwargs, escape: bool) -> Result<Vec<(&str, Arg<'static>)>, Error> {
    kwargs
        .args()
        .map(|name| {
            let value: Value = kwargs.get(name)?;
            let arg = match value.kind() {
                ValueKind::Number => match i64::try_from(value.clone()) {
                    Ok(n) => Arg::from(n),
                    Err(_) => Arg::from(f64::try_from(value)?),
                },
                ValueKind::Undefined | ValueKind::None => {
                    tracing::error!(target: "stepgate::i18n", argument = name, "a text's argument has no value; showing nothing");
                    Arg::from("")
                }
                _ if escape && !value.is_safe() => Arg::from(HtmlEscape(&value.to_string()).to_string()),
                _ => Arg::from(value.to_string()),
            };
            Ok((name, arg))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use minijinja::context;

    use super::*;

    fn render(source: &str, ctx: Value) -> Result<String, Error> {
        let mut env = Environment::new();
        env.set_auto_escape_callback(|_| minijinja::AutoEscape::Html);
        register(&mut env);
        env.add_template("page.html", source)?;
        env.get_template("page.html")?.render(ctx)
    }

    #[test]
    fn texts_follow_the_page_language_and_take_numbers() {
        let page = r#"{{ t("codes-continue") }} {{ t("guide-later-left", left=1, times=2) }}"#;
        assert_eq!(
            render(page, context! { lang => "en" }).unwrap(),
            "Continue You can postpone this 1 more time after this one."
        );
        assert_eq!(
            render(page, context! { lang => "ko" }).unwrap(),
            "계속 이번을 포함해 2번 더 미룰 수 있습니다."
        );
        assert!(render(page, context! {}).is_err(), "no language, no page");
    }

    #[test]
    fn values_are_escaped_and_only_html_texts_keep_their_markup() {
        let ctx = context! { lang => "en", who => "<script>x</script>" };
        let plain = render(r#"{{ t("account-fresh", until=who) }}"#, ctx.clone()).unwrap();
        assert!(
            plain.contains("&lt;script&gt;") && !plain.contains("<script>"),
            "{plain}"
        );
        let html = render(r#"{{ t_html("code-sent-html", email=who) }}"#, ctx.clone()).unwrap();
        assert!(html.contains("<strong>&lt;script&gt;"), "{html}");
        assert!(!html.contains("<script>"), "{html}");
        assert!(render(r#"{{ t_html("account-fresh", until=who) }}"#, ctx).is_err());
    }

    #[test]
    fn a_missing_text_or_value_shows_and_does_not_fail() {
        let ctx = context! { lang => "en" };
        assert_eq!(
            render(r#"{{ t("no-such-text") }}"#, ctx.clone()).unwrap(),
            "no-such-text"
        );
        assert_eq!(
            render(r#"{{ t("account-fresh", until=nothing) }}"#, ctx).unwrap(),
            "You confirmed it is you: you can make changes until ."
        );
    }
}
