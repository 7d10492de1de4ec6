//! The threads the optimizer's CPU loops (fused updates, the gradient norm)
//! run on.

/// As many threads as libtorch's intra-op pool has when first used, so that
/// `[train] threads` bounds the optimizer too.
pub(crate) fn pool() -> &'static rayon::ThreadPool {
    static POOL: std::sync::OnceLock<rayon::ThreadPool> = std::sync::OnceLock::new();
    POOL.get_or_init(|| {
        rayon::ThreadPoolBuilder::new()
            .num_threads(tch::get_num_threads().max(1) as usize)
            .thread_name(|i| format!("nezha-optim-{i}"))
            .build()
            .expect("starting the optimizer's threads")
    })
}
