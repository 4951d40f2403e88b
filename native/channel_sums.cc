// Per-channel sums for BatchNorm as an XLA FFI handler for the CPU: for a (..., C) channels-last
// `a` and `b` and a (C,) `shift`,
//
//   first[c] = sum over every position of a[..., c]
//   second[c] = sum over every position of a[..., c] * (b[..., c] - shift[c])
//
// in one pass over both. BatchNorm's statistics are (x, x, 0): the sums of x and x^2; its
// backward's are (dy, x, mean): the sums of dy and dy * (x - mean). XLA:CPU reduces over the
// leading axes of a channels-last tensor one output channel at a time; this reads each row of C
// channels once, vectorised along the channels, on OpenMP's threads (oneDNN's).
//
// Rows are summed in blocks of kBlock rows in float, each block's sums kept in double and the
// blocks added in their order, so the result depends neither on the thread count nor on the
// schedule: a run repeats to the bit with any OMP_NUM_THREADS.

#include <omp.h>

#include <algorithm>
#include <cstdint>
#include <sstream>
#include <string>
#include <vector>

#include "xla/ffi/api/ffi.h"

namespace ffi = xla::ffi;

namespace {

constexpr int64_t kBlock = 64;
// Below this many elements one thread sums them all (waking the others costs more).
constexpr int64_t kParallelElements = 1 << 16;

ffi::Error ChannelSums(ffi::Buffer<ffi::F32> a, ffi::Buffer<ffi::F32> b,
                       ffi::Buffer<ffi::F32> shift, ffi::ResultBuffer<ffi::F32> first,
                       ffi::ResultBuffer<ffi::F32> second) {
  const auto dims = a.dimensions();
  const auto b_dims = b.dimensions();
  const int64_t channels = dims.size() == 0 ? -1 : dims.back();
  bool same = dims.size() == b_dims.size() && dims.size() > 0;
  for (size_t i = 0; same && i < dims.size(); ++i) same = dims[i] == b_dims[i];
  if (!same || static_cast<int64_t>(shift.element_count()) != channels ||
      static_cast<int64_t>(first->element_count()) != channels ||
      static_cast<int64_t>(second->element_count()) != channels) {
    auto shape = [](auto span) {
      std::ostringstream out;
      out << "(";
      for (size_t i = 0; i < span.size(); ++i) out << (i ? ", " : "") << span[i];
      out << ")";
      return out.str();
    };
    return ffi::Error(ffi::ErrorCode::kInvalidArgument,
                      "jaxconv channel sums: a " + shape(dims) + " and b " + shape(b_dims) +
                          " must have one shape (..., C), shift and both results C values; "
                          "shift has " + std::to_string(shift.element_count()));
  }
  const int64_t rows = channels == 0 ? 0 : a.element_count() / channels;
  const float* pa = a.typed_data();
  const float* pb = b.typed_data();
  const float* ps = shift.typed_data();
  const int64_t blocks = (rows + kBlock - 1) / kBlock;
  std::vector<double> partial(2 * blocks * channels);
  const bool parallel = rows * channels >= kParallelElements;
#pragma omp parallel if (parallel)
  {
    std::vector<float> s1(channels), s2(channels);
#pragma omp for schedule(static)
    for (int64_t block = 0; block < blocks; ++block) {
      std::fill(s1.begin(), s1.end(), 0.0f);
      std::fill(s2.begin(), s2.end(), 0.0f);
      const int64_t end = std::min(rows, (block + 1) * kBlock);
      for (int64_t row = block * kBlock; row < end; ++row) {
        const float* ra = pa + row * channels;
        const float* rb = pb + row * channels;
        float* t1 = s1.data();
        float* t2 = s2.data();
#pragma omp simd
        for (int64_t c = 0; c < channels; ++c) {
          t1[c] += ra[c];
          t2[c] += ra[c] * (rb[c] - ps[c]);
        }
      }
      double* out = partial.data() + 2 * block * channels;
      for (int64_t c = 0; c < channels; ++c) {
        out[c] = s1[c];
        out[channels + c] = s2[c];
      }
    }
  }
  float* o1 = first->typed_data();
  float* o2 = second->typed_data();
  std::vector<double> t1(channels, 0.0), t2(channels, 0.0);
  for (int64_t block = 0; block < blocks; ++block) {
    const double* in = partial.data() + 2 * block * channels;
    for (int64_t c = 0; c < channels; ++c) {
      t1[c] += in[c];
      t2[c] += in[channels + c];
    }
  }
  for (int64_t c = 0; c < channels; ++c) {
    o1[c] = static_cast<float>(t1[c]);
    o2[c] = static_cast<float>(t2[c]);
  }
  return ffi::Error::Success();
}

}  // namespace

XLA_FFI_DEFINE_HANDLER_SYMBOL(JaxconvChannelSums, ChannelSums,
                              ffi::Ffi::Bind()
                                  .Arg<ffi::Buffer<ffi::F32>>()
                                  .Arg<ffi::Buffer<ffi::F32>>()
                                  .Arg<ffi::Buffer<ffi::F32>>()
                                  .Ret<ffi::Buffer<ffi::F32>>()
                                  .Ret<ffi::Buffer<ffi::F32>>());
