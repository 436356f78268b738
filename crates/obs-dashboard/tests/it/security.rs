//! Escaping of user-controlled strings and the page's self-containment.

use obs_core::{Event, EventType, LogLevel, Severity, data};
use obs_dashboard::{Dashboard, DashboardConfig};

use crate::support::*;

fn hostile_page() -> String {
    let mut config = DashboardConfig::default();
    config.title = Some("</title><script>alert('title')</script>".into());
    let mut dash = Dashboard::from_events(config, hostile_run(3, 12));
    let mut e = Event::new(EventType::HealthCheck, LogLevel::Basic)
        .severity(Severity::Danger)
        .message("line\u{2028}separator\u{2029} and <!-- comment")
        .data(data! {
            "rule_name" => "<svg onload=alert(2)>",
            "diagnosis" => "</details><script>alert(3)</script>",
            "recommendations" => vec!["<a href=\"javascript:alert(4)\">click</a>"],
        });
    e.layer_name = Some(SCRIPT_LAYER.into());
    dash.ingest(&e);
    dash.ingest(&batch_end(9, 0, 0.1).field("metrics", data! { "<loss>&\"'" => 1.0 }));
    dash.add_note("<note>", "<i>x</i>");
    dash.render().unwrap()
}

#[test]
fn no_user_string_reaches_the_page_as_markup() {
    let html = hostile_page();
    for raw in [
        "<script>alert",
        "<img",
        "<svg",
        "<a href",
        "</details><script>",
        "<b>mlp",
        "<i>x",
        "<note>",
        "<!-- comment",
        "</title><script>",
    ] {
        assert!(!html.contains(raw), "{raw:?} appears unescaped");
    }
    // Exactly our three scripts: the guard, the data and the charts.
    assert_eq!(html.matches("<script").count(), 3);
    assert_eq!(html.matches("</script>").count(), 3);
    // The escaped forms are there, readable as text.
    assert!(html.contains("&lt;img src=x onerror=alert(1)&gt;"));
    assert!(html.contains("&lt;&#x2f;script&gt;&lt;script&gt;alert(1)&lt;&#x2f;script&gt;"));
}

#[test]
fn strings_inside_the_embedded_json_survive_exactly() {
    let html = hostile_page();
    let data = page_data(&html);
    let grad = chart(&data, "grad").unwrap();
    assert!(series_names(grad).iter().any(|n| n == SCRIPT_LAYER));
    let health = chart(&data, "health").unwrap();
    assert!(series_names(health).iter().any(|n| n == "<svg onload=alert(2)>"));
    let batch_metrics = chart(&data, "batch-metrics").unwrap();
    assert_eq!(series_names(batch_metrics), ["<loss>&\"'"]);
    // Inside the script element the JSON has no character that could end it or confuse it.
    let open = r#"<script type="application/json" id="obs-data">"#;
    let start = html.find(open).unwrap() + open.len();
    let json = &html[start..start + html[start..].find("</script>").unwrap()];
    for c in ['<', '>', '&', '\u{2028}', '\u{2029}'] {
        assert!(!json.contains(c), "{c:?} in embedded JSON");
    }
}

/// The text between `<script>`/`<style>` tags of our own (static) code.
fn inline_code(html: &str) -> Vec<&str> {
    let mut out = Vec::new();
    for (open, close) in [("<script>", "</script>"), ("<style>", "</style>")] {
        let mut rest = html;
        while let Some(i) = rest.find(open) {
            let body = &rest[i + open.len()..];
            let end = body.find(close).unwrap();
            out.push(&body[..end]);
            rest = &body[end..];
        }
    }
    out
}

#[test]
fn the_page_refers_to_nothing_outside_itself() {
    let html = hostile_page();
    // Every tag is ours (user text has no `<` left); none may point anywhere.
    let mut rest = html.as_str();
    let mut tags = 0;
    while let Some(i) = rest.find('<') {
        let end = rest[i..].find('>').unwrap();
        let tag = rest[i..i + end].to_ascii_lowercase();
        for attr in [" src=", " href=", " action=", " srcset=", " poster=", " data=", " ping="] {
            assert!(!tag.contains(attr), "{tag:?} has {attr:?}");
        }
        for element in
            ["<link", "<iframe", "<object", "<embed", "<form", "<img", "<base", "<audio", "<video"]
        {
            assert!(!tag.starts_with(element), "{tag:?}");
        }
        tags += 1;
        rest = &rest[i + end..];
    }
    assert!(tags > 50);
    // Our own code loads nothing either.
    let code = inline_code(&html);
    assert_eq!(code.len(), 3);
    for c in code {
        let lower = c.to_ascii_lowercase();
        for needle in [
            "http:",
            "https:",
            "url(",
            "@import",
            "fetch(",
            "xmlhttprequest",
            "import(",
            "websocket",
            "sendbeacon",
            "://",
        ] {
            assert!(!lower.contains(needle), "our code mentions {needle:?}");
        }
    }
    // A Content-Security-Policy forbids every fetch and any script but ours.
    assert!(html.contains("content=\"default-src &#x27;none&#x27;; script-src &#x27;sha256-"));
}

#[test]
fn the_csp_pins_exactly_the_inline_scripts_of_the_page() {
    use sha2::{Digest, Sha256};
    let html = Dashboard::default().render().unwrap();
    let mut hashes = Vec::new();
    let mut rest = html.as_str();
    while let Some(i) = rest.find("<script>") {
        let body = &rest[i + 8..];
        let end = body.find("</script>").unwrap();
        let digest = Sha256::digest(&body.as_bytes()[..end]);
        hashes.push(base64(&digest));
        rest = &body[end..];
    }
    assert_eq!(hashes.len(), 2);
    let policy = html
        .split("http-equiv=\"Content-Security-Policy\" content=\"")
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .unwrap()
        .replace("&#x27;", "'")
        .replace("&#x2f;", "/");
    for h in hashes {
        assert!(policy.contains(&format!("'sha256-{h}'")), "script hash {h} not in {policy}");
    }
}

fn base64(bytes: &[u8]) -> String {
    const A: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let n = (0..3).fold(0u32, |acc, i| acc << 8 | u32::from(*chunk.get(i).unwrap_or(&0)));
        for i in 0..4 {
            out.push(if i <= chunk.len() {
                A[(n >> (18 - 6 * i) & 63) as usize] as char
            } else {
                '='
            });
        }
    }
    out
}
