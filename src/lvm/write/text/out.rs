//! Output: lvm2's two formatters (on-disk and file form), its number, size and time
//! forms, and the header block.

#![forbid(unsafe_code)]

use super::TextHeader;

/// Deepest indentation lvm2 prints (`MAX_INDENT`).
const MAX_INDENT: usize = 5;
/// Tab stop comments are aligned to (`COMMENT_TAB`).
const COMMENT_TAB: usize = 6;

pub(super) struct Out {
    pub(super) buf: String,
    /// Backup-file form: indentation and comments.
    pub(super) file: bool,
    pub(super) indent: usize,
}

impl Out {
    pub(super) fn new(file: bool) -> Out {
        Out::with_capacity(file, 0)
    }

    /// An output expected to grow to about `bytes`.
    pub(super) fn with_capacity(file: bool, bytes: usize) -> Out {
        Out {
            buf: String::with_capacity(bytes.max(16 * 1024)),
            file,
            indent: 0,
        }
    }

    pub(super) fn inc(&mut self) {
        self.indent = (self.indent + 1).min(MAX_INDENT);
    }

    pub(super) fn dec(&mut self) {
        self.indent = self.indent.saturating_sub(1);
    }

    pub(super) fn nl(&mut self) {
        self.buf.push('\n');
    }

    /// `outf` of formatted text: one line, written straight into the buffer.
    pub(super) fn linef(&mut self, args: std::fmt::Arguments<'_>) {
        use std::fmt::Write as _;
        if self.file {
            for _ in 0..self.indent {
                self.buf.push('\t');
            }
        }
        // Writing into a String cannot fail.
        let _ = self.buf.write_fmt(args);
        self.buf.push('\n');
    }

    /// `outf`: one line.
    pub(super) fn line(&mut self, text: &str) {
        self.line_c(text, None);
    }

    /// `outfc`/`outsize`/`outhint`: one line with a comment (files only), aligned as
    /// `_out_with_comment_file` aligns it.
    pub(super) fn line_c(&mut self, text: &str, comment: Option<&str>) {
        if self.file {
            for _ in 0..self.indent {
                self.buf.push('\t');
            }
        }
        self.buf.push_str(text);
        if self.file
            && let Some(c) = comment
        {
            let col = (text.len() + 8 * self.indent) / 8 + 1;
            let tabs = COMMENT_TAB.saturating_sub(col).max(1);
            for _ in 0..tabs {
                self.buf.push('\t');
            }
            self.buf.push_str(c);
        }
        self.buf.push('\n');
    }

    /// `outsize`: a line with the size comment for `sectors`.
    pub(super) fn size(&mut self, text: &str, sectors: u64) {
        if self.file {
            let c = size_comment(sectors);
            self.line_c(text, Some(&c));
        } else {
            self.line(text);
        }
    }
}

/// `"..."` with `"` and `\` escaped (`dm_escape_double_quotes`).
pub(super) fn q(s: &str) -> String {
    let mut o = String::with_capacity(s.len() + 2);
    o.push('"');
    for c in s.chars() {
        if c == '"' || c == '\\' {
            o.push('\\');
        }
        o.push(c);
    }
    o.push('"');
    o
}

/// `["a", "b"]` (the inside of lvm2's string lists).
pub(super) fn str_list<'a>(items: impl IntoIterator<Item = &'a str>) -> String {
    let mut o = String::from("[");
    for (i, s) in items.into_iter().enumerate() {
        if i > 0 {
            o.push_str(", ");
        }
        o.push_str(&q(s));
    }
    o.push(']');
    o
}

/// `_sectors_to_units`: `# <%g> <unit>`.
pub(super) fn size_comment(sectors: u64) -> String {
    const UNITS: [&str; 6] = [
        "Kilobytes",
        "Megabytes",
        "Gigabytes",
        "Terabytes",
        "Petabytes",
        "Exabytes",
    ];
    let mut d = sectors as f64 / 2.0;
    let mut i = 0;
    while d > 1024.0 && i < UNITS.len() - 1 {
        d /= 1024.0;
        i += 1;
    }
    format!("# {} {}", fmt_g(d), UNITS[i])
}

/// C's `%g` (6 significant digits, trailing zeros removed).
pub(super) fn fmt_g(d: f64) -> String {
    if d == 0.0 || !d.is_finite() {
        return if d.is_finite() {
            "0".into()
        } else {
            format!("{d}")
        };
    }
    let e = format!("{d:.5e}");
    let (mant, exp) = e.split_once('e').unwrap_or((&e, "0"));
    let x: i32 = exp.parse().unwrap_or(0);
    let trim = |s: &str| -> String {
        if s.contains('.') {
            s.trim_end_matches('0').trim_end_matches('.').to_string()
        } else {
            s.to_string()
        }
    };
    if !(-4..6).contains(&x) {
        let sign = if x < 0 { '-' } else { '+' };
        format!("{}e{sign}{:02}", trim(mant), x.abs())
    } else {
        let prec = usize::try_from(5 - x).unwrap_or(0);
        trim(&format!("{d:.prec$}"))
    }
}

/// UTC calendar fields of `secs`: (year, month 1-12, day, hour, minute, second, weekday
/// 0 = Sunday).
pub(super) fn civil(secs: u64) -> (i64, u32, u32, u32, u32, u32, usize) {
    let days = i64::try_from(secs / 86_400).unwrap_or(i64::MAX / 2);
    let rem = secs % 86_400;
    let (h, mi, s) = (
        (rem / 3600) as u32,
        (rem % 3600 / 60) as u32,
        (rem % 60) as u32,
    );
    let wd = ((days + 4).rem_euclid(7)) as usize;
    // Howard Hinnant's days-to-civil.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d, h, mi, s, wd)
}

/// `ctime(3)` in UTC, without the trailing newline: `Wed Dec  2 02:20:47 2026`.
pub(super) fn ctime(secs: u64) -> String {
    const WD: [&str; 7] = ["Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"];
    const MO: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let (y, m, d, h, mi, s, wd) = civil(secs);
    format!(
        "{} {} {d:2} {h:02}:{mi:02}:{s:02} {y}",
        WD[wd],
        MO[(m as usize).saturating_sub(1) % 12]
    )
}

/// `%Y-%m-%d %T %z` in UTC.
pub(super) fn iso_time(secs: u64) -> String {
    let (y, m, d, h, mi, s, _) = civil(secs);
    format!("{y:04}-{m:02}-{d:02} {h:02}:{mi:02}:{s:02} +0000")
}

pub(super) fn print_header(o: &mut Out, h: &TextHeader) {
    let t = ctime(h.creation_time);
    // ctime's newline and the line's own: an empty line follows.
    o.linef(format_args!("# Generated by {}: {t}\n", h.generator));
    o.line("contents = \"Text Format Volume Group\"");
    o.line("version = 1");
    o.nl();
    o.linef(format_args!("description = {}", q(&h.description)));
    o.nl();
    o.linef(format_args!(
        "creation_host = {}\t# {}",
        q(&h.creation_host),
        h.host_comment
    ));
    if let Some(id) = h.system_id.as_deref().filter(|s| !s.is_empty()) {
        o.linef(format_args!("creation_host_system_id = {}", q(id)));
    }
    o.linef(format_args!("creation_time = {}\t# {t}\n", h.creation_time));
}

// ---------------------------------------------------------------------------------------
#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn g_format_matches_c() {
        assert_eq!(fmt_g(4.0), "4");
        assert_eq!(fmt_g(0.5), "0.5");
        assert_eq!(fmt_g(1023.99), "1023.99");
        assert_eq!(fmt_g(1.0009765625), "1.00098");
        assert_eq!(fmt_g(999.9999), "1000");
        assert_eq!(fmt_g(8192.0), "8192");
        assert_eq!(fmt_g(1234567.0), "1.23457e+06");
        assert_eq!(size_comment(8192), "# 4 Megabytes");
        assert_eq!(size_comment(20971520), "# 10 Gigabytes");
        assert_eq!(size_comment(0), "# 0 Kilobytes");
    }

    #[test]
    fn ctime_matches_c() {
        assert_eq!(ctime(0), "Thu Jan  1 00:00:00 1970");
        assert_eq!(ctime(1_796_099_247), "Tue Dec  1 04:27:27 2026");
        assert_eq!(iso_time(951_782_400), "2000-02-29 00:00:00 +0000");
    }

    #[test]
    fn comments_align_like_lvm2() {
        let mut o = Out::new(true);
        o.indent = 3;
        o.line_c("pe_count = 2", Some("# x"));
        o.indent = 1;
        o.line_c("format = \"lvm2\"", Some("# y"));
        o.indent = 4;
        o.line_c("extent_count = 1234567890123", Some("# z"));
        assert_eq!(
            o.buf,
            "\t\t\tpe_count = 2\t# x\n\tformat = \"lvm2\"\t\t\t# y\n\t\t\t\textent_count = 1234567890123\t# z\n"
        );
    }
}
