//! How an ascent's settings change over its steps: the learning rate (a
//! linear warm-up, then constant or half a cosine to zero) and the strength
//! of the random views (strong early, to hold the image's global shape, and
//! weaker late, to let detail settle). The constant schedule is the paper's
//! and every preset's until one is measured better.

use std::f64::consts::PI;

classviz_records::choice! {
    /// `--lr-schedule`: how the learning rate falls over the steps after any warm-up.
    pub enum LrDecay {
        default Constant;
        /// The same rate on every step.
        Constant = "constant",
        /// Half a cosine from η to 0 over the steps (Loshchilov & Hutter 2017).
        Cosine = "cosine",
    }
}

/// The schedule of a run. Serialised with the style, and left out of it when
/// constant, so that images made before schedules existed keep their provenance.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Schedule {
    #[serde(default)]
    pub lr: LrDecay,
    /// The fraction of the steps over which η ramps up linearly from η/warm-up steps.
    #[serde(default)]
    pub warmup: f64,
    /// The views' strength on the last step, as a fraction of the first's
    /// (1: constant): jitter, rotation and the scales' distance from 1 shrink
    /// linearly to it, and MaCo's smallest crop grows towards its largest.
    #[serde(default = "full_strength")]
    pub anneal: f64,
}

fn full_strength() -> f64 {
    1.0
}

impl Default for Schedule {
    fn default() -> Self {
        Schedule::constant()
    }
}

impl Schedule {
    /// The same learning rate and views on every step.
    pub fn constant() -> Schedule {
        Schedule { lr: LrDecay::Constant, warmup: 0.0, anneal: full_strength() }
    }

    pub fn is_constant(&self) -> bool {
        self == &Schedule::constant()
    }

    /// The learning rate of step `step` (1-based) of `iters`, for base rate `base`.
    /// The constant schedule returns `base` itself.
    pub fn learning_rate(&self, base: f64, step: u32, iters: u32) -> f64 {
        let warm = (self.warmup * f64::from(iters)).round() as u32;
        if step <= warm {
            return base * f64::from(step) / f64::from(warm);
        }
        match self.lr {
            LrDecay::Constant => base,
            LrDecay::Cosine => {
                let span = f64::from(iters.saturating_sub(warm).max(1));
                let progress = f64::from(step - warm - 1) / span;
                base * 0.5 * (1.0 + (PI * progress).cos())
            }
        }
    }

    /// The views' strength on step `step` of `iters`: 1 on the first, `anneal`
    /// on the last, linear between; exactly 1 throughout when not annealed.
    pub fn strength(&self, step: u32, iters: u32) -> f64 {
        if self.anneal == 1.0 || iters <= 1 {
            return 1.0;
        }
        let progress = f64::from(step.saturating_sub(1)) / f64::from(iters - 1);
        1.0 + (self.anneal - 1.0) * progress
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_constant_schedule_changes_nothing() {
        let constant = Schedule::constant();
        for step in [1, 50, 100] {
            assert_eq!(constant.learning_rate(0.05, step, 100), 0.05);
            assert_eq!(constant.strength(step, 100), 1.0);
        }
        assert!(constant.is_constant());
        assert_eq!(serde_json::to_value(&constant).unwrap()["anneal"], 1.0);
    }

    #[test]
    fn warm_up_then_cosine() {
        let schedule = Schedule { lr: LrDecay::Cosine, warmup: 0.1, anneal: 1.0 };
        // 10 warm-up steps: 0.1, 0.2, … 1.0 of η.
        assert!((schedule.learning_rate(2.0, 1, 100) - 0.2).abs() < 1e-12);
        assert!((schedule.learning_rate(2.0, 10, 100) - 2.0).abs() < 1e-12);
        // Then the cosine starts at η and reaches η/2 halfway through the rest.
        assert!((schedule.learning_rate(2.0, 11, 100) - 2.0).abs() < 1e-12);
        assert!((schedule.learning_rate(2.0, 56, 100) - 1.0).abs() < 1e-12);
        let last = schedule.learning_rate(2.0, 100, 100);
        assert!(last > 0.0 && last < 0.01, "{last}");
    }

    #[test]
    fn annealing_is_linear_from_one_to_the_final_strength() {
        let schedule = Schedule { anneal: 0.25, ..Schedule::constant() };
        assert_eq!(schedule.strength(1, 101), 1.0);
        assert!((schedule.strength(51, 101) - 0.625).abs() < 1e-12);
        assert!((schedule.strength(101, 101) - 0.25).abs() < 1e-12);
    }
}
