package dev.beamllama.model.cpu;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

import dev.beamllama.model.safetensors.DType;
import java.nio.file.Files;
import java.nio.file.Path;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

class KvCacheTest {
  @ParameterizedTest
  @ValueSource(booleans = {false, true})
  void everyLayerHasItsWholeRangeZeroedAndKeepsWhatIsStored(boolean bf16) {
    int kvDim = 8;
    try (KvCache cache = new KvCache(3, 5, 4, kvDim, bf16)) {
      long first = cache.index(0, 0);
      long last = cache.index(4, 3);
      for (int layer = 0; layer < 3; layer++) {
        assertEquals(5L * 4 * kvDim * (bf16 ? 2 : 4), cache.keys[layer].data().byteSize());
        assertEquals(cache.keys[layer].data().byteSize(), cache.values[layer].data().byteSize());
        assertEquals(0f, MatrixReads.stored(cache.keys[layer], first));
        assertEquals(0f, MatrixReads.stored(cache.values[layer], last + kvDim - 1));
        cache.store(layer, last, row(layer, kvDim), row(-layer, kvDim), 0);
        cache.store(layer, first, row(10 + layer, kvDim + 2), row(20 + layer, kvDim + 2), 2);
      }
      for (int layer = 0; layer < 3; layer++) {
        for (int i = 0; i < kvDim; i++) {
          assertEquals(row(layer, kvDim)[i], MatrixReads.stored(cache.keys[layer], last + i));
          assertEquals(row(-layer, kvDim)[i], MatrixReads.stored(cache.values[layer], last + i));
          assertEquals(row(10 + layer, kvDim + 2)[2 + i], MatrixReads.stored(cache.keys[layer], first + i));
          assertEquals(row(20 + layer, kvDim + 2)[2 + i], MatrixReads.stored(cache.values[layer], first + i));
        }
      }
    }
  }

  /** bf16 numbers, as a model computing in bf16 stores (a bf16 cache keeps them exactly). */
  private static float[] row(int seed, int n) {
    float[] row = new float[n];
    for (int i = 0; i < n; i++) {
      row[i] = DType.roundToBf16((seed + 1) * 0.37f - i * 1.9f);
    }
    return row;
  }

  @Test
  void aCacheTooLargeToMapIsAClearError() throws Exception {
    Path overcommit = Path.of("/proc/sys/vm/overcommit_memory");
    // Only a Linux kernel that checks mappings against memory (modes 0 and 2) refuses one of 1 TiB.
    assumeTrue(Files.exists(overcommit) && !Files.readString(overcommit).trim().equals("1"), "kernel overcommits without limit");
    IllegalStateException e = assertThrows(IllegalStateException.class, () -> new KvCache(2, 1 << 20, 16, 16384, false).close());
    assertTrue(e.getMessage().contains("could not map 1099511627776 bytes for the KV cache"), e.getMessage());
    assertTrue(e.getMessage().contains("kvCacheBytes"), e.getMessage());
  }
}
