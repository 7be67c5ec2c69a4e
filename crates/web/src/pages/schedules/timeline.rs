//! The schedule page's timeline as an SVG view model: one row per layer, a row of overrides
//! and the final row, over a period of whole days in the displayed zone. Pure: no I/O.
//!
//! SVG rather than HTML with inline styles because the page's CSP forbids inline styles;
//! geometry lives in attributes, colours in style.css classes.

use chrono::{DateTime, NaiveDate, TimeDelta, Utc};
use chrono_tz::Tz;
use heliograph_scheduler::{Schedule, Shift, Source, resolve_local};

/// Width of the time axis in SVG user units.
pub const AXIS: f64 = 1000.0;
/// Width of the row labels.
pub const LABEL: f64 = 130.0;
const ROW: f64 = 30.0;
const GAP: f64 = 6.0;
const HEAD: f64 = 34.0;

/// One coloured stretch in a row.
pub struct Block {
    pub x: String,
    pub y: String,
    pub w: String,
    pub text_x: String,
    pub text_y: String,
    pub class: String,
    /// Shown inside the block when it is wide enough.
    pub label: String,
    /// Tooltip and accessible name: who, from, to.
    pub title: String,
    /// "Cover this shift" link, when the viewer may create overrides.
    pub href: Option<String>,
}

/// A row: a layer, the overrides, or the final schedule.
pub struct Row {
    pub label: String,
    pub label_y: String,
    pub blocks: Vec<Block>,
    pub final_row: bool,
}

/// A day column.
pub struct Day {
    pub x: String,
    pub text_x: String,
    pub label: String,
    pub weekend: bool,
    pub w: String,
}

/// An hour mark, drawn on timelines of one or two days.
pub struct Tick {
    pub x: String,
    pub label: String,
}

/// Everyone drawn, for the colour legend.
pub struct Person {
    pub class: String,
    pub name: String,
}

/// Everything the template draws.
pub struct Timeline {
    pub ticks: Vec<Tick>,
    pub people: Vec<Person>,
    pub width: String,
    pub height: String,
    pub rows: Vec<Row>,
    pub days: Vec<Day>,
    pub now_x: Option<String>,
    pub grid_bottom: String,
}

/// What to draw and for whom.
pub struct Spec<'a> {
    pub schedule_id: i64,
    pub schedule: &'a Schedule,
    pub layer_names: Vec<String>,
    pub first_day: NaiveDate,
    pub days: u32,
    pub tz: Tz,
    pub now: DateTime<Utc>,
    pub name_of: &'a dyn Fn(i64) -> String,
    pub can_cover: bool,
}

/// The instants a period of `days` local days from `first_day` in `tz` spans.
pub fn period(first_day: NaiveDate, days: u32, tz: Tz) -> (DateTime<Utc>, DateTime<Utc>) {
    let start = resolve_local(tz, first_day.and_time(chrono::NaiveTime::MIN));
    let end_day = first_day
        .checked_add_days(chrono::Days::new(u64::from(days)))
        .unwrap_or(first_day);
    (
        start,
        resolve_local(tz, end_day.and_time(chrono::NaiveTime::MIN)),
    )
}

fn fmt(v: f64) -> String {
    format!("{v:.2}")
}

/// A short local time for tooltips, e.g. `Mon 30 Nov 09:00`.
pub fn short(at: DateTime<Utc>, tz: Tz) -> String {
    at.with_timezone(&tz).format("%a %-d %b %H:%M").to_string()
}

/// Builds the timeline.
pub fn build(spec: &Spec<'_>) -> Timeline {
    let (from, to) = period(spec.first_day, spec.days, spec.tz);
    let span = (to - from).num_seconds().max(1) as f64;
    let x_of =
        |t: DateTime<Utc>| LABEL + AXIS * ((t - from).num_seconds() as f64 / span).clamp(0.0, 1.0);
    let zone = spec.tz.name();
    let mut rows = Vec::new();
    let mut y = HEAD;
    let block = |shift: &Shift, y: f64, class: String, cover: bool| {
        let (x0, x1) = (x_of(shift.start), x_of(shift.end));
        let w = (x1 - x0).max(0.5);
        let who = shift
            .participant
            .map(|p| (spec.name_of)(p))
            .unwrap_or_else(|| "Nobody on call".into());
        let fits = (w / 6.2).floor() as usize;
        let label = if fits >= 3 {
            truncate(&who, fits)
        } else {
            String::new()
        };
        let title = format!(
            "{who}: {} – {} ({zone})",
            short(shift.start, spec.tz),
            short(shift.end, spec.tz)
        );
        let href = (cover && spec.can_cover).then(|| {
            format!(
                "/schedules/{}/overrides/new?start={}&end={}",
                spec.schedule_id,
                urlencode(&shift.start.to_rfc3339()),
                urlencode(&shift.end.to_rfc3339())
            )
        });
        Block {
            x: fmt(x0),
            y: fmt(y + 2.0),
            w: fmt(w),
            text_x: fmt(x0 + 4.0),
            text_y: fmt(y + ROW / 2.0 + 4.0),
            class,
            label,
            title,
            href,
        }
    };
    for (i, name) in spec.layer_names.iter().enumerate() {
        let blocks = spec
            .schedule
            .layer_shifts(i, from, to)
            .iter()
            .filter(|s| s.participant.is_some())
            .map(|s| block(s, y, person_class(s.participant), false))
            .collect();
        rows.push(Row {
            label: truncate(name, 20),
            label_y: fmt(y + ROW / 2.0 + 4.0),
            blocks,
            final_row: false,
        });
        y += ROW + GAP;
    }
    let finals = spec.schedule.final_shifts(from, to);
    let override_blocks = finals
        .iter()
        .filter(|s| matches!(s.source, Source::Override(_)))
        .map(|s| block(s, y, format!("{} ov", person_class(s.participant)), false))
        .collect();
    rows.push(Row {
        label: "Overrides".into(),
        label_y: fmt(y + ROW / 2.0 + 4.0),
        blocks: override_blocks,
        final_row: false,
    });
    y += ROW + GAP;
    let final_blocks = finals
        .iter()
        .map(|s| {
            let class = if s.participant.is_none() {
                "gap".to_owned()
            } else {
                person_class(s.participant)
            };
            block(s, y, class, true)
        })
        .collect();
    rows.push(Row {
        label: "Final".into(),
        label_y: fmt(y + ROW / 2.0 + 4.0),
        blocks: final_blocks,
        final_row: true,
    });
    y += ROW + GAP;
    let mut days = Vec::new();
    let mut day = spec.first_day;
    for _ in 0..spec.days {
        let (start, end) = period(day, 1, spec.tz);
        let (x0, x1) = (x_of(start), x_of(end));
        days.push(Day {
            x: fmt(x0),
            text_x: fmt((x0 + x1) / 2.0),
            w: fmt(x1 - x0),
            label: day.format("%a %-d").to_string(),
            weekend: matches!(
                chrono::Datelike::weekday(&day),
                chrono::Weekday::Sat | chrono::Weekday::Sun
            ),
        });
        day = day.succ_opt().unwrap_or(day);
    }
    let mut ticks = Vec::new();
    if spec.days <= 2 {
        let mut t = from;
        while t < to {
            let local = t.with_timezone(&spec.tz);
            if t > from
                && chrono::Timelike::hour(&local) % 3 == 0
                && chrono::Timelike::minute(&local) == 0
            {
                ticks.push(Tick {
                    x: fmt(x_of(t)),
                    label: local.format("%H:%M").to_string(),
                });
            }
            t += TimeDelta::minutes(30);
        }
    }
    let mut seen = std::collections::BTreeSet::new();
    let mut people = Vec::new();
    let layer_shifts =
        (0..spec.layer_names.len()).flat_map(|i| spec.schedule.layer_shifts(i, from, to));
    for p in finals
        .iter()
        .copied()
        .chain(layer_shifts)
        .filter_map(|s| s.participant)
    {
        if seen.insert(p) {
            people.push(Person {
                class: person_class(Some(p)),
                name: (spec.name_of)(p),
            });
        }
    }
    people.sort_by(|a, b| a.name.cmp(&b.name));
    let now_x = (spec.now >= from && spec.now < to).then(|| fmt(x_of(spec.now)));
    Timeline {
        ticks,
        people,
        width: fmt(LABEL + AXIS + 4.0),
        height: fmt(y),
        rows,
        days,
        now_x,
        grid_bottom: fmt(y - GAP),
    }
}

/// A colour class per person (eight colours, stable per id); gaps have their own.
pub fn person_class(p: Option<i64>) -> String {
    match p {
        Some(id) => format!("p{}", id.rem_euclid(8)),
        None => "gap".into(),
    }
}

fn truncate(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        s.to_owned()
    } else {
        let mut out: String = s.chars().take(max.saturating_sub(1)).collect();
        out.push('…');
        out
    }
}

/// Percent-encodes a query value.
pub fn urlencode(s: &str) -> String {
    url::form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

/// Hours of a duration, e.g. `7.5`.
pub fn hours(d: TimeDelta) -> String {
    let h = d.num_minutes() as f64 / 60.0;
    if (h - h.round()).abs() < 0.01 {
        format!("{}", h.round() as i64)
    } else {
        format!("{h:.1}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use heliograph_scheduler::{Layer, Rotation, ShiftLength, ShiftUnit};

    #[test]
    fn a_day_across_a_dst_change_is_drawn_with_its_real_length() {
        let layer = Layer {
            name: "Primary".into(),
            rotation: Rotation {
                participants: vec![1, 2],
                shift: ShiftLength {
                    unit: ShiftUnit::Days,
                    count: 1,
                },
                handoff: "2026-03-01T09:00:00".parse().unwrap(),
                handoff_time_zone: chrono_tz::Europe::London,
            },
            restrictions: vec![],
        };
        let schedule = Schedule::new(vec![layer], vec![]).unwrap();
        let name_of = |p: i64| format!("P{p}");
        let t = build(&Spec {
            schedule_id: 1,
            schedule: &schedule,
            layer_names: vec!["Primary".into()],
            first_day: "2026-03-28".parse().unwrap(),
            days: 2,
            tz: chrono_tz::Europe::London,
            now: "2026-03-28T12:00:00Z".parse().unwrap(),
            name_of: &name_of,
            can_cover: true,
        });
        // 28 March has 24 hours, 29 March (clocks go forward) 23: 24/47 of the axis.
        let first: f64 = t.days[0].w.parse().unwrap();
        assert!((first - AXIS * 24.0 / 47.0).abs() < 0.01, "{first}");
        assert_eq!(t.rows.len(), 3);
        let finals = &t.rows[2].blocks;
        assert!(finals.iter().all(|b| b.href.is_some()));
        assert!(finals[0].title.contains("(Europe/London)"));
        assert_eq!(t.now_x.as_deref(), Some(&*fmt(LABEL + AXIS * 12.0 / 47.0)));
    }

    #[test]
    fn hours_are_short() {
        assert_eq!(hours(TimeDelta::minutes(480)), "8");
        assert_eq!(hours(TimeDelta::minutes(450)), "7.5");
    }
}
