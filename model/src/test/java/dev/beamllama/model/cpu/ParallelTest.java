package dev.beamllama.model.cpu;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertSame;
import static org.junit.jupiter.api.Assertions.assertThrows;

import java.util.concurrent.atomic.AtomicIntegerArray;
import org.junit.jupiter.api.Test;

class ParallelTest {
  @Test
  void everyTaskRunsExactlyOnceInBackToBackSectionsAndAfterHelpersPark() throws Exception {
    try (Parallel pool = new Parallel(4)) {
      for (int section = 0; section < 20_000; section++) {
        int count = 1 + section % 37;
        AtomicIntegerArray runs = new AtomicIntegerArray(count);
        pool.forEach(count, (i, worker) -> runs.incrementAndGet(i));
        for (int i = 0; i < count; i++) {
          assertEquals(1, runs.get(i), "section " + section + " task " + i);
        }
        if (section % 5_000 == 0) {
          Thread.sleep(5); // long enough for the helpers to stop spinning and park
        }
      }
    }
  }

  @Test
  void workersIndexTheirOwnScratch() {
    try (Parallel pool = new Parallel(3)) {
      int[] owner = new int[3000];
      java.util.Arrays.fill(owner, -1);
      pool.forEach(owner.length, (i, worker) -> owner[i] = worker);
      for (int w : owner) {
        assertEquals(true, w >= 0 && w < 3, "worker " + w);
      }
    }
  }

  @Test
  void aFailingTaskIsRethrownAndThePoolStaysUsable() {
    try (Parallel pool = new Parallel(2)) {
      IllegalStateException boom = new IllegalStateException("boom");
      IllegalStateException thrown = assertThrows(IllegalStateException.class, () -> pool.forEach(100, (i, worker) -> {
        if (i == 42) {
          throw boom;
        }
      }));
      assertSame(boom, thrown);
      int[] out = new int[100];
      pool.forEach(100, (i, worker) -> out[i] = i * 2);
      int[] expected = new int[100];
      for (int i = 0; i < 100; i++) {
        expected[i] = i * 2;
      }
      assertArrayEquals(expected, out);
    }
  }

  @Test
  void aSectionStartedFromInsideATaskRunsInlineOnThatThread() {
    try (Parallel pool = new Parallel(2)) {
      int[][] out = new int[8][8];
      pool.forEach(8, (i, worker) -> pool.forEach(8, (j, inner) -> out[i][j] = i + j));
      for (int i = 0; i < 8; i++) {
        for (int j = 0; j < 8; j++) {
          assertEquals(i + j, out[i][j]);
        }
      }
    }
  }
}
