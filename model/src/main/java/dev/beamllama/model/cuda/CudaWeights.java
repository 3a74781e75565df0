package dev.beamllama.model.cuda;

import dev.beamllama.model.config.LlamaConfig;
import dev.beamllama.model.llama.LlamaWeights;
import dev.beamllama.model.safetensors.DType;
import dev.beamllama.model.safetensors.Tensor;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.ByteOrder;

/**
 * The checkpoint's weights in device memory, in the activation precision (bf16, or f32 for f32
 * checkpoints). The query, key and value projections are stored as one [q + 2 kv, hidden] matrix and
 * gate and up as one [2 intermediate, hidden] matrix, so each takes one matrix multiply.
 */
final class CudaWeights implements AutoCloseable {
  record Layer(long attentionNorm, long qkv, long output, long mlpNorm, long gateUp, long down) {}

  private static final ValueLayout.OfShort BF16 = ValueLayout.JAVA_SHORT_UNALIGNED.withOrder(ByteOrder.LITTLE_ENDIAN);
  private static final ValueLayout.OfFloat F32 = ValueLayout.JAVA_FLOAT_UNALIGNED.withOrder(ByteOrder.LITTLE_ENDIAN);

  final long embedding;
  final long finalNorm;
  final long lmHead;
  final Layer[] layers;
  final long bytes;
  private final CudaDriver driver;
  private final boolean bf16;
  private final Releases allocations = new Releases();
  private long uploaded;

  CudaWeights(CudaDriver driver, LlamaWeights weights, LlamaConfig config, boolean bf16) {
    this.driver = driver;
    this.bf16 = bf16;
    try {
      embedding = upload(weights.embedTokens);
      lmHead = weights.lmHead == weights.embedTokens ? embedding : upload(weights.lmHead);
      finalNorm = upload(weights.finalNorm);
      layers = new Layer[config.numLayers()];
      for (int i = 0; i < layers.length; i++) {
        LlamaWeights.Layer w = weights.layers[i];
        layers[i] = new Layer(upload(w.attentionNorm()), upload(w.wq(), w.wk(), w.wv()), upload(w.wo()), upload(w.mlpNorm()),
            upload(w.wGate(), w.wUp()), upload(w.wDown()));
      }
      bytes = uploaded;
    } catch (RuntimeException e) {
      throw allocations.closeAfter(e);
    }
  }

  private int elementBytes() {
    return bf16 ? 2 : 4;
  }

  /** Row-major matrices stacked one after the other into one device matrix. */
  private long upload(Tensor... parts) {
    long elements = 0;
    for (Tensor t : parts) {
      elements += t.elementCount();
    }
    long device = allocate(elements * elementBytes());
    long offset = 0;
    for (Tensor t : parts) {
      long partBytes = t.elementCount() * elementBytes();
      if ((bf16 && t.dtype() == DType.BF16) || (!bf16 && t.dtype() == DType.F32)) {
        driver.copyToDevice(device + offset, t.data(), partBytes);
      } else {
        copyConverted(device + offset, t);
      }
      offset += partBytes;
    }
    return device;
  }

  /** Converts on the host in chunks (f32 to bf16, bf16 to f32) and copies each chunk. */
  private void copyConverted(long device, Tensor t) {
    final long chunk = 1 << 22;
    try (Arena arena = Arena.ofConfined()) {
      MemorySegment staging = arena.allocate(chunk * elementBytes(), 64);
      for (long start = 0; start < t.elementCount(); start += chunk) {
        long count = Math.min(chunk, t.elementCount() - start);
        for (long i = 0; i < count; i++) {
          float v = t.get(start + i);
          if (bf16) {
            staging.setAtIndex(BF16, i, DType.floatToBf16(v));
          } else {
            staging.setAtIndex(F32, i, v);
          }
        }
        driver.copyToDevice(device + start * elementBytes(), staging, count * elementBytes());
      }
    }
  }

  private long upload(float[] vector) {
    long device = allocate((long) vector.length * elementBytes());
    try (Arena arena = Arena.ofConfined()) {
      MemorySegment staging = arena.allocate((long) vector.length * elementBytes(), 64);
      for (int i = 0; i < vector.length; i++) {
        if (bf16) {
          staging.setAtIndex(BF16, i, DType.floatToBf16(vector[i]));
        } else {
          staging.setAtIndex(F32, i, vector[i]);
        }
      }
      driver.copyToDevice(device, staging, staging.byteSize());
    }
    return device;
  }

  private long allocate(long size) {
    long device = driver.alloc(size);
    allocations.add(() -> driver.free(device));
    uploaded += size;
    return device;
  }

  @Override
  public void close() {
    allocations.close();
  }
}
