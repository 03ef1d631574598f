//! The checks run on every page the browser suite visits, and the report they add to. Each check
//! returns every problem it finds, named by page and condition, so one run lists them all.
//!
//! - **overflow**: nothing wider than the viewport (`scrollWidth <= innerWidth`, root and body);
//! - **console**: no error in the browser log (a CSP violation is logged as one);
//! - **contrast**: every visible element with text of its own meets WCAG 2 AA against the colour
//!   behind it (4.5:1, 3:1 for large text), computed in the page by `checks.js`;
//! - **labels**: every visible field has a label (`labels`, `aria-label`, `aria-labelledby`);
//! - **lang**: the page is in the language the journey chose.
//!
//! Each page also gets a full-page screenshot, `target/browser/<lang>-<width>-<scheme>-<page>.png`.

use std::fmt;
use std::io::Write;
use std::path::PathBuf;

use serde_json::Value;

use super::driver::{Browser, LogEntry};

/// What a page is checked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Check {
    Overflow,
    Console,
    Contrast,
    Labels,
    Lang,
}

impl fmt::Display for Check {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Check::Overflow => "overflow",
            Check::Console => "console",
            Check::Contrast => "contrast",
            Check::Labels => "labels",
            Check::Lang => "lang",
        })
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lang {
    En,
    Ko,
}

impl Lang {
    pub fn tag(self) -> &'static str {
        match self {
            Lang::En => "en",
            Lang::Ko => "ko",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scheme {
    Light,
    Dark,
}

/// The conditions a page was seen under: `ko-390-dark`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Condition {
    pub lang: Lang,
    pub width: u32,
    pub scheme: Scheme,
}

impl fmt::Display for Condition {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let scheme = match self.scheme {
            Scheme::Light => "light",
            Scheme::Dark => "dark",
        };
        write!(f, "{}-{}-{scheme}", self.lang.tag(), self.width)
    }
}

#[derive(Debug, Clone)]
pub struct Problem {
    pub page: String,
    pub condition: Condition,
    pub check: Check,
    pub detail: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} [{}] {}: {}",
            self.page, self.condition, self.check, self.detail
        )
    }
}

/// The directory of screenshots and reports: `target/browser`.
pub fn out_dir() -> PathBuf {
    let tmp = PathBuf::from(env!("CARGO_TARGET_TMPDIR"));
    tmp.parent().unwrap_or(&tmp).join("browser")
}

/// Every problem of one journey.
pub struct Report {
    pub name: String,
    pub problems: Vec<Problem>,
    pub pages: usize,
}

impl Report {
    pub fn new(name: &str) -> Report {
        Report {
            name: name.to_owned(),
            problems: Vec::new(),
            pages: 0,
        }
    }

    pub fn add(&mut self, page: &str, condition: Condition, check: Check, detail: String) {
        self.problems.push(Problem {
            page: page.to_owned(),
            condition,
            check,
            detail,
        });
    }

    /// Writes `target/browser/report-<name>.txt`, prints the problems, and fails on any.
    pub fn finish(self) {
        let lines: String = self.problems.iter().map(|p| format!("  {p}\n")).collect();
        let text = format!(
            "{}: {} page views, {} problems\n{lines}",
            self.name,
            self.pages,
            self.problems.len(),
        );
        let dir = out_dir();
        std::fs::create_dir_all(&dir).expect("target/browser");
        std::fs::write(dir.join(format!("report-{}.txt", self.name)), &text)
            .expect("report written");
        // One line past the harness's capture, so that a passing run still says what it saw.
        let _ = writeln!(
            std::io::stderr(),
            "browser {}: {} page views, {} problems (target/browser/report-{}.txt)",
            self.name,
            self.pages,
            self.problems.len(),
            self.name
        );
        assert!(
            self.problems.is_empty(),
            "{} browser check(s) failed in {}:\n{lines}",
            self.problems.len(),
            self.name,
        );
    }
}

/// What `checks.js` measured on a page.
struct Measured {
    width: u64,
    dark: bool,
    overflow: Vec<String>,
    contrast: Vec<String>,
    unlabelled: Vec<String>,
}

fn strings(v: &Value) -> Vec<String> {
    v.as_array()
        .map(|a| {
            a.iter()
                .filter_map(|s| s.as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}

async fn measure(b: &Browser) -> Measured {
    // Measure the page at rest: its fonts loaded, its transitions and animations at their end.
    b.wait_for("the fonts", "document.fonts.status === 'loaded'")
        .await;
    b.js("for (const a of document.getAnimations()) { try { a.finish(); } catch (e) {} } return null;")
        .await;
    let m = b.js(include_str!("checks.js")).await;
    Measured {
        width: m["width"].as_u64().unwrap_or(0),
        dark: m["dark"].as_bool().unwrap_or(false),
        overflow: strings(&m["overflow"]),
        contrast: strings(&m["contrast"]),
        unlabelled: strings(&m["unlabelled"]),
    }
}

/// The language the page declares (`<html lang>`).
pub async fn page_lang(b: &Browser) -> String {
    let v = b.js("return document.documentElement.lang || '';").await;
    v.as_str().unwrap_or_default().to_owned()
}

/// Console errors and CSP violations in `log`. The page's own status (a 404 page answering
/// 404, which Chrome logs as a failed load of the document at `url`) is not one.
pub fn console_problems(log: &[LogEntry], url: &str) -> Vec<String> {
    let own_status = format!("{url} - Failed to load resource: the server responded with a status");
    log.iter()
        .filter(|e| e.level == "SEVERE" || e.message.contains("Content Security Policy"))
        .filter(|e| !e.message.starts_with(&own_status))
        .map(|e| format!("{} ({}): {}", e.level, e.source, e.message))
        .collect()
}

/// Every check on the page the browser shows, as `page`: at each width in `widths` (the first
/// is the journey's own, where the browser is left), with a screenshot at each.
pub async fn page(b: &Browser, report: &mut Report, page: &str, base: Condition, widths: [u32; 2]) {
    let url = b.url().await;
    for p in console_problems(&b.log().await, url.as_str()) {
        report.add(page, base, Check::Console, p);
    }
    for width in widths.iter().rev() {
        let cond = Condition {
            width: *width,
            ..base
        };
        b.set_width(*width).await;
        let m = measure(b).await;
        // The harness itself: a page not shown at the width or scheme asked for is a broken
        // test, not a finding about the page.
        assert_eq!(m.width, u64::from(*width), "viewport width at {url}");
        assert_eq!(
            m.dark,
            base.scheme == Scheme::Dark,
            "prefers-color-scheme at {url}"
        );
        for detail in m.overflow {
            report.add(page, cond, Check::Overflow, detail);
        }
        for detail in m.contrast {
            report.add(page, cond, Check::Contrast, detail);
        }
        for detail in m.unlabelled {
            report.add(page, cond, Check::Labels, format!("no label: {detail}"));
        }
        b.screenshot(&out_dir().join(format!("{cond}-{page}.png")))
            .await;
        report.pages += 1;
    }
}

#[test]
fn the_console_check_keeps_errors_and_csp_reports_but_not_the_pages_own_status() {
    let entry = |level: &str, source: &str, message: &str| LogEntry {
        level: level.into(),
        source: source.into(),
        message: message.into(),
    };
    let url = "http://127.0.0.1:1/_stepgate/nope";
    let log = [
        entry("SEVERE", "network", &format!("{url} - Failed to load resource: the server responded with a status of 404 (Not Found)")),
        entry("SEVERE", "network", "http://127.0.0.1:1/favicon.ico - Failed to load resource: the server responded with a status of 401 (Unauthorized)"),
        entry("SEVERE", "security", &format!("{url} 0 Applying inline style violates the following Content Security Policy directive 'style-src 'self''.")),
        entry("WARNING", "security", "[Report Only] Refused to load the image because it violates the following Content Security Policy directive"),
        entry("INFO", "console-api", "hello"),
    ];
    let found = console_problems(&log, url);
    assert_eq!(found.len(), 3, "{found:#?}");
    assert!(found[0].contains("favicon.ico"));
    assert!(found[1].contains("inline style"));
    assert!(found[2].starts_with("WARNING (security)"));
}
