package dev.beamllama.model.cuda;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.util.List;

/**
 * Sequences' tokens laid out on the device as a step leaves them for the sampler: each history in
 * cache blocks of its own (token ids by slot), one block table per sequence, sampled row r being
 * sequence r at its last position. For tests and checks of the repetition penalty and the sampler.
 */
final class DeviceHistories {
  private static final int BLOCK_SIZE = 16;

  private DeviceHistories() {}

  /** Uploads {@code histories} (row r's tokens so far); the device buffers are freed by {@code buffers}. */
  static CudaKernels.Histories upload(CudaDriver driver, Releases buffers, List<int[]> histories) {
    int rows = histories.size();
    int maxBlocks = 1;
    int blocks = 0;
    for (int[] h : histories) {
      maxBlocks = Math.max(maxBlocks, Math.ceilDiv(h.length, BLOCK_SIZE));
      blocks += Math.ceilDiv(h.length, BLOCK_SIZE);
    }
    int[] tokenAtSlot = new int[Math.max(1, blocks) * BLOCK_SIZE];
    int[] blockTables = new int[rows * maxBlocks];
    int[] sequenceOfRow = new int[rows];
    int[] positions = new int[rows];
    int next = 0;
    for (int r = 0; r < rows; r++) {
      int[] h = histories.get(r);
      // Blocks handed out from the end backwards, so a sequence's blocks are not in slot order.
      for (int b = 0; b < Math.ceilDiv(h.length, BLOCK_SIZE); b++) {
        int block = blocks - 1 - next++;
        blockTables[r * maxBlocks + b] = block;
        for (int i = 0; i < BLOCK_SIZE && b * BLOCK_SIZE + i < h.length; i++) {
          tokenAtSlot[block * BLOCK_SIZE + i] = h[b * BLOCK_SIZE + i];
        }
      }
      sequenceOfRow[r] = r;
      positions[r] = h.length - 1;
    }
    int[] tableStart = new int[rows];
    for (int r = 0; r < rows; r++) {
      tableStart[r] = r * maxBlocks;
    }
    return new CudaKernels.Histories(upload(driver, buffers, tokenAtSlot), upload(driver, buffers, blockTables),
        upload(driver, buffers, tableStart), BLOCK_SIZE,
        upload(driver, buffers, sequenceOfRow), upload(driver, buffers, positions), upload(driver, buffers, sequenceOfRow));
  }

  private static long upload(CudaDriver driver, Releases buffers, int[] values) {
    long device = driver.alloc(Math.max(1, values.length) * 4L);
    buffers.add(() -> driver.free(device));
    try (Arena arena = Arena.ofConfined()) {
      MemorySegment host = arena.allocate(Math.max(1, values.length) * 4L, 64);
      MemorySegment.copy(values, 0, host, ValueLayout.JAVA_INT, 0, values.length);
      driver.copyToDevice(device, host, host.byteSize());
    }
    return device;
  }
}
