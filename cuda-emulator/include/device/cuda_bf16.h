// Stand-in for CUDA's <cuda_bf16.h> when the emulator compiles a kernel source with g++: the
// __nv_bfloat16 type and the conversions and arithmetic kernels use, with CUDA's rounding
// (round to nearest even; NaN becomes the canonical 0x7fff). Arithmetic is done in float and
// rounded once, which is what sm_90's bf16 instructions compute for +, -, * and /.
#pragma once

#include <stdint.h>
#include <string.h>

namespace cuda_emu_bf16 {
inline float to_float(unsigned short bits) {
  uint32_t u = (uint32_t)bits << 16;
  float f;
  memcpy(&f, &u, 4);
  return f;
}
inline unsigned short from_float_rn(float f) {
  uint32_t u;
  memcpy(&u, &f, 4);
  if ((u & 0x7fffffffu) > 0x7f800000u) return 0x7fff;
  u += 0x7fffu + ((u >> 16) & 1u);
  return (unsigned short)(u >> 16);
}
inline unsigned short from_float_rz(float f) {
  uint32_t u;
  memcpy(&u, &f, 4);
  if ((u & 0x7fffffffu) > 0x7f800000u) return 0x7fff;
  return (unsigned short)(u >> 16);
}
}  // namespace cuda_emu_bf16

struct __nv_bfloat16_raw {
  unsigned short x;
};

struct __nv_bfloat16 {
  unsigned short __x;
  __nv_bfloat16() = default;
  __nv_bfloat16(__nv_bfloat16_raw r) : __x(r.x) {}
  __nv_bfloat16(float f) : __x(cuda_emu_bf16::from_float_rn(f)) {}
  __nv_bfloat16(double d) : __x(cuda_emu_bf16::from_float_rn((float)d)) {}
  __nv_bfloat16(int i) : __x(cuda_emu_bf16::from_float_rn((float)i)) {}
  operator float() const { return cuda_emu_bf16::to_float(__x); }
  operator __nv_bfloat16_raw() const { return __nv_bfloat16_raw{__x}; }
};
typedef __nv_bfloat16 nv_bfloat16;

struct __nv_bfloat162 {
  __nv_bfloat16 x, y;
};
typedef __nv_bfloat162 nv_bfloat162;

static inline float __bfloat162float(__nv_bfloat16 h) { return cuda_emu_bf16::to_float(h.__x); }
static inline __nv_bfloat16 __ushort_as_bfloat16(unsigned short x) { return __nv_bfloat16(__nv_bfloat16_raw{x}); }
static inline unsigned short __bfloat16_as_ushort(__nv_bfloat16 h) { return h.__x; }
static inline __nv_bfloat16 __float2bfloat16_rn(float f) { return __ushort_as_bfloat16(cuda_emu_bf16::from_float_rn(f)); }
static inline __nv_bfloat16 __float2bfloat16(float f) { return __float2bfloat16_rn(f); }
static inline __nv_bfloat16 __float2bfloat16_rz(float f) { return __ushort_as_bfloat16(cuda_emu_bf16::from_float_rz(f)); }
static inline __nv_bfloat16 __double2bfloat16(double d) { return __float2bfloat16_rn((float)d); }
static inline float2 __bfloat1622float2(__nv_bfloat162 v) { return float2{__bfloat162float(v.x), __bfloat162float(v.y)}; }
static inline __nv_bfloat162 __floats2bfloat162_rn(float a, float b) { return __nv_bfloat162{__float2bfloat16_rn(a), __float2bfloat16_rn(b)}; }
static inline __nv_bfloat162 __float2bfloat162_rn(float a) { return __floats2bfloat162_rn(a, a); }

#define CUDA_EMU_BF16_BINARY(OP, NAME)                                                                       \
  static inline __nv_bfloat16 operator OP(__nv_bfloat16 a, __nv_bfloat16 b) {                                \
    return __float2bfloat16_rn(__bfloat162float(a) OP __bfloat162float(b));                                   \
  }                                                                                                          \
  static inline __nv_bfloat16& operator OP##=(__nv_bfloat16& a, __nv_bfloat16 b) { return a = a OP b; }      \
  static inline __nv_bfloat16 NAME(__nv_bfloat16 a, __nv_bfloat16 b) { return a OP b; }
CUDA_EMU_BF16_BINARY(+, __hadd)
CUDA_EMU_BF16_BINARY(-, __hsub)
CUDA_EMU_BF16_BINARY(*, __hmul)
CUDA_EMU_BF16_BINARY(/, __hdiv)
#undef CUDA_EMU_BF16_BINARY
static inline __nv_bfloat16 operator-(__nv_bfloat16 a) { return __ushort_as_bfloat16((unsigned short)(a.__x ^ 0x8000u)); }
static inline __nv_bfloat16 __hneg(__nv_bfloat16 a) { return -a; }
static inline __nv_bfloat16 __hfma(__nv_bfloat16 a, __nv_bfloat16 b, __nv_bfloat16 c) {
  return __float2bfloat16_rn(__builtin_fmaf(__bfloat162float(a), __bfloat162float(b), __bfloat162float(c)));
}
#define CUDA_EMU_BF16_COMPARE(OP)                                                                                 \
  static inline bool operator OP(__nv_bfloat16 a, __nv_bfloat16 b) { return __bfloat162float(a) OP __bfloat162float(b); }
CUDA_EMU_BF16_COMPARE(==)
CUDA_EMU_BF16_COMPARE(!=)
CUDA_EMU_BF16_COMPARE(<)
CUDA_EMU_BF16_COMPARE(<=)
CUDA_EMU_BF16_COMPARE(>)
CUDA_EMU_BF16_COMPARE(>=)
#undef CUDA_EMU_BF16_COMPARE
