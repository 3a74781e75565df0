package dev.beamllama.model.cpu;

import dev.beamllama.model.safetensors.DType;
import java.lang.foreign.Arena;
import java.lang.foreign.FunctionDescriptor;
import java.lang.foreign.Linker;
import java.lang.foreign.MemoryLayout.PathElement;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.lang.invoke.MethodHandle;
import java.lang.invoke.VarHandle;
import java.nio.ByteOrder;
import java.util.Locale;

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
    this.format = bf16 ? Matrix.Format.BF16 : Matrix.Format.F32;
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

  static long bytesPerToken(int layers, int kvDim, boolean bf16) {
    return 2L * layers * kvDim * (bf16 ? Matrix.Format.BF16 : Matrix.Format.F32).bytes;
  }

  /** Element index of the start of (block, slot)'s row. */
  long index(int block, int slot) {
    return ((long) block * blockSize + slot) * kvDim;
  }

  /** Writes {@code kvDim} floats of {@code k} and {@code v} from {@code offset} at element {@code at} of a layer. */
  void store(int layer, long at, float[] k, float[] v, int offset) {
    if (format == Matrix.Format.F32) {
      MemorySegment.copy(k, offset, keys[layer].data(), F32, at * Float.BYTES, kvDim);
      MemorySegment.copy(v, offset, values[layer].data(), F32, at * Float.BYTES, kvDim);
      return;
    }
    for (int i = 0; i < kvDim; i++) {
      keys[layer].data().setAtIndex(BF16, at + i, DType.floatToBf16(k[offset + i]));
      values[layer].data().setAtIndex(BF16, at + i, DType.floatToBf16(v[offset + i]));
    }
  }

  /** Little-endian, as {@link MatrixReads} reads a matrix. */
  private static final ValueLayout.OfFloat F32 = ValueLayout.JAVA_FLOAT_UNALIGNED.withOrder(ByteOrder.LITTLE_ENDIAN);
  private static final ValueLayout.OfShort BF16 = ValueLayout.JAVA_SHORT_UNALIGNED.withOrder(ByteOrder.LITTLE_ENDIAN);

  @Override
  public void close() {
    arena.close();
  }

  // Memory ------------------------------------------------------------------------------------

  private static final int PROT_READ_WRITE = 0x1 | 0x2;
  private static final int MAP_PRIVATE = 0x02;
  /** MAP_ANONYMOUS: 0x20 on Linux, 0x1000 on macOS; 0 where there is no mmap to call. */
  private static final int MAP_ANONYMOUS = switch (System.getProperty("os.name", "").toLowerCase(Locale.ROOT)) {
    case String os when os.contains("linux") -> 0x20;
    case String os when os.contains("mac") -> 0x1000;
    default -> 0;
  };
  private static final Linker.Option ERRNO = Linker.Option.captureCallState("errno");
  private static final VarHandle ERRNO_VALUE = Linker.Option.captureStateLayout()
      .varHandle(PathElement.groupElement("errno"));
  private static final MethodHandle MMAP = MAP_ANONYMOUS == 0 ? null : Linker.nativeLinker().downcallHandle(
      Linker.nativeLinker().defaultLookup().find("mmap").orElseThrow(),
      FunctionDescriptor.of(ValueLayout.ADDRESS, ValueLayout.ADDRESS, ValueLayout.JAVA_LONG, ValueLayout.JAVA_INT,
          ValueLayout.JAVA_INT, ValueLayout.JAVA_INT, ValueLayout.JAVA_LONG),
      ERRNO);
  private static final MethodHandle MUNMAP = MAP_ANONYMOUS == 0 ? null : Linker.nativeLinker().downcallHandle(
      Linker.nativeLinker().defaultLookup().find("munmap").orElseThrow(),
      FunctionDescriptor.of(ValueLayout.JAVA_INT, ValueLayout.ADDRESS, ValueLayout.JAVA_LONG));

  /**
   * Fresh anonymous pages from mmap where the OS has it: they are zeroed by the kernel on first
   * touch, so a cache of several GiB neither costs ~0.5 s per GiB of zeroing at start (as
   * {@code Arena.allocate}, which zeroes eagerly, did) nor takes memory before sequences use it.
   * Elsewhere, the arena's zeroed memory.
   */
  private MemorySegment allocate(long bytes) {
    if (MMAP == null) {
      return arena.allocate(bytes, 64);
    }
    MemorySegment state = arena.allocate(Linker.Option.captureStateLayout());
    MemorySegment address;
    try {
      address = (MemorySegment) MMAP.invokeExact(state, MemorySegment.NULL, bytes, PROT_READ_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0L);
    } catch (Throwable t) {
      throw new IllegalStateException("mmap of " + bytes + " bytes for the KV cache failed", t);
    }
    if (address.address() == -1L) { // MAP_FAILED
      throw new IllegalStateException("could not map " + bytes + " bytes for the KV cache: errno "
          + (int) ERRNO_VALUE.get(state, 0L) + "; give the engine a smaller kvCacheBytes");
    }
    return address.reinterpret(bytes, arena, start -> unmap(start, bytes));
  }

  private static void unmap(MemorySegment start, long bytes) {
    try {
      int ignored = (int) MUNMAP.invokeExact(start, bytes); // at close, a failed unmap has no one to tell
    } catch (Throwable t) {
      throw new IllegalStateException("munmap of the KV cache failed", t);
    }
  }
}
