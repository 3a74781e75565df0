package dev.beamllama.model.engine;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.beamllama.model.sampling.SamplingParams;
import dev.beamllama.model.sampling.SeededRandom;
import java.util.ArrayList;
import java.util.List;
import java.util.Random;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.CompletionException;
import java.util.concurrent.atomic.AtomicInteger;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

/**
 * The engine loop with a fake model whose next token is a pure function of the sequence so far:
 * whatever the batching and preemption, each request must get exactly that function's tokens.
 */
class LlmEngineTest {
  static final int VOCAB = 1000;

  /** Next token = hash of (seed, every token so far) — checks that recomputation sees the right tokens. */
  static int expectedNext(long seed, int[] tokens, int length) {
    long h = seed;
    for (int i = 0; i < length; i++) {
      h = SeededRandom.mix(h * 31 + tokens[i]);
    }
    return (int) Math.floorMod(h, (long) VOCAB);
  }

  static final class FakeRunner implements ModelRunner {
    final int blocks;
    final EngineOptions options;
    final AtomicInteger maxBatch = new AtomicInteger();
    /** Tokens drawn, including those the engine drops. */
    final java.util.concurrent.atomic.AtomicLong draws = new java.util.concurrent.atomic.AtomicLong();
    volatile RuntimeException failNext;
    /**
     * Whether it overlaps steps as the GPU runner does: a launched step is computed when its tokens
     * are taken, and a pending token (-1 - i) is read from the previous step's draws, as the device does.
     */
    boolean overlapping;
    private int[] previousDraws = new int[0];

    FakeRunner(int blocks) {
      this(blocks, EngineOptions.defaults());
    }

    FakeRunner(int blocks, EngineOptions options) {
      this.blocks = blocks;
      this.options = options.withSizingDefaults(EngineOptions.CPU_MAX_NUM_SEQS, EngineOptions.CPU_MAX_BATCH_TOKENS);
    }

    @Override public EngineOptions options() { return options; }
    @Override public int kvBlocks() { return blocks; }
    @Override public int blockSize() { return 4; }
    @Override public int maxSequenceLength() { return Math.min(256, blocks * 4); }
    @Override public int vocabularySize() { return VOCAB; }
    @Override public String describe() { return "fake"; }
    @Override public void close() {}

    @Override
    public boolean overlapsSteps() {
      return overlapping;
    }

    @Override
    public Launched launch(StepBatch batch) {
      if (!overlapping) {
        return ModelRunner.super.launch(batch);
      }
      check(batch);
      long[] seeds = new long[batch.samples()];
      int[][] histories = new int[batch.samples()][];
      for (int i = 0; i < batch.samples(); i++) {
        seeds[i] = batch.sequence(i).params().seed();
        histories[i] = batch.sequence(i).tokens().toArray(0, batch.sequence(i).length());
      }
      return () -> {
        int[] out = new int[seeds.length];
        for (int i = 0; i < out.length; i++) {
          int[] tokens = histories[i];
          for (int t = 0; t < tokens.length; t++) {
            if (tokens[t] < 0) {
              tokens[t] = previousDraws[-1 - tokens[t]]; // out of range: a pending token from an older step
            }
          }
          out[i] = expectedNext(seeds[i], tokens, tokens.length);
        }
        previousDraws = out;
        draws.addAndGet(out.length);
        return out;
      };
    }

    @Override
    public int[] step(StepBatch batch) {
      check(batch);
      int[] out = new int[batch.samples()];
      for (int i = 0; i < batch.samples(); i++) {
        Sequence seq = batch.sequence(i);
        out[i] = expectedNext(seq.params().seed(), seq.tokens().elements(), seq.length());
      }
      draws.addAndGet(out.length);
      return out;
    }

    /** Fails as the next step was told to, and checks the step's layout against its sequences. */
    private void check(StepBatch batch) {
      RuntimeException failure = failNext;
      if (failure != null) {
        failNext = null;
        throw failure;
      }
      maxBatch.accumulateAndGet(batch.sequences(), Math::max);
      for (int r = 0; r < batch.rows(); r++) {
        int p = batch.positions()[r];
        int block = batch.blockTables()[batch.rowSequence()[r] * batch.maxBlocks() + p / blockSize()];
        if (batch.slots()[r] != block * blockSize() + p % blockSize() || block < 0 || block >= blocks) {
          throw new AssertionError("row " + r + " at position " + p + ": slot " + batch.slots()[r] + " is not in its block table");
        }
      }
      int[] out = new int[batch.samples()];
      for (int i = 0; i < batch.samples(); i++) {
        Sequence seq = batch.sequence(i);
        int row = batch.sampleRows()[i];
        if (batch.positions()[row] != seq.length() - 1 || batch.tokens()[row] != seq.tokens().get(seq.length() - 1)
            || seq.blockTable().size() * blockSize() < seq.length()) {
          throw new AssertionError("sample " + i + " (row " + row + ") is not its sequence's last token in cached blocks");
        }
      }
    }

    @Override
    public float[][] promptLogits(int[] promptIds, dev.beamllama.model.llama.ForwardTrace trace) {
      throw new UnsupportedOperationException();
    }
  }

  static int[] reference(long seed, int[] prompt, int maxNew, int stop) {
    int[] tokens = java.util.Arrays.copyOf(prompt, prompt.length + maxNew);
    int n = prompt.length;
    while (n < prompt.length + maxNew) {
      int next = expectedNext(seed, tokens, n);
      tokens[n++] = next;
      if (next == stop) {
        break;
      }
    }
    return java.util.Arrays.copyOfRange(tokens, prompt.length, n);
  }

  /**
   * Also with steps overlapped as on a GPU: a step is laid out while the one before runs, with the
   * tokens that one draws pending; sequences that stop meanwhile have their extra draw dropped.
   */
  @ParameterizedTest(name = "overlapping steps: {0}")
  @ValueSource(booleans = {false, true})
  void manyConcurrentRequestsWithPreemptionGetTheirOwnTokens(boolean overlapping) {
    FakeRunner runner = new FakeRunner(64, EngineOptions.defaults().withMaxNumSeqs(8).withMaxBatchTokens(48).withBlockSize(4));
    runner.overlapping = overlapping;
    java.util.concurrent.atomic.AtomicLong reported = new java.util.concurrent.atomic.AtomicLong();
    int stop = 7;
    Random random = new Random(1);
    List<CompletableFuture<GenerationResult>> futures = new ArrayList<>();
    List<int[]> expected = new ArrayList<>();
    try (LlmEngine engine = new LlmEngine(runner, new int[] {stop})) {
      engine.stats().addStepListener((sequences, promptTokens, sampledTokens, nanos) -> reported.addAndGet(sampledTokens));
      for (int i = 0; i < 2000; i++) {
        int[] prompt = random.ints(1 + random.nextInt(60), 0, VOCAB).toArray();
        int maxNew = 1 + random.nextInt(40);
        long seed = random.nextLong();
        expected.add(reference(seed, prompt, maxNew, stop));
        futures.add(engine.submit(new GenerationRequest("r" + i, prompt, new SamplingParams(0.9, 40, 0.9, 1.1, maxNew, seed, false))));
      }
      for (int i = 0; i < futures.size(); i++) {
        GenerationResult result = futures.get(i).join();
        assertArrayEquals(expected.get(i), result.tokenIds(), "request " + i);
        boolean stopped = result.tokenIds()[result.tokenIds().length - 1] == stop;
        assertEquals(stopped ? FinishReason.STOP : FinishReason.LENGTH, result.finishReason());
      }
      assertTrue(runner.maxBatch.get() > 1, "requests must share steps");
      assertTrue(engine.stats().steps() > 0);
      assertTrue(engine.stats().preemptions() > 0, "the cache was meant to be too small");
      assertEquals(expected.stream().mapToLong(e -> e.length).sum(), reported.get(), "steps report the tokens kept, not dropped draws");
      assertEquals(overlapping, runner.draws.get() > reported.get(), "overlapped steps draw for sequences that stopped meanwhile");
    }
  }

  @Test
  void invalidRequestsFailTheirFutureOnly() {
    try (LlmEngine engine = new LlmEngine(new FakeRunner(100), new int[0])) {
      SamplingParams p = SamplingParams.greedy(4);
      assertTrue(failure(engine.submit(new GenerationRequest("empty", new int[0], p))).getMessage().contains("empty prompt"));
      assertTrue(failure(engine.submit(new GenerationRequest("oov", new int[] {VOCAB}, p))).getMessage().contains("outside the model's vocabulary"));
      assertTrue(failure(engine.submit(new GenerationRequest("long", new int[256], p))).getMessage().contains("context holds 256"));
      assertEquals(4, engine.generate(new GenerationRequest("ok", new int[] {1, 2}, p)).completionTokens());
    }
  }

  @Test
  void aFailedStepFailsItsSequencesAndTheEngineGoesOn() {
    FakeRunner runner = new FakeRunner(100);
    try (LlmEngine engine = new LlmEngine(runner, new int[0])) {
      runner.failNext = new IllegalStateException("device lost");
      CompletableFuture<GenerationResult> failed = engine.submit(new GenerationRequest("a", new int[] {1}, SamplingParams.greedy(3)));
      assertEquals("device lost", failure(failed).getMessage());
      assertEquals(3, engine.generate(new GenerationRequest("b", new int[] {1}, SamplingParams.greedy(3))).completionTokens());
    }
  }

  @Test
  void sequencesAreCappedAtTheContext() {
    try (LlmEngine engine = new LlmEngine(new FakeRunner(100), new int[0])) {
      GenerationResult r = engine.generate(new GenerationRequest("a", new int[250], SamplingParams.greedy(100)));
      assertEquals(6, r.completionTokens());
      assertEquals(FinishReason.LENGTH, r.finishReason());
    }
  }

  @Test
  void stepListenersSeeEveryStepAndAFailingOneIsDroppedWithoutHurtingGeneration() {
    FakeRunner runner = new FakeRunner(100, EngineOptions.defaults().withMaxNumSeqs(4).withMaxBatchTokens(16).withBlockSize(4));
    java.util.concurrent.atomic.AtomicLong steps = new java.util.concurrent.atomic.AtomicLong();
    java.util.concurrent.atomic.AtomicLong sampled = new java.util.concurrent.atomic.AtomicLong();
    java.util.concurrent.atomic.AtomicLong prompt = new java.util.concurrent.atomic.AtomicLong();
    java.util.concurrent.atomic.AtomicLong maxSequences = new java.util.concurrent.atomic.AtomicLong();
    AtomicInteger failingCalls = new AtomicInteger();
    try (LlmEngine engine = new LlmEngine(runner, new int[0])) {
      engine.stats().addStepListener((sequences, promptTokens, sampledTokens, nanos) -> {
        failingCalls.incrementAndGet();
        throw new IllegalStateException("listener bug");
      });
      engine.stats().addStepListener((sequences, promptTokens, sampledTokens, nanos) -> {
        steps.incrementAndGet();
        sampled.addAndGet(sampledTokens);
        prompt.addAndGet(promptTokens);
        maxSequences.accumulateAndGet(sequences, Math::max);
      });
      List<CompletableFuture<GenerationResult>> futures = new ArrayList<>();
      for (int i = 0; i < 6; i++) {
        // Prompts of their own: the prefix cache would compute a shared one once.
        futures.add(engine.submit(new GenerationRequest("r" + i, new int[] {1 + i, 2, 3, 4, 5}, SamplingParams.greedy(5))));
      }
      futures.forEach(f -> assertEquals(5, f.join().completionTokens()));
      assertEquals(1, failingCalls.get(), "the failing listener is called once, then dropped");
      assertEquals(engine.stats().steps(), steps.get());
      assertEquals(30, sampled.get(), "every generated token is reported");
      assertEquals(30, prompt.get(), "every prompt token is reported once");
      assertTrue(maxSequences.get() >= 1 && maxSequences.get() <= 4, "sequences per step within maxNumSeqs: " + maxSequences.get());
      assertEquals(6, engine.stats().finishedSequences());
    }
  }

  private static Throwable failure(CompletableFuture<?> future) {
    CompletionException e = assertThrows(CompletionException.class, future::join);
    return e.getCause();
  }
}
