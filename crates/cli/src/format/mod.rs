//! Output formatting shared by the commands: docker's `--format` handling (`table`,
//! `json`, custom Go templates), aligned tables, sizes, times and progress streams.

pub mod json;
pub mod jsonmessage;
pub mod tabwriter;
pub mod template;
pub mod typed;
pub mod units;

use template::{Data, Template, TemplateError};

/// Format keyword selecting a table with column headers.
pub const TABLE: &str = "table";
/// Format keyword selecting one JSON object per line.
pub const JSON: &str = "json";

/// Whether a `--format` value asks for a table.
pub fn is_table(format: &str) -> bool {
    format.starts_with(TABLE)
}

/// The template text docker runs for a `--format` value: `table` and surrounding spaces
/// removed, `json` expanded, and the escapes `\t` and `\n` turned into the characters.
pub fn template_source(format: &str) -> String {
    let source = if is_table(format) {
        &format[TABLE.len()..]
    } else if format == JSON {
        "{{json .}}"
    } else {
        format
    };
    source
        .trim_matches(' ')
        .replace("\\t", "\t")
        .replace("\\n", "\n")
}

/// Renders `rows` with a `--format` value the way docker's formatter does: one template
/// run per row, each followed by a newline; for tables a header row rendered from
/// `header` and columns aligned with a minimum width of 10 and padding of 3.
pub fn render_rows(format: &str, header: &Data, rows: &[Data]) -> Result<String, TemplateError> {
    let source = template_source(format);
    let template = Template::parse_table(&source)
        .map_err(|e| TemplateError(format!("template parsing error: {e}")))?;
    let mut body = String::new();
    for row in rows {
        let line = template
            .render(row)
            .map_err(|e| TemplateError(format!("template parsing error: {e}")))?;
        body.push_str(&line);
        body.push('\n');
    }
    if !is_table(format) {
        return Ok(body);
    }
    let mut text = template.render_header(header);
    text.push('\n');
    text.push_str(&body);
    Ok(tabwriter::align(&text, 10, 3))
}

/// Docker's `Ellipsis`: shortens to `max` display columns, ending in "…".
pub fn ellipsis(s: &str, max: usize) -> String {
    use unicode_width::UnicodeWidthChar;
    if max == 0 {
        return String::new();
    }
    if max == 1 {
        return s.chars().next().map(String::from).unwrap_or_default();
    }
    let total: usize = s.chars().map(|c| c.width().unwrap_or(0).max(1)).sum();
    if total <= max {
        return s.to_string();
    }
    let mut out = String::new();
    let mut width = 0;
    for c in s.chars() {
        let w = c.width().unwrap_or(0).max(1);
        if width + w > max - 1 {
            break;
        }
        width += w;
        out.push(c);
    }
    out.push('…');
    out
}

/// Docker's `stringid.TruncateID`: the first 12 characters after any "algo:" prefix.
pub fn truncate_id(id: &str) -> String {
    let id = id.split_once(':').map_or(id, |(_, hex)| hex);
    id.chars().take(12).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn template_sources() {
        assert_eq!(
            template_source("table {{.ID}}\\t{{.Size}}"),
            "{{.ID}}\t{{.Size}}"
        );
        assert_eq!(template_source("json"), "{{json .}}");
        assert_eq!(template_source(" {{.ID}}\\n"), "{{.ID}}\n");
    }

    #[test]
    fn renders_tables_and_plain_rows() {
        let header = Data::header(&[("ID", "IMAGE ID"), ("Size", "SIZE")]);
        let rows = vec![
            Data::from_fields(&[("ID", "abc".into()), ("Size", "1MB".into())]),
            Data::from_fields(&[("ID", "defghijklmnop".into()), ("Size", "22MB".into())]),
        ];
        assert_eq!(
            render_rows("table {{.ID}}\t{{.Size}}", &header, &rows).unwrap(),
            "IMAGE ID        SIZE\nabc             1MB\ndefghijklmnop   22MB\n"
        );
        assert_eq!(
            render_rows("{{.ID}}", &header, &rows).unwrap(),
            "abc\ndefghijklmnop\n"
        );
        assert_eq!(render_rows("table", &header, &rows).unwrap(), "\n\n\n");
        assert!(render_rows("{{.Nope}}", &header, &rows).is_err());
    }

    #[test]
    fn ellipsis_and_ids() {
        assert_eq!(ellipsis("abcdef", 4), "abc…");
        assert_eq!(ellipsis("abc", 4), "abc");
        assert_eq!(ellipsis("名前名前", 5), "名前…");
        assert_eq!(truncate_id("sha256:c133017346038e208ae46"), "c13301734603");
        assert_eq!(truncate_id("abc"), "abc");
    }
}
