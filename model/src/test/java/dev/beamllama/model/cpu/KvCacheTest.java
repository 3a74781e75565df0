package dev.beamllama.model.cpu;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

import java.lang.foreign.ValueLayout;
import java.nio.file.Files;
import java.nio.file.Path;
import org.junit.jupiter.api.Test;

class KvCacheTest {
  @Test
  void everyLayerHasItsWholeRangeZeroedAndKeepsWhatIsWritten() {
    try (KvCache cache = new KvCache(3, 5, 4, 8)) {
      long last = cache.index(4, 3) + 7;
      for (int layer = 0; layer < 3; layer++) {
        assertEquals(5L * 4 * 8 * Float.BYTES, cache.keys[layer].byteSize());
        assertEquals(cache.keys[layer].byteSize(), cache.values[layer].byteSize());
        assertEquals(0f, cache.keys[layer].getAtIndex(ValueLayout.JAVA_FLOAT, 0));
        assertEquals(0f, cache.values[layer].getAtIndex(ValueLayout.JAVA_FLOAT, last));
        cache.keys[layer].setAtIndex(ValueLayout.JAVA_FLOAT, last, layer + 0.5f);
        cache.values[layer].setAtIndex(ValueLayout.JAVA_FLOAT, 0, -layer);
      }
      for (int layer = 0; layer < 3; layer++) {
        assertEquals(layer + 0.5f, cache.keys[layer].getAtIndex(ValueLayout.JAVA_FLOAT, last));
        assertEquals(-layer, cache.values[layer].getAtIndex(ValueLayout.JAVA_FLOAT, 0));
      }
    }
  }

  @Test
  void aCacheTooLargeToMapIsAClearError() throws Exception {
    Path overcommit = Path.of("/proc/sys/vm/overcommit_memory");
    // Only a Linux kernel that checks mappings against memory (modes 0 and 2) refuses one of 1 TiB.
    assumeTrue(Files.exists(overcommit) && !Files.readString(overcommit).trim().equals("1"), "kernel overcommits without limit");
    IllegalStateException e = assertThrows(IllegalStateException.class, () -> new KvCache(2, 1 << 20, 16, 16384).close());
    assertTrue(e.getMessage().contains("could not map 1099511627776 bytes for the KV cache"), e.getMessage());
    assertTrue(e.getMessage().contains("kvCacheBytes"), e.getMessage());
  }
}
