package dev.beamllama.model.cuda;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.beamllama.model.Engines;
import dev.beamllama.model.Fixtures;
import dev.beamllama.model.ModelDirectory;
import dev.beamllama.model.config.LlamaConfig;
import dev.beamllama.model.config.RopeConfig;
import dev.beamllama.model.engine.CacheSizing;
import dev.beamllama.model.engine.EngineOptions;
import dev.beamllama.model.engine.LlmEngine;
import java.util.List;
import java.util.regex.Pattern;
import org.junit.jupiter.api.Test;

/**
 * How the engines size themselves when {@code --maxNumSeqs} and {@code --maxBatchTokens} are left to
 * them: the CPU's fixed defaults, and the CUDA engine's from the model and the GPU's memory
 * ({@link CudaModelRunner#plan}, a pure function, here for GPUs this machine does not have).
 */
class CudaSizingTest {
  private static final long MIB = 1L << 20;
  private static final long GIB = 1L << 30;
  /** Meta-Llama-3-8B-Instruct's shape, as Waktaverse's. */
  private static final LlamaConfig LLAMA_3_8B = new LlamaConfig(128256, 4096, 14336, 32, 32, 8, 128, 1e-5f, 8192, false,
      RopeConfig.unscaled(500000), "bfloat16", List.of(128001, 128009));
  /** Its bf16 weights: embedding, lm_head, 32 layers of projections and norms, the final norm. */
  private static final long WEIGHTS_8B = 2L * (2L * 128256 * 4096
      + 32L * (4096L * (4096 + 1024 + 1024 + 4096) + 3L * 4096 * 14336 + 2 * 4096) + 4096);
  /** What the CUDA context takes before the weights (about this on a Hopper GPU). */
  private static final long CONTEXT = 500 * MIB;
  /** cuMemGetInfo's total of an H100 80GB, an H200 and a 24 GB card (nvidia-smi's MiB). */
  private static final long H100 = 81559 * MIB;
  private static final long H200 = 143771 * MIB;
  private static final long GPU_24GB = 24564 * MIB;

  private static CudaModelRunner.Plan plan(EngineOptions options, long total) {
    return CudaModelRunner.plan(LLAMA_3_8B, options, true, total - CONTEXT - WEIGHTS_8B, total);
  }

  private static long cacheTokens(CudaModelRunner.Plan plan) {
    return plan.cacheBytes() / CacheSizing.bytesPerBlock(LLAMA_3_8B, 1, true);
  }

  @Test
  void anEightBillionModelOnA80Or141GigabyteGpuRuns256SequencesOf8192TokenSteps() {
    for (long total : new long[] {H100, H200}) {
      CudaModelRunner.Plan plan = plan(EngineOptions.defaults(), total);
      assertEquals(EngineOptions.CUDA_MAX_NUM_SEQS, plan.options().maxNumSeqs());
      assertEquals(EngineOptions.CUDA_MAX_BATCH_TOKENS, plan.options().maxBatchTokens());
      assertTrue(cacheTokens(plan) >= 256L * CudaModelRunner.TYPICAL_SEQUENCE_TOKENS, cacheTokens(plan) + " tokens");
      assertTrue(plan.sizing().startsWith("256 sequences, 8,192 batch tokens (CUDA defaults; the "), plan.sizing());
    }
  }

  @Test
  void aGpuWhoseCacheHoldsFewerThan256SequencesRunsAsManyAsItHoldsWithSmallerSteps() {
    CudaModelRunner.Plan plan = plan(EngineOptions.defaults(), GPU_24GB);
    int seqs = plan.options().maxNumSeqs();
    int tokens = plan.options().maxBatchTokens();
    // As many sequences as the cache beside their buffers holds at 1,024 tokens each: one more would not fit.
    assertTrue(seqs < EngineOptions.CUDA_MAX_NUM_SEQS && seqs >= 16, plan.sizing());
    assertTrue(cacheTokens(plan) >= (long) seqs * CudaModelRunner.TYPICAL_SEQUENCE_TOKENS, plan.sizing());
    long oneMore = cacheTokens(plan(EngineOptions.defaults().withMaxNumSeqs(seqs + 1).withMaxBatchTokens(tokens), GPU_24GB));
    assertTrue(oneMore < (seqs + 1L) * CudaModelRunner.TYPICAL_SEQUENCE_TOKENS, oneMore + " tokens");
    assertTrue(plan.sizing().contains(String.format(" tokens, %d sequences of 1,024", seqs)), plan.sizing());
    // Steps halved from 8,192 until their activations take at most a quarter of what the weights leave.
    long left = (long) (GPU_24GB * EngineOptions.DEFAULT_GPU_MEMORY_UTILIZATION) - CONTEXT - WEIGHTS_8B
        - 2L * LLAMA_3_8B.maxPositionEmbeddings() * (LLAMA_3_8B.headDim() / 2) * Float.BYTES;
    assertTrue(tokens < EngineOptions.CUDA_MAX_BATCH_TOKENS, plan.sizing());
    assertTrue(4 * CudaModelRunner.activationBytes(LLAMA_3_8B, true, tokens, 256) <= left, plan.sizing());
    assertTrue(4 * CudaModelRunner.activationBytes(LLAMA_3_8B, true, 2 * tokens, 256) > left, plan.sizing());
    assertTrue(plan.sizing().contains(String.format("%,d batch tokens so that a step's activations take at most a quarter", tokens)),
        plan.sizing());
  }

  @Test
  void givenFlagsWinOverTheCudaDefaults() {
    CudaModelRunner.Plan small = plan(EngineOptions.defaults().withMaxNumSeqs(16).withMaxBatchTokens(512), H100);
    assertEquals(16, small.options().maxNumSeqs());
    assertEquals(512, small.options().maxBatchTokens());
    assertEquals("16 sequences, 512 batch tokens (--maxNumSeqs and --maxBatchTokens as given)", small.sizing());
    // More sequences than the cache holds at 1,024 tokens each: asked for, so run (the scheduler preempts when it must), and
    // the default step holds a token for each of them even where the activations' quarter would allow 512.
    CudaModelRunner.Plan many = plan(EngineOptions.defaults().withMaxNumSeqs(1024), GPU_24GB);
    assertEquals(1024, many.options().maxNumSeqs());
    assertEquals(1024, many.options().maxBatchTokens());
    assertTrue(many.sizing().startsWith("1,024 sequences, 1,024 batch tokens (--maxNumSeqs as given; CUDA defaults; 512 batch tokens so "),
        many.sizing());
    // Only the token budget given: the sequences are the cache's, and never more than a step's tokens.
    CudaModelRunner.Plan fewTokens = plan(EngineOptions.defaults().withMaxBatchTokens(64), H100);
    assertEquals(64, fewTokens.options().maxNumSeqs());
    assertEquals(64, fewTokens.options().maxBatchTokens());
  }

  @Test
  void aGivenKvCacheBoundLimitsTheDefaultSequences() {
    CudaModelRunner.Plan plan = plan(EngineOptions.defaults().withKvCacheBytes(GIB), H100);
    assertEquals(GIB, plan.cacheBytes());
    assertEquals(GIB / CacheSizing.bytesPerBlock(LLAMA_3_8B, 1, true) / CudaModelRunner.TYPICAL_SEQUENCE_TOKENS, plan.options().maxNumSeqs());
    assertEquals(8, plan.options().maxNumSeqs(), plan.sizing()); // 128 KiB a token: 8,192 tokens
  }

  @Test
  void aGpuTheWeightsFillSaysSoWhateverTheSizing() {
    CudaException e = assertThrows(CudaException.class, () -> plan(EngineOptions.defaults(), 17 * GIB));
    assertTrue(e.getMessage().startsWith("no GPU memory left for the KV cache"), e.getMessage());
  }

  @Test
  void theCpuEngineKeepsItsDefaultsAndTheGivenFlags() {
    ModelDirectory model = new ModelDirectory(Fixtures.goldenCheckpoint("tiny-llama3-f32"));
    try (LlmEngine engine = Engines.cpu(model, EngineOptions.defaults().withThreads(1))) {
      assertEquals(EngineOptions.CPU_MAX_NUM_SEQS, engine.runner().options().maxNumSeqs());
      assertEquals(EngineOptions.CPU_MAX_BATCH_TOKENS, engine.runner().options().maxBatchTokens());
      assertTrue(engine.runner().describe().endsWith("; 16 sequences, 512 batch tokens (CPU defaults))"), engine.runner().describe());
    }
    try (LlmEngine engine = Engines.cpu(model, EngineOptions.defaults().withThreads(1).withMaxNumSeqs(300))) {
      assertEquals(300, engine.runner().options().maxNumSeqs());
      assertEquals(EngineOptions.CPU_MAX_BATCH_TOKENS, engine.runner().options().maxBatchTokens());
      assertTrue(engine.runner().describe().endsWith("; 300 sequences, 512 batch tokens (--maxNumSeqs as given; CPU defaults))"),
          engine.runner().describe());
    }
  }

  @Test
  void theCudaEngineOnTheTestDeviceTakesItsDefaults() {
    CudaModelRunner.Probe device = CudaTestDevice.require();
    ModelDirectory model = new ModelDirectory(Fixtures.goldenCheckpoint("tiny-llama3-bf16"));
    try (LlmEngine engine = Engines.cuda(model, EngineOptions.defaults())) {
      // The tiny model's cache holds far more than 256 sequences of its 256 positions on any test device.
      assertEquals(EngineOptions.CUDA_MAX_NUM_SEQS, engine.runner().options().maxNumSeqs());
      assertEquals(EngineOptions.CUDA_MAX_BATCH_TOKENS, engine.runner().options().maxBatchTokens());
      String described = engine.runner().describe();
      assertTrue(described.contains("; 256 sequences, 8,192 batch tokens (CUDA defaults; the "), described);
      // Which physical GPU the engine got: the device's PCI address, as the driver writes it.
      assertTrue(Pattern.compile(Pattern.quote(device.device()) + ", PCI [0-9A-F]{4,8}:[0-9A-F]{2}:[0-9A-F]{2}\\.[0-7], compute ")
          .matcher(described).find(), described);
      if (device.emulated() && System.getenv("CUDA_VISIBLE_DEVICES") == null) {
        assertTrue(described.contains(", PCI 0000:01:00.0, compute 9.0, "), described); // the first emulated device
      }
    }
  }
}
