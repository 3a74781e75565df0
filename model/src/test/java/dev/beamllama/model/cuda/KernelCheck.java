package dev.beamllama.model.cuda;

import dev.beamllama.model.config.RopeConfig;
import dev.beamllama.model.llama.Rope;
import dev.beamllama.model.safetensors.DType;
import dev.beamllama.model.sampling.Sampler;
import dev.beamllama.model.sampling.SamplingParams;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Locale;
import java.util.Random;
import java.util.function.Consumer;

/**
 * gpu-check's diagnosis of the device code, below the engine: every kernel of {@code llama.cu} and
 * the GEMM wrapper on random inputs against a CPU reference with the CPU engine's arithmetic
 * (bf16 rounding where it rounds), the sampler against the CPU sampler, and the device time of each
 * kernel and GEMM from CUDA events. Each check reports its own line, so one broken kernel does not
 * hide the others.
 */
public final class KernelCheck implements AutoCloseable {
  /** The sizes a check runs at: a model's widths, and the longest position its RoPE table covers. */
  public record Shape(String name, int hidden, int intermediate, int heads, int kvHeads, int headDim, int vocab, int maxPositions) {
    int queryDim() {
      return heads * headDim;
    }

    int kvDim() {
      return kvHeads * headDim;
    }

    int qkvWidth() {
      return queryDim() + 2 * kvDim();
    }
  }

  /** The hf-golden tiny checkpoints' shape. */
  public static final Shape TINY = new Shape("tiny", 64, 160, 4, 2, 16, 512, 256);
  /** Meta-Llama-3-8B's (and so the default model's) shape. */
  public static final Shape LLAMA_3_8B = new Shape("8B", 4096, 14336, 32, 8, 128, 128_256, 8192);

  /** One line of the check's table. */
  public record Result(String check, String result, boolean pass) {}

  private static final float EPS = 1e-5f;
  private static final int BLOCK_SIZE = 16;

  private final CudaDriver driver;
  private final Releases resources = new Releases();
  private final MemorySegment stream;
  private final CudaKernels bf16Kernels;
  private final CudaKernels f32Kernels;
  private final Cublas cublas;
  private final CublasLt cublasLt;

  public KernelCheck() {
    this.driver = CudaDriver.open(0);
    resources.add(driver::close);
    try {
      MemorySegment created = driver.createStream();
      resources.add(() -> driver.destroyStream(created));
      this.stream = created;
      this.bf16Kernels = new CudaKernels(driver, stream, true);
      resources.add(bf16Kernels::close);
      this.f32Kernels = new CudaKernels(driver, stream, false);
      resources.add(f32Kernels::close);
      this.cublas = new Cublas(driver, stream);
      resources.add(cublas::close);
      this.cublasLt = new CublasLt(driver, stream);
      resources.add(cublasLt::close);
    } catch (RuntimeException e) {
      throw resources.closeAfter(e);
    }
  }

  /** Device, compute capability, driver and cuBLAS, where the libraries were found, and free memory. */
  public String environment() {
    long[] memory = driver.memoryInfo();
    int version = driver.driverVersion();
    return String.format(Locale.ROOT, "%s, compute %d.%d, driver CUDA %d.%d, cuBLAS %s (%s), cuBLASLt %s, libcuda %s, %.1f of %.1f GiB free",
        driver.deviceName(), driver.computeCapability() / 10, driver.computeCapability() % 10, version / 1000, version % 1000 / 10,
        cublas.version(), CudaLibraries.cublasPath(), CudaLibraries.cublasLtPath(), CudaLibraries.driverPath(), memory[0] / (double) (1L << 30),
        memory[1] / (double) (1L << 30));
  }

  // ---------------------------------------------------------------------------------------------
  // Kernels against the CPU

  /** Every kernel at {@code shape}, in bf16 and (with {@code alsoF32}) f32 activations. */
  public List<Result> kernels(Shape shape, boolean alsoF32, long seed) {
    List<Result> results = new ArrayList<>();
    for (boolean bf16 : alsoF32 ? new boolean[] {true, false} : new boolean[] {true}) {
      String type = bf16 ? "bf16" : "f32";
      String where = shape.name() + " " + type;
      Random random = new Random(seed);
      guarded(results, "embedding " + where, buffers -> embedding(shape, bf16, random, buffers));
      guarded(results, "rmsnorm " + where, buffers -> rmsnorm(shape, bf16, random, false, buffers));
      guarded(results, "rmsnorm + residual " + where, buffers -> rmsnorm(shape, bf16, random, true, buffers));
      guarded(results, "gather_rows " + where, buffers -> gatherRows(shape, bf16, random, buffers));
      guarded(results, "rope_write_kv " + where, buffers -> ropeWriteKv(shape, bf16, random, buffers));
      guarded(results, "attention " + where, buffers -> attention(shape, bf16, random, buffers));
      guarded(results, "attention batch-invariant " + where, buffers -> attentionInvariance(shape, bf16, random, buffers));
      guarded(results, "silu_multiply " + where, buffers -> siluMultiply(shape, bf16, random, buffers));
      guarded(results, "to_f32 " + where, buffers -> toF32(shape, bf16, random, buffers));
    }
    guarded(results, "repetition_penalty " + shape.name(), buffers -> repetitionPenalty(shape, new Random(seed), buffers));
    return results;
  }

  /** Runs {@code check}; an exception becomes a failed line naming it, and the next check still runs. */
  private void guarded(List<Result> results, String name, Check check) {
    try (Releases buffers = new Releases()) {
      Agreement agreement = check.run(buffers);
      results.add(new Result(name, agreement.toString(), agreement.pass()));
    } catch (RuntimeException e) {
      results.add(new Result(name, "threw " + e, false));
    }
  }

  @FunctionalInterface
  private interface Check {
    Agreement run(Releases buffers);
  }

  private Agreement embedding(Shape s, boolean bf16, Random random, Releases buffers) {
    int tableRows = Math.min(s.vocab(), 1024);
    int rows = 37;
    float[] table = values(random, tableRows * s.hidden(), 1, bf16);
    int[] ids = new int[rows];
    float[] want = new float[rows * s.hidden()];
    // Every third row's token is one the previous step drew on the device: -1 - i for its sample i.
    int[] previous = new int[rows];
    int[] stepIds = new int[rows];
    for (int r = 0; r < rows; r++) {
      ids[r] = random.nextInt(tableRows);
      previous[(r * 5) % rows] = ids[r];
      stepIds[r] = r % 3 == 0 ? -1 - (r * 5) % rows : ids[r];
      System.arraycopy(table, ids[r] * s.hidden(), want, r * s.hidden(), s.hidden());
    }
    long out = allocate(buffers, rows * s.hidden(), bf16);
    int[] slots = new int[rows];
    for (int r = 0; r < rows; r++) {
      slots[r] = (r * 7 + 3) % (2 * rows); // scattered, as a batch's rows are over the cache
    }
    long tokenAtSlot = upload(buffers, new int[2 * rows]);
    kernels(bf16).embedding(out, upload(buffers, table, bf16), upload(buffers, stepIds), upload(buffers, previous), rows, s.hidden(),
        upload(buffers, slots), tokenAtSlot);
    int[] atSlots = new int[2 * rows];
    driver.synchronize(stream);
    try (Arena arena = Arena.ofConfined()) {
      MemorySegment host = arena.allocate(atSlots.length * 4L, 64);
      driver.copyToHost(host, tokenAtSlot, host.byteSize());
      MemorySegment.copy(host, ValueLayout.JAVA_INT, 0, atSlots, 0, atSlots.length);
    }
    // The rows' values, then each row's token id as its slot holds it (ids are exact as floats).
    float[] got = Arrays.copyOf(download(out, rows * s.hidden(), bf16), want.length + rows);
    float[] wantAll = Arrays.copyOf(want, want.length + rows);
    for (int r = 0; r < rows; r++) {
      got[want.length + r] = atSlots[slots[r]];
      wantAll[want.length + r] = ids[r];
    }
    return Agreement.exact(got, wantAll, wantAll.length);
  }

  private Agreement rmsnorm(Shape s, boolean bf16, Random random, boolean withResidual, Releases buffers) {
    int rows = 19;
    int n = rows * s.hidden();
    float[] x = values(random, n, 2, bf16);
    float[] residual = values(random, n, 1, bf16);
    float[] weight = values(random, s.hidden(), 1, bf16);
    float[] sum = x.clone();
    float[] want = new float[n];
    for (int r = 0; r < rows; r++) {
      double squares = 0;
      for (int i = 0; i < s.hidden(); i++) {
        int at = r * s.hidden() + i;
        if (withResidual) {
          sum[at] = round(x[at] + residual[at], bf16);
        }
        squares += sum[at] * sum[at];
      }
      float scale = (float) (1.0 / Math.sqrt((float) (squares / s.hidden()) + EPS));
      for (int i = 0; i < s.hidden(); i++) {
        int at = r * s.hidden() + i;
        want[at] = round(weight[i] * round(sum[at] * scale, bf16), bf16);
      }
    }
    long out = allocate(buffers, n, bf16);
    long xDevice = upload(buffers, x, bf16);
    kernels(bf16).rmsnorm(out, xDevice, withResidual ? upload(buffers, residual, bf16) : 0, upload(buffers, weight, bf16), rows, s.hidden(), EPS);
    Agreement normed = Agreement.of(download(out, n, bf16), want, n, 1, 1e-6);
    Agreement stream = Agreement.exact(download(xDevice, n, bf16), sum, n);
    return normed.pass() ? stream : normed;
  }

  private Agreement gatherRows(Shape s, boolean bf16, Random random, Releases buffers) {
    int rows = 29;
    int picked = 11;
    float[] in = values(random, rows * s.hidden(), 1, bf16);
    int[] ids = new int[picked];
    float[] want = new float[picked * s.hidden()];
    for (int i = 0; i < picked; i++) {
      ids[i] = random.nextInt(rows);
      System.arraycopy(in, ids[i] * s.hidden(), want, i * s.hidden(), s.hidden());
    }
    long out = allocate(buffers, picked * s.hidden(), bf16);
    kernels(bf16).gatherRows(out, upload(buffers, in, bf16), upload(buffers, ids), picked, s.hidden());
    return Agreement.exact(download(out, want.length, bf16), want, want.length);
  }

  /**
   * The rotary embedding of the query and key heads in place, against the CPU engine's Rope, and the
   * rotated keys and the values at each row's slot of a cache whose other slots keep their contents.
   */
  private Agreement ropeWriteKv(Shape s, boolean bf16, Random random, Releases buffers) {
    int rows = 23;
    int width = s.qkvWidth();
    int half = s.headDim() / 2;
    Rope rope = new Rope(RopeConfig.unscaled(500_000.0), s.headDim(), bf16);
    float[] qkv = values(random, rows * width, 1, bf16);
    int[] positions = new int[rows];
    float[] want = qkv.clone();
    float[] cos = new float[half];
    float[] sin = new float[half];
    float[] cosTable = new float[s.maxPositions() * half];
    float[] sinTable = new float[s.maxPositions() * half];
    for (int p = 0; p < s.maxPositions(); p++) {
      rope.angles(p, cosTable, sinTable, p * half);
    }
    for (int r = 0; r < rows; r++) {
      positions[r] = r < 3 ? r * (BLOCK_SIZE - 1) : random.nextInt(s.maxPositions());
      System.arraycopy(cosTable, positions[r] * half, cos, 0, half);
      System.arraycopy(sinTable, positions[r] * half, sin, 0, half);
      // The query heads and then the key heads, as the fused projection lays them out; values stay.
      rope.rotate(want, r * width, s.heads() + s.kvHeads(), s.headDim(), cos, sin, 0);
    }
    int slotsTotal = 2 * rows;
    float[] keys = values(random, slotsTotal * s.kvDim(), 1, bf16);
    float[] values = values(random, slotsTotal * s.kvDim(), 1, bf16);
    int[] slots = Arrays.copyOf(shuffled(random, slotsTotal), rows);
    long device = upload(buffers, qkv, bf16);
    long keysDevice = upload(buffers, keys, bf16);
    long valuesDevice = upload(buffers, values, bf16);
    kernels(bf16).ropeWriteKv(device, width, upload(buffers, positions), upload(buffers, cosTable, false), upload(buffers, sinTable, false),
        rows, s.heads(), s.kvHeads(), s.headDim(), keysDevice, valuesDevice, upload(buffers, slots));
    float[] got = download(device, qkv.length, bf16);
    Agreement rotated = Agreement.of(got, want, qkv.length, 0, bf16 ? -1 : 1e-6);
    if (!rotated.pass()) {
      return rotated;
    }
    // The cache holds exactly what the rows hold after the rotation.
    for (int r = 0; r < rows; r++) {
      System.arraycopy(got, r * width + s.queryDim(), keys, slots[r] * s.kvDim(), s.kvDim());
      System.arraycopy(got, r * width + s.queryDim() + s.kvDim(), values, slots[r] * s.kvDim(), s.kvDim());
    }
    Agreement k = Agreement.exact(download(keysDevice, keys.length, bf16), keys, keys.length);
    return k.pass() ? Agreement.exact(download(valuesDevice, values.length, bf16), values, values.length) : k;
  }

  /**
   * Causal attention through block tables: sequences whose blocks are scattered over the cache,
   * lengths that end inside and at the edges of blocks, one sequence's prefill rows next to other
   * sequences' single decode rows.
   */
  private Agreement attention(Shape s, boolean bf16, Random random, Releases buffers) {
    StepLayout layout = StepLayout.of(s == TINY ? new int[] {37, 16, 1, 50} : new int[] {600, 16, 1, 129}, 7, 3, random);
    int maxBlocks = layout.maxBlocks();
    int cacheBlocks = layout.cacheBlocks();
    int[] tables = layout.tables();
    int rows = layout.rows();
    int[] rowSequence = layout.rowSequence();
    int[] positions = layout.positions();
    int width = s.qkvWidth();
    float[] qkv = values(random, rows * width, 1, bf16);
    float[] keys = values(random, cacheBlocks * BLOCK_SIZE * s.kvDim(), 1, bf16);
    float[] values = values(random, cacheBlocks * BLOCK_SIZE * s.kvDim(), 1, bf16);
    float scale = (float) (1.0 / Math.sqrt(s.headDim()));
    float[] want = new float[rows * s.queryDim()];
    int group = s.heads() / s.kvHeads();
    for (int r = 0; r < rows; r++) {
      int length = positions[r] + 1;
      for (int h = 0; h < s.heads(); h++) {
        int kvHead = h / group;
        float[] scores = new float[length];
        float max = Float.NEGATIVE_INFINITY;
        for (int j = 0; j < length; j++) {
          int slot = tables[rowSequence[r] * maxBlocks + j / BLOCK_SIZE] * BLOCK_SIZE + j % BLOCK_SIZE;
          float dot = 0;
          for (int d = 0; d < s.headDim(); d++) {
            dot += qkv[r * width + h * s.headDim() + d] * keys[slot * s.kvDim() + kvHead * s.headDim() + d];
          }
          scores[j] = dot * scale;
          max = Math.max(max, scores[j]);
        }
        float sum = 0;
        float[] out = new float[s.headDim()];
        for (int j = 0; j < length; j++) {
          float e = (float) Math.exp(scores[j] - max);
          sum += e;
          float p = round(e, bf16);
          int slot = tables[rowSequence[r] * maxBlocks + j / BLOCK_SIZE] * BLOCK_SIZE + j % BLOCK_SIZE;
          for (int d = 0; d < s.headDim(); d++) {
            out[d] += p * values[slot * s.kvDim() + kvHead * s.headDim() + d];
          }
        }
        for (int d = 0; d < s.headDim(); d++) {
          want[r * s.queryDim() + h * s.headDim() + d] = round(out[d] / sum, bf16);
        }
      }
    }
    long out = allocate(buffers, want.length, bf16);
    AttentionInputs in = new AttentionInputs(upload(buffers, qkv, bf16), upload(buffers, keys, bf16), upload(buffers, values, bf16),
        upload(buffers, tables), upload(buffers, tableStarts(layout.sequences(), maxBlocks)), upload(buffers, rowSequence), positions,
        upload(buffers, positions), upload(buffers, chunkStart(positions)));
    attention(s, bf16, in, out, new int[] {0, rows}, 7, buffers);
    return Agreement.of(download(out, want.length, bf16), want, want.length, 2, 1e-5);
  }

  /**
   * A step over sequences of {@code lengths} whose blocks are scattered over a cache of their blocks
   * plus {@code spareBlocks}: the last {@code prefillRows} rows of sequence 0 (prefill rows), then
   * one row for each other sequence at its last position (decode rows).
   */
  private record StepLayout(int maxBlocks, int cacheBlocks, int[] tables, int rows, int[] rowSequence, int[] positions) {
    static StepLayout of(int[] lengths, int prefillRows, int spareBlocks, Random random) {
      int maxBlocks = 0;
      int totalBlocks = 0;
      for (int length : lengths) {
        maxBlocks = Math.max(maxBlocks, Math.ceilDiv(length, BLOCK_SIZE));
        totalBlocks += Math.ceilDiv(length, BLOCK_SIZE);
      }
      int cacheBlocks = totalBlocks + spareBlocks;
      int[] order = shuffled(random, cacheBlocks);
      int[] tables = new int[lengths.length * maxBlocks];
      int next = 0;
      for (int q = 0; q < lengths.length; q++) {
        for (int b = 0; b < Math.ceilDiv(lengths[q], BLOCK_SIZE); b++) {
          tables[q * maxBlocks + b] = order[next++];
        }
      }
      int rows = prefillRows + lengths.length - 1;
      int[] rowSequence = new int[rows];
      int[] positions = new int[rows];
      for (int r = 0; r < rows; r++) {
        rowSequence[r] = r < prefillRows ? 0 : r - prefillRows + 1;
        positions[r] = r < prefillRows ? lengths[0] - prefillRows + r : lengths[rowSequence[r]] - 1;
      }
      return new StepLayout(maxBlocks, cacheBlocks, tables, rows, rowSequence, positions);
    }

    int sequences() {
      return tables.length / maxBlocks;
    }
  }

  /** A step's attention inputs on the device; {@code positions} also on the host. */
  private record AttentionInputs(long qkv, long keys, long values, long tables, long tableStart, long rowSequence, int[] positions,
      long positionsDevice, long chunkStart) {}

  /** Where each of {@code sequences} tables of {@code stride} blocks starts. */
  private static int[] tableStarts(int sequences, int stride) {
    int[] starts = new int[sequences];
    for (int q = 0; q < sequences; q++) {
      starts[q] = q * stride;
    }
    return starts;
  }

  /** Each row's first attention item (the prefix sum of its chunk counts), rows + 1 entries. */
  private static int[] chunkStart(int[] positions) {
    int[] start = new int[positions.length + 1];
    for (int r = 0; r < positions.length; r++) {
      start[r + 1] = start[r] + Math.ceilDiv(positions[r] + 1, CudaKernels.ATTENTION_CHUNK);
    }
    return start;
  }

  /** The attention of the step's rows, in one launch per range {@code [bounds[i], bounds[i + 1])}, {@code gridItems} blocks per KV head. */
  private void attention(Shape s, boolean bf16, AttentionInputs in, long out, int[] bounds, int gridItems, Releases buffers) {
    int[] start = chunkStart(in.positions());
    int items = 0;
    for (int i = 0; i + 1 < bounds.length; i++) {
      items = Math.max(items, start[bounds[i + 1]] - start[bounds[i]]);
    }
    CudaKernels.AttentionScratch scratch = CudaKernels.AttentionScratch.allocate(items, s.heads(), s.headDim(), bytes -> allocate(buffers, bytes));
    for (int i = 0; i + 1 < bounds.length; i++) {
      kernels(bf16).attention(out, in.qkv(), s.qkvWidth(), in.keys(), in.values(), in.tables(), in.tableStart(), in.rowSequence(),
          in.positionsDevice(), in.chunkStart(), bounds[i], bounds[i + 1], gridItems, scratch, s.heads(), s.kvHeads(), s.headDim(),
          BLOCK_SIZE, (float) (1.0 / Math.sqrt(s.headDim())));
    }
  }

  /**
   * A row's attention is the same bits however the step is formed: each row of a step (prefill
   * rows of a long sequence, decode rows of others) alone, all in one launch with few or many
   * blocks, and split over several launches.
   */
  private Agreement attentionInvariance(Shape s, boolean bf16, Random random, Releases buffers) {
    int prefillRows = 5;
    StepLayout layout = StepLayout.of(s == TINY ? new int[] {200, 65, 64, 1, 130} : new int[] {1500, 65, 64, 1, 700}, prefillRows, 0,
        random);
    int maxBlocks = layout.maxBlocks();
    int totalBlocks = layout.cacheBlocks();
    int[] tables = layout.tables();
    int rows = layout.rows();
    int[] rowSequence = layout.rowSequence();
    int[] positions = layout.positions();
    long qkv = upload(buffers, values(random, rows * s.qkvWidth(), 1, bf16), bf16);
    long keys = upload(buffers, values(random, totalBlocks * BLOCK_SIZE * s.kvDim(), 1, bf16), bf16);
    long values = upload(buffers, values(random, totalBlocks * BLOCK_SIZE * s.kvDim(), 1, bf16), bf16);
    AttentionInputs step = new AttentionInputs(qkv, keys, values, upload(buffers, tables), upload(buffers, tableStarts(layout.sequences(), maxBlocks)),
        upload(buffers, rowSequence), positions, upload(buffers, positions), upload(buffers, chunkStart(positions)));
    int n = rows * s.queryDim();
    long oneLaunch = allocate(buffers, n, bf16);
    attention(s, bf16, step, oneLaunch, new int[] {0, rows}, 64, buffers);
    float[] want = download(oneLaunch, n, bf16);
    long fewBlocks = allocate(buffers, n, bf16);
    attention(s, bf16, step, fewBlocks, new int[] {0, rows}, 1, buffers);
    long split = allocate(buffers, n, bf16);
    attention(s, bf16, step, split, new int[] {0, 2, 3, prefillRows + 1, rows}, 5, buffers);
    float[] alone = new float[n];
    long out = allocate(buffers, s.queryDim(), bf16);
    for (int r = 0; r < rows; r++) {
      // Row r as a step of its own: its query at row 0, its sequence's table.
      AttentionInputs single = new AttentionInputs(qkv + (long) r * s.qkvWidth() * (bf16 ? 2 : 4), keys, values,
          upload(buffers, Arrays.copyOfRange(tables, rowSequence[r] * maxBlocks, (rowSequence[r] + 1) * maxBlocks)), upload(buffers, new int[] {0}),
          upload(buffers, new int[] {0}), new int[] {positions[r]}, upload(buffers, new int[] {positions[r]}),
          upload(buffers, chunkStart(new int[] {positions[r]})));
      attention(s, bf16, single, out, new int[] {0, 1}, 3, buffers);
      System.arraycopy(download(out, s.queryDim(), bf16), 0, alone, r * s.queryDim(), s.queryDim());
    }
    for (float[] got : new float[][] {download(fewBlocks, n, bf16), download(split, n, bf16), alone}) {
      Agreement same = Agreement.exact(got, want, n);
      if (!same.pass()) {
        return same;
      }
    }
    return Agreement.exact(want, want, n);
  }

  private Agreement siluMultiply(Shape s, boolean bf16, Random random, Releases buffers) {
    int rows = 5;
    int inter = s.intermediate();
    float[] gateUp = values(random, rows * 2 * inter, 3, bf16);
    float[] want = new float[rows * inter];
    for (int r = 0; r < rows; r++) {
      for (int i = 0; i < inter; i++) {
        float g = gateUp[r * 2 * inter + i];
        float silu = round(g / (1f + (float) Math.exp(-g)), bf16);
        want[r * inter + i] = round(silu * gateUp[r * 2 * inter + inter + i], bf16);
      }
    }
    long out = allocate(buffers, want.length, bf16);
    kernels(bf16).siluMultiply(out, upload(buffers, gateUp, bf16), rows, inter);
    return Agreement.of(download(out, want.length, bf16), want, want.length, 1, 1e-6);
  }

  private Agreement toF32(Shape s, boolean bf16, Random random, Releases buffers) {
    int n = 3 * s.vocab() + 5;
    float[] in = values(random, n, 10, bf16);
    long out = allocate(buffers, n, false);
    kernels(bf16).toF32(out, upload(buffers, in, bf16), n);
    return Agreement.exact(download(out, n, false), in, n);
  }

  private Agreement repetitionPenalty(Shape s, Random random, Releases buffers) {
    int rows = 6;
    float[] logits = values(random, rows * s.vocab(), 4, false);
    float[] want = logits.clone();
    List<int[]> histories = new ArrayList<>();
    float[] penalties = new float[rows];
    for (int r = 0; r < rows; r++) {
      penalties[r] = r == 3 ? 1.0f : 1.1f + 0.2f * r;
      int[] h = new int[1 + random.nextInt(300)];
      for (int i = 0; i < h.length; i++) {
        h[i] = i > 0 && i % 7 == 0 ? h[i - 1] : random.nextInt(s.vocab()); // repeated ids are penalised once
      }
      histories.add(h);
      if (penalties[r] != 1.0f) {
        float[] row = Arrays.copyOfRange(want, r * s.vocab(), (r + 1) * s.vocab());
        dev.beamllama.model.sampling.LogitsProcessors.repetitionPenalty(row, h, h.length, penalties[r], new float[h.length]);
        System.arraycopy(row, 0, want, r * s.vocab(), s.vocab());
      }
    }
    long device = upload(buffers, logits, false);
    bf16Kernels.repetitionPenalty(device, s.vocab(), DeviceHistories.upload(driver, buffers, histories), upload(buffers, penalties, false),
        rows);
    return Agreement.exact(download(device, logits.length, false), want, logits.length);
  }

  // ---------------------------------------------------------------------------------------------
  // GEMM

  /**
   * The engine's GEMM ({@link CublasLt}, {@code y = x W^T}, W non-square) at 1, 7 and 256 rows
   * against a matmul on the CPU (double sums, then rounded as the device stores), and whether rows
   * 0 to 8 come out bitwise the same at 9 and 256 rows and row 0 alone: must, for the engine's
   * GEMM; for cuBLAS's own choice per call ({@code cublasGemmEx}), shown for comparison.
   */
  public List<Result> gemm(Shape s, long seed) {
    List<Result> results = new ArrayList<>();
    Random random = new Random(seed);
    int in = s.hidden();
    int out = s.qkvWidth();
    for (boolean bf16 : new boolean[] {true, false}) {
      String where = s.name() + " " + (bf16 ? "bf16" : "f32") + " " + in + " -> " + out;
      float[] w = values(random, out * in, 0.05f, bf16);
      float[] x = values(random, 256 * in, 1, bf16);
      for (int rows : new int[] {1, 7, 256}) {
        guarded(results, "gemm " + where + ", " + rows + " rows", buffers -> {
          // A sum of `in` f32 products in any order is within in * 2^-24 * sum |x w| of the exact
          // one; a bf16 result may then round one bf16 ulp the other way.
          float[] want = new float[rows * out];
          float[] bound = new float[rows * out];
          for (int r = 0; r < rows; r++) {
            for (int o = 0; o < out; o++) {
              double sum = 0;
              double magnitude = 0;
              for (int i = 0; i < in; i++) {
                double product = (double) x[r * in + i] * w[o * in + i];
                sum += product;
                magnitude += Math.abs(product);
              }
              want[r * out + o] = round((float) sum, bf16);
              bound[r * out + o] = (float) (in * 0x1p-24 * magnitude + (bf16 ? Math.ulp(want[r * out + o]) * 65536 : 0));
            }
          }
          long y = allocate(buffers, rows * out, bf16);
          long wDevice = upload(buffers, w, bf16);
          cublasLt.linear("gemm check", wDevice, out, in, bf16, 256, 256).run(y, upload(buffers, x, bf16), wDevice, rows);
          return Agreement.bounded(download(y, rows * out, bf16), want, bound, rows * out);
        });
      }
      try (Releases buffers = new Releases()) {
        long xDevice = upload(buffers, x, bf16);
        long wDevice = upload(buffers, w, bf16);
        CublasLt.Linear engine = cublasLt.linear("gemm check", wDevice, out, in, bf16, 256, 256);
        for (boolean engines : new boolean[] {true, false}) {
          List<String> differs = new ArrayList<>();
          float[] batched = null;
          for (int rows : new int[] {256, 9, 1}) {
            long y = allocate(buffers, rows * out, bf16);
            if (engines) {
              engine.run(y, xDevice, wDevice, rows);
            } else {
              cublas.linear(y, xDevice, wDevice, rows, in, out, bf16);
            }
            int compared = Math.min(rows, 9);
            float[] first = download(y, compared * out, bf16);
            if (batched == null) {
              batched = first;
            } else if (!Arrays.equals(first, Arrays.copyOf(batched, compared * out))) {
              differs.add(rows + " rows");
            }
          }
          String result = differs.isEmpty() ? "bitwise identical" : "differs from 256 rows at " + String.join(", ", differs) + " (not batch-invariant)";
          results.add(new Result("gemm " + where + ", rows 0-8 at 256 / 9 / 1 rows, " + (engines ? "the engine's (one algorithm)"
              : "cublasGemmEx (cuBLAS's choice per call, for comparison)"), result, !engines || differs.isEmpty()));
        }
      } catch (RuntimeException e) {
        results.add(new Result("gemm " + where + " batch invariance", "threw " + e, false));
      }
    }
    return results;
  }

  // ---------------------------------------------------------------------------------------------
  // Sampler

  /** {@code rows} rows of random bf16 logits with a mix of the parameters users set, sampled on the device and by the CPU sampler. */
  public Result sampler(int rows, int vocab, long seed) {
    Random random = new Random(seed);
    float[][] logits = new float[rows][vocab];
    List<CudaSampler.Row> requests = new ArrayList<>();
    List<int[]> histories = new ArrayList<>();
    for (int r = 0; r < rows; r++) {
      float scale = 1 + random.nextInt(8);
      for (int i = 0; i < vocab; i++) {
        logits[r][i] = DType.roundToBf16((float) random.nextGaussian() * scale);
      }
      int[] history = new int[1 + random.nextInt(200)];
      for (int i = 0; i < history.length; i++) {
        history[i] = random.nextInt(vocab);
      }
      SamplingParams params = switch (r % 6) {
        case 0 -> SamplingParams.modelCard(r);
        case 1 -> SamplingParams.greedy(8).withRepetitionPenalty(1.1);
        case 2 -> SamplingParams.modelCard(r).withTopK(0);
        case 3 -> SamplingParams.modelCard(r).withTopK(1000).withTopP(0.5);
        case 4 -> SamplingParams.modelCard(r).withTemperature(0.3);
        default -> SamplingParams.greedy(8);
      };
      histories.add(history);
      requests.add(new CudaSampler.Row(params, random.nextInt(1000)));
    }
    String name = "sampler, " + rows + " rows of " + vocab;
    try (Releases buffers = new Releases()) {
      CudaSampler sampler = new CudaSampler(driver, bf16Kernels, stream, vocab, rows);
      buffers.add(sampler::close);
      long device = allocate(buffers, (long) rows * vocab, false);
      try (Arena arena = Arena.ofConfined()) {
        MemorySegment host = arena.allocate((long) rows * vocab * Float.BYTES, 64);
        for (int r = 0; r < rows; r++) {
          MemorySegment.copy(logits[r], 0, host, ValueLayout.JAVA_FLOAT, (long) r * vocab * Float.BYTES, vocab);
        }
        driver.copyToDevice(device, host, host.byteSize());
      }
      int[] gpu = sampler.launch(device, DeviceHistories.upload(driver, buffers, histories), requests).tokens();
      Sampler reference = new Sampler(vocab);
      int mismatches = 0;
      int first = -1;
      for (int r = 0; r < rows; r++) {
        CudaSampler.Row row = requests.get(r);
        int cpu = reference.sample(logits[r], histories.get(r), histories.get(r).length, row.params(), row.step());
        if (cpu != gpu[r]) {
          mismatches++;
          first = first < 0 ? r : first;
        }
      }
      return new Result(name, mismatches == 0 ? "every token the CPU sampler's"
          : mismatches + " rows differ from the CPU sampler, first row " + first, mismatches == 0);
    } catch (RuntimeException e) {
      return new Result(name, "threw " + e, false);
    }
  }

  // ---------------------------------------------------------------------------------------------
  // Device times

  /**
   * Milliseconds per launch of each kernel and GEMM of a bf16 decode step at {@code shape}, with
   * {@code batch} sequences of {@code context} tokens, from CUDA events around {@code repeats}
   * launches after a warm-up.
   */
  public List<Result> timings(Shape s, int batch, int context, int repeats) {
    List<Result> results = new ArrayList<>();
    Random random = new Random(batch);
    String where = s.name() + " batch " + batch;
    try (Releases buffers = new Releases()) {
      int width = s.qkvWidth();
      int blocksPerSequence = Math.ceilDiv(context, BLOCK_SIZE);
      int cacheBlocks = batch * blocksPerSequence;
      long x = upload(buffers, values(random, batch * s.hidden(), 1, true), true);
      long xn = allocate(buffers, (long) batch * s.hidden(), true);
      long weight = upload(buffers, values(random, s.hidden(), 1, true), true);
      long qkv = upload(buffers, values(random, batch * width, 1, true), true);
      long attention = allocate(buffers, (long) batch * s.queryDim(), true);
      long keys = allocate(buffers, (long) cacheBlocks * BLOCK_SIZE * s.kvDim(), true);
      long values = allocate(buffers, (long) cacheBlocks * BLOCK_SIZE * s.kvDim(), true);
      driver.zero(keys, (long) cacheBlocks * BLOCK_SIZE * s.kvDim() * 2);
      driver.zero(values, (long) cacheBlocks * BLOCK_SIZE * s.kvDim() * 2);
      int[] tables = new int[batch * blocksPerSequence];
      int[] positions = new int[batch];
      int[] rowSequence = new int[batch];
      int[] slots = new int[batch];
      for (int b = 0; b < batch; b++) {
        for (int i = 0; i < blocksPerSequence; i++) {
          tables[b * blocksPerSequence + i] = b * blocksPerSequence + i;
        }
        positions[b] = context - 1;
        rowSequence[b] = b;
        slots[b] = (b * blocksPerSequence + (context - 1) / BLOCK_SIZE) * BLOCK_SIZE + (context - 1) % BLOCK_SIZE;
      }
      long tablesDevice = upload(buffers, tables);
      long positionsDevice = upload(buffers, positions);
      long rowSequenceDevice = upload(buffers, rowSequence);
      long slotsDevice = upload(buffers, slots);
      int half = s.headDim() / 2;
      long cos = upload(buffers, values(random, s.maxPositions() * half, 1, false), false);
      long sin = upload(buffers, values(random, s.maxPositions() * half, 1, false), false);
      long gateUp = upload(buffers, values(random, batch * 2 * s.intermediate(), 1, true), true);
      long activated = allocate(buffers, (long) batch * s.intermediate(), true);
      CudaKernels k = bf16Kernels;
      time(results, "rmsnorm " + where, repeats, () -> k.rmsnorm(xn, x, 0, weight, batch, s.hidden(), EPS));
      time(results, "rope_write_kv " + where, repeats, () -> k.ropeWriteKv(qkv, width, positionsDevice, cos, sin, batch, s.heads(),
          s.kvHeads(), s.headDim(), keys, values, slotsDevice));
      int[] chunkStart = chunkStart(positions);
      long chunkStartDevice = upload(buffers, chunkStart);
      long tableStartsDevice = upload(buffers, tableStarts(batch, blocksPerSequence));
      int items = chunkStart[batch];
      CudaKernels.AttentionScratch scratch = CudaKernels.AttentionScratch.allocate(items, s.heads(), s.headDim(),
          bytes -> allocate(buffers, bytes));
      // As the engine sizes the grid: blocks enough for 4 per multiprocessor, fewer when there are fewer items.
      int gridItems = Math.min(Math.ceilDiv(4 * driver.multiprocessors(), s.kvHeads()), items);
      time(results, "attention " + where + ", " + context + " tokens", repeats, () -> k.attention(attention, qkv, width, keys, values,
          tablesDevice, tableStartsDevice, rowSequenceDevice, positionsDevice, chunkStartDevice, 0, batch, gridItems, scratch, s.heads(),
          s.kvHeads(), s.headDim(), BLOCK_SIZE, 0.1f));
      time(results, "silu_multiply " + where, repeats, () -> k.siluMultiply(activated, gateUp, batch, s.intermediate()));
      int[][] gemms = {{s.hidden(), width}, {s.queryDim(), s.hidden()}, {s.hidden(), 2 * s.intermediate()}, {s.intermediate(), s.hidden()},
          {s.hidden(), s.vocab()}};
      String[] names = {"qkv", "output", "gate_up", "down", "lm_head"};
      for (int g = 0; g < gemms.length; g++) {
        int in = gemms[g][0];
        int out = gemms[g][1];
        long w = allocate(buffers, (long) in * out, true);
        driver.zero(w, (long) in * out * 2);
        long input = allocate(buffers, (long) batch * in, true);
        driver.zero(input, (long) batch * in * 2);
        long output = allocate(buffers, (long) batch * out, true);
        CublasLt.Linear engine = cublasLt.linear(names[g], w, out, in, true, 256, Math.max(batch, 256));
        time(results, "gemm " + names[g] + " " + in + " -> " + out + " " + where + ", the engine's (one algorithm)", repeats,
            () -> engine.run(output, input, w, batch));
        time(results, "gemm " + names[g] + " " + in + " -> " + out + " " + where + ", cublasGemmEx (cuBLAS's choice)", repeats,
            () -> cublas.linear(output, input, w, batch, in, out, true));
      }
      // The sampler as a step runs it (parameters uploaded, tokens read back): the model card's
      // top-k, and top-k off (every row over the whole vocabulary).
      CudaSampler sampler = new CudaSampler(driver, bf16Kernels, stream, s.vocab(), batch);
      buffers.add(sampler::close);
      long logits = upload(buffers, values(random, batch * s.vocab(), 4, false), false);
      List<int[]> histories = new ArrayList<>();
      List<CudaSampler.Row> modelCard = new ArrayList<>();
      List<CudaSampler.Row> topKOff = new ArrayList<>();
      for (int b = 0; b < batch; b++) {
        int[] history = new int[context];
        for (int i = 0; i < context; i++) {
          history[i] = random.nextInt(s.vocab());
        }
        histories.add(history);
        modelCard.add(new CudaSampler.Row(SamplingParams.modelCard(b), 1));
        topKOff.add(new CudaSampler.Row(SamplingParams.modelCard(b).withTopK(0), 1));
      }
      CudaKernels.Histories onDevice = DeviceHistories.upload(driver, buffers, histories);
      time(results, "sample " + where + ", model card (top-k 40, top-p 0.9)", repeats, () -> sampler.launch(logits, onDevice, modelCard).tokens());
      time(results, "sample " + where + ", top-k off (top-p 0.9 over the vocabulary)", repeats,
          () -> sampler.launch(logits, onDevice, topKOff).tokens());
    } catch (RuntimeException e) {
      results.add(new Result("timings " + where, "threw " + e, false));
    }
    return results;
  }

  /**
   * Milliseconds per bf16 attention of a prefill step at {@code shape}: {@code sequences} prompts
   * of {@code promptLength} tokens each, every position a row (the tensor cores' case: consecutive
   * positions share a tile), one launch as the engine makes when the scratch holds the step.
   */
  public Result prefillAttentionTiming(Shape s, int sequences, int promptLength, int repeats) {
    String name = "attention " + s.name() + " prefill " + sequences + " x " + promptLength + " tokens";
    try (Releases buffers = new Releases()) {
      int rows = sequences * promptLength;
      int blocksPerSequence = Math.ceilDiv(promptLength, BLOCK_SIZE);
      int cacheBlocks = sequences * blocksPerSequence;
      long qkv = upload(buffers, values(new Random(rows), rows * s.qkvWidth(), 1, true), true);
      long attention = allocate(buffers, (long) rows * s.queryDim(), true);
      long keys = allocate(buffers, (long) cacheBlocks * BLOCK_SIZE * s.kvDim(), true);
      long values = allocate(buffers, (long) cacheBlocks * BLOCK_SIZE * s.kvDim(), true);
      driver.zero(keys, (long) cacheBlocks * BLOCK_SIZE * s.kvDim() * 2);
      driver.zero(values, (long) cacheBlocks * BLOCK_SIZE * s.kvDim() * 2);
      int[] tables = new int[cacheBlocks];
      for (int b = 0; b < cacheBlocks; b++) {
        tables[b] = b;
      }
      int[] positions = new int[rows];
      int[] rowSequence = new int[rows];
      for (int r = 0; r < rows; r++) {
        rowSequence[r] = r / promptLength;
        positions[r] = r % promptLength;
      }
      int[] chunkStart = chunkStart(positions);
      int items = chunkStart[rows];
      CudaKernels.AttentionScratch scratch = CudaKernels.AttentionScratch.allocate(items, s.heads(), s.headDim(),
          bytes -> allocate(buffers, bytes));
      long tablesDevice = upload(buffers, tables);
      long tableStarts = upload(buffers, tableStarts(sequences, blocksPerSequence));
      long rowSequenceDevice = upload(buffers, rowSequence);
      long positionsDevice = upload(buffers, positions);
      long chunkStartDevice = upload(buffers, chunkStart);
      int gridItems = Math.min(Math.ceilDiv(4 * driver.multiprocessors(), s.kvHeads()), items);
      List<Result> results = new ArrayList<>();
      time(results, name, repeats, () -> bf16Kernels.attention(attention, qkv, s.qkvWidth(), keys, values, tablesDevice, tableStarts,
          rowSequenceDevice, positionsDevice, chunkStartDevice, 0, rows, gridItems, scratch, s.heads(), s.kvHeads(), s.headDim(), BLOCK_SIZE,
          0.1f));
      return results.get(0);
    } catch (RuntimeException e) {
      return new Result("time " + name, "threw " + e, false);
    }
  }

  private void time(List<Result> results, String name, int repeats, Runnable launch) {
    try (Releases events = new Releases()) {
      MemorySegment start = driver.createEvent();
      events.add(() -> driver.destroyEvent(start));
      MemorySegment end = driver.createEvent();
      events.add(() -> driver.destroyEvent(end));
      launch.run();
      driver.recordEvent(start, stream);
      for (int i = 0; i < repeats; i++) {
        launch.run();
      }
      driver.recordEvent(end, stream);
      float millis = driver.elapsedMillis(start, end) / repeats;
      results.add(new Result("time " + name, String.format(Locale.ROOT, "%.4f ms", millis), true));
    } catch (RuntimeException e) {
      results.add(new Result("time " + name, "threw " + e, false));
    }
  }

  // ---------------------------------------------------------------------------------------------
  // Host and device buffers

  private CudaKernels kernels(boolean bf16) {
    return bf16 ? bf16Kernels : f32Kernels;
  }

  /** Gaussian values times {@code scale}, rounded to bf16 when the device holds bf16. */
  private static float[] values(Random random, int n, float scale, boolean bf16) {
    float[] v = new float[n];
    for (int i = 0; i < n; i++) {
      v[i] = round((float) random.nextGaussian() * scale, bf16);
    }
    return v;
  }

  private static int[] shuffled(Random random, int n) {
    int[] order = new int[n];
    for (int i = 0; i < n; i++) {
      order[i] = i;
    }
    for (int i = n - 1; i > 0; i--) {
      int j = random.nextInt(i + 1);
      int t = order[i];
      order[i] = order[j];
      order[j] = t;
    }
    return order;
  }

  private static float round(float v, boolean bf16) {
    return bf16 ? DType.roundToBf16(v) : v;
  }

  private long allocate(Releases buffers, long elements, boolean bf16) {
    return allocate(buffers, elements * (bf16 ? 2 : 4));
  }

  private long allocate(Releases buffers, long bytes) {
    long device = driver.alloc(bytes);
    buffers.add(() -> driver.free(device));
    return device;
  }

  private long upload(Releases buffers, float[] values, boolean bf16) {
    long device = allocate(buffers, values.length, bf16);
    copy(values.length * (bf16 ? 2L : 4L), host -> {
      for (int i = 0; i < values.length; i++) {
        if (bf16) {
          host.setAtIndex(ValueLayout.JAVA_SHORT, i, DType.floatToBf16(values[i]));
        } else {
          host.setAtIndex(ValueLayout.JAVA_FLOAT, i, values[i]);
        }
      }
    }, device);
    return device;
  }

  private long upload(Releases buffers, int[] values) {
    long device = driver.alloc(Math.max(1, values.length) * 4L);
    buffers.add(() -> driver.free(device));
    copy(values.length * 4L, host -> MemorySegment.copy(values, 0, host, ValueLayout.JAVA_INT, 0, values.length), device);
    return device;
  }

  private void copy(long bytes, Consumer<MemorySegment> fill, long device) {
    if (bytes == 0) {
      return;
    }
    try (Arena arena = Arena.ofConfined()) {
      MemorySegment host = arena.allocate(bytes, 8);
      fill.accept(host);
      driver.copyToDevice(device, host, bytes);
    }
  }

  private float[] download(long device, int n, boolean bf16) {
    driver.synchronize(stream);
    float[] out = new float[n];
    try (Arena arena = Arena.ofConfined()) {
      MemorySegment host = arena.allocate(n * (bf16 ? 2L : 4L), 8);
      driver.copyToHost(host, device, host.byteSize());
      for (int i = 0; i < n; i++) {
        out[i] = bf16 ? DType.bf16ToFloat(host.getAtIndex(ValueLayout.JAVA_SHORT, i)) : host.getAtIndex(ValueLayout.JAVA_FLOAT, i);
      }
    }
    return out;
  }

  @Override
  public void close() {
    resources.close();
  }
}
