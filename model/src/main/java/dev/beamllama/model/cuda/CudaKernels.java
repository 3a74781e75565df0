package dev.beamllama.model.cuda;

import static java.lang.foreign.ValueLayout.ADDRESS;
import static java.lang.foreign.ValueLayout.JAVA_FLOAT;
import static java.lang.foreign.ValueLayout.JAVA_INT;
import static java.lang.foreign.ValueLayout.JAVA_LONG;

import java.io.IOException;
import java.io.InputStream;
import java.io.UncheckedIOException;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;

/**
 * The kernels of {@code model/src/main/cuda/llama.cu}, loaded from the fatbin the build put next to
 * this class, with one typed method per kernel. Launches go to one stream; each kernel keeps its
 * own argument block, so a launch allocates nothing (the engine calls from one thread).
 */
final class CudaKernels implements AutoCloseable {
  static final String FATBIN = "llama.fatbin";
  private static final int THREADS = 256;
  /** Four warps: the bf16 values kernel spreads a head of up to 256 dimensions over them, 4 tiles of 16 each (llama.cu's TC_MAX_N_PER_WARP). */
  private static final int ATTENTION_THREADS = 128;
  /** Positions per attention work item: llama.cu's ATTENTION_CHUNK. */
  static final int ATTENTION_CHUNK = 64;
  private static final int SAMPLE_THREADS = 1024;

  private final CudaDriver driver;
  private final MemorySegment stream;
  private final MemorySegment module;
  private final String suffix;
  private final boolean bf16;
  private final Kernel embedding;
  private final Kernel rmsnorm;
  private final Kernel gatherRows;
  private final Kernel ropeWriteKv;
  private final Kernel attentionScores;
  private final Kernel attentionValues;
  private final Kernel attentionCombine;
  private final Kernel siluMultiply;
  private final Kernel toF32;
  private final Kernel repetitionPenalty;
  private final Kernel sample;
  private final Kernel sampleVocab;

  /** Whether this build carries the kernels (nvcc was present when it was built). */
  static boolean bundled() {
    return CudaKernels.class.getResource(FATBIN) != null;
  }

  static byte[] fatbin() {
    try (InputStream in = CudaKernels.class.getResourceAsStream(FATBIN)) {
      if (in == null) {
        throw new CudaUnavailableException("this build has no CUDA kernels: nvcc was not found when it was built "
            + "(install the CUDA toolkit, put nvcc on PATH or set CUDA_HOME, and rebuild)");
      }
      return in.readAllBytes();
    } catch (IOException e) {
      throw new UncheckedIOException(e);
    }
  }

  CudaKernels(CudaDriver driver, MemorySegment stream, boolean bf16) {
    this.driver = driver;
    this.stream = stream;
    this.bf16 = bf16;
    this.suffix = bf16 ? "_bf16" : "_f32";
    this.module = driver.loadModule(fatbin());
    try {
      embedding = typed("embedding", 7);
      rmsnorm = typed("rmsnorm", 6);
      gatherRows = typed("gather_rows", 4);
      ropeWriteKv = typed("rope_write_kv", 11);
      attentionScores = typed("attention_scores", 17);
      attentionValues = typed("attention_values", 15);
      attentionCombine = typed("attention_combine", 6);
      siluMultiply = typed("silu_multiply", 3);
      toF32 = typed("to_f32", 3);
      repetitionPenalty = new Kernel("repetition_penalty", 10);
      sample = new Kernel("sample", 8);
      sampleVocab = new Kernel("sample_vocab", 9);
    } catch (RuntimeException e) {
      try {
        driver.unloadModule(module);
      } catch (CudaException unload) {
        e.addSuppressed(unload);
      }
      throw e;
    }
  }

  private Kernel typed(String name, int arguments) {
    return new Kernel(name + suffix, arguments);
  }

  @Override
  public void close() {
    driver.unloadModule(module);
  }

  /** A kernel and its reusable argument block: one 8-byte slot per parameter and the array of pointers to them. */
  private final class Kernel {
    final String name;
    final MemorySegment function;
    final MemorySegment slots;
    final MemorySegment pointers;
    int next;

    Kernel(String name, int arguments) {
      this.name = name;
      this.function = driver.function(module, name);
      Arena arena = Arena.ofAuto();
      this.slots = arena.allocate(8L * arguments, 8);
      this.pointers = arena.allocate(ADDRESS, arguments);
      for (int i = 0; i < arguments; i++) {
        pointers.setAtIndex(ADDRESS, i, slots.asSlice(8L * i, 8));
      }
    }

    Kernel pointer(long devicePointer) {
      slots.set(JAVA_LONG, 8L * next++, devicePointer);
      return this;
    }

    Kernel integer(int value) {
      slots.set(JAVA_INT, 8L * next++, value);
      return this;
    }

    Kernel int64(long value) {
      slots.set(JAVA_LONG, 8L * next++, value);
      return this;
    }

    Kernel real(float value) {
      slots.set(JAVA_FLOAT, 8L * next++, value);
      return this;
    }

    void launch(int gridX, int gridY, int threads, int sharedBytes) {
      next = 0;
      if (gridX > 0 && gridY > 0) {
        driver.launch(name, function, gridX, gridY, threads, sharedBytes, stream, pointers);
      }
    }
  }

  /**
   * Each row's embedding; an id of -1 - i is {@code previous[i]} (a token the previous step drew on
   * the device). With {@code tokenAtSlot != 0}, also writes its token id at its cache slot ({@code slots}).
   */
  void embedding(long out, long table, long ids, long previous, int rows, int hidden, long slots, long tokenAtSlot) {
    embedding.pointer(out).pointer(table).pointer(ids).pointer(previous).integer(hidden).pointer(slots).pointer(tokenAtSlot)
        .launch(rows, 1, THREADS, 0);
  }

  /** out = norm(x) per row; with {@code residual != 0}, first x += residual. */
  void rmsnorm(long out, long x, long residual, long weight, int rows, int hidden, float eps) {
    rmsnorm.pointer(out).pointer(x).pointer(residual).pointer(weight).integer(hidden).real(eps).launch(rows, 1, THREADS, 0);
  }

  void gatherRows(long out, long in, long rowIds, int rows, int width) {
    gatherRows.pointer(out).pointer(in).pointer(rowIds).integer(width).launch(rows, 1, THREADS, 0);
  }

  /**
   * Rotates each row's query and key heads in place ({@code cosTable}/{@code sinTable}: [position][headDim / 2])
   * and writes its keys and values to the cache at its slot.
   */
  void ropeWriteKv(long qkv, int qkvWidth, long positions, long cosTable, long sinTable, int rows, int heads, int kvHeads, int headDim,
      long keys, long values, long slots) {
    ropeWriteKv.pointer(qkv).integer(qkvWidth).pointer(positions).pointer(cosTable).pointer(sinTable).integer(heads).integer(kvHeads)
        .integer(headDim).pointer(keys).pointer(values).pointer(slots).launch(rows, 1, THREADS, 0);
  }

  /**
   * Why the attention kernels cannot take this shape, or null when they can. In f32 a key is spread
   * over lanes 16 bytes each (a power of two head size from 8 to 256, up to 8 query heads per KV
   * head); in bf16 a tensor-core tile holds a group's query heads and reads head sizes in steps of 16
   * (16 to 256, up to 16).
   */
  static String attentionShapeProblem(int headDim, int group, boolean bf16) {
    int least = bf16 ? 16 : 8;
    if (headDim >= least && headDim <= 256 && Integer.bitCount(headDim) == 1 && group <= least) {
      return null;
    }
    return "the CUDA engine supports a head_dim that is a power of two from " + least + " to 256 and up to " + least
        + " query heads per KV head in " + (bf16 ? "bf16" : "f32") + "; this model has head_dim " + headDim + " and " + group;
  }

  // The bf16 kernels' shared memory, with llama.cu's TC_ROWS (16) rows of queries or weights and TC_PAD (8) after each bf16 row.

  /** Dynamic shared memory of the bf16 (tensor-core) scores kernel: queries, keys, scores. */
  private static int tensorScoresShared(int headDim) {
    return (16 + ATTENTION_CHUNK) * (headDim + 8) * 2 + 16 * (ATTENTION_CHUNK + 4) * Float.BYTES;
  }

  /** Dynamic shared memory of the bf16 (tensor-core) values kernel: weights and values (the sums reuse the values' space). */
  private static int tensorValuesShared(int headDim) {
    return 16 * (ATTENTION_CHUNK + 8) * 2 + ATTENTION_CHUNK * (headDim + 8) * 2;
  }

  /**
   * Device scratch for {@code items} attention work items (a row's positions in chunks of
   * {@link #ATTENTION_CHUNK}): each item's scores, maxima and partial sums.
   */
  record AttentionScratch(long scores, long maxima, long partials, int items) {
    static long bytesPerItem(int heads, int headDim) {
      return (long) heads * (ATTENTION_CHUNK + 1 + headDim + 1) * Float.BYTES;
    }

    /** Scratch for {@code items} items of {@code heads} heads, its three buffers from {@code allocate} (bytes to a device pointer). */
    static AttentionScratch allocate(int items, int heads, int headDim, java.util.function.LongUnaryOperator allocate) {
      long floats = (long) items * heads * Float.BYTES;
      return new AttentionScratch(allocate.applyAsLong(floats * ATTENTION_CHUNK), allocate.applyAsLong(floats),
          allocate.applyAsLong(floats * (headDim + 1)), items);
    }
  }

  /**
   * Attention of rows {@code [rowBegin, rowEnd)} of the step into {@code out}: their work items
   * ({@code chunkStart}, the step's prefix sum of each row's chunks) must fit {@code scratch}, and
   * {@code gridItems} blocks per KV head take them in turn.
   */
  void attention(long out, long qkv, int qkvWidth, long keys, long values, long blockTables, long tableStart, long rowSequence,
      long positions, long chunkStart, int rowBegin, int rowEnd, int gridItems, AttentionScratch scratch, int heads, int kvHeads,
      int headDim, int blockSize, float scale) {
    int warps = ATTENTION_THREADS / 32;
    int group = heads / kvHeads;
    int scoresShared = bf16 ? tensorScoresShared(headDim) : 0;
    int valuesShared = bf16 ? tensorValuesShared(headDim) : warps * group * (headDim + 1) * Float.BYTES;
    attentionScores.pointer(scratch.scores()).pointer(scratch.maxima()).pointer(qkv).integer(qkvWidth).pointer(keys)
        .pointer(blockTables).pointer(tableStart).pointer(rowSequence).pointer(positions).pointer(chunkStart).integer(rowBegin)
        .integer(rowEnd).integer(heads).integer(kvHeads).integer(headDim).integer(blockSize).real(scale)
        .launch(gridItems, kvHeads, ATTENTION_THREADS, scoresShared);
    attentionValues.pointer(scratch.partials()).pointer(scratch.scores()).pointer(scratch.maxima()).pointer(values).pointer(blockTables)
        .pointer(tableStart).pointer(rowSequence).pointer(positions).pointer(chunkStart).integer(rowBegin).integer(rowEnd)
        .integer(heads).integer(kvHeads).integer(headDim).integer(blockSize)
        .launch(gridItems, kvHeads, ATTENTION_THREADS, valuesShared);
    attentionCombine.pointer(out).pointer(scratch.partials()).pointer(chunkStart).integer(rowBegin).integer(heads).integer(headDim)
        .launch(rowEnd - rowBegin, heads, ATTENTION_THREADS, 0);
  }

  void siluMultiply(long out, long gateUp, int rows, int intermediate) {
    siluMultiply.pointer(out).pointer(gateUp).integer(intermediate).launch(rows, 1, THREADS, 0);
  }

  void toF32(long out, long in, long count) {
    int blocks = (int) Math.min(65_535, (count + THREADS - 1) / THREADS);
    toF32.pointer(out).pointer(in).int64(count).launch(blocks, 1, THREADS, 0);
  }

  /**
   * The repetition penalty on each of {@code samples} logit rows, over its sequence's tokens so far as
   * the cache holds them ({@link Histories}).
   */
  void repetitionPenalty(long logits, int vocab, Histories histories, long penalties, int samples) {
    repetitionPenalty.pointer(logits).integer(vocab).pointer(histories.tokenAtSlot()).pointer(histories.blockTables())
        .pointer(histories.tableStart()).integer(histories.blockSize()).pointer(histories.rowSequence()).pointer(histories.positions())
        .pointer(histories.logitRows()).pointer(penalties).launch(samples, 1, THREADS, seenBitmapBytes(vocab));
  }

  /** The penalty kernel's bitmap of the vocabulary, in dynamic shared memory. */
  static int seenBitmapBytes(int vocab) {
    return (vocab + 31) / 32 * Integer.BYTES;
  }

  /**
   * Where a step's sampled rows find their sequences' tokens on the device: the cache's token ids
   * by slot, the step's packed block tables (sequence s's at {@code blockTables[tableStart[s]]},
   * blocks of {@code blockSize}), each row's sequence and position, and the rows that sample.
   */
  record Histories(long tokenAtSlot, long blockTables, long tableStart, int blockSize, long rowSequence, long positions, long logitRows) {}

  /**
   * Each row's token: greedy rows and rows whose top-k candidates fit the kernel's shared memory in
   * {@code sample}, then the others (top-k off, or many ties at the k-th score) over the whole
   * vocabulary in {@code sample_vocab}, {@code vocabBlocks} blocks at a time, each with
   * {@link #sampleVocabScratchWords} words of {@code scratch}.
   */
  void sample(long tokens, long logits, int vocab, long greedy, long temperatures, long topKs, long topPs, long uniforms, int rows,
      long scratch, int vocabBlocks) {
    sample.pointer(tokens).pointer(logits).integer(vocab).pointer(greedy).pointer(temperatures).pointer(topKs).pointer(topPs)
        .pointer(uniforms).launch(rows, 1, SAMPLE_THREADS, 0);
    sampleVocab.pointer(tokens).integer(rows).pointer(logits).integer(vocab).pointer(temperatures).pointer(topKs).pointer(topPs)
        .pointer(uniforms).pointer(scratch).launch(Math.min(rows, vocabBlocks), 1, SAMPLE_THREADS, 0);
  }

  /** Scratch words one sample_vocab block needs: its row's ids and keys, twice, and a value per token. */
  static long sampleVocabScratchWords(int vocab) {
    return 5L * vocab;
  }
}
