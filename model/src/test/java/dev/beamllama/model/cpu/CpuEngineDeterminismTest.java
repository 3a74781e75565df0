package dev.beamllama.model.cpu;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;

import dev.beamllama.model.Engines;
import dev.beamllama.model.Fixtures;
import dev.beamllama.model.ModelDirectory;
import dev.beamllama.model.engine.EngineOptions;
import dev.beamllama.model.engine.GenerationRequest;
import dev.beamllama.model.engine.LlmEngine;
import dev.beamllama.model.sampling.SamplingParams;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

/**
 * The number of kernel threads changes no logit and no token (batching, preemption, tiny steps and
 * reruns: EngineContractTest).
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
