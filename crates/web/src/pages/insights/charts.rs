//! Server-rendered SVG charts: stacked bars, lines and horizontal bars, each an `<svg
//! role="img">` with a `<title>`, a description and labelled axes. The numbers are always also
//! in a table on the page; the charts need no script.

use std::fmt::Write;

/// Escapes text for SVG/HTML content and attributes.
pub(crate) fn esc(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for ch in text.chars() {
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

/// One series: its name, its colour and one value per x position (`None`: no value).
pub(crate) struct Series {
    pub name: String,
    pub color: &'static str,
    pub values: Vec<Option<f64>>,
}

const W: f64 = 720.0;
const H: f64 = 260.0;
const LEFT: f64 = 56.0;
const RIGHT: f64 = 12.0;
const TOP: f64 = 34.0;
const BOTTOM: f64 = 52.0;

/// A round upper bound for an axis and its tick step.
fn nice_max(max: f64) -> (f64, f64) {
    if max <= 0.0 || !max.is_finite() {
        return (1.0, 0.25);
    }
    let raw = max / 4.0;
    let mag = 10f64.powf(raw.log10().floor());
    let step = [1.0, 2.0, 2.5, 5.0, 10.0]
        .iter()
        .map(|m| m * mag)
        .find(|s| *s >= raw)
        .unwrap_or(10.0 * mag);
    ((max / step).ceil() * step, step)
}

fn fmt_tick(v: f64) -> String {
    if (v - v.round()).abs() < 1e-9 {
        format!("{}", v.round() as i64)
    } else {
        format!("{v:.1}")
    }
}

/// The frame: title, description, legend, y axis with ticks and grid, x labels (thinned so
/// they do not overlap), axis titles. Returns the SVG opened but not closed, and the plot's
/// y scale.
fn frame(
    out: &mut String,
    (title, desc): (&str, &str),
    (x_labels, x_title, y_title): (&[String], &str, &str),
    legend: &[(&str, &'static str)],
    max: f64,
) -> impl Fn(f64) -> f64 + use<> {
    let (top, step) = nice_max(max);
    let plot_h = H - TOP - BOTTOM;
    let _ = write!(
        out,
        r#"<svg class="chart" viewBox="0 0 {W} {H}" role="img" aria-labelledby="{id}-t {id}-d" xmlns="http://www.w3.org/2000/svg"><title id="{id}-t">{t}</title><desc id="{id}-d">{d}</desc>"#,
        id = esc(&slug(title)),
        t = esc(title),
        d = esc(desc),
    );
    // Legend.
    let mut x = LEFT;
    for (name, color) in legend {
        let _ = write!(
            out,
            r#"<rect x="{x}" y="8" width="12" height="12" fill="{color}"/><text x="{tx}" y="18" class="legend">{n}</text>"#,
            tx = x + 16.0,
            n = esc(name)
        );
        x += 24.0 + 7.0 * name.chars().count() as f64;
    }
    // Y axis, ticks, grid.
    let y_of = move |v: f64| TOP + plot_h - (v / top) * plot_h;
    let mut v = 0.0;
    while v <= top + 1e-9 {
        let y = y_of(v);
        let _ = write!(
            out,
            r#"<line x1="{LEFT}" x2="{x2}" y1="{y:.1}" y2="{y:.1}" class="grid"/><text x="{tx}" y="{ty:.1}" class="tick" text-anchor="end">{l}</text>"#,
            x2 = W - RIGHT,
            tx = LEFT - 6.0,
            ty = y + 4.0,
            l = fmt_tick(v)
        );
        v += step;
    }
    let _ = write!(
        out,
        r#"<line x1="{LEFT}" x2="{LEFT}" y1="{TOP}" y2="{yb}" class="axis"/><line x1="{LEFT}" x2="{x2}" y1="{yb}" y2="{yb}" class="axis"/>"#,
        yb = TOP + plot_h,
        x2 = W - RIGHT
    );
    // X labels, at most about 12.
    let n = x_labels.len().max(1);
    let every = n.div_ceil(12);
    let slot = (W - LEFT - RIGHT) / n as f64;
    for (i, label) in x_labels.iter().enumerate() {
        if i % every != 0 {
            continue;
        }
        let _ = write!(
            out,
            r#"<text x="{x:.1}" y="{y}" class="tick" text-anchor="middle">{l}</text>"#,
            x = LEFT + slot * (i as f64 + 0.5),
            y = TOP + plot_h + 16.0,
            l = esc(label)
        );
    }
    let _ = write!(
        out,
        r#"<text x="{x}" y="{y}" class="axis-title" text-anchor="middle">{xt}</text><text x="14" y="{ym}" class="axis-title" text-anchor="middle" transform="rotate(-90 14 {ym})">{yt}</text>"#,
        x = LEFT + (W - LEFT - RIGHT) / 2.0,
        y = H - 8.0,
        xt = esc(x_title),
        ym = TOP + plot_h / 2.0,
        yt = esc(y_title)
    );
    y_of
}

fn slug(title: &str) -> String {
    let s: String = title
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_lowercase()
            } else {
                '-'
            }
        })
        .collect();
    format!("chart-{s}")
}

/// Bars per x position, one segment per series stacked bottom-up.
pub(crate) fn stacked_bars(
    title: &str,
    desc: &str,
    x_labels: &[String],
    x_title: &str,
    y_title: &str,
    series: &[Series],
) -> String {
    let n = x_labels.len();
    let totals: Vec<f64> = (0..n)
        .map(|i| {
            series
                .iter()
                .map(|s| s.values.get(i).copied().flatten().unwrap_or(0.0))
                .sum()
        })
        .collect();
    let max = totals.iter().copied().fold(0.0, f64::max);
    let legend: Vec<(&str, &'static str)> =
        series.iter().map(|s| (s.name.as_str(), s.color)).collect();
    let mut out = String::new();
    let y_of = frame(
        &mut out,
        (title, desc),
        (x_labels, x_title, y_title),
        &legend,
        max,
    );
    let slot = (W - LEFT - RIGHT) / n.max(1) as f64;
    let bar_w = (slot * 0.7).max(1.0);
    for (i, label) in x_labels.iter().enumerate() {
        let mut base = 0.0;
        for s in series {
            let v = s.values.get(i).copied().flatten().unwrap_or(0.0);
            if v <= 0.0 {
                continue;
            }
            let y_top = y_of(base + v);
            let y_bottom = y_of(base);
            let _ = write!(
                out,
                r#"<rect x="{x:.1}" y="{y:.1}" width="{bar_w:.1}" height="{h:.1}" fill="{c}"><title>{l}: {name} {v}</title></rect>"#,
                x = LEFT + slot * i as f64 + (slot - bar_w) / 2.0,
                y = y_top,
                h = (y_bottom - y_top).max(0.5),
                c = s.color,
                l = esc(label),
                name = esc(&s.name),
                v = fmt_tick(v)
            );
            base += v;
        }
    }
    out.push_str("</svg>");
    out
}

/// One line per series with a dot per value; gaps where a value is missing.
pub(crate) fn lines(
    title: &str,
    desc: &str,
    x_labels: &[String],
    x_title: &str,
    y_title: &str,
    series: &[Series],
) -> String {
    let n = x_labels.len();
    let max = series
        .iter()
        .flat_map(|s| s.values.iter().flatten().copied())
        .fold(0.0, f64::max);
    let legend: Vec<(&str, &'static str)> =
        series.iter().map(|s| (s.name.as_str(), s.color)).collect();
    let mut out = String::new();
    let y_of = frame(
        &mut out,
        (title, desc),
        (x_labels, x_title, y_title),
        &legend,
        max,
    );
    let slot = (W - LEFT - RIGHT) / n.max(1) as f64;
    for s in series {
        let mut path = String::new();
        let mut pen_down = false;
        for (i, label) in x_labels.iter().enumerate() {
            match s.values.get(i).copied().flatten() {
                Some(v) => {
                    let x = LEFT + slot * (i as f64 + 0.5);
                    let y = y_of(v);
                    let _ = write!(path, "{}{x:.1},{y:.1} ", if pen_down { "L" } else { "M" });
                    pen_down = true;
                    let _ = write!(
                        out,
                        r#"<circle cx="{x:.1}" cy="{y:.1}" r="3" fill="{c}"><title>{l}: {name} {v}</title></circle>"#,
                        c = s.color,
                        l = esc(label),
                        name = esc(&s.name),
                        v = fmt_tick(v)
                    );
                }
                None => pen_down = false,
            }
        }
        if !path.is_empty() {
            let _ = write!(
                out,
                r#"<path d="{p}" fill="none" stroke="{c}" stroke-width="2"/>"#,
                p = path.trim_end(),
                c = s.color
            );
        }
    }
    out.push_str("</svg>");
    out
}

/// Horizontal bars, one per (label, value), longest scale at the largest value.
pub(crate) fn hbars(title: &str, desc: &str, x_title: &str, items: &[(String, f64)]) -> String {
    let row = 24.0;
    let left = 180.0;
    let h = TOP + row * items.len() as f64 + 40.0;
    let max = items.iter().map(|i| i.1).fold(0.0, f64::max);
    let (top, step) = nice_max(max);
    let plot_w = W - left - RIGHT - 40.0;
    let x_of = |v: f64| left + v / top * plot_w;
    let mut out = String::new();
    let _ = write!(
        out,
        r#"<svg class="chart" viewBox="0 0 {W} {h}" role="img" aria-labelledby="{id}-t {id}-d" xmlns="http://www.w3.org/2000/svg"><title id="{id}-t">{t}</title><desc id="{id}-d">{d}</desc>"#,
        id = esc(&slug(title)),
        t = esc(title),
        d = esc(desc),
    );
    let bottom = TOP + row * items.len() as f64;
    let mut v = 0.0;
    while v <= top + 1e-9 {
        let x = x_of(v);
        let _ = write!(
            out,
            r#"<line x1="{x:.1}" x2="{x:.1}" y1="{TOP}" y2="{bottom}" class="grid"/><text x="{x:.1}" y="{ty}" class="tick" text-anchor="middle">{l}</text>"#,
            ty = bottom + 14.0,
            l = fmt_tick(v)
        );
        v += step;
    }
    for (i, (label, value)) in items.iter().enumerate() {
        let y = TOP + row * i as f64;
        let shown: String = label.chars().take(26).collect();
        let _ = write!(
            out,
            r##"<text x="{tx}" y="{ty:.1}" class="tick" text-anchor="end">{l}</text><rect x="{left}" y="{ry:.1}" width="{w:.1}" height="{rh}" fill="#7c3aed"><title>{full}: {v}</title></rect><text x="{vx:.1}" y="{ty:.1}" class="tick">{v}</text>"##,
            tx = left - 6.0,
            ty = y + row / 2.0 + 4.0,
            l = esc(&shown),
            ry = y + 4.0,
            w = (x_of(*value) - left).max(0.5),
            rh = row - 8.0,
            full = esc(label),
            v = fmt_tick((*value * 10.0).round() / 10.0),
            vx = x_of(*value) + 4.0,
        );
    }
    let _ = write!(
        out,
        r#"<line x1="{left}" x2="{left}" y1="{TOP}" y2="{bottom}" class="axis"/><text x="{x}" y="{y}" class="axis-title" text-anchor="middle">{xt}</text></svg>"#,
        x = left + plot_w / 2.0,
        y = bottom + 32.0,
        xt = esc(x_title)
    );
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nice_axis() {
        assert_eq!(nice_max(7.0), (8.0, 2.0));
        assert_eq!(nice_max(100.0), (100.0, 25.0));
        assert_eq!(nice_max(0.0), (1.0, 0.25));
    }

    #[test]
    fn escapes_labels() {
        let svg = hbars("Slow", "d", "min", &[("<b>&".into(), 3.0)]);
        assert!(svg.contains("&lt;b&gt;&amp;"));
        assert!(!svg.contains("<b>"));
        assert!(svg.contains(r#"role="img""#));
    }
}
