// AOTInductor packages behind classviz's network seam: load a .pt2 package
// (weights/export.py --compile) with torch::inductor::AOTIModelPackageLoader,
// run it on tensors that tch owns, and, on CUDA, capture one run in a CUDA
// graph and replay it. tch does not wrap the loader, so these few functions
// do. Every function catches C++ exceptions and reports them as a message
// and an error return, so nothing unwinds into Rust.
//
// Tensors cross as at::Tensor pointers (tch's C_tensor): inputs are borrowed;
// outputs are new heap tensors that Rust takes ownership of.

#include <ATen/Tensor.h>
#include <torch/csrc/inductor/aoti_package/model_package_loader.h>

#include <cstring>
#include <memory>
#include <string>
#include <vector>

#ifdef CLASSVIZ_CUDA
#include <ATen/cuda/CUDAGraph.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>
#endif

namespace {

void set_error(char* error, size_t length, const std::string& message) {
  if (error == nullptr || length == 0) return;
  std::strncpy(error, message.c_str(), length - 1);
  error[length - 1] = '\0';
}

std::vector<at::Tensor> gather(at::Tensor** inputs, int count) {
  std::vector<at::Tensor> tensors;
  tensors.reserve(count);
  for (int i = 0; i < count; ++i) tensors.push_back(*inputs[i]);
  return tensors;
}

int hand_over(std::vector<at::Tensor>&& results, at::Tensor** outputs, int capacity) {
  if (static_cast<int>(results.size()) > capacity) {
    throw std::runtime_error("the package returned " + std::to_string(results.size()) +
                             " outputs, more than the " + std::to_string(capacity) + " expected");
  }
  for (size_t i = 0; i < results.size(); ++i) outputs[i] = new at::Tensor(std::move(results[i]));
  return static_cast<int>(results.size());
}

}  // namespace

extern "C" {

// Load a package for a device (-1: the package's own; N: cuda:N). Returns
// the loader, or null with the reason in `error`.
void* classviz_aoti_load(const char* path, int device_index, char* error, size_t length) {
  try {
    return new torch::inductor::AOTIModelPackageLoader(path, "model", false, 1,
                                                       static_cast<c10::DeviceIndex>(device_index));
  } catch (const std::exception& e) {
    set_error(error, length, e.what());
  } catch (...) {
    set_error(error, length, "unknown error loading the package");
  }
  return nullptr;
}

void classviz_aoti_free(void* loader) {
  delete static_cast<torch::inductor::AOTIModelPackageLoader*>(loader);
}

// Run the package on `count` inputs; writes up to `capacity` new output
// tensors and returns how many, or -1 with the reason in `error`.
int classviz_aoti_run(void* loader, at::Tensor** inputs, int count, at::Tensor** outputs,
                      int capacity, char* error, size_t length) {
  try {
    auto* package = static_cast<torch::inductor::AOTIModelPackageLoader*>(loader);
    return hand_over(package->run(gather(inputs, count)), outputs, capacity);
  } catch (const std::exception& e) {
    set_error(error, length, e.what());
  } catch (...) {
    set_error(error, length, "unknown error running the package");
  }
  return -1;
}

// 1 if this build can capture CUDA graphs, 0 if not.
int classviz_aoti_graphs_built() {
#ifdef CLASSVIZ_CUDA
  return 1;
#else
  return 0;
#endif
}

#ifdef CLASSVIZ_CUDA

// One captured run: its static inputs (copied into before each replay) and
// the outputs the capture allocated (overwritten by each replay).
struct Captured {
  at::cuda::CUDAGraph graph;
  std::vector<at::Tensor> inputs;
  std::vector<at::Tensor> outputs;
};

// Capture one run of the package on inputs shaped like `inputs` (which seed
// the static buffers): warm-up runs on a side stream first (AOTInductor
// allocates and folds constants on its first runs), then the capture on it.
void* classviz_aoti_capture(void* loader, at::Tensor** inputs, int count, int warmups,
                            char* error, size_t length) {
  try {
    auto* package = static_cast<torch::inductor::AOTIModelPackageLoader*>(loader);
    auto captured = std::make_unique<Captured>();
    for (int i = 0; i < count; ++i) captured->inputs.push_back(inputs[i]->clone());
    auto device = captured->inputs.at(0).device();
    // Host syncs order the streams: a capture happens once per batch shape.
    c10::cuda::getCurrentCUDAStream(device.index()).synchronize();
    auto side = c10::cuda::getStreamFromPool(false, device.index());
    {
      c10::cuda::CUDAStreamGuard guard(side);
      for (int i = 0; i < warmups; ++i) package->run(captured->inputs, side.stream());
      side.synchronize();
      captured->graph.capture_begin({0, 0}, cudaStreamCaptureModeRelaxed);
      captured->outputs = package->run(captured->inputs, side.stream());
      captured->graph.capture_end();
    }
    side.synchronize();
    return captured.release();
  } catch (const std::exception& e) {
    set_error(error, length, e.what());
  } catch (...) {
    set_error(error, length, "unknown error capturing a CUDA graph");
  }
  return nullptr;
}

// Copy `inputs` into the graph's static inputs, replay it, and hand out new
// references to its outputs (valid until the next replay).
int classviz_aoti_replay(void* graph, at::Tensor** inputs, int count, at::Tensor** outputs,
                         int capacity, char* error, size_t length) {
  try {
    auto* captured = static_cast<Captured*>(graph);
    if (count != static_cast<int>(captured->inputs.size())) {
      throw std::runtime_error("a replay needs the captured run's inputs");
    }
    for (int i = 0; i < count; ++i) captured->inputs[i].copy_(*inputs[i], true);
    captured->graph.replay();
    std::vector<at::Tensor> results(captured->outputs.begin(), captured->outputs.end());
    return hand_over(std::move(results), outputs, capacity);
  } catch (const std::exception& e) {
    set_error(error, length, e.what());
  } catch (...) {
    set_error(error, length, "unknown error replaying a CUDA graph");
  }
  return -1;
}

void classviz_aoti_graph_free(void* graph) { delete static_cast<Captured*>(graph); }

#else

void* classviz_aoti_capture(void*, at::Tensor**, int, int, char* error, size_t length) {
  set_error(error, length, "this build of classviz has no CUDA graph support");
  return nullptr;
}

int classviz_aoti_replay(void*, at::Tensor**, int, at::Tensor**, int, char* error, size_t length) {
  set_error(error, length, "this build of classviz has no CUDA graph support");
  return -1;
}

void classviz_aoti_graph_free(void*) {}

#endif

}  // extern "C"
