package dev.beamllama.model.engine;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;

import dev.beamllama.model.Fixtures;
import dev.beamllama.model.ModelDirectory;
import dev.beamllama.model.config.LlamaConfig;
import org.junit.jupiter.api.Test;

/**
 * The one context rule: the smaller of the model's positions and what the KV cache holds of one
 * sequence, and an engine whose cache holds less than its job planned with refused at load.
 */
class EngineContextTest {
  private static final LlamaConfig CONFIG = new ModelDirectory(Fixtures.goldenCheckpoint("tiny-llama3-f32")).config();
  private static final EngineOptions OPTIONS = EngineOptions.defaults();
  private static final long F32_BLOCK = CacheSizing.bytesPerBlock(CONFIG, OPTIONS.blockSize(), false);

  @Test
  void theContextIsTheSmallerOfTheModelsPositionsAndWhatTheCacheHoldsOfOneSequence() {
    assertEquals(256, CONFIG.maxPositionEmbeddings());
    assertEquals(new EngineContext(256, 256, 1L << 30), EngineContext.of(CONFIG, OPTIONS, false, 1L << 30));
    assertEquals(new EngineContext(128, 256, 8 * F32_BLOCK), EngineContext.of(CONFIG, OPTIONS, false, 8 * F32_BLOCK));
    assertEquals(new EngineContext(256, 256, 8 * F32_BLOCK), EngineContext.of(CONFIG, OPTIONS, true, 8 * F32_BLOCK),
        "a bf16 cache holds twice the tokens");
    assertEquals(new EngineContext(256, 256, 0), EngineContext.of(CONFIG, OPTIONS, false, 0), "a cache not known yet: the positions");
    assertThrows(IllegalArgumentException.class, () -> EngineContext.of(CONFIG, OPTIONS, false, F32_BLOCK - 1), "less than one block");
  }

  @Test
  void itsDescriptionNamesWhatBoundsIt() {
    assertEquals("the model's context of 256 tokens", EngineContext.of(CONFIG, OPTIONS, false, 1L << 30).describe());
    assertEquals("the engine's context of 128 tokens (the KV cache's capacity for one sequence, which --kvCacheBytes raises; "
        + "the model's positions: 256)", EngineContext.of(CONFIG, OPTIONS, false, 8 * F32_BLOCK).describe());
  }

  @Test
  void anEngineWhoseCacheHoldsLessThanItsJobPlannedWithIsRefused() {
    LlmEngineTest.FakeRunner runner = new LlmEngineTest.FakeRunner(16); // 64 tokens of one sequence
    new EngineContext(64, 256, 1000).requireHeldBy(runner);

    IllegalStateException positions = assertThrows(IllegalStateException.class, () -> new EngineContext(256, 256, 0).requireHeldBy(runner));
    assertEquals("the engine's KV cache holds 64 tokens of one sequence, less than the context its job plans with: the model's 256 "
        + "positions (--kvCacheBytes 0 on --engine=cuda); raise --gpuMemoryUtilization, or set a smaller --kvCacheBytes for a shorter "
        + "context (longer prompts are then prompt_too_long dead letters, or cut by --overlong=truncate)", positions.getMessage());
    IllegalStateException configured = assertThrows(IllegalStateException.class, () -> new EngineContext(128, 256, 4096).requireHeldBy(runner));
    assertEquals("the engine's KV cache holds 64 tokens of one sequence, less than the context its job plans with: 128 tokens of a "
        + "4096-byte KV cache (--kvCacheBytes, or the CPU engine's default under --engine=auto), more than the GPU's memory leaves "
        + "for it; raise --gpuMemoryUtilization, or set a smaller --kvCacheBytes for a shorter context (longer prompts are then "
        + "prompt_too_long dead letters, or cut by --overlong=truncate)", configured.getMessage());
  }
}
