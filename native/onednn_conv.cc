// oneDNN convolutions as XLA FFI handlers for the CPU: forward, backward-data and
// backward-weights, channels-last activations and HWIO kernels, 1-3 spatial dims; fp32, and
// bf16 (on CPUs with native bf16: the Python side refuses it elsewhere) through the same code
// with handlers of their own (the `_bf16` targets).
//
// bf16 matches XLA's CPU numerics for a bf16 conv: XLA converts the operands to f32, convolves
// in f32 and rounds the result to bf16 once. oneDNN's bf16 primitives read bf16, accumulate in
// f32 and round the output once as well; the kernel gradient is asked for in f32 and rounded
// once by the reorder into the HWIO buffer (not accumulated in bf16 by oneDNN, whose bf16
// diff_weights may round partial sums over the batch).
//
// Shapes come from the buffers and the conv's arguments from the call's attributes; the
// Python side (jaxconv/functional/formulations/onednn.py) owns validation, batching and
// differentiation. Primitives are cached by configuration in a bounded LRU cache guarded by a
// mutex; each call brings its own scratchpad, so concurrent calls share nothing mutable.

#include <cstdint>
#include <cstdlib>
#include <list>
#include <memory>
#include <mutex>
#include <sstream>
#include <stdexcept>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

#include "oneapi/dnnl/dnnl.hpp"
#include "xla/ffi/api/ffi.h"

namespace ffi = xla::ffi;

namespace {

using dims_t = dnnl::memory::dims;
using dt = dnnl::memory::data_type;

enum class Kind { kForward, kBackwardData, kBackwardWeights };

// The conv's arguments, as the attributes of every handler carry them.
struct Args {
  ffi::Span<const int64_t> strides, dilation, pad_lo, pad_hi;
  int64_t groups;
};

// oneDNN's data type of an FFI element type.
template <ffi::DataType T>
constexpr dt OnednnType() {
  static_assert(T == ffi::F32 || T == ffi::BF16, "jaxconv's oneDNN handlers take f32 or bf16");
  return T == ffi::F32 ? dt::f32 : dt::bf16;
}

dnnl::engine& Engine() {
  static dnnl::engine engine(dnnl::engine::kind::cpu, 0);
  return engine;
}

dims_t ToDims(ffi::Span<const int64_t> span) { return dims_t(span.begin(), span.end()); }

// (N, *spatial, C) channels-last, as oneDNN's logical (N, C, *spatial) with strides.
dnnl::memory::desc ActivationDesc(const dims_t& shape, dt type) {
  const size_t rank = shape.size() - 2;
  dims_t dims{shape[0], shape.back()}, strides(shape.size());
  int64_t step = shape.back();
  for (size_t i = rank; i-- > 0;) {
    strides[2 + i] = step;
    step *= shape[1 + i];
  }
  strides[0] = step;
  strides[1] = 1;
  for (size_t i = 0; i < rank; ++i) dims.push_back(shape[1 + i]);
  return dnnl::memory::desc(dims, type, strides);
}

// (*kernel, C_in / groups, C_out) HWIO, as oneDNN's logical ([G,] O, I, *kernel) with strides.
dnnl::memory::desc KernelDesc(const dims_t& shape, int64_t groups, dt type) {
  const size_t rank = shape.size() - 2;
  const int64_t in_g = shape[rank], out = shape[rank + 1];
  dims_t dims, strides;
  if (groups > 1) {
    dims = {groups, out / groups, in_g};
    strides = {out / groups, 1, out};
  } else {
    dims = {out, in_g};
    strides = {1, out};
  }
  dims_t spatial_strides(rank);
  int64_t step = in_g * out;
  for (size_t i = rank; i-- > 0;) {
    spatial_strides[i] = step;
    step *= shape[i];
  }
  for (size_t i = 0; i < rank; ++i) {
    dims.push_back(shape[i]);
    strides.push_back(spatial_strides[i]);
  }
  return dnnl::memory::desc(dims, type, strides);
}

// oneDNN counts dilation from 0 (no dilation), lax from 1.
dims_t OnednnDilation(ffi::Span<const int64_t> dilation) {
  dims_t out;
  for (int64_t d : dilation) out.push_back(d - 1);
  return out;
}

struct Config {
  Kind kind;
  dt type;  // of every operand and result
  dims_t input, kernel, output;
  Args args;

  dnnl::memory::desc Input() const { return ActivationDesc(input, type); }
  dnnl::memory::desc Output() const { return ActivationDesc(output, type); }
  dnnl::memory::desc Kernel() const { return KernelDesc(kernel, args.groups, type); }

  // The layout-free kernel oneDNN is asked to choose a layout for: the kernel gradient in f32
  // whatever the type (rounded once into the HWIO buffer: see the top of the file).
  dnnl::memory::desc AnyKernel(bool gradient) const {
    return dnnl::memory::desc(Kernel().get_dims(), gradient ? dt::f32 : type,
                              dnnl::memory::format_tag::any);
  }

  std::string Key() const {
    std::ostringstream key;
    key << static_cast<int>(kind) << '|' << static_cast<int>(type);
    for (const dims_t* d : {&input, &kernel, &output}) {
      key << '|';
      for (int64_t v : *d) key << v << ',';
    }
    for (ffi::Span<const int64_t> s : {args.strides, args.dilation, args.pad_lo, args.pad_hi}) {
      key << '|';
      for (int64_t v : s) key << v << ',';
    }
    key << '|' << args.groups;
    return key.str();
  }
};

// One cached configuration: the conv primitive, the layout oneDNN chose for the kernel and the
// reorder between it and HWIO (absent when HWIO is what oneDNN runs on).
struct Entry {
  dnnl::primitive conv;
  dnnl::memory::desc user_kernel, kernel;
  std::unique_ptr<dnnl::reorder> kernel_reorder;
  size_t scratchpad_bytes = 0;
};

dnnl::convolution_forward::primitive_desc ForwardDesc(const Config& c,
                                                      const dnnl::memory::desc& src,
                                                      const dnnl::memory::desc& dst,
                                                      const dnnl::primitive_attr& attr) {
  return dnnl::convolution_forward::primitive_desc(
      Engine(), dnnl::prop_kind::forward_training, dnnl::algorithm::convolution_direct, src,
      c.AnyKernel(false), dst, ToDims(c.args.strides), OnednnDilation(c.args.dilation), ToDims(c.args.pad_lo),
      ToDims(c.args.pad_hi), attr);
}

// Implementations of oneDNN 3.2 the formulation fuzz caught computing wrong, by the substring
// of their name, for the configurations they fail on; such a configuration takes the first
// implementation oneDNN offers without that substring.
// - "amx": the AMX brgemm kernels miscompute some strided 3-D bfloat16 convolutions (wide run
//   of seed 12, case 147: kernel 1x3x4, strides 3x3x2, every output wrong, NaN on larger maps;
//   the AVX512-BF16 kernels compute them right).
// - "1x1": the jit 1x1 backward-weights kernels write past their reduce-to-unit-stride
//   workspace for a strided 1x1 conv on channels-last input with fewer input channels than
//   their channel block (wide large run of seed 13, case 228: 12 channels, stride 1x2, heap
//   corruption with 2 threads; oneDNN issue 6035), so strided 1x1 kernel gradients avoid every
//   1x1-specific kernel (the bfloat16 ones share that workspace scheme).
const char* BrokenFor(const Config& c, bool weights_gradient) {
  if (c.type == dt::bf16 && c.input.size() == 5) return "amx";
  if (weights_gradient) {
    const size_t rank = c.kernel.size() - 2;
    bool pointwise = true, strided = false;
    for (size_t i = 0; i < rank; ++i) pointwise = pointwise && c.kernel[i] == 1;
    for (int64_t s : c.args.strides) strided = strided || s > 1;
    if (pointwise && strided) return "1x1";
  }
  return nullptr;
}

template <typename Desc>
Desc WithoutBrokenKernels(Desc desc, const Config& c, bool weights_gradient = false) {
  const char* broken = BrokenFor(c, weights_gradient);
  if (broken == nullptr) return desc;
  while (std::string(desc.impl_info_str()).find(broken) != std::string::npos) {
    if (!desc.next_impl()) {
      throw std::runtime_error(std::string("no implementation of this convolution other than "
                                           "oneDNN's ") + broken + " kernels, which miscompute "
                                           "some of them");
    }
  }
  return desc;
}

std::shared_ptr<Entry> Build(const Config& c) {
  auto entry = std::make_shared<Entry>();
  dnnl::primitive_attr attr;
  attr.set_scratchpad_mode(dnnl::scratchpad_mode::user);
  const auto src = c.Input(), dst = c.Output();
  entry->user_kernel = c.Kernel();
  const auto forward = WithoutBrokenKernels(ForwardDesc(c, src, dst, attr), c);
  const bool gradient = c.kind == Kind::kBackwardWeights;
  const auto any = c.AnyKernel(gradient);
  const auto strides = ToDims(c.args.strides), dilation = OnednnDilation(c.args.dilation),
             lo = ToDims(c.args.pad_lo), hi = ToDims(c.args.pad_hi);
  if (c.kind == Kind::kForward) {
    entry->kernel = forward.weights_desc();
    entry->scratchpad_bytes = forward.scratchpad_desc().get_size();
    entry->conv = dnnl::convolution_forward(forward);
  } else if (c.kind == Kind::kBackwardData) {
    const auto backward = WithoutBrokenKernels(dnnl::convolution_backward_data::primitive_desc(
        Engine(), dnnl::algorithm::convolution_direct, src, any, dst, strides, dilation, lo, hi,
        forward, attr), c);
    entry->kernel = backward.weights_desc();
    entry->scratchpad_bytes = backward.scratchpad_desc().get_size();
    entry->conv = dnnl::convolution_backward_data(backward);
  } else {
    const auto backward = WithoutBrokenKernels(
        dnnl::convolution_backward_weights::primitive_desc(
            Engine(), dnnl::algorithm::convolution_direct, src, any, dst, strides, dilation, lo,
            hi, forward, attr), c, /*weights_gradient=*/true);
    entry->kernel = backward.diff_weights_desc();
    entry->scratchpad_bytes = backward.scratchpad_desc().get_size();
    entry->conv = dnnl::convolution_backward_weights(backward);
  }
  if (entry->kernel != entry->user_kernel) {
    const auto& from = gradient ? entry->kernel : entry->user_kernel;
    const auto& to = gradient ? entry->user_kernel : entry->kernel;
    entry->kernel_reorder = std::make_unique<dnnl::reorder>(
        dnnl::reorder::primitive_desc(Engine(), from, Engine(), to));
  }
  return entry;
}

// A bounded least-recently-used cache of built primitives, safe to share between threads.
class Cache {
 public:
  static constexpr size_t kCapacity = 256;

  std::shared_ptr<Entry> Get(const Config& config) {
    const std::string key = config.Key();
    {
      std::lock_guard<std::mutex> lock(mutex_);
      auto found = index_.find(key);
      if (found != index_.end()) {
        order_.splice(order_.begin(), order_, found->second.second);
        return found->second.first;
      }
    }
    auto entry = Build(config);  // outside the lock: building can take milliseconds
    std::lock_guard<std::mutex> lock(mutex_);
    auto found = index_.find(key);
    if (found != index_.end()) return found->second.first;
    order_.push_front(key);
    index_.emplace(key, std::make_pair(entry, order_.begin()));
    if (index_.size() > kCapacity) {
      index_.erase(order_.back());
      order_.pop_back();
    }
    return entry;
  }

  size_t Size() {
    std::lock_guard<std::mutex> lock(mutex_);
    return index_.size();
  }

 private:
  std::mutex mutex_;
  std::list<std::string> order_;
  std::unordered_map<std::string,
                     std::pair<std::shared_ptr<Entry>, std::list<std::string>::iterator>>
      index_;
};

Cache& Primitives() {
  static Cache* cache = new Cache();
  return *cache;
}

struct Freed {
  void operator()(void* p) const { std::free(p); }
};
using Bytes = std::unique_ptr<void, Freed>;

Bytes Allocate(size_t bytes) {
  if (bytes == 0) return Bytes(nullptr);
  void* memory = std::aligned_alloc(64, (bytes + 63) / 64 * 64);
  if (memory == nullptr) throw std::bad_alloc();
  return Bytes(memory);
}

// Runs one configuration on buffers: `input` and `output` are the activations of the forward
// conv (x and y), `kernel` its HWIO kernel; which are read and which written depends on kind.
ffi::Error Run(const Config& config, void* input, void* kernel, void* output) {
  try {
    const auto entry = Primitives().Get(config);
    dnnl::stream stream(Engine());
    const auto src = config.Input(), dst = config.Output();
    dnnl::memory x(src, Engine(), input), y(dst, Engine(), output),
        k_user(entry->user_kernel, Engine(), kernel);
    Bytes staged, scratch = Allocate(entry->scratchpad_bytes);
    dnnl::memory k = k_user;
    if (entry->kernel_reorder) {
      staged = Allocate(entry->kernel.get_size());
      k = dnnl::memory(entry->kernel, Engine(), staged.get());
      if (config.kind != Kind::kBackwardWeights) entry->kernel_reorder->execute(stream, k_user, k);
    }
    std::unordered_map<int, dnnl::memory> args{
        {DNNL_ARG_SCRATCHPAD,
         dnnl::memory(dnnl::memory::desc({static_cast<int64_t>(entry->scratchpad_bytes)}, dt::u8,
                                         dnnl::memory::format_tag::x),
                      Engine(), scratch.get())}};
    if (config.kind == Kind::kForward) {
      args.insert({{DNNL_ARG_SRC, x}, {DNNL_ARG_WEIGHTS, k}, {DNNL_ARG_DST, y}});
    } else if (config.kind == Kind::kBackwardData) {
      args.insert({{DNNL_ARG_DIFF_SRC, x}, {DNNL_ARG_WEIGHTS, k}, {DNNL_ARG_DIFF_DST, y}});
    } else {
      args.insert({{DNNL_ARG_SRC, x}, {DNNL_ARG_DIFF_WEIGHTS, k}, {DNNL_ARG_DIFF_DST, y}});
    }
    entry->conv.execute(stream, args);
    if (entry->kernel_reorder && config.kind == Kind::kBackwardWeights) {
      entry->kernel_reorder->execute(stream, k, k_user);
    }
    stream.wait();
    return ffi::Error::Success();
  } catch (const dnnl::error& e) {
    return ffi::Error(ffi::ErrorCode::kInternal,
                      std::string("jaxconv oneDNN convolution: ") + e.what());
  } catch (const std::bad_alloc&) {
    return ffi::Error(ffi::ErrorCode::kResourceExhausted,
                      "jaxconv oneDNN convolution: out of memory");
  } catch (const std::exception& e) {
    return ffi::Error(ffi::ErrorCode::kInternal,
                      std::string("jaxconv oneDNN convolution: ") + e.what());
  }
}

Args MakeArgs(ffi::Span<const int64_t> strides, ffi::Span<const int64_t> dilation,
              ffi::Span<const int64_t> pad_lo, ffi::Span<const int64_t> pad_hi, int64_t groups) {
  return Args{strides, dilation, pad_lo, pad_hi, groups};
}

template <ffi::DataType T>
ffi::Error Forward(ffi::Buffer<T> x, ffi::Buffer<T> kernel, ffi::ResultBuffer<T> y,
                   ffi::Span<const int64_t> strides, ffi::Span<const int64_t> dilation,
                   ffi::Span<const int64_t> pad_lo, ffi::Span<const int64_t> pad_hi,
                   int64_t groups) {
  const Config config{Kind::kForward, OnednnType<T>(), ToDims(x.dimensions()),
                      ToDims(kernel.dimensions()), ToDims(y->dimensions()),
                      MakeArgs(strides, dilation, pad_lo, pad_hi, groups)};
  return Run(config, x.untyped_data(), kernel.untyped_data(), y->untyped_data());
}

template <ffi::DataType T>
ffi::Error BackwardData(ffi::Buffer<T> dy, ffi::Buffer<T> kernel, ffi::ResultBuffer<T> dx,
                        ffi::Span<const int64_t> strides, ffi::Span<const int64_t> dilation,
                        ffi::Span<const int64_t> pad_lo, ffi::Span<const int64_t> pad_hi,
                        int64_t groups) {
  const Config config{Kind::kBackwardData, OnednnType<T>(), ToDims(dx->dimensions()),
                      ToDims(kernel.dimensions()), ToDims(dy.dimensions()),
                      MakeArgs(strides, dilation, pad_lo, pad_hi, groups)};
  return Run(config, dx->untyped_data(), kernel.untyped_data(), dy.untyped_data());
}

template <ffi::DataType T>
ffi::Error BackwardWeights(ffi::Buffer<T> x, ffi::Buffer<T> dy, ffi::ResultBuffer<T> dk,
                           ffi::Span<const int64_t> strides, ffi::Span<const int64_t> dilation,
                           ffi::Span<const int64_t> pad_lo, ffi::Span<const int64_t> pad_hi,
                           int64_t groups) {
  const Config config{Kind::kBackwardWeights, OnednnType<T>(), ToDims(x.dimensions()),
                      ToDims(dk->dimensions()), ToDims(dy.dimensions()),
                      MakeArgs(strides, dilation, pad_lo, pad_hi, groups)};
  return Run(config, x.untyped_data(), dk->untyped_data(), dy.untyped_data());
}

// The handlers' signature: a dependent chain, hence `.template`.
template <ffi::DataType T>
auto Bind() {
  return ffi::Ffi::Bind()
      .template Arg<ffi::Buffer<T>>()
      .template Arg<ffi::Buffer<T>>()
      .template Ret<ffi::Buffer<T>>()
      .template Attr<ffi::Span<const int64_t>>("strides")
      .template Attr<ffi::Span<const int64_t>>("dilation")
      .template Attr<ffi::Span<const int64_t>>("pad_lo")
      .template Attr<ffi::Span<const int64_t>>("pad_hi")
      .template Attr<int64_t>("groups");
}

}  // namespace

XLA_FFI_DEFINE_HANDLER_SYMBOL(JaxconvOnednnConvForward, Forward<ffi::F32>, Bind<ffi::F32>());
XLA_FFI_DEFINE_HANDLER_SYMBOL(JaxconvOnednnConvBackwardData, BackwardData<ffi::F32>,
                              Bind<ffi::F32>());
XLA_FFI_DEFINE_HANDLER_SYMBOL(JaxconvOnednnConvBackwardWeights, BackwardWeights<ffi::F32>,
                              Bind<ffi::F32>());
XLA_FFI_DEFINE_HANDLER_SYMBOL(JaxconvOnednnConvForwardBf16, Forward<ffi::BF16>,
                              Bind<ffi::BF16>());
XLA_FFI_DEFINE_HANDLER_SYMBOL(JaxconvOnednnConvBackwardDataBf16, BackwardData<ffi::BF16>,
                              Bind<ffi::BF16>());
XLA_FFI_DEFINE_HANDLER_SYMBOL(JaxconvOnednnConvBackwardWeightsBf16, BackwardWeights<ffi::BF16>,
                              Bind<ffi::BF16>());

// The oneDNN version the library runs with, "major.minor.patch".
extern "C" const char* JaxconvOnednnVersion() {
  static const std::string version = [] {
    const dnnl_version_t* v = dnnl_version();
    return std::to_string(v->major) + "." + std::to_string(v->minor) + "." +
           std::to_string(v->patch);
  }();
  return version.c_str();
}

// How many configurations the primitive cache holds now (for tests of its bound).
extern "C" int64_t JaxconvOnednnCacheSize() {
  return static_cast<int64_t>(Primitives().Size());
}
