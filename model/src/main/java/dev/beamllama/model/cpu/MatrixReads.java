package dev.beamllama.model.cpu;

import static dev.beamllama.model.cpu.Kernels.F;
import static dev.beamllama.model.cpu.Kernels.LANES;

import dev.beamllama.model.safetensors.DType;
import java.lang.foreign.ValueLayout;
import java.nio.ByteOrder;
import jdk.incubator.vector.ByteVector;
import jdk.incubator.vector.FloatVector;
import jdk.incubator.vector.IntVector;
import jdk.incubator.vector.ShortVector;
import jdk.incubator.vector.VectorOperators;
import jdk.incubator.vector.VectorShape;
import jdk.incubator.vector.VectorSpecies;

/**
 * The kernels that read a {@link Matrix} as stored: {@link Kernels#matmulRows}' tiles over weights
 * (each parks its sums in {@code lanes} for {@link Kernels#storeSums}), and attention's reads of
 * the cached keys and values.
 *
 * <p>The engine runs these kernels in a separate copy of this class for each format, each defined
 * from this class's bytes as a hidden class ({@link Kernels#reads}), never in this class itself.
 * HotSpot profiles each class's code apart, so each copy is compiled for the one format it sees.
 * With one shared copy, a JVM that had run two formats (an int8 engine and a bf16 checkpoint's, or
 * the f32 and bf16 test models, or int8 weights and a bf16 cache) recompiled the kernels with both
 * formats' loads, and C2 then boxed every vector loaded: ~7x slower, 18.9 MB allocated per matmul
 * of a 4,096 x 2,048 matrix (docs/perf.md). Only the scalar {@link #stored} is called on this
 * class too. Each copy has static fields of its own, so they may hold constants only.
 */
final class MatrixReads implements Kernels.Reads {
  private static final VectorSpecies<Short> S = VectorSpecies.of(short.class, VectorShape.forBitSize(F.vectorBitSize() / 2));
  private static final VectorSpecies<Byte> B = VectorSpecies.of(byte.class, VectorShape.forBitSize(F.vectorBitSize() / 4));
  private static final VectorSpecies<Integer> I = VectorSpecies.of(int.class, VectorShape.forBitSize(F.vectorBitSize()));
  private static final ByteOrder LE = ByteOrder.LITTLE_ENDIAN;
  /** One stored bf16 or f32 value, little-endian as safetensors stores it; {@link KvCache} writes with these. */
  static final ValueLayout.OfShort BF16_VALUE = ValueLayout.JAVA_SHORT_UNALIGNED.withOrder(LE);
  static final ValueLayout.OfFloat F32_VALUE = ValueLayout.JAVA_FLOAT_UNALIGNED.withOrder(LE);

  /**
   * Loads LANES values starting at element {@code index} as f32, as stored: bf16 widened, int8 as
   * its integer ({@link Kernels#storeSums} applies an int8 row's scale to the whole dot product).
   * The kernels read a matrix only through this and {@link #stored}, so a value has one f32 value
   * whichever kernel reads it.
   */
  private static FloatVector load(Matrix w, long index) {
    return switch (w.format()) {
      case BF16 -> ((IntVector) ShortVector.fromMemorySegment(S, w.data(), index * 2, LE).convertShape(VectorOperators.S2I, I, 0))
          .lanewise(VectorOperators.LSHL, 16)
          .reinterpretAsFloats();
      case INT8 -> (FloatVector) ByteVector.fromMemorySegment(B, w.data(), index, LE).convertShape(VectorOperators.B2F, F, 0);
      case F32 -> FloatVector.fromMemorySegment(F, w.data(), index * 4, LE);
    };
  }

  /** One value as {@link #load} gives it, for the columns past the last whole vector. */
  static float stored(Matrix w, long index) {
    return switch (w.format()) {
      case BF16 -> DType.bf16ToFloat(w.data().get(BF16_VALUE, index * 2));
      case INT8 -> w.data().get(ValueLayout.JAVA_BYTE, index);
      case F32 -> w.data().get(F32_VALUE, index * 4);
    };
  }

  /**
   * One weight row times one activation row, its vector of partial sums parked in {@code lanes} for
   * {@link Kernels#storeSums}: the order of operations every kernel below keeps.
   */
  @Override
  public void dot1(float[] x, int xOff, int n, Matrix w, long wOff, float[] lanes) {
    FloatVector acc = FloatVector.zero(F);
    int upper = F.loopBound(n);
    for (int i = 0; i < upper; i += LANES) {
      acc = FloatVector.fromArray(F, x, xOff + i).fma(load(w, wOff + i), acc);
    }
    acc.intoArray(lanes, 0);
  }

  /**
   * The 8 dot products of weight rows {@code o..o+7} (at {@code wOff}, {@code n} apart) with one
   * activation row, each computed exactly as {@link #dot1} does, for a block that
   * {@link Kernels#readAhead} has just brought into cache. Eight independent FMA chains: an FMA
   * takes four cycles and a core starts two per cycle, so four chains (as this was) left half of
   * them idle (docs/perf.md). Parks 8 vectors, weight row by weight row.
   */
  @Override
  public void dot8x1(float[] x, int xOff, int n, Matrix w, long wOff, float[] lanes) {
    long w0 = wOff;
    long w1 = w0 + n;
    long w2 = w1 + n;
    long w3 = w2 + n;
    long w4 = w3 + n;
    long w5 = w4 + n;
    long w6 = w5 + n;
    long w7 = w6 + n;
    FloatVector zero = FloatVector.zero(F);
    FloatVector a0 = zero; FloatVector a1 = zero; FloatVector a2 = zero; FloatVector a3 = zero;
    FloatVector a4 = zero; FloatVector a5 = zero; FloatVector a6 = zero; FloatVector a7 = zero;
    int upper = F.loopBound(n);
    for (int i = 0; i < upper; i += LANES) {
      FloatVector xv = FloatVector.fromArray(F, x, xOff + i);
      a0 = xv.fma(load(w, w0 + i), a0);
      a1 = xv.fma(load(w, w1 + i), a1);
      a2 = xv.fma(load(w, w2 + i), a2);
      a3 = xv.fma(load(w, w3 + i), a3);
      a4 = xv.fma(load(w, w4 + i), a4);
      a5 = xv.fma(load(w, w5 + i), a5);
      a6 = xv.fma(load(w, w6 + i), a6);
      a7 = xv.fma(load(w, w7 + i), a7);
    }
    a0.intoArray(lanes, 0); a1.intoArray(lanes, LANES); a2.intoArray(lanes, 2 * LANES); a3.intoArray(lanes, 3 * LANES);
    a4.intoArray(lanes, 4 * LANES); a5.intoArray(lanes, 5 * LANES); a6.intoArray(lanes, 6 * LANES); a7.intoArray(lanes, 7 * LANES);
  }

  /**
   * The 16 dot products of weight rows {@code o..o+3} (at {@code wOff}, {@code n} apart) with
   * activation rows {@code r..r+3} (at {@code xOff}), each computed exactly as {@link #dot1} does.
   * Parks 16 vectors, weight row by weight row.
   */
  @Override
  public void dot4x4(float[] x, int xOff, int n, Matrix w, long wOff, float[] lanes) {
    int x0 = xOff;
    int x1 = x0 + n;
    int x2 = x1 + n;
    int x3 = x2 + n;
    long w0 = wOff;
    long w1 = w0 + n;
    long w2 = w1 + n;
    long w3 = w2 + n;
    // aJR accumulates weight row J times activation row R.
    FloatVector zero = FloatVector.zero(F);
    FloatVector a00 = zero; FloatVector a01 = zero; FloatVector a02 = zero; FloatVector a03 = zero;
    FloatVector a10 = zero; FloatVector a11 = zero; FloatVector a12 = zero; FloatVector a13 = zero;
    FloatVector a20 = zero; FloatVector a21 = zero; FloatVector a22 = zero; FloatVector a23 = zero;
    FloatVector a30 = zero; FloatVector a31 = zero; FloatVector a32 = zero; FloatVector a33 = zero;
    int upper = F.loopBound(n);
    for (int i = 0; i < upper; i += LANES) {
      FloatVector v0 = load(w, w0 + i);
      FloatVector v1 = load(w, w1 + i);
      FloatVector v2 = load(w, w2 + i);
      FloatVector v3 = load(w, w3 + i);
      FloatVector x0v = FloatVector.fromArray(F, x, x0 + i);
      a00 = x0v.fma(v0, a00); a10 = x0v.fma(v1, a10); a20 = x0v.fma(v2, a20); a30 = x0v.fma(v3, a30);
      FloatVector x1v = FloatVector.fromArray(F, x, x1 + i);
      a01 = x1v.fma(v0, a01); a11 = x1v.fma(v1, a11); a21 = x1v.fma(v2, a21); a31 = x1v.fma(v3, a31);
      FloatVector x2v = FloatVector.fromArray(F, x, x2 + i);
      a02 = x2v.fma(v0, a02); a12 = x2v.fma(v1, a12); a22 = x2v.fma(v2, a22); a32 = x2v.fma(v3, a32);
      FloatVector x3v = FloatVector.fromArray(F, x, x3 + i);
      a03 = x3v.fma(v0, a03); a13 = x3v.fma(v1, a13); a23 = x3v.fma(v2, a23); a33 = x3v.fma(v3, a33);
    }
    // Parked in scratch for storeSums: handing 16 vectors to a method C2 declines to inline (this
    // one is past its node budget) boxes them, which made the whole tile 2.5x slower.
    a00.intoArray(lanes, 0 * LANES); a01.intoArray(lanes, 1 * LANES); a02.intoArray(lanes, 2 * LANES); a03.intoArray(lanes, 3 * LANES);
    a10.intoArray(lanes, 4 * LANES); a11.intoArray(lanes, 5 * LANES); a12.intoArray(lanes, 6 * LANES); a13.intoArray(lanes, 7 * LANES);
    a20.intoArray(lanes, 8 * LANES); a21.intoArray(lanes, 9 * LANES); a22.intoArray(lanes, 10 * LANES); a23.intoArray(lanes, 11 * LANES);
    a30.intoArray(lanes, 12 * LANES); a31.intoArray(lanes, 13 * LANES); a32.intoArray(lanes, 14 * LANES); a33.intoArray(lanes, 15 * LANES);
  }

  /**
   * Dot product of {@code a[aOff..]} with {@code n} stored values of {@code b} from element
   * {@code bIndex} (attention's score of a query head against a cached key); {@code lanes} is
   * scratch of LANES floats.
   */
  @Override
  public float dot(float[] a, int aOff, Matrix b, long bIndex, int n, float[] lanes) {
    dot1(a, aOff, n, b, bIndex, lanes);
    float sum = Kernels.sumLanes(lanes, 0);
    for (int i = F.loopBound(n); i < n; i++) {
      sum += a[aOff + i] * stored(b, bIndex + i);
    }
    return sum;
  }

  /**
   * {@code out[outOff + g * stride] = scale * dot(q[qOff + g * n ..], k[kIndex ..])} for the 4 query
   * heads g = 0..3 that share one key: each exactly as {@link #dot} computes it, in one loop that
   * reads the key once and keeps 4 chains in flight. {@code lanes} is scratch of 4 * LANES floats.
   */
  @Override
  public void dot4(float[] q, int qOff, Matrix k, long kIndex, int n, float[] lanes, float scale,
      float[] out, int outOff, int stride) {
    FloatVector a0 = FloatVector.zero(F);
    FloatVector a1 = a0;
    FloatVector a2 = a0;
    FloatVector a3 = a0;
    int upper = F.loopBound(n);
    for (int i = 0; i < upper; i += LANES) {
      FloatVector kv = load(k, kIndex + i);
      a0 = FloatVector.fromArray(F, q, qOff + i).fma(kv, a0);
      a1 = FloatVector.fromArray(F, q, qOff + n + i).fma(kv, a1);
      a2 = FloatVector.fromArray(F, q, qOff + 2 * n + i).fma(kv, a2);
      a3 = FloatVector.fromArray(F, q, qOff + 3 * n + i).fma(kv, a3);
    }
    a0.intoArray(lanes, 0);
    a1.intoArray(lanes, LANES);
    a2.intoArray(lanes, 2 * LANES);
    a3.intoArray(lanes, 3 * LANES);
    for (int g = 0; g < 4; g++) {
      float sum = Kernels.sumLanes(lanes, g * LANES);
      for (int i = upper; i < n; i++) {
        sum += q[qOff + g * n + i] * stored(k, kIndex + i);
      }
      out[outOff + g * stride] = sum * scale;
    }
  }

  /**
   * {@code out[off..off+n) = sum_j w[wOff + j] * v[at[j]..at[j]+n)} for j in [0, count), each element
   * accumulated from zero in j order (attention's weighted sum of values). The running sums of 4
   * vectors of columns stay in registers across the positions: updating {@code out} in memory once
   * per position, as this did, cost ~30 cycles per 64-float head vector (docs/perf.md).
   */
  @Override
  public void weightedSum(float[] w, int wOff, Matrix v, long[] at, int count, float[] out, int off, int n) {
    int upper = F.loopBound(n);
    int c = 0;
    for (; c + 4 * LANES <= upper; c += 4 * LANES) {
      FloatVector zero = FloatVector.zero(F);
      FloatVector a0 = zero;
      FloatVector a1 = zero;
      FloatVector a2 = zero;
      FloatVector a3 = zero;
      for (int j = 0; j < count; j++) {
        FloatVector p = FloatVector.broadcast(F, w[wOff + j]);
        long index = at[j] + c;
        a0 = load(v, index).fma(p, a0);
        a1 = load(v, index + LANES).fma(p, a1);
        a2 = load(v, index + 2 * LANES).fma(p, a2);
        a3 = load(v, index + 3 * LANES).fma(p, a3);
      }
      a0.intoArray(out, off + c);
      a1.intoArray(out, off + c + LANES);
      a2.intoArray(out, off + c + 2 * LANES);
      a3.intoArray(out, off + c + 3 * LANES);
    }
    for (; c < upper; c += LANES) {
      FloatVector a = FloatVector.zero(F);
      for (int j = 0; j < count; j++) {
        a = load(v, at[j] + c).fma(FloatVector.broadcast(F, w[wOff + j]), a);
      }
      a.intoArray(out, off + c);
    }
    for (; c < n; c++) {
      float a = 0f;
      for (int j = 0; j < count; j++) {
        a = Math.fma(stored(v, at[j] + c), w[wOff + j], a);
      }
      out[off + c] = a;
    }
  }
}
