//! Dynamic loss scaling for fp16, as the reference's
//! `ExponentialUpdateLossScaleManager`: grow ×2 after a run of finite steps,
//! halve after a run of non-finite ones (never below 1).

use serde::{Deserialize, Serialize};

use super::config::LossScaleConfig;

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct LossScaler {
    pub scale: f64,
    pub good_steps: u64,
    pub bad_steps: u64,
    pub config: LossScaleConfig,
}

impl LossScaler {
    pub fn new(config: LossScaleConfig) -> LossScaler {
        LossScaler {
            scale: config.initial,
            good_steps: 0,
            bad_steps: 0,
            config,
        }
    }

    /// Records whether the last step's gradients were finite.
    pub fn update(&mut self, finite: bool) {
        if finite {
            self.bad_steps = 0;
            self.good_steps += 1;
            if self.good_steps >= self.config.growth_interval {
                self.scale *= 2.0;
                self.good_steps = 0;
            }
        } else {
            self.good_steps = 0;
            self.bad_steps += 1;
            if self.bad_steps >= self.config.backoff_after {
                self.scale = (self.scale * 0.5).max(1.0);
                self.bad_steps = 0;
            }
        }
    }
}
