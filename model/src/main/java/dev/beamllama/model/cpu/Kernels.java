package dev.beamllama.model.cpu;

import dev.beamllama.model.safetensors.DType;
import java.io.IOException;
import java.io.InputStream;
import java.io.UncheckedIOException;
import java.lang.foreign.MemorySegment;
import java.lang.invoke.MethodHandles;
import java.lang.invoke.MethodType;
import java.nio.ByteOrder;
import jdk.incubator.vector.FloatVector;
import jdk.incubator.vector.IntVector;
import jdk.incubator.vector.VectorOperators;
import jdk.incubator.vector.VectorShape;
import jdk.incubator.vector.VectorShuffle;
import jdk.incubator.vector.VectorSpecies;

/**
 * The CPU engine's vector kernels (Vector API). Every output element is computed by one fixed
 * sequence of operations whatever the batch size, and lanes are summed in one fixed order
 * ({@link #sumLanes}) rather than by {@code reduceLanes} (whose order may differ between the
 * interpreter and compiled code), so a sequence's results are bit-identical alone or in any batch,
 * first call or millionth.
 */
final class Kernels {
  static final VectorSpecies<Float> F = FloatVector.SPECIES_PREFERRED;
  static final int LANES = F.length();
  /** Floats of per-worker scratch the kernels need: one 4x4 tile's parked sums, or a piece of {@link #siluMultiply}. */
  static final int SCRATCH_FLOATS = 16 * LANES;
  private static final VectorSpecies<Integer> I = VectorSpecies.of(int.class, VectorShape.forBitSize(F.vectorBitSize()));
  private static final ByteOrder LE = ByteOrder.LITTLE_ENDIAN;
  /** {@link #readAhead} loads once per cache line. */
  private static final int CACHE_LINE_BYTES = 64;
  /**
   * Most weight rows per parallel task: 128 rather than 16 gave 5.3 -> 6.7-8.3 decode tokens/s at
   * batch 1 on the 1B-shaped benchmark when each task was an executor hand-off; with the read-ahead,
   * 32 and 64 cut its runs short and 256 or 512 were no faster (docs/perf.md).
   */
  private static final int MAX_ROWS_PER_TASK = 128;
  /** Fewest weight rows per parallel task: a task still streams a few tens of KB. */
  private static final int MIN_ROWS_PER_TASK = 16;
  /**
   * Activation bytes one pass over a block of weight rows may touch: the rows of x it multiplies
   * stay in the core's L2 cache while each block of weight rows is reused across them.
   */
  private static final int ACTIVATION_CHUNK_BYTES = 512 * 1024;
  /**
   * Weight bytes {@link #readAhead} brings into cache at a time (32 rows of a 2048-column bf16
   * matrix): they stay in the core's L2 with the activation chunk. 128-256 KB measured alike, and
   * ahead of 8 and 4 rows (docs/perf.md).
   */
  private static final long READ_AHEAD_BYTES = 128 * 1024;
  /**
   * {@link #sumLanes}'s steps: rotations by LANES/2, LANES/4, ..., 1 lanes, so that adding each to
   * the vector folds its upper half onto its lower half.
   */
  private static final VectorShuffle<Float>[] FOLDS = folds();

  /** {@link MatrixReads}, one hidden copy per {@link Matrix.Format} (by ordinal): see there why. */
  private static final Reads[] READS = matrixReadsPerFormat();

  private Kernels() {}

  /** What {@link MatrixReads} does, for its hidden copies. */
  interface Reads {
    void dot1(float[] x, int xOff, int n, Matrix w, long wOff, float[] lanes);

    void dot8x1(float[] x, int xOff, int n, Matrix w, long wOff, float[] lanes);

    void dot4x4(float[] x, int xOff, int n, Matrix w, long wOff, float[] lanes);

    float dot(float[] a, int aOff, Matrix b, long bIndex, int n, float[] lanes);

    void dot4(float[] q, int qOff, Matrix k, long kIndex, int n, float[] lanes, float scale, float[] out, int outOff, int stride);

    void weightedSum(float[] w, int wOff, Matrix v, long[] at, int count, float[] out, int off, int n);
  }

  /** The copy of {@link MatrixReads} that reads matrices of {@code format}, and only those. */
  static Reads reads(Matrix.Format format) {
    return READS[format.ordinal()];
  }

  private static Reads[] matrixReadsPerFormat() {
    byte[] bytes;
    try (InputStream in = MatrixReads.class.getResourceAsStream(MatrixReads.class.getSimpleName() + ".class")) {
      bytes = in.readAllBytes();
    } catch (IOException e) {
      throw new UncheckedIOException("cannot read the class file of " + MatrixReads.class.getName(), e);
    }
    Reads[] reads = new Reads[Matrix.Format.values().length];
    try {
      for (int f = 0; f < reads.length; f++) {
        MethodHandles.Lookup copy = MethodHandles.lookup().defineHiddenClass(bytes, true);
        reads[f] = (Reads) copy.findConstructor(copy.lookupClass(), MethodType.methodType(void.class)).invoke();
      }
    } catch (Throwable e) {
      throw new IllegalStateException("cannot define a copy of " + MatrixReads.class.getName(), e);
    }
    return reads;
  }

  /**
   * SwiGLU's first half in one section: {@code gate = x @ wGate.T}, {@code up = x @ wUp.T}, then
   * {@code gate = silu(gate) * up} on the block just computed, while it is still in cache. Every
   * element gets exactly the operations of {@link Matmul} followed by {@link #siluMultiply}. Reused
   * like {@link Matmul}.
   */
  static final class Swiglu implements Parallel.Task {
    private final Parallel pool;
    private final float[][] lanes;
    private final boolean bf16;
    private float[] x;
    private int rows;
    private Matrix wGate;
    private Matrix wUp;
    private float[] gate;
    private float[] up;
    private int perTask;

    Swiglu(Parallel pool, float[][] lanes, boolean bf16) {
      this.pool = pool;
      this.lanes = lanes;
      this.bf16 = bf16;
    }

    void apply(float[] x, int rows, Matrix wGate, Matrix wUp, float[] gate, float[] up) {
      this.x = x;
      this.rows = rows;
      this.wGate = wGate;
      this.wUp = wUp;
      this.gate = gate;
      this.up = up;
      this.perTask = rowsPerTask(wGate, pool);
      pool.forEach(Math.ceilDiv(wGate.rows(), perTask), this);
    }

    @Override
    public void run(int task, int worker) {
      int intermediate = wGate.rows();
      int oStart = task * perTask;
      matmulRows(x, rows, wGate, gate, oStart, perTask, bf16, lanes[worker]);
      matmulRows(x, rows, wUp, up, oStart, perTask, bf16, lanes[worker]);
      int n = Math.min(intermediate, oStart + perTask) - oStart;
      for (int r = 0; r < rows; r++) {
        siluMultiply(gate, up, r * intermediate + oStart, n, bf16, lanes[worker]);
      }
    }
  }

  /**
   * Weight rows per parallel task: about four tasks per thread, so that a core that finishes early
   * takes more (with 128-row tasks, the 1B shape's fused q/k/v section had 24 tasks for 32
   * threads), within [MIN, MAX] and a multiple of the 8-row block. Which task computes an output does
   * not change its value.
   */
  static int rowsPerTask(Matrix w, Parallel pool) {
    return Math.clamp(w.rows() / (4 * pool.threads()) / 8 * 8, MIN_ROWS_PER_TASK, MAX_ROWS_PER_TASK);
  }

  /**
   * Output columns {@code [oStart, oStart + count)} of {@code x @ w.T} (fewer at the end), 8 weight
   * rows at a time. Tiles of 4 weight rows x 4 activation rows share their loads (16 independent
   * sums in registers), the activation rows left over take all 8 weight rows at once (eight FMA
   * chains), blocks of weight rows are read into cache by {@link #readAhead} before the tiles use
   * them, each weight row is read from memory once per chunk of activation rows, and every output
   * element still gets the same operations in the same order as {@link MatrixReads#dot1}, so
   * results do not depend on the batch. The tiles are {@link MatrixReads}' copy for w's format.
   */
  static void matmulRows(float[] x, int rows, Matrix w, float[] out, int oStart, int count, boolean bf16Out, float[] lanes) {
    int outDim = w.rows();
    int in = w.columns();
    int chunkRows = Math.max(4, ACTIVATION_CHUNK_BYTES / (in * Float.BYTES) / 4 * 4);
    int oEnd = Math.min(outDim, oStart + count);
    long rowBytes = (long) in * w.format().bytes;
    Reads tiles = reads(w.format());
    int aheadRows = (int) Math.max(8, READ_AHEAD_BYTES / rowBytes / 8 * 8);
    for (int rStart = 0; rStart < rows; rStart += chunkRows) {
      int rEnd = Math.min(rows, rStart + chunkRows);
      int rTiled = rStart + (rEnd - rStart) / 4 * 4;
      int o = oStart;
      for (; o + 8 <= oEnd; o += 8) {
        if ((o - oStart) % aheadRows == 0) {
          int aheadCount = Math.min(aheadRows, oEnd - o);
          readAhead(w.data(), o * rowBytes, aheadCount * rowBytes);
        }
        for (int o4 = o; o4 < o + 8; o4 += 4) {
          for (int r = rStart; r < rTiled; r += 4) {
            tiles.dot4x4(x, r * in, in, w, (long) o4 * in, lanes);
            storeSums(x, r * in, in, w, o4, 4, 4, lanes, out, r * outDim + o4, outDim);
          }
        }
        for (int r = rTiled; r < rEnd; r++) {
          tiles.dot8x1(x, r * in, in, w, (long) o * in, lanes);
          storeSums(x, r * in, in, w, o, 8, 1, lanes, out, r * outDim + o, 0);
        }
      }
      for (; o < oEnd; o++) {
        for (int r = rStart; r < rEnd; r++) {
          tiles.dot1(x, r * in, in, w, (long) o * in, lanes);
          storeSums(x, r * in, in, w, o, 1, 1, lanes, out, r * outDim + o, 0);
        }
      }
      if (bf16Out) {
        roundToBf16(out, outDim, rStart, rEnd, oStart, oEnd);
      }
    }
  }

  /**
   * Rounds the block {@code out[r * outDim + o]} for rows [rStart, rEnd) and columns [oStart, oEnd)
   * to bf16, once the tiles have stored it. Rounding as each tile stores its sums was a call per
   * output element: C2 stops inlining into {@code dot4x4} past its node budget, and the calls cost
   * 15-20% of an int8 matmul at batch 8 (docs/perf.md).
   */
  private static void roundToBf16(float[] out, int outDim, int rStart, int rEnd, int oStart, int oEnd) {
    for (int r = rStart; r < rEnd; r++) {
      roundToBf16(out, r * outDim + oStart, r * outDim + oEnd);
    }
  }

  /**
   * {@code values[from, to)} rounded to bf16 in place, a vector at a time, bit for bit as
   * {@link DType#roundToBf16}: as a scalar loop, the rounding of matmul outputs and SwiGLU's
   * products took 8% of a 2,048-token prefill (docs/perf.md).
   */
  static void roundToBf16(float[] values, int from, int to) {
    int i = from;
    for (; i + LANES <= to; i += LANES) {
      FloatVector v = FloatVector.fromArray(F, values, i);
      IntVector bits = v.reinterpretAsInts();
      IntVector rounded = bits.add(bits.lanewise(VectorOperators.LSHR, 16).and(1).add(0x7fff)).and(0xffff0000);
      IntVector nan = bits.or(0x400000).and(0xffff0000); // DType.floatToBf16 keeps a NaN a NaN
      rounded.blend(nan, v.test(VectorOperators.IS_NAN).cast(I)).reinterpretAsFloats().intoArray(values, i);
    }
    for (; i < to; i++) {
      values[i] = DType.roundToBf16(values[i]);
    }
  }

  /** Where {@link #readAhead} leaves what it read, so that the JIT cannot drop its loads as unused. */
  private static int readAheadSink;

  /**
   * Reads {@code bytes} from {@code offset} with a loop of 64-byte loads and nothing else, to bring a
   * block of weight rows into cache before the tiles multiply it. A loop that also widens and
   * multiplies has few loads in flight at once (the core's window fills with arithmetic), so it
   * streams from memory well below the memory's rate; a loop of loads alone keeps many more in
   * flight, and the tiles then run from cache (docs/perf.md). Each load is the machine's preferred
   * vector width, one per cache line: a wider species than the hardware has (512 bits without
   * AVX-512) would run in Java instead of as single loads.
   */
  private static void readAhead(MemorySegment data, long offset, long bytes) {
    IntVector seen = IntVector.zero(I);
    for (long at = offset, end = offset + bytes - I.vectorByteSize(); at <= end; at += CACHE_LINE_BYTES) {
      seen = seen.or(IntVector.fromMemorySegment(I, data, at, LE));
    }
    readAheadSink = seen.lane(0);
  }

  /** {@code v} as a bf16 tensor stores it when {@code bf16}, else unchanged. */
  static float round(float v, boolean bf16) {
    return bf16 ? DType.roundToBf16(v) : v;
  }

  /**
   * Finishes what a kernel parked for weight rows {@code o..o+wRows-1}: for weight row j and
   * activation row r, the lanes at {@code lanes[(j * xRows + r) * LANES]} are summed by
   * {@link #sumLanes}, the columns past the last whole vector are added one at a time, an int8 row's
   * scale multiplies the sum, and the result goes to {@code out[outOff + r * outDim + j]}.
   *
   * <p>{@link #matmulRows} calls this after each kernel rather than the kernel itself: compiled
   * into {@code dot4x4}, which is past C2's node budget, its calls stayed calls (one per output
   * element, 15-20% of an int8 matmul at batch 8, docs/perf.md).
   */
  private static void storeSums(float[] x, int xOff, int n, Matrix w, int o, int wRows, int xRows,
      float[] lanes, float[] out, int outOff, int outDim) {
    int upper = F.loopBound(n);
    long wOff = (long) o * n;
    float[] scales = w.scales();
    for (int j = 0; j < wRows; j++) {
      for (int r = 0; r < xRows; r++) {
        float sum = sumLanes(lanes, (j * xRows + r) * LANES);
        for (int i = upper; i < n; i++) {
          sum += x[xOff + r * n + i] * MatrixReads.stored(w, wOff + (long) j * n + i);
        }
        if (scales != null) {
          sum *= scales[o + j];
        }
        out[outOff + r * outDim + j] = sum;
      }
    }
  }

  /**
   * The sum of the LANES floats parked at {@code lanes[at]} as a pairwise tree: lane i + LANES/2 is
   * added to lane i, then lane i + LANES/4, and so on down to lane 0. A rotation and an add are
   * exact lane operations, so every JIT tier gives the same result, unlike {@code reduceLanes}.
   *
   * <p>It takes the lanes parked in an array, not a vector: a vector passed to a method that C2
   * does not inline (as happens in a big caller past its node budget) is boxed, an allocation per
   * call that also made attention several times slower in some runs (docs/perf.md).
   */
  static float sumLanes(float[] lanes, int at) {
    FloatVector v = FloatVector.fromArray(F, lanes, at);
    for (VectorShuffle<Float> fold : FOLDS) {
      v = v.add(v.rearrange(fold));
    }
    return v.lane(0);
  }

  @SuppressWarnings("unchecked")
  private static VectorShuffle<Float>[] folds() {
    int steps = Integer.numberOfTrailingZeros(LANES);
    VectorShuffle<Float>[] folds = new VectorShuffle[steps];
    for (int s = 0; s < steps; s++) {
      int by = LANES >>> (s + 1);
      folds[s] = VectorShuffle.fromOp(F, i -> (i + by) % LANES);
    }
    return folds;
  }

  /**
   * Softmax's numerators in place: {@code scores[from, from + n)} become {@code exp(score - max)},
   * max over the range, and their sum is returned (summed lane by lane, then by {@link #sumLanes},
   * then the columns past the last whole vector in order). Each element gets exactly
   * {@link #exp}'s operations, vector body or tail alike.
   *
   * <p>It replaced {@code (float) Math.exp} per score; with silu and bf16 rounding done the same way,
   * a 2,048-token prompt's prefill ran 16-19% faster and its decode 9-14% (docs/perf.md).
   * {@code lanes} is scratch of LANES floats.
   */
  static float softmaxNumerators(float[] scores, int from, int n, float[] lanes) {
    // A scalar max: as a vector loop, this method's vectors ran in the Vector API's Java fallbacks
    // in bf16 runs, 195 KB allocated per token (docs/perf.md).
    float max = Float.NEGATIVE_INFINITY;
    for (int i = from; i < from + n; i++) {
      max = Math.max(max, scores[i]);
    }
    for (int i = from; i < from + n; i++) {
      scores[i] -= max;
    }
    exp(scores, from, from + n);
    int upper = F.loopBound(n);
    FloatVector sums = FloatVector.zero(F);
    for (int i = 0; i < upper; i += LANES) {
      sums = sums.add(FloatVector.fromArray(F, scores, from + i));
    }
    sums.intoArray(lanes, 0);
    float sum = sumLanes(lanes, 0);
    for (int i = upper; i < n; i++) {
      sum += scores[from + i];
    }
    return sum;
  }

  private static final float EXP_LOWEST = -87f;
  private static final float EXP_HIGHEST = 88f;
  private static final float LOG2_E = 1.44269504088896341f;
  /** 1.5 * 2^23: adding it rounds a float of magnitude below 2^22 to an integer, kept in the low mantissa bits. */
  private static final float ROUNDER = 12582912f;
  private static final int ROUNDER_BITS = 0x4B400000;
  /** ln 2 in two parts, the first with few enough bits that {@code n * LN2_HIGH} is exact. */
  private static final float LN2_HIGH = 0.693359375f;
  private static final float LN2_LOW = -2.12194440e-4f;
  /** Cephes' {@code expf} coefficients: e^r ~ 1 + r + r^2 (P5 + r (P4 + r (P3 + r (P2 + r (P1 + r P0))))). */
  private static final float P0 = 1.9875691500e-4f;
  private static final float P1 = 1.3981999507e-3f;
  private static final float P2 = 8.3334519073e-3f;
  private static final float P3 = 4.1665795894e-2f;
  private static final float P4 = 1.6666665459e-1f;
  private static final float P5 = 5.0000001201e-1f;

  /**
   * {@code e^x} in f32, within 1 ulp of {@code (float) Math.exp(x)} on [-87, 88] (KernelsTest
   * measures it), 0 below -87 (under f32's smallest normal) and e^88 above 88. {@code x = n ln2 + r}
   * with n an integer and |r| <= ln2/2; {@code e^r} from Cephes' degree-7 polynomial, times 2^n built
   * in the exponent bits. Only adds, multiplies, fused multiply-adds and bit moves, each exactly
   * rounded, so the interpreter, C1 and C2 all give the same bits, and so does the vector form.
   */
  static float exp(float x) {
    float clamped = Math.min(Math.max(x, EXP_LOWEST), EXP_HIGHEST);
    float rounded = Math.fma(clamped, LOG2_E, ROUNDER);
    float n = rounded - ROUNDER;
    float r = Math.fma(n, -LN2_LOW, Math.fma(n, -LN2_HIGH, clamped));
    float p = Math.fma(Math.fma(Math.fma(Math.fma(Math.fma(P0, r, P1), r, P2), r, P3), r, P4), r, P5);
    float y = Math.fma(p, r * r, r) + 1f;
    float twoToN = Float.intBitsToFloat((Float.floatToRawIntBits(rounded) - (ROUNDER_BITS - 127)) << 23);
    return x < EXP_LOWEST ? 0f : y * twoToN;
  }

  /**
   * {@code x[from, to) = exp(x)} in place, a vector at a time with {@link #exp}'s operations. The
   * vector steps are written out here rather than in a method taking a vector: C2 does not always
   * inline such a method, and then its vector is boxed and its operations run in Java (docs/perf.md).
   */
  static void exp(float[] x, int from, int to) {
    FloatVector log2e = FloatVector.broadcast(F, LOG2_E);
    FloatVector minusLn2High = FloatVector.broadcast(F, -LN2_HIGH);
    FloatVector minusLn2Low = FloatVector.broadcast(F, -LN2_LOW);
    int i = from;
    for (; i + LANES <= to; i += LANES) {
      FloatVector v = FloatVector.fromArray(F, x, i);
      FloatVector clamped = v.max(EXP_LOWEST).min(EXP_HIGHEST);
      FloatVector rounded = clamped.fma(log2e, FloatVector.broadcast(F, ROUNDER));
      FloatVector n = rounded.sub(ROUNDER);
      FloatVector r = n.fma(minusLn2Low, n.fma(minusLn2High, clamped));
      FloatVector p = r.fma(P0, P1).fma(r, FloatVector.broadcast(F, P2)).fma(r, FloatVector.broadcast(F, P3))
          .fma(r, FloatVector.broadcast(F, P4)).fma(r, FloatVector.broadcast(F, P5));
      FloatVector y = p.fma(r.mul(r), r).add(1f);
      FloatVector twoToN = rounded.reinterpretAsInts().sub(ROUNDER_BITS - 127).lanewise(VectorOperators.LSHL, 23).reinterpretAsFloats();
      y.mul(twoToN).blend(0f, v.compare(VectorOperators.LT, EXP_LOWEST)).intoArray(x, i);
    }
    for (; i < to; i++) {
      x[i] = exp(x[i]);
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
      x[i] = round(x[i] + y[i], bf16);
    }
  }

  /**
   * SwiGLU's gate: {@code gate = silu(gate) * up} on {@code [off, off+n)}, with
   * {@code silu(g) = g / (1 + exp(-g))} and {@link #exp}; in bf16 both results are bf16.
   * Element-wise passes over {@code scratch}-sized pieces, as the vector exp works in place on an
   * array of its own; every element gets the same operations.
   */
  static void siluMultiply(float[] gate, float[] up, int off, int n, boolean bf16, float[] scratch) {
    for (int start = off, end = off + n; start < end; start += scratch.length) {
      int count = Math.min(scratch.length, end - start);
      for (int k = 0; k < count; k++) {
        scratch[k] = -gate[start + k];
      }
      exp(scratch, 0, count);
      for (int k = 0; k < count; k++) {
        gate[start + k] = gate[start + k] / (1f + scratch[k]);
      }
      if (bf16) {
        roundToBf16(gate, start, start + count);
      }
      for (int k = 0; k < count; k++) {
        gate[start + k] *= up[start + k];
      }
      if (bf16) {
        roundToBf16(gate, start, start + count);
      }
    }
  }
}
