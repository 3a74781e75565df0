package dev.beamllama.model.cpu;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;

/**
 * The paged key/value cache in native memory (outside the heap, so its size is not bounded by
 * -Xmx). For each layer, keys and values are stored [block][slot][kvDim] in f32; a sequence's
 * position p lives in block {@code table[p / blockSize]}, slot {@code p % blockSize}.
 */
final class KvCache implements AutoCloseable {
  final int blocks;
  final int blockSize;
  final int kvDim;
  final MemorySegment[] keys;
  final MemorySegment[] values;
  private final Arena arena = Arena.ofShared();

  KvCache(int layers, int blocks, int blockSize, int kvDim) {
    this.blocks = blocks;
    this.blockSize = blockSize;
    this.kvDim = kvDim;
    this.keys = new MemorySegment[layers];
    this.values = new MemorySegment[layers];
    long bytes = (long) blocks * blockSize * kvDim * Float.BYTES;
    for (int l = 0; l < layers; l++) {
      keys[l] = arena.allocate(bytes, 64);
      values[l] = arena.allocate(bytes, 64);
    }
  }

  static long bytesPerToken(int layers, int kvDim) {
    return 2L * layers * kvDim * Float.BYTES;
  }

  /** Element index of the start of (block, slot)'s row. */
  long index(int block, int slot) {
    return ((long) block * blockSize + slot) * kvDim;
  }

  @Override
  public void close() {
    arena.close();
  }
}
