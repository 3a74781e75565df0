package dev.beamllama.model.cuda;

import dev.beamllama.model.config.LlamaConfig;
import dev.beamllama.model.engine.StepBatch;
import dev.beamllama.model.llama.ForwardTrace;
import dev.beamllama.model.llama.ForwardTrace.Stage;
import dev.beamllama.model.llama.Rope;
import dev.beamllama.model.safetensors.DType;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;

/**
 * The Llama forward pass on the GPU over a batch of token rows from different sequences, as the
 * CPU engine's {@code CpuLlama}: the matrix multiplies in cuBLASLt (one algorithm per weight shape, so a row's
 * result does not depend on the batch), everything else in the kernels of
 * {@link CudaKernels}, keys and values written to and read from the paged cache through each
 * sequence's block table. Produces f32 logits for the rows that sample.
 */
final class CudaLlama implements AutoCloseable {
  final LlamaConfig config;
  final boolean bf16;
  final int maxRows;
  final int maxLogitRows;
  final int maxBlocks;
  final int blockSize;
  final int cacheBlocks;
  private final CudaDriver driver;
  private final CudaKernels kernels;
  private final Linears linears;
  private final CudaWeights weights;
  private final MemorySegment stream;
  private final Releases allocations = new Releases();
  private final long[] keyCache;
  private final long[] valueCache;
  /** The token id at each cache slot, written with its keys and values: the histories the repetition penalty reads. */
  private final long tokenAtSlot;
  /** Where the last {@link #forward(StepBatch)}'s sampled rows find their histories. */
  private CudaKernels.Histories histories;
  private final long cosTable;
  private final long sinTable;
  private final long x;
  private final long xn;
  private final long qkv;
  private final long attention;
  private final long projected;
  private final long gateUp;
  private final long activated;
  private final long gathered;
  private final long gatheredResidual;
  private final long gatheredNormed;
  private final long logitsNative;
  final long logits;
  private final long inputsDevice;
  /**
   * Two pinned buffers the inputs are laid out in, by turns: a step's copy to the device may still be
   * queued when the next step is laid out (the engine overlaps steps).
   */
  private final MemorySegment[] inputsHost = new MemorySegment[2];
  /** The buffer of {@link #inputsHost} the step being uploaded is laid out in. */
  private MemorySegment staging;
  private int uploads;
  /** The previous step's sampled tokens on the device: a row whose token is -1 - i takes its sample i. */
  private final long previousTokens;
  /**
   * The executable graph of a decode step of n sequences whose longest context has at most 2^b
   * attention chunks at [n][b], captured at its first step.
   */
  private final MemorySegment[][] decodeGraphs;
  private final CudaKernels.AttentionScratch attentionScratch;
  /** At most this many blocks per KV head take a launch's attention items: enough to fill the GPU. */
  private final int attentionBlocks;
  /** Row bounds of the last upload's attention launches: launch i takes rows [groupBounds[i], groupBounds[i + 1]). */
  private final int[] groupBounds;
  private final int qkvWidth;
  private final float attentionScale;

  /**
   * The multiplies by each weight shape, each with its one algorithm ({@link CublasLt}): the layers'
   * shapes for up to {@code maxRows} rows, the vocabulary projection for up to {@code logitRows}, all
   * tuned for {@code logitRows} (the decode batch).
   */
  record Linears(CublasLt.Linear qkv, CublasLt.Linear output, CublasLt.Linear gateUp, CublasLt.Linear down, CublasLt.Linear lmHead) {
    static Linears choose(CublasLt lt, CudaWeights weights, LlamaConfig config, boolean bf16, int maxRows, int logitRows) {
      CudaWeights.Layer w = weights.layers[0];
      int hidden = config.hiddenSize();
      int qkvWidth = config.queryDim() + 2 * config.kvDim();
      int inter = config.intermediateSize();
      return new Linears(lt.linear("qkv_proj", w.qkv(), qkvWidth, hidden, bf16, logitRows, maxRows),
          lt.linear("o_proj", w.output(), hidden, config.queryDim(), bf16, logitRows, maxRows),
          lt.linear("gate_up_proj", w.gateUp(), 2 * inter, hidden, bf16, logitRows, maxRows),
          lt.linear("down_proj", w.down(), hidden, inter, bf16, logitRows, maxRows),
          lt.linear("lm_head", weights.lmHead, config.vocabSize(), hidden, bf16, logitRows, logitRows));
    }
  }

  CudaLlama(CudaDriver driver, MemorySegment stream, CudaKernels kernels, Linears linears, CudaWeights weights, LlamaConfig config,
      boolean bf16, int maxRows, int maxLogitRows, int blockSize, int cacheBlocks, int maxSequenceLength, long previousTokens) {
    this.driver = driver;
    this.previousTokens = previousTokens;
    this.stream = stream;
    this.kernels = kernels;
    this.linears = linears;
    this.weights = weights;
    this.config = config;
    this.bf16 = bf16;
    this.maxRows = maxRows;
    this.maxLogitRows = maxLogitRows;
    this.blockSize = blockSize;
    this.cacheBlocks = cacheBlocks;
    this.maxBlocks = (maxSequenceLength + blockSize - 1) / blockSize;
    this.qkvWidth = config.queryDim() + 2 * config.kvDim();
    this.attentionScale = (float) (1.0 / Math.sqrt(config.headDim()));
    int maxChunks = Math.ceilDiv(maxSequenceLength, CudaKernels.ATTENTION_CHUNK);
    this.decodeGraphs = new MemorySegment[maxLogitRows + 1][33 - Integer.numberOfLeadingZeros(maxChunks)];
    this.attentionBlocks = Math.ceilDiv(4 * driver.multiprocessors(), config.numKvHeads());
    this.groupBounds = new int[maxRows + 1];
    int e = bf16 ? 2 : 4;
    long h = config.hiddenSize();
    try {
      x = allocate(maxRows * h * e);
      xn = allocate(maxRows * h * e);
      qkv = allocate((long) maxRows * qkvWidth * e);
      attention = allocate((long) maxRows * config.queryDim() * e);
      projected = allocate(maxRows * h * e);
      gateUp = allocate(2L * maxRows * config.intermediateSize() * e);
      activated = allocate((long) maxRows * config.intermediateSize() * e);
      gathered = allocate(maxLogitRows * h * e);
      gatheredResidual = allocate(maxLogitRows * h * e);
      gatheredNormed = allocate(maxLogitRows * h * e);
      logitsNative = allocate((long) maxLogitRows * config.vocabSize() * e);
      logits = allocate((long) maxLogitRows * config.vocabSize() * Float.BYTES);
      long inputBytes = inputInts(maxRows, maxLogitRows, maxBlocks) * (long) Integer.BYTES;
      inputsDevice = allocate(inputBytes);
      for (int i = 0; i < inputsHost.length; i++) {
        MemorySegment host = driver.allocHost(inputBytes);
        allocations.add(() -> driver.freeHost(host));
        inputsHost[i] = host;
      }
      long[] angles = ropeTables(config, bf16, maxSequenceLength);
      cosTable = angles[0];
      sinTable = angles[1];
      long layerBytes = (long) cacheBlocks * blockSize * config.kvDim() * e;
      tokenAtSlot = allocate((long) cacheBlocks * blockSize * Integer.BYTES);
      int items = attentionItems(cacheBlocks, blockSize, maxLogitRows, maxSequenceLength);
      attentionScratch = CudaKernels.AttentionScratch.allocate(items, config.numHeads(), config.headDim(), this::allocate);
      keyCache = new long[config.numLayers()];
      valueCache = new long[config.numLayers()];
      for (int l = 0; l < config.numLayers(); l++) {
        keyCache[l] = allocate(layerBytes);
        valueCache[l] = allocate(layerBytes);
      }
    } catch (RuntimeException ex) {
      throw allocations.closeAfter(ex);
    }
  }

  private static long inputInts(int rows, int logitRows, int maxBlocks) {
    return 5L * rows + 1 + 2L * logitRows + (long) logitRows * maxBlocks;
  }

  /**
   * Attention work items the scratch holds: a decode step of sequences that hold their own blocks
   * always fits in one launch (its rows' chunks number at most the cache's tokens over the chunk
   * size, plus one per row), and so does the longest sequence's row. Larger steps are split.
   */
  static int attentionItems(int cacheBlocks, int blockSize, int maxLogitRows, int maxSequenceLength) {
    long items = Math.ceilDiv((long) cacheBlocks * blockSize, CudaKernels.ATTENTION_CHUNK) + maxLogitRows;
    return (int) Math.min(Integer.MAX_VALUE, Math.max(items, Math.ceilDiv(maxSequenceLength, CudaKernels.ATTENTION_CHUNK)));
  }

  /** cos and sin of every position and pair, computed by the CPU engine's Rope so both engines rotate alike. */
  private long[] ropeTables(LlamaConfig config, boolean bf16, int positions) {
    Rope rope = new Rope(config.rope(), config.headDim(), bf16);
    int half = config.headDim() / 2;
    long bytes = (long) positions * half * Float.BYTES;
    long cos = allocate(bytes);
    long sin = allocate(bytes);
    float[] c = new float[half];
    float[] s = new float[half];
    final int chunkPositions = 4096;
    try (Arena arena = Arena.ofConfined()) {
      MemorySegment cosHost = arena.allocate((long) chunkPositions * half * Float.BYTES, 64);
      MemorySegment sinHost = arena.allocate((long) chunkPositions * half * Float.BYTES, 64);
      for (int start = 0; start < positions; start += chunkPositions) {
        int count = Math.min(chunkPositions, positions - start);
        for (int p = 0; p < count; p++) {
          rope.angles(start + p, c, s, 0);
          MemorySegment.copy(c, 0, cosHost, ValueLayout.JAVA_FLOAT, (long) p * half * Float.BYTES, half);
          MemorySegment.copy(s, 0, sinHost, ValueLayout.JAVA_FLOAT, (long) p * half * Float.BYTES, half);
        }
        long offset = (long) start * half * Float.BYTES;
        driver.copyToDevice(cos + offset, cosHost, (long) count * half * Float.BYTES);
        driver.copyToDevice(sin + offset, sinHost, (long) count * half * Float.BYTES);
      }
    }
    return new long[] {cos, sin};
  }

  private long allocate(long bytes) {
    long device = driver.alloc(bytes);
    allocations.add(() -> driver.free(device));
    return device;
  }

  /**
   * Runs the model over the rows of {@code batch} and leaves the f32 logits of its sample rows in
   * {@link #logits} ({@code batch.samples()} rows of the vocabulary), on the stream: the caller
   * synchronizes when it reads them.
   */
  void forward(StepBatch batch) {
    forward(batch, keyCache, valueCache, tokenAtSlot, null);
  }

  /** Where the last {@link #forward(StepBatch)}'s sampled rows find their sequences' tokens, for the sampler. */
  CudaKernels.Histories histories() {
    return histories;
  }

  /** Block {@code to} of the engine's cache becomes a copy of block {@code from}: keys, values and token ids, on the stream. */
  void copyBlock(int from, int to) {
    long bytes = (long) blockSize * config.kvDim() * (bf16 ? 2 : 4);
    for (int l = 0; l < config.numLayers(); l++) {
      driver.copyOnDeviceAsync(keyCache[l] + to * bytes, keyCache[l] + from * bytes, bytes, stream);
      driver.copyOnDeviceAsync(valueCache[l] + to * bytes, valueCache[l] + from * bytes, bytes, stream);
    }
    long ids = (long) blockSize * Integer.BYTES;
    driver.copyOnDeviceAsync(tokenAtSlot + to * ids, tokenAtSlot + from * ids, ids, stream);
  }

  /**
   * A separate cache for {@code blocks} blocks (e.g. a prompt scored outside the engine's cache):
   * {@code [keys, values][layer]}, freed by {@code releases}.
   */
  long[][] allocateCache(int blocks, Releases releases) {
    long layerBytes = (long) blocks * blockSize * config.kvDim() * (bf16 ? 2 : 4);
    long[][] cache = new long[2][config.numLayers()];
    for (long[] side : cache) {
      for (int l = 0; l < config.numLayers(); l++) {
        long pointer = driver.alloc(layerBytes);
        releases.add(() -> driver.free(pointer));
        side[l] = pointer;
      }
    }
    return cache;
  }

  /**
   * As {@link #forward(StepBatch)}, with the keys and values of layer l at {@code keys[l]},
   * {@code values[l]}, and {@code trace} (when not null) seeing every stage. The last layer's
   * MLP_RESIDUAL is that of the sample rows only: the pass adds it for them alone.
   */
  void forward(StepBatch batch, long[] keys, long[] values, ForwardTrace trace) {
    forward(batch, keys, values, 0, trace);
  }

  /**
   * Where a step's inputs are on the device once uploaded: one copy holds them all, at offsets that
   * depend only on the step's row, logit-row and sequence counts.
   */
  private record Inputs(int rows, int count, long tokens, long positions, long slots, long rowSequence, long logitRows,
      long blockTables, long tableStart, long chunkStart, int launches, int chunkBucket) {}

  /** With the rows' token ids written at their slots of {@code tokenAtSlot} (0: not written). */
  private void forward(StepBatch batch, long[] keys, long[] values, long tokenAtSlot, ForwardTrace trace) {
    int rows = batch.rows();
    int count = batch.samples();
    if (rows > maxRows || count > maxLogitRows || batch.sequences() > maxLogitRows || batch.maxBlocks() > maxBlocks) {
      throw new IllegalArgumentException("step of " + rows + " rows, " + count + " logit rows exceeds the engine's sizes");
    }
    Inputs in = upload(batch);
    histories = new CudaKernels.Histories(tokenAtSlot, in.blockTables(), in.tableStart(), blockSize, in.rowSequence(), in.positions(),
        in.logitRows());
    // A decode step (a row and a sample per sequence) of n sequences is the same launches with the
    // same arguments whenever n recurs: captured once into a graph, then one launch per step.
    boolean decode = rows == count && rows == batch.sequences() && in.launches() == 1 && trace == null
        && keys == keyCache && !CudaDriver.SYNC_EACH_LAUNCH;
    if (!decode) {
      layers(in, keys, values, tokenAtSlot, trace);
      return;
    }
    MemorySegment[] graphs = decodeGraphs[rows];
    if (graphs[in.chunkBucket()] == null) {
      MemorySegment graph = driver.captureGraph(stream, () -> layers(in, keys, values, tokenAtSlot, null));
      allocations.add(() -> driver.destroyGraph(graph));
      graphs[in.chunkBucket()] = graph;
    }
    driver.launchGraph(graphs[in.chunkBucket()], stream);
  }

  /**
   * One copy of all step inputs: tokens, positions, slots, row sequences, logit rows, each row's
   * first attention item, and the sequences' block tables packed (the used part of each, last, as
   * their length varies); also splits the rows into attention launches whose items
   * fit the scratch ({@link #groupBounds}).
   */
  private Inputs upload(StepBatch batch) {
    staging = inputsHost[uploads++ & 1];
    int rows = batch.rows();
    int count = batch.samples();
    long at = 0;
    at = put(batch.tokens(), rows, at);
    long positions = inputsDevice + at * Integer.BYTES;
    at = put(batch.positions(), rows, at);
    long chunkStart = inputsDevice + at * Integer.BYTES;
    int launches = 0;
    int launchItems = 0;
    int longest = 1;
    int items = 0;
    for (int r = 0; r < rows; r++) {
      int chunks = Math.ceilDiv(batch.positions()[r] + 1, CudaKernels.ATTENTION_CHUNK);
      longest = Math.max(longest, chunks);
      if (r == 0 || launchItems + chunks > attentionScratch.items()) {
        groupBounds[launches++] = r;
        launchItems = 0;
      }
      launchItems += chunks;
      staging.setAtIndex(ValueLayout.JAVA_INT, at + r, items);
      items += chunks;
    }
    groupBounds[launches] = rows;
    staging.setAtIndex(ValueLayout.JAVA_INT, at + rows, items);
    at += rows + 1;
    long slots = inputsDevice + at * Integer.BYTES;
    at = put(batch.slots(), rows, at);
    long rowSequence = inputsDevice + at * Integer.BYTES;
    at = put(batch.rowSequence(), rows, at);
    long logitRows = inputsDevice + at * Integer.BYTES;
    at = put(batch.sampleRows(), count, at);
    long starts = at;
    long tableStart = inputsDevice + starts * Integer.BYTES;
    long tables = starts + batch.sequences();
    long blockTables = inputsDevice + tables * Integer.BYTES;
    at = tables;
    for (int s = 0; s < batch.sequences(); s++) {
      staging.setAtIndex(ValueLayout.JAVA_INT, starts + s, (int) (at - tables));
      at = put(batch.blockTables(), s * batch.maxBlocks(), batch.tableLengths()[s], at);
    }
    driver.copyToDeviceAsync(inputsDevice, staging, at * Integer.BYTES, stream);
    // 2^bucket chunks hold the longest row; a smaller bucket suffices once the grid is at its cap,
    // so large batches need one graph whatever their contexts.
    int chunkBucket = 32 - Integer.numberOfLeadingZeros(longest - 1);
    while (chunkBucket > 0 && ((long) rows << (chunkBucket - 1)) >= attentionBlocks) {
      chunkBucket--;
    }
    return new Inputs(rows, count, inputsDevice, positions, slots, rowSequence, logitRows, blockTables, tableStart, chunkStart, launches,
        chunkBucket);
  }

  /** The model over the uploaded step: every launch and multiply of the forward pass, on the stream. */
  private void layers(Inputs in, long[] keys, long[] values, long tokenAtSlot, ForwardTrace trace) {
    int rows = in.rows();
    int count = in.count();
    long tokens = in.tokens();
    long positions = in.positions();
    long slots = in.slots();
    long rowSequence = in.rowSequence();
    long logitRows = in.logitRows();
    long blockTables = in.blockTables();

    int hidden = config.hiddenSize();
    int inter = config.intermediateSize();
    int qDim = config.queryDim();
    int kvDim = config.kvDim();
    float eps = config.rmsNormEps();
    kernels.embedding(x, weights.embedding, tokens, previousTokens, rows, hidden, slots, tokenAtSlot);
    trace(trace, -1, Stage.EMBEDDING, x, rows, hidden);
    for (int l = 0; l < weights.layers.length; l++) {
      CudaWeights.Layer w = weights.layers[l];
      // The previous layer's MLP output joins the residual stream inside this norm.
      kernels.rmsnorm(xn, x, l == 0 ? 0 : projected, w.attentionNorm(), rows, hidden, eps);
      if (l > 0) {
        trace(trace, l - 1, Stage.MLP_RESIDUAL, x, rows, hidden);
      }
      trace(trace, l, Stage.ATTENTION_NORM, xn, rows, hidden);
      linears.qkv().run(qkv, xn, w.qkv(), rows);
      trace(trace, l, Stage.Q, qkv, rows, qkvWidth, 0, qDim);
      trace(trace, l, Stage.K, qkv, rows, qkvWidth, qDim, kvDim);
      trace(trace, l, Stage.V, qkv, rows, qkvWidth, qDim + kvDim, kvDim);
      kernels.ropeWriteKv(qkv, qkvWidth, positions, cosTable, sinTable, rows, config.numHeads(), config.numKvHeads(), config.headDim(),
          keys[l], values[l], slots);
      trace(trace, l, Stage.Q_ROTATED, qkv, rows, qkvWidth, 0, qDim);
      trace(trace, l, Stage.K_ROTATED, qkv, rows, qkvWidth, qDim, kvDim);
      for (int launch = 0; launch < in.launches(); launch++) {
        int begin = groupBounds[launch];
        int end = groupBounds[launch + 1];
        // Blocks for every row's longest possible item count at this bucket, so a graph's grid fits every step it replays.
        int gridItems = (int) Math.min(attentionBlocks, (long) (end - begin) << in.chunkBucket());
        kernels.attention(attention, qkv, qkvWidth, keys[l], values[l], blockTables, in.tableStart(), rowSequence, positions,
            in.chunkStart(), begin, end, gridItems, attentionScratch, config.numHeads(), config.numKvHeads(), config.headDim(), blockSize,
            attentionScale);
      }
      trace(trace, l, Stage.ATTENTION, attention, rows, qDim);
      linears.output().run(projected, attention, w.output(), rows);
      trace(trace, l, Stage.ATTENTION_OUTPUT, projected, rows, hidden);
      kernels.rmsnorm(xn, x, projected, w.mlpNorm(), rows, hidden, eps);
      trace(trace, l, Stage.ATTENTION_RESIDUAL, x, rows, hidden);
      trace(trace, l, Stage.MLP_NORM, xn, rows, hidden);
      linears.gateUp().run(gateUp, xn, w.gateUp(), rows);
      kernels.siluMultiply(activated, gateUp, rows, inter);
      trace(trace, l, Stage.MLP_ACTIVATION, activated, rows, inter);
      linears.down().run(projected, activated, w.down(), rows);
      trace(trace, l, Stage.MLP_OUTPUT, projected, rows, hidden);
    }
    // Only the rows that sample need the final norm and the vocabulary projection.
    kernels.gatherRows(gathered, x, logitRows, count, hidden);
    kernels.gatherRows(gatheredResidual, projected, logitRows, count, hidden);
    kernels.rmsnorm(gatheredNormed, gathered, gatheredResidual, weights.finalNorm, count, hidden, eps);
    trace(trace, weights.layers.length - 1, Stage.MLP_RESIDUAL, gathered, count, hidden);
    trace(trace, -1, Stage.FINAL_NORM, gatheredNormed, count, hidden);
    linears.lmHead().run(logitsNative, gatheredNormed, weights.lmHead, count);
    kernels.toF32(logits, logitsNative, (long) count * config.vocabSize());
    if (trace != null) {
      trace.stage(-1, Stage.LOGITS, host(logits, true, count, config.vocabSize(), 0, config.vocabSize()), count, config.vocabSize());
    }
  }

  private void trace(ForwardTrace trace, int layer, Stage stage, long activations, int rows, int width) {
    trace(trace, layer, stage, activations, rows, width, 0, width);
  }

  /** Columns {@code [from, from + width)} of {@code rows} activation rows of {@code stride} values, to {@code trace}. */
  private void trace(ForwardTrace trace, int layer, Stage stage, long activations, int rows, int stride, int from, int width) {
    if (trace != null) {
      trace.stage(layer, stage, host(activations, !bf16, rows, stride, from, width), rows, width);
    }
  }

  /** A device matrix's columns on the host as floats, once the stream has computed them (diagnosis only: it waits). */
  private float[] host(long device, boolean f32, int rows, int stride, int from, int width) {
    int e = f32 ? Float.BYTES : 2;
    float[] out = new float[rows * width];
    driver.synchronize(stream);
    try (Arena arena = Arena.ofConfined()) {
      MemorySegment copy = arena.allocate((long) rows * stride * e, 8);
      driver.copyToHost(copy, device, copy.byteSize());
      for (int r = 0; r < rows; r++) {
        for (int c = 0; c < width; c++) {
          long index = (long) r * stride + from + c;
          out[r * width + c] = f32 ? copy.getAtIndex(ValueLayout.JAVA_FLOAT, index) : DType.bf16ToFloat(copy.getAtIndex(ValueLayout.JAVA_SHORT, index));
        }
      }
    }
    return out;
  }

  private long put(int[] values, int count, long at) {
    return put(values, 0, count, at);
  }

  /** Copies {@code values[from, from + count)} to the inputs at int index {@code at}; returns the index after them. */
  private long put(int[] values, int from, int count, long at) {
    MemorySegment.copy(values, from, staging, ValueLayout.JAVA_INT, at * Integer.BYTES, count);
    return at + count;
  }

  @Override
  public void close() {
    allocations.close();
  }
}
