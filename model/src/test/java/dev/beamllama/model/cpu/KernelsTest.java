package dev.beamllama.model.cpu;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertSame;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.beamllama.model.safetensors.DType;
import dev.beamllama.model.safetensors.Tensor;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.ByteOrder;
import java.util.HashSet;
import java.util.Random;
import java.util.Set;
import org.junit.jupiter.api.Test;
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
      Matmul matmul = new Matmul(pool, new float[pool.threads()][Kernels.SCRATCH_FLOATS], false);
      float[] batched = new float[rows * OUT];
      matmul.apply(x, rows, w, batched);
      float[] rounded = new float[rows * OUT];
      new Matmul(pool, new float[pool.threads()][Kernels.SCRATCH_FLOATS], true).apply(x, rows, w, rounded);
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
            want += (double) row[i] * MatrixReads.stored(w, (long) o * IN + i);
          }
          if (w.scales() != null) {
            want *= w.scales()[o];
          }
          assertTrue(Math.abs(alone[o] - want) <= 1e-4 * (1 + Math.abs(want)), format + " row " + r + " output " + o + ": " + alone[o] + " vs " + want);
        }
      }
    }
  }

  @ParameterizedTest
  @ValueSource(strings = {"f32", "bf16"})
  void aTensorOffACacheLineIsCopiedToOneAndReadTheSame(String format) {
    // Safetensors leaves tensors wherever its header ends (40 bytes into a line in the benchmark
    // checkpoint); the kernels' loads straddled lines there (docs/perf.md).
    Random random = new Random(12);
    float[] x = new float[5 * IN];
    for (int i = 0; i < x.length; i++) {
      x[i] = (float) random.nextGaussian();
    }
    try (Arena arena = Arena.ofShared(); Parallel pool = new Parallel(2)) {
      Matrix aligned = matrix(format, arena, pool, random);
      assertEquals(0, aligned.data().address() % Matrix.ALIGNMENT, "a tensor on a line's start stays where it is");
      MemorySegment offLine = arena.allocate(aligned.data().byteSize() + Matrix.ALIGNMENT, Matrix.ALIGNMENT).asSlice(40, aligned.data().byteSize());
      offLine.copyFrom(aligned.data());
      Tensor t = new Tensor("w", format.equals("bf16") ? DType.BF16 : DType.F32, new long[] {OUT, IN}, offLine);
      Matrix copied = Matrix.of(t, arena, pool);
      assertEquals(0, copied.data().address() % Matrix.ALIGNMENT, "the copy starts on a line");
      assertEquals(-1, copied.data().mismatch(offLine), "the copy holds the tensor's bytes");
      Matmul matmul = new Matmul(pool, new float[pool.threads()][Kernels.SCRATCH_FLOATS], false);
      float[] want = new float[5 * OUT];
      float[] got = new float[5 * OUT];
      matmul.apply(x, 5, aligned, want);
      matmul.apply(x, 5, copied, got);
      for (int i = 0; i < want.length; i++) {
        assertEquals(Float.floatToRawIntBits(want[i]), Float.floatToRawIntBits(got[i]), format + " output " + i);
      }
    }
  }

  @Test
  void eachFormatIsReadByAHiddenCopyOfMatrixReadsOfItsOwn() {
    // One shared copy made a JVM with two formats box every vector load (docs/perf.md).
    Set<Class<?>> classes = new HashSet<>();
    for (Matrix.Format format : Matrix.Format.values()) {
      Class<?> copy = Kernels.reads(format).getClass();
      assertTrue(copy.isHidden(), copy + " is a hidden class");
      assertTrue(copy.getName().startsWith(MatrixReads.class.getName() + "/"), copy.getName());
      assertSame(copy, Kernels.reads(format).getClass(), "one copy per format for the JVM's life");
      classes.add(copy);
    }
    assertEquals(Matrix.Format.values().length, classes.size(), "a copy per format: " + classes);
  }

  @Test
  void expIsWithinOneUlpOfMathExpAndItsVectorLoopGivesTheSameBits() {
    float[] xs = new float[200_003];
    Random random = new Random(11);
    for (int i = 0; i < xs.length; i++) {
      xs[i] = i < 100_000 ? -87f * i / 100_000 : (float) (random.nextDouble() * 175 - 87); // [-87, 88)
    }
    int worstUlps = 0;
    for (float x : xs) {
      float want = (float) Math.exp(x);
      float got = Kernels.exp(x);
      worstUlps = Math.max(worstUlps, Math.abs(Float.floatToRawIntBits(got) - Float.floatToRawIntBits(want)));
    }
    assertTrue(worstUlps <= 1, "worst error " + worstUlps + " ulp");
    assertEquals(1f, Kernels.exp(0f));
    assertEquals(1f, Kernels.exp(-0f));
    assertEquals(0f, Kernels.exp(-87.5f));
    assertEquals(0f, Kernels.exp(Float.NEGATIVE_INFINITY));

    float[] special = {0f, -0f, -86.99f, -87f, -87.01f, -1000f, Float.NEGATIVE_INFINITY, 88f, -0.3465736f, 0.3465736f, -1e-30f};
    float[] all = new float[xs.length + special.length];
    System.arraycopy(xs, 0, all, 0, xs.length);
    System.arraycopy(special, 0, all, xs.length, special.length);
    float[] inPlace = all.clone();
    Kernels.exp(inPlace, 1, all.length); // vectors from 1, the rest one at a time
    assertEquals(all[0], inPlace[0]);
    for (int i = 1; i < all.length; i++) {
      assertEquals(Float.floatToRawIntBits(Kernels.exp(all[i])), Float.floatToRawIntBits(inPlace[i]), "exp(" + all[i] + ")");
    }
  }

  @Test
  void vectorBf16RoundingAndSiluGiveTheirScalarDefinitionsBits() {
    Random random = new Random(9);
    int n = 5 * Kernels.LANES + 3;
    float[] values = new float[n];
    for (int i = 0; i < n; i++) {
      values[i] = switch (i % 7) {
        case 0 -> Float.intBitsToFloat(random.nextInt()); // any bits, NaNs and infinities included
        case 1 -> Float.intBitsToFloat((random.nextInt() & 0xffff0000) | 0x8000); // a tie
        default -> (float) (random.nextGaussian() * Math.pow(10, random.nextInt(9) - 4));
      };
    }
    // NaNs whose payload is all in the bits rounding drops (plain rounding would make them
    // infinities), infinities, the largest float (rounds to infinity), signed zeros.
    int[] special = {0x7f800001, 0xff800001, 0x7fc00000, 0x7f800000, 0xff800000, 0x7f7fffff, 0x80000000, 0};
    for (int k = 0; k < special.length; k++) {
      values[1 + k * 3] = Float.intBitsToFloat(special[k]);
    }
    float[] rounded = values.clone();
    Kernels.roundToBf16(rounded, 1, n);
    assertEquals(Float.floatToRawIntBits(values[0]), Float.floatToRawIntBits(rounded[0]), "before the range");
    for (int i = 1; i < n; i++) {
      assertEquals(Float.floatToRawIntBits(DType.roundToBf16(values[i])), Float.floatToRawIntBits(rounded[i]), "rounding " + values[i]);
    }

    for (boolean bf16 : new boolean[] {false, true}) {
      float[] gate = new float[n];
      float[] up = new float[n];
      for (int i = 0; i < n; i++) {
        gate[i] = i == 0 ? -100f : i == 1 ? 100f : (float) (random.nextGaussian() * 6);
        up[i] = (float) random.nextGaussian();
      }
      float[] got = gate.clone();
      Kernels.siluMultiply(got, up, 0, n, bf16, new float[2 * Kernels.LANES + 1]); // pieces of odd sizes
      for (int i = 0; i < n; i++) {
        float silu = gate[i] / (1f + Kernels.exp(-gate[i]));
        float want = bf16 ? DType.roundToBf16(DType.roundToBf16(silu) * up[i]) : silu * up[i];
        assertEquals(Float.floatToRawIntBits(want), Float.floatToRawIntBits(got[i]), "silu(" + gate[i] + ") * " + up[i]);
        double exact = gate[i] / (1 + Math.exp(-gate[i])) * up[i];
        assertEquals(exact, got[i], Math.abs(exact) * (bf16 ? 1e-2 : 1e-6) + 1e-30, "against double precision");
      }
    }
  }

  @Test
  void softmaxNumeratorsAreEachScoresExpFromTheMaxAndSumInTheirDocumentedOrder() {
    Random random = new Random(3);
    float[] lanes = new float[Kernels.SCRATCH_FLOATS];
    for (int n : new int[] {1, Kernels.LANES - 1, Kernels.LANES, 3 * Kernels.LANES + 5}) {
      float[] scores = new float[n + 4];
      for (int i = 0; i < scores.length; i++) {
        scores[i] = (float) (random.nextGaussian() * 8);
      }
      float[] original = scores.clone();
      float sum = Kernels.softmaxNumerators(scores, 2, n, lanes);
      float max = Float.NEGATIVE_INFINITY;
      for (int i = 2; i < 2 + n; i++) {
        max = Math.max(max, original[i]);
      }
      int upper = n / Kernels.LANES * Kernels.LANES;
      float[] laneSums = new float[Kernels.LANES];
      for (int i = 0; i < n; i++) {
        float e = Kernels.exp(original[2 + i] - max);
        assertEquals(Float.floatToRawIntBits(e), Float.floatToRawIntBits(scores[2 + i]), n + " scores, element " + i);
        if (i < upper) {
          laneSums[i % Kernels.LANES] += e;
        }
      }
      float want = Kernels.sumLanes(laneSums, 0);
      for (int i = upper; i < n; i++) {
        want += scores[2 + i];
      }
      assertEquals(want, sum, n + " scores: sum");
      assertEquals(original[0], scores[0]);
      assertEquals(original[n + 3], scores[n + 3], "past the range");
    }
  }

  @ParameterizedTest
  @ValueSource(booleans = {false, true})
  void attentionKernelsGiveWhatTheirOneElementDefinitionsGive(boolean bf16) {
    Random random = new Random(5);
    int positions = 7;
    try (Arena arena = Arena.ofConfined()) {
      // Vectors of IN values at scattered offsets, as a paged cache holds a head's keys and values.
      int rows = (positions + 3) * 2;
      MemorySegment data = arena.allocate((long) rows * IN * (bf16 ? 2 : 4), 64);
      for (long i = 0; i < (long) rows * IN; i++) {
        float v = (float) random.nextGaussian();
        if (bf16) {
          data.setAtIndex(ValueLayout.JAVA_SHORT_UNALIGNED.withOrder(ByteOrder.LITTLE_ENDIAN), i, DType.floatToBf16(v));
        } else {
          data.setAtIndex(ValueLayout.JAVA_FLOAT_UNALIGNED.withOrder(ByteOrder.LITTLE_ENDIAN), i, v);
        }
      }
      Matrix cache = new Matrix(rows, IN, bf16 ? Matrix.Format.BF16 : Matrix.Format.F32, data, null);
      Kernels.Reads reads = Kernels.reads(cache.format());
      long[] at = new long[positions];
      for (int j = 0; j < positions; j++) {
        at[j] = (long) ((j * 3) % (positions + 3)) * 2 * IN + (j % 2);
      }
      float[] weights = new float[positions];
      for (int j = 0; j < positions; j++) {
        weights[j] = random.nextFloat();
      }
      float[] out = new float[IN + 3];
      reads.weightedSum(weights, 0, cache, at, positions, out, 3, IN);
      for (int c = 0; c < IN; c++) {
        float want = 0f;
        for (int j = 0; j < positions; j++) {
          want = Math.fma(MatrixReads.stored(cache, at[j] + c), weights[j], want);
        }
        assertEquals(Float.floatToRawIntBits(want), Float.floatToRawIntBits(out[3 + c]), "weighted sum, column " + c);
      }

      float[] q = new float[4 * IN];
      for (int i = 0; i < q.length; i++) {
        q[i] = (float) random.nextGaussian();
      }
      float[] lanes = new float[Kernels.SCRATCH_FLOATS];
      float[] scores = new float[4 * positions];
      for (int j = 0; j < positions; j++) {
        reads.dot4(q, 0, cache, at[j], IN, lanes, 0.125f, scores, j, positions);
        for (int g = 0; g < 4; g++) {
          float want = reads.dot(q, g * IN, cache, at[j], IN, lanes) * 0.125f;
          assertEquals(Float.floatToRawIntBits(want), Float.floatToRawIntBits(scores[g * positions + j]), "head " + g + ", position " + j);
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
    return format.equals("int8") ? Matrix.int8(t, arena, pool) : Matrix.of(t, arena, pool);
  }
}
