// The collectives, started asynchronously on any c10d backend, and their wait.
//
// Tensors arrive as tch's `C_tensor*`, which torch-sys defines as
// `torch::Tensor*` (= at::Tensor*). Copying the at::Tensor takes a reference,
// so the work keeps the storage alive however long Rust keeps its tensors.
#include "shim.h"

#include <chrono>
#include <vector>

#include <ATen/Tensor.h>

extern "C" {

int nezha_group_all_reduce_sum(nezha_group* group, const at::Tensor* tensor,
                               int64_t timeout_ms, nezha_work** out,
                               char** err) {
  return nezha_c10d::guard(err, [&] {
    std::vector<at::Tensor> tensors{*tensor};
    c10d::AllreduceOptions opts;
    opts.reduceOp = c10d::ReduceOp::SUM;
    opts.timeout = std::chrono::milliseconds(timeout_ms);
    *out = new nezha_work{group->ptr->allreduce(tensors, opts)};
  });
}

int nezha_group_broadcast(nezha_group* group, const at::Tensor* tensor,
                          int64_t root, int64_t timeout_ms, nezha_work** out,
                          char** err) {
  return nezha_c10d::guard(err, [&] {
    std::vector<at::Tensor> tensors{*tensor};
    c10d::BroadcastOptions opts;
    opts.rootRank = root;
    opts.rootTensor = 0;
    opts.timeout = std::chrono::milliseconds(timeout_ms);
    *out = new nezha_work{group->ptr->broadcast(tensors, opts)};
  });
}

int nezha_group_barrier(nezha_group* group, int64_t timeout_ms,
                        nezha_work** out, char** err) {
  return nezha_c10d::guard(err, [&] {
    c10d::BarrierOptions opts;
    opts.timeout = std::chrono::milliseconds(timeout_ms);
    *out = new nezha_work{group->ptr->barrier(opts)};
  });
}

void nezha_group_free(nezha_group* group) { delete group; }

// `timeout_ms` must be positive: c10d reads 0 as "wait forever".
int nezha_work_wait(nezha_work* work, int64_t timeout_ms, char** err) {
  return nezha_c10d::guard(
      err, [&] { work->ptr->wait(std::chrono::milliseconds(timeout_ms)); });
}

void nezha_work_free(nezha_work* work) { delete work; }

}  // extern "C"
