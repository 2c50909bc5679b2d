//! HTML building blocks of the report: escaping, embedded images (PNG as `data:` URIs,
//! SVG inline), tables, number formatting, the stylesheet, and the page itself (header,
//! table of contents, sections). Nothing here refers to the network: no scripts, no
//! external style sheets or fonts, no links but in-page anchors.

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;

/// One section of the page.
#[derive(Clone, Debug, PartialEq)]
pub struct Section {
    /// Anchor (`#id`).
    pub id: &'static str,
    pub title: &'static str,
    /// HTML of the body.
    pub body: String,
    /// Whether its inputs were there (else the body says how to make them).
    pub shown: bool,
    /// When not shown: what would produce its input (plain text).
    pub hint: Option<String>,
}

impl Section {
    /// A section with content.
    pub fn shown(id: &'static str, title: &'static str, body: String) -> Section {
        Section {
            id,
            title,
            body,
            shown: true,
            hint: None,
        }
    }

    /// A section whose input is absent: its body is `hint`.
    pub fn absent(id: &'static str, title: &'static str, hint: String) -> Section {
        Section {
            id,
            title,
            body: missing(&hint),
            shown: false,
            hint: Some(hint),
        }
    }
}

/// `s` with `& < > " '` escaped.
pub fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for ch in s.chars() {
        match ch {
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

/// A paragraph saying what is missing; text in backquotes becomes code.
pub fn missing(hint: &str) -> String {
    let mut html = String::from("<p class=\"missing\">");
    for (i, part) in hint.split('`').enumerate() {
        if i % 2 == 1 {
            html += &format!("<code>{}</code>", esc(part));
        } else {
            html += &esc(part);
        }
    }
    html + "</p>"
}

/// An `<img>` of PNG bytes embedded as a `data:` URI.
pub fn png_img(png: &[u8], alt: &str, class: &str) -> String {
    let class = if class.is_empty() {
        String::new()
    } else {
        format!(" class=\"{class}\"")
    };
    format!(
        "<img{class} alt=\"{}\" src=\"data:image/png;base64,{}\">",
        esc(alt),
        STANDARD.encode(png)
    )
}

/// An SVG document to put inline (any XML declaration dropped), in a figure.
pub fn svg_figure(svg: &str, caption: &str) -> String {
    let start = svg.find("<svg").unwrap_or(0);
    format!(
        "<figure class=\"plot\">{}<figcaption>{}</figcaption></figure>",
        &svg[start..],
        esc(caption)
    )
}

/// `v` with `d` decimals, or an en dash when it is not finite.
pub fn num(v: f64, d: usize) -> String {
    if v.is_finite() {
        format!("{v:.d$}")
    } else {
        "&ndash;".into()
    }
}

/// A count with thousands separated by commas (`182,776`).
pub fn count(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, ch) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(ch);
    }
    out
}

/// [`num`] of an optional value (en dash for `None`).
pub fn opt(v: Option<f64>, d: usize) -> String {
    v.map_or_else(|| "&ndash;".into(), |v| num(v, d))
}

/// A table of already-escaped cells; `head` cells are escaped here. Cells that look like
/// numbers are right-aligned.
pub fn table(class: &str, head: &[&str], rows: &[Vec<String>]) -> String {
    let mut h = format!("<table class=\"{class}\"><thead><tr>");
    for c in head {
        h += &format!("<th>{}</th>", esc(c));
    }
    h += "</tr></thead><tbody>";
    for r in rows {
        h += "<tr>";
        for c in r {
            h += &cell("td", c);
        }
        h += "</tr>";
    }
    h + "</tbody></table>"
}

/// One cell; numeric content (tags aside) gets class `num`.
pub fn cell(tag: &str, html: &str) -> String {
    let mut text = String::new();
    let mut in_tag = false;
    for ch in html.chars() {
        match ch {
            '<' => in_tag = true,
            '>' => in_tag = false,
            c if !in_tag => text.push(c),
            _ => {}
        }
    }
    let t = text.trim();
    let numeric = !t.is_empty()
        && (t == "&ndash;"
            || t.trim_end_matches('%')
                .replace([',', '\u{2009}'], "")
                .parse::<f64>()
                .is_ok());
    if numeric {
        format!("<{tag} class=\"num\">{html}</{tag}>")
    } else {
        format!("<{tag}>{html}</{tag}>")
    }
}

/// The stylesheet.
pub const STYLE: &str = r#"
:root { --ink: #222; --muted: #667; --line: #e3e3e8; --accent: #0072b2; --bg: #fafafc; }
* { box-sizing: border-box; }
body { margin: 0; font: 15px/1.5 -apple-system, "Segoe UI", "DejaVu Sans", Helvetica, Arial, sans-serif; color: var(--ink); background: var(--bg); }
header { background: #12263a; color: #fff; padding: 22px 32px 18px; }
header h1 { margin: 0 0 6px; font-size: 24px; font-weight: 600; }
header dl { margin: 0; display: grid; grid-template-columns: max-content 1fr; gap: 2px 14px; font-size: 13px; color: #c9d6e3; }
header dt { font-weight: 600; color: #fff; }
header dd { margin: 0; font-family: ui-monospace, "DejaVu Sans Mono", Menlo, monospace; word-break: break-all; }
main { max-width: 1180px; margin: 0 auto; padding: 8px 32px 48px; }
nav.toc { background: #fff; border: 1px solid var(--line); border-radius: 8px; padding: 12px 20px; margin: 20px 0; }
nav.toc h2 { font-size: 15px; margin: 0 0 6px; border: 0; padding: 0; }
nav.toc ol { margin: 0; padding-left: 22px; columns: 2; }
nav.toc a { color: var(--accent); text-decoration: none; }
nav.toc a:hover { text-decoration: underline; }
nav.toc .absent { color: var(--muted); font-size: 12px; }
section { background: #fff; border: 1px solid var(--line); border-radius: 8px; padding: 6px 24px 20px; margin: 18px 0; }
h2 { font-size: 20px; font-weight: 600; margin: 16px 0 12px; padding-bottom: 6px; border-bottom: 2px solid var(--line); }
h3 { font-size: 17px; margin: 20px 0 8px; }
h4 { font-size: 14px; margin: 14px 0 6px; color: var(--muted); font-weight: 600; }
.note { color: var(--muted); font-size: 13px; }
p.note { margin: 6px 0; }
h3 .note { font-weight: normal; margin-left: 8px; }
p.missing { color: #8a5a00; background: #fff8e6; border: 1px solid #f3dfa8; border-radius: 6px; padding: 10px 14px; }
code { font-family: ui-monospace, "DejaVu Sans Mono", Menlo, monospace; font-size: 13px; background: #f0f0f4; padding: 1px 5px; border-radius: 4px; }
table { border-collapse: collapse; margin: 8px 0 14px; font-size: 14px; }
th, td { padding: 5px 12px; border-bottom: 1px solid var(--line); text-align: left; vertical-align: top; }
thead th { background: #f3f4f8; font-weight: 600; border-bottom: 2px solid #d5d7e0; }
td.num, th.num { text-align: right; font-variant-numeric: tabular-nums; }
tr.group th { text-align: center; background: #e9ecf4; }
table.settings td:first-child { font-family: ui-monospace, "DejaVu Sans Mono", Menlo, monospace; font-size: 13px; color: #334; }
.plots { display: grid; grid-template-columns: repeat(auto-fit, minmax(440px, 1fr)); gap: 14px; }
figure { margin: 0; }
figure.plot svg { width: 100%; height: auto; display: block; border: 1px solid var(--line); border-radius: 6px; }
figure figcaption { font-size: 12px; color: var(--muted); margin-top: 4px; }
.thumbs { display: flex; flex-wrap: wrap; gap: 8px; }
.thumbs figure { width: 100px; text-align: center; }
.thumbs img { width: 96px; height: 96px; border-radius: 4px; border: 2px solid var(--line); display: block; margin: 0 auto; }
.thumbs img.px { image-rendering: pixelated; }
.thumbs .tp img { border-color: #009e73; }
.thumbs .fp img { border-color: #d55e00; }
.thumbs .fn img { border-color: #e69f00; }
.thumbs figcaption { font-size: 11px; line-height: 1.3; word-break: break-all; }
.thumbs figcaption b { font-size: 12px; color: var(--ink); }
.maps { display: grid; grid-template-columns: repeat(auto-fill, minmax(300px, 1fr)); gap: 16px; }
.maps figure { border: 1px solid var(--line); border-radius: 6px; padding: 8px; background: #fcfcfd; }
.maps img { width: 100%; height: auto; display: block; border-radius: 4px; }
.maps figcaption { font-size: 13px; color: var(--ink); }
.maps figcaption table { font-size: 12px; margin: 4px 0 0; }
.maps figcaption td, .maps figcaption th { padding: 2px 6px; }
footer { color: var(--muted); font-size: 12px; text-align: center; margin: 24px 0; }
"#;

/// The whole page: header (title and a definition list of inputs), a table of contents
/// and the sections.
pub fn page(title: &str, facts: &[(&str, String)], sections: &[Section]) -> String {
    let mut h =
        String::from("<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n");
    h += "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n";
    h += &format!(
        "<title>{}</title>\n<style>{STYLE}</style>\n</head>\n<body>\n",
        esc(title)
    );
    h += &format!("<header><h1>{}</h1><dl>", esc(title));
    for (k, v) in facts {
        h += &format!("<dt>{}</dt><dd>{}</dd>", esc(k), esc(v));
    }
    h += "</dl></header>\n<main>\n<nav class=\"toc\"><h2>Contents</h2><ol>";
    for s in sections {
        let absent = if s.shown {
            ""
        } else {
            " <span class=\"absent\">(no input)</span>"
        };
        h += &format!(
            "<li><a href=\"#{}\">{}</a>{absent}</li>",
            s.id,
            esc(s.title)
        );
    }
    h += "</ol></nav>\n";
    for s in sections {
        h += &format!(
            "<section id=\"{}\">\n<h2>{}</h2>\n{}\n</section>\n",
            s.id,
            esc(s.title),
            s.body
        );
    }
    h += "<footer>Written by <code>fovea report</code>. Self-contained: every image is embedded.</footer>\n";
    h + "</main>\n</body>\n</html>\n"
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escaping_and_cells() {
        assert_eq!(
            esc("<a href='x'>&\"</a>"),
            "&lt;a href=&#39;x&#39;&gt;&amp;&quot;&lt;/a&gt;"
        );
        assert_eq!(cell("td", "0.125"), "<td class=\"num\">0.125</td>");
        assert_eq!(cell("td", "MA"), "<td>MA</td>");
        assert_eq!(
            cell("td", "<b>0.5</b>"),
            "<td class=\"num\"><b>0.5</b></td>"
        );
        assert_eq!(cell("td", "<b>MA</b>"), "<td><b>MA</b></td>");
        assert!(png_img(&[1], "a", "").starts_with("<img alt="));
        assert_eq!(num(f64::NAN, 3), "&ndash;");
        assert_eq!(num(0.12345, 3), "0.123");
        assert_eq!(
            (count(0), count(999), count(1000), count(182776)),
            ("0".into(), "999".into(), "1,000".into(), "182,776".into())
        );
        assert_eq!(cell("td", "1,000"), "<td class=\"num\">1,000</td>");
        assert_eq!(
            missing("run `fovea eval` first"),
            "<p class=\"missing\">run <code>fovea eval</code> first</p>"
        );
        let img = png_img(&[1, 2, 3], "a\"b", "x");
        assert!(
            img.contains("src=\"data:image/png;base64,AQID\"") && img.contains("alt=\"a&quot;b\"")
        );
        let fig = svg_figure("<?xml version=\"1.0\"?>\n<svg></svg>", "c");
        assert!(fig.starts_with("<figure class=\"plot\"><svg>"));
    }
}
