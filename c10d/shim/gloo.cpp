// ProcessGroupGloo: collectives on CPU tensors over TCP.
#include "shim.h"

#include <chrono>

#include <torch/csrc/distributed/c10d/ProcessGroupGloo.hpp>

extern "C" {

// `device_kind`: 0 = torch's default device (this host's name, or loopback if
// it does not resolve), 1 = the network interface named `device_name`, 2 =
// the address `device_name` resolves to. Choosing among them is Rust's job.
int nezha_group_gloo_new(nezha_store* store, int64_t rank, int64_t world_size,
                         int64_t timeout_ms, int device_kind,
                         const char* device_name, nezha_group** out,
                         char** err) {
  return nezha_c10d::guard(err, [&] {
    auto opts = c10d::ProcessGroupGloo::Options::create(
        std::chrono::milliseconds(timeout_ms));
    switch (device_kind) {
      case 0:
        opts->devices.push_back(
            c10d::ProcessGroupGloo::createDefaultDevice());
        break;
      case 1:
        opts->devices.push_back(
            c10d::ProcessGroupGloo::createDeviceForInterface(device_name));
        break;
      case 2:
        opts->devices.push_back(
            c10d::ProcessGroupGloo::createDeviceForHostname(device_name));
        break;
      default:
        throw std::invalid_argument("unknown gloo device kind");
    }
    auto group = c10::make_intrusive<c10d::ProcessGroupGloo>(
        store->ptr, static_cast<int>(rank), static_cast<int>(world_size),
        opts);
    *out = new nezha_group{std::move(group)};
  });
}

}  // extern "C"
