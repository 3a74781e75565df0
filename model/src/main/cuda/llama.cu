// The CUDA engine's kernels: the Llama forward pass around cuBLAS's matrix multiplies, the paged
// KV cache, and sampling. Compiled by nvcc at build time into a fatbin (scripts/build-kernels) that
// CudaKernels loads; every kernel is extern "C" so Java finds it by name.
//
// Activations are stored in the checkpoint's precision, T = bf16 or float, with two entry points
// per kernel (_bf16, _f32). In bf16 every stored result is rounded to bf16 where transformers
// stores a bf16 tensor, as the CPU engine does, so both engines agree with transformers.
//
// Sections: helpers, embedding and norms, rotary embedding, KV cache and attention, MLP, logits,
// sampling.

#include <cuda_bf16.h>
#include <math.h>
#include <stdint.h>

typedef __nv_bfloat16 bf16;

// ---------------------------------------------------------------------------------------------
// Helpers

__device__ __forceinline__ float load(const float* p, size_t i) { return p[i]; }
__device__ __forceinline__ float load(const bf16* p, size_t i) { return __bfloat162float(p[i]); }
__device__ __forceinline__ void store(float* p, size_t i, float v) { p[i] = v; }
__device__ __forceinline__ void store(bf16* p, size_t i, float v) { p[i] = __float2bfloat16_rn(v); }

// The value a tensor of type T holds after storing v: rounding to bf16 for bf16 models.
template <typename T> __device__ __forceinline__ float stored(float v);
template <> __device__ __forceinline__ float stored<float>(float v) { return v; }
template <> __device__ __forceinline__ float stored<bf16>(float v) { return __bfloat162float(__float2bfloat16_rn(v)); }

__device__ __forceinline__ float warp_sum(float v) {
  for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
  return v;
}

// Sum over the block; every thread gets the result. blockDim.x must be a multiple of 32. The
// barrier after the read lets a kernel call it again: no warp overwrites partial[] while another
// still reads the previous sum.
__device__ float block_sum(float v) {
  __shared__ float partial[32];
  int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, warps = blockDim.x >> 5;
  v = warp_sum(v);
  if (lane == 0) partial[warp] = v;
  __syncthreads();
  float total = 0.f;
  for (int w = 0; w < warps; w++) total += partial[w];
  __syncthreads();
  return total;
}

// ---------------------------------------------------------------------------------------------
// Embedding and norms

template <typename T>
__device__ void embedding(T* out, const T* table, const int* ids, int hidden, const int* slots, int* token_at_slot) {
  size_t row = (size_t)ids[blockIdx.x] * hidden, at = (size_t)blockIdx.x * hidden;
  for (int i = threadIdx.x; i < hidden; i += blockDim.x) out[at + i] = table[row + i];
  // The cache keeps each token's id beside its keys and values: the repetition penalty reads a
  // sequence's history from there, so the host never uploads histories.
  if (token_at_slot != nullptr && threadIdx.x == 0) token_at_slot[slots[blockIdx.x]] = ids[blockIdx.x];
}

// out = weight * stored(x * rsqrt(mean(x^2) + eps)), one block per row, as LlamaRMSNorm.
// With residual != null, x is first replaced by stored(x + residual) (the residual connection).
template <typename T>
__device__ void rmsnorm(T* out, T* x, const T* residual, const T* weight, int hidden, float eps) {
  size_t at = (size_t)blockIdx.x * hidden;
  float sum = 0.f;
  for (int i = threadIdx.x; i < hidden; i += blockDim.x) {
    float v = load(x, at + i);
    if (residual != nullptr) {
      v = stored<T>(v + load(residual, at + i));
      store(x, at + i, v);
    }
    sum += v * v;
  }
  float variance = block_sum(sum) / hidden;
  float scale = 1.0f / sqrtf(variance + eps);
  for (int i = threadIdx.x; i < hidden; i += blockDim.x) {
    store(out, at + i, load(weight, i) * stored<T>(load(x, at + i) * scale));
  }
}

// Copies the rows listed in rows[] (the last token of each sequence that samples) to out.
template <typename T>
__device__ void gather_rows(T* out, const T* in, const int* rows, int width) {
  size_t from = (size_t)rows[blockIdx.x] * width, to = (size_t)blockIdx.x * width;
  for (int i = threadIdx.x; i < width; i += blockDim.x) out[to + i] = in[from + i];
}

// ---------------------------------------------------------------------------------------------
// Rotary embedding: x * cos + rotate_half(x) * sin over the query and key heads of each row of the
// fused qkv projection. cos and sin come from a table the host computed with the CPU engine's
// Rope (rounded to bf16 for bf16 models): [position][headDim / 2].

template <typename T>
__device__ void rope(T* qkv, int qkv_width, const int* positions, const float* cos_table, const float* sin_table,
                     int rotated_heads, int head_dim) {
  int half = head_dim / 2;
  size_t row = (size_t)blockIdx.x * qkv_width;
  size_t angles = (size_t)positions[blockIdx.x] * half;
  for (int p = threadIdx.x; p < rotated_heads * half; p += blockDim.x) {
    int head = p / half, i = p % half;
    size_t a_at = row + (size_t)head * head_dim + i, b_at = a_at + half;
    float a = load(qkv, a_at), b = load(qkv, b_at);
    float c = cos_table[angles + i], s = sin_table[angles + i];
    store(qkv, a_at, stored<T>(a * c) - stored<T>(b * s));
    store(qkv, b_at, stored<T>(b * c) + stored<T>(a * s));
  }
}

// ---------------------------------------------------------------------------------------------
// Paged KV cache and attention. A layer's keys are [blocks][block_size][kv_heads][head_dim], values
// likewise; slot = block * block_size + offset.

template <typename T>
__device__ void write_kv(T* keys, T* values, const T* qkv, int qkv_width, int q_width, int kv_width, const int* slots) {
  size_t row = (size_t)blockIdx.x * qkv_width, slot = (size_t)slots[blockIdx.x] * kv_width;
  for (int i = threadIdx.x; i < kv_width; i += blockDim.x) {
    keys[slot + i] = qkv[row + q_width + i];
    values[slot + i] = qkv[row + q_width + kv_width + i];
  }
}

#define MAX_HEAD_DIM 256
#define MAX_GROUP 8

// q . k for one key, lanes taking every 32nd dimension; every lane gets the sum.
__device__ __forceinline__ float score(const float* q, const float (&k)[MAX_HEAD_DIM / 32], int lane, int head_dim, float scale) {
  float s = 0.f;
#pragma unroll
  for (int i = 0; i < MAX_HEAD_DIM / 32; i++) {
    int d = lane + 32 * i;
    if (d < head_dim) s += q[d] * k[i];
  }
  return warp_sum(s) * scale;
}

template <typename T>
__device__ __forceinline__ void load_row(float (&out)[MAX_HEAD_DIM / 32], const T* p, size_t at, int lane, int head_dim) {
#pragma unroll
  for (int i = 0; i < MAX_HEAD_DIM / 32; i++) {
    int d = lane + 32 * i;
    out[i] = d < head_dim ? load(p, at + d) : 0.f;
  }
}

// Causal grouped-query attention of one query row (blockIdx.x) for the query heads that share KV
// head blockIdx.y, over positions 0..positions[row] of its sequence, read through the sequence's
// block table: each key and value is read for the whole group at once. Warps take every warps-th
// key. The softmax is the CPU engine's (CpuLlama.Attention) and torch's in bf16: numerators
// exp(s - max) against each head's maximum over all positions, so a first pass finds the maxima
// and a second recomputes the scores; the numerators are summed in f32, rounded to T before they
// weight the values (f32 sums), and the weighted sum is divided by their sum at the end.
// Dynamic shared memory: group * head_dim * (1 + warps) + 2 * warps * group floats.
template <typename T>
__device__ void attention(T* out, const T* qkv, int qkv_width, const T* keys, const T* values,
                          const int* block_tables, int max_blocks, const int* row_sequence, const int* positions,
                          int heads, int kv_heads, int head_dim, int block_size, float scale) {
  extern __shared__ float shared[];
  int row = blockIdx.x, kv_head = blockIdx.y;
  int group = heads / kv_heads;
  int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, warps = blockDim.x >> 5;
  int kv_width = kv_heads * head_dim;
  int last = positions[row];
  const int* table = block_tables + (size_t)row_sequence[row] * max_blocks;
  float* q = shared;                                      // [group][head_dim], the group's query heads are consecutive
  float* warp_acc = q + group * head_dim;                 // [warps][group][head_dim]
  float* warp_max = warp_acc + warps * group * head_dim;  // [warps][group]
  float* warp_sum_exp = warp_max + warps * group;         // [warps][group]

  size_t q_at = (size_t)row * qkv_width + (size_t)kv_head * group * head_dim;
  for (int i = threadIdx.x; i < group * head_dim; i += blockDim.x) q[i] = load(qkv, q_at + i);
  __syncthreads();

  // Pass 1: each head's largest score.
  float m[MAX_GROUP];
#pragma unroll
  for (int g = 0; g < MAX_GROUP; g++) m[g] = -INFINITY;
  for (int j = warp; j <= last; j += warps) {
    size_t at = ((size_t)table[j / block_size] * block_size + j % block_size) * kv_width + (size_t)kv_head * head_dim;
    float k[MAX_HEAD_DIM / 32];
    load_row(k, keys, at, lane, head_dim);
#pragma unroll
    for (int g = 0; g < MAX_GROUP; g++) {
      if (g < group) m[g] = fmaxf(m[g], score(q + g * head_dim, k, lane, head_dim, scale));
    }
  }
  if (lane == 0) {
    for (int g = 0; g < group; g++) warp_max[warp * group + g] = m[g];
  }
  __syncthreads();
#pragma unroll
  for (int g = 0; g < MAX_GROUP; g++) {
    if (g < group) {
      m[g] = -INFINITY;
      for (int w = 0; w < warps; w++) m[g] = fmaxf(m[g], warp_max[w * group + g]);
    }
  }

  // Pass 2: the numerators, their sum, and the values they weight.
  float acc[MAX_GROUP][MAX_HEAD_DIM / 32];
  float l[MAX_GROUP];
#pragma unroll
  for (int g = 0; g < MAX_GROUP; g++) {
    l[g] = 0.f;
#pragma unroll
    for (int i = 0; i < MAX_HEAD_DIM / 32; i++) acc[g][i] = 0.f;
  }
  for (int j = warp; j <= last; j += warps) {
    size_t at = ((size_t)table[j / block_size] * block_size + j % block_size) * kv_width + (size_t)kv_head * head_dim;
    float k[MAX_HEAD_DIM / 32], v[MAX_HEAD_DIM / 32];
    load_row(k, keys, at, lane, head_dim);
    load_row(v, values, at, lane, head_dim);
#pragma unroll
    for (int g = 0; g < MAX_GROUP; g++) {
      if (g < group) {
        float e = expf(score(q + g * head_dim, k, lane, head_dim, scale) - m[g]);
        l[g] += e;
        float p = stored<T>(e);
#pragma unroll
        for (int i = 0; i < MAX_HEAD_DIM / 32; i++) acc[g][i] += p * v[i];
      }
    }
  }

#pragma unroll
  for (int g = 0; g < MAX_GROUP; g++) {
    if (g < group) {
#pragma unroll
      for (int i = 0; i < MAX_HEAD_DIM / 32; i++) {
        int d = lane + 32 * i;
        if (d < head_dim) warp_acc[(warp * group + g) * head_dim + d] = acc[g][i];
      }
      if (lane == 0) warp_sum_exp[warp * group + g] = l[g];
    }
  }
  __syncthreads();
  for (int i = threadIdx.x; i < group * head_dim; i += blockDim.x) {
    int g = i / head_dim, d = i % head_dim;
    float sum = 0.f, o = 0.f;
    for (int w = 0; w < warps; w++) {
      sum += warp_sum_exp[w * group + g];
      o += warp_acc[(w * group + g) * head_dim + d];
    }
    store(out, (size_t)row * heads * head_dim + ((size_t)kv_head * group + g) * head_dim + d, o / sum);
  }
}

// ---------------------------------------------------------------------------------------------
// MLP: out = stored(stored(silu(gate)) * up) from the fused [rows][2 * inter] gate/up projection.

template <typename T>
__device__ void silu_multiply(T* out, const T* gate_up, int inter) {
  size_t row = (size_t)blockIdx.x * 2 * inter, at = (size_t)blockIdx.x * inter;
  for (int i = threadIdx.x; i < inter; i += blockDim.x) {
    float g = load(gate_up, row + i);
    float silu = stored<T>(g / (1.0f + expf(-g)));
    store(out, at + i, silu * load(gate_up, row + inter + i));
  }
}

// Logits as f32 (transformers computes them in the model's precision and then calls .float()).
template <typename T>
__device__ void to_f32(float* out, const T* in, size_t n) {
  for (size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += (size_t)gridDim.x * blockDim.x) out[i] = load(in, i);
}

// ---------------------------------------------------------------------------------------------
// Entry points, one per kernel and activation type.

#define FOR_BOTH_TYPES(DECLARE) DECLARE(bf16, bf16) DECLARE(float, f32)

#define ENTRY_POINTS(T, SUFFIX)                                                                              \
  extern "C" __global__ void embedding_##SUFFIX(T* out, const T* table, const int* ids, int hidden,          \
                                                const int* slots, int* token_at_slot) {                      \
    embedding<T>(out, table, ids, hidden, slots, token_at_slot);                                             \
  }                                                                                                          \
  extern "C" __global__ void rmsnorm_##SUFFIX(T* out, T* x, const T* residual, const T* weight, int hidden,   \
                                              float eps) {                                                   \
    rmsnorm<T>(out, x, residual, weight, hidden, eps);                                                       \
  }                                                                                                          \
  extern "C" __global__ void gather_rows_##SUFFIX(T* out, const T* in, const int* rows, int width) {          \
    gather_rows<T>(out, in, rows, width);                                                                    \
  }                                                                                                          \
  extern "C" __global__ void rope_##SUFFIX(T* qkv, int qkv_width, const int* positions, const float* cos_table, \
                                           const float* sin_table, int rotated_heads, int head_dim) {         \
    rope<T>(qkv, qkv_width, positions, cos_table, sin_table, rotated_heads, head_dim);                        \
  }                                                                                                          \
  extern "C" __global__ void write_kv_##SUFFIX(T* keys, T* values, const T* qkv, int qkv_width, int q_width,  \
                                               int kv_width, const int* slots) {                             \
    write_kv<T>(keys, values, qkv, qkv_width, q_width, kv_width, slots);                                     \
  }                                                                                                          \
  extern "C" __global__ void attention_##SUFFIX(T* out, const T* qkv, int qkv_width, const T* keys,           \
                                                const T* values, const int* block_tables, int max_blocks,    \
                                                const int* row_sequence, const int* positions, int heads,    \
                                                int kv_heads, int head_dim, int block_size, float scale) {   \
    attention<T>(out, qkv, qkv_width, keys, values, block_tables, max_blocks, row_sequence, positions, heads, \
                 kv_heads, head_dim, block_size, scale);                                                     \
  }                                                                                                          \
  extern "C" __global__ void silu_multiply_##SUFFIX(T* out, const T* gate_up, int inter) {                    \
    silu_multiply<T>(out, gate_up, inter);                                                                   \
  }                                                                                                          \
  extern "C" __global__ void to_f32_##SUFFIX(float* out, const T* in, long long n) { to_f32<T>(out, in, (size_t)n); }

FOR_BOTH_TYPES(ENTRY_POINTS)

// ---------------------------------------------------------------------------------------------
// Sampling, with the CPU engine's semantics (dev.beamllama.model.sampling.Sampler) bit for bit:
// the parallel parts (penalty, temperature, the k-th largest value, argmax) are exact; the parts
// that accumulate (top-p's softmax and cumulative sum, the final softmax, the inverse-CDF draw)
// run in one thread over the surviving candidates in the same order as the CPU's loops.

// Repetition penalty over each sampled row's sequence so far, once per distinct id. The history is
// read from the cache's token ids (token_at_slot, written by embedding) through the sequence's block
// table: tokens 0 .. positions[row] of the row's sequence. The ids seen are marked in a bitmap of the
// vocabulary in dynamic shared memory ((vocab + 31) / 32 words), then each marked score is penalised
// once. One block per sampled row (sample r is the step's row logit_rows[r]).
extern "C" __global__ void repetition_penalty(float* logits, int vocab, const int* token_at_slot, const int* block_tables,
                                              int max_blocks, int block_size, const int* row_sequence, const int* positions,
                                              const int* logit_rows, const float* penalties) {
  // Its own name: nvcc warns when an extern "C" kernel and a template share an extern __shared__ name.
  extern __shared__ unsigned int seen[];
  int sample = blockIdx.x;
  float penalty = penalties[sample];
  if (penalty == 1.0f) return;
  int words = (vocab + 31) / 32;
  for (int w = threadIdx.x; w < words; w += blockDim.x) seen[w] = 0u;
  __syncthreads();
  int row = logit_rows[sample];
  const int* table = block_tables + (size_t)row_sequence[row] * max_blocks;
  int length = positions[row] + 1;
  for (int i = threadIdx.x; i < length; i += blockDim.x) {
    int id = token_at_slot[table[i / block_size] * block_size + i % block_size];
    atomicOr(&seen[id / 32], 1u << (id % 32));
  }
  __syncthreads();
  float* scores = logits + (size_t)sample * vocab;
  for (int w = threadIdx.x; w < words; w += blockDim.x) {
    for (unsigned int bits = seen[w]; bits != 0u; bits &= bits - 1u) {
      int id = w * 32 + __ffs(bits) - 1;
      float s = scores[id];
      scores[id] = s < 0 ? s * penalty : s / penalty;
    }
  }
}

// A float's order as an unsigned integer's (ascending). -0.0 takes +0.0's key: they compare equal,
// and top-k keeps every score equal to the k-th largest, as the CPU's float comparisons do.
__device__ __forceinline__ unsigned int order_key(float v) {
  unsigned int bits = v == 0.f ? 0u : __float_as_uint(v);
  return (bits & 0x80000000u) ? ~bits : (bits | 0x80000000u);
}

// The signed-int key the CPU's top-p sorts by (LogitsProcessors.sortableBits).
__device__ __forceinline__ int sortable_bits(float v) {
  int bits = __float_as_int(v);
  return bits >= 0 ? bits : bits ^ 0x7fffffff;
}

#define SAMPLE_THREADS 1024
#define MAX_CANDIDATES 1024

// One block of SAMPLE_THREADS per row. Per row: greedy (argmax, first index on ties) or
// temperature, top-k (k in [1, vocab)), top-p, softmax and the inverse-CDF draw with uniforms[row].
// Writes the token, or -2 when the row has more than MAX_CANDIDATES tokens tied into its top-k, for
// the host to sample instead. Rows with top-k off are sampled by the host and not launched here.
extern "C" __global__ void sample(int* tokens, const float* logits, int vocab, const int* greedy, const float* temperatures,
                                  const int* top_ks, const float* top_ps, const double* uniforms) {
  __shared__ unsigned int histogram[256];
  __shared__ unsigned int prefix, prefix_mask;
  __shared__ int remaining;
  __shared__ int counts[SAMPLE_THREADS];
  __shared__ float candidate_score[MAX_CANDIDATES];
  __shared__ int candidate_id[MAX_CANDIDATES];
  __shared__ short order[MAX_CANDIDATES];
  __shared__ float best_value[32];
  __shared__ int best_index[32];

  int row = blockIdx.x;
  const float* scores = logits + (size_t)row * vocab;
  int t = threadIdx.x;

  if (greedy[row]) {
    float best = -INFINITY;
    int index = 0x7fffffff;
    for (int i = t; i < vocab; i += blockDim.x) {
      float v = scores[i];
      if (v > best || (v == best && i < index)) { best = v; index = i; }
    }
    for (int o = 16; o > 0; o >>= 1) {
      float ov = __shfl_xor_sync(0xffffffffu, best, o);
      int oi = __shfl_xor_sync(0xffffffffu, index, o);
      if (ov > best || (ov == best && oi < index)) { best = ov; index = oi; }
    }
    if ((t & 31) == 0) { best_value[t >> 5] = best; best_index[t >> 5] = index; }
    __syncthreads();
    if (t == 0) {
      float b = best_value[0];
      int bi = best_index[0];
      for (int w = 1; w < (int)(blockDim.x >> 5); w++) {
        if (best_value[w] > b || (best_value[w] == b && best_index[w] < bi)) { b = best_value[w]; bi = best_index[w]; }
      }
      tokens[row] = bi == 0x7fffffff ? 0 : bi;
    }
    return;
  }

  float temperature = temperatures[row];
  int k = top_ks[row];
  // The k-th largest tempered score, by radix select on its order key, 8 bits at a time.
  if (t == 0) { prefix = 0; prefix_mask = 0; remaining = k; }
  for (int shift = 24; shift >= 0; shift -= 8) {
    for (int b = t; b < 256; b += blockDim.x) histogram[b] = 0;
    __syncthreads();
    unsigned int p = prefix, mask = prefix_mask;
    for (int i = t; i < vocab; i += blockDim.x) {
      float v = temperature != 1.0f ? scores[i] / temperature : scores[i];
      unsigned int key = order_key(v);
      if ((key & mask) == p) atomicAdd(&histogram[(key >> shift) & 0xff], 1u);
    }
    __syncthreads();
    if (t == 0) {
      int need = remaining;
      for (int b = 255; b >= 0; b--) {
        if ((int)histogram[b] >= need) {
          prefix = p | ((unsigned int)b << shift);
          prefix_mask = mask | (0xffu << shift);
          remaining = need;
          break;
        }
        need -= histogram[b];
      }
    }
    __syncthreads();
  }
  unsigned int threshold = prefix;  // the k-th largest value's key; keep every score at least it

  // Candidates in ascending id order: each thread owns a contiguous range of ids.
  int per_thread = (vocab + blockDim.x - 1) / blockDim.x;
  int begin = min(vocab, t * per_thread), end = min(vocab, begin + per_thread);
  int mine = 0;
  for (int i = begin; i < end; i++) {
    float v = temperature != 1.0f ? scores[i] / temperature : scores[i];
    if (order_key(v) >= threshold) mine++;
  }
  counts[t] = mine;
  __syncthreads();
  if (t == 0) {
    int total = 0;
    for (int i = 0; i < (int)blockDim.x; i++) { int c = counts[i]; counts[i] = total; total += c; }
    remaining = total;
  }
  __syncthreads();
  int total = remaining;
  if (total > MAX_CANDIDATES) {
    if (t == 0) tokens[row] = -2;
    return;
  }
  int at = counts[t];
  for (int i = begin; i < end; i++) {
    float v = temperature != 1.0f ? scores[i] / temperature : scores[i];
    if (order_key(v) >= threshold) { candidate_score[at] = v; candidate_id[at] = i; at++; }
  }
  __syncthreads();
  if (t != 0) return;

  // Top-p (LogitsProcessors.topP): ascending by (sortable bits, id), softmax, cumulative sum in
  // double, drop while the cumulative probability is at most 1 - p, always keeping the last.
  float p = top_ps[row];
  if (p < 1.0f && total > 1) {
    // Insertion sort of candidate positions by (score key, id): at most MAX_CANDIDATES, usually k.
    for (int i = 0; i < total; i++) {
      long long key = ((long long)sortable_bits(candidate_score[i]) << 32) | (unsigned int)candidate_id[i];
      int j = i;
      while (j > 0) {
        int o = order[j - 1];
        long long other = ((long long)sortable_bits(candidate_score[o]) << 32) | (unsigned int)candidate_id[o];
        if (other <= key) break;
        order[j] = order[j - 1];
        j--;
      }
      order[j] = (short)i;
    }
    float max = candidate_score[order[total - 1]];
    float sum = 0.f;
    for (int j = 0; j < total; j++) sum += (float)exp((double)(candidate_score[order[j]] - max));
    float cut = (float)(1.0 - (double)p);
    double cumulative = 0;
    for (int j = 0; j < total - 1; j++) {
      float e = (float)exp((double)(candidate_score[order[j]] - max));
      cumulative += e / sum;
      if ((float)cumulative <= cut) candidate_score[order[j]] = -INFINITY;
    }
  }

  // Softmax over the survivors in id order, then the inverse CDF (Sampler.draw).
  float max = -INFINITY;
  for (int i = 0; i < total; i++) max = fmaxf(max, candidate_score[i]);
  float sum = 0.f;
  for (int i = 0; i < total; i++) {
    float s = candidate_score[i];
    float e = s == -INFINITY ? 0.f : (float)exp((double)(s - max));
    candidate_score[i] = e;
    sum += e;
  }
  double all = 0;
  int last_possible = -1;
  for (int i = 0; i < total; i++) {
    float prob = candidate_score[i] / sum;
    candidate_score[i] = prob;
    if (prob > 0) { all += prob; last_possible = candidate_id[i]; }
  }
  double target = uniforms[row] * all;
  double cumulative = 0;
  for (int i = 0; i < total; i++) {
    float prob = candidate_score[i];
    if (prob > 0) {
      cumulative += prob;
      if (cumulative > target) { tokens[row] = candidate_id[i]; return; }
    }
  }
  tokens[row] = last_possible;
}
