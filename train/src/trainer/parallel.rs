//! Data parallelism for the trainer: every rank runs the same loop on its
//! own share of the data; parameters are broadcast from rank 0 at start,
//! gradients are averaged in buckets during the backward of the last
//! micro-batch of each step (before unscaling, clipping and the optimizer,
//! so every rank applies the same update), and one small all-reduce per
//! step carries the loss sums, the sequence count, every rank's data
//! position, and whether every rank still had a full step of data.

use anyhow::{anyhow, Result};
use nezha_c10d::{check_same_parameters, Heartbeat, ProcessGroup, Reducer};
use tch::{Device, Kind, Tensor};

use super::losses::LossSums;

/// How this process takes part in a data-parallel run.
pub struct DataParallel<'a> {
    pub group: &'a ProcessGroup,
    /// Bytes per gradient bucket ([`nezha_c10d::DEFAULT_BUCKET_BYTES`], as DDP).
    pub bucket_bytes: usize,
    /// Names the lost rank when a collective fails; without it the error is
    /// the collective's own (e.g. "connection closed by peer").
    pub heartbeat: Option<&'a Heartbeat>,
}

impl DataParallel<'_> {
    pub fn rank(&self) -> usize {
        self.group.rank()
    }

    pub fn world_size(&self) -> usize {
        self.group.world_size()
    }

    /// Turns a failed collective into an error that says which rank was lost,
    /// and records on the heartbeat that this rank leaves. Rank 0 serves the
    /// store: it lets the other survivors read it before it goes.
    pub(crate) fn failed(&self, what: &str, error: nezha_c10d::Error) -> anyhow::Error {
        let (rank, world) = (self.rank(), self.world_size());
        let Some(hb) = self.heartbeat else {
            return anyhow!("rank {rank}/{world}: {what} failed: {error}");
        };
        let diagnosis = hb.diagnose();
        hb.leave(&format!("after a failed {what}"));
        if rank == 0 {
            hb.wait_for_others_to_leave(&diagnosis.lost, std::time::Duration::from_secs(5));
        }
        anyhow!(
            "rank {rank}/{world}: {what} failed: {}\ncaused by: {error}",
            diagnosis.message
        )
    }

    /// At start: the same parameter list on every rank, then rank 0's values.
    pub(crate) fn synchronise_parameters(&self, params: &[(String, Tensor)]) -> Result<()> {
        check_same_parameters(self.group, params)
            .map_err(|e| self.failed("comparing the parameter lists", e))?;
        let _guard = tch::no_grad_guard();
        let tensors: Vec<Tensor> = params.iter().map(|(_, p)| p.shallow_clone()).collect();
        self.group
            .broadcast(&tensors, 0)
            .map_err(|e| self.failed("broadcasting the initial parameters from rank 0", e))
    }

    /// The gradient averager for `params`, hooked into their backward.
    pub(crate) fn reducer(&self, params: &[(String, Tensor)]) -> Result<Reducer<'_>> {
        Reducer::new(self.group, params, self.bucket_bytes)
            .map_err(|e| self.failed("preparing the gradient buckets", e))
    }

    /// Leaves every gradient replaced by its mean over the ranks; a rank
    /// without a complete step (`full` false) takes part with zeros, so
    /// that the others do not wait for it, and discards the result.
    pub(crate) fn average(&self, reducer: &Reducer, full: bool, step: u64) -> Result<()> {
        let done = if full {
            reducer.finish()
        } else {
            reducer.finish_without_step()
        };
        done.map_err(|e| self.failed(&format!("averaging the gradients of step {step}"), e))
    }

    /// Sums [`StepStats`] over the ranks.
    pub(crate) fn reduce(&self, stats: &StepStats, step: u64) -> Result<StepStats> {
        let t = stats.to_tensor(stats.device);
        self.group
            .all_reduce_sum(std::slice::from_ref(&t))
            .map_err(|e| self.failed(&format!("exchanging the statistics of step {step}"), e))?;
        StepStats::from_tensor(&t, stats.positions.len(), stats.device)
    }

    /// Returns once every rank got here (the end of the run).
    pub(crate) fn barrier(&self, what: &str) -> Result<()> {
        self.group.barrier().map_err(|e| self.failed(what, e))
    }
}

/// A run's collectives: the process group of a [`DataParallel`] and the
/// gradient averager hooked into the backward of one model's parameters.
pub(crate) struct Collectives<'a> {
    dp: &'a DataParallel<'a>,
    reducer: Reducer<'a>,
}

impl<'a> Collectives<'a> {
    /// Gives every rank rank 0's parameters, then hooks the averager in.
    pub fn start(dp: &'a DataParallel<'a>, params: &[(String, Tensor)]) -> Result<Collectives<'a>> {
        dp.synchronise_parameters(params)?;
        let reducer = dp.reducer(params)?;
        Ok(Collectives { dp, reducer })
    }

    /// Lets the next backward send each gradient bucket as it fills
    /// (before the last micro-batch of a step, with overlap on).
    pub fn arm(&self) {
        self.reducer.arm();
    }

    /// [`DataParallel::average`] of this run's gradients.
    pub fn average(&self, full: bool, step: u64) -> Result<()> {
        self.dp.average(&self.reducer, full, step)
    }

    /// [`DataParallel::reduce`].
    pub fn reduce(&self, stats: &StepStats, step: u64) -> Result<StepStats> {
        self.dp.reduce(stats, step)
    }

    /// [`DataParallel::barrier`].
    pub fn barrier(&self, what: &str) -> Result<()> {
        self.dp.barrier(what)
    }
}

/// One step's numbers from one rank, or their sum over the ranks.
#[derive(Clone, Debug)]
pub(crate) struct StepStats {
    /// Ranks that had all their micro-batches (1 or 0 before the sum).
    pub full: f64,
    /// Ranks asked to stop (1 or 0 before the sum).
    pub interrupted: f64,
    /// Sums over micro-batches of the losses and accuracies.
    pub sums: LossSums,
    pub sequences: f64,
    /// Batches each rank consumed so far (this rank's slot set, others 0).
    pub positions: Vec<f64>,
    pub device: Device,
}

impl StepStats {
    fn to_tensor(&self, device: Device) -> Tensor {
        let mut v = vec![self.full, self.interrupted];
        v.extend_from_slice(&self.sums.to_array());
        v.push(self.sequences);
        v.extend_from_slice(&self.positions);
        Tensor::from_slice(&v).to_device(device)
    }

    fn from_tensor(t: &Tensor, world: usize, device: Device) -> Result<StepStats> {
        let v = Vec::<f64>::try_from(t.to_device(Device::Cpu).to_kind(Kind::Double))?;
        // full, interrupted, the sums, sequences, then one position per rank.
        const HEAD: usize = 3 + LossSums::LEN;
        if v.len() != HEAD + world {
            return Err(anyhow!(
                "step statistics of {} values, expected {}",
                v.len(),
                HEAD + world
            ));
        }
        Ok(StepStats {
            full: v[0],
            interrupted: v[1],
            sums: LossSums::from_slice(&v[2..HEAD - 1])?,
            sequences: v[HEAD - 1],
            positions: v[HEAD..].to_vec(),
            device,
        })
    }
}
