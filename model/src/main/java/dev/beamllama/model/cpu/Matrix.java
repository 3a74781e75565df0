package dev.beamllama.model.cpu;

import dev.beamllama.model.safetensors.Tensor;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import jdk.incubator.vector.ByteVector;
import jdk.incubator.vector.FloatVector;
import jdk.incubator.vector.IntVector;
import jdk.incubator.vector.VectorOperators;
import jdk.incubator.vector.VectorShape;
import jdk.incubator.vector.VectorSpecies;

/**
 * A weight matrix [rows, columns] as the CPU kernels read it: the checkpoint's own f32 or bf16
 * tensor in place, or an int8 copy with one f32 scale per {@link #GROUP} consecutive weights of a
 * row (symmetric, {@code w ~ q * scale}, {@code scale = max|w| / 127}, {@code q = w / scale}
 * rounded to nearest). int8 halves the bytes a decode step reads, and batch-1 decode is bound by
 * those bytes.
 */
record Matrix(int rows, int columns, Format format, MemorySegment data, float[] scales) {
  enum Format {
    F32(4),
    BF16(2),
    INT8(1);

    /** Bytes of one weight (int8 scales apart). */
    final int bytes;

    Format(int bytes) {
      this.bytes = bytes;
    }
  }

  /** Weights per int8 scale: a multiple of every vector length, so a vector never straddles two groups. */
  static final int GROUP = 32;
  /** log2(GROUP): a weight's scale is {@code scales[index >>> GROUP_SHIFT]} (its row's groups are consecutive). */
  static final int GROUP_SHIFT = 5;

  /** The tensor read in place (f32 or bf16, as the checkpoint stores it). */
  static Matrix of(Tensor t) {
    Format format = switch (t.dtype()) {
      case F32 -> Format.F32;
      case BF16 -> Format.BF16;
      default -> throw new IllegalArgumentException(t.name() + ": the CPU kernels read f32 or bf16 weights, not " + t.dtype());
    };
    return new Matrix(t.rows(), t.columns(), format, t.data(), null);
  }

  /** True when {@link #int8} can quantize {@code t}: its rows split into whole groups. */
  static boolean quantizable(Tensor t) {
    return t.columns() % GROUP == 0;
  }

  /** An int8 copy of {@code t} in {@code arena}, quantized on {@code pool}'s threads; an all-zero group has scale 0. */
  static Matrix int8(Tensor t, Arena arena, Parallel pool) {
    if (!quantizable(t)) {
      throw new IllegalArgumentException(t.name() + ": " + t.columns() + " columns do not split into groups of " + GROUP);
    }
    int rows = t.rows();
    int columns = t.columns();
    int groups = columns / GROUP;
    MemorySegment q = arena.allocate((long) rows * columns, 64);
    float[] scales = new float[Math.multiplyExact(rows, groups)];
    int rowsPerTask = 64;
    pool.forEach(Math.ceilDiv(rows, rowsPerTask), (task, worker) -> {
      float[] row = new float[columns];
      byte[] quantized = new byte[columns];
      for (int r = task * rowsPerTask; r < Math.min(rows, (task + 1) * rowsPerTask); r++) {
        t.readRow(r, row, 0);
        for (int g = 0; g < groups; g++) {
          scales[r * groups + g] = quantizeGroup(row, quantized, g * GROUP);
        }
        MemorySegment.copy(quantized, 0, q, ValueLayout.JAVA_BYTE, (long) r * columns, columns);
      }
    });
    return new Matrix(rows, columns, Format.INT8, q, scales);
  }

  private static final VectorSpecies<Float> F = Kernels.F;
  private static final VectorSpecies<Integer> I = VectorSpecies.of(int.class, F.vectorShape());
  private static final VectorSpecies<Byte> B = VectorSpecies.of(byte.class, VectorShape.forBitSize(F.vectorBitSize() / 4));

  /**
   * Quantizes {@code row[at, at+GROUP)} into {@code out} and returns its scale: {@code max|w| / 127},
   * each weight {@code w / scale} rounded to nearest (ties away from zero), clamped to [-127, 127].
   */
  private static float quantizeGroup(float[] row, byte[] out, int at) {
    FloatVector max = FloatVector.zero(F);
    for (int i = at; i < at + GROUP; i += F.length()) {
      max = max.max(FloatVector.fromArray(F, row, i).abs());
    }
    float scale = max.reduceLanes(VectorOperators.MAX) / 127f;
    for (int i = at; i < at + GROUP; i += F.length()) {
      FloatVector v = scale == 0f ? FloatVector.zero(F) : FloatVector.fromArray(F, row, i).div(scale);
      FloatVector half = FloatVector.broadcast(F, 0.5f).blend(-0.5f, v.compare(VectorOperators.LT, 0f));
      IntVector q = (IntVector) v.add(half).convertShape(VectorOperators.F2I, I, 0);
      ((ByteVector) q.max(-127).min(127).convertShape(VectorOperators.I2B, B, 0)).intoArray(out, i);
    }
    return scale;
  }

  /** Bytes a pass over every weight reads. */
  long bytes() {
    long scaleBytes = scales == null ? 0 : (long) scales.length * Float.BYTES;
    return (long) rows * columns * format.bytes + scaleBytes;
  }
}
