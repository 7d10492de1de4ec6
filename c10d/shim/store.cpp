// TCPStore: the rendezvous every rank connects to, and a small key-value store.
#include "shim.h"

#include <chrono>
#include <vector>

#include <c10/util/Logging.h>
#include <torch/csrc/distributed/c10d/TCPStore.hpp>

extern "C" {

void nezha_c10d_free_string(char* s) { std::free(s); }

void nezha_c10d_free_bytes(uint8_t* p) { std::free(p); }

// Applies TORCH_CPP_LOG_LEVEL, as `import torch` does; a C++ program must
// ask for it. (c10d logs each failed store call with a backtrace at WARNING.)
void nezha_c10d_init_logging() { c10::initLogging(); }

int nezha_store_new(const char* host, uint16_t port, int64_t world_size,
                    int is_master, int64_t timeout_ms, nezha_store** out,
                    char** err) {
  return nezha_c10d::guard(err, [&] {
    c10d::TCPStoreOptions opts;
    opts.port = port;
    opts.isServer = is_master != 0;
    opts.numWorkers = static_cast<size_t>(world_size);
    opts.waitWorkers = true;
    opts.timeout = std::chrono::milliseconds(timeout_ms);
    auto store = c10::make_intrusive<c10d::TCPStore>(std::string(host), opts);
    *out = new nezha_store{std::move(store)};
  });
}

void nezha_store_free(nezha_store* store) { delete store; }

int nezha_store_set(nezha_store* store, const char* key, const uint8_t* data,
                    size_t len, char** err) {
  return nezha_c10d::guard(err, [&] {
    std::vector<uint8_t> value(data, data + len);
    store->ptr->set(std::string(key), value);
  });
}

// Blocks until the key exists or the store's timeout passes. The value is
// malloc'd; Rust copies it and frees it with nezha_c10d_free_bytes.
int nezha_store_get(nezha_store* store, const char* key, uint8_t** data,
                    size_t* len, char** err) {
  return nezha_c10d::guard(err, [&] {
    std::vector<uint8_t> value = store->ptr->get(std::string(key));
    *len = value.size();
    *data = static_cast<uint8_t*>(std::malloc(value.empty() ? 1 : value.size()));
    if (*data == nullptr) {
      throw std::bad_alloc();
    }
    std::memcpy(*data, value.data(), value.size());
  });
}

}  // extern "C"
