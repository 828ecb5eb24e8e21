//! Small statistics used by the benchmarks: median, nearest-rank percentiles, the ideal FIFO
//! queueing time, and a tiny deterministic random number generator.

/// Median of `xs` (mean of the two middle values for an even count); `None` when empty or when
/// a value is NaN.
pub fn median(xs: &[f64]) -> Option<f64> {
    if xs.is_empty() || xs.iter().any(|x| x.is_nan()) {
        return None;
    }
    let mut v = xs.to_vec();
    v.sort_by(|a, b| a.total_cmp(b));
    let n = v.len();
    Some(if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    })
}

/// Nearest-rank percentile: the smallest value such that at least `p` (in `0..=1`) of the
/// values are at or below it. `None` when empty.
pub fn percentile(xs: &[f64], p: f64) -> Option<f64> {
    if xs.is_empty() {
        return None;
    }
    let mut v = xs.to_vec();
    v.sort_by(|a, b| a.total_cmp(b));
    Some(v[nearest_rank_index(v.len(), p)])
}

/// Index (0-based) of the nearest-rank `p` quantile in a sorted list of `n > 0` values.
pub fn nearest_rank_index(n: usize, p: f64) -> usize {
    let rank = (p.clamp(0.0, 1.0) * n as f64).ceil() as usize;
    rank.clamp(1, n) - 1
}

/// Arithmetic mean; `None` when empty.
pub fn mean(xs: &[f64]) -> Option<f64> {
    if xs.is_empty() {
        None
    } else {
        Some(xs.iter().sum::<f64>() / xs.len() as f64)
    }
}

/// Ideal FIFO queueing: `tasks` callers arrive at once at a pool of `conns` connections and each
/// holds its connection for `hold`. Served strictly in arrival order with no overhead, the
/// caller at position `k` (0-based) waits `floor(k / conns) * hold`. Returns every wait, in
/// arrival order.
pub fn ideal_fifo_waits(tasks: usize, conns: usize, hold: f64) -> Vec<f64> {
    assert!(conns > 0, "a pool has at least one connection");
    (0..tasks).map(|k| (k / conns) as f64 * hold).collect()
}

/// The nearest-rank `p` quantile of [`ideal_fifo_waits`], computed directly.
pub fn ideal_fifo_quantile(tasks: usize, conns: usize, hold: f64, p: f64) -> f64 {
    assert!(conns > 0, "a pool has at least one connection");
    if tasks == 0 {
        return 0.0;
    }
    // Waits are non-decreasing in arrival order, so the sorted list is the arrival order.
    (nearest_rank_index(tasks, p) / conns) as f64 * hold
}

/// Closed-loop queueing model of the capacity tool: `users` callers, no think time, a pool of
/// `conns` connections each held for `hold` per query. In steady state every caller waits
/// for the `users - conns` callers ahead of it: `(users / conns - 1) * hold` (0 when there are
/// at least as many connections as users). When that exceeds the acquisition timeout,
/// acquisitions time out.
pub fn closed_loop_wait(users: usize, conns: usize, hold: f64) -> f64 {
    assert!(conns > 0, "a pool has at least one connection");
    if users <= conns {
        0.0
    } else {
        (users as f64 / conns as f64 - 1.0) * hold
    }
}

/// xorshift64*: fast, deterministic, good enough to pick keys.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    /// A generator from a seed (0 is replaced by a fixed non-zero constant).
    pub fn new(seed: u64) -> Self {
        Rng(if seed == 0 {
            0x9E37_79B9_7F4A_7C15
        } else {
            seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1
        })
    }

    /// Next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// A value in `lo..=hi`.
    pub fn range(&mut self, lo: u64, hi: u64) -> u64 {
        debug_assert!(lo <= hi);
        lo + self.next_u64() % (hi - lo + 1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn median_odd_even_empty() {
        assert_eq!(median(&[3.0, 1.0, 2.0]), Some(2.0));
        assert_eq!(median(&[4.0, 1.0, 3.0, 2.0]), Some(2.5));
        assert_eq!(median(&[7.0]), Some(7.0));
        assert_eq!(median(&[]), None);
        assert_eq!(median(&[1.0, f64::NAN]), None);
    }

    #[test]
    fn nearest_rank_percentiles() {
        let xs: Vec<f64> = (1..=100).map(f64::from).collect();
        assert_eq!(percentile(&xs, 0.5), Some(50.0));
        assert_eq!(percentile(&xs, 0.99), Some(99.0));
        assert_eq!(percentile(&xs, 1.0), Some(100.0));
        assert_eq!(percentile(&xs, 0.0), Some(1.0));
        // Unsorted input, small n: p95 of 10 values is the 10th smallest.
        let ys = [5.0, 1.0, 9.0, 3.0, 7.0, 2.0, 8.0, 4.0, 6.0, 10.0];
        assert_eq!(percentile(&ys, 0.95), Some(10.0));
        assert_eq!(percentile(&ys, 0.5), Some(5.0));
        assert_eq!(percentile(&[], 0.5), None);
        assert_eq!(nearest_rank_index(1000, 0.99), 989);
    }

    #[test]
    fn mean_works() {
        assert_eq!(mean(&[1.0, 2.0, 3.0]), Some(2.0));
        assert_eq!(mean(&[]), None);
    }

    #[test]
    fn ideal_fifo_formula() {
        // 1000 tasks on 50 connections: 20 waves; the p99 caller (rank 990) is in wave 19.
        let hold = 0.005;
        let p99 = ideal_fifo_quantile(1000, 50, hold, 0.99);
        assert!((p99 - 19.0 * hold).abs() < 1e-12);
        // The direct formula agrees with the list of waits.
        let waits = ideal_fifo_waits(1000, 50, hold);
        assert_eq!(waits.len(), 1000);
        assert_eq!(waits[0], 0.0);
        assert_eq!(waits[49], 0.0);
        assert!((waits[50] - hold).abs() < 1e-12);
        for p in [0.5, 0.9, 0.95, 0.99, 1.0] {
            let from_list = percentile(&waits, p).unwrap();
            assert!(
                (from_list - ideal_fifo_quantile(1000, 50, hold, p)).abs() < 1e-12,
                "p={p}"
            );
        }
        // No queue when there are at least as many connections as tasks.
        assert_eq!(ideal_fifo_quantile(50, 50, hold, 0.99), 0.0);
        assert_eq!(ideal_fifo_quantile(0, 50, hold, 0.99), 0.0);
        // The seed's capacity example: 5000 users on 20 connections of 100 ms: the last waits 24.9 s.
        assert!((ideal_fifo_quantile(5000, 20, 0.1, 1.0) - 24.9).abs() < 1e-9);
    }

    #[test]
    fn closed_loop_model_matches_the_seed_table() {
        // 200 users on 20 connections of 100 ms: 0.9 s waits, well under a 10 s timeout.
        assert!((closed_loop_wait(200, 20, 0.1) - 0.9).abs() < 1e-9);
        // 1 000 users: 4.9 s, still under 10 s.
        assert!((closed_loop_wait(1000, 20, 0.1) - 4.9).abs() < 1e-9);
        // 5 000 users: 24.9 s, far over 10 s: heavy timeouts.
        assert!(closed_loop_wait(5000, 20, 0.1) > 10.0);
        assert_eq!(closed_loop_wait(10, 20, 0.1), 0.0);
    }

    #[test]
    fn rng_is_deterministic_and_in_range() {
        let mut a = Rng::new(42);
        let mut b = Rng::new(42);
        for _ in 0..1000 {
            let x = a.range(1, 10);
            assert_eq!(x, b.range(1, 10));
            assert!((1..=10).contains(&x));
        }
        let mut z = Rng::new(0);
        assert_ne!(z.next_u64(), z.next_u64());
    }
}
