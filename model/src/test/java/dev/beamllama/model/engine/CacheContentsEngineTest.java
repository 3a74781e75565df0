package dev.beamllama.model.engine;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.beamllama.model.sampling.SamplingParams;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Random;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.atomic.AtomicLong;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

/**
 * The engine with a fake model whose KV cache holds each slot's token id, as a device holds keys:
 * a sample reads its history from the cache through its block table, not from the host's token
 * list. So prefix-cache hits, partial-block copies, preemption and (with overlapping steps) pending
 * tokens must put the right ids in the right slots, in the order a device runs the steps.
 */
class CacheContentsEngineTest {
  private static final int BLOCK_SIZE = 4;

  /** Runs each step when its tokens are taken (overlapping) or at launch, on a snapshot of its batch. */
  private static final class SlotRunner implements ModelRunner {
    final int blocks;
    final EngineOptions options;
    final boolean overlapping;
    final int[] cache;
    int[] previousDraws = new int[0];
    final AtomicLong pendingRows = new AtomicLong();
    final AtomicLong copies = new AtomicLong();

    SlotRunner(int blocks, EngineOptions options, boolean overlapping) {
      this.blocks = blocks;
      this.options = options.withSizingDefaults(EngineOptions.CPU_MAX_NUM_SEQS, EngineOptions.CPU_MAX_BATCH_TOKENS);
      this.overlapping = overlapping;
      this.cache = new int[blocks * BLOCK_SIZE];
      Arrays.fill(cache, -12345); // never a token: a slot read before it was written shows
    }

    @Override public EngineOptions options() { return options; }
    @Override public int kvBlocks() { return blocks; }
    @Override public int blockSize() { return BLOCK_SIZE; }
    @Override public int maxSequenceLength() { return Math.min(256, blocks * BLOCK_SIZE); }
    @Override public int vocabularySize() { return LlmEngineTest.VOCAB; }
    @Override public String describe() { return "cache-contents fake"; }
    @Override public void close() {}
    @Override public boolean overlapsSteps() { return overlapping; }

    @Override
    public float[][] promptLogits(int[] promptIds, dev.beamllama.model.llama.ForwardTrace trace) {
      throw new UnsupportedOperationException();
    }

    @Override
    public int[] step(StepBatch batch) {
      return launch(batch).tokens();
    }

    @Override
    public Launched launch(StepBatch batch) {
      List<int[]> blockCopies = List.copyOf(batch.blockCopies());
      int rows = batch.rows();
      int[] tokens = Arrays.copyOf(batch.tokens(), rows);
      int[] slots = Arrays.copyOf(batch.slots(), rows);
      int[] positions = Arrays.copyOf(batch.positions(), rows);
      int[] rowSequence = Arrays.copyOf(batch.rowSequence(), rows);
      int[] tables = batch.blockTables().clone();
      int maxBlocks = batch.maxBlocks();
      int[] sampleRows = Arrays.copyOf(batch.sampleRows(), batch.samples());
      long[] seeds = new long[batch.samples()];
      for (int i = 0; i < seeds.length; i++) {
        seeds[i] = batch.sequence(i).params().seed();
      }
      pendingRows.addAndGet(Arrays.stream(tokens).filter(t -> t < 0).count());
      copies.addAndGet(blockCopies.size());
      Launched run = () -> {
        for (int[] copy : blockCopies) {
          System.arraycopy(cache, copy[0] * BLOCK_SIZE, cache, copy[1] * BLOCK_SIZE, BLOCK_SIZE);
        }
        for (int r = 0; r < rows; r++) {
          cache[slots[r]] = tokens[r] < 0 ? previousDraws[-1 - tokens[r]] : tokens[r];
        }
        int[] out = new int[seeds.length];
        for (int i = 0; i < out.length; i++) {
          int row = sampleRows[i];
          int[] history = new int[positions[row] + 1];
          for (int p = 0; p < history.length; p++) {
            history[p] = cache[tables[rowSequence[row] * maxBlocks + p / BLOCK_SIZE] * BLOCK_SIZE + p % BLOCK_SIZE];
          }
          out[i] = LlmEngineTest.expectedNext(seeds[i], history, history.length);
        }
        if (out.length > 0) {
          previousDraws = out;
        }
        return out;
      };
      if (overlapping) {
        return run;
      }
      int[] out = run.tokens();
      return () -> out;
    }
  }

  @ParameterizedTest(name = "overlapping steps: {0}")
  @ValueSource(booleans = {false, true})
  void samplesOfSharedPromptsReadTheirHistoryFromTheCache(boolean overlapping) {
    SlotRunner runner = new SlotRunner(48, EngineOptions.defaults().withMaxNumSeqs(8).withMaxBatchTokens(40).withBlockSize(BLOCK_SIZE)
        .withPrefixCaching(true), overlapping);
    int stop = 7;
    Random random = new Random(3);
    List<int[]> prompts = new ArrayList<>();
    for (int i = 0; i < 12; i++) {
      prompts.add(random.ints(1 + random.nextInt(30), 0, LlmEngineTest.VOCAB).toArray());
    }
    List<CompletableFuture<GenerationResult>> futures = new ArrayList<>();
    List<int[]> expected = new ArrayList<>();
    try (LlmEngine engine = new LlmEngine(runner, new int[] {stop})) {
      for (int i = 0; i < 1500; i++) {
        int[] prompt = prompts.get(random.nextInt(prompts.size()));
        int maxNew = 1 + random.nextInt(30);
        long seed = random.nextInt(4); // repeated (prompt, seed): identical sequences share generated blocks too
        expected.add(LlmEngineTest.reference(seed, prompt, maxNew, stop));
        futures.add(engine.submit(new GenerationRequest("r" + i, prompt, new SamplingParams(0.9, 40, 0.9, 1.0, maxNew, seed, false))));
      }
      for (int i = 0; i < futures.size(); i++) {
        assertArrayEquals(expected.get(i), futures.get(i).join().tokenIds(), "request " + i);
      }
      assertTrue(engine.stats().preemptions() > 0, "the cache was meant to be too small");
      assertTrue(engine.stats().cachedTokens() > 0, "requests were meant to take cached blocks");
      assertTrue(runner.copies.get() > 0, "samples of one prompt were meant to copy a partial block");
      assertEquals(overlapping, runner.pendingRows.get() > 0, "overlapped steps compute pending tokens");
    }
  }
}
