//! The HTML timeline of a run: one self-contained file (inline SVG and CSS, no script, nothing
//! fetched) with the cell and each client as a lane, operations as bars from invoke to
//! complete, lock beliefs as thin strips under them, faults and master changes marked across
//! all lanes, and the first violation highlighted. Hovering a bar shows the operation.

use std::fmt::Write;

use crate::check::{Report, belief_intervals};
use crate::history::{Event, FaultKind, History, Line, LockMode, OpError, OpId, OpResult, SimTime};

const LANE: u64 = 44;
const LEFT: u64 = 110;
const TOP: u64 = 30;

fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            _ => out.push(c),
        }
    }
    out
}

/// Maps simulated time to x pixels.
struct Scale {
    end: u64,
    width: u64,
}

impl Scale {
    fn new(end: SimTime) -> Scale {
        let end = end.0.max(1);
        // One pixel per millisecond, between 1200 and 24000 pixels wide.
        let width = (end / 1_000_000).clamp(1200, 24_000);
        Scale { end, width }
    }

    fn x(&self, t: SimTime) -> u64 {
        let t = t.0.min(self.end);
        LEFT + ((t as u128 * self.width as u128) / self.end as u128) as u64
    }
}

/// Renders the timeline of `history` as judged by `report`.
pub fn render_html(history: &History, report: &Report, title: &str) -> String {
    let end = history.end().plus(1);
    let scale = Scale::new(end);
    let clients: Vec<_> = history.clients().into_iter().collect();
    let lane_of = |client| {
        clients
            .iter()
            .position(|c| *c == client)
            .map_or(0, |i| i as u64 + 1)
    };
    let height = TOP + LANE * (clients.len() as u64 + 1) + 20;
    let width = LEFT + scale.width + 40;
    let first = report.first_violation();
    let highlighted: Vec<OpId> = first.map(|v| v.ops.clone()).unwrap_or_default();

    let mut svg = String::new();
    let _ = writeln!(
        svg,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" font-family="monospace" font-size="11">"#
    );
    // Lanes.
    for lane in 0..=clients.len() as u64 {
        let y = TOP + lane * LANE;
        let fill = if lane % 2 == 0 { "#f6f6f6" } else { "#ffffff" };
        let _ = writeln!(
            svg,
            r#"<rect x="0" y="{y}" width="{width}" height="{LANE}" fill="{fill}"/>"#
        );
        let label = if lane == 0 {
            "cell".to_owned()
        } else {
            format!("client {}", clients[(lane - 1) as usize].0)
        };
        let _ = writeln!(
            svg,
            r#"<text x="6" y="{}">{}</text>"#,
            y + LANE / 2 + 4,
            escape(&label)
        );
    }
    // Time axis: a tick every second, or every 100 ms for short runs.
    let tick = if end.0 > 5_000_000_000 {
        1_000_000_000
    } else {
        100_000_000
    };
    let mut t = 0;
    while t <= end.0 {
        let x = scale.x(SimTime(t));
        let _ = writeln!(
            svg,
            r##"<line x1="{x}" y1="{TOP}" x2="{x}" y2="{}" stroke="#e0e0e0"/><text x="{}" y="20" fill="#888">{}</text>"##,
            height - 20,
            x + 2,
            SimTime(t)
        );
        t += tick;
    }
    // Lock beliefs.
    for interval in belief_intervals(history) {
        let y = TOP + lane_of(interval.client) * LANE + LANE - 8;
        let (x1, x2) = (scale.x(interval.start), scale.x(interval.end));
        let color = match interval.mode {
            LockMode::Exclusive => "#1f5fbf",
            LockMode::Shared => "#8fb4ea",
        };
        let _ = writeln!(
            svg,
            r#"<rect x="{x1}" y="{y}" width="{}" height="5" fill="{color}"><title>{}</title></rect>"#,
            x2.saturating_sub(x1).max(1),
            escape(&format!(
                "believes it holds {} {:?} until {:?}",
                interval.path, interval.mode, interval.end_cause
            ))
        );
    }
    // Operations.
    for op in history.ops() {
        let y = TOP + lane_of(op.client) * LANE + 6;
        let x1 = scale.x(op.invoke_ns);
        let x2 = scale.x(op.complete_ns.unwrap_or(end));
        let (fill, dash) = match &op.result {
            OpResult::Ok(_) => ("#7cc47c", ""),
            OpResult::Err(OpError::Refused(_)) => ("#dddddd", ""),
            OpResult::Err(_) => ("#f0b060", ""),
            OpResult::Unknown => ("#bbbbbb", r#" stroke-dasharray="4 3""#),
        };
        let (stroke, stroke_width) = if highlighted.contains(&op.id) {
            ("#d00000", 3)
        } else {
            ("#555555", 1)
        };
        let _ = writeln!(
            svg,
            r#"<rect x="{x1}" y="{y}" width="{}" height="22" fill="{fill}" stroke="{stroke}" stroke-width="{stroke_width}"{dash}><title>{}</title></rect>"#,
            x2.saturating_sub(x1).max(2),
            escape(&format!(
                "#{} {} [{} .. {}]",
                op.id.0,
                op.describe(),
                op.invoke_ns,
                op.complete_ns
                    .map_or("unknown".to_owned(), |c| c.to_string())
            ))
        );
        if x2.saturating_sub(x1) > 40 {
            let _ = writeln!(
                svg,
                r#"<text x="{}" y="{}" pointer-events="none">{}</text>"#,
                x1 + 3,
                y + 15,
                escape(op.op.name())
            );
        }
    }
    // Events, faults and master changes.
    for line in &history.lines {
        match line {
            Line::Event(event) => {
                let x = scale.x(event.at_ns);
                let y = TOP + lane_of(event.client) * LANE;
                let (color, label) = match &event.event {
                    Event::Jeopardy {} => ("#a040a0", "jeopardy".to_owned()),
                    Event::Safe {} => ("#40a040", "safe".to_owned()),
                    Event::Expired {} => ("#a00000", "expired".to_owned()),
                    Event::LockAcquired { path, .. } => ("#1f5fbf", format!("acquired {path}")),
                    Event::NodeDeleted { path } => ("#806000", format!("deleted {path}")),
                    Event::MasterFailover { epoch } => ("#606060", format!("failover {epoch}")),
                };
                let _ = writeln!(
                    svg,
                    r#"<path d="M{x} {y} l4 6 l-4 6 l-4 -6 z" fill="{color}"><title>{}</title></path>"#,
                    escape(&format!("{label} at {}", event.at_ns))
                );
            }
            Line::Fault(fault) => {
                let x = scale.x(fault.at_ns);
                let color = if fault.fault == FaultKind::Heal {
                    "#20a020"
                } else {
                    "#e07000"
                };
                let mut what = format!("{:?}", fault.fault).to_lowercase();
                for m in &fault.members {
                    let _ = write!(what, " m{}", m.0);
                }
                for c in &fault.clients {
                    let _ = write!(what, " c{}", c.0);
                }
                if !fault.detail.is_empty() {
                    let _ = write!(what, " ({})", fault.detail);
                }
                let _ = writeln!(
                    svg,
                    r#"<line x1="{x}" y1="{TOP}" x2="{x}" y2="{}" stroke="{color}" stroke-dasharray="3 3"><title>{}</title></line><text x="{}" y="{}" fill="{color}">{}</text>"#,
                    height - 20,
                    escape(&format!("{what} at {}", fault.at_ns)),
                    x + 2,
                    TOP + 12,
                    escape(&what)
                );
            }
            Line::Master(master) => {
                let x = scale.x(master.at_ns);
                let _ = writeln!(
                    svg,
                    r##"<rect x="{x}" y="{}" width="3" height="{}" fill="#303090"><title>{}</title></rect><text x="{}" y="{}" fill="#303090">m{} e{}</text>"##,
                    TOP + 16,
                    LANE - 18,
                    escape(&format!(
                        "member {} master at epoch {} from {}",
                        master.member.0, master.epoch, master.at_ns
                    )),
                    x + 4,
                    TOP + LANE - 6,
                    master.member.0,
                    master.epoch
                );
            }
            _ => {}
        }
    }
    if let Some(v) = first {
        let x = scale.x(v.at);
        let _ = writeln!(
            svg,
            r##"<line x1="{x}" y1="{TOP}" x2="{x}" y2="{}" stroke="#d00000" stroke-width="2"><title>{}</title></line>"##,
            height - 20,
            escape(&v.to_string())
        );
    }
    svg.push_str("</svg>\n");

    let mut html = String::new();
    let _ = writeln!(
        html,
        "<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>{}</title>\n<style>\
         body{{font-family:sans-serif;margin:1em}} .scroll{{overflow-x:auto;border:1px solid #ccc}} \
         .violation{{background:#ffe0e0;border:2px solid #d00000;padding:.5em;margin:.5em 0}} \
         pre{{background:#f6f6f6;padding:.5em}}</style></head><body>",
        escape(title)
    );
    let _ = writeln!(html, "<h1>{}</h1>", escape(title));
    match first {
        Some(v) => {
            let _ = writeln!(
                html,
                "<div class=\"violation\"><b>First violation</b> (red line, red bars): {}</div>",
                escape(&v.to_string())
            );
        }
        None => html.push_str("<p>No violation.</p>\n"),
    }
    html.push_str(
        "<p>Bars: green ok, orange error, light grey refused, dashed grey unknown outcome \
         (drawn to the end). Strips under bars: lock believed held (dark exclusive, light \
         shared). Diamonds: client events. Dashed lines: faults (green: heal). \
         Blue marks on the cell lane: master changes.</p>\n<div class=\"scroll\">\n",
    );
    html.push_str(&svg);
    html.push_str("</div>\n<h2>Verdicts</h2>\n<pre>");
    html.push_str(&escape(&report.to_string()));
    html.push_str("</pre>\n</body></html>\n");
    html
}
