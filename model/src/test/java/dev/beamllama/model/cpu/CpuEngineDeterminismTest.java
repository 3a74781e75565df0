package dev.beamllama.model.cpu;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.beamllama.model.Engines;
import dev.beamllama.model.Fixtures;
import dev.beamllama.model.ModelDirectory;
import dev.beamllama.model.engine.EngineOptions;
import dev.beamllama.model.engine.GenerationRequest;
import dev.beamllama.model.engine.GenerationResult;
import dev.beamllama.model.engine.LlmEngine;
import dev.beamllama.model.sampling.SamplingParams;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.CompletableFuture;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

/**
 * Preemption, tiny steps and the number of kernel threads do not change a request's tokens
 * (batching and reruns: EngineContractTest).
 */
class CpuEngineDeterminismTest {
  private static final int[] PROMPT = {488, 80, 205, 336, 27, 40, 423};

  private static GenerationRequest request(String id, int[] prompt, long seed) {
    return new GenerationRequest(id, prompt, SamplingParams.modelCard(seed).withMaxNewTokens(40));
  }

  private static int[] alone(ModelDirectory model, EngineOptions options) {
    try (LlmEngine engine = Engines.cpu(model, options)) {
      return engine.generate(request("alone", PROMPT, 1234)).tokenIds();
    }
  }

  @ParameterizedTest
  @ValueSource(ints = {3, 64})
  void preemptionAndSmallStepsDoNotChangeTokens(int maxBatchTokens) {
    ModelDirectory model = new ModelDirectory(Fixtures.goldenCheckpoint("tiny-llama3-f32"));
    int[] reference = alone(model, EngineOptions.defaults());
    // A cache of 128 tokens shared by 6 sequences of 47 forces preemptions.
    long bytesFor128Tokens = KvCache.bytesPerToken(2, 32, false) * 128; // an f32 model keeps an f32 cache
    EngineOptions tight = EngineOptions.defaults().withMaxNumSeqs(6).withMaxBatchTokens(maxBatchTokens).withKvCacheBytes(bytesFor128Tokens);
    try (LlmEngine engine = Engines.cpu(model, tight)) {
      List<CompletableFuture<GenerationResult>> futures = new ArrayList<>();
      // A step holds the runner's lock: holding it here stalls the engine at its first step until
      // all six are queued. Otherwise the first request can run far ahead alone (a step of this
      // model takes microseconds) and finish before the others fill the cache, and nothing is preempted.
      synchronized (engine.runner()) {
        for (int i = 0; i < 6; i++) {
          futures.add(engine.submit(request("r" + i, PROMPT, 1234)));
        }
      }
      for (CompletableFuture<GenerationResult> f : futures) {
        assertArrayEquals(reference, f.join().tokenIds());
      }
      assertTrue(engine.stats().preemptions() > 0, "the cache was meant to be too small for all six");
    }
  }

  @ParameterizedTest
  @ValueSource(ints = {1, 3, 32})
  void theNumberOfKernelThreadsChangesNoLogitAndNoToken(int threads) {
    // Threads size the parallel tasks (rows of each weight matrix per task): 128 rows of the LM head
    // per task with one thread, 16 with 32; every output must still come out bit for bit the same.
    ModelDirectory model = new ModelDirectory(Fixtures.goldenCheckpoint("tiny-llama3-bf16"));
    float[][] reference;
    int[] referenceTokens;
    try (LlmEngine engine = Engines.cpu(model, EngineOptions.defaults().withThreads(2))) {
      reference = engine.promptLogits(PROMPT);
      referenceTokens = engine.generate(request("two", PROMPT, 99)).tokenIds();
    }
    try (LlmEngine engine = Engines.cpu(model, EngineOptions.defaults().withThreads(threads))) {
      assertEquals(threads + " threads", engine.runner().describe().replaceAll(".*, (\\d+ threads).*", "$1"));
      float[][] logits = engine.promptLogits(PROMPT);
      for (int pos = 0; pos < PROMPT.length; pos++) {
        assertArrayEquals(reference[pos], logits[pos], 0f, "position " + pos);
      }
      assertArrayEquals(referenceTokens, engine.generate(request("other", PROMPT, 99)).tokenIds());
    }
  }
}
