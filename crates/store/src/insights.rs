//! Insights: incident metrics over a date range (MTTA, MTTR, counts by severity, response-target
//! attainment, postmortems, action items), read as compact rows and aggregated in one pass.

use chrono::{DateTime, Utc};
use heliograph_domain::Severity;

/// What an insights query covers: incidents triggered (pages sent) in [from, to), optionally one team's services, one service, one severity.
#[derive(Debug, Clone)]
pub struct Scope {
    pub from: DateTime<Utc>,
    pub to: DateTime<Utc>,
    pub team_id: Option<i64>,
    pub service_id: Option<i64>,
    pub severity: Option<Severity>,
}

/// How a range is cut into chart buckets, in the viewer's zone.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Bucket {
    /// One bucket per local calendar day.
    Day,
    /// One bucket per local week, Monday to Sunday.
    Week,
}

/// The nearest-rank percentile `p` (1..=100) of `sorted` (ascending): the value at rank
/// ⌈p/100 · n⌉ (1-based). The median is `percentile(sorted, 50)`: for an even count, the lower
/// of the two middle values. `None` for no values.
pub fn percentile<T: Copy>(sorted: &[T], p: u32) -> Option<T> {
    if sorted.is_empty() {
        return None;
    }
    let n = sorted.len();
    let rank = (n * p as usize).div_ceil(100).clamp(1, n);
    Some(sorted[rank - 1])
}

#[cfg(test)]
mod tests {
    use super::percentile;

    #[test]
    fn nearest_rank() {
        // MTTAs 2, 4, 6, 10, 30: median rank ⌈2.5⌉ = 3 → 6; p90 rank ⌈4.5⌉ = 5 → 30.
        let v = [2, 4, 6, 10, 30];
        assert_eq!(percentile(&v, 50), Some(6));
        assert_eq!(percentile(&v, 90), Some(30));
        // Four values: median rank 2 (the lower middle); p90 rank ⌈3.6⌉ = 4.
        let v = [1, 2, 3, 4];
        assert_eq!(percentile(&v, 50), Some(2));
        assert_eq!(percentile(&v, 90), Some(4));
        // Ten values: p90 rank 9.
        let v: Vec<i32> = (1..=10).collect();
        assert_eq!(percentile(&v, 90), Some(9));
        assert_eq!(percentile(&[7], 90), Some(7));
        assert_eq!(percentile::<i32>(&[], 50), None);
    }
}
