package dev.beamllama.model.cuda;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

import dev.beamllama.model.safetensors.DType;
import dev.beamllama.model.sampling.Sampler;
import dev.beamllama.model.sampling.SamplingParams;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.util.ArrayList;
import java.util.List;
import java.util.Random;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;

/**
 * The GPU sampler gives the CPU sampler's token for every row: the model card's parameters,
 * greedy, top-k off (host path), ties at the k-th value (bf16 logits tie often), and more ties
 * than the kernel's candidate limit. Skipped, with the reason, where no GPU is usable.
 */
class CudaSamplerTest {
  private static final int VOCAB = 128_256;
  private static CudaDriver driver;
  private static MemorySegment stream;
  private static CudaSampler sampler;
  private static long logits;
  private static final int ROWS = 64;

  @BeforeEach
  void gpu() {
    String reason = CudaModelRunner.unavailableReason();
    assumeTrue(reason == null, () -> "CUDA sampler not tested here: " + reason);
    if (driver != null) {
      return;
    }
    driver = CudaDriver.open(0);
    stream = driver.createStream();
    sampler = new CudaSampler(driver, new CudaKernels(driver, stream, true), stream, VOCAB, ROWS);
    logits = driver.alloc((long) ROWS * VOCAB * Float.BYTES);
  }

  @AfterAll
  static void release() {
    if (driver != null) {
      sampler.close();
      driver.free(logits);
      driver.destroyStream(stream);
      driver.close();
    }
  }

  @Test
  void everyRowGetsTheCpuSamplersToken() {
    Random random = new Random(7);
    float[][] rows = new float[ROWS][VOCAB];
    List<CudaSampler.Row> requests = new ArrayList<>();
    for (int r = 0; r < ROWS; r++) {
      float scale = 1 + random.nextInt(8);
      for (int i = 0; i < VOCAB; i++) {
        // bf16-rounded, as the model's logits are: many exact ties.
        rows[r][i] = DType.roundToBf16((float) random.nextGaussian() * scale);
      }
      if (r % 16 == 15) {
        java.util.Arrays.fill(rows[r], 0.5f); // every token tied: more candidates than the kernel takes
      }
      int[] history = new int[20 + random.nextInt(300)];
      for (int i = 0; i < history.length; i++) {
        history[i] = random.nextInt(VOCAB);
      }
      SamplingParams params = switch (r % 8) {
        case 0 -> SamplingParams.modelCard(r);
        case 1 -> SamplingParams.greedy(10).withRepetitionPenalty(1.1);
        case 2 -> SamplingParams.modelCard(r).withTopK(0); // top-k off: sampled on the host
        case 3 -> SamplingParams.modelCard(r).withTopK(1);
        case 4 -> SamplingParams.modelCard(r).withTopP(1.0).withTemperature(1.0);
        case 5 -> SamplingParams.modelCard(r).withRepetitionPenalty(1.0).withTopK(1000);
        case 6 -> SamplingParams.modelCard(r).withTemperature(0.3).withTopP(0.5);
        default -> SamplingParams.greedy(10);
      };
      requests.add(new CudaSampler.Row(history, history.length, params, random.nextInt(100)));
    }
    try (Arena arena = Arena.ofConfined()) {
      MemorySegment host = arena.allocate((long) ROWS * VOCAB * Float.BYTES, 64);
      for (int r = 0; r < ROWS; r++) {
        MemorySegment.copy(rows[r], 0, host, ValueLayout.JAVA_FLOAT, (long) r * VOCAB * Float.BYTES, VOCAB);
      }
      driver.copyToDevice(logits, host, host.byteSize());
    }
    int[] gpu = sampler.sample(logits, requests);
    int[] cpu = new int[ROWS];
    Sampler reference = new Sampler(VOCAB);
    for (int r = 0; r < ROWS; r++) {
      CudaSampler.Row row = requests.get(r);
      cpu[r] = reference.sample(rows[r].clone(), row.history(), row.historyLength(), row.params(), row.step());
    }
    assertArrayEquals(cpu, gpu);
  }
}
