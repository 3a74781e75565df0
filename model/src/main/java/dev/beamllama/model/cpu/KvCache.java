package dev.beamllama.model.cpu;

import dev.beamllama.model.safetensors.DType;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;

/**
 * The paged key/value cache in native memory (outside the heap, so its size is not bounded by
 * -Xmx). For each layer, keys and values are stored [block][slot][kvDim]; a sequence's position p
 * lives in block {@code table[p / blockSize]}, slot {@code p % blockSize}. A model that computes in
 * bf16 stores bf16, as transformers' cache does: its keys and values are bf16 numbers already, so
 * nothing is lost, and the cache holds twice the tokens and attention reads half the bytes.
 * Otherwise f32.
 */
final class KvCache implements AutoCloseable {
  final int blocks;
  final int blockSize;
  final int kvDim;
  final Matrix.Format format;
  /** Per layer, [blocks * blockSize rows, kvDim columns], read by the kernels as weights are. */
  final Matrix[] keys;
  final Matrix[] values;
  private final Arena arena = Arena.ofShared();

  KvCache(int layers, int blocks, int blockSize, int kvDim, boolean bf16) {
    this.blocks = blocks;
    this.blockSize = blockSize;
    this.kvDim = kvDim;
    this.format = format(bf16);
    this.keys = new Matrix[layers];
    this.values = new Matrix[layers];
    int rows = Math.multiplyExact(blocks, blockSize);
    long bytes = (long) rows * kvDim * format.bytes;
    try {
      for (int l = 0; l < layers; l++) {
        keys[l] = new Matrix(rows, kvDim, format, allocate(bytes), null);
        values[l] = new Matrix(rows, kvDim, format, allocate(bytes), null);
      }
    } catch (RuntimeException e) {
      arena.close(); // unmaps the layers already mapped
      throw e;
    }
  }

  private static Matrix.Format format(boolean bf16) {
    return bf16 ? Matrix.Format.BF16 : Matrix.Format.F32;
  }

  /** Element index of the start of (block, slot)'s row. */
  long index(int block, int slot) {
    return ((long) block * blockSize + slot) * kvDim;
  }

  /** Writes {@code kvDim} floats of {@code k} and {@code v} from {@code offset} at element {@code at} of a layer. */
  void store(int layer, long at, float[] k, float[] v, int offset) {
    if (format == Matrix.Format.F32) {
      MemorySegment.copy(k, offset, keys[layer].data(), MatrixReads.F32_VALUE, at * Float.BYTES, kvDim);
      MemorySegment.copy(v, offset, values[layer].data(), MatrixReads.F32_VALUE, at * Float.BYTES, kvDim);
      return;
    }
    for (int i = 0; i < kvDim; i++) {
      keys[layer].data().setAtIndex(MatrixReads.BF16_VALUE, at + i, DType.floatToBf16(k[offset + i]));
      values[layer].data().setAtIndex(MatrixReads.BF16_VALUE, at + i, DType.floatToBf16(v[offset + i]));
    }
  }

  /** Block {@code to} becomes a copy of block {@code from}, in every layer. */
  void copyBlock(int from, int to) {
    long bytes = (long) blockSize * kvDim * format.bytes;
    for (int l = 0; l < keys.length; l++) {
      MemorySegment.copy(keys[l].data(), index(from, 0) * format.bytes, keys[l].data(), index(to, 0) * format.bytes, bytes);
      MemorySegment.copy(values[l].data(), index(from, 0) * format.bytes, values[l].data(), index(to, 0) * format.bytes, bytes);
    }
  }

  private MemorySegment allocate(long bytes) {
    return NativeMemory.allocate(bytes, arena, "the KV cache", "give the engine a smaller kvCacheBytes");
  }

  @Override
  public void close() {
    arena.close();
  }
}
