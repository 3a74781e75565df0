package dev.beamllama.bench.llamacpp;

import static dev.beamllama.model.Fixtures.relativeL2;
import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.beamllama.model.Fixtures;
import dev.beamllama.model.ModelDirectory;
import dev.beamllama.model.cpu.CpuModelRunner;
import dev.beamllama.model.demo.DemoCheckpoint;
import dev.beamllama.model.engine.EngineOptions;
import dev.beamllama.model.engine.GenerationRequest;
import dev.beamllama.model.engine.LlmEngine;
import dev.beamllama.model.sampling.SamplingParams;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.stream.Stream;
import dev.beamllama.model.safetensors.SafetensorsCheckpoint;
import dev.beamllama.model.safetensors.SafetensorsWriter;
import dev.beamllama.model.safetensors.Tensor;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * The benchmark's two engines run the same model: the demo checkpoint written as GGUF gives, in
 * llama.cpp, the greedy tokens our CPU engine gives from the safetensors (a wrong dim or a missing
 * key shows here). Its query and key weights are scaled up first: the demo's random weights give
 * nearly uniform attention, under which rows out of llama.cpp's rotary order would go unnoticed.
 */
class LlamaCppPeerTest {
  @TempDir static Path dir;
  private static Path llamacpp;
  private static Path demo;

  @BeforeAll
  static void fetch() throws Exception {
    Path root = Path.of(System.getProperty("beamllama.root"));
    Process fetch = new ProcessBuilder(root.resolve("scripts/fetch-llamacpp").toString()).redirectErrorStream(true).start();
    String out = new String(fetch.getInputStream().readAllBytes());
    assertTrue(fetch.waitFor(5, TimeUnit.MINUTES) && fetch.exitValue() == 0, "scripts/fetch-llamacpp failed: " + out);
    llamacpp = Path.of(out.lines().reduce((a, b) -> b).orElseThrow().trim());
    Path plain = dir.resolve("demo");
    DemoCheckpoint.write(plain, Fixtures.llama3TokenizerDir());
    demo = dir.resolve("sharp-attention");
    sharpenAttention(plain, demo, 8f);
  }

  /** A copy of {@code from} with every query and key projection weight times {@code scale}. */
  private static void sharpenAttention(Path from, Path to, float scale) throws Exception {
    Files.createDirectories(to);
    try (Stream<Path> files = Files.list(from)) {
      for (Path f : files.filter(f -> !f.getFileName().toString().endsWith(".safetensors")).toList()) {
        Files.copy(f, to.resolve(f.getFileName()));
      }
    }
    SafetensorsWriter out = new SafetensorsWriter();
    try (SafetensorsCheckpoint in = SafetensorsCheckpoint.open(from)) {
      for (String name : in.names()) {
        Tensor t = in.tensor(name);
        float[] values = t.toFloatArray();
        if (name.endsWith("q_proj.weight") || name.endsWith("k_proj.weight")) {
          for (int i = 0; i < values.length; i++) {
            values[i] *= scale;
          }
        }
        out.add(name, t.dtype(), values, t.shape());
      }
    }
    out.write(to.resolve(SafetensorsCheckpoint.SINGLE_FILE));
  }

  @Test
  void llamaCppGivesOurLogitsAndGreedyTokensOnTheSameBf16Weights() throws Exception {
    Path gguf = dir.resolve("demo-bf16.gguf");
    GgufWriter.write(demo, gguf, GgufWriter.Format.BF16);
    int[][] prompts = {prompt(1), prompt(2)};
    int newTokens = 2;
    float[][] theirLogits;
    int[][] theirs;
    try (LlamaCppPeer peer = new LlamaCppPeer(llamacpp, gguf, 2, prompts.length, 64, 64)) {
      theirLogits = peer.promptLogits(prompts[0]);
      theirs = peer.generate(prompts, newTokens).tokens();
    }
    ModelDirectory model = new ModelDirectory(demo);
    EngineOptions options = EngineOptions.defaults().withThreads(2);
    try (LlmEngine ours = new LlmEngine(new CpuModelRunner(model.openWeights(), model.config(), options), new int[0])) {
      float[][] ourLogits = ours.promptLogits(prompts[0]);
      for (int pos = 0; pos < ourLogits.length; pos++) {
        double error = relativeL2(theirLogits[pos], ourLogits[pos]);
        // Measured: 0.007-0.08 (the same bf16 weights; llama.cpp keeps keys and values in f16, we in
        // bf16, and the sharpened attention magnifies that); query and key rows left in Hugging Face's
        // order: 0.2 at position 1, then ~1.
        assertTrue(error < 0.2, "position " + pos + ": relative L2 " + error);
      }
      for (int s = 0; s < prompts.length; s++) {
        int[] tokens = ours.generate(new GenerationRequest("p" + s, prompts[s], SamplingParams.greedy(newTokens))).tokenIds();
        assertArrayEquals(tokens, theirs[s], "prompt " + s);
      }
    }
  }

  @Test
  void theQ8FileLoadsAndGenerates() throws Exception {
    Path gguf = dir.resolve("demo-q8_0.gguf");
    GgufWriter.write(demo, gguf, GgufWriter.Format.Q8_0);
    try (LlamaCppPeer peer = new LlamaCppPeer(llamacpp, gguf, 2, 1, 64, 64)) {
      LlamaCppPeer.Generation g = peer.generate(new int[][] {prompt(3)}, 4);
      assertEquals(4, g.tokens()[0].length);
      assertTrue(g.prefillNanos() > 0 && g.decodeNanos() > 0);
    }
  }

  /** ggml's reference Q8_0: scale max|x| / 127 as f16, values round(x / scale). */
  @Test
  void q8BlocksAreGgmlsReferenceQuantization() {
    float[] row = new float[64];
    for (int i = 0; i < row.length; i++) {
      row[i] = (i - 20) * 0.37f;
    }
    row[40] = 0; // the second block's values
    ByteBuffer out = ByteBuffer.allocate(2 * GgufWriter.Q8_BLOCK_BYTES).order(ByteOrder.LITTLE_ENDIAN);
    GgufWriter.quantizeQ8(row, out);
    out.flip();
    for (int b = 0; b < 2; b++) {
      float amax = 0;
      for (int i = 0; i < 32; i++) {
        amax = Math.max(amax, Math.abs(row[32 * b + i]));
      }
      assertEquals(Float.floatToFloat16(amax / 127f), out.getShort(), "block " + b + " scale");
      for (int i = 0; i < 32; i++) {
        assertEquals(Math.round(row[32 * b + i] * (127f / amax)), out.get(), 1, "block " + b + " value " + i);
      }
    }
  }

  /** llama.cpp's converter: rows (head, half, i) become (head, i, half). */
  @Test
  void queryRowsAreInterleavedPerHead() {
    GgufWriter.Permute p = new GgufWriter.Permute(2, 8);
    int[] expected = {0, 4, 1, 5, 2, 6, 3, 7, 8, 12, 9, 13, 10, 14, 11, 15};
    for (int row = 0; row < expected.length; row++) {
      assertEquals(expected[row], p.sourceRow(row), "row " + row);
    }
  }

  private static int[] prompt(int seed) {
    int[] ids = new int[20];
    for (int i = 0; i < ids.length; i++) {
      ids[i] = 1000 + (seed * 7919 + i * 104729) % 100_000;
    }
    return ids;
  }
}
