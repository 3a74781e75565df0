package dev.beamllama.model.cuda;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.util.Random;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;

/**
 * The engine's GEMMs take one algorithm per weight shape: where cuBLASLt's heuristic offers a
 * split-K algorithm (the emulated device does for one row over a long k, as cuBLASLt does), the
 * one chosen sums k in one pass, so a row gets {@code cublasGemmEx}'s bits on the emulated device
 * and the same bits alone and in a batch. f32, where a split sum's other rounding shows. On a GPU
 * or the emulated CUDA device.
 */
class CublasLtTest {
  private static final int OUT = 96;
  private static final int IN = 1024;
  private static final int MAX_ROWS = 16;
  private final Releases resources = new Releases();
  private CudaDriver driver;
  private MemorySegment stream;
  private CublasLt lt;
  private long weight;
  private long x;
  private long y;

  @BeforeEach
  void gpu() {
    CudaTestDevice.require();
    driver = CudaDriver.open(0);
    resources.add(driver::close);
    MemorySegment created = driver.createStream();
    resources.add(() -> driver.destroyStream(created));
    stream = created;
    lt = new CublasLt(driver, stream);
    resources.add(lt::close);
    weight = upload(OUT * IN, 1);
    x = upload(MAX_ROWS * IN, 2);
    y = device((long) MAX_ROWS * OUT * Float.BYTES);
  }

  @AfterEach
  void release() {
    resources.close();
  }

  @Test
  void whereTheHeuristicSplitsKTheChosenAlgorithmDoesNot() {
    CublasLt.Linear linear = lt.linear("test", weight, OUT, IN, false, 1, MAX_ROWS);
    linear.run(y, x, weight, 1);
    float[] got = download(y, OUT);
    long reference = device((long) OUT * Float.BYTES);
    Cublas cublas = new Cublas(driver, stream);
    try {
      cublas.linear(reference, x, weight, 1, IN, OUT, false);
    } finally {
      cublas.close();
    }
    assertArrayEquals(download(reference, OUT), got, "one pass over k: cublasGemmEx's sums on the emulated device");
  }

  @Test
  void aRowHasTheSameBitsAloneAndInABatch() {
    CublasLt.Linear linear = lt.linear("test", weight, OUT, IN, false, MAX_ROWS, MAX_ROWS);
    float[] batched = null;
    for (int rows : new int[] {MAX_ROWS, 9, 1}) {
      linear.run(y, x, weight, rows);
      float[] got = download(y, rows * OUT);
      if (batched == null) {
        batched = got;
      } else {
        for (int i = 0; i < got.length; i++) {
          assertTrue(Float.floatToRawIntBits(got[i]) == Float.floatToRawIntBits(batched[i]),
              "row " + i / OUT + " column " + i % OUT + " at " + rows + " rows");
        }
      }
    }
  }

  @Test
  void rowsOutsideTheSizingAreRefused() {
    CublasLt.Linear linear = lt.linear("test", weight, OUT, IN, false, MAX_ROWS, MAX_ROWS);
    IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> linear.run(y, x, weight, MAX_ROWS + 1));
    assertTrue(e.getMessage().contains("sized for up to 16"), e.getMessage());
    assertThrows(IllegalArgumentException.class, () -> linear.run(y, x, weight, -1));
  }

  private long device(long bytes) {
    long pointer = driver.alloc(bytes);
    resources.add(() -> driver.free(pointer));
    return pointer;
  }

  /** {@code count} f32 values with full mantissas, so that sums in another order round differently. */
  private long upload(int count, long seed) {
    Random random = new Random(seed);
    long pointer = device((long) count * Float.BYTES);
    try (Arena arena = Arena.ofConfined()) {
      MemorySegment host = arena.allocate((long) count * Float.BYTES, 8);
      for (int i = 0; i < count; i++) {
        host.setAtIndex(ValueLayout.JAVA_FLOAT, i, (float) random.nextGaussian());
      }
      driver.copyToDevice(pointer, host, host.byteSize());
    }
    return pointer;
  }

  private float[] download(long pointer, int count) {
    driver.synchronize(stream);
    float[] out = new float[count];
    try (Arena arena = Arena.ofConfined()) {
      MemorySegment host = arena.allocate((long) count * Float.BYTES, 8);
      driver.copyToHost(host, pointer, host.byteSize());
      MemorySegment.copy(host, ValueLayout.JAVA_FLOAT, 0, out, 0, count);
    }
    return out;
  }
}
