package dev.beamllama.transforms;

import dev.beamllama.model.demo.DemoCheckpoint;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.file.Files;
import java.nio.file.Path;

/**
 * The demo checkpoint (Llama 3 shape, context 4096, the real tokenizer, random weights), written once
 * into .cache/demo-model as scripts/make-demo-model and the pipeline tests do; never committed.
 */
final class DemoModel {
  private DemoModel() {}

  static synchronized String path() {
    Path root = Path.of(System.getProperty("beamllama.root", "..")).toAbsolutePath().normalize();
    Path dir = root.resolve(".cache/demo-model");
    if (!Files.exists(dir.resolve(DemoCheckpoint.MARKER)) || !Files.exists(dir.resolve("model.safetensors"))) {
      try {
        DemoCheckpoint.write(dir, Path.of(System.getProperty("beamllama.tokenizerDir", root.resolve(".cache/tokenizer-llama3").toString())));
      } catch (IOException e) {
        throw new UncheckedIOException(e);
      }
    }
    return dir.toString();
  }
}
