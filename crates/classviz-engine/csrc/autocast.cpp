// bf16 autocast for classviz's --precision, on the CPU and on CUDA.
//
// tch exposes only CUDA autocast at its default dtype (fp16); classviz wants
// bf16 (fp32's exponent range, so no loss scaling) and wants it on both
// devices. These few calls into ATen's autocast state are all it needs. The
// state is thread-local, like grad mode. Every function catches C++
// exceptions and returns -1 instead, so nothing unwinds into Rust.

#include <ATen/autocast_mode.h>
#include <c10/core/DeviceType.h>
#include <c10/core/ScalarType.h>

namespace {
c10::DeviceType device_type(int cuda) {
  return cuda ? c10::DeviceType::CUDA : c10::DeviceType::CPU;
}
}  // namespace

extern "C" {

// 1 if autocast is on for the device (0 = CPU, 1 = CUDA), 0 if off, -1 on error.
int classviz_autocast_enabled(int cuda) {
  try {
    return at::autocast::is_autocast_enabled(device_type(cuda)) ? 1 : 0;
  } catch (...) {
    return -1;
  }
}

// Turn bf16 autocast on or off for the device; 0 on success, -1 on error.
int classviz_autocast_set(int cuda, int enabled) {
  try {
    auto type = device_type(cuda);
    at::autocast::set_autocast_dtype(type, at::kBFloat16);
    at::autocast::set_autocast_enabled(type, enabled != 0);
    return 0;
  } catch (...) {
    return -1;
  }
}

// Enter an autocast region; returns the new nesting depth, or -1 on error.
int classviz_autocast_enter() {
  try {
    return at::autocast::increment_nesting();
  } catch (...) {
    return -1;
  }
}

// Leave an autocast region; the cast cache is freed when the last one closes.
// Returns the remaining depth, or -1 on error.
int classviz_autocast_exit() {
  try {
    int depth = at::autocast::decrement_nesting();
    if (depth == 0) {
      at::autocast::clear_cache();
    }
    return depth;
  } catch (...) {
    return -1;
  }
}

}  // extern "C"
