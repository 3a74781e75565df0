package dev.beamllama.transforms;

import dev.beamllama.model.Engines;
import dev.beamllama.model.engine.EngineOptions;
import java.io.Serializable;

/** Which engine a job needs: the checkpoint, the backend and its sizing. Engines are shared per JVM by equal specs. */
public record EngineSpec(String modelPath, Engines.Kind kind, EngineOptions options) implements Serializable {}
