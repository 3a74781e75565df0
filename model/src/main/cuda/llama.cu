// The CUDA engine's kernels: the Llama forward pass around cuBLAS's matrix multiplies, the paged
// KV cache, and sampling. Compiled by nvcc at build time into a fatbin (scripts/build-kernels) that
// CudaKernels loads; every kernel is extern "C" so Java finds it by name.
//
// Activations are stored in the checkpoint's precision, T = bf16 or float, with two entry points
// per kernel (_bf16, _f32). In bf16 every stored result is rounded to bf16 where transformers
// stores a bf16 tensor, as the CPU engine does, so both engines agree with transformers.
//
// Sections: helpers, embedding and norms, rotary embedding and KV cache, attention, MLP, logits,
// sampling.

#include <cuda_bf16.h>
#include <math.h>
#include <mma.h>
#include <stdint.h>
#include <string.h>

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

// An id of -1 - i is the token the previous step's sample i drew, read here: the host lays out a
// step before it learns the previous one's tokens (the engine overlaps steps).
template <typename T>
__device__ void embedding(T* out, const T* table, const int* ids, const int* previous, int hidden, const int* slots, int* token_at_slot) {
  int id = ids[blockIdx.x];
  if (id < 0) id = previous[-1 - id];
  size_t row = (size_t)id * hidden, at = (size_t)blockIdx.x * hidden;
  for (int i = threadIdx.x; i < hidden; i += blockDim.x) out[at + i] = table[row + i];
  // The cache keeps each token's id beside its keys and values: the repetition penalty reads a
  // sequence's history from there, so the host never uploads histories.
  if (token_at_slot != nullptr && threadIdx.x == 0) token_at_slot[slots[blockIdx.x]] = id;
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
// Rotary embedding and the paged KV cache. A layer's keys are [blocks][block_size][kv_heads][head_dim],
// values likewise; slot = block * block_size + offset. A step's sequence s finds its blocks at
// block_tables[table_start[s]...]: the tables are packed, each as long as its sequence needs.
//
// Per row of the fused qkv projection: x * cos + rotate_half(x) * sin over its query and key heads,
// in place, then its rotated keys and its values into the cache at the row's slot. cos and sin come
// from a table the host computed with the CPU engine's Rope (rounded to bf16 for bf16 models):
// [position][head_dim / 2]. One kernel for both, as a step rotates every key it writes.

template <typename T>
__device__ void rope_write_kv(T* qkv, int qkv_width, const int* positions, const float* cos_table, const float* sin_table,
                              int heads, int kv_heads, int head_dim, T* keys, T* values, const int* slots) {
  int half = head_dim / 2;
  int q_width = heads * head_dim, kv_width = kv_heads * head_dim;
  size_t row = (size_t)blockIdx.x * qkv_width;
  size_t angles = (size_t)positions[blockIdx.x] * half;
  size_t slot = (size_t)slots[blockIdx.x] * kv_width;
  for (int p = threadIdx.x; p < (heads + kv_heads) * half; p += blockDim.x) {
    int head = p / half, i = p % half;
    size_t a_at = row + (size_t)head * head_dim + i, b_at = a_at + half;
    float a = load(qkv, a_at), b = load(qkv, b_at);
    float c = cos_table[angles + i], s = sin_table[angles + i];
    store(qkv, a_at, stored<T>(a * c) - stored<T>(b * s));
    store(qkv, b_at, stored<T>(b * c) + stored<T>(a * s));
    if (head >= heads) {
      size_t k_at = slot + (size_t)(head - heads) * head_dim + i;
      keys[k_at] = qkv[a_at];
      keys[k_at + half] = qkv[b_at];
    }
  }
  for (int i = threadIdx.x; i < kv_width; i += blockDim.x) values[slot + i] = qkv[row + q_width + kv_width + i];
}

// ---------------------------------------------------------------------------------------------
// Attention of one query row over positions 0..positions[row] of its sequence, split into work
// items of ATTENTION_CHUNK consecutive positions, three kernels per layer:
//   attention_scores  q . k * scale of every (query head, key) of an item, and the item's maximum
//                     per head (each key is read once for its group of query heads);
//   attention_values  the item's numerators exp(s - max) against the row's maximum over all its
//                     items, their sum, and the values they weight (each value read once);
//   attention_combine per head, the items' sums added in item order, divided once.
// The softmax is the CPU engine's (CpuLlama.Attention) and torch's in bf16: numerators against
// each head's maximum over all positions, summed in f32, rounded to T before they weight the values.
// A row's result depends only on its own query, keys and values: which items a block takes, how
// many rows share the launch and how the host splits the step into launches change no bit. That is
// what keeps a sequence's tokens independent of the batch, the prefill chunking and preemption.
//
// Items: the rows of a launch are [row_begin, row_end) of the step; row r owns items
// chunk_start[r] - chunk_start[row_begin] + c for its chunks c (chunk_start is the step's prefix sum
// of each row's chunk count). A block takes items blockIdx.x, blockIdx.x + gridDim.x, ... for KV head
// blockIdx.y, so a launch's grid does not depend on the step's context lengths (CUDA graphs replay it).
//
// Two implementations of the scores and values kernels, by precision: bf16 on the tensor cores
// (below, "Tensor-core attention"), f32 on the CUDA cores (there is no f32 tensor-core input that
// keeps f32's bits). Every row of a model takes the same one, so the invariance above holds.
//
// On the CUDA cores, keys and values are read 16 bytes per lane: a key's head_dim values are spread
// over `lanes` consecutive lanes (per_lane values each), and a warp takes 32 / lanes keys at once.

#define ATTENTION_CHUNK 64
#define MAX_GROUP 8
#define MAX_PER_LANE 8

struct KeyLanes {
  int lanes, per_lane, keys_per_warp, sub, part;
};

// head_dim is a power of two with 16 / sizeof(T) <= head_dim <= 256 (the host checks).
template <typename T>
__device__ __forceinline__ KeyLanes key_lanes(int head_dim, int lane) {
  int lanes = min(32, head_dim / (int)(16 / sizeof(T)));
  return KeyLanes{lanes, head_dim / lanes, 32 / lanes, lane / lanes, lane % lanes};
}

// per_lane consecutive values from p + at (16-byte aligned), as floats; the rest of out is 0.
template <typename T>
__device__ __forceinline__ void load_lane(float (&out)[MAX_PER_LANE], const T* p, size_t at, int per_lane) {
  constexpr int V = 16 / sizeof(T);
#pragma unroll
  for (int v = 0; v < MAX_PER_LANE / V; v++) {
    if (v * V < per_lane) {
      uint4 raw = *reinterpret_cast<const uint4*>(p + at + v * V);
      T parts[V];
      memcpy(parts, &raw, 16);
#pragma unroll
      for (int i = 0; i < V; i++) out[v * V + i] = load(parts, i);
    } else {
#pragma unroll
      for (int i = 0; i < V; i++) out[v * V + i] = 0.f;
    }
  }
}

// The row of the launch's rows that owns `item` (every row owns at least one).
__device__ __forceinline__ int item_row(const int* chunk_start, int row_begin, int row_end, int item) {
  int base = chunk_start[row_begin];
  int lo = row_begin, hi = row_end - 1;
  while (lo < hi) {
    int mid = (lo + hi + 1) / 2;
    if (chunk_start[mid] - base <= item) lo = mid;
    else hi = mid - 1;
  }
  return lo;
}

// Where key/value j of a sequence is in a layer's cache, at KV head 0.
__device__ __forceinline__ size_t kv_at(const int* table, int j, int block_size, int kv_width) {
  return ((size_t)table[j / block_size] * block_size + j % block_size) * kv_width;
}

// scores: [item][heads][ATTENTION_CHUNK]; maxima: [item][heads].
template <typename T>
__device__ void attention_scores_simt(float* scores, float* maxima, const T* qkv, int qkv_width, const T* keys, const int* block_tables,
                                 const int* table_start, const int* row_sequence, const int* positions, const int* chunk_start, int row_begin,
                                 int row_end, int heads, int kv_heads, int head_dim, int block_size, float scale) {
  __shared__ float warp_max[32][MAX_GROUP];
  int kv_head = blockIdx.y, group = heads / kv_heads;
  int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, warps = blockDim.x >> 5;
  KeyLanes kl = key_lanes<T>(head_dim, lane);
  int kv_width = kv_heads * head_dim;
  int base = chunk_start[row_begin], items = chunk_start[row_end] - base;
  for (int item = blockIdx.x; item < items; item += gridDim.x) {
    int row = item_row(chunk_start, row_begin, row_end, item);
    int first = (item - (chunk_start[row] - base)) * ATTENTION_CHUNK;
    int end = min(positions[row] + 1, first + ATTENTION_CHUNK);
    const int* table = block_tables + table_start[row_sequence[row]];
    size_t q_at = (size_t)row * qkv_width + (size_t)kv_head * group * head_dim + kl.part * kl.per_lane;
    float q[MAX_GROUP][MAX_PER_LANE], m[MAX_GROUP];
#pragma unroll
    for (int g = 0; g < MAX_GROUP; g++) {
      m[g] = -INFINITY;
#pragma unroll
      for (int i = 0; i < MAX_PER_LANE; i++) q[g][i] = g < group && i < kl.per_lane ? load(qkv, q_at + (size_t)g * head_dim + i) : 0.f;
    }
    // The loop bound is the warp's, so every lane takes part in the shuffles.
    for (int j0 = first + warp * kl.keys_per_warp; j0 < end; j0 += warps * kl.keys_per_warp) {
      int j = j0 + kl.sub;
      bool valid = j < end;
      float k[MAX_PER_LANE] = {};
      if (valid) load_lane(k, keys, kv_at(table, j, block_size, kv_width) + (size_t)kv_head * head_dim + kl.part * kl.per_lane, kl.per_lane);
#pragma unroll
      for (int g = 0; g < MAX_GROUP; g++) {
        if (g < group) {
          float dot = 0.f;
#pragma unroll
          for (int i = 0; i < MAX_PER_LANE; i++) dot += q[g][i] * k[i];
          for (int o = kl.lanes / 2; o > 0; o >>= 1) dot += __shfl_xor_sync(0xffffffffu, dot, o);
          float s = dot * scale;
          if (valid) {
            m[g] = fmaxf(m[g], s);
            if (kl.part == 0) scores[((size_t)item * heads + kv_head * group + g) * ATTENTION_CHUNK + (j - first)] = s;
          }
        }
      }
    }
#pragma unroll
    for (int g = 0; g < MAX_GROUP; g++) {
      if (g < group) {
        for (int o = 16; o > 0; o >>= 1) m[g] = fmaxf(m[g], __shfl_xor_sync(0xffffffffu, m[g], o));
        if (lane == 0) warp_max[warp][g] = m[g];
      }
    }
    __syncthreads();
    if ((int)threadIdx.x < group) {
      float mx = -INFINITY;
      for (int w = 0; w < warps; w++) mx = fmaxf(mx, warp_max[w][threadIdx.x]);
      maxima[(size_t)item * heads + kv_head * group + threadIdx.x] = mx;
    }
    __syncthreads();
  }
}

// partials: [item][heads][head_dim + 1], the weighted values' sums and then the numerators' sum.
// Dynamic shared memory: warps * group * (head_dim + 1) floats.
template <typename T>
__device__ void attention_values_simt(float* partials, const float* scores, const float* maxima, const T* values, const int* block_tables,
                                 const int* table_start, const int* row_sequence, const int* positions, const int* chunk_start, int row_begin,
                                 int row_end, int heads, int kv_heads, int head_dim, int block_size) {
  extern __shared__ float shared[];
  __shared__ float row_max[MAX_GROUP];
  int kv_head = blockIdx.y, group = heads / kv_heads;
  int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, warps = blockDim.x >> 5;
  KeyLanes kl = key_lanes<T>(head_dim, lane);
  int kv_width = kv_heads * head_dim;
  float* warp_acc = shared;                                // [warps][group][head_dim]
  float* warp_l = warp_acc + warps * group * head_dim;     // [warps][group]
  int base = chunk_start[row_begin], items = chunk_start[row_end] - base;
  for (int item = blockIdx.x; item < items; item += gridDim.x) {
    int row = item_row(chunk_start, row_begin, row_end, item);
    int row_first_item = chunk_start[row] - base, row_items = chunk_start[row + 1] - chunk_start[row];
    int first = (item - row_first_item) * ATTENTION_CHUNK;
    int end = min(positions[row] + 1, first + ATTENTION_CHUNK);
    const int* table = block_tables + table_start[row_sequence[row]];
    // Each head's maximum over the row's items (a maximum is the same in any order).
    for (int g = warp; g < group; g += warps) {
      float mx = -INFINITY;
      for (int i = lane; i < row_items; i += 32) mx = fmaxf(mx, maxima[(size_t)(row_first_item + i) * heads + kv_head * group + g]);
      for (int o = 16; o > 0; o >>= 1) mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, o));
      if (lane == 0) row_max[g] = mx;
    }
    __syncthreads();
    float acc[MAX_GROUP][MAX_PER_LANE], l[MAX_GROUP];
#pragma unroll
    for (int g = 0; g < MAX_GROUP; g++) {
      l[g] = 0.f;
#pragma unroll
      for (int i = 0; i < MAX_PER_LANE; i++) acc[g][i] = 0.f;
    }
    for (int j0 = first + warp * kl.keys_per_warp; j0 < end; j0 += warps * kl.keys_per_warp) {
      int j = j0 + kl.sub;
      if (j >= end) continue;  // no shuffles in this loop
      float v[MAX_PER_LANE];
      load_lane(v, values, kv_at(table, j, block_size, kv_width) + (size_t)kv_head * head_dim + kl.part * kl.per_lane, kl.per_lane);
#pragma unroll
      for (int g = 0; g < MAX_GROUP; g++) {
        if (g < group) {
          float e = expf(scores[((size_t)item * heads + kv_head * group + g) * ATTENTION_CHUNK + (j - first)] - row_max[g]);
          l[g] += e;
          float p = stored<T>(e);
#pragma unroll
          for (int i = 0; i < MAX_PER_LANE; i++) acc[g][i] += p * v[i];
        }
      }
    }
    // The warp's key slots, added pairwise (lanes holding the same dimensions differ in the bits
    // above `lanes`), then the warps in order.
    for (int o = kl.lanes; o < 32; o <<= 1) {
#pragma unroll
      for (int g = 0; g < MAX_GROUP; g++) {
        if (g < group) {
          l[g] += __shfl_xor_sync(0xffffffffu, l[g], o);
#pragma unroll
          for (int i = 0; i < MAX_PER_LANE; i++) acc[g][i] += __shfl_xor_sync(0xffffffffu, acc[g][i], o);
        }
      }
    }
    if (kl.sub == 0) {
#pragma unroll
      for (int g = 0; g < MAX_GROUP; g++) {
        if (g < group) {
#pragma unroll
          for (int i = 0; i < MAX_PER_LANE; i++) {
            if (i < kl.per_lane) warp_acc[(warp * group + g) * head_dim + kl.part * kl.per_lane + i] = acc[g][i];
          }
          if (kl.part == 0) warp_l[warp * group + g] = l[g];
        }
      }
    }
    __syncthreads();
    for (int t = threadIdx.x; t < group * (head_dim + 1); t += blockDim.x) {
      int g = t / (head_dim + 1), d = t % (head_dim + 1);
      float sum = 0.f;
      for (int w = 0; w < warps; w++) sum += d < head_dim ? warp_acc[(w * group + g) * head_dim + d] : warp_l[w * group + g];
      partials[((size_t)item * heads + kv_head * group + g) * (head_dim + 1) + d] = sum;
    }
    __syncthreads();
  }
}

// One block per (row of the launch, query head): the row's items added in order, divided once.
template <typename T>
__device__ void attention_combine(T* out, const float* partials, const int* chunk_start, int row_begin, int heads, int head_dim) {
  int row = row_begin + blockIdx.x, head = blockIdx.y;
  int first = chunk_start[row] - chunk_start[row_begin], count = chunk_start[row + 1] - chunk_start[row];
  for (int d = threadIdx.x; d < head_dim; d += blockDim.x) {
    float o = 0.f, l = 0.f;
    for (int c = 0; c < count; c++) {
      const float* p = partials + ((size_t)(first + c) * heads + head) * (head_dim + 1);
      o += p[d];
      l += p[head_dim];
    }
    store(out, (size_t)row * heads * head_dim + (size_t)head * head_dim + d, o / l);
  }
}

// ---------------------------------------------------------------------------------------------
// Tensor-core attention (bf16). The same items, scratch and softmax as above, with the dot products
// and the weighted sums in nvcuda::wmma tiles of 16 x 16 x 16, f32 accumulators.
//
// A tile is up to tile_positions(group) rows of one sequence at consecutive positions inside one
// aligned window of that many positions; its rows' query heads are the 16 rows of the A operand,
// (position, head of the group) in order, so a chunk's keys and values are read once for the tile
// (a decode row is a tile of one). The window divides ATTENTION_CHUNK, so a tile's rows have the
// same chunks: the block that takes the tile's last row's item c computes chunk c for every row of
// the tile, and the other rows' items are skipped.
//
// A row's bits do not depend on its tile: an element of a matrix product depends only on its own
// row of A and column of B, and what a row does not see contributes exact zeros (a zero weight
// times a value, or a key never read). Keys and values past the tile's last position are zeros in
// shared memory, never the cache's unwritten slots. (A value that overflowed to inf or NaN at a
// later position of the tile would reach the earlier rows as NaN, where alone they stay finite;
// such a model's output is NaN from that position on either way.)

#define TC_ROWS 16  // rows of a wmma tile: (position, query head of the group) pairs
#define TC_PAD 8    // bf16 elements after each shared row, against bank conflicts
#define TC_MAX_N_PER_WARP 4  // head_dim / 16 output tiles over a block's warps: 256 / 16 / 4

// Positions per tile: the largest power of two p with p * group <= TC_ROWS (group <= 16, host-checked).
__device__ __forceinline__ int tile_positions(int group) {
  int p = TC_ROWS / group;
  while (p & (p - 1)) p &= p - 1;
  return p;
}

// Whether rows a and a + 1 of the step are in one tile.
__device__ __forceinline__ bool same_tile(const int* row_sequence, const int* positions, int a, int window) {
  return row_sequence[a + 1] == row_sequence[a] && positions[a + 1] == positions[a] + 1 && positions[a + 1] / window == positions[a] / window;
}

// Where one block works: a tile's rows, their query rows in the A operand, and one chunk of keys.
struct TileItem {
  int first_row, used, chunk, first, end;  // end: past the last key any row of the tile sees
};

// The tile item of `item` when its row is the last of a tile (returns false for the others, whose
// tile's last row computes them).
__device__ __forceinline__ bool tile_item(TileItem& t, const int* chunk_start, const int* row_sequence, const int* positions,
                                          int row_begin, int row_end, int item, int group) {
  int window = tile_positions(group);
  int last = item_row(chunk_start, row_begin, row_end, item);
  if (last + 1 < row_end && same_tile(row_sequence, positions, last, window)) return false;
  int first_row = last;
  while (first_row > row_begin && same_tile(row_sequence, positions, first_row - 1, window)) first_row--;
  t.first_row = first_row;
  t.used = (last - first_row + 1) * group;
  t.chunk = item - (chunk_start[last] - chunk_start[row_begin]);
  t.first = t.chunk * ATTENTION_CHUNK;
  t.end = min(positions[last] + 1, t.first + ATTENTION_CHUNK);
  return true;
}

// Item index (within the launch) and head of A row m of a tile.
__device__ __forceinline__ size_t tile_slot(const TileItem& t, const int* chunk_start, int row_begin, int m, int group, int kv_head,
                                            int heads) {
  int row = t.first_row + m / group;
  return (size_t)(chunk_start[row] - chunk_start[row_begin] + t.chunk) * heads + kv_head * group + m % group;
}

// Rows first..first + ATTENTION_CHUNK of a layer's cache at KV head kv_head into shared rows of ld
// elements, 16 bytes per thread; positions from `end` on are zeros.
__device__ __forceinline__ void load_chunk(bf16* out, int ld, const bf16* cache, const int* table, int first, int end, int block_size,
                                           int kv_width, int kv_head, int head_dim) {
  int parts = head_dim / 8;
  for (int t = threadIdx.x; t < ATTENTION_CHUNK * parts; t += blockDim.x) {
    int i = t / parts, d = t % parts * 8;
    uint4 v = make_uint4(0, 0, 0, 0);
    if (first + i < end) v = *reinterpret_cast<const uint4*>(cache + kv_at(table, first + i, block_size, kv_width) + (size_t)kv_head * head_dim + d);
    *reinterpret_cast<uint4*>(out + (size_t)i * ld + d) = v;
  }
}

// Shared memory: queries [16][ld], keys [64][ld] (ld = head_dim + TC_PAD), scores [16][64 + 4] f32.
__device__ void attention_scores_tc(float* scores, float* maxima, const bf16* qkv, int qkv_width, const bf16* keys, const int* block_tables,
                                    const int* table_start, const int* row_sequence, const int* positions, const int* chunk_start,
                                    int row_begin, int row_end, int heads, int kv_heads, int head_dim, int block_size, float scale) {
  using namespace nvcuda;
  extern __shared__ __align__(128) unsigned char tc_shared[];
  int kv_head = blockIdx.y, group = heads / kv_heads;
  int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, warps = blockDim.x >> 5;
  int ld = head_dim + TC_PAD, lds = ATTENTION_CHUNK + 4, parts = head_dim / 8;
  bf16* q_s = reinterpret_cast<bf16*>(tc_shared);
  bf16* k_s = q_s + TC_ROWS * ld;
  float* s_s = reinterpret_cast<float*>(k_s + ATTENTION_CHUNK * ld);
  int items = chunk_start[row_end] - chunk_start[row_begin];
  for (int item = blockIdx.x; item < items; item += gridDim.x) {
    TileItem t;
    if (!tile_item(t, chunk_start, row_sequence, positions, row_begin, row_end, item, group)) continue;
    for (int x = threadIdx.x; x < TC_ROWS * parts; x += blockDim.x) {
      int m = x / parts, d = x % parts * 8;
      uint4 v = make_uint4(0, 0, 0, 0);
      if (m < t.used) {
        size_t at = (size_t)(t.first_row + m / group) * qkv_width + (size_t)(kv_head * group + m % group) * head_dim + d;
        v = *reinterpret_cast<const uint4*>(qkv + at);
      }
      *reinterpret_cast<uint4*>(q_s + (size_t)m * ld + d) = v;
    }
    const int* table = block_tables + table_start[row_sequence[t.first_row]];
    load_chunk(k_s, ld, keys, table, t.first, t.end, block_size, kv_heads * head_dim, kv_head, head_dim);
    __syncthreads();
    // Q K^T, a warp per 16 keys; tiles of keys no row sees are not computed.
    for (int n = warp; n * 16 < t.end - t.first; n += warps) {
      wmma::fragment<wmma::accumulator, 16, 16, 16, float> acc;
      wmma::fill_fragment(acc, 0.f);
      for (int k = 0; k < head_dim; k += 16) {
        wmma::fragment<wmma::matrix_a, 16, 16, 16, bf16, wmma::row_major> a;
        wmma::fragment<wmma::matrix_b, 16, 16, 16, bf16, wmma::col_major> b;
        wmma::load_matrix_sync(a, q_s + k, ld);
        wmma::load_matrix_sync(b, k_s + (size_t)n * 16 * ld + k, ld);
        wmma::mma_sync(acc, a, b, acc);
      }
      wmma::store_matrix_sync(s_s + n * 16, acc, lds, wmma::mem_row_major);
    }
    __syncthreads();
    // Each row's scaled scores up to its own position, and their maximum, a warp per A row.
    for (int m = warp; m < t.used; m += warps) {
      size_t slot = tile_slot(t, chunk_start, row_begin, m, group, kv_head, heads);
      int sees = positions[t.first_row + m / group] + 1 - t.first;
      float mx = -INFINITY;
      for (int i = lane; i < sees && i < ATTENTION_CHUNK; i += 32) {
        float s = s_s[m * lds + i] * scale;
        scores[slot * ATTENTION_CHUNK + i] = s;
        mx = fmaxf(mx, s);
      }
      for (int o = 16; o > 0; o >>= 1) mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, o));
      if (lane == 0) maxima[slot] = mx;
    }
    __syncthreads();
  }
}

// Shared memory: weights [16][64 + TC_PAD] bf16 and values [64][ld]; the products' sums [16][head_dim + 4]
// f32 reuse the values' space once every warp has multiplied.
__device__ void attention_values_tc(float* partials, const float* scores, const float* maxima, const bf16* values, const int* block_tables,
                                    const int* table_start, const int* row_sequence, const int* positions, const int* chunk_start,
                                    int row_begin, int row_end, int heads, int kv_heads, int head_dim, int block_size) {
  using namespace nvcuda;
  extern __shared__ __align__(128) unsigned char tc_shared[];
  __shared__ float row_max[TC_ROWS], row_sum[TC_ROWS];
  int kv_head = blockIdx.y, group = heads / kv_heads;
  int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, warps = blockDim.x >> 5;
  int ld = head_dim + TC_PAD, ldp = ATTENTION_CHUNK + TC_PAD, ldo = head_dim + 4;
  bf16* p_s = reinterpret_cast<bf16*>(tc_shared);
  bf16* v_s = p_s + TC_ROWS * ldp;
  float* o_s = reinterpret_cast<float*>(v_s);
  int base = chunk_start[row_begin], items = chunk_start[row_end] - base;
  for (int item = blockIdx.x; item < items; item += gridDim.x) {
    TileItem t;
    if (!tile_item(t, chunk_start, row_sequence, positions, row_begin, row_end, item, group)) continue;
    // Each A row's maximum over all its row's items (a maximum is the same in any order).
    for (int m = warp; m < t.used; m += warps) {
      int row = t.first_row + m / group, head = kv_head * group + m % group;
      int from = chunk_start[row] - base, count = chunk_start[row + 1] - chunk_start[row];
      float mx = -INFINITY;
      for (int i = lane; i < count; i += 32) mx = fmaxf(mx, maxima[(size_t)(from + i) * heads + head]);
      for (int o = 16; o > 0; o >>= 1) mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, o));
      if (lane == 0) row_max[m] = mx;
    }
    const int* table = block_tables + table_start[row_sequence[t.first_row]];
    load_chunk(v_s, ld, values, table, t.first, t.end, block_size, kv_heads * head_dim, kv_head, head_dim);
    __syncthreads();
    // The numerators exp(s - max) of the keys each row sees (0 for the others), summed in f32 in a
    // fixed order (a lane's keys, then the lanes pairwise) and rounded to bf16 as the weights.
    for (int m = warp; m < TC_ROWS; m += warps) {
      int sees = m < t.used ? positions[t.first_row + m / group] + 1 - t.first : 0;
      size_t slot = m < t.used ? tile_slot(t, chunk_start, row_begin, m, group, kv_head, heads) : 0;
      float sum = 0.f;
      for (int i = lane; i < ATTENTION_CHUNK; i += 32) {
        float e = i < sees ? expf(scores[slot * ATTENTION_CHUNK + i] - row_max[m]) : 0.f;
        sum += e;
        p_s[m * ldp + i] = __float2bfloat16_rn(e);
      }
      sum = warp_sum(sum);
      if (lane == 0) row_sum[m] = sum;
    }
    __syncthreads();
    // P V, a warp per 16 dimensions of the head; tiles of keys no row sees weigh nothing and are skipped.
    wmma::fragment<wmma::accumulator, 16, 16, 16, float> acc[TC_MAX_N_PER_WARP];
    for (int j = 0; j < TC_MAX_N_PER_WARP; j++) {
      int n = warp + j * warps;
      if (n * 16 >= head_dim) break;
      wmma::fill_fragment(acc[j], 0.f);
      for (int k = 0; k < t.end - t.first; k += 16) {
        wmma::fragment<wmma::matrix_a, 16, 16, 16, bf16, wmma::row_major> a;
        wmma::fragment<wmma::matrix_b, 16, 16, 16, bf16, wmma::row_major> b;
        wmma::load_matrix_sync(a, p_s + k, ldp);
        wmma::load_matrix_sync(b, v_s + (size_t)k * ld + n * 16, ld);
        wmma::mma_sync(acc[j], a, b, acc[j]);
      }
    }
    __syncthreads();
    for (int j = 0; j < TC_MAX_N_PER_WARP; j++) {
      int n = warp + j * warps;
      if (n * 16 >= head_dim) break;
      wmma::store_matrix_sync(o_s + n * 16, acc[j], ldo, wmma::mem_row_major);
    }
    __syncthreads();
    for (int x = threadIdx.x; x < t.used * (head_dim + 1); x += blockDim.x) {
      int m = x / (head_dim + 1), d = x % (head_dim + 1);
      size_t slot = tile_slot(t, chunk_start, row_begin, m, group, kv_head, heads);
      partials[slot * (head_dim + 1) + d] = d < head_dim ? o_s[m * ldo + d] : row_sum[m];
    }
    __syncthreads();
  }
}

// The entry points' choice by precision (see the attention section's head).
__device__ __forceinline__ void attention_scores(float* scores, float* maxima, const bf16* qkv, int qkv_width, const bf16* keys,
                                                 const int* block_tables, const int* table_start, const int* row_sequence,
                                                 const int* positions, const int* chunk_start, int row_begin, int row_end, int heads,
                                                 int kv_heads, int head_dim, int block_size, float scale) {
  attention_scores_tc(scores, maxima, qkv, qkv_width, keys, block_tables, table_start, row_sequence, positions, chunk_start, row_begin,
                      row_end, heads, kv_heads, head_dim, block_size, scale);
}
__device__ __forceinline__ void attention_scores(float* scores, float* maxima, const float* qkv, int qkv_width, const float* keys,
                                                 const int* block_tables, const int* table_start, const int* row_sequence,
                                                 const int* positions, const int* chunk_start, int row_begin, int row_end, int heads,
                                                 int kv_heads, int head_dim, int block_size, float scale) {
  attention_scores_simt<float>(scores, maxima, qkv, qkv_width, keys, block_tables, table_start, row_sequence, positions, chunk_start,
                               row_begin, row_end, heads, kv_heads, head_dim, block_size, scale);
}
__device__ __forceinline__ void attention_values(float* partials, const float* scores, const float* maxima, const bf16* values,
                                                 const int* block_tables, const int* table_start, const int* row_sequence,
                                                 const int* positions, const int* chunk_start, int row_begin, int row_end, int heads,
                                                 int kv_heads, int head_dim, int block_size) {
  attention_values_tc(partials, scores, maxima, values, block_tables, table_start, row_sequence, positions, chunk_start, row_begin, row_end,
                      heads, kv_heads, head_dim, block_size);
}
__device__ __forceinline__ void attention_values(float* partials, const float* scores, const float* maxima, const float* values,
                                                 const int* block_tables, const int* table_start, const int* row_sequence,
                                                 const int* positions, const int* chunk_start, int row_begin, int row_end, int heads,
                                                 int kv_heads, int head_dim, int block_size) {
  attention_values_simt<float>(partials, scores, maxima, values, block_tables, table_start, row_sequence, positions, chunk_start,
                               row_begin, row_end, heads, kv_heads, head_dim, block_size);
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
  extern "C" __global__ void embedding_##SUFFIX(T* out, const T* table, const int* ids, const int* previous,  \
                                                int hidden, const int* slots, int* token_at_slot) {          \
    embedding<T>(out, table, ids, previous, hidden, slots, token_at_slot);                                   \
  }                                                                                                          \
  extern "C" __global__ void rmsnorm_##SUFFIX(T* out, T* x, const T* residual, const T* weight, int hidden,   \
                                              float eps) {                                                   \
    rmsnorm<T>(out, x, residual, weight, hidden, eps);                                                       \
  }                                                                                                          \
  extern "C" __global__ void gather_rows_##SUFFIX(T* out, const T* in, const int* rows, int width) {          \
    gather_rows<T>(out, in, rows, width);                                                                    \
  }                                                                                                          \
  extern "C" __global__ void rope_write_kv_##SUFFIX(T* qkv, int qkv_width, const int* positions,             \
                                                    const float* cos_table, const float* sin_table, int heads, \
                                                    int kv_heads, int head_dim, T* keys, T* values,           \
                                                    const int* slots) {                                      \
    rope_write_kv<T>(qkv, qkv_width, positions, cos_table, sin_table, heads, kv_heads, head_dim, keys, values, slots); \
  }                                                                                                          \
  extern "C" __global__ void attention_scores_##SUFFIX(                                                     \
      float* scores, float* maxima, const T* qkv, int qkv_width, const T* keys, const int* block_tables, const int* table_start,  \
      const int* row_sequence, const int* positions, const int* chunk_start, int row_begin, int row_end, int heads,    \
      int kv_heads, int head_dim, int block_size, float scale) {                                             \
    attention_scores(scores, maxima, qkv, qkv_width, keys, block_tables, table_start, row_sequence, positions,   \
                        chunk_start, row_begin, row_end, heads, kv_heads, head_dim, block_size, scale);       \
  }                                                                                                          \
  extern "C" __global__ void attention_values_##SUFFIX(                                                     \
      float* partials, const float* scores, const float* maxima, const T* values, const int* block_tables,      \
      const int* table_start, const int* row_sequence, const int* positions, const int* chunk_start, int row_begin,   \
      int row_end, int heads, int kv_heads, int head_dim, int block_size) {                                 \
    attention_values(partials, scores, maxima, values, block_tables, table_start, row_sequence, positions,       \
                        chunk_start, row_begin, row_end, heads, kv_heads, head_dim, block_size);              \
  }                                                                                                          \
  extern "C" __global__ void attention_combine_##SUFFIX(T* out, const float* partials, const int* chunk_start,  \
                                                        int row_begin, int heads, int head_dim) {            \
    attention_combine<T>(out, partials, chunk_start, row_begin, heads, head_dim);                            \
  }                                                                                                          \
  extern "C" __global__ void silu_multiply_##SUFFIX(T* out, const T* gate_up, int inter) {                    \
    silu_multiply<T>(out, gate_up, inter);                                                                   \
  }                                                                                                          \
  extern "C" __global__ void to_f32_##SUFFIX(float* out, const T* in, long long n) { to_f32<T>(out, in, (size_t)n); }

FOR_BOTH_TYPES(ENTRY_POINTS)

// ---------------------------------------------------------------------------------------------
// Sampling, with the CPU engine's semantics (dev.beamllama.model.sampling.Sampler) bit for bit:
// the parallel parts (penalty, temperature, the k-th largest value, argmax, sorting) are exact; the
// parts that accumulate (top-p's softmax and cumulative sum, the final softmax, the inverse-CDF
// draw) run in one thread in the same order as the CPU's loops. Every row is sampled here: sample
// takes the common ones (greedy, or top-k's candidates in shared memory), sample_vocab the rest.

// Repetition penalty over each sampled row's sequence so far, once per distinct id. The history is
// read from the cache's token ids (token_at_slot, written by embedding) through the sequence's block
// table: tokens 0 .. positions[row] of the row's sequence. The ids seen are marked in a bitmap of the
// vocabulary in dynamic shared memory ((vocab + 31) / 32 words), then each marked score is penalised
// once. One block per sampled row (sample r is the step's row logit_rows[r]).
extern "C" __global__ void repetition_penalty(float* logits, int vocab, const int* token_at_slot, const int* block_tables,
                                              const int* table_start, int block_size, const int* row_sequence, const int* positions,
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
  const int* table = block_tables + table_start[row_sequence[row]];
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

// The order top-p sorts candidates by: score, then id.
__device__ __forceinline__ long long candidate_key(float score, int id) {
  return ((long long)sortable_bits(score) << 32) | (unsigned int)id;
}

__device__ __forceinline__ float tempered(const float* scores, int i, float temperature) {
  return temperature != 1.0f ? scores[i] / temperature : scores[i];
}

#define SAMPLE_THREADS 1024
#define SAMPLE_WARPS (SAMPLE_THREADS / 32)
#define MAX_CANDIDATES 1024
// A row's token when the sample kernel leaves it to sample_vocab (top-k off, or more than
// MAX_CANDIDATES scores tied into the top-k).
#define VOCAB_PATH -2

// The k-th largest tempered score's order key, by radix select 8 bits at a time; every thread gets
// it. One histogram per warp: a row's scores crowd into few buckets, and a block-wide one would
// serialise 1024 threads' atomics on them.
__device__ unsigned int kth_largest_key(const float* scores, int vocab, float temperature, int k,
                                        unsigned int (*warp_histogram)[256]) {
  __shared__ unsigned int histogram[256];
  __shared__ unsigned int prefix, prefix_mask;
  __shared__ int remaining;
  int t = threadIdx.x, warp = t >> 5, warps = blockDim.x >> 5;
  if (t == 0) { prefix = 0; prefix_mask = 0; remaining = k; }
  for (int shift = 24; shift >= 0; shift -= 8) {
    for (int b = t; b < warps * 256; b += blockDim.x) warp_histogram[b / 256][b % 256] = 0;
    __syncthreads();
    unsigned int p = prefix, mask = prefix_mask;
    for (int i = t; i < vocab; i += blockDim.x) {
      unsigned int key = order_key(tempered(scores, i, temperature));
      if ((key & mask) == p) atomicAdd(&warp_histogram[warp][(key >> shift) & 0xff], 1u);
    }
    __syncthreads();
    for (int b = t; b < 256; b += blockDim.x) {
      unsigned int sum = 0;
      for (int w = 0; w < warps; w++) sum += warp_histogram[w][b];
      histogram[b] = sum;
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
  unsigned int key = prefix;
  __syncthreads();
  return key;
}

// The ids i < n with keep(i), in ascending order, into out (every thread gets the count): each
// thread takes a contiguous range of ids. counts: shared, blockDim.x + 1 ints.
template <typename Keep>
__device__ int compact(int* out, int n, int* counts, Keep keep) {
  int t = threadIdx.x;
  int per_thread = (n + blockDim.x - 1) / blockDim.x;
  int begin = min(n, t * per_thread), end = min(n, begin + per_thread);
  int mine = 0;
  for (int i = begin; i < end; i++) mine += keep(i) ? 1 : 0;
  counts[t] = mine;
  __syncthreads();
  if (t == 0) {
    int total = 0;
    for (int i = 0; i < (int)blockDim.x; i++) { int c = counts[i]; counts[i] = total; total += c; }
    counts[blockDim.x] = total;
  }
  __syncthreads();
  int at = counts[t];
  for (int i = begin; i < end; i++) {
    if (keep(i)) out[at++] = i;
  }
  int total = counts[blockDim.x];
  __syncthreads();
  return total;
}

// One block of SAMPLE_THREADS per row. Per row: greedy (argmax, first index on ties) or
// temperature, top-k (k in [1, vocab)), top-p, softmax and the inverse-CDF draw with uniforms[row],
// over the top-k's candidates in shared memory. Rows with top-k off, or with more than
// MAX_CANDIDATES scores tied into their top-k, get VOCAB_PATH: sample_vocab samples them.
extern "C" __global__ void sample(int* tokens, const float* logits, int vocab, const int* greedy, const float* temperatures,
                                  const int* top_ks, const float* top_ps, const double* uniforms) {
  __shared__ unsigned int warp_histogram[SAMPLE_WARPS][256];
  __shared__ int counts[SAMPLE_THREADS + 1];
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
  if (k < 1 || k >= vocab) {
    if (t == 0) tokens[row] = VOCAB_PATH;
    return;
  }
  unsigned int threshold = kth_largest_key(scores, vocab, temperature, k, warp_histogram);
  // Candidates in ascending id order: every score at least the k-th largest.
  int total = compact(candidate_id, vocab, counts, [&](int i) {
    return order_key(tempered(scores, i, temperature)) >= threshold;
  });
  if (total > MAX_CANDIDATES) {
    if (t == 0) tokens[row] = VOCAB_PATH;
    return;
  }
  for (int i = t; i < total; i += blockDim.x) candidate_score[i] = tempered(scores, candidate_id[i], temperature);
  __syncthreads();

  // Top-p (LogitsProcessors.topP): ascending by (sortable bits, id), softmax, cumulative sum in
  // double, drop while the cumulative probability is at most 1 - p, always keeping the last. The
  // order is each candidate's rank among the others (the keys are distinct: ids are), in parallel.
  float p = top_ps[row];
  bool nucleus = p < 1.0f && total > 1;
  if (nucleus) {
    for (int i = t; i < total; i += blockDim.x) {
      long long key = candidate_key(candidate_score[i], candidate_id[i]);
      int rank = 0;
      for (int j = 0; j < total; j++) rank += candidate_key(candidate_score[j], candidate_id[j]) < key;
      order[rank] = (short)i;
    }
    __syncthreads();
  }
  if (t != 0) return;
  if (nucleus) {
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

// ---------------------------------------------------------------------------------------------
// sample_vocab: the rows sample left (VOCAB_PATH), over the whole vocabulary. Same semantics; the
// CPU's loops that accumulate in order run in order here too, in thread 0, over values the block
// computed in parallel and stages through shared memory. Top-p sorts the row's candidates (a stable
// radix sort of the score keys over ids in ascending order: the CPU's (score, id) order). Each
// block takes rows blockIdx.x, blockIdx.x + gridDim.x, ... with its own scratch of 5 * vocab words.

#define SAMPLE_TILE 2048

// Thread 0 visits values[0..n) in order (the block stages them through tile) until visit returns false.
template <typename Visit>
__device__ void visit_in_order(const float* values, int n, float* tile, Visit visit) {
  __shared__ int stop;
  if (threadIdx.x == 0) stop = 0;
  for (int base = 0; base < n; base += SAMPLE_TILE) {
    __syncthreads();
    if (stop) break;
    int count = min(SAMPLE_TILE, n - base);
    for (int i = threadIdx.x; i < count; i += blockDim.x) tile[i] = values[base + i];
    __syncthreads();
    if (threadIdx.x == 0) {
      for (int i = 0; i < count; i++) {
        if (!visit(base + i, tile[i])) { stop = 1; break; }
      }
    }
  }
  __syncthreads();
}

// values[0..n) added in order in f32, as the CPU's loop adds them; every thread gets the sum.
__device__ float sum_in_order(const float* values, int n, float* tile) {
  __shared__ float total;
  float sum = 0.f;
  visit_in_order(values, n, tile, [&](int, float e) { sum += e; return true; });
  if (threadIdx.x == 0) total = sum;
  __syncthreads();
  sum = total;
  __syncthreads();
  return sum;
}

// Stable LSD radix sort of n (key, id) pairs by key, 8 bits a pass, by the block: each warp ranks a
// contiguous segment, 32 pairs at a time, lanes of equal digit found by ballots. The result is back
// in keys, ids (an even number of passes); keys_alt, ids_alt are scratch.
__device__ void radix_sort(unsigned int* keys, int* ids, unsigned int* keys_alt, int* ids_alt, int n,
                           unsigned int (*offsets)[256]) {
  __shared__ unsigned int digit_start[256];
  int t = threadIdx.x, lane = t & 31, warp = t >> 5, warps = blockDim.x >> 5;
  int per_warp = (n + warps * 32 - 1) / (warps * 32) * 32;
  int begin = min(n, warp * per_warp), end = min(n, begin + per_warp);
  for (int shift = 0; shift < 32; shift += 8) {
    for (int b = lane; b < 256; b += 32) offsets[warp][b] = 0;
    __syncwarp();
    for (int i = begin + lane; i < end; i += 32) atomicAdd(&offsets[warp][(keys[i] >> shift) & 0xff], 1u);
    __syncthreads();
    // Where each (digit, warp) starts: digits in order, warps in order within a digit.
    for (int d = t; d < 256; d += blockDim.x) {
      unsigned int sum = 0;
      for (int w = 0; w < warps; w++) { unsigned int c = offsets[w][d]; offsets[w][d] = sum; sum += c; }
      digit_start[d] = sum;
    }
    __syncthreads();
    if (t == 0) {
      unsigned int sum = 0;
      for (int d = 0; d < 256; d++) { unsigned int c = digit_start[d]; digit_start[d] = sum; sum += c; }
    }
    __syncthreads();
    for (int d = t; d < 256; d += blockDim.x) {
      for (int w = 0; w < warps; w++) offsets[w][d] += digit_start[d];
    }
    __syncthreads();
    for (int base = begin; base < end; base += 32) {
      int i = base + lane;
      bool valid = i < end;
      unsigned int key = valid ? keys[i] : 0u;
      int id = valid ? ids[i] : 0;
      unsigned int digit = (key >> shift) & 0xffu;
      unsigned int peers = __ballot_sync(0xffffffffu, valid);
      for (int bit = 0; bit < 8; bit++) {
        unsigned int set = __ballot_sync(0xffffffffu, (digit >> bit) & 1u);
        peers &= ((digit >> bit) & 1u) ? set : ~set;
      }
      unsigned int before = peers & ((1u << lane) - 1u);
      if (valid) {
        unsigned int at = offsets[warp][digit] + __popc(before);
        keys_alt[at] = key;
        ids_alt[at] = id;
      }
      __syncwarp();
      if (valid && before == 0u) offsets[warp][digit] += __popc(peers);
      __syncwarp();
    }
    __syncthreads();
    unsigned int* k = keys; keys = keys_alt; keys_alt = k;
    int* d = ids; ids = ids_alt; ids_alt = d;
  }
}

// The largest of values[0..n) over the block (a maximum is the same in any order); every thread gets it.
__device__ float block_max(float v) {
  __shared__ float partial[32];
  int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, warps = blockDim.x >> 5;
  for (int o = 16; o > 0; o >>= 1) v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, o));
  if (lane == 0) partial[warp] = v;
  __syncthreads();
  float m = -INFINITY;
  for (int w = 0; w < warps; w++) m = fmaxf(m, partial[w]);
  __syncthreads();
  return m;
}

extern "C" __global__ void __launch_bounds__(SAMPLE_THREADS) sample_vocab(int* tokens, int rows, const float* logits, int vocab, const float* temperatures,
                                        const int* top_ks, const float* top_ps, const double* uniforms, unsigned int* scratch) {
  __shared__ unsigned int offsets[SAMPLE_WARPS][256];
  __shared__ int counts[SAMPLE_THREADS + 1];
  __shared__ float tile[SAMPLE_TILE];
  __shared__ int shared_cut;
  int t = threadIdx.x;
  size_t words = (size_t)vocab;
  int* ids = (int*)(scratch + blockIdx.x * 5 * words);
  unsigned int* keys = scratch + (blockIdx.x * 5 + 1) * words;
  int* ids_alt = (int*)(scratch + (blockIdx.x * 5 + 2) * words);
  unsigned int* keys_alt = scratch + (blockIdx.x * 5 + 3) * words;
  float* values = (float*)(scratch + (blockIdx.x * 5 + 4) * words);

  for (int row = blockIdx.x; row < rows; row += gridDim.x) {
    if (tokens[row] != VOCAB_PATH) continue;  // the same for the whole block
    const float* scores = logits + (size_t)row * vocab;
    float temperature = temperatures[row];
    int k = top_ks[row];
    float p = top_ps[row];
    bool top_k = k >= 1 && k < vocab;
    unsigned int threshold = top_k ? kth_largest_key(scores, vocab, temperature, k, offsets) : 0u;
    // The row's finite scores after top-k (LogitsProcessors.topK sets the others to -inf).
    auto kept = [&](int i) {
      float v = tempered(scores, i, temperature);
      return v != -INFINITY && (!top_k || order_key(v) >= threshold);
    };
    int n = compact(ids, vocab, counts, kept);

    // Top-p over the sorted candidates: their float sum, then the cumulative (double) sum up to the
    // first that stays, all in the CPU's order. keys_alt then marks the dropped ids.
    int cut = 0;
    if (p < 1.0f && n > 1) {
      for (int j = t; j < n; j += blockDim.x) keys[j] = (unsigned int)sortable_bits(tempered(scores, ids[j], temperature)) ^ 0x80000000u;
      __syncthreads();
      radix_sort(keys, ids, keys_alt, ids_alt, n, offsets);
      float max = tempered(scores, ids[n - 1], temperature);
      for (int j = t; j < n; j += blockDim.x) values[j] = (float)exp((double)(tempered(scores, ids[j], temperature) - max));
      float sum = sum_in_order(values, n, tile);
      float limit = (float)(1.0 - (double)p);
      double cumulative = 0;
      int dropped = 0;
      visit_in_order(values, n - 1, tile, [&](int j, float e) {
        cumulative += e / sum;
        if ((float)cumulative > limit) return false;
        dropped = j + 1;
        return true;
      });
      if (t == 0) shared_cut = dropped;
      for (int i = t; i < vocab; i += blockDim.x) keys_alt[i] = 0u;
      __syncthreads();
      cut = shared_cut;
      for (int j = t; j < cut; j += blockDim.x) keys_alt[ids[j]] = 1u;
      __syncthreads();
    }

    // Softmax over the survivors in id order (LogitsProcessors.softmax), then the draw (Sampler.draw).
    bool nucleus = cut > 0;
    int m = compact(ids_alt, vocab, counts, [&](int i) { return kept(i) && !(nucleus && keys_alt[i] != 0u); });
    float local = -INFINITY;
    for (int j = t; j < m; j += blockDim.x) local = fmaxf(local, tempered(scores, ids_alt[j], temperature));
    float max = block_max(local);
    for (int j = t; j < m; j += blockDim.x) values[j] = (float)exp((double)(tempered(scores, ids_alt[j], temperature) - max));
    float sum = sum_in_order(values, m, tile);
    for (int j = t; j < m; j += blockDim.x) values[j] = values[j] / sum;
    double all = 0;
    int last_possible = -1;
    visit_in_order(values, m, tile, [&](int j, float prob) {
      if (prob > 0) { all += prob; last_possible = j; }
      return true;
    });
    double target = t == 0 ? uniforms[row] * all : 0;
    double cumulative = 0;
    int chosen = -1;
    visit_in_order(values, m, tile, [&](int j, float prob) {
      if (prob > 0) {
        cumulative += prob;
        if (cumulative > target) { chosen = j; return false; }
      }
      return true;
    });
    if (t == 0) {
      int j = chosen >= 0 ? chosen : last_possible;
      tokens[row] = j >= 0 ? ids_alt[j] : -1;
    }
    __syncthreads();
  }
}
