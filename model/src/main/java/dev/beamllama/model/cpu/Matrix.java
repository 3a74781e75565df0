package dev.beamllama.model.cpu;

import dev.beamllama.model.safetensors.Tensor;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;

/**
 * A weight matrix [rows, columns] as the CPU kernels read it: the checkpoint's own f32 or bf16
 * tensor in place, or an int8 copy with one f32 scale per {@link #GROUP} consecutive weights of a
 * row (symmetric, {@code w ~ q * scale}, {@code scale = max|w| / 127}). int8 halves the bytes a
 * decode step reads, and batch-1 decode is bound by those bytes.
 */
record Matrix(String name, int rows, int columns, Format format, MemorySegment data, float[] scales) {
  enum Format {
    F32,
    BF16,
    INT8
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
    return new Matrix(t.name(), t.rows(), t.columns(), format, t.data(), null);
  }

  /** True when {@link #int8} can quantize {@code t}: its rows split into whole groups. */
  static boolean quantizable(Tensor t) {
    return t.columns() % GROUP == 0;
  }

  /**
   * An int8 copy of {@code t} in {@code arena}, quantized on {@code pool}'s threads. Each weight is
   * {@code round(w / scale)} clamped to [-127, 127]; an all-zero group has scale 0.
   */
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
    pool.forEach((rows + rowsPerTask - 1) / rowsPerTask, (task, worker) -> {
      float[] row = new float[columns];
      for (int r = task * rowsPerTask; r < Math.min(rows, (task + 1) * rowsPerTask); r++) {
        t.readRow(r, row, 0);
        for (int g = 0; g < groups; g++) {
          float max = 0f;
          for (int i = g * GROUP; i < (g + 1) * GROUP; i++) {
            max = Math.max(max, Math.abs(row[i]));
          }
          float scale = max / 127f;
          scales[r * groups + g] = scale;
          for (int i = g * GROUP; i < (g + 1) * GROUP; i++) {
            int v = scale == 0f ? 0 : Math.round(row[i] / scale);
            q.set(ValueLayout.JAVA_BYTE, (long) r * columns + i, (byte) Math.max(-127, Math.min(127, v)));
          }
        }
      }
    });
    return new Matrix(t.name(), rows, columns, Format.INT8, q, scales);
  }

  /** Bytes a pass over every weight reads. */
  long bytes() {
    long elements = (long) rows * columns;
    return switch (format) {
      case F32 -> elements * Float.BYTES;
      case BF16 -> elements * 2;
      case INT8 -> elements + (long) scales.length * Float.BYTES;
    };
  }
}
