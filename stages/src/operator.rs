//! Runs stages as timely-dataflow operators.
//!
//! Every stream carries [`Flow`] items: the data, then one `End` marker.
//! The marker travels in-band, rather than as a closed frontier, because
//! each worker must be able to finish its own stream (flush its shuffle
//! buffer, close its channel) without waiting for the other workers: their
//! sinks feed consumers that read workers in turn, and a worker blocked on a
//! full channel would otherwise hold back the frontier that another worker
//! waits for.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use crossbeam_channel::{Receiver, Sender, TryRecvError};
use timely::dataflow::channels::pact::Pipeline;
use timely::dataflow::operators::generic::operator::{source, Operator};
use timely::dataflow::{Scope, Stream};

use crate::error::Error;
use crate::stage::Stage;

/// An item of a stream, or the end of this worker's stream.
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
pub enum Flow<T> {
    Item(T),
    End,
}

/// The streams between stages. All data lives at time 0: the pipeline has
/// no notion of rounds, only of order.
pub type FlowStream<'s, T> = Stream<'s, u64, Vec<Flow<T>>>;

/// How many items a source hands on per activation, so that each worker step
/// does a bounded amount of work before the sinks can push back.
const SOURCE_BURST: usize = 64;

/// How long an operator waiting on something other than its input sleeps
/// before looking again.
pub const PAUSE: std::time::Duration = std::time::Duration::from_millis(1);

/// Shared between all workers and the driver: the first error, and a request
/// to stop early (an error happened, or the consumer has what it needs).
#[derive(Clone, Default)]
pub struct Control {
    error: Arc<Mutex<Option<Error>>>,
    stop: Arc<AtomicBool>,
}

impl Control {
    pub fn fail(&self, e: Error) {
        let mut slot = self.error.lock().unwrap();
        if slot.is_none() {
            *slot = Some(e);
        }
        self.stop.store(true, Ordering::SeqCst);
    }

    pub fn stop(&self) {
        self.stop.store(true, Ordering::SeqCst);
    }

    pub fn stopped(&self) -> bool {
        self.stop.load(Ordering::SeqCst)
    }

    pub fn take_error(&self) -> Option<Error> {
        self.error.lock().unwrap().take()
    }
}

/// A source operator fed by a bounded channel from a reader thread. It hands
/// on what has arrived, blocking for the first item so the worker does not
/// spin, and ends its stream when the channel closes or the run stops.
pub fn channel_source<'s, T: Clone + 'static>(
    scope: Scope<'s, u64>,
    name: &str,
    rx: Receiver<Result<T, Error>>,
    control: Control,
) -> FlowStream<'s, T> {
    channel_source_while(scope, name, rx, control, || true)
}

/// [`channel_source`] that takes nothing from its channel while `may_read`
/// says no (something further down holds enough of this worker's items),
/// looking again after [`PAUSE`].
pub fn channel_source_while<'s, T: Clone + 'static>(
    scope: Scope<'s, u64>,
    name: &str,
    rx: Receiver<Result<T, Error>>,
    control: Control,
    may_read: impl Fn() -> bool + 'static,
) -> FlowStream<'s, T> {
    source(scope, name, move |cap, info| {
        let activator = scope.activator_for(info.address);
        let mut cap = Some(cap);
        move |output| {
            let Some(c) = cap.as_ref() else { return };
            if !control.stopped() && !may_read() {
                activator.activate_after(PAUSE);
                return;
            }
            let mut session = output.session(c);
            let mut ended = control.stopped();
            let mut sent = 0;
            while !ended && sent < SOURCE_BURST {
                let next = if sent == 0 {
                    rx.recv().ok()
                } else {
                    match rx.try_recv() {
                        Ok(m) => Some(m),
                        Err(TryRecvError::Empty) => break,
                        Err(TryRecvError::Disconnected) => None,
                    }
                };
                match next {
                    Some(Ok(item)) => {
                        session.give(Flow::Item(item));
                        sent += 1;
                    }
                    Some(Err(e)) => {
                        control.fail(e);
                        ended = true;
                    }
                    None => ended = true,
                }
            }
            if ended {
                session.give(Flow::End);
                drop(session);
                cap = None;
            } else {
                activator.activate();
            }
        }
    })
}

/// Runs `stage` as an operator. After an error (its own or another
/// worker's) it stops passing data on and just forwards the end marker.
///
/// A panic in the stage is that error too, naming the worker, the stage
/// and the panic's message: a timely worker that unwound would never
/// finish its dataflow, and workers waiting on it (the gather) would wait
/// for ever.
pub fn stage_operator<'s, S>(
    input: FlowStream<'s, S::In>,
    name: &str,
    mut stage: S,
    control: Control,
) -> FlowStream<'s, S::Out>
where
    S: Stage,
    S::In: Clone + 'static,
    S::Out: Clone + 'static,
{
    let worker = input.scope().index();
    let stage_name = name.to_string();
    input.unary(Pipeline, name, move |_cap, _info| {
        let mut failed = false;
        move |input, output| {
            input.for_each(|cap, data| {
                let mut session = output.session(&cap);
                for flow in data.drain(..) {
                    let is_end = matches!(flow, Flow::End);
                    let mut emit = |o| session.give(Flow::Item(o));
                    let result = match flow {
                        Flow::Item(_) if failed || control.stopped() => Ok(()),
                        Flow::End if failed || control.stopped() => Ok(()),
                        Flow::Item(x) => {
                            catch_panic(worker, &stage_name, || stage.push(x, &mut emit))
                        }
                        Flow::End => catch_panic(worker, &stage_name, || stage.finish(&mut emit)),
                    };
                    if let Err(e) = result {
                        control.fail(e);
                        failed = true;
                    }
                    if is_end {
                        session.give(Flow::End);
                    }
                }
            });
        }
    })
}

/// `f`'s result, or its panic as an error naming the worker and stage.
pub fn catch_panic<T>(
    worker: usize,
    stage: &str,
    f: impl FnOnce() -> Result<T, Error>,
) -> Result<T, Error> {
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)).unwrap_or_else(|payload| {
        Err(Error::data(format!(
            "worker {worker}: stage \"{stage}\" panicked: {}",
            panic_message(payload.as_ref())
        )))
    })
}

/// The message a panic was raised with.
pub fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    payload
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "(no message)".into())
}

/// The last operator of a worker: hands each item to a bounded channel,
/// blocking while it is full (this is what pushes back on the whole worker),
/// and closes the channel at the end of the stream. When the consumer hangs
/// up (a trainer that has taken all the steps it wants), the run is asked to
/// stop.
pub fn channel_sink<T: Clone + 'static>(
    input: FlowStream<'_, T>,
    name: &str,
    tx: Sender<T>,
    control: Control,
) {
    let mut tx = Some(tx);
    input.sink(Pipeline, name, move |(input, _frontier)| {
        input.for_each(|_cap, data| {
            for flow in data.drain(..) {
                match flow {
                    Flow::Item(x) => {
                        if let Some(t) = &tx {
                            if t.send(x).is_err() {
                                control.stop();
                                tx = None;
                            }
                        }
                    }
                    Flow::End => tx = None,
                }
            }
        });
    });
}
