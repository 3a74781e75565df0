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
 * A matrix [rows, columns] as the CPU kernels read it ({@link MatrixReads}): a layer's keys or
 * values in the {@link KvCache}, or a weight, either the checkpoint's own f32 or bf16 tensor (in
 * place, or copied to a cache line's start) or an int8 copy with one f32 scale per row, that is per output channel
 * (symmetric, {@code w ~ q * scale}, {@code scale = max|w| / 127} over the row, {@code q = w / scale}
 * rounded to nearest). int8 halves the bytes a decode step reads, and batch-1 decode is bound by
 * those bytes. With one scale per row the kernels multiply the integers themselves and scale each
 * dot product once; a scale per 32 weights cost a multiply and a scale load per weight vector,
 * which made the batched tile about 30% slower than this one (docs/perf.md).
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

  /** Where a matrix must start for the kernels' vector loads to stay within cache lines. */
  static final int ALIGNMENT = 64;
  /** Bytes one task of an aligned copy moves. */
  private static final long COPY_CHUNK_BYTES = 16L << 20;

  /**
   * The tensor as the checkpoint stores it (f32 or bf16): in place when its data starts on a cache
   * line, else an aligned copy in {@code arena}, made on {@code pool}'s threads. Safetensors puts
   * every tensor right after a header of any length, so a whole file's weights usually sit off the
   * line (40 bytes into one in the benchmark checkpoint): half the tiles' 32-byte bf16 loads and
   * every read-ahead load then straddle two lines, and the same engine's matmuls ran at 70-83 G
   * multiply-adds/s on its mapped weights against 101-111 on aligned copies (docs/perf.md). The
   * copy holds the weights' bytes in anonymous memory; the file's pages are the kernel's to drop.
   */
  static Matrix of(Tensor t, Arena arena, Parallel pool) {
    Format format = switch (t.dtype()) {
      case F32 -> Format.F32;
      case BF16 -> Format.BF16;
      default -> throw new IllegalArgumentException(t.name() + ": the CPU kernels read f32 or bf16 weights, not " + t.dtype());
    };
    MemorySegment data = t.data().address() % ALIGNMENT == 0 ? plain(t.data()) : alignedCopy(t, arena, pool);
    return new Matrix(t.rows(), t.columns(), format, data, null);
  }

  private static MemorySegment alignedCopy(Tensor t, Arena arena, Parallel pool) {
    MemorySegment from = t.data();
    long bytes = from.byteSize();
    MemorySegment to = NativeMemory.allocate(bytes, arena, "an aligned copy of " + t.name(),
        "use --weights=int8 (half the bytes) or a machine with more memory");
    pool.forEach(Math.toIntExact(Math.ceilDiv(bytes, COPY_CHUNK_BYTES)), (task, worker) -> {
      long at = task * COPY_CHUNK_BYTES;
      MemorySegment.copy(from, at, to, at, Math.min(COPY_CHUNK_BYTES, bytes - at));
    });
    return to;
  }

  /**
   * The same memory, with the same lifetime, as a plain native segment rather than a file mapping,
   * as the copies and the KV cache are. The JDK's vector loads are shared by every caller and
   * compile for the segment classes they have seen: a mapped class beside the native one (bf16
   * weights from the mapping, a bf16 KV cache) made bf16 decode ~35% slower (docs/perf.md).
   */
  private static MemorySegment plain(MemorySegment mapped) {
    return mapped.reinterpret(mapped.byteSize());
  }

  /** An int8 copy of {@code t} in {@code arena} ({@link NativeMemory}), quantized on {@code pool}'s threads; an all-zero row has scale 0. */
  static Matrix int8(Tensor t, Arena arena, Parallel pool) {
    int rows = t.rows();
    int columns = t.columns();
    MemorySegment q = NativeMemory.allocate((long) rows * columns, arena, "the int8 copy of " + t.name(),
        "use the checkpoint's own weights (--weights=checkpoint) or a machine with more memory");
    float[] scales = new float[rows];
    int rowsPerTask = 64;
    pool.forEach(Math.ceilDiv(rows, rowsPerTask), (task, worker) -> {
      float[] row = new float[columns];
      byte[] quantized = new byte[columns];
      for (int r = task * rowsPerTask; r < Math.min(rows, (task + 1) * rowsPerTask); r++) {
        t.readRow(r, row, 0);
        scales[r] = quantizeRow(row, quantized);
        MemorySegment.copy(quantized, 0, q, ValueLayout.JAVA_BYTE, (long) r * columns, columns);
      }
    });
    return new Matrix(rows, columns, Format.INT8, q, scales);
  }

  private static final VectorSpecies<Float> F = Kernels.F;
  private static final VectorSpecies<Integer> I = VectorSpecies.of(int.class, F.vectorShape());
  private static final VectorSpecies<Byte> B = VectorSpecies.of(byte.class, VectorShape.forBitSize(F.vectorBitSize() / 4));

  /**
   * Quantizes {@code row} into {@code out} and returns its scale: {@code max|w| / 127}, each weight
   * {@code w / scale} rounded to nearest (ties away from zero), clamped to [-127, 127].
   */
  private static float quantizeRow(float[] row, byte[] out) {
    int upper = F.loopBound(row.length);
    FloatVector max = FloatVector.zero(F);
    for (int i = 0; i < upper; i += F.length()) {
      max = max.max(FloatVector.fromArray(F, row, i).abs());
    }
    float maxAbs = max.reduceLanes(VectorOperators.MAX);
    for (int i = upper; i < row.length; i++) {
      maxAbs = Math.max(maxAbs, Math.abs(row[i]));
    }
    float scale = maxAbs / 127f;
    for (int i = 0; i < upper; i += F.length()) {
      FloatVector v = scale == 0f ? FloatVector.zero(F) : FloatVector.fromArray(F, row, i).div(scale);
      FloatVector half = FloatVector.broadcast(F, 0.5f).blend(-0.5f, v.compare(VectorOperators.LT, 0f));
      IntVector q = (IntVector) v.add(half).convertShape(VectorOperators.F2I, I, 0);
      ((ByteVector) q.max(-127).min(127).convertShape(VectorOperators.I2B, B, 0)).intoArray(out, i);
    }
    for (int i = upper; i < row.length; i++) {
      float v = scale == 0f ? 0f : row[i] / scale;
      out[i] = (byte) Math.clamp((int) (v + (v < 0f ? -0.5f : 0.5f)), -127, 127);
    }
    return scale;
  }

  /** Bytes a pass over every weight reads. */
  long bytes() {
    long scaleBytes = scales == null ? 0 : (long) scales.length * Float.BYTES;
    return (long) rows * columns * format.bytes + scaleBytes;
  }
}
