//! The numbers each micro-batch reports (losses and accuracies), summed over
//! the micro-batches of a step and, in a data-parallel run, over the ranks.

use anyhow::{anyhow, Result};
use tch::{Device, Kind, Tensor};

use crate::model::PreTrainingLoss;

/// Total, MLM and NSP loss and MLM and NSP accuracy: summed over
/// micro-batches (and ranks), or, divided by their count, the step's means.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub(crate) struct LossSums {
    pub total: f64,
    pub mlm: f64,
    pub nsp: f64,
    pub mlm_acc: f64,
    pub nsp_acc: f64,
}

impl LossSums {
    /// Values in [`LossSums::to_array`]'s order.
    pub const LEN: usize = 5;

    /// The fields in declaration order: how they travel in a tensor.
    pub fn to_array(self) -> [f64; Self::LEN] {
        [self.total, self.mlm, self.nsp, self.mlm_acc, self.nsp_acc]
    }

    pub fn from_slice(v: &[f64]) -> Result<LossSums> {
        match *v {
            [total, mlm, nsp, mlm_acc, nsp_acc] => Ok(LossSums {
                total,
                mlm,
                nsp,
                mlm_acc,
                nsp_acc,
            }),
            _ => Err(anyhow!("{} loss sums, expected {}", v.len(), Self::LEN)),
        }
    }

    /// Each sum divided by `n` (the means over `n` micro-batches).
    pub fn divided_by(self, n: f64) -> LossSums {
        LossSums::from_array(self.to_array().map(|x| x / n))
    }

    fn from_array([total, mlm, nsp, mlm_acc, nsp_acc]: [f64; Self::LEN]) -> LossSums {
        LossSums {
            total,
            mlm,
            nsp,
            mlm_acc,
            nsp_acc,
        }
    }
}

/// [`LossSums`] accumulated on the model's device, in f64, so that the
/// micro-batches of a step never wait for the device; read once per step.
pub(crate) struct DeviceLossSums(Tensor);

impl DeviceLossSums {
    pub fn zeros(device: Device) -> DeviceLossSums {
        DeviceLossSums(Tensor::zeros(
            [LossSums::LEN as i64],
            (Kind::Double, device),
        ))
    }

    /// Adds one micro-batch's losses (detached).
    pub fn add(&mut self, loss: &PreTrainingLoss) {
        // In LossSums's field order.
        let parts = [
            &loss.total,
            &loss.mlm,
            &loss.nsp,
            &loss.mlm_accuracy,
            &loss.nsp_accuracy,
        ];
        self.0 += Tensor::stack(&parts.map(|t| t.detach().to_kind(Kind::Double)), 0);
    }

    /// The sums so far, copied to the host.
    pub fn read(&self) -> Result<LossSums> {
        LossSums::from_slice(&Vec::<f64>::try_from(self.0.to_device(Device::Cpu))?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_keep_their_names_through_a_tensor() {
        let s = LossSums {
            total: 1.0,
            mlm: 2.0,
            nsp: 3.0,
            mlm_acc: 4.0,
            nsp_acc: 5.0,
        };
        assert_eq!(LossSums::from_slice(&s.to_array()).unwrap(), s);
        assert!(LossSums::from_slice(&[1.0; 4]).is_err());
        assert_eq!(s.divided_by(2.0).nsp_acc, 2.5);
    }
}
