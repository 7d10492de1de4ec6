// ProcessGroupNCCL: collectives on CUDA tensors (built with the `nccl` feature).
#include "shim.h"

#include <chrono>

#include <torch/csrc/distributed/c10d/ProcessGroupNCCL.hpp>

extern "C" {

// The timeout bounds each collective: ProcessGroupNCCL's watchdog aborts the
// communicator once an operation has run that long, and a wait with a
// timeout blocks the calling thread rather than only the CUDA stream.
int nezha_group_nccl_new(nezha_store* store, int64_t rank, int64_t world_size,
                         int64_t timeout_ms, nezha_group** out, char** err) {
  return nezha_c10d::guard(err, [&] {
    auto opts = c10d::ProcessGroupNCCL::Options::create();
    opts->timeout = std::chrono::milliseconds(timeout_ms);
    auto group = c10::make_intrusive<c10d::ProcessGroupNCCL>(
        store->ptr, static_cast<int>(rank), static_cast<int>(world_size),
        opts);
    *out = new nezha_group{std::move(group)};
  });
}

}  // extern "C"
