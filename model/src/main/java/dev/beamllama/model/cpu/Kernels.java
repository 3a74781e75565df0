package dev.beamllama.model.cpu;

import dev.beamllama.model.safetensors.DType;
import dev.beamllama.model.safetensors.Tensor;
import java.lang.foreign.MemorySegment;
import java.nio.ByteOrder;
import jdk.incubator.vector.FloatVector;
import jdk.incubator.vector.IntVector;
import jdk.incubator.vector.ShortVector;
import jdk.incubator.vector.VectorOperators;
import jdk.incubator.vector.VectorShape;
import jdk.incubator.vector.VectorSpecies;

/**
 * The CPU engine's vector kernels (Vector API). Every output element is computed by one fixed
 * sequence of operations whatever the batch size, and lane sums are added in lane order rather than
 * by {@code reduceLanes} (whose order may differ between the interpreter and compiled code), so a
 * sequence's results are bit-identical alone or in any batch, first call or millionth.
 */
final class Kernels {
  static final VectorSpecies<Float> F = FloatVector.SPECIES_PREFERRED;
  static final int LANES = F.length();
  private static final VectorSpecies<Short> S = VectorSpecies.of(short.class, VectorShape.forBitSize(F.vectorBitSize() / 2));
  private static final VectorSpecies<Integer> I = VectorSpecies.of(int.class, VectorShape.forBitSize(F.vectorBitSize()));
  private static final ByteOrder LE = ByteOrder.LITTLE_ENDIAN;
  /**
   * Rows of the weight matrix per parallel task: enough work to amortise the hand-off. 128 rather
   * than 16 gave 5.3 -> 6.7-8.3 decode tokens/s at batch 1 on the 1B-shaped benchmark (docs/perf.md).
   */
  private static final int ROWS_PER_TASK = 128;
  /** Activation rows that share one pass over a weight row. */
  private static final int ROW_BLOCK = 4;

  private Kernels() {}

  /**
   * {@code out[r, o] = sum_i x[r, i] * w[o, i]} for {@code rows} rows of {@code x}: torch's
   * {@code x @ w.T} with w stored [out, in]. Reads each weight row once per block of rows. With
   * {@code bf16Out} each result is rounded to bf16, as a bf16 GEMM stores it.
   */
  static void matmul(Parallel pool, float[] x, int rows, Tensor w, float[] out, boolean bf16Out) {
    int outDim = w.rows();
    int in = w.columns();
    boolean bf16 = w.dtype() == DType.BF16;
    MemorySegment weights = w.data();
    int tasks = (outDim + ROWS_PER_TASK - 1) / ROWS_PER_TASK;
    pool.forEach(tasks, (task, worker) -> {
      float[] lanes = new float[LANES * ROW_BLOCK];
      int oEnd = Math.min(outDim, (task + 1) * ROWS_PER_TASK);
      int r = 0;
      for (; r + ROW_BLOCK <= rows; r += ROW_BLOCK) {
        for (int o = task * ROWS_PER_TASK; o < oEnd; o++) {
          dot4(x, r, in, weights, (long) o * in, bf16, out, outDim, o, bf16Out, lanes);
        }
      }
      for (; r < rows; r++) {
        for (int o = task * ROWS_PER_TASK; o < oEnd; o++) {
          float v = dot1(x, r * in, in, weights, (long) o * in, bf16, lanes);
          out[r * outDim + o] = bf16Out ? DType.roundToBf16(v) : v;
        }
      }
    });
  }

  /** Loads LANES weights starting at element {@code index}, widening bf16 to f32. */
  static FloatVector load(MemorySegment w, long index, boolean bf16) {
    if (bf16) {
      return ((IntVector) ShortVector.fromMemorySegment(S, w, index * 2, LE).convertShape(VectorOperators.S2I, I, 0))
          .lanewise(VectorOperators.LSHL, 16)
          .reinterpretAsFloats();
    }
    return FloatVector.fromMemorySegment(F, w, index * 4, LE);
  }

  static float weight(MemorySegment w, long index, boolean bf16) {
    return bf16
        ? DType.bf16ToFloat(w.get(java.lang.foreign.ValueLayout.JAVA_SHORT_UNALIGNED.withOrder(LE), index * 2))
        : w.get(java.lang.foreign.ValueLayout.JAVA_FLOAT_UNALIGNED.withOrder(LE), index * 4);
  }

  private static float dot1(float[] x, int xOff, int n, MemorySegment w, long wOff, boolean bf16, float[] lanes) {
    FloatVector acc = FloatVector.zero(F);
    int upper = F.loopBound(n);
    for (int i = 0; i < upper; i += LANES) {
      acc = FloatVector.fromArray(F, x, xOff + i).fma(load(w, wOff + i, bf16), acc);
    }
    float sum = sumLanes(acc, lanes, 0);
    for (int i = upper; i < n; i++) {
      sum += x[xOff + i] * weight(w, wOff + i, bf16);
    }
    return sum;
  }

  private static void dot4(float[] x, int row, int n, MemorySegment w, long wOff, boolean bf16,
      float[] out, int outDim, int o, boolean bf16Out, float[] lanes) {
    int x0 = row * n;
    int x1 = x0 + n;
    int x2 = x1 + n;
    int x3 = x2 + n;
    FloatVector a0 = FloatVector.zero(F);
    FloatVector a1 = a0;
    FloatVector a2 = a0;
    FloatVector a3 = a0;
    int upper = F.loopBound(n);
    for (int i = 0; i < upper; i += LANES) {
      FloatVector wv = load(w, wOff + i, bf16);
      a0 = FloatVector.fromArray(F, x, x0 + i).fma(wv, a0);
      a1 = FloatVector.fromArray(F, x, x1 + i).fma(wv, a1);
      a2 = FloatVector.fromArray(F, x, x2 + i).fma(wv, a2);
      a3 = FloatVector.fromArray(F, x, x3 + i).fma(wv, a3);
    }
    float s0 = sumLanes(a0, lanes, 0);
    float s1 = sumLanes(a1, lanes, 0);
    float s2 = sumLanes(a2, lanes, 0);
    float s3 = sumLanes(a3, lanes, 0);
    for (int i = upper; i < n; i++) {
      float wi = weight(w, wOff + i, bf16);
      s0 += x[x0 + i] * wi;
      s1 += x[x1 + i] * wi;
      s2 += x[x2 + i] * wi;
      s3 += x[x3 + i] * wi;
    }
    int at = row * outDim + o;
    out[at] = bf16Out ? DType.roundToBf16(s0) : s0;
    out[at + outDim] = bf16Out ? DType.roundToBf16(s1) : s1;
    out[at + 2 * outDim] = bf16Out ? DType.roundToBf16(s2) : s2;
    out[at + 3 * outDim] = bf16Out ? DType.roundToBf16(s3) : s3;
  }

  /** Sum of the lanes in lane order: the same result in every JIT tier. */
  static float sumLanes(FloatVector v, float[] scratch, int offset) {
    v.intoArray(scratch, offset);
    float sum = scratch[offset];
    for (int i = 1; i < LANES; i++) {
      sum += scratch[offset + i];
    }
    return sum;
  }

  /** Dot product of two f32 ranges (attention scores). */
  static float dot(float[] a, int aOff, MemorySegment b, long bIndex, int n, float[] lanes) {
    FloatVector acc = FloatVector.zero(F);
    int upper = F.loopBound(n);
    for (int i = 0; i < upper; i += LANES) {
      acc = FloatVector.fromArray(F, a, aOff + i).fma(FloatVector.fromMemorySegment(F, b, (bIndex + i) * 4, ByteOrder.nativeOrder()), acc);
    }
    float sum = sumLanes(acc, lanes, 0);
    for (int i = upper; i < n; i++) {
      sum += a[aOff + i] * b.getAtIndex(java.lang.foreign.ValueLayout.JAVA_FLOAT, bIndex + i);
    }
    return sum;
  }

  /** {@code out[off..off+n) += p * v[vIndex..vIndex+n)} (attention's weighted sum of values). */
  static void axpy(float p, MemorySegment v, long vIndex, float[] out, int off, int n) {
    FloatVector pv = FloatVector.broadcast(F, p);
    int upper = F.loopBound(n);
    for (int i = 0; i < upper; i += LANES) {
      FloatVector.fromMemorySegment(F, v, (vIndex + i) * 4, ByteOrder.nativeOrder())
          .fma(pv, FloatVector.fromArray(F, out, off + i))
          .intoArray(out, off + i);
    }
    for (int i = upper; i < n; i++) {
      out[off + i] = Math.fma(v.getAtIndex(java.lang.foreign.ValueLayout.JAVA_FLOAT, vIndex + i), p, out[off + i]);
    }
  }

  /**
   * Hugging Face's LlamaRMSNorm on one row: {@code weight * (x * rsqrt(mean(x^2) + eps))}, the mean
   * accumulated in double. With {@code bf16}, the normalised row is cast to bf16 before the weight
   * multiplies it and the product is bf16, as in a bf16 model.
   */
  static void rmsNorm(float[] x, int xOff, float[] weight, float eps, float[] out, int outOff, int n, boolean bf16) {
    double sumSquares = 0;
    for (int i = 0; i < n; i++) {
      float v = x[xOff + i];
      sumSquares += v * v;
    }
    float variance = (float) (sumSquares / n);
    float scale = (float) (1.0 / Math.sqrt(variance + eps));
    for (int i = 0; i < n; i++) {
      float normalised = x[xOff + i] * scale;
      out[outOff + i] = bf16 ? DType.roundToBf16(weight[i] * DType.roundToBf16(normalised)) : weight[i] * normalised;
    }
  }

  /** The residual connection {@code x += y}, rounded to bf16 when the model computes in bf16. */
  static void addInPlace(float[] x, float[] y, int n, boolean bf16) {
    for (int i = 0; i < n; i++) {
      x[i] = bf16 ? DType.roundToBf16(x[i] + y[i]) : x[i] + y[i];
    }
  }

  /** SwiGLU's gate: {@code gate = silu(gate) * up} elementwise; in bf16 both results are bf16. */
  static void siluMultiply(float[] gate, float[] up, int n, boolean bf16) {
    for (int i = 0; i < n; i++) {
      float g = gate[i];
      float silu = g / (1f + (float) Math.exp(-g));
      gate[i] = bf16 ? DType.roundToBf16(DType.roundToBf16(silu) * up[i]) : silu * up[i];
    }
  }
}
