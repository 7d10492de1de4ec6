// The handles and the error convention shared by the shim's translation units.
//
// Every exported function is `extern "C"` and never lets a C++ exception
// cross into Rust: it returns 0 on success, 1 on failure with `*err` set to a
// malloc'd message that Rust frees with nezha_c10d_free_string.
#pragma once

#include <cstdlib>
#include <cstring>
#include <exception>
#include <string>

#include <c10/util/Exception.h>
#include <torch/csrc/distributed/c10d/Backend.hpp>
#include <torch/csrc/distributed/c10d/Store.hpp>
#include <torch/csrc/distributed/c10d/Work.hpp>

// Opaque to Rust; each owns one reference.
struct nezha_store {
  c10::intrusive_ptr<c10d::Store> ptr;
};
struct nezha_group {
  c10::intrusive_ptr<c10d::Backend> ptr;
};
struct nezha_work {
  c10::intrusive_ptr<c10d::Work> ptr;
};

namespace nezha_c10d {

inline char* dup(const char* s) {
  size_t n = std::strlen(s);
  char* out = static_cast<char*>(std::malloc(n + 1));
  if (out != nullptr) {
    std::memcpy(out, s, n + 1);
  }
  return out;
}

// c10::Error's what() carries a C++ backtrace that says nothing useful to a
// user of the Rust API, so the concise message is preferred.
template <typename F>
int guard(char** err, F&& body) noexcept {
  try {
    body();
    return 0;
  } catch (const c10::Error& e) {
    *err = dup(e.what_without_backtrace());
  } catch (const std::exception& e) {
    *err = dup(e.what());
  } catch (...) {
    *err = dup("a C++ exception that is not a std::exception");
  }
  return 1;
}

}  // namespace nezha_c10d
