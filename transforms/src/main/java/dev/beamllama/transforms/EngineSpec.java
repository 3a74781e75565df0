package dev.beamllama.transforms;

import dev.beamllama.model.Engines;
import dev.beamllama.model.ModelDirectory;
import dev.beamllama.model.engine.EngineContext;
import dev.beamllama.model.engine.EngineOptions;
import java.io.Serializable;
import java.nio.file.Path;

/** Which engine a job needs: the checkpoint, the backend and its sizing. Engines are shared per JVM by equal specs. */
public record EngineSpec(String modelPath, Engines.Kind kind, EngineOptions options) implements Serializable {
  /** The longest sequence this engine holds, which prompts are checked and cut against ({@link Engines#context}). */
  public EngineContext context() {
    return Engines.context(new ModelDirectory(Path.of(modelPath)), kind, options);
  }
}
