package dev.beamllama.model;

import dev.beamllama.model.cpu.CpuModelRunner;
import dev.beamllama.model.engine.EngineOptions;
import dev.beamllama.model.engine.LlmEngine;
import dev.beamllama.model.safetensors.SafetensorsCheckpoint;

/** Builds engines for a checkpoint directory. */
public final class Engines {
  private Engines() {}

  /** The pure-Java CPU engine. */
  public static LlmEngine cpu(ModelDirectory model, EngineOptions options) {
    SafetensorsCheckpoint weights = model.openWeights();
    try {
      return new LlmEngine(new CpuModelRunner(weights, model.config(), options), options, model.stopTokenIds());
    } catch (RuntimeException e) {
      weights.close();
      throw e;
    }
  }
}
