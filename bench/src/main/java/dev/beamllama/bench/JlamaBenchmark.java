package dev.beamllama.bench;

import com.github.tjake.jlama.model.AbstractModel;
import com.github.tjake.jlama.model.ModelSupport;
import com.github.tjake.jlama.model.functions.Generator;
import com.github.tjake.jlama.safetensors.DType;
import com.github.tjake.jlama.safetensors.prompt.PromptContext;
import dev.beamllama.model.bench.DecodeBenchmark;
import java.io.File;
import java.util.Locale;
import java.util.UUID;

/**
 * Jlama on the same checkpoint directory, greedy, the way its README runs a model: decode tokens/s
 * (generated tokens over generation time) and prefill tokens/s, medians of several runs after a
 * warm-up. Prints {@code jlama decode D prefill P prompt N generated G}, one line.
 *
 * <p>{@code JlamaBenchmark MODEL_DIR PROMPT NEW_TOKENS RUNS}
 */
public final class JlamaBenchmark {
  private JlamaBenchmark() {}

  public static void main(String[] args) {
    File model = new File(args[0]);
    String prompt = args[1];
    int newTokens = Integer.parseInt(args[2]);
    int runs = Integer.parseInt(args[3]);
    AbstractModel jlama = ModelSupport.loadModel(model, DType.F32, DType.I8);
    // Jlama's limit counts the prompt too.
    int promptTokens = jlama.encodePrompt(PromptContext.of(prompt)).length;
    jlama.generate(UUID.randomUUID(), PromptContext.of(prompt), 0.0f, promptTokens + 4, (text, f) -> {});
    double[] decode = new double[runs];
    double[] prefill = new double[runs];
    int generated = 0;
    for (int r = 0; r < runs; r++) {
      Generator.Response response = jlama.generate(UUID.randomUUID(), PromptContext.of(prompt), 0.0f, promptTokens + newTokens, (text, f) -> {});
      decode[r] = response.generatedTokens / (response.generateTimeMs / 1000.0);
      prefill[r] = response.promptTokens / (Math.max(1, response.promptTimeMs) / 1000.0);
      generated = response.generatedTokens;
    }
    System.out.printf(Locale.ROOT, "jlama decode %.2f prefill %.1f prompt %d generated %d%n", DecodeBenchmark.median(decode),
        DecodeBenchmark.median(prefill), promptTokens, generated);
    System.exit(0);
  }
}
