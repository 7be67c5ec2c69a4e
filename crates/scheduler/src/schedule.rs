//! The validated [`Schedule`] and its queries: who is on call, the final schedule, gaps,
//! handoffs and per-person load.
//!
//! Internally every instant is an `i64` of nanoseconds (see `time.rs`). A query over
//! `[from, to)` costs in proportion to the shifts, windows and overrides inside it: the shift
//! index at `from` is computed arithmetically (calendar days counted with `NaiveDate`
//! arithmetic for day and week rotations) and overrides are pre-flattened into a sorted,
//! non-overlapping list searched by bisection.

use std::collections::{BTreeMap, BinaryHeap};

use chrono::{DateTime, Datelike, NaiveDate, NaiveDateTime, NaiveTime, TimeDelta, Utc, Weekday};
use chrono_tz::Tz;
use serde::Serialize;

use crate::model::{
    Layer, MAX_LAYERS, MAX_PARTICIPANTS, MAX_SHIFT_DAYS, MAX_SHIFT_HOURS, MAX_SHIFT_WEEKS,
    Override, ParticipantId, ScheduleError, ShiftUnit,
};
use crate::time::{
    H0, H1, NS_PER_HOUR, Ns, add_days, from_ns, local_date_of, offset_secs, resolve_date_minutes,
    resolve_ns, to_ns,
};

/// Where a stretch of the final schedule comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Source {
    /// The layer with this index (0 = lowest).
    Layer(usize),
    /// The override with this id.
    Override(i64),
    /// Nobody is on call (a gap).
    None,
}

/// One stretch of a schedule: `participant` (or nobody) is on call over `[start, end)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
pub struct Shift {
    /// Start (inclusive).
    pub start: DateTime<Utc>,
    /// End (exclusive).
    pub end: DateTime<Utc>,
    /// Who is on call; `None` for a gap.
    pub participant: Option<ParticipantId>,
    /// The layer or override this stretch came from.
    pub source: Source,
}

/// The answer to "who is on call at t": it holds over `[since, until)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
pub struct OnCall {
    /// Who is on call; `None` in a gap.
    pub participant: Option<ParticipantId>,
    /// When this answer started holding (clamped to the horizon).
    pub since: DateTime<Utc>,
    /// When this answer stops holding (clamped to the horizon).
    pub until: DateTime<Utc>,
    /// The layer or override the answer comes from.
    pub source: Source,
}

/// An instant at which the person on call changes (`None` = nobody).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
pub struct Handoff {
    /// When the change happens.
    pub at: DateTime<Utc>,
    /// Who was on call just before.
    pub from: Option<ParticipantId>,
    /// Who is on call from `at`.
    pub to: Option<ParticipantId>,
}

/// One person's on-call time over a range: the raw material of load and fairness reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Load {
    /// Total time on call.
    pub on_call: TimeDelta,
    /// Of that, time in the person's local night (22:00–08:00 in their zone).
    pub night: TimeDelta,
    /// Of that, time on the person's local weekend (Saturday and Sunday in their zone).
    pub weekend: TimeDelta,
}

/// A stretch of one layer or rotation during which `who` is on call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Seg {
    start: Ns,
    end: Ns,
    who: ParticipantId,
}

/// A stretch of the final schedule in internal time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Raw {
    start: Ns,
    end: Ns,
    who: Option<ParticipantId>,
    src: Source,
}

impl Raw {
    fn to_shift(self) -> Shift {
        Shift {
            start: from_ns(self.start),
            end: from_ns(self.end),
            participant: self.who,
            source: self.src,
        }
    }
}

/// Pushes `r` onto `out`, merging it into the last stretch when adjacent and equal.
fn push_merged(out: &mut Vec<Raw>, r: Raw) {
    if r.start >= r.end {
        return;
    }
    if let Some(last) = out.last_mut()
        && last.end == r.start
        && last.who == r.who
        && last.src == r.src
    {
        last.end = r.end;
        return;
    }
    out.push(r);
}

/// How shift boundaries are laid out.
#[derive(Debug, Clone)]
enum Cadence {
    /// Boundary k = `origin + k * len` (exact elapsed time).
    Elapsed { origin: Ns, len: Ns },
    /// Boundary k = local `date + k * period_days` at `time` in `tz`.
    Calendar {
        date: NaiveDate,
        time: NaiveTime,
        period_days: i64,
        tz: Tz,
    },
}

#[derive(Debug, Clone)]
struct CompiledRotation {
    participants: Vec<ParticipantId>,
    /// Every participant is the same person: one unbroken run from the first handoff.
    constant: bool,
    cadence: Cadence,
    /// The first handoff instant, `boundary(0)`.
    first: Ns,
}

impl CompiledRotation {
    /// The instant at which shift `k` starts (any `k`; saturates at the horizon).
    fn boundary(&self, k: i64) -> Ns {
        match &self.cadence {
            Cadence::Elapsed { origin, len } => {
                origin.saturating_add(k.saturating_mul(*len)).clamp(H0, H1)
            }
            Cadence::Calendar {
                date,
                time,
                period_days,
                tz,
            } => {
                let d = add_days(*date, k.saturating_mul(*period_days));
                resolve_ns(*tz, NaiveDateTime::new(d, *time))
            }
        }
    }

    /// Index `k` of the shift containing `t` (negative before the first handoff) with its
    /// bounds `[boundary(k), boundary(k + 1))`.
    fn shift_at(&self, t: Ns) -> (i64, Ns, Ns) {
        let mut k = match &self.cadence {
            Cadence::Elapsed { origin, len } => {
                let k = (t - origin).div_euclid(*len);
                return (k, self.boundary(k), self.boundary(k + 1));
            }
            Cadence::Calendar {
                date,
                period_days,
                tz,
                ..
            } => {
                let days = (local_date_of(*tz, t) - *date).num_days();
                days.div_euclid(*period_days)
            }
        };
        // The local date puts us within one shift of the answer; DST can move the boundary
        // across `t` by at most a few hours, so a couple of steps settle it.
        let mut a = self.boundary(k);
        let mut b = self.boundary(k + 1);
        for _ in 0..4 {
            if a > t {
                k -= 1;
                b = a;
                a = self.boundary(k);
            } else if b <= t {
                k += 1;
                a = b;
                b = self.boundary(k + 1);
            } else {
                break;
            }
        }
        (k, a, b)
    }

    /// The run of one person containing `t` (at or after the first handoff): the person and
    /// the stretch over which consecutive shifts are theirs.
    fn run_at(&self, t: Ns) -> (ParticipantId, Ns, Ns) {
        if self.constant {
            return (self.participants[0], self.first, H1);
        }
        let (k, mut a, mut b) = self.shift_at(t);
        let who = self.participant(k);
        let n = self.participants.len() as i64;
        let mut j = k;
        while j > 0 && k - j < n && self.participant(j - 1) == who {
            j -= 1;
            a = self.boundary(j);
        }
        let mut j = k;
        while j - k < n && b < H1 && self.participant(j + 1) == who {
            j += 1;
            b = self.boundary(j + 1);
        }
        (who, a, b)
    }

    fn participant(&self, k: i64) -> ParticipantId {
        let n = self.participants.len() as i64;
        self.participants[k.rem_euclid(n) as usize]
    }

    /// Appends the runs of this rotation clipped to `[from, to)`; consecutive shifts of the
    /// same person form one run.
    fn runs(&self, from: Ns, to: Ns, out: &mut Vec<Seg>) {
        let first = self.first;
        if self.constant {
            let s = from.max(first);
            if s < to {
                out.push(Seg {
                    start: s,
                    end: to,
                    who: self.participants[0],
                });
            }
            return;
        }
        let (k0, a0, _) = self.shift_at(from);
        let mut k = k0.max(0);
        let mut s = from.max(if k0 >= 0 { a0 } else { first });
        let base = out.len();
        while s < to {
            let e = self.boundary(k + 1).min(to);
            if e <= s {
                // Saturated at the horizon.
                break;
            }
            let who = self.participant(k);
            let extend = out.len() > base;
            match out.last_mut() {
                Some(last) if extend && last.end == s && last.who == who => {
                    last.end = e;
                }
                _ => out.push(Seg {
                    start: s,
                    end: e,
                    who,
                }),
            }
            s = e;
            k += 1;
        }
    }
}

#[derive(Debug, Clone)]
struct CompiledRestriction {
    /// Indexed by `Weekday::num_days_from_monday`.
    days: [bool; 7],
    start: u16,
    end: u16,
    tz: Tz,
}

impl CompiledRestriction {
    /// The window starting on local `date`, if the restriction has one that day.
    fn window_on(&self, date: NaiveDate) -> Option<(Ns, Ns)> {
        if !self.days[date.weekday().num_days_from_monday() as usize] {
            return None;
        }
        let s = resolve_date_minutes(self.tz, date, self.start);
        let e = if self.end > self.start {
            resolve_date_minutes(self.tz, date, self.end)
        } else {
            resolve_date_minutes(self.tz, add_days(date, 1), self.end)
        };
        Some((s, e))
    }

    fn enabled(&self, date: NaiveDate) -> bool {
        self.days[date.weekday().num_days_from_monday() as usize]
    }

    /// The earliest start date whose window can end after `x`. A window starting on local
    /// date D ends by local D+1 24:00 (by D 24:00 if it does not cross midnight), and
    /// resolution is monotone, so earlier windows end by the local midnight before `x`.
    fn first_date_reaching(&self, x: Ns) -> NaiveDate {
        let d = local_date_of(self.tz, x);
        if self.end > self.start {
            d
        } else {
            add_days(d, -1)
        }
    }

    /// Start of the window of `date` (enabled or not).
    fn start_ns(&self, date: NaiveDate) -> Ns {
        resolve_date_minutes(self.tz, date, self.start)
    }

    /// End of the window of `date` (enabled or not).
    fn end_ns(&self, date: NaiveDate) -> Ns {
        if self.end > self.start {
            resolve_date_minutes(self.tz, date, self.end)
        } else {
            resolve_date_minutes(self.tz, add_days(date, 1), self.end)
        }
    }

    /// The first non-empty window ending after `x`, walking forward from just before `x`.
    /// (A restriction's windows are ordered by start and by end alike.)
    fn first_window_ending_after(
        &self,
        ri: usize,
        x: Ns,
        cache: &mut WindowCache,
    ) -> Option<(Ns, Ns)> {
        let mut d = self.first_date_reaching(x);
        for _ in 0..WALK_DAYS {
            if self.enabled(d) {
                let e = cache.end(self, ri, d);
                if e > x {
                    let s = cache.start(self, ri, d);
                    if s < e {
                        return Some((s, e));
                    }
                }
            }
            d = add_days(d, 1);
        }
        None
    }

    /// The last non-empty window starting at or before `x`, walking backward.
    fn last_window_starting_at_or_before(
        &self,
        ri: usize,
        x: Ns,
        cache: &mut WindowCache,
    ) -> Option<(Ns, Ns)> {
        // Windows starting two or more days after x's local date start after x.
        let mut d = add_days(local_date_of(self.tz, x), 1);
        for _ in 0..WALK_DAYS {
            if self.enabled(d) {
                let s = cache.start(self, ri, d);
                if s <= x {
                    let e = cache.end(self, ri, d);
                    if s < e {
                        return Some((s, e));
                    }
                }
            }
            d = add_days(d, -1);
        }
        None
    }

    /// A window that starts at or before `b` and ends after it (extending a stretch ending at
    /// `b`), if any. Consults cached ends first so that usually only one new start is needed.
    fn window_across_end(
        &self,
        ri: usize,
        b: Ns,
        cache: &mut WindowCache,
    ) -> Option<Option<(Ns, Ns)>> {
        let mut d = self.first_date_reaching(b);
        for _ in 0..WALK_DAYS {
            if self.enabled(d) {
                if cache.peek_end(ri, d).is_some_and(|e| e <= b) {
                    d = add_days(d, 1);
                    continue;
                }
                let s = cache.start(self, ri, d);
                if s > b {
                    return Some(None);
                }
                let e = cache.end(self, ri, d);
                if e > b {
                    return Some(Some((s, e)));
                }
            }
            d = add_days(d, 1);
        }
        None
    }

    /// A window that starts before `a` and ends at or after it (extending a stretch starting
    /// at `a`), if any.
    fn window_across_start(
        &self,
        ri: usize,
        a: Ns,
        cache: &mut WindowCache,
    ) -> Option<Option<(Ns, Ns)>> {
        let mut d = add_days(local_date_of(self.tz, a), 1);
        for _ in 0..WALK_DAYS {
            if self.enabled(d) {
                let e = cache.end(self, ri, d);
                if e < a {
                    // Every earlier window ends earlier still.
                    return Some(None);
                }
                let s = cache.start(self, ri, d);
                if s < a && s < e {
                    return Some(Some((s, e)));
                }
            }
            d = add_days(d, -1);
        }
        None
    }

    /// Appends this restriction's windows overlapping `[from, to)`, clipped.
    fn windows(&self, from: Ns, to: Ns, out: &mut Vec<(Ns, Ns)>) {
        // A window starting on local date D ends by D+1 24:00 local, so windows starting two
        // or more days before `from`'s local date end before `from` (resolution is monotone).
        // Windows starting after `to`'s local date start after `to`, unless `to` lies in the
        // second pass of a fold that crosses midnight: one more day where the offset changed
        // within the last 26 hours.
        let mut d = add_days(local_date_of(self.tz, from), -1);
        let mut last = local_date_of(self.tz, to);
        if offset_secs(self.tz, to) != offset_secs(self.tz, to.saturating_sub(26 * NS_PER_HOUR)) {
            last = add_days(last, 1);
        }
        while d <= last {
            if let Some((s, e)) = self.window_on(d) {
                let (s, e) = (s.max(from), e.min(to));
                if s < e {
                    out.push((s, e));
                }
            }
            d = add_days(d, 1);
            if d == NaiveDate::MAX {
                break;
            }
        }
    }
}

#[derive(Debug, Clone)]
struct CompiledLayer {
    rotation: CompiledRotation,
    restrictions: Vec<CompiledRestriction>,
    /// No restrictions, or restrictions that cover the whole week in some zone.
    around_the_clock: bool,
}

impl CompiledLayer {
    /// Fills `windows` with the union of this layer's windows within `[from, to)`, clipped,
    /// sorted and merged.
    fn window_union(&self, from: Ns, to: Ns, windows: &mut Vec<(Ns, Ns)>) {
        windows.clear();
        for r in &self.restrictions {
            r.windows(from, to, windows);
        }
        if windows.is_empty() {
            return;
        }
        if self.restrictions.len() > 1 {
            windows.sort_unstable();
        }
        let mut merged = 0;
        for i in 1..windows.len() {
            if windows[i].0 <= windows[merged].1 {
                windows[merged].1 = windows[merged].1.max(windows[i].1);
            } else {
                merged += 1;
                windows[merged] = windows[i];
            }
        }
        windows.truncate(merged + 1);
    }

    /// Appends the stretches in `[from, to)` during which this layer has someone on call.
    fn segs(&self, from: Ns, to: Ns, out: &mut Vec<Seg>, scratch: &mut Scratch) {
        if self.around_the_clock {
            self.rotation.runs(from, to, out);
            return;
        }
        let windows = &mut scratch.windows;
        self.window_union(from, to, windows);
        let (Some(first), Some(last)) = (windows.first(), windows.last()) else {
            return;
        };
        let span = (first.0, last.1);
        let runs = &mut scratch.runs;
        runs.clear();
        self.rotation.runs(span.0, span.1, runs);
        // Intersect runs with windows.
        let (mut i, mut j) = (0, 0);
        while i < runs.len() && j < windows.len() {
            let s = runs[i].start.max(windows[j].0);
            let e = runs[i].end.min(windows[j].1);
            if s < e {
                out.push(Seg {
                    start: s,
                    end: e,
                    who: runs[i].who,
                });
            }
            if runs[i].end <= windows[j].1 {
                i += 1;
            } else {
                j += 1;
            }
        }
    }

    /// This layer's answer at `t` (at or after the first handoff): who it has on call (if
    /// anyone) and the stretch around `t` over which that stays so, computed only as far as
    /// `[lo, hi)` (beyond which the caller's answer changes anyway).
    fn answer_at(
        &self,
        t: Ns,
        lo: Ns,
        hi: Ns,
        windows: &mut Vec<(Ns, Ns)>,
        cache: &mut WindowCache,
    ) -> (Option<ParticipantId>, Ns, Ns) {
        let first = self.rotation.first;
        if t < first {
            // Off from the start of time until the layer's first on-call instant.
            if self.around_the_clock {
                return (None, H0, first);
            }
            let (who, a, b) = self.answer_general(first, H0, H1, windows);
            return (None, H0, if who.is_some() { a } else { b });
        }
        if self.around_the_clock {
            let (who, a, b) = self.rotation.run_at(t);
            return (Some(who), a, b);
        }
        match self.answer_walk(t, lo, hi, cache) {
            Some(x) => x,
            None => self.answer_general(t, lo, hi, windows),
        }
    }

    /// [`Self::answer_at`] by walking the windows date by date outwards from `t`, touching
    /// only the few windows next to it. `None` when a walk finds no window within
    /// [`WALK_DAYS`] days or a chain of touching windows runs long; then the caller falls
    /// back to [`Self::answer_general`].
    fn answer_walk(
        &self,
        t: Ns,
        lo: Ns,
        hi: Ns,
        cache: &mut WindowCache,
    ) -> Option<(Option<ParticipantId>, Ns, Ns)> {
        let first = self.rotation.first;
        cache.clear();
        // Windows containing t, or the nearest ones after it.
        let mut on = false;
        let (mut a, mut b) = (Ns::MAX, Ns::MIN);
        let mut after = Ns::MAX;
        for (ri, r) in self.restrictions.iter().enumerate() {
            let (s, e) = r.first_window_ending_after(ri, t, cache)?;
            if s <= t {
                on = true;
                a = a.min(s);
                b = b.max(e);
            } else {
                after = after.min(s);
            }
        }
        if on {
            let (who, ra, rb) = self.rotation.run_at(t);
            let (lo, hi) = (lo.max(ra).max(first), hi.min(rb));
            // Extend over windows (of any restriction) overlapping or touching the stretch,
            // as far as matters. A long chain of touching windows (restrictions in several
            // zones covering the whole week) is left to the general search.
            for step in 0.. {
                if step == 32 {
                    return None;
                }
                let mut grew = false;
                for (ri, r) in self.restrictions.iter().enumerate() {
                    if b < hi
                        && let Some((_, e)) = r.window_across_end(ri, b, cache)?
                    {
                        b = e;
                        grew = true;
                    }
                    if a > lo
                        && let Some((s, _)) = r.window_across_start(ri, a, cache)?
                    {
                        a = s;
                        grew = true;
                    }
                }
                if !grew {
                    break;
                }
            }
            return Some((Some(who), a.max(lo), b.min(hi)));
        }
        let mut before = Ns::MIN;
        for (ri, r) in self.restrictions.iter().enumerate() {
            let (_, e) = r.last_window_starting_at_or_before(ri, t, cache)?;
            before = before.max(e);
        }
        // Before the first handoff the layer is off too.
        let before = if before <= first { H0 } else { before };
        Some((None, before, after))
    }

    /// [`Self::answer_at`] by computing the window union over ranges around `t` that grow
    /// until the stretch containing `t` is bounded (or reaches `[lo, hi)`).
    fn answer_general(
        &self,
        t: Ns,
        mut lo: Ns,
        mut hi: Ns,
        windows: &mut Vec<(Ns, Ns)>,
    ) -> (Option<ParticipantId>, Ns, Ns) {
        let first = self.rotation.first;
        let mut run: Option<ParticipantId> = None;
        let mut back = 26 * NS_PER_HOUR;
        let mut ahead = 26 * NS_PER_HOUR;
        loop {
            let from = t.saturating_sub(back).max(H0).max(first);
            let to = t.saturating_add(ahead).min(H1);
            self.window_union(from, to, windows);
            // Edges of the searched range are real bounds only at the horizon or the first
            // handoff (nobody from this layer before it).
            let from_is_bound = from == H0 || from == first;
            let to_is_bound = to == H1;
            let i = windows.partition_point(|w| w.1 <= t);
            let (on, a, b) = match windows.get(i) {
                Some(w) if w.0 <= t => (true, w.0, w.1),
                next => {
                    let a = if i > 0 { windows[i - 1].1 } else { from };
                    let b = next.map_or(to, |w| w.0);
                    // Before the first handoff the layer is off as well.
                    let a = if a == from && from == first { H0 } else { a };
                    (false, a, b)
                }
            };
            if on && run.is_none() {
                let (who, ra, rb) = self.rotation.run_at(t);
                run = Some(who);
                lo = lo.max(ra);
                hi = hi.min(rb);
            }
            let need_back = a == from && !from_is_bound && a > lo;
            let need_ahead = b == to && !to_is_bound && b < hi;
            if !need_back && !need_ahead {
                return match run {
                    Some(who) if on => (Some(who), a.max(lo), b.min(hi)),
                    _ => (None, a, b),
                };
            }
            if need_back {
                back = back.saturating_mul(4);
            }
            if need_ahead {
                ahead = ahead.saturating_mul(4);
            }
        }
    }
}

/// Whether the windows of `restrictions` in one zone cover every minute of the week (then the
/// layer is on around the clock, whatever the DST changes of that zone).
fn covers_whole_week(restrictions: &[CompiledRestriction]) -> bool {
    const WEEK: u32 = 7 * 1440;
    let mut zones: Vec<Tz> = restrictions.iter().map(|r| r.tz).collect();
    zones.sort_unstable_by_key(|z| z.name());
    zones.dedup();
    zones.into_iter().any(|tz| {
        // Minute intervals of the week, split where they wrap past Sunday midnight.
        let mut spans: Vec<(u32, u32)> = Vec::new();
        for r in restrictions.iter().filter(|r| r.tz == tz) {
            for (day, on) in (0u32..).zip(r.days) {
                if !on {
                    continue;
                }
                let start = day * 1440 + u32::from(r.start);
                let len = if r.end > r.start {
                    u32::from(r.end - r.start)
                } else {
                    1440 - u32::from(r.start) + u32::from(r.end)
                };
                let end = start + len;
                if end > WEEK {
                    spans.push((start, WEEK));
                    spans.push((0, end - WEEK));
                } else {
                    spans.push((start, end));
                }
            }
        }
        spans.sort_unstable();
        let mut covered = 0;
        for (s, e) in spans {
            if s > covered {
                return false;
            }
            covered = covered.max(e);
        }
        covered >= WEEK
    })
}

/// One stretch of the flattened overrides.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct OvSeg {
    start: Ns,
    end: Ns,
    who: ParticipantId,
    id: i64,
}

/// Flattens overlapping overrides into sorted, non-overlapping stretches; where several
/// overlap the highest `(created_seq, id)` wins. A sweep over the distinct start and end
/// instants with a max-heap of the overrides begun so far (expired ones dropped lazily).
fn flatten_overrides(overrides: &[Override]) -> Vec<OvSeg> {
    let spans: Vec<(Ns, Ns)> = overrides
        .iter()
        .map(|o| (to_ns(o.start), to_ns(o.end)))
        .collect();
    let mut order: Vec<usize> = (0..overrides.len())
        .filter(|&i| spans[i].0 < spans[i].1)
        .collect();
    order.sort_unstable_by_key(|&i| spans[i].0);
    let mut points: Vec<Ns> = order
        .iter()
        .flat_map(|&i| [spans[i].0, spans[i].1])
        .collect();
    points.sort_unstable();
    points.dedup();
    let mut heap: BinaryHeap<(i64, i64, usize)> = BinaryHeap::new();
    let mut next_start = 0;
    let mut out: Vec<OvSeg> = Vec::new();
    for w in points.windows(2) {
        let (t, next) = (w[0], w[1]);
        while let Some(&i) = order.get(next_start)
            && spans[i].0 <= t
        {
            heap.push((overrides[i].created_seq, overrides[i].id, i));
            next_start += 1;
        }
        while let Some(&(_, _, i)) = heap.peek()
            && spans[i].1 <= t
        {
            heap.pop();
        }
        if let Some(&(_, id, i)) = heap.peek() {
            match out.last_mut() {
                Some(last) if last.end == t && last.id == id => last.end = next,
                _ => out.push(OvSeg {
                    start: t,
                    end: next,
                    who: overrides[i].participant,
                    id,
                }),
            }
        }
    }
    out
}

/// Window ends computed during one `on_call_at`, by (restriction index, start date).
#[derive(Default)]
struct WindowCache {
    entries: Vec<(usize, NaiveDate, Option<Ns>, Option<Ns>)>,
}

impl WindowCache {
    fn clear(&mut self) {
        self.entries.clear();
    }

    fn slot(&mut self, ri: usize, date: NaiveDate) -> usize {
        match self
            .entries
            .iter()
            .position(|(i, d, _, _)| *i == ri && *d == date)
        {
            Some(i) => i,
            None => {
                self.entries.push((ri, date, None, None));
                self.entries.len() - 1
            }
        }
    }

    fn start(&mut self, r: &CompiledRestriction, ri: usize, date: NaiveDate) -> Ns {
        let i = self.slot(ri, date);
        *self.entries[i].2.get_or_insert_with(|| r.start_ns(date))
    }

    fn end(&mut self, r: &CompiledRestriction, ri: usize, date: NaiveDate) -> Ns {
        let i = self.slot(ri, date);
        *self.entries[i].3.get_or_insert_with(|| r.end_ns(date))
    }

    fn peek_end(&self, ri: usize, date: NaiveDate) -> Option<Ns> {
        self.entries
            .iter()
            .find(|(i, d, _, _)| *i == ri && *d == date)
            .and_then(|e| e.3)
    }
}

/// How many days a window walk looks before giving up (a week has an enabled day; the slack
/// covers windows that vanish into DST gaps).
const WALK_DAYS: usize = 16;

/// Reusable buffers for one query.
#[derive(Default)]
struct Scratch {
    windows: Vec<(Ns, Ns)>,
    runs: Vec<Seg>,
}

/// A validated schedule: layers (lowest first) with overrides on top. Build it with
/// [`Schedule::new`]; every query is a pure function of the schedule and its arguments.
#[derive(Debug, Clone)]
pub struct Schedule {
    layers: Vec<Layer>,
    overrides: Vec<Override>,
    compiled: Vec<CompiledLayer>,
    flat_overrides: Vec<OvSeg>,
}

impl Schedule {
    /// Validates and indexes a schedule. Errors name the layer, restriction or override at
    /// fault (see [`ScheduleError`]).
    pub fn new(layers: Vec<Layer>, overrides: Vec<Override>) -> Result<Schedule, ScheduleError> {
        if layers.len() > MAX_LAYERS {
            return Err(ScheduleError::TooManyLayers {
                count: layers.len(),
                max: MAX_LAYERS,
            });
        }
        let mut compiled = Vec::with_capacity(layers.len());
        for (index, layer) in layers.iter().enumerate() {
            compiled.push(compile_layer(index, layer)?);
        }
        for o in &overrides {
            if o.end <= o.start {
                return Err(ScheduleError::OverrideEndNotAfterStart {
                    id: o.id,
                    start: o.start,
                    end: o.end,
                });
            }
        }
        let mut ids: Vec<i64> = overrides.iter().map(|o| o.id).collect();
        ids.sort_unstable();
        if let Some(w) = ids.windows(2).find(|w| w[0] == w[1]) {
            return Err(ScheduleError::DuplicateOverrideId { id: w[0] });
        }
        let flat_overrides = flatten_overrides(&overrides);
        Ok(Schedule {
            layers,
            overrides,
            compiled,
            flat_overrides,
        })
    }

    /// The layers, lowest first, as given.
    pub fn layers(&self) -> &[Layer] {
        &self.layers
    }

    /// The overrides, as given.
    pub fn overrides(&self) -> &[Override] {
        &self.overrides
    }

    /// Flattened override stretches overlapping `[from, to)` (not clipped).
    fn overrides_in(&self, from: Ns, to: Ns) -> &[OvSeg] {
        let lo = self.flat_overrides.partition_point(|o| o.end <= from);
        let hi = lo + self.flat_overrides[lo..].partition_point(|o| o.start < to);
        &self.flat_overrides[lo..hi]
    }

    /// The final schedule over `[from, to)` in internal time (already clamped).
    fn final_raw(&self, from: Ns, to: Ns) -> Vec<Raw> {
        let mut out = Vec::new();
        if from >= to {
            return out;
        }
        let mut scratch = Scratch::default();
        let mut segs: Vec<Vec<Seg>> = Vec::with_capacity(self.compiled.len());
        let mut npoints = 2;
        for layer in &self.compiled {
            let mut v = Vec::new();
            layer.segs(from, to, &mut v, &mut scratch);
            npoints += 2 * v.len();
            segs.push(v);
        }
        let ovs = self.overrides_in(from, to);
        npoints += 2 * ovs.len();
        let mut points: Vec<Ns> = Vec::with_capacity(npoints);
        points.push(from);
        points.push(to);
        for v in &segs {
            for s in v {
                points.push(s.start);
                points.push(s.end);
            }
        }
        for o in ovs {
            points.push(o.start.max(from));
            points.push(o.end.min(to));
        }
        points.sort_unstable();
        points.dedup();
        let mut ptr = vec![0usize; segs.len()];
        let mut optr = 0usize;
        for w in points.windows(2) {
            let (a, b) = (w[0], w[1]);
            while optr < ovs.len() && ovs[optr].end <= a {
                optr += 1;
            }
            let (who, src) = if optr < ovs.len() && ovs[optr].start <= a {
                (Some(ovs[optr].who), Source::Override(ovs[optr].id))
            } else {
                let mut found = (None, Source::None);
                for (i, v) in segs.iter().enumerate().rev() {
                    let p = &mut ptr[i];
                    while *p < v.len() && v[*p].end <= a {
                        *p += 1;
                    }
                    if *p < v.len() && v[*p].start <= a {
                        found = (Some(v[*p].who), Source::Layer(i));
                        break;
                    }
                }
                found
            };
            push_merged(
                &mut out,
                Raw {
                    start: a,
                    end: b,
                    who,
                    src,
                },
            );
        }
        out
    }

    /// The final schedule of `[from, to)`: consecutive shifts (a gap has no participant) that
    /// tile the range exactly, adjacent shifts with the same person and source merged. The
    /// range is clamped to [`horizon_start`](crate::horizon_start)..[`horizon_end`](crate::horizon_end);
    /// an empty or inverted range gives an empty list.
    pub fn final_shifts(&self, from: DateTime<Utc>, to: DateTime<Utc>) -> Vec<Shift> {
        self.final_raw(to_ns(from), to_ns(to))
            .into_iter()
            .map(Raw::to_shift)
            .collect()
    }

    /// The final shifts overlapping `[from, to)` at their full extent: like
    /// [`Schedule::final_shifts`], but the first and last shifts are not cut at `from` and
    /// `to`. Calendar feeds use this so that a shift keeps its start, end and UID however
    /// the feed's range moves.
    pub fn calendar_shifts(&self, from: DateTime<Utc>, to: DateTime<Utc>) -> Vec<Shift> {
        let mut shifts = self.final_shifts(from, to);
        if let Some(first) = shifts.first_mut() {
            first.start = self
                .on_call_at(first.start)
                .since
                .max(crate::horizon_start());
        }
        if let Some(last) = shifts.last_mut() {
            let before_end = from_ns(to_ns(last.end) - 1);
            last.end = self.on_call_at(before_end).until.min(crate::horizon_end());
        }
        shifts
    }

    /// The final shifts of one person over `[from, to)` (for a personal calendar feed).
    pub fn person_shifts(
        &self,
        participant: ParticipantId,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
    ) -> Vec<Shift> {
        self.final_raw(to_ns(from), to_ns(to))
            .into_iter()
            .filter(|r| r.who == Some(participant))
            .map(Raw::to_shift)
            .collect()
    }

    /// One layer alone over `[from, to)`, restrictions applied, tiling the range (gaps have no
    /// participant and [`Source::None`]): one timeline row per layer. Unknown index: empty.
    pub fn layer_shifts(
        &self,
        layer_index: usize,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
    ) -> Vec<Shift> {
        let (from, to) = (to_ns(from), to_ns(to));
        let Some(layer) = self.compiled.get(layer_index) else {
            return Vec::new();
        };
        if from >= to {
            return Vec::new();
        }
        let mut segs = Vec::new();
        layer.segs(from, to, &mut segs, &mut Scratch::default());
        let mut out = Vec::with_capacity(segs.len() * 2 + 1);
        let mut at = from;
        for s in segs {
            let gap = Raw {
                start: at,
                end: s.start,
                who: None,
                src: Source::None,
            };
            push_merged(&mut out, gap);
            push_merged(
                &mut out,
                Raw {
                    start: s.start,
                    end: s.end,
                    who: Some(s.who),
                    src: Source::Layer(layer_index),
                },
            );
            at = s.end;
        }
        push_merged(
            &mut out,
            Raw {
                start: at,
                end: to,
                who: None,
                src: Source::None,
            },
        );
        out.into_iter().map(Raw::to_shift).collect()
    }

    /// Who is on call at `t`, and the stretch `[since, until)` over which that answer (person
    /// and source) holds, i.e. the final shift containing `t`. Outside the horizon nobody is.
    pub fn on_call_at(&self, t: DateTime<Utc>) -> OnCall {
        let tn = to_ns(t);
        if t < from_ns(H0) {
            return OnCall {
                participant: None,
                since: DateTime::<Utc>::MIN_UTC,
                until: from_ns(H0),
                source: Source::None,
            };
        }
        if tn >= H1 {
            return OnCall {
                participant: None,
                since: from_ns(H1),
                until: DateTime::<Utc>::MAX_UTC,
                source: Source::None,
            };
        }
        let answer = |who, since, until, source| OnCall {
            participant: who,
            since: from_ns(since),
            until: from_ns(until),
            source,
        };
        // Overrides win outright; otherwise the nearest override edges bound the answer.
        let i = self.flat_overrides.partition_point(|o| o.end <= tn);
        if let Some(o) = self.flat_overrides.get(i)
            && o.start <= tn
        {
            return answer(Some(o.who), o.start, o.end, Source::Override(o.id));
        }
        let mut lo = if i > 0 {
            self.flat_overrides[i - 1].end
        } else {
            H0
        };
        let mut hi = self.flat_overrides.get(i).map_or(H1, |o| o.start);
        // Top layer down: every layer above the winner bounds the answer by its off-stretch,
        // the winner by its on-stretch and the run of its current person.
        let mut windows = Vec::new();
        let mut cache = WindowCache::default();
        for (index, layer) in self.compiled.iter().enumerate().rev() {
            let (who, a, b) = layer.answer_at(tn, lo, hi, &mut windows, &mut cache);
            lo = lo.max(a);
            hi = hi.min(b);
            if who.is_some() {
                return answer(who, lo, hi, Source::Layer(index));
            }
        }
        answer(None, lo, hi, Source::None)
    }

    /// The gaps in `[from, to)`: maximal stretches with nobody on call.
    pub fn gaps(
        &self,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
    ) -> Vec<(DateTime<Utc>, DateTime<Utc>)> {
        let raw = self.final_raw(to_ns(from), to_ns(to));
        let mut out: Vec<(Ns, Ns)> = Vec::new();
        for r in raw.iter().filter(|r| r.who.is_none()) {
            match out.last_mut() {
                Some(last) if last.1 == r.start => last.1 = r.end,
                _ => out.push((r.start, r.end)),
            }
        }
        out.into_iter()
            .map(|(a, b)| (from_ns(a), from_ns(b)))
            .collect()
    }

    /// The handoffs in `[from, to)`: every instant at which the person on call changes
    /// (including to and from nobody). A change exactly at `from` is included.
    pub fn handoffs(&self, from: DateTime<Utc>, to: DateTime<Utc>) -> Vec<Handoff> {
        let (from, to) = (to_ns(from), to_ns(to));
        if from >= to {
            return Vec::new();
        }
        // One nanosecond before `from` tells who was on call just before it.
        let raw = self.final_raw((from - 1).max(H0), to);
        let mut out = Vec::new();
        let mut prev: Option<Option<ParticipantId>> = None;
        for r in raw {
            if let Some(p) = prev
                && p != r.who
                && r.start >= from
            {
                out.push(Handoff {
                    at: from_ns(r.start),
                    from: p,
                    to: r.who,
                });
            }
            prev = Some(r.who);
        }
        out
    }

    /// Per person over `[from, to)`: time on call, and how much of it fell in the person's own
    /// local night (22:00–08:00) and weekend (Saturday and Sunday), in the zone `zone_of` gives
    /// for them. Every rotation participant appears, with zero if never on call.
    pub fn load(
        &self,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
        zone_of: impl Fn(ParticipantId) -> Tz,
    ) -> BTreeMap<ParticipantId, Load> {
        let mut out: BTreeMap<ParticipantId, Load> = BTreeMap::new();
        for layer in &self.layers {
            for p in &layer.rotation.participants {
                out.entry(*p).or_default();
            }
        }
        let mut zones: BTreeMap<ParticipantId, Tz> = BTreeMap::new();
        for r in self.final_raw(to_ns(from), to_ns(to)) {
            let Some(p) = r.who else { continue };
            let tz = *zones.entry(p).or_insert_with(|| zone_of(p));
            let l = out.entry(p).or_default();
            l.on_call += TimeDelta::nanoseconds(r.end - r.start);
            l.night += TimeDelta::nanoseconds(night_overlap(tz, r.start, r.end));
            l.weekend += TimeDelta::nanoseconds(weekend_overlap(tz, r.start, r.end));
        }
        out
    }
}

/// Length of the overlap of `[a, b)` and `[c, d)`.
fn overlap(a: Ns, b: Ns, c: Ns, d: Ns) -> Ns {
    (b.min(d) - a.max(c)).max(0)
}

/// Time of `[a, b)` within 22:00–08:00 local in `tz`.
fn night_overlap(tz: Tz, a: Ns, b: Ns) -> Ns {
    let mut total = 0;
    let mut d = add_days(local_date_of(tz, a), -1);
    let last = local_date_of(tz, b);
    while d <= last {
        let s = resolve_date_minutes(tz, d, 22 * 60);
        let e = resolve_date_minutes(tz, add_days(d, 1), 8 * 60);
        total += overlap(a, b, s, e);
        d = add_days(d, 1);
    }
    total
}

/// Time of `[a, b)` on Saturday or Sunday local in `tz`.
fn weekend_overlap(tz: Tz, a: Ns, b: Ns) -> Ns {
    let mut total = 0;
    let first = local_date_of(tz, a);
    // Back up to the Saturday on or before the day before `a`.
    let back = i64::from((first.weekday().num_days_from_monday() + 7 - 5) % 7) + 7;
    let mut d = add_days(first, -back);
    let last = local_date_of(tz, b);
    while d <= last {
        debug_assert_eq!(d.weekday(), Weekday::Sat);
        let s = resolve_date_minutes(tz, d, 0);
        let e = resolve_date_minutes(tz, add_days(d, 2), 0);
        total += overlap(a, b, s, e);
        d = add_days(d, 7);
    }
    total
}

fn compile_layer(index: usize, layer: &Layer) -> Result<CompiledLayer, ScheduleError> {
    let rot = &layer.rotation;
    if rot.participants.is_empty() {
        return Err(ScheduleError::EmptyRotation { layer: index });
    }
    if rot.participants.len() > MAX_PARTICIPANTS {
        return Err(ScheduleError::TooManyParticipants {
            layer: index,
            count: rot.participants.len(),
            max: MAX_PARTICIPANTS,
        });
    }
    let unit = rot.shift.unit;
    let count = rot.shift.count;
    if count == 0 {
        return Err(ScheduleError::ZeroShiftLength { layer: index, unit });
    }
    let max = match unit {
        ShiftUnit::Hours => MAX_SHIFT_HOURS,
        ShiftUnit::Days => MAX_SHIFT_DAYS,
        ShiftUnit::Weeks => MAX_SHIFT_WEEKS,
    };
    if count > max {
        return Err(ScheduleError::ShiftTooLong {
            layer: index,
            unit,
            count,
            max,
        });
    }
    let year = rot.handoff.year();
    if !(1900..2200).contains(&year) {
        return Err(ScheduleError::HandoffOutOfRange {
            layer: index,
            handoff: rot.handoff,
        });
    }
    let tz = rot.handoff_time_zone;
    let cadence = match unit {
        ShiftUnit::Hours => Cadence::Elapsed {
            origin: resolve_ns(tz, rot.handoff),
            len: i64::from(count) * NS_PER_HOUR,
        },
        ShiftUnit::Days | ShiftUnit::Weeks => Cadence::Calendar {
            date: rot.handoff.date(),
            time: rot.handoff.time(),
            period_days: i64::from(count) * if unit == ShiftUnit::Weeks { 7 } else { 1 },
            tz,
        },
    };
    let first = rot.participants[0];
    let mut rotation = CompiledRotation {
        constant: rot.participants.iter().all(|p| *p == first),
        participants: rot.participants.clone(),
        cadence,
        first: H0,
    };
    rotation.first = rotation.boundary(0);
    let mut restrictions = Vec::with_capacity(layer.restrictions.len());
    for (ri, r) in layer.restrictions.iter().enumerate() {
        if r.days.is_empty() {
            return Err(ScheduleError::NoDays {
                layer: index,
                restriction: ri,
            });
        }
        if r.start.minutes() >= 1440 {
            return Err(ScheduleError::StartAtEndOfDay {
                layer: index,
                restriction: ri,
            });
        }
        if r.start == r.end {
            return Err(ScheduleError::EmptyWindow {
                layer: index,
                restriction: ri,
                time: r.start,
            });
        }
        let mut days = [false; 7];
        for d in &r.days {
            days[d.num_days_from_monday() as usize] = true;
        }
        restrictions.push(CompiledRestriction {
            days,
            start: r.start.minutes(),
            end: r.end.minutes(),
            tz: r.time_zone,
        });
    }
    let around_the_clock = restrictions.is_empty() || covers_whole_week(&restrictions);
    Ok(CompiledLayer {
        rotation,
        restrictions,
        around_the_clock,
    })
}

#[cfg(test)]
mod tests;
