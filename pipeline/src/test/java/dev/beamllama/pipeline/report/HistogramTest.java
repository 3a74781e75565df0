package dev.beamllama.pipeline.report;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.Random;
import org.junit.jupiter.api.Test;

class HistogramTest {
  @Test
  void zeroToNinetyNineFillsTwentyFiveBinsOfFour() {
    Histogram h = new Histogram(32);
    for (int v = 0; v < 100; v++) {
      h.add(v);
    }
    assertEquals(0, h.low());
    assertEquals(4, h.binWidth(), "32 bins of 2 cannot hold 0..99, of 4 they can");
    assertEquals(25, h.usedBins());
    for (int i = 0; i < 25; i++) {
      assertEquals(4, h.count(i), "bin " + i);
    }
    assertEquals(100, h.total());
    assertEquals(4950, h.sum());
    assertEquals("96-99", h.label(24));
  }

  @Test
  void binsFollowTheValuesInsteadOfStartingAtZero() {
    Histogram h = new Histogram(32);
    for (long v : new long[] {242, 250, 251, 263, 270, 271, 280, 308}) {
      h.add(v);
    }
    assertEquals(240, h.low());
    assertEquals(4, h.binWidth());
    assertEquals(18, h.usedBins(), "240..311 in bins of 4");
    assertEquals(1, h.count(0)); // 240-243: 242
    assertEquals(2, h.count(2)); // 248-251: 250, 251
    assertEquals(1, h.count(17)); // 308-311
    assertEquals("240-243", h.label(0));
    assertEquals(242, h.min());
    assertEquals(308, h.max());
  }

  @Test
  void oneValueIsOneBinOfWidthOne() {
    Histogram h = new Histogram(32);
    for (int i = 0; i < 5; i++) {
      h.add(32);
    }
    assertEquals(1, h.usedBins());
    assertEquals(5, h.count(0));
    assertEquals("32", h.label(0));
  }

  @Test
  void countsAreExactPerBinForAnyOrderOfValues() {
    Random random = new Random(7);
    for (int round = 0; round < 50; round++) {
      Histogram h = new Histogram(16);
      long[] values = random.longs(1 + random.nextInt(500), 0, 1 + random.nextInt(5000)).toArray();
      for (long v : values) {
        h.add(v);
      }
      long counted = 0;
      for (int i = 0; i < h.usedBins(); i++) {
        long from = h.low() + i * h.binWidth();
        long expected = java.util.Arrays.stream(values).filter(v -> v >= from && v < from + h.binWidth()).count();
        assertEquals(expected, h.count(i), "round " + round + " bin " + i);
        counted += expected;
      }
      assertEquals(values.length, counted, "every value in a used bin");
      assertTrue(h.usedBins() <= 16);
      assertTrue(h.binWidth() == 1 || (h.max() - h.min()) >= 16 * h.binWidth() / 4,
          "bins no wider than needed: width " + h.binWidth() + " for " + h.min() + ".." + h.max());
    }
  }

  @Test
  void negativeValuesAreRefused() {
    assertThrows(IllegalArgumentException.class, () -> new Histogram(8).add(-1));
  }
}
