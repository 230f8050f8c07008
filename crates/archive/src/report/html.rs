//! The report as one self-contained HTML page: inline CSS, inline SVG charts, no script
//! and no external asset (a Content-Security-Policy forbids both, so a browser would not
//! load one even if it got in). Every string that comes from the data (resource ids,
//! workloads, rule ids, reason codes, the archive URL) is attacker-influenced input and
//! goes through [`esc`] before it reaches the page.

use std::fmt::Write;

use super::{Day, Report, period};

/// Rows of the oldest open violations shown; the JSON lists every one.
const OPEN_SHOWN: usize = 25;
/// Labels longer than this are cut (the whole label is in the element's tooltip).
const LABEL_CHARS: usize = 44;
/// Width of the charts, in SVG units (the page is laid out for about 1200 px).
const CHART_WIDTH: f64 = 1100.0;
/// Bar colours, one per row, in order; chosen to stay apart for colour-blind readers.
const PALETTE: [&str; 8] = [
    "#2f6db5", "#e08a1e", "#3a9a5b", "#c0392b", "#7b5ea7", "#8c6d3f", "#d35fa6", "#6b7b8c",
];

const STYLE: &str = "\
body{font-family:'DejaVu Sans',Helvetica,Arial,sans-serif;margin:0;color:#1d2430;background:#f4f6f9}\
main{max-width:1180px;margin:0 auto;padding:24px 32px 48px}\
h1{font-size:26px;margin:0 0 4px}h2{font-size:19px;margin:0 0 12px}\
h3{font-size:15px;margin:18px 0 8px}\
section{background:#fff;border:1px solid #dde2ea;border-radius:6px;padding:18px 22px;margin:18px 0}\
.meta{color:#555f6d;font-size:13px;line-height:1.5;margin:2px 0}.meta code{font-size:12px}\
.banner{background:#fff4d6;border:1px solid #e6c35c;border-radius:6px;padding:10px 14px;margin:14px 0}\
.kpis{display:grid;grid-template-columns:repeat(4,1fr);gap:12px;background:none;border:none;padding:0}\
.kpi{background:#fff;border:1px solid #dde2ea;border-radius:6px;padding:12px 14px}\
.kpi .v{font-size:26px;font-weight:bold}.kpi .l{font-size:12px;color:#555f6d;text-transform:uppercase;letter-spacing:.04em}\
table{border-collapse:collapse;width:100%;font-size:13px;margin-top:6px}\
th,td{text-align:left;padding:5px 8px;border-bottom:1px solid #e6e9ef;vertical-align:top}\
th{background:#f0f3f7;font-weight:600}td.n,th.n{text-align:right;font-variant-numeric:tabular-nums}\
td.t{white-space:nowrap}td.id{font-family:'DejaVu Sans Mono',monospace;font-size:12px;word-break:break-all}\
.none{color:#8a93a0;font-style:italic}.note{color:#555f6d;font-size:12px}\
svg{display:block;max-width:100%;height:auto}svg text{font-family:'DejaVu Sans',Helvetica,Arial,sans-serif;font-size:12px;fill:#1d2430}\
.legend span{display:inline-block;margin-right:16px;font-size:12px}.legend i{display:inline-block;width:12px;height:12px;margin-right:5px;vertical-align:-1px}\
footer{font-size:12px;color:#555f6d}";

/// HTML-escapes `s` for text and for attribute values in double or single quotes.
pub(crate) fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c if c.is_control() && c != '\n' && c != '\t' => out.push('\u{fffd}'),
            c => out.push(c),
        }
    }
    out
}

/// `s` cut to [`LABEL_CHARS`] characters (with an ellipsis), escaped.
fn short(s: &str) -> String {
    if s.chars().count() <= LABEL_CHARS {
        esc(s)
    } else {
        let cut: String = s.chars().take(LABEL_CHARS - 1).collect();
        format!("{}…", esc(&cut))
    }
}

/// A workload for a table cell: escaped, or "no workload" set apart from any name.
fn workload(w: Option<&str>) -> String {
    match w {
        Some(w) => esc(w),
        None => "<span class=\"none\">(no workload)</span>".into(),
    }
}

/// `1234567` as `1,234,567`.
fn num(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

fn percent(p: Option<f64>) -> String {
    p.map_or_else(|| "n/a".into(), |p| format!("{p:.1}%"))
}

/// An age in seconds as `12d 4h`, `5h 3m` or `42m`.
fn age(seconds: i64) -> String {
    let s = seconds.max(0);
    let (d, h, m) = (s / 86_400, s % 86_400 / 3600, s % 3600 / 60);
    if d > 0 {
        format!("{d}d {h}h")
    } else if h > 0 {
        format!("{h}h {m}m")
    } else {
        format!("{m}m")
    }
}

/// RFC 3339 with microseconds as `2026-10-04 13:05 UTC`.
fn when(rfc3339: &str) -> String {
    chrono::DateTime::parse_from_rfc3339(rfc3339)
        .map(|t| t.format("%Y-%m-%d %H:%M UTC").to_string())
        .unwrap_or_else(|_| esc(rfc3339))
}

/// A horizontal bar per row: label, bar scaled to the largest value, value text.
struct Bar {
    label: String,
    /// Shown in the tooltip: the whole label and the value.
    title: String,
    value: f64,
    text: String,
    colour: &'static str,
}

fn hbar_chart(out: &mut String, aria: &str, bars: &[Bar], max: f64) {
    const ROW: f64 = 26.0;
    const LABEL_W: f64 = 300.0;
    const VALUE_W: f64 = 220.0;
    if bars.is_empty() {
        out.push_str("<p class=\"none\">Nothing in this period.</p>");
        return;
    }
    let height = ROW * bars.len() as f64 + 8.0;
    let span = CHART_WIDTH - LABEL_W - VALUE_W;
    let _ = write!(
        out,
        "<svg role=\"img\" aria-label=\"{}\" viewBox=\"0 0 {CHART_WIDTH} {height}\" width=\"{CHART_WIDTH}\" height=\"{height}\">",
        esc(aria)
    );
    for (i, b) in bars.iter().enumerate() {
        let y = 4.0 + ROW * i as f64;
        let w = if max > 0.0 {
            (b.value / max * span).max(if b.value > 0.0 { 1.5 } else { 0.0 })
        } else {
            0.0
        };
        let _ = write!(
            out,
            "<g><title>{title}</title>\
             <text x=\"{lx}\" y=\"{ty}\" text-anchor=\"end\">{label}</text>\
             <rect x=\"{LABEL_W}\" y=\"{ry}\" width=\"{w:.1}\" height=\"{bh}\" fill=\"{c}\" rx=\"2\"/>\
             <text x=\"{vx:.1}\" y=\"{ty}\">{text}</text></g>",
            title = b.title,
            lx = LABEL_W - 8.0,
            ty = y + 16.0,
            label = b.label,
            ry = y + 3.0,
            bh = ROW - 8.0,
            c = b.colour,
            vx = LABEL_W + w + 6.0,
            text = b.text,
        );
    }
    out.push_str("</svg>");
}

/// Policy hits per day as bars, and violations opened and resolved per day as lines on
/// a second chart below, sharing the day axis.
fn daily_chart(out: &mut String, days: &[Day]) {
    if days.is_empty() {
        return;
    }
    const LEFT: f64 = 70.0;
    const RIGHT: f64 = 20.0;
    const PANEL: f64 = 150.0;
    const GAP: f64 = 46.0;
    const TOP: f64 = 22.0;
    let height = TOP + PANEL + GAP + PANEL + 36.0;
    let span = CHART_WIDTH - LEFT - RIGHT;
    let step = span / days.len() as f64;
    let x = |i: usize| LEFT + step * i as f64;
    let max_hits = days.iter().map(|d| d.policy_hits).max().unwrap_or(0).max(1) as f64;
    let max_v = days
        .iter()
        .map(|d| d.violations_opened.max(d.violations_resolved))
        .max()
        .unwrap_or(0)
        .max(1) as f64;
    let _ = write!(
        out,
        "<svg role=\"img\" aria-label=\"Policy hits, violations opened and resolved per day\" viewBox=\"0 0 {CHART_WIDTH} {height}\" width=\"{CHART_WIDTH}\" height=\"{height}\">"
    );
    // Panel 1: hits.
    let base1 = TOP + PANEL;
    let _ = write!(
        out,
        "<text x=\"{LEFT}\" y=\"14\" font-weight=\"bold\">Policy hits per day</text>\
         <line x1=\"{LEFT}\" y1=\"{base1}\" x2=\"{r}\" y2=\"{base1}\" stroke=\"#8a93a0\"/>\
         <text x=\"{lx}\" y=\"{ty}\" text-anchor=\"end\">{maxt}</text>\
         <text x=\"{lx}\" y=\"{base1}\" text-anchor=\"end\">0</text>",
        r = CHART_WIDTH - RIGHT,
        lx = LEFT - 6.0,
        ty = TOP + 4.0,
        maxt = num(max_hits as u64),
    );
    for (i, d) in days.iter().enumerate() {
        let h = d.policy_hits as f64 / max_hits * PANEL;
        let _ = write!(
            out,
            "<rect x=\"{:.1}\" y=\"{:.1}\" width=\"{:.1}\" height=\"{h:.1}\" fill=\"{}\"><title>{}: {} policy hits</title></rect>",
            x(i) + step * 0.15,
            base1 - h,
            step * 0.7,
            PALETTE[0],
            d.date,
            num(d.policy_hits)
        );
    }
    // Panel 2: violations.
    let top2 = base1 + GAP;
    let base2 = top2 + PANEL;
    let _ = write!(
        out,
        "<text x=\"{LEFT}\" y=\"{t}\" font-weight=\"bold\">Violations opened and resolved per day</text>\
         <line x1=\"{LEFT}\" y1=\"{base2}\" x2=\"{r}\" y2=\"{base2}\" stroke=\"#8a93a0\"/>\
         <text x=\"{lx}\" y=\"{ty}\" text-anchor=\"end\">{maxt}</text>\
         <text x=\"{lx}\" y=\"{base2}\" text-anchor=\"end\">0</text>",
        t = top2 - 8.0,
        r = CHART_WIDTH - RIGHT,
        lx = LEFT - 6.0,
        ty = top2 + 4.0,
        maxt = num(max_v as u64),
    );
    for (series, colour, value) in [
        (
            "opened",
            PALETTE[3],
            (|d: &Day| d.violations_opened) as fn(&Day) -> u64,
        ),
        ("resolved", PALETTE[2], |d: &Day| d.violations_resolved),
    ] {
        let points: Vec<String> = days
            .iter()
            .enumerate()
            .map(|(i, d)| {
                format!(
                    "{:.1},{:.1}",
                    x(i) + step / 2.0,
                    base2 - value(d) as f64 / max_v * PANEL
                )
            })
            .collect();
        let _ = write!(
            out,
            "<polyline points=\"{}\" fill=\"none\" stroke=\"{colour}\" stroke-width=\"2\"/>",
            points.join(" ")
        );
        for (i, d) in days.iter().enumerate() {
            let _ = write!(
                out,
                "<circle cx=\"{:.1}\" cy=\"{:.1}\" r=\"3\" fill=\"{colour}\"><title>{}: {} {series}</title></circle>",
                x(i) + step / 2.0,
                base2 - value(d) as f64 / max_v * PANEL,
                d.date,
                num(value(d))
            );
        }
    }
    // Day axis: the day of the month, thinned out to stay readable.
    let every = (days.len() / 16).max(1);
    for (i, d) in days.iter().enumerate() {
        let date = chrono::NaiveDate::parse_from_str(&d.date, "%Y-%m-%d").ok();
        let first = date.is_some_and(period::is_first_of_month);
        if i % every != 0 && !first {
            continue;
        }
        let label = match date {
            Some(day) if first || i == 0 => day.format("%b %-d").to_string(),
            Some(day) => day.format("%-d").to_string(),
            None => String::new(),
        };
        let _ = write!(
            out,
            "<text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"middle\">{label}</text>",
            x(i) + step / 2.0,
            base2 + 18.0
        );
    }
    out.push_str("</svg>");
    let _ = write!(
        out,
        "<p class=\"legend\"><span><i style=\"background:{}\"></i>policy hits</span>\
         <span><i style=\"background:{}\"></i>violations opened</span>\
         <span><i style=\"background:{}\"></i>violations resolved</span></p>",
        PALETTE[0], PALETTE[3], PALETTE[2]
    );
}

/// The whole page.
pub(crate) fn render(r: &Report) -> String {
    let mut o = String::with_capacity(64 * 1024);
    let title = format!("Policy adherence report: {}", r.period.title);
    let _ = write!(
        o,
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; style-src 'unsafe-inline'\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <meta name=\"generator\" content=\"{tool}\">\
         <title>{t}</title><style>{STYLE}</style></head><body><main>\n",
        tool = esc(&r.generated_by.tool),
        t = esc(&title),
    );
    header(&mut o, r, &title);
    kpis(&mut o, r);
    hits(&mut o, r);
    o.push_str("<section><h2>Day by day</h2>");
    daily_chart(&mut o, &r.daily);
    o.push_str("</section>\n");
    adherence(&mut o, r);
    violations(&mut o, r);
    increases(&mut o, r);
    dead_letters(&mut o, r);
    hits_by_workload(&mut o, r);
    footer(&mut o, r);
    o.push_str("</main></body></html>\n");
    o
}

fn header(o: &mut String, r: &Report, title: &str) {
    let p = &r.period;
    let head = match (&r.archive.head_sequence, &r.archive.head_sha256) {
        (Some(seq), Some(sha)) => format!("head manifest {seq}, SHA-256 <code>{}</code>", esc(sha)),
        _ => "an empty archive".into(),
    };
    let _ = write!(
        o,
        "<header><h1>{}</h1>\
         <p class=\"meta\">Period {} ({}): {} to {} (UTC, end excluded)</p>\
         <p class=\"meta\">Made {} by {}{} from archive <code>{}</code>, {head}</p>",
        esc(title),
        esc(&p.label),
        match p.kind {
            super::PeriodKind::Month => "month",
            super::PeriodKind::Quarter => "quarter",
        },
        when(&p.start),
        when(&p.end),
        when(&r.generated_at),
        esc(&r.generated_by.tool),
        r.generated_by
            .user
            .as_deref()
            .map(|u| format!(" for {}", esc(u)))
            .unwrap_or_default(),
        esc(&r.archive.url),
    );
    if !p.complete {
        let _ = write!(
            o,
            "<p class=\"banner\"><strong>The period had not ended when this report was made.</strong> \
             It covers {} to {}; every \"at the end\" figure is as of {}.</p>",
            when(&p.start),
            when(&p.covered_until),
            when(&p.covered_until)
        );
    }
    o.push_str("</header>\n");
}

fn kpis(o: &mut String, r: &Report) {
    let t = &r.totals;
    let cards = [
        (percent(t.adherence_pct), "adherence"),
        (num(t.resources), "resources seen"),
        (num(t.policy_hits), "policy hits"),
        (num(t.violations_opened), "violations opened"),
        (num(t.violations_resolved), "violations resolved"),
        (num(t.violations_open_at_end), "open at the end"),
        (num(t.dead_letters), "dead letters"),
        (num(t.events), "events"),
    ];
    o.push_str("<section class=\"kpis\">");
    for (value, label) in cards {
        let _ = write!(
            o,
            "<div class=\"kpi\"><div class=\"v\">{value}</div><div class=\"l\">{label}</div></div>"
        );
    }
    o.push_str("</section>\n");
}

fn hits(o: &mut String, r: &Report) {
    o.push_str("<section><h2>Policy hits per rule</h2>");
    let max = r.hits_by_rule.iter().map(|h| h.hits).max().unwrap_or(0) as f64;
    let bars: Vec<Bar> = r
        .hits_by_rule
        .iter()
        .enumerate()
        .map(|(i, h)| Bar {
            label: short(&h.rule_id),
            title: format!("{}: {} hits", esc(&h.rule_id), num(h.hits)),
            value: h.hits as f64,
            text: format!("{} hits, {} windows", num(h.hits), num(h.windows)),
            colour: PALETTE[i % PALETTE.len()],
        })
        .collect();
    hbar_chart(o, "Policy hits per rule", &bars, max);
    o.push_str("</section>\n");
}

fn hits_by_workload(o: &mut String, r: &Report) {
    o.push_str(
        "<section><h2>Policy hits per rule and workload</h2><table><tr><th>rule</th><th>workload</th>\
         <th class=\"n\">hits</th><th class=\"n\">windows</th><th class=\"n\">resources</th></tr>",
    );
    for h in &r.policy_hits {
        let _ = write!(
            o,
            "<tr><td>{}</td><td>{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td></tr>",
            esc(&h.rule_id),
            workload(h.workload.as_deref()),
            num(h.hits),
            num(h.windows),
            num(h.resources)
        );
    }
    o.push_str("</table><p class=\"note\">hits: the events that hit the rule (for attack_increase, the attack events of the rising window); windows: (window, resource) rows.</p></section>\n");
}

fn violations(o: &mut String, r: &Report) {
    o.push_str(
        "<section><h2>Violations</h2><table><tr><th>rule</th><th class=\"n\">opened</th>\
         <th class=\"n\">resolved</th><th class=\"n\">open at the end</th><th class=\"n\">oldest open</th></tr>",
    );
    for v in &r.violations_by_rule {
        let _ = write!(
            o,
            "<tr><td>{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td></tr>",
            esc(&v.rule_id),
            num(v.opened),
            num(v.resolved),
            num(v.open_at_end),
            v.oldest_open_age_seconds
                .map(age)
                .unwrap_or_else(|| "–".into())
        );
    }
    if r.violations_by_rule.is_empty() {
        o.push_str("<tr><td colspan=\"5\" class=\"none\">No violations.</td></tr>");
    }
    o.push_str("</table>");
    let total = r.open_violations.len();
    let _ = write!(
        o,
        "<h3>Oldest violations still open at the end ({} of {})</h3>",
        total.min(OPEN_SHOWN),
        num(total as u64)
    );
    o.push_str(
        "<table><tr><th>resource</th><th>workload</th><th>rule</th><th>action in force</th>\
         <th>opened</th><th class=\"n\">age</th></tr>",
    );
    let mut oldest: Vec<_> = r.open_violations.iter().collect();
    oldest.sort_by(|a, b| {
        b.age_seconds
            .cmp(&a.age_seconds)
            .then(a.resource_id.cmp(&b.resource_id))
    });
    for v in oldest.iter().take(OPEN_SHOWN) {
        let _ = write!(
            o,
            "<tr><td class=\"id\">{}</td><td>{}</td><td>{}</td><td>{}</td><td class=\"t\">{}</td><td class=\"n\">{}</td></tr>",
            esc(&v.resource_id),
            workload(v.workload.as_deref()),
            esc(&v.rule_id),
            esc(&v.action),
            when(&v.opened_at),
            age(v.age_seconds)
        );
    }
    if total == 0 {
        o.push_str("<tr><td colspan=\"6\" class=\"none\">None open.</td></tr>");
    }
    o.push_str("</table><p class=\"note\">Age: from the opening event to the end of the covered range. The JSON lists every open violation.</p></section>\n");
}

fn adherence(o: &mut String, r: &Report) {
    o.push_str("<section><h2>Adherence per workload</h2><p class=\"note\">The share of each workload's resources (seen in the period's events) without a violation open at the end.</p>");
    let bars: Vec<Bar> = r
        .adherence
        .iter()
        .map(|a| {
            let name = a.workload.as_deref().unwrap_or("(no workload)");
            Bar {
                // Set apart from any workload's name, which could be "(no workload)".
                label: match &a.workload {
                    Some(w) => short(w),
                    None => {
                        "<tspan font-style=\"italic\" fill=\"#8a93a0\">(no workload)</tspan>".into()
                    }
                },
                title: format!(
                    "{}: {} of {} resources",
                    esc(name),
                    num(a.adherent),
                    num(a.resources)
                ),
                value: a.adherence_pct,
                text: format!(
                    "{} ({} of {})",
                    percent(Some(a.adherence_pct)),
                    num(a.adherent),
                    num(a.resources)
                ),
                colour: if a.adherence_pct >= 95.0 {
                    PALETTE[2]
                } else if a.adherence_pct >= 80.0 {
                    PALETTE[1]
                } else {
                    PALETTE[3]
                },
            }
        })
        .collect();
    hbar_chart(o, "Adherence per workload, percent", &bars, 100.0);
    o.push_str("</section>\n");
}

fn increases(o: &mut String, r: &Report) {
    let _ = write!(
        o,
        "<section><h2>Largest attack-rate increases</h2><p class=\"note\">Per resource and category, the window of the period with the largest rise over the window before (attack_increase hits); the {} largest.</p>",
        super::TOP_INCREASES
    );
    o.push_str(
        "<table><tr><th>resource</th><th>workload</th><th>category</th><th>window</th>\
         <th class=\"n\">before → in window</th><th class=\"n\">increase</th><th class=\"n\">rising windows</th>\
         <th class=\"n\">attack events</th><th class=\"n\">peak / min</th></tr>",
    );
    for a in &r.attack_increases {
        let _ = write!(
            o,
            "<tr><td class=\"id\">{}</td><td>{}</td><td>{}</td><td class=\"t\">{}</td><td class=\"n\">{} → {}</td>\
             <td class=\"n\">{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td></tr>",
            esc(&a.resource_id),
            workload(a.workload.as_deref()),
            esc(&a.category),
            when(&a.window_start),
            a.prev_count
                .map_or_else(|| "–".into(), |p| num(p.max(0) as u64)),
            num(a.hit_count.max(0) as u64),
            a.increase_pct
                .map_or_else(|| "–".into(), |p| format!("+{p:.0}%")),
            num(a.rising_windows),
            num(a.attack_events),
            a.peak_rate_per_min
                .map_or_else(|| "–".into(), |p| format!("{p:.1}"))
        );
    }
    if r.attack_increases.is_empty() {
        o.push_str("<tr><td colspan=\"9\" class=\"none\">No attack_increase hits in this period.</td></tr>");
    }
    o.push_str("</table></section>\n");
}

fn dead_letters(o: &mut String, r: &Report) {
    let _ = write!(
        o,
        "<section><h2>Dead letters</h2><p class=\"note\">{} messages ({} bytes) received in the period could not be accepted; each is archived with its reason and raw bytes.</p>",
        num(r.totals.dead_letters),
        num(r.totals.dead_letter_bytes)
    );
    let max = r.dead_letters.iter().map(|d| d.messages).max().unwrap_or(0) as f64;
    let bars: Vec<Bar> = r
        .dead_letters
        .iter()
        .map(|d| Bar {
            label: short(&d.reason_code),
            title: format!("{}: {} messages", esc(&d.reason_code), num(d.messages)),
            value: d.messages as f64,
            text: format!("{} ({} bytes)", num(d.messages), num(d.bytes)),
            colour: PALETTE[7],
        })
        .collect();
    hbar_chart(o, "Dead letters by reason", &bars, max);
    o.push_str("</section>\n");
}

fn footer(o: &mut String, r: &Report) {
    o.push_str("<footer><section><h2>How these numbers were made</h2><p class=\"note\">From the archive's committed files only, with the SQL files below (SHA-256 of each); the same numbers are in the JSON stored with this page. Opened and resolved count the changes whose event time falls in the period; a violation is open at the end when it opened before the end and was not resolved before it.</p><table><tr><th>query</th><th>SHA-256</th></tr>");
    for q in &r.queries {
        let _ = write!(
            o,
            "<tr><td>{}</td><td class=\"id\">{}</td></tr>",
            esc(&q.path),
            esc(&q.sha256)
        );
    }
    o.push_str("</table></section></footer>\n");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escaping_covers_markup_quotes_and_control_characters() {
        assert_eq!(
            esc("<script>alert('x')</script> & \"q\""),
            "&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt; &amp; &quot;q&quot;"
        );
        assert_eq!(esc("a\u{0}b"), "a\u{fffd}b");
        let long = "<".repeat(60);
        let cut = short(&long);
        assert!(!cut.contains('<') && cut.ends_with('…'), "{cut}");
    }

    #[test]
    fn numbers_and_ages_read_well() {
        assert_eq!(num(0), "0");
        assert_eq!(num(999), "999");
        assert_eq!(num(1000), "1,000");
        assert_eq!(num(1_234_567), "1,234,567");
        assert_eq!(age(59), "0m");
        assert_eq!(age(3 * 3600 + 120), "3h 2m");
        assert_eq!(age(2 * 86_400 + 5 * 3600), "2d 5h");
        assert_eq!(percent(None), "n/a");
        assert_eq!(percent(Some(99.95)), "100.0%");
    }
}
