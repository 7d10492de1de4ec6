// Gradient-ready hooks: a post hook on each parameter's gradient accumulator
// (the AccumulateGrad node, as DDP's Reducer uses) that calls back into Rust
// with the parameter's index once backward has added its gradient. Deciding
// what to do with that (buckets, collectives) is Rust's.
#include "shim.h"

#include <cstdint>
#include <utility>
#include <vector>

#include <ATen/Tensor.h>
#include <torch/csrc/autograd/function.h>
#include <torch/csrc/autograd/utils/lambda_post_hook.h>
#include <torch/csrc/autograd/variable.h>

typedef void (*nezha_ready_fn)(void* ctx, int64_t index);

// Holds each accumulator: a leaf only keeps a weak reference to its own, and
// a new one (without the hook) would replace it once it was freed.
struct nezha_hooks {
  std::vector<std::pair<c10::intrusive_ptr<torch::autograd::Node>, uintptr_t>>
      hooks;
};

extern "C" {

int nezha_hooks_register(const at::Tensor* const* params, int64_t count,
                         nezha_ready_fn ready, void* ctx, nezha_hooks** out,
                         char** err) {
  return nezha_c10d::guard(err, [&] {
    auto hooks = std::make_unique<nezha_hooks>();
    for (int64_t i = 0; i < count; ++i) {
      const at::Tensor& p = *params[i];
      TORCH_CHECK(p.requires_grad() && p.is_leaf(), "parameter ", i,
                  " is not a leaf that requires a gradient");
      auto acc = torch::autograd::impl::grad_accumulator(p);
      TORCH_CHECK(acc, "parameter ", i, " has no gradient accumulator");
      auto key = acc->add_post_hook(
          std::make_unique<torch::autograd::utils::LambdaPostHook>(
              [ready, ctx, i](const torch::autograd::variable_list& outputs,
                              const torch::autograd::variable_list&) {
                ready(ctx, i);
                return outputs;
              }));
      hooks->hooks.emplace_back(std::move(acc), key);
    }
    *out = hooks.release();
  });
}

void nezha_hooks_free(nezha_hooks* hooks) {
  for (auto& [acc, key] : hooks->hooks) {
    acc->del_post_hook(key);
  }
  delete hooks;
}

}  // extern "C"
