//! The console's pages as strings: one layout, a handful of components, and escaping for every
//! value that did not come from this file. Templates are Rust functions, compiled into the
//! binary; there is no template language to learn and nothing to ship beside the binary.

use std::fmt::Write;

/// Text for HTML content or a quoted attribute value.
pub fn esc(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// A path segment or query value for a link.
pub fn url_part(text: &str) -> String {
    url::form_urlencoded::byte_serialize(text.as_bytes()).collect()
}

/// Who is signed in, as the header shows them.
pub struct Chrome<'a> {
    pub name: &'a str,
    pub role: String,
    pub csrf: &'a str,
}

/// A problem with what was sent, shown in the error summary and, with `field`, next to that
/// field.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    pub field: Option<String>,
    pub message: String,
}

impl Problem {
    pub fn at(field: &str, message: impl Into<String>) -> Self {
        Self {
            field: Some(field.to_owned()),
            message: message.into(),
        }
    }

    pub fn general(message: impl Into<String>) -> Self {
        Self {
            field: None,
            message: message.into(),
        }
    }
}

const NAV: [(&str, &str); 6] = [
    ("/console/", "Home"),
    ("/console/patients", "Patients"),
    ("/console/proxies", "Proxy roles"),
    ("/console/tasks", "Tasks and reviews"),
    ("/console/opt-in", "Access model"),
    ("/console/audit", "Audit trail"),
];

/// The whole page. `current` is the navigation entry this page belongs to.
pub fn page(title: &str, current: &str, chrome: Option<&Chrome>, body: &str) -> String {
    let mut nav = String::new();
    let mut header_right = String::new();
    if let Some(c) = chrome {
        nav.push_str(r#"<nav class="nav" aria-label="Console"><ul>"#);
        for (href, label) in NAV {
            let here = if href == current { r#" aria-current="page""# } else { "" };
            let _ = write!(nav, r#"<li><a href="{href}"{here}>{label}</a></li>"#);
        }
        nav.push_str("</ul></nav>");
        let _ = write!(
            header_right,
            r#"<div class="who"><span>{name}, {role}</span>
<form method="post" action="/console/sign-out"><input type="hidden" name="csrf" value="{csrf}"><button type="submit" class="link-button">Sign out</button></form></div>"#,
            name = esc(c.name),
            role = esc(&c.role),
            csrf = esc(c.csrf),
        );
    }
    format!(
        r##"<!DOCTYPE html>
<html lang="en-GB">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{title} - Practice console - GP Online Services Gateway</title>
<link rel="stylesheet" href="/console/assets/console.css">
<script src="/console/assets/console.js" defer></script>
</head>
<body>
<a class="skip-link" href="#main">Skip to main content</a>
<header class="header"><div class="width">
<a class="brand" href="/console/">Practice console <span>GP Online Services Gateway</span></a>
{header_right}
</div></header>
<div class="width">{nav}
<main id="main" tabindex="-1">
<h1>{title}</h1>
{body}
</main></div>
</body>
</html>"##,
        title = esc(title),
    )
}

/// The error summary at the top of a form's page: every problem, each a link to its field.
pub fn error_summary(problems: &[Problem]) -> String {
    if problems.is_empty() {
        return String::new();
    }
    let mut items = String::new();
    for p in problems {
        match &p.field {
            Some(f) => {
                let _ = write!(items, "<li><a href=\"#{}\">{}</a></li>", esc(f), esc(&p.message));
            }
            None => {
                let _ = write!(items, "<li>{}</li>", esc(&p.message));
            }
        }
    }
    format!(
        r#"<div class="error-summary" role="alert" tabindex="-1" aria-labelledby="error-summary-title" data-focus>
<h2 id="error-summary-title">There is a problem</h2><ul>{items}</ul></div>"#
    )
}

/// A confirmation after an action, announced to screen readers.
pub fn notice(text: &str) -> String {
    format!(r#"<div class="notice" role="status">{}</div>"#, esc(text))
}

/// The message for `field`, if one of the problems concerns it.
fn field_error(problems: &[Problem], field: &str) -> Option<String> {
    problems
        .iter()
        .filter(|p| p.field.as_deref() == Some(field))
        .map(|p| p.message.clone())
        .reduce(|a, b| format!("{a} {b}"))
}

/// The attributes and error line that tie a field to its message (and to its hint, if any).
fn error_parts(problems: &[Problem], name: &str) -> (String, String, &'static str) {
    error_parts_with_hint(problems, name, false)
}

fn error_parts_with_hint(problems: &[Problem], name: &str, hint: bool) -> (String, String, &'static str) {
    let hint_id = if hint {
        format!("{}-hint ", esc(name))
    } else {
        String::new()
    };
    match field_error(problems, name) {
        Some(m) => (
            format!(
                r#" aria-describedby="{hint_id}{0}-error" aria-invalid="true""#,
                esc(name)
            ),
            format!(
                r#"<p class="field-error" id="{0}-error"><span class="visually-hidden">Error:</span> {1}</p>"#,
                esc(name),
                esc(&m)
            ),
            " field--error",
        ),
        None if hint => (format!(r#" aria-describedby="{}-hint""#, esc(name)), String::new(), ""),
        None => (String::new(), String::new(), ""),
    }
}

/// A labelled text input.
pub fn text_input(name: &str, label: &str, hint: &str, value: &str, max: usize, problems: &[Problem]) -> String {
    let (aria, error, class) = error_parts_with_hint(problems, name, !hint.is_empty());
    let hint = if hint.is_empty() {
        String::new()
    } else {
        format!(r#"<p class="hint" id="{}-hint">{}</p>"#, esc(name), esc(hint))
    };
    format!(
        r#"<div class="field{class}"><label for="{n}">{label}</label>{hint}{error}<input type="text" id="{n}" name="{n}" value="{v}" maxlength="{max}"{aria}></div>"#,
        n = esc(name),
        label = esc(label),
        v = esc(value),
    )
}

/// A labelled multi-line input.
pub fn textarea(name: &str, label: &str, value: &str, max: usize, problems: &[Problem]) -> String {
    let (aria, error, class) = error_parts(problems, name);
    format!(
        r#"<div class="field{class}"><label for="{n}">{label}</label>{error}<textarea id="{n}" name="{n}" rows="3" maxlength="{max}"{aria}>{v}</textarea></div>"#,
        n = esc(name),
        label = esc(label),
        v = esc(value),
    )
}

/// A labelled choice from `options` (value, label); the first is chosen when `chosen` is none
/// of them.
pub fn select(name: &str, label: &str, options: &[(&str, &str)], chosen: &str, problems: &[Problem]) -> String {
    let (aria, error, class) = error_parts(problems, name);
    let mut opts = String::new();
    for (value, text) in options {
        let selected = if *value == chosen { " selected" } else { "" };
        let _ = write!(
            opts,
            r#"<option value="{}"{selected}>{}</option>"#,
            esc(value),
            esc(text)
        );
    }
    format!(
        r#"<div class="field{class}"><label for="{n}">{label}</label>{error}<select id="{n}" name="{n}"{aria}>{opts}</select></div>"#,
        n = esc(name),
        label = esc(label),
    )
}

/// One required confirmation, as a checkbox in its own fieldset.
pub fn confirm(name: &str, legend: &str, label: &str, checked: bool, problems: &[Problem]) -> String {
    let (aria, error, class) = error_parts(problems, name);
    let checked = if checked { " checked" } else { "" };
    format!(
        r#"<fieldset class="field{class}"><legend>{legend}</legend>{error}<div class="checkbox"><input type="checkbox" id="{n}" name="{n}" value="yes"{checked}{aria}><label for="{n}">{label}</label></div></fieldset>"#,
        n = esc(name),
        legend = esc(legend),
        label = esc(label),
    )
}

/// A form that posts to `action` with the session's CSRF token and a request id of its own (a
/// form sent twice acts once), `fields` inside and one button.
pub fn form(action: &str, csrf: &str, fields: &str, button: &str, secondary: bool) -> String {
    let class = if secondary {
        "button button--secondary"
    } else {
        "button"
    };
    format!(
        r#"<form method="post" action="{a}" novalidate><input type="hidden" name="csrf" value="{c}"><input type="hidden" name="request" value="{r}">{fields}<button type="submit" class="{class}">{b}</button></form>"#,
        a = esc(action),
        c = esc(csrf),
        r = uuid::Uuid::new_v4(),
        b = esc(button),
    )
}

/// A table with a caption, header cells and rows of already escaped cells.
pub fn table(caption: &str, headers: &[&str], rows: &[Vec<String>]) -> String {
    if rows.is_empty() {
        return format!(r#"<p class="empty">{}: none.</p>"#, esc(caption));
    }
    let mut out = format!(
        r#"<div class="table-wrap"><table><caption>{}</caption><thead><tr>"#,
        esc(caption)
    );
    for h in headers {
        let _ = write!(out, r#"<th scope="col">{}</th>"#, esc(h));
    }
    out.push_str("</tr></thead><tbody>");
    for row in rows {
        out.push_str("<tr>");
        for cell in row {
            let _ = write!(out, "<td>{cell}</td>");
        }
        out.push_str("</tr>");
    }
    out.push_str("</tbody></table></div>");
    out
}

/// A list of terms and their values (already escaped).
pub fn summary_list(rows: &[(&str, String)]) -> String {
    let mut out = String::from(r#"<dl class="summary">"#);
    for (k, v) in rows {
        let _ = write!(out, "<div><dt>{}</dt><dd>{}</dd></div>", esc(k), v);
    }
    out.push_str("</dl>");
    out
}

/// A link whose text and target are escaped.
pub fn link(href: &str, text: &str) -> String {
    format!(r#"<a href="{}">{}</a>"#, esc(href), esc(text))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_value_is_escaped() {
        let p = vec![Problem::at("x\"><script>", "<b>bad</b>")];
        let html = text_input("x\"><script>", "<i>", "", "\"'&", 10, &p);
        assert!(!html.contains("<script>"), "{html}");
        assert!(!html.contains("<b>"), "{html}");
        assert!(html.contains("&quot;&#39;&amp;"), "{html}");
        assert!(error_summary(&p).contains("&lt;b&gt;bad"));
    }

    #[test]
    fn a_field_with_a_problem_says_so_to_assistive_technology() {
        let p = vec![Problem::at("reason", "Enter a reason")];
        let html = textarea("reason", "Reason", "", 200, &p);
        assert!(html.contains(r#"aria-describedby="reason-error""#), "{html}");
        assert!(html.contains(r#"aria-invalid="true""#));
        assert!(!textarea("other", "Other", "", 10, &p).contains("aria-invalid"));
    }
}
