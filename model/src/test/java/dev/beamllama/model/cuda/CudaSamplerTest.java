package dev.beamllama.model.cuda;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;

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
 * The GPU sampler gives the CPU sampler's token for every row, the repetition penalty reading each
 * row's history from the device as a step leaves it: the model card's parameters, greedy, top-k
 * off (the whole vocabulary), ties at the k-th value (bf16 logits tie often), and more ties than
 * the top-k kernel's candidate limit. On a GPU or the emulated CUDA device.
 */
class CudaSamplerTest {
  private static final int VOCAB = 128_256;
  private static CudaDriver driver;
  private static MemorySegment stream;
  private static CudaKernels kernels;
  private static CudaSampler sampler;
  private static long logits;
  private static final int ROWS = 64;

  @BeforeEach
  void gpu() {
    CudaTestDevice.require();
    if (driver != null) {
      return;
    }
    driver = CudaDriver.open(0);
    stream = driver.createStream();
    kernels = new CudaKernels(driver, stream, true);
    sampler = new CudaSampler(driver, kernels, stream, VOCAB, ROWS);
    logits = driver.alloc((long) ROWS * VOCAB * Float.BYTES);
  }

  @AfterAll
  static void release() {
    if (driver != null) {
      sampler.close();
      kernels.close();
      driver.free(logits);
      driver.destroyStream(stream);
      driver.close();
    }
  }

  @Test
  void everyRowGetsTheCpuSamplersToken() {
    Random random = new Random(7);
    float[][] rows = new float[ROWS][VOCAB];
    List<Request> requests = new ArrayList<>();
    for (int r = 0; r < ROWS; r++) {
      float scale = 1 + random.nextInt(8);
      for (int i = 0; i < VOCAB; i++) {
        // bf16-rounded, as the model's logits are: many exact ties.
        rows[r][i] = DType.roundToBf16((float) random.nextGaussian() * scale);
      }
      SamplingParams params = switch (r % 8) {
        case 0 -> SamplingParams.modelCard(r);
        case 1 -> SamplingParams.greedy(10).withRepetitionPenalty(1.1);
        case 2 -> SamplingParams.modelCard(r).withTopK(0); // top-k off: the whole vocabulary
        case 3 -> SamplingParams.modelCard(r).withTopK(1);
        case 4 -> SamplingParams.modelCard(r).withTopP(1.0).withTemperature(1.0);
        case 5 -> SamplingParams.modelCard(r).withRepetitionPenalty(1.0).withTopK(1000);
        case 6 -> SamplingParams.modelCard(r).withTemperature(0.3).withTopP(0.5);
        default -> SamplingParams.greedy(10);
      };
      requests.add(row(history(random), params, random.nextInt(100)));
    }
    assertSampledAsOnTheCpu(rows, requests);
  }

  /** 2,000 tokens tied at the top: more candidates than the top-k kernel takes, sampled over the whole vocabulary instead. */
  @Test
  void moreTiesThanTheTopKKernelTakesAreSampledOverTheWholeVocabulary() {
    Random random = new Random(11);
    float[][] rows = new float[ROWS][VOCAB];
    List<Request> requests = new ArrayList<>();
    for (int r = 0; r < ROWS; r++) {
      for (int i = 0; i < VOCAB; i++) {
        rows[r][i] = i % 64 == r % 64 && i < 2000 * 64 ? 3.0f : DType.roundToBf16((float) random.nextGaussian());
      }
      SamplingParams params = r % 2 == 0 ? SamplingParams.modelCard(r) : SamplingParams.modelCard(r).withTopK(2).withTopP(1.0);
      requests.add(row(history(random), params, r));
    }
    assertSampledAsOnTheCpu(rows, requests);
  }

  /**
   * The k-th largest score is a zero and the row holds both +0.0 and -0.0: they are equal scores, so
   * top-k keeps all of them (as the CPU's comparisons do), whatever their sign bits.
   */
  @Test
  void signedZerosAtTheKthPlaceAreOneScore() {
    Random random = new Random(13);
    float[][] rows = new float[ROWS][VOCAB];
    List<Request> requests = new ArrayList<>();
    for (int r = 0; r < ROWS; r++) {
      java.util.Arrays.fill(rows[r], -20f);
      for (int i = 0; i < 4; i++) {
        rows[r][1000 + 7 * i] = 1f + i;
      }
      for (int i = 0; i < 200; i++) {
        rows[r][5000 + 13 * i] = i % 2 == 0 ? 0.0f : -0.0f;
      }
      SamplingParams params = SamplingParams.modelCard(r).withTopK(5 + r % 3).withTopP(1.0).withTemperature(1.0)
          .withRepetitionPenalty(1.0);
      requests.add(row(new int[0], params, r));
    }
    assertSampledAsOnTheCpu(rows, requests);
  }

  /**
   * Top-k off: a flat row whose top-p keeps most of the vocabulary, top-p off (a softmax over all of
   * it), a row with -inf scores (not candidates), and top-k at the vocabulary's size (off too).
   */
  @Test
  void topKOffSamplesTheWholeVocabulary() {
    Random random = new Random(17);
    float[][] rows = new float[16][VOCAB];
    List<Request> requests = new ArrayList<>();
    for (int r = 0; r < rows.length; r++) {
      float scale = r % 4 == 0 ? 0.05f : 4f;
      for (int i = 0; i < VOCAB; i++) {
        rows[r][i] = DType.roundToBf16((float) random.nextGaussian() * scale);
      }
      if (r % 4 == 2) {
        for (int i = 0; i < VOCAB; i += 3) {
          rows[r][i] = Float.NEGATIVE_INFINITY;
        }
      }
      SamplingParams params = switch (r % 4) {
        case 0 -> SamplingParams.modelCard(r).withTopK(0);
        case 1 -> SamplingParams.modelCard(r).withTopK(0).withTopP(1.0);
        case 2 -> SamplingParams.modelCard(r).withTopK(0).withTopP(0.95).withTemperature(1.0);
        default -> SamplingParams.modelCard(r).withTopK(VOCAB);
      };
      requests.add(row(history(random), params, r));
    }
    assertSampledAsOnTheCpu(rows, requests);
  }

  /** A row to sample: its sequence's tokens so far (on the device for the GPU), its parameters and draw. */
  private record Request(int[] history, SamplingParams params, int step) {}

  private static Request row(int[] history, SamplingParams params, int step) {
    return new Request(history, params, step);
  }

  private static int[] history(Random random) {
    int[] history = new int[20 + random.nextInt(300)];
    for (int i = 0; i < history.length; i++) {
      history[i] = random.nextInt(VOCAB);
    }
    return history;
  }

  /** Samples every row on the device and with the CPU sampler; the tokens must be identical. */
  private static void assertSampledAsOnTheCpu(float[][] rows, List<Request> full) {
    try (Arena arena = Arena.ofConfined()) {
      MemorySegment host = arena.allocate((long) rows.length * VOCAB * Float.BYTES, 64);
      for (int r = 0; r < rows.length; r++) {
        MemorySegment.copy(rows[r], 0, host, ValueLayout.JAVA_FLOAT, (long) r * VOCAB * Float.BYTES, VOCAB);
      }
      driver.copyToDevice(logits, host, host.byteSize());
    }
    int[] gpu;
    try (Releases histories = new Releases()) {
      gpu = sampler.launch(logits, DeviceHistories.upload(driver, histories, full.stream().map(Request::history).toList()),
          full.stream().map(r -> new CudaSampler.Row(r.params(), r.step())).toList()).tokens();
    }
    int[] cpu = new int[rows.length];
    Sampler reference = new Sampler(VOCAB);
    for (int r = 0; r < rows.length; r++) {
      Request row = full.get(r);
      cpu[r] = reference.sample(rows[r].clone(), row.history(), row.history().length, row.params(), row.step());
    }
    assertArrayEquals(cpu, gpu);
  }
}
