package dev.beamllama.model.cpu;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.beamllama.model.safetensors.DType;
import dev.beamllama.model.safetensors.Tensor;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.util.Random;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

/**
 * The matmul's tile paths (4x4 tiles, 8 weight rows x 1, single rows) on shapes with leftover rows
 * and columns: a row's outputs are bit-identical whatever rows share its call, and close to a plain
 * double-precision dot product of the weights as stored (int8: times the row's scale); with bf16
 * outputs, each is that same sum rounded to bf16.
 */
class KernelsTest {
  private static final int OUT = 37; // 4 blocks of 8 weight rows and 5 single rows
  private static final int IN = 100; // not a multiple of any vector length

  @ParameterizedTest
  @ValueSource(strings = {"f32", "bf16", "int8"})
  void eachRowIsTheSameAloneAndInAnyBatch(String format) {
    Random random = new Random(11);
    int rows = 11; // two rows of 4x4 tiles and three rows that take 8 weight rows at once
    float[] x = new float[rows * IN];
    for (int i = 0; i < x.length; i++) {
      x[i] = (float) random.nextGaussian();
    }
    try (Arena arena = Arena.ofShared(); Parallel pool = new Parallel(2)) {
      Matrix w = matrix(format, arena, pool, random);
      Kernels.Matmul matmul = new Kernels.Matmul(pool, new float[pool.threads()][Kernels.SCRATCH_FLOATS], false);
      float[] batched = new float[rows * OUT];
      matmul.apply(x, rows, w, batched);
      float[] rounded = new float[rows * OUT];
      new Kernels.Matmul(pool, new float[pool.threads()][Kernels.SCRATCH_FLOATS], true).apply(x, rows, w, rounded);
      for (int i = 0; i < batched.length; i++) {
        assertEquals(Float.floatToRawIntBits(DType.roundToBf16(batched[i])), Float.floatToRawIntBits(rounded[i]),
            format + " output " + i + " with bf16 outputs: " + rounded[i] + ", not " + batched[i] + " rounded");
      }
      for (int r = 0; r < rows; r++) {
        float[] row = java.util.Arrays.copyOfRange(x, r * IN, (r + 1) * IN);
        float[] alone = new float[OUT];
        matmul.apply(row, 1, w, alone);
        for (int o = 0; o < OUT; o++) {
          assertEquals(Float.floatToRawIntBits(alone[o]), Float.floatToRawIntBits(batched[r * OUT + o]),
              format + " row " + r + " output " + o + ": " + alone[o] + " alone, " + batched[r * OUT + o] + " in the batch");
          double want = 0;
          for (int i = 0; i < IN; i++) {
            want += (double) row[i] * Kernels.stored(w, (long) o * IN + i);
          }
          if (w.scales() != null) {
            want *= w.scales()[o];
          }
          assertTrue(Math.abs(alone[o] - want) <= 1e-4 * (1 + Math.abs(want)), format + " row " + r + " output " + o + ": " + alone[o] + " vs " + want);
        }
      }
    }
  }

  private static Matrix matrix(String format, Arena arena, Parallel pool, Random random) {
    boolean bf16 = format.equals("bf16");
    MemorySegment data = arena.allocate((long) OUT * IN * (bf16 ? 2 : 4), 64);
    for (long i = 0; i < (long) OUT * IN; i++) {
      float v = (float) random.nextGaussian() * 0.1f;
      if (bf16) {
        data.setAtIndex(ValueLayout.JAVA_SHORT_UNALIGNED, i, (short) (Float.floatToRawIntBits(v) >>> 16));
      } else {
        data.setAtIndex(ValueLayout.JAVA_FLOAT_UNALIGNED, i, v);
      }
    }
    Tensor t = new Tensor("w", bf16 ? DType.BF16 : DType.F32, new long[] {OUT, IN}, data);
    return format.equals("int8") ? Matrix.int8(t, arena, pool) : Matrix.of(t);
  }
}
